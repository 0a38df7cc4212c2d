/**
 * A tiny structured logger: one JSON object per line.
 *
 *   {"ts":"2026-08-20T10:00:00.000Z","level":"warn","msg":"lease rejected","lease":"10.244.3.0-24","reason":"overlaps_peer"}
 *
 * `ts`, `level` and `msg` come first; the fields follow (the object
 * concerned: lease, node, map, peer, …). A field named like one of the
 * three reserved keys is written with a leading "_". Values: bigint → string,
 * Error → {name, message, remedy?}, Uint8Array → hex string; anything that
 * cannot be serialised → "[unserialisable]". Lines below the level are dropped
 * before any formatting.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Readonly<Record<string, unknown>>;

/** Anything with write(string): process.stderr, a stream, a test sink. */
export interface LogSink {
  write(line: string): unknown;
}

export interface Logger {
  readonly level: LogLevel;
  enabled(level: LogLevel): boolean;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  log(level: LogLevel, msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. {node: "n1"}). */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  /** Minimum level written (default info). */
  level?: LogLevel;
  /** Where lines go (default process.stderr). */
  sink?: LogSink;
  /** Clock (default () => new Date()). */
  now?: () => Date;
  /** Fields added to every line. */
  fields?: LogFields;
}

export function isLogLevel(s: unknown): s is LogLevel {
  return typeof s === 'string' && (LOG_LEVELS as readonly string[]).includes(s);
}

/** flanneld's -v: 0 → info, 1 and above → debug (klog levels 1..6 add detail that is debug here). */
export function levelFromVerbosity(v: number): LogLevel {
  return v >= 1 ? 'debug' : 'info';
}

const RESERVED = new Set(['ts', 'level', 'msg']);

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) {
    const out: Record<string, unknown> = { name: value.name, message: value.message };
    const remedy = (value as { remedy?: unknown }).remedy;
    if (typeof remedy === 'string') out.remedy = remedy;
    return out;
  }
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
  return value;
}

export function formatLogLine(ts: Date, level: LogLevel, msg: string, fields: LogFields): string {
  const record: Record<string, unknown> = { ts: ts.toISOString(), level, msg };
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    record[RESERVED.has(k) ? `_${k}` : k] = v;
  }
  try {
    return JSON.stringify(record, replacer) + '\n';
  } catch {
    const safe: Record<string, unknown> = { ts: record.ts, level, msg };
    for (const [k, v] of Object.entries(record)) {
      if (RESERVED.has(k)) continue;
      try {
        JSON.stringify(v, replacer);
        safe[k] = v;
      } catch {
        safe[k] = '[unserialisable]';
      }
    }
    return JSON.stringify(safe, replacer) + '\n';
  }
}

class JsonLogger implements Logger {
  constructor(
    readonly level: LogLevel,
    private readonly sink: LogSink,
    private readonly now: () => Date,
    private readonly fields: LogFields,
  ) {}

  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[this.level];
  }

  log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (!this.enabled(level)) return;
    this.sink.write(formatLogLine(this.now(), level, msg, fields ? { ...this.fields, ...fields } : this.fields));
  }

  debug(msg: string, fields?: LogFields): void { this.log('debug', msg, fields); }
  info(msg: string, fields?: LogFields): void { this.log('info', msg, fields); }
  warn(msg: string, fields?: LogFields): void { this.log('warn', msg, fields); }
  error(msg: string, fields?: LogFields): void { this.log('error', msg, fields); }

  child(fields: LogFields): Logger {
    return new JsonLogger(this.level, this.sink, this.now, { ...this.fields, ...fields });
  }
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info';
  if (!isLogLevel(level)) throw new RangeError(`unknown log level ${JSON.stringify(level)} (accepted: ${LOG_LEVELS.join(', ')})`);
  return new JsonLogger(level, opts.sink ?? process.stderr, opts.now ?? (() => new Date()), opts.fields ?? {});
}

/** A record as read back by a test sink. */
export interface LogRecord {
  ts: string;
  level: LogLevel;
  msg: string;
  [field: string]: unknown;
}

export interface TestSink extends LogSink {
  /** Raw lines written, without the trailing newline. */
  readonly lines: string[];
  /** Lines parsed back into objects. */
  records(): LogRecord[];
  clear(): void;
}

/** A sink that keeps lines in memory, for tests. */
export function createTestSink(): TestSink {
  const lines: string[] = [];
  return {
    lines,
    write(line: string): boolean {
      for (const l of line.split('\n')) if (l !== '') lines.push(l);
      return true;
    },
    records(): LogRecord[] {
      return lines.map((l) => JSON.parse(l) as LogRecord);
    },
    clear(): void {
      lines.length = 0;
    },
  };
}

/** A logger that drops everything. */
export const nullLogger: Logger = createLogger({ level: 'error', sink: { write: () => true } }).child({});
