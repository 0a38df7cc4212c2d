/**
 * libbpf's print callback: libbpf reports through a printf-style callback
 * with a va_list. We format each message with libc vsnprintf and keep the
 * recent ones, so that a failed load can put the verifier log into the error.
 */
import { libbpf, LIBBPF_DEBUG, type Pointer } from './libbpf.js';

const VA_LIST_SIZE = 24; /* x86-64 / aarch64-compatible __va_list_tag copy (what va_copy does) */
const MAX_KEPT = 20000;  /* lines kept for the current capture */

let installed = false;
let capture: string[] | null = null;
let formatBuf = Buffer.alloc(4096);

export type LibbpfLogSink = (level: number, line: string) => void;
let sink: LibbpfLogSink | null = null;

/** Route libbpf WARN/INFO lines to a logger (the agent's structured log). */
export function setLibbpfLogSink(fn: LibbpfLogSink | null): void {
  sink = fn;
}

function format(fmt: Pointer, ap: Pointer): string {
  const lib = libbpf();
  const saved = Buffer.from(new Uint8Array(lib.view(ap, VA_LIST_SIZE)));
  let n = lib.vsnprintf(formatBuf, formatBuf.length, fmt, ap);
  if (n >= formatBuf.length) {
    formatBuf = Buffer.alloc(Math.max(n + 1, formatBuf.length * 2));
    n = lib.vsnprintf(formatBuf, formatBuf.length, fmt, saved);
  }
  return n > 0 ? formatBuf.toString('utf8', 0, n) : '';
}

/** Install the callback once per process. */
export function installLibbpfLog(): void {
  if (installed) return;
  const lib = libbpf();
  const cb = lib.register((level, fmt, ap) => {
    if (level >= LIBBPF_DEBUG && capture === null) return 0;
    const text = format(fmt, ap);
    if (capture !== null && capture.length < MAX_KEPT) capture.push(...text.split('\n'));
    if (sink && level < LIBBPF_DEBUG) {
      for (const line of text.split('\n')) if (line.trim()) sink(level, line);
    }
    return 0;
  });
  lib.libbpf_set_print(cb);
  installed = true;
}

/** Run fn while collecting every libbpf message (all levels); returns fn's result and the lines. */
export function withLibbpfLog<T>(fn: () => T): { result?: T; error?: unknown; lines: string[] } {
  installLibbpfLog();
  const previous = capture;
  capture = [];
  try {
    const result = fn();
    return { result, lines: capture };
  } catch (error) {
    return { error, lines: capture };
  } finally {
    const lines = capture;
    capture = previous;
    if (previous && lines) previous.push(...lines);
  }
}

/**
 * Pull the verifier's output for the failed program out of libbpf's messages:
 * the text between "-- BEGIN PROG LOAD LOG --" and "-- END PROG LOAD LOG --".
 */
export function extractVerifierLog(lines: string[]): { program: string; log: string[] } {
  let program = 'unknown program';
  let inLog = false;
  const log: string[] = [];
  for (const line of lines) {
    const m = /prog '([^']+)': BPF program load failed/.exec(line) ?? /prog '([^']+)': -- BEGIN PROG LOAD LOG --/.exec(line);
    if (m?.[1]) program = m[1];
    if (line.includes('-- BEGIN PROG LOAD LOG --')) { inLog = true; log.length = 0; continue; }
    if (line.includes('-- END PROG LOAD LOG --')) { inLog = false; continue; }
    if (inLog) log.push(line);
  }
  if (log.length === 0) {
    return { program, log: lines.filter((l) => /libbpf:/.test(l) || l.trim() !== '').slice(-10) };
  }
  return { program, log: log.filter((l) => l.trim() !== '') };
}
