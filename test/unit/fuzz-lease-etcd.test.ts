/**
 * Property-based fuzzing of flannel's etcd lease records (parseEtcdSubnetKey,
 * parseEtcdLease, etcdLeaseValue).
 *
 * Properties:
 *  - never a crash: any key and any value (text, bytes, JSON of any shape)
 *    give a lease or a rejection whose reason is one of the documented
 *    codes, naming the lease; subnet keys give a subnet or a problem string;
 *  - both agree with a model of the record format written from
 *    flannel-compat.md §3 (keys: dotted quad, prefix 1..32, host bits zero,
 *    optional "&<v6>-<len>"; values: Go's case-insensitive keys, last one
 *    wins, PublicIP a dotted quad, empty BackendType = udp, vxlan
 *    BackendData with a uint32 VNI and a unicast VtepMAC);
 *  - round trips: our own values parse back to the lease they came from,
 *    and flannel-format values (written here from the documented layout)
 *    re-serialise byte for byte;
 *  - structured faults of valid records (dropped, retyped, duplicated,
 *    case-varied fields, bad addresses, truncation, byte flips) get the
 *    model's verdict.
 *
 * Seed: random per run and printed on failure by fast-check; FC_SEED=<n>
 * replays a run.
 */
import test from 'ava';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { check, RUNS } from '../helpers/fuzz.js';
import { parseEtcdSubnetKey, parseEtcdLease, etcdLeaseValue, etcdValueOfLease, etcdSubnetKey, type EtcdSubnetKey } from '../../src/control/lease/etcd.js';
import { REJECT_REASONS, type Lease, type RejectReason } from '../../src/control/lease/types.js';
import type { OwnLeaseAttrs } from '../../src/control/lease/backend-data.js';
import { formatIPv4, prefixMask } from '../../src/maps/addr.js';


/** The reasons parseEtcdLease may give (a store record, before any cross-lease validation). */
const RECORD_REASONS = new Set<RejectReason>(['bad_subnet', 'malformed_json', 'bad_public_ip', 'bad_vtep_mac']);

/* --------------------------------------------------------------- model */

/** A dotted quad as flannel-bpf accepts it: four decimal octets ≤ 255, no leading zeros. */
function quad(s: string): number | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (p.length < 1 || p.length > 3 || [...p].some((c) => c < '0' || c > '9')) return null;
    if (p.length > 1 && p[0] === '0') return null;
    if (Number(p) > 255) return null;
    n = n * 256 + Number(p);
  }
  return n;
}

const digits = (s: string, min: number, max: number): boolean =>
  s.length >= min && s.length <= max && [...s].every((c) => c >= '0' && c <= '9');

/** flannel-compat.md §3 key layout, stricter as documented in etcd.ts: null when not a subnet key. */
function keyModel(path: string): { key: string; addr: number; prefix: number; ipv6?: string } | null {
  const key = path.slice(path.lastIndexOf('/') + 1);
  const amp = key.indexOf('&');
  const v4 = amp < 0 ? key : key.slice(0, amp);
  const v6 = amp < 0 ? undefined : key.slice(amp + 1);
  const dash = v4.indexOf('-');
  if (dash < 0) return null;
  const addr = quad(v4.slice(0, dash));
  const plen = v4.slice(dash + 1);
  if (addr === null || !digits(plen, 1, 2)) return null;
  const prefix = Number(plen);
  if (prefix < 1 || prefix > 32 || ((addr & prefixMask(prefix)) >>> 0) !== addr) return null;
  if (v6 !== undefined) {
    const d6 = v6.lastIndexOf('-');
    if (d6 < 1 || !digits(v6.slice(d6 + 1), 1, 3) || ![...v6.slice(0, d6)].every((c) => /[0-9a-f:]/.test(c))) return null;
    return { key, addr, prefix, ipv6: v6 };
  }
  return { key, addr, prefix };
}

/** Go's encoding/json field lookup: the last key equal to `name` under ASCII case folding. */
function goGet(o: Record<string, unknown>, name: string): unknown {
  let v: unknown;
  for (const [k, x] of Object.entries(o)) if (k.length === name.length && k.toLowerCase() === name.toLowerCase()) v = x;
  return v;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A unicast, non-zero MAC in six colon-separated hex bytes → lower case; else null. */
function macModel(v: unknown): string | null {
  if (typeof v !== 'string' || !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(v)) return null;
  const b = v.toLowerCase();
  if (parseInt(b.slice(0, 2), 16) & 1 || b === '00:00:00:00:00:00') return null;
  return b;
}

type Verdict = { reason: RejectReason } | { lease: Lease };

/** What parseEtcdLease must answer (flannel-compat.md §3, lease.LeaseAttrs). */
function leaseModel(path: string, value: string): Verdict {
  const k = keyModel(path);
  if (!k) return { reason: 'bad_subnet' };
  let doc: unknown;
  try {
    doc = JSON.parse(value);
  } catch {
    return { reason: 'malformed_json' };
  }
  if (!isObject(doc)) return { reason: 'malformed_json' };
  const ip = goGet(doc, 'PublicIP');
  const publicIp = typeof ip === 'string' ? quad(ip) : null;
  if (publicIp === null) return { reason: 'bad_public_ip' };
  const bt = goGet(doc, 'BackendType');
  if (bt !== undefined && bt !== null && typeof bt !== 'string') return { reason: 'malformed_json' };
  const backendType = !bt ? 'udp' : bt;
  const lease: Lease = { key: k.key, subnet: { addr: k.addr, prefix: k.prefix }, publicIp, backendType };
  if (backendType === 'vxlan') {
    const data = goGet(doc, 'BackendData');
    if (!isObject(data)) return { reason: 'malformed_json' };
    const vni = goGet(data, 'VNI');
    if (vni !== undefined && vni !== null && !(typeof vni === 'number' && Number.isInteger(vni) && vni >= 0 && vni <= 0xffffffff)) {
      return { reason: 'malformed_json' };
    }
    const mac = goGet(data, 'VtepMAC');
    if (mac === undefined || mac === null) return { reason: 'bad_vtep_mac' };
    const vtepMac = macModel(mac);
    if (vtepMac === null) return { reason: 'bad_vtep_mac' };
    lease.vtepMac = vtepMac;
    if (typeof vni === 'number') lease.vni = vni;
  }
  return { lease };
}

/** Run parseEtcdLease and check it against the model; returns the lease when there is one. */
function agrees(path: string, value: string | Uint8Array): Lease | null {
  const r = parseEtcdLease(path, value);
  const text = typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
  const want = leaseModel(path, text);
  const shortKey = path.slice(path.lastIndexOf('/') + 1);
  assert.notEqual(r.kind, 'ignored', 'a store record is never ignored');
  if ('reason' in want) {
    assert.equal(r.kind, 'rejected', `expected ${want.reason}, got ${JSON.stringify(r)}`);
    if (r.kind !== 'rejected') return null;
    assert.ok(REJECT_REASONS.includes(r.rejection.reason) && RECORD_REASONS.has(r.rejection.reason));
    assert.equal(r.rejection.reason, want.reason, r.rejection.message);
    assert.equal(r.rejection.leaseKey, shortKey);
    assert.ok(r.rejection.message.includes('etcd lease') && r.rejection.message.includes(JSON.stringify(want.reason === 'bad_subnet' ? path : shortKey)), r.rejection.message);
    return null;
  }
  assert.equal(r.kind, 'lease', JSON.stringify(r));
  if (r.kind !== 'lease') return null;
  assert.deepEqual(r.lease, want.lease);
  return r.lease;
}

/* ---------------------------------------------------------- generators */

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const cidrArb = fc.tuple(u32, fc.integer({ min: 1, max: 32 })).map(([a, p]) => ({ addr: (a & prefixMask(p)) >>> 0, prefix: p }));
const v6Part = fc.tuple(fc.stringMatching(/^[0-9a-f]{1,4}(:[0-9a-f]{0,4}){1,7}$/), fc.integer({ min: 0, max: 128 })).map(([a, p]) => `${a}-${p}`);
const pathPrefix = fc.oneof(
  fc.constant(''), fc.constant('/coreos.com/network/subnets/'), fc.constant('subnets/'),
  fc.array(fc.string({ maxLength: 6 }).filter((s) => !s.includes('/')), { maxLength: 3 }).map((segs) => `/${segs.join('/')}/`),
);
const validKey = fc.tuple(pathPrefix, cidrArb, fc.option(v6Part, { nil: undefined })).map(([pre, c, v6]) =>
  `${pre}${formatIPv4(c.addr)}-${c.prefix}${v6 === undefined ? '' : `&${v6}`}`);

/** Near-misses of valid keys: leading zeros, prefixes 0 / 33 / 3 digits, host bits, stray characters, upper-case IPv6. */
const nearKey = fc.tuple(cidrArb, fc.integer({ min: 0, max: 9 }), fc.nat(255)).map(([c, kind, n]) => {
  const o = formatIPv4(c.addr).split('.');
  switch (kind) {
    case 0: return `${o.map((x, i) => (i === n % 4 ? `0${x}` : x)).join('.')}-${c.prefix}`;
    case 1: return `${formatIPv4(c.addr)}-${[0, 33, 99, 100, 320][n % 5]}`;
    case 2: return `${formatIPv4((c.addr | (1 + (n % 255))) >>> 0)}-${c.prefix}`;
    case 3: return `${formatIPv4(c.addr)}-0${c.prefix}`;
    case 4: return `${formatIPv4(c.addr)}_${c.prefix}`;
    case 5: return `${formatIPv4(c.addr)}-${c.prefix}&FD00::-64`;
    case 6: return `${formatIPv4(c.addr)}-${c.prefix}&fd00::-64&x`;
    case 7: return ` ${formatIPv4(c.addr)}-${c.prefix}`;
    case 8: return `${formatIPv4(c.addr)}-${c.prefix}/`;
    default: return `${o.slice(0, 3).join('.')}-${c.prefix}`;
  }
});
const anyKey = fc.oneof(validKey, validKey, nearKey, fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 }));

const macArb = fc.tuple(fc.uint8Array({ minLength: 6, maxLength: 6 }), fc.boolean()).map(([b, upper]) => {
  b[0] = (b[0]! & 0xfe) | 0x02;
  const s = [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
  return upper ? s.toUpperCase() : s;
});

const attrsArb: fc.Arbitrary<OwnLeaseAttrs> = fc.oneof(
  fc.record({ publicIp: u32, backendType: fc.constant('vxlan' as const), vni: fc.oneof(fc.integer({ min: 1, max: 0xffffff }), u32), vtepMac: macArb }),
  fc.record({ publicIp: u32, backendType: fc.constantFrom('host-gw' as const, 'udp' as const) }),
);

/** A value exactly as flanneld's json.Marshal(LeaseAttrs) writes it for an IPv4-only node. */
const flannelValue = fc.tuple(u32, fc.constantFrom('vxlan', 'host-gw', 'udp'), u32, macArb).map(([ip, type, vni, mac]) => {
  let s = `{"PublicIP":"${formatIPv4(ip)}","PublicIPv6":null`;
  if (type !== 'udp') s += `,"BackendType":"${type}"`;
  if (type === 'vxlan') s += `,"BackendData":{"VNI":${vni},"VtepMAC":"${mac.toLowerCase()}"}`;
  return `${s}}`;
});

/** Any JSON-ish value for a field. */
const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, true, 0, -1, 1.5, -0, 2 ** 32, 2 ** 53, '', '1.2.3.4', 'vxlan', [], {}),
);

/* ---------------------------------------------------------- properties */

test('subnet keys: any string gives a subnet or a problem, never a throw, exactly as the key layout says', (t) => {
  check(t, fc.property(anyKey, (path) => {
    const got = parseEtcdSubnetKey(path);
    const want = keyModel(path);
    if (want === null) {
      assert.equal(typeof got, 'string', `accepted ${JSON.stringify(path)}: ${JSON.stringify(got)}`);
      assert.ok((got as string).length > 0);
      return;
    }
    assert.equal(typeof got, 'object', `refused ${JSON.stringify(path)}: ${String(got)}`);
    const k = got as EtcdSubnetKey;
    assert.deepEqual(k, { key: want.key, subnet: { addr: want.addr, prefix: want.prefix }, ...(want.ipv6 ? { ipv6: want.ipv6 } : {}) });
    /* The IPv4 part round-trips through etcdSubnetKey (which writes the prefix length without leading zeros). */
    assert.equal(etcdSubnetKey(k.subnet), `${formatIPv4(want.addr)}-${want.prefix}`);
  }));
});

test('any key and any value (text or bytes): a lease or a rejection with a documented reason, as the record model says', (t) => {
  const structured = fc.dictionary(
    fc.oneof(fc.mixedCase(fc.constantFrom('PublicIP', 'PublicIPv6', 'BackendType', 'BackendData', 'BackendV6Data')), fc.string({ maxLength: 8 })),
    fc.oneof(anyJson, u32.map(formatIPv4), fc.constantFrom('vxlan', 'host-gw', 'udp', ''),
      fc.dictionary(fc.mixedCase(fc.constantFrom('VNI', 'VtepMAC')), fc.oneof(anyJson, macArb, u32))),
    { maxKeys: 5 },
  ).map((o) => JSON.stringify(o));
  const value = fc.oneof(fc.string({ maxLength: 80 }), fc.json({ maxDepth: 3 }), structured, structured, flannelValue);
  check(t, fc.property(anyKey, value, fc.boolean(), (path, v, asBytes) => {
    agrees(path, asBytes ? Buffer.from(v, 'utf8') : v);
  }));
});

test('random bytes as a value (invalid UTF-8 included) never crash', (t) => {
  check(t, fc.property(validKey, fc.uint8Array({ maxLength: 120 }), (path, bytes) => {
    agrees(path, bytes);
  }));
});

test('our own values parse back to the lease they came from, and re-serialise byte for byte', (t) => {
  check(t, fc.property(validKey, attrsArb, fc.option(fc.integer({ min: 0, max: 2 ** 41 }), { nil: undefined }), (path, attrs, expiration) => {
    const value = etcdLeaseValue(attrs);
    const r = parseEtcdLease(path, value, expiration === undefined ? {} : { expiration });
    assert.equal(r.kind, 'lease', JSON.stringify(r));
    if (r.kind !== 'lease') return;
    const k = keyModel(path)!;
    const want: Lease = { key: k.key, subnet: { addr: k.addr, prefix: k.prefix }, publicIp: attrs.publicIp, backendType: attrs.backendType };
    if (attrs.backendType === 'vxlan') { want.vtepMac = attrs.vtepMac!.toLowerCase(); want.vni = attrs.vni!; }
    if (expiration !== undefined) want.expiration = expiration;
    assert.deepEqual(r.lease, want);
    assert.equal(etcdValueOfLease(r.lease), value);
  }));
});

test('flannel-format values (IPv4-only nodes) re-serialise byte for byte: etcdLeaseValue(parse(x)) === x', (t) => {
  check(t, fc.property(validKey, flannelValue, (path, x) => {
    const lease = agrees(path, x);
    assert.ok(lease, x);
    assert.equal(etcdValueOfLease(lease!), x);
  }));
});

/* Structured faults of valid records. */

type Rec = Record<string, unknown>;
type Fault = (o: Rec) => string;

function variant(k: string): string {
  return k === k.toUpperCase() ? k.toLowerCase() : k.toUpperCase();
}

const faultArb: fc.Arbitrary<{ name: string; fault: Fault }> = fc.oneof(
  fc.constant({ name: 'drop PublicIP', fault: (o: Rec) => JSON.stringify({ ...o, PublicIP: undefined }) }),
  anyJson.map((v) => ({ name: `PublicIP = ${JSON.stringify(v)}`, fault: (o: Rec) => JSON.stringify({ ...o, PublicIP: v }) })),
  fc.constantFrom('1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.4 ', '::ffff:1.2.3.4', '')
    .map((v) => ({ name: `PublicIP = ${v}`, fault: (o: Rec) => JSON.stringify({ ...o, PublicIP: v }) })),
  anyJson.map((v) => ({ name: `BackendType = ${JSON.stringify(v)}`, fault: (o: Rec) => JSON.stringify({ ...o, BackendType: v }) })),
  fc.constant({ name: 'drop BackendData', fault: (o: Rec) => JSON.stringify({ ...o, BackendData: undefined }) }),
  anyJson.map((v) => ({ name: `BackendData = ${JSON.stringify(v)}`, fault: (o: Rec) => JSON.stringify({ ...o, BackendData: v }) })),
  anyJson.map((v) => ({ name: `VNI = ${JSON.stringify(v)}`, fault: (o: Rec) => JSON.stringify({ ...o, BackendData: { ...(o.BackendData as object), VNI: v } }) })),
  fc.oneof(anyJson, fc.constantFrom('01:00:5e:00:00:01', '00:00:00:00:00:00', '0e:00:00:00:00', '0e-00-00-00-00-01', '0e:00:00:00:00:01 ', 'ff:ff:ff:ff:ff:ff'))
    .map((v) => ({ name: `VtepMAC = ${JSON.stringify(v)}`, fault: (o: Rec) => JSON.stringify({ ...o, BackendData: { ...(o.BackendData as object), VtepMAC: v } }) })),
  fc.constant({ name: 'keys in other case', fault: (o: Rec) => JSON.stringify(Object.fromEntries(Object.entries(o).map(([k, v]) => [variant(k), isObject(v) ? Object.fromEntries(Object.entries(v).map(([a, b]) => [variant(a), b])) : v]))) }),
  anyJson.map((v) => ({ name: `PublicIP again in other case = ${JSON.stringify(v)}`, fault: (o: Rec) => `${JSON.stringify(o).slice(0, -1)},"publicip":${JSON.stringify(v)}}` })),
  anyJson.map((v) => ({ name: `PublicIP first in other case = ${JSON.stringify(v)}`, fault: (o: Rec) => `{"PUBLICIP":${JSON.stringify(v)},${JSON.stringify(o).slice(1)}` })),
  fc.constant({ name: 'pretty-printed', fault: (o: Rec) => JSON.stringify(o, null, 2) }),
  fc.tuple(fc.string({ maxLength: 8 }), anyJson).map(([k, v]) => ({ name: `extra key ${k}`, fault: (o: Rec) => JSON.stringify({ [k]: v, ...o }) })),
  fc.nat().map((n) => ({ name: 'truncated', fault: (o: Rec) => { const s = JSON.stringify(o); return s.slice(0, n % s.length); } })),
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 127 })).map(([n, c]) => ({
    name: 'a byte replaced', fault: (o: Rec) => { const s = JSON.stringify(o); const i = n % s.length; return s.slice(0, i) + String.fromCharCode(c) + s.slice(i + 1); },
  })),
);

test('structured faults of valid records get the record model\'s verdict (never a crash)', (t) => {
  const counts = new Map<string, number>();
  check(t, fc.property(validKey, flannelValue, faultArb, (path, x, { fault }) => {
    const value = fault(JSON.parse(x) as Record<string, unknown>);
    agrees(path, value);
    const v = leaseModel(path, value);
    const label = 'reason' in v ? v.reason : 'lease';
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }));
  t.log([...counts.entries()].map(([k, v]) => `${k} ${v}`).join(', '));
  for (const r of RECORD_REASONS) if (r !== 'bad_subnet') t.true((counts.get(r) ?? 0) > 0, `some faults give ${r}`);
});
