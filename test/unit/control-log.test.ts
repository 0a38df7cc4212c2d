import test from 'ava';
import { createLogger, createTestSink, formatLogLine, levelFromVerbosity, isLogLevel, nullLogger } from '../../src/control/log.js';
import { ConfigError } from '../../src/control/config/errors.js';

const T0 = new Date('2026-08-20T10:00:00.000Z');

test('one JSON object per line: ts, level, msg first, then the fields', (t) => {
  const sink = createTestSink();
  const log = createLogger({ sink, now: () => T0 });
  log.warn('lease rejected', { lease: '10.244.3.0-24', reason: 'overlaps_peer' });
  t.deepEqual(sink.lines, ['{"ts":"2026-08-20T10:00:00.000Z","level":"warn","msg":"lease rejected","lease":"10.244.3.0-24","reason":"overlaps_peer"}']);
  t.deepEqual(sink.records(), [{ ts: '2026-08-20T10:00:00.000Z', level: 'warn', msg: 'lease rejected', lease: '10.244.3.0-24', reason: 'overlaps_peer' }]);
});

test('level filtering: default info drops debug; error level keeps only error', (t) => {
  const sink = createTestSink();
  const info = createLogger({ sink, now: () => T0 });
  info.debug('hidden');
  info.info('shown');
  t.deepEqual(sink.records().map((r) => r.msg), ['shown']);
  t.false(info.enabled('debug'));
  t.true(info.enabled('warn'));
  sink.clear();
  const err = createLogger({ sink, level: 'error', now: () => T0 });
  err.debug('a');
  err.info('b');
  err.warn('c');
  err.error('d');
  t.deepEqual(sink.records().map((r) => [r.level, r.msg]), [['error', 'd']]);
  sink.clear();
  const dbg = createLogger({ sink, level: 'debug', now: () => T0 });
  dbg.debug('x');
  t.is(sink.records()[0]?.level, 'debug');
  t.throws(() => createLogger({ sink, level: 'verbose' as 'debug' }), { instanceOf: RangeError });
});

test('child loggers add fields; per-call fields win; reserved keys are prefixed', (t) => {
  const sink = createTestSink();
  const log = createLogger({ sink, now: () => T0, fields: { node: 'n1' } }).child({ map: 'fbpf_peers' });
  log.info('upsert', { map: 'fbpf_sources', msg: 'shadow', level: 'x', ts: 'y', skip: undefined });
  const r = sink.records()[0];
  t.is(r?.node, 'n1');
  t.is(r?.map, 'fbpf_sources');
  t.is(r?.msg, 'upsert');
  t.is(r?.level, 'info');
  t.is(r?._msg, 'shadow');
  t.is(r?._level, 'x');
  t.is(r?._ts, 'y');
  t.false('skip' in (r ?? {}));
});

test('values: bigint, errors (with remedy), bytes, circular objects', (t) => {
  const sink = createTestSink();
  const log = createLogger({ sink, now: () => T0 });
  const e = new ConfigError({ origin: 'command line', field: '--max-peers', value: '0', problem: 'out of range', accepted: 'an integer 1..1048576' });
  const circular: Record<string, unknown> = { a: 1 };
  circular.self = circular;
  log.error('bad', { packets: 12345678901234567890n, err: e, mac: new Uint8Array([0x0e, 0x2a, 0, 1, 2, 3]), loop: circular, ok: 1 });
  const r = sink.records()[0];
  t.is(r?.packets, '12345678901234567890');
  t.deepEqual(r?.err, { name: 'ConfigError', message: e.message, remedy: e.remedy });
  t.is(r?.mac, '0e2a00010203');
  t.is(r?.loop, '[unserialisable]');
  t.is(r?.ok, 1);
  t.is(sink.lines.length, 1);
});

test('formatLogLine ends with exactly one newline and contains no other', (t) => {
  const line = formatLogLine(T0, 'info', 'multi\nline', { x: 'a\nb' });
  t.true(line.endsWith('\n'));
  t.is(line.indexOf('\n'), line.length - 1);
});

test('default sink is stderr-like: any object with write()', (t) => {
  const chunks: string[] = [];
  createLogger({ sink: { write: (s: string) => chunks.push(s) }, now: () => T0 }).info('hi');
  t.is(chunks.length, 1);
  t.regex(chunks[0] ?? '', /"msg":"hi"/);
  t.notThrows(() => nullLogger.error('dropped'));
});

test('levels helpers', (t) => {
  t.is(levelFromVerbosity(0), 'info');
  t.is(levelFromVerbosity(2), 'debug');
  t.true(isLogLevel('warn'));
  t.false(isLogLevel('fatal'));
});
