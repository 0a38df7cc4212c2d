/** Small pieces shared by the subnet managers: abortable sleep, backoff, state and listener bookkeeping. */
import type { Logger } from '../log.js';
import type { Lease } from '../lease/types.js';
import { DEFAULT_BACKOFF, type BackoffOptions, type StoreState } from './types.js';

export class AbortedError extends Error {
  constructor(what = 'operation') {
    super(`${what} aborted`);
    this.name = 'AbortError';
  }
}

export function isAbort(err: unknown, signal?: AbortSignal): boolean {
  return signal?.aborted === true || (err instanceof Error && err.name === 'AbortError');
}

export function throwIfAborted(signal: AbortSignal | undefined, what?: string): void {
  if (signal?.aborted) throw new AbortedError(what);
}

/** Sleep `ms`; rejects with AbortedError when `signal` aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortedError('sleep'));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AbortedError('sleep'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Sleep `ms`, or less when `signal` aborts: resolves either way (for loops
 * that check the signal themselves). The abort listener is removed when the
 * timer fires: a loop that pauses every second would otherwise add one
 * listener per pass to a signal that lives as long as the process.
 */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, signal).catch((err: unknown) => {
    if (!isAbort(err, signal)) throw err;
  });
}

/** Resolve/reject with `p`, or reject with AbortedError when `signal` aborts first. */
export function abortable<T>(p: Promise<T>, signal?: AbortSignal, what?: string): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(new AbortedError(what));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      p.catch(() => undefined);
      reject(new AbortedError(what));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}

/** An AbortSignal that aborts when any of the given ones does. */
export function anySignal(...signals: Array<AbortSignal | undefined>): AbortSignal {
  const list = signals.filter((s): s is AbortSignal => s !== undefined);
  return AbortSignal.any(list);
}

export class Backoff {
  private current: number;
  constructor(private readonly opts: BackoffOptions = DEFAULT_BACKOFF) {
    this.current = opts.initialMs;
  }
  /** The delay to wait now; doubles the next one (capped). */
  next(): number {
    const d = this.current;
    this.current = Math.min(this.current * 2, this.opts.maxMs);
    return d;
  }
  reset(): void {
    this.current = this.opts.initialMs;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The store state with transition callbacks (and a log line per transition). */
export class StateTracker {
  private current: StoreState = 'connecting';
  private readonly listeners = new Set<(s: StoreState, detail?: string) => void>();
  constructor(private readonly log: Logger, private readonly store: string) {}

  get state(): StoreState {
    return this.current;
  }

  set(s: StoreState, detail?: string): void {
    if (s === this.current) return;
    const from = this.current;
    this.current = s;
    const level = s === 'disconnected' ? 'warn' : 'info';
    this.log.log(level, `${this.store} ${s}`, { from, detail });
    for (const cb of [...this.listeners]) {
      try {
        cb(s, detail);
      } catch (err) {
        this.log.error('state listener threw', { err });
      }
    }
  }

  on(cb: (s: StoreState, detail?: string) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }
}

export class OwnLeaseListeners {
  private readonly listeners = new Set<(lease: Lease, previous: Lease) => void>();
  constructor(private readonly log: Logger) {}
  on(cb: (lease: Lease, previous: Lease) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }
  emit(lease: Lease, previous: Lease): void {
    for (const cb of [...this.listeners]) {
      try {
        cb(lease, previous);
      } catch (err) {
        this.log.error('own-lease listener threw', { err });
      }
    }
  }
}

/** Call a consumer callback; a throwing consumer is logged, never breaks the loop. */
export function deliver<E>(log: Logger, onEvent: (e: E) => void, e: E): void {
  try {
    onEvent(e);
  } catch (err) {
    log.error('lease event consumer threw', { err });
  }
}
