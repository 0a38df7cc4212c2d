/**
 * Progress lines for people watching a benchmark (stderr, so stdout keeps
 * only the result table): "[  12.3 s] section: what is happening".
 */

export class Progress {
  readonly t0 = performance.now();
  constructor(private readonly out: (line: string) => void = (l) => process.stderr.write(`${l}\n`)) {}

  /** Seconds since the start. */
  elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  say(section: string, msg: string): void {
    this.out(`[${this.elapsed().toFixed(1).padStart(6)} s] ${section}: ${msg}`);
  }

  /** A logger bound to one section. */
  section(name: string): (msg: string) => void {
    return (msg) => this.say(name, msg);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const sab = new Int32Array(new SharedArrayBuffer(4));
/**
 * Block this thread for `ms` (fractions allowed, e.g. 0.05 = 50 µs) without
 * spinning: a futex wait. Use between event-loop turns in tight polls so the
 * poller does not take a whole CPU away from what it measures.
 */
export function blockFor(ms: number): void {
  Atomics.wait(sab, 0, 0, ms);
}

/** Yield to the event loop once (I/O callbacks run). */
export function nextTurn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
