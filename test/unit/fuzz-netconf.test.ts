/**
 * Property-based fuzzing of net-conf.json (parseNetConf + checkNetworkConfig).
 *
 * Properties:
 *  - never a crash: garbage text, random JSON and random documents made of
 *    our keys (any case) with values of any type either parse or throw a
 *    ConfigError naming one of the documented fields;
 *  - valid documents (keys in any ASCII case and order, unknown keys, host
 *    bits in Network, nulls) parse to exactly the configuration they
 *    describe, and re-serialising that configuration parses back to it;
 *  - every structured fault of a valid document (a dropped, retyped or
 *    out-of-range field, a bad CIDR or address, an unknown backend, a bad
 *    value given twice in different case) is rejected naming that field;
 *  - checkNetworkConfig agrees with flannel's CheckNetworkConfig rules
 *    (flannel-compat.md §1), written again here.
 *
 * Seed: random per run and printed on failure by fast-check (the properties
 * assert with node:assert, so fast-check sees the failure, shrinks it and
 * reports seed, path and counterexample); FC_SEED=<n> replays a run.
 */
import test from 'ava';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { check, RUNS } from '../helpers/fuzz.js';
import { parseNetConf, checkNetworkConfig, type NetConf, type BackendConfig } from '../../src/control/config/net-conf.js';
import { ConfigError } from '../../src/control/config/errors.js';
import { formatIPv4, prefixMask, parseIPv4 } from '../../src/maps/addr.js';


const PARSE_FIELDS = new Set([
  '(document)', 'EnableIPv4', 'EnableIPv6', 'EnableNFTables', 'Network', 'SubnetLen', 'SubnetMin', 'SubnetMax',
  'Backend', 'Backend.Type', 'Backend.VNI', 'Backend.Port', 'Backend.MTU', 'Backend.GBP', 'Backend.Learning', 'Backend.DirectRouting',
]);
const CHECK_FIELDS = new Set(['Network', 'SubnetLen', 'SubnetMin', 'SubnetMax']);

type Result<T> = { ok: true; value: T } | { ok: false; error: ConfigError };

/** Run fn; anything thrown other than a well-formed ConfigError from `fields` fails the property. */
function typed<T>(fields: Set<string>, fn: () => T): Result<T> {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw new Error(`not a ConfigError: ${String(err)}`, { cause: err });
    if (err.origin !== 'net-conf') throw new Error(`origin ${err.origin}`);
    if (!fields.has(err.field)) throw new Error(`field ${JSON.stringify(err.field)} is not a documented field`);
    if (!err.message.includes(err.field)) throw new Error(`message does not name the field: ${err.message}`);
    if (!err.accepted || !err.problem || !err.remedy) throw new Error('empty problem / accepted / remedy');
    return { ok: false, error: err };
  }
}

/* ------------------------------------------------------------ documents */

/** An object written as ordered key/value pairs, so keys may repeat (JSON text allows it). */
class Obj {
  constructor(readonly pairs: Array<[string, unknown]>) {}
}

function toText(v: unknown): string {
  if (v instanceof Obj) return `{${v.pairs.map(([k, x]) => `${JSON.stringify(k)}:${toText(x)}`).join(',')}}`;
  if (Array.isArray(v)) return `[${v.map(toText).join(',')}]`;
  return JSON.stringify(v) ?? 'null';
}

/** A key in random ASCII case: the same key to Go's encoding/json. */
const anyCase = (key: string): fc.Arbitrary<string> => fc.mixedCase(fc.constant(key));

const TOP_KEYS = ['Network', 'EnableIPv4', 'EnableIPv6', 'EnableNFTables', 'IPv6Network', 'SubnetMin', 'SubnetMax',
  'IPv6SubnetMin', 'IPv6SubnetMax', 'SubnetLen', 'IPv6SubnetLen', 'Backend'];
const BACKEND_KEYS = ['Type', 'VNI', 'Port', 'GBP', 'Learning', 'DirectRouting', 'MTU', 'MacPrefix', 'Name'];
/** A key that none of ours matches, case-insensitively. */
const unknownKey = fc.string({ minLength: 1, maxLength: 12 })
  .filter((k) => ![...TOP_KEYS, ...BACKEND_KEYS].some((x) => x.toLowerCase() === k.toLowerCase()));

/** Anything JSON, and the awkward scalars. */
const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, true, false, 0, -1, 1.5, 1e300, '', '1', 'true', [], {}),
);

interface BackendModel {
  type: 'vxlan' | 'host-gw' | 'udp';
  typeText: string;
  vni?: number | null;
  port?: number | null;
  mtu?: number | null;
  gbp?: boolean | null;
  learning?: boolean | null;
  directRouting?: boolean | null;
}

interface DocModel {
  addr: number;
  prefix: number;
  /** Bits ORed into the address (Go's ParseCIDR masks them; we warn). */
  hostBits: number;
  enableIPv4?: true | null;
  enableIPv6?: false | null;
  enableNFTables?: boolean | null;
  subnetLen?: number | null;
  subnetMin?: string;
  subnetMax?: string;
  backend?: BackendModel;
  unknown: Array<[string, unknown]>;
}

const optional = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined, freq: 3 });

const backendArb: fc.Arbitrary<BackendModel> = fc.oneof(
  fc.record({
    type: fc.constant('vxlan' as const),
    typeText: fc.mixedCase(fc.constant('vxlan')),
    vni: optional(fc.oneof(fc.integer({ min: 1, max: 0xffffff }), fc.constant(null))),
    port: optional(fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.constant(null))),
    mtu: optional(fc.oneof(fc.integer({ min: 68, max: 65535 }), fc.constant(null))),
    gbp: optional(fc.oneof(fc.boolean(), fc.constant(null))),
    learning: optional(fc.oneof(fc.boolean(), fc.constant(null))),
    directRouting: optional(fc.oneof(fc.boolean(), fc.constant(null))),
  }, { requiredKeys: ['type', 'typeText'] }),
  fc.record({ type: fc.constant('host-gw' as const), typeText: fc.mixedCase(fc.constant('host-gw')) }),
  fc.record({
    type: fc.constant('udp' as const), typeText: fc.mixedCase(fc.constant('udp')),
    port: optional(fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.constant(null))),
  }, { requiredKeys: ['type', 'typeText'] }),
);

const ipText = fc.integer({ min: 0, max: 0xffffffff }).map(formatIPv4);

const docArb: fc.Arbitrary<DocModel> = fc.record({
  addr: fc.integer({ min: 0, max: 0xffffffff }),
  prefix: fc.integer({ min: 1, max: 32 }),
  hostBits: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffffffff })),
  enableIPv4: optional(fc.constantFrom(true as const, null)),
  enableIPv6: optional(fc.constantFrom(false as const, null)),
  enableNFTables: optional(fc.oneof(fc.boolean(), fc.constant(null))),
  subnetLen: optional(fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constant(null))),
  subnetMin: optional(fc.oneof(ipText, fc.constant('0.0.0.0'))),
  subnetMax: optional(fc.oneof(ipText, fc.constant('0.0.0.0'))),
  backend: optional(backendArb),
  unknown: fc.array(fc.tuple(unknownKey, anyJson), { maxLength: 2 }),
}, { requiredKeys: ['addr', 'prefix', 'hostBits', 'unknown'] });

/** Network and the subnet bounds drawn inside it (aligned or not), so checkNetworkConfig's rules all get exercised. */
const docInNetworkArb: fc.Arbitrary<DocModel> = docArb.chain((d) => {
  const net = (d.addr & prefixMask(d.prefix)) >>> 0;
  const size = 2 ** (32 - d.prefix);
  const inside = fc.integer({ min: 0, max: size - 1 }).map((o) => formatIPv4((net + o) >>> 0));
  const aligned = fc.integer({ min: 0, max: 32 }).chain((len) => fc.integer({ min: 0, max: size - 1 })
    .map((o) => formatIPv4(((net + o) & prefixMask(Math.max(len, d.prefix))) >>> 0)));
  const bound = optional(fc.oneof(inside, aligned, aligned, ipText));
  return fc.record({ subnetMin: bound, subnetMax: bound, subnetLen: optional(fc.integer({ min: 0, max: 33 })) })
    .map((b) => ({ ...d, ...b }));
});

/** Network as written: the model's network with its host bits set. */
function networkText(d: DocModel): string {
  const mask = prefixMask(d.prefix);
  return `${formatIPv4(((d.addr & mask) | (d.hostBits & ~mask)) >>> 0)}/${d.prefix}`;
}

/** Pairs of a backend model, keys in random case (chosen by `cases`). */
function backendPairs(b: BackendModel, key: (k: string) => string): Obj {
  const pairs: Array<[string, unknown]> = [[key('Type'), b.typeText]];
  if (b.vni !== undefined) pairs.push([key('VNI'), b.vni]);
  if (b.port !== undefined) pairs.push([key('Port'), b.port]);
  if (b.mtu !== undefined) pairs.push([key('MTU'), b.mtu]);
  if (b.gbp !== undefined) pairs.push([key('GBP'), b.gbp]);
  if (b.learning !== undefined) pairs.push([key('Learning'), b.learning]);
  if (b.directRouting !== undefined) pairs.push([key('DirectRouting'), b.directRouting]);
  return new Obj(pairs);
}

/** The document of a model, with every key's case picked by `flip` and the pairs in `order`. */
function docOf(d: DocModel, flip: (k: string) => string, order: number[]): Obj {
  const pairs: Array<[string, unknown]> = [[flip('Network'), networkText(d)]];
  if (d.enableIPv4 !== undefined) pairs.push([flip('EnableIPv4'), d.enableIPv4]);
  if (d.enableIPv6 !== undefined) pairs.push([flip('EnableIPv6'), d.enableIPv6]);
  if (d.enableNFTables !== undefined) pairs.push([flip('EnableNFTables'), d.enableNFTables]);
  if (d.subnetLen !== undefined) pairs.push([flip('SubnetLen'), d.subnetLen]);
  if (d.subnetMin !== undefined) pairs.push([flip('SubnetMin'), d.subnetMin]);
  if (d.subnetMax !== undefined) pairs.push([flip('SubnetMax'), d.subnetMax]);
  if (d.backend) pairs.push([flip('Backend'), backendPairs(d.backend, flip)]);
  pairs.push(...d.unknown);
  const ordered = order.length === pairs.length ? order.map((i) => pairs[i]!) : pairs;
  return new Obj(ordered);
}

/** A case-flipper from a stream of booleans (deterministic per key). */
function flipper(bits: number): (k: string) => string {
  return (k) => [...k].map((ch, i) => ((bits >>> ((i + k.length) % 31)) & 1 ? ch.toUpperCase() : ch.toLowerCase())).join('');
}

const orderArb = (n: number): fc.Arbitrary<number[]> => fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n });

/** A valid document with its model, key cases and order. */
const validDocArb = (src: fc.Arbitrary<DocModel> = docArb): fc.Arbitrary<{ model: DocModel; doc: Obj }> =>
  fc.tuple(src, fc.integer({ min: 0, max: 0x7fffffff })).chain(([model, bits]) => {
    const n = 1 + [model.enableIPv4, model.enableIPv6, model.enableNFTables, model.subnetLen, model.subnetMin, model.subnetMax, model.backend]
      .filter((x) => x !== undefined).length + model.unknown.length;
    return orderArb(n).map((order) => ({ model, doc: docOf(model, bits === 0 ? (k) => k : flipper(bits), order) }));
  });

/** What the model's document must parse to (flannel-compat.md §1 and net-conf.ts's documented defaults). */
function expected(d: DocModel): Omit<NetConf, 'warnings'> {
  const b = d.backend;
  let backend: BackendConfig;
  if (!b) backend = { type: 'udp', port: 8285 };
  else if (b.type === 'vxlan') {
    const port = b.port ?? 0;
    backend = {
      type: 'vxlan', vni: b.vni ?? 1, port: port === 0 ? 8472 : port, gbp: b.gbp ?? false, learning: b.learning ?? false,
      directRouting: b.directRouting ?? false, mtu: b.mtu ?? null,
    };
  } else if (b.type === 'udp') backend = { type: 'udp', port: b.port ?? 8285 };
  else backend = { type: 'host-gw' };
  const ip = (s: string | undefined): number | null => (s === undefined || s === '0.0.0.0' ? null : parseIPv4(s));
  return {
    network: { addr: (d.addr & prefixMask(d.prefix)) >>> 0, prefix: d.prefix },
    enableIPv4: true,
    enableIPv6: false,
    enableNFTables: d.enableNFTables ?? false,
    subnetLen: d.subnetLen ? d.subnetLen : null,
    subnetMin: ip(d.subnetMin),
    subnetMax: ip(d.subnetMax),
    backend,
    backendDefaulted: !b,
  };
}

const withoutWarnings = ({ warnings: _w, ...rest }: NetConf): Omit<NetConf, 'warnings'> => rest;

/** A parsed configuration written back as a canonical net-conf.json. */
function serialise(c: NetConf): string {
  const o: Record<string, unknown> = { Network: `${formatIPv4(c.network.addr)}/${c.network.prefix}`, EnableNFTables: c.enableNFTables };
  if (c.subnetLen !== null) o.SubnetLen = c.subnetLen;
  if (c.subnetMin !== null) o.SubnetMin = formatIPv4(c.subnetMin);
  if (c.subnetMax !== null) o.SubnetMax = formatIPv4(c.subnetMax);
  const b = c.backend;
  if (!c.backendDefaulted) {
    o.Backend = b.type === 'vxlan'
      ? { Type: 'vxlan', VNI: b.vni, Port: b.port, GBP: b.gbp, Learning: b.learning, DirectRouting: b.directRouting, ...(b.mtu === null ? {} : { MTU: b.mtu }) }
      : b.type === 'udp' ? { Type: 'udp', Port: b.port } : { Type: 'host-gw' };
  }
  return JSON.stringify(o);
}

/* ------------------------------------------ flannel's CheckNetworkConfig */

type CheckResult = { field: string } | { subnetLen: number; subnetMin: number; subnetMax: number };

/** flannel-compat.md §1 "Validation and defaulting (etcd mode only)", IPv4 rules, in Go's uint32 arithmetic. */
function flannelCheck(c: NetConf): CheckResult {
  const ones = c.network.prefix;
  let len: number;
  if (c.subnetLen !== null && c.subnetLen > 0) {
    if (c.subnetLen > 30) return { field: 'SubnetLen' };
    if (c.subnetLen < ones + 2) return { field: 'SubnetLen' };
    len = c.subnetLen;
  } else if (ones > 28) {
    return { field: 'Network' };
  } else {
    len = ones <= 22 ? 24 : ones + 2;
  }
  const size = 2 ** (32 - len);
  const contains = (ip: number): boolean => Math.floor(ip / 2 ** (32 - ones)) === Math.floor(c.network.addr / 2 ** (32 - ones));
  let min: number;
  if (c.subnetMin === null) min = (c.network.addr + size) % 2 ** 32;
  else if (!contains(c.subnetMin)) return { field: 'SubnetMin' };
  else min = c.subnetMin;
  let max: number;
  if (c.subnetMax === null) max = (((c.network.addr + 2 ** (32 - ones)) % 2 ** 32) - size + 2 ** 32) % 2 ** 32;
  else if (!contains(c.subnetMax)) return { field: 'SubnetMax' };
  else max = c.subnetMax;
  if (min % size !== 0) return { field: 'SubnetMin' };
  if (max % size !== 0) return { field: 'SubnetMax' };
  return { subnetLen: len, subnetMin: min, subnetMax: max };
}

/* ----------------------------------------------------------- properties */

test('garbage text: parses or throws a ConfigError naming a documented field, never anything else', (t) => {
  check(t, fc.property(fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.json({ maxDepth: 3 }),
    fc.json({ maxDepth: 3 }).map((s) => s.slice(0, Math.max(0, s.length - 1))),
    fc.constantFrom('', '{', 'null', '[]', '"x"', '{"Network":"10.0.0.0/8"', '\u0000', '{"__proto__":{"Network":1}}'),
  ), (text) => {
    const r = typed(PARSE_FIELDS, () => parseNetConf(text));
    if (!r.ok && r.error.field === '(document)') return;
    if (r.ok) typed(CHECK_FIELDS, () => checkNetworkConfig(r.value));
  }));
});

test('random documents of our keys (any case) with values of any type: typed errors only, each naming its field', (t) => {
  const backendObj = fc.array(fc.tuple(fc.oneof(fc.constantFrom(...BACKEND_KEYS).chain(anyCase), unknownKey),
    fc.oneof(anyJson, fc.mixedCase(fc.constantFrom('vxlan', 'host-gw', 'udp')))), { maxLength: 6 }).map((p) => new Obj(p));
  const value = (key: string): fc.Arbitrary<unknown> => (key === 'Backend'
    ? fc.oneof(backendObj, backendObj, anyJson)
    : key === 'Network' ? fc.oneof(fc.tuple(ipText, fc.integer({ min: -1, max: 40 })).map(([a, p]) => `${a}/${p}`), anyJson)
      : key.startsWith('Subnet') && key !== 'SubnetLen' ? fc.oneof(ipText, anyJson) : anyJson);
  const pair = fc.constantFrom(...TOP_KEYS).chain((k) => fc.tuple(anyCase(k), value(k)));
  check(t, fc.property(fc.array(fc.oneof(pair, pair, pair, fc.tuple(unknownKey, anyJson)), { maxLength: 8 }), fc.boolean(), (pairs, asText) => {
    const doc = new Obj(pairs);
    const r = typed(PARSE_FIELDS, () => (asText ? parseNetConf(toText(doc)) : parseNetConf(JSON.parse(toText(doc)) as never)));
    if (r.ok) {
      assert.ok(r.value.network.prefix >= 1 && r.value.network.prefix <= 32);
      typed(CHECK_FIELDS, () => checkNetworkConfig(r.value));
    }
  }));
});

test('valid documents (keys in any case and order, nulls, unknown keys, host bits) parse to what they say and round-trip', (t) => {
  check(t, fc.property(validDocArb(), fc.constantFrom<'kube' | 'etcd' | undefined>(undefined, 'kube', 'etcd'), ({ model, doc }, mode) => {
    const text = toText(doc);
    const c = parseNetConf(text, mode ? { mode } : {});
    assert.deepEqual(withoutWarnings(c), expected(model), text);
    for (const [k] of model.unknown) assert.ok(c.warnings.some((w) => w.includes(`"${k}"`)), `warning for unknown key ${k}`);
    if ((model.hostBits & ~prefixMask(model.prefix)) !== 0) assert.ok(c.warnings.some((w) => w.includes('host bits')), 'host bits warned about');
    /* The same document as a decoded value, and the parsed configuration written back, parse the same. */
    assert.deepEqual(withoutWarnings(parseNetConf(JSON.parse(text) as never)), withoutWarnings(c));
    assert.deepEqual(withoutWarnings(parseNetConf(serialise(c))), withoutWarnings(c), serialise(c));
  }));
});

test('checkNetworkConfig agrees with flannel\'s CheckNetworkConfig rules, errors naming the field', (t) => {
  check(t, fc.property(validDocArb(docInNetworkArb), ({ doc }) => {
    const conf = parseNetConf(toText(doc));
    const want = flannelCheck(conf);
    const r = typed(CHECK_FIELDS, () => checkNetworkConfig(conf));
    if ('field' in want) {
      assert.ok(!r.ok, `expected an error on ${want.field}`);
      if (!r.ok) assert.equal(r.error.field, want.field);
      return;
    }
    if (!r.ok) assert.fail(`unexpected ${r.error.message}`);
    assert.deepEqual({ subnetLen: r.value.subnetLen, subnetMin: r.value.subnetMin, subnetMax: r.value.subnetMax }, want);
    assert.equal(r.value.network, conf.network);
    /* Idempotent: checking the checked configuration changes nothing. */
    const again = checkNetworkConfig(r.value);
    assert.deepEqual([again.subnetLen, again.subnetMin, again.subnetMax], [want.subnetLen, want.subnetMin, want.subnetMax]);
  }));
});

/* ----------------------------------------------------------- mutations */

interface Mutation { field: string; apply: (doc: Obj) => Obj | null; value?: unknown }

const nonBool = anyJson.filter((v) => typeof v !== 'boolean' && v !== null);
const nonNumber = anyJson.filter((v) => typeof v !== 'number' && v !== null);
const nonString = anyJson.filter((v) => typeof v !== 'string');
const nonObject = anyJson.filter((v) => v !== null && (typeof v !== 'object' || Array.isArray(v)));
const badIPv4 = fc.oneof(
  fc.constantFrom('1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4 ', ' 1.2.3.4', '1.2.3.-4', '::1', '::ffff:1.2.3.4', 'localhost', ''),
  fc.string({ maxLength: 15 }).filter((s) => !/^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(s)),
);
const badCidr = fc.oneof(
  fc.constantFrom('10.0.0.0', '10.0.0.0/33', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/0', '0.0.0.0/0', '10.0.0.256/8', '010.0.0.0/8', '10.0.0.0/8/8', '10.0.0.0/100', 'fd00::/64', ''),
  fc.string({ maxLength: 20 }).filter((s) => !/^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\/\d{1,2}$/.test(s)),
);
const outside = (lo: number, hi: number): fc.Arbitrary<number> => fc.oneof(
  fc.integer({ min: -1e9, max: lo - 1 }), fc.integer({ min: hi + 1, max: 1e12 }), fc.constantFrom(lo - 1, hi + 1),
);
const nonInteger = fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Number.isInteger(x)), fc.constantFrom(1.5, 1e300, -0.5));

/** Where a key lives: top level, or inside Backend. */
function setKey(doc: Obj, path: string[], value: unknown, how: 'replace' | 'append' | 'prepend' | 'delete'): Obj | null {
  const [head, ...rest] = path;
  const idx = doc.pairs.findIndex(([k]) => k.toLowerCase() === head!.toLowerCase());
  if (rest.length) {
    if (idx < 0) return null;
    const inner = doc.pairs[idx]![1];
    if (!(inner instanceof Obj)) return null;
    const sub = setKey(inner, rest, value, how);
    if (!sub) return null;
    const pairs = [...doc.pairs];
    pairs[idx] = [doc.pairs[idx]![0], sub];
    return new Obj(pairs);
  }
  const pairs = doc.pairs.filter(([k]) => k.toLowerCase() !== head!.toLowerCase() || how === 'append' || how === 'prepend');
  if (how === 'delete') return idx < 0 ? null : new Obj(pairs);
  const key = idx >= 0 ? doc.pairs[idx]![0] : head!;
  const variant = key === key.toUpperCase() ? key.toLowerCase() : key.toUpperCase();
  if (how === 'append') pairs.push([variant, value]);
  else if (how === 'prepend') pairs.unshift([variant, value]);
  else pairs.push([key, value]);
  return new Obj(pairs);
}

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.constant<Mutation>({ field: 'Network', apply: (d) => setKey(d, ['Network'], undefined, 'delete') }),
  nonString.map((v): Mutation => ({ field: 'Network', value: v, apply: (d) => setKey(d, ['Network'], v, 'replace') })),
  badCidr.map((v): Mutation => ({ field: 'Network', value: v, apply: (d) => setKey(d, ['Network'], v, 'replace') })),
  fc.constantFrom('append', 'replace').map((how): Mutation => ({ field: 'EnableIPv4', value: false, apply: (d) => setKey(d, ['EnableIPv4'], false, how as 'append') })),
  nonBool.map((v): Mutation => ({ field: 'EnableIPv4', value: v, apply: (d) => setKey(d, ['EnableIPv4'], v, 'replace') })),
  fc.constant<Mutation>({ field: 'EnableIPv6', value: true, apply: (d) => setKey(d, ['EnableIPv6'], true, 'append') }),
  nonBool.map((v): Mutation => ({ field: 'EnableIPv6', value: v, apply: (d) => setKey(d, ['EnableIPv6'], v, 'replace') })),
  nonBool.map((v): Mutation => ({ field: 'EnableNFTables', value: v, apply: (d) => setKey(d, ['EnableNFTables'], v, 'append') })),
  fc.oneof(fc.integer({ min: -1e6, max: -1 }), nonInteger, nonNumber)
    .map((v): Mutation => ({ field: 'SubnetLen', value: v, apply: (d) => setKey(d, ['SubnetLen'], v, 'replace') })),
  fc.tuple(fc.constantFrom('SubnetMin', 'SubnetMax'), fc.oneof(badIPv4, nonString))
    .map(([k, v]): Mutation => ({ field: k, value: v, apply: (d) => setKey(d, [k], v, 'replace') })),
  nonObject.filter((v) => v !== null).map((v): Mutation => ({ field: 'Backend', value: v, apply: (d) => setKey(d, ['Backend'], v, 'replace') })),
  fc.constant<Mutation>({ field: 'Backend.Type', apply: (d) => setKey(d, ['Backend'], null, 'replace') }),
  fc.constant<Mutation>({ field: 'Backend.Type', apply: (d) => setKey(d, ['Backend', 'Type'], undefined, 'delete') }),
  fc.oneof(nonString, fc.constant(''), fc.string({ maxLength: 12 }).filter((s) => !['vxlan', 'host-gw', 'udp', ''].includes(s.toLowerCase())),
    fc.constantFrom('wireguard', 'IPIP', 'ipsec', 'alloc', 'extension', 'tencent-vpc', 'vxlan ', 'host_gw', 'hostgw'))
    .map((v): Mutation => ({ field: 'Backend.Type', apply: (d) => setKey(d, ['Backend', 'Type'], v, 'replace') })),
);

/** Faults that only a backend of one type can have. */
function backendMutations(type: BackendModel['type']): fc.Arbitrary<Mutation> {
  const field = (k: string, v: unknown, how: 'replace' | 'append' = 'replace'): Mutation =>
    ({ field: `Backend.${k}`, value: v, apply: (d) => setKey(d, ['Backend', k], v, how) });
  if (type === 'vxlan') {
    return fc.oneof(
      fc.oneof(outside(1, 0xffffff), nonInteger, nonNumber).map((v) => field('VNI', v)),
      fc.oneof(outside(0, 65535), nonInteger, nonNumber).map((v) => field('Port', v, 'append')),
      fc.oneof(outside(68, 65535), nonInteger, nonNumber).map((v) => field('MTU', v)),
      fc.tuple(fc.constantFrom('GBP', 'Learning', 'DirectRouting'), nonBool).map(([k, v]) => field(k, v)),
    );
  }
  if (type === 'udp') return fc.oneof(outside(1, 65535), nonInteger, nonNumber).map((v) => field('Port', v));
  return mutationArb;
}

test('every structured fault of a valid document is rejected, naming the field', (t) => {
  const arb = validDocArb().chain(({ model, doc }) => fc.tuple(fc.constant(model), fc.constant(doc),
    model.backend ? fc.oneof(mutationArb, backendMutations(model.backend.type)) : mutationArb));
  let applied = 0;
  check(t, fc.property(arb, ([, doc, m]) => {
    const bad = m.apply(doc);
    fc.pre(bad !== null);
    applied++;
    const text = toText(bad);
    const r = typed(PARSE_FIELDS, () => parseNetConf(text));
    assert.ok(!r.ok, `accepted: ${text}`);
    if (r.ok) return;
    assert.equal(r.error.field, m.field, text);
    if (m.value !== undefined) assert.deepEqual(r.error.value, JSON.parse(toText(m.value)), `the error carries the bad value: ${text}`);
  }), { maxSkipsPerRun: 100 });
  t.log(`${applied} faults applied`);
});

test('a field given twice in different case: the last one wins (Go), a bad first one is overridden', (t) => {
  check(t, fc.property(validDocArb(), fc.constantFrom('Network', 'SubnetLen', 'Backend'), ({ model, doc }, key) => {
    const good = doc.pairs.find(([k]) => k.toLowerCase() === key.toLowerCase());
    fc.pre(good !== undefined);
    const bad = key === 'Network' ? '10.0.0.0/0' : key === 'SubnetLen' ? -1 : 'not an object';
    const c = parseNetConf(toText(setKey(doc, [key], bad, 'prepend')!));
    assert.deepEqual(withoutWarnings(c), expected(model));
    const e = typed(PARSE_FIELDS, () => parseNetConf(toText(setKey(doc, [key], bad, 'append')!)));
    assert.ok(!e.ok);
    if (!e.ok) assert.equal(e.error.field, key);
  }), { numRuns: Math.ceil(RUNS / 4) });
});

/*
 * Go's encoding/json matches keys with Unicode simple case folding: "ſ"
 * (U+017F, long s) folds to "s" and "K" (U+212A, Kelvin) to "k", so flanneld
 * reads {"ſubnetLen": 20} as SubnetLen; gojson.ts folds keys the same way.
 */
test('Go case folding: "ſubnetLen" and "EnableNFTableſ" are SubnetLen and EnableNFTables to flanneld', (t) => {
  const c = parseNetConf('{"Network":"10.0.0.0/8","\u017fubnetLen":20,"EnableNFTable\u017f":true,"Backend":{"Type":"vxlan"}}');
  t.is(c.subnetLen, 20);
  t.true(c.enableNFTables);
});
