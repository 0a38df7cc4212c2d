/**
 * Property-based fuzzing of flannel's Kubernetes leases: Node annotations →
 * lease (nodeToLease) and the annotation prefix normalisation
 * (normalizeAnnotationPrefix / --kube-annotation-prefix).
 *
 * Properties:
 *  - never a crash: any node (any name, any annotations, any pod CIDRs)
 *    gives a lease, a rejection with a documented reason naming the node, or
 *    "ignored" — exactly as a model of flannel-compat.md §4 says;
 *  - any prefix string is normalised as flannel's newAnnotations does
 *    (model written here without its regular expression) or refused with a
 *    ConfigError naming --kube-annotation-prefix and flannel's error text;
 *    normalisation is idempotent and every annotation name carries the prefix;
 *  - our own annotations parse back to our lease under any valid prefix,
 *    need no patch, and keep the VtepMAC;
 *  - structured faults of a valid node (dropped, case-varied or garbage
 *    annotations, bad backend-data, bad pod CIDRs) get the model's verdict.
 *
 * Seed: random per run and printed on failure by fast-check; FC_SEED=<n>
 * replays a run.
 */
import test from 'ava';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { check, RUNS } from '../helpers/fuzz.js';
import {
  normalizeAnnotationPrefix, annotationNames, nodeToLease, ownAnnotations, needsAnnotationPatch, annotationPatch, storedVtepMac,
  isFlannelNode, nodeLeaseChanged, DEFAULT_ANNOTATION_PREFIX, type AnnotationNames, type NodeLike,
} from '../../src/control/lease/kube.js';
import type { OwnLeaseAttrs } from '../../src/control/lease/backend-data.js';
import { REJECT_REASONS, type Lease, type RejectReason } from '../../src/control/lease/types.js';
import { ConfigError } from '../../src/control/config/errors.js';
import { formatIPv4, prefixMask } from '../../src/maps/addr.js';


const RECORD_REASONS = new Set<RejectReason>(['bad_subnet', 'bad_public_ip', 'bad_vtep_mac', 'malformed_json']);
const ERR_SLASHES = 'subnet/kube: prefix can contain at most single slash';
const ERR_FORMAT = 'subnet/kube: prefix must be in a format: fqdn/[0-9a-z-_]*';

/* --------------------------------------------------------- prefix model */

const inClass = (c: string): boolean => (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c === '_' || c === '-';

/**
 * flannel's newAnnotations: at most one "/"; none → append "/"; then append
 * "-" unless it ends in "/" or "-"; then the prefix must END with
 * `fqdn/` or `fqdn/name-` (the regex is not anchored at the start), where
 * fqdn is two or more non-empty labels of [a-z0-9_-] joined by ".".
 */
function prefixModel(prefix: string): { prefix: string } | { error: string } {
  if (prefix.split('/').length - 1 > 1) return { error: ERR_SLASHES };
  let p = prefix.includes('/') ? prefix : `${prefix}/`;
  if (!p.endsWith('/') && !p.endsWith('-')) p += '-';
  const slash = p.indexOf('/');
  const name = p.slice(slash + 1);
  if (name !== '' && !(name.length >= 2 && name.endsWith('-') && [...name].every(inClass))) return { error: ERR_FORMAT };
  /* The longest run of [a-z0-9_.-] just before the slash must end with "label.label". */
  let start = slash;
  while (start > 0 && (inClass(p[start - 1]!) || p[start - 1] === '.')) start--;
  const labels = p.slice(start, slash).split('.');
  if (labels.length < 2 || labels[labels.length - 1] === '' || labels[labels.length - 2] === '') return { error: ERR_FORMAT };
  return { prefix: p };
}

/* ----------------------------------------------------------- node model */

function quad(s: string): number | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (p.length < 1 || p.length > 3 || [...p].some((c) => c < '0' || c > '9') || (p.length > 1 && p[0] === '0') || Number(p) > 255) return null;
    n = n * 256 + Number(p);
  }
  return n;
}

/** An IPv4 CIDR, host bits masked as Go's net.ParseCIDR returns the network. */
function cidrModel(s: string): { addr: number; prefix: number } | null {
  const i = s.indexOf('/');
  if (i < 0) return null;
  const addr = quad(s.slice(0, i));
  const p = s.slice(i + 1);
  if (addr === null || !/^[0-9]{1,2}$/.test(p) || Number(p) > 32) return null;
  return { addr: (addr & prefixMask(Number(p))) >>> 0, prefix: Number(p) };
}

function macModel(v: unknown): string | null {
  if (typeof v !== 'string' || !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(v)) return null;
  const b = v.toLowerCase();
  return parseInt(b.slice(0, 2), 16) & 1 || b === '00:00:00:00:00:00' ? null : b;
}

function goGet(o: Record<string, unknown>, name: string): unknown {
  let v: unknown;
  for (const [k, x] of Object.entries(o)) if (k.toLowerCase() === name.toLowerCase()) v = x;
  return v;
}

type Verdict = { kind: 'ignored' } | { kind: 'rejected'; reason: RejectReason } | { kind: 'lease'; lease: Lease };

/** flannel-compat.md §4 (and kube.ts's documented choices: public-ip-overwrite honoured, IPv6 entries skipped). */
function nodeModel(node: NodeLike, n: AnnotationNames): Verdict {
  const ann = node.metadata.annotations ?? {};
  const get = (k: string): string | undefined => (Object.prototype.hasOwnProperty.call(ann, k) ? ann[k] : undefined);
  if (get(n.kubeSubnetManager) !== 'true') return { kind: 'ignored' };
  const rejected = (reason: RejectReason): Verdict => ({ kind: 'rejected', reason });
  const list = node.spec?.podCIDRs ?? [];
  let subnet: { addr: number; prefix: number } | null = null;
  if (list.length >= 3) return rejected('bad_subnet');
  for (const c of list.length ? list : [node.spec?.podCIDR ?? '']) {
    if (c.includes(':')) {
      if (!/^[0-9a-fA-F:.]+\/[0-9]{1,3}$/.test(c)) return rejected('bad_subnet');
      continue;
    }
    subnet = cidrModel(c);
    if (!subnet) return rejected('bad_subnet');
    break;
  }
  if (!subnet) return rejected('bad_subnet');
  const overwrite = get(n.publicIpOverwrite) ?? '';
  const ipText = overwrite !== '' ? overwrite : get(n.publicIp);
  const publicIp = ipText ? quad(ipText) : null;
  if (publicIp === null) return rejected('bad_public_ip');
  const stored = get(n.backendType) ?? '';
  const lease: Lease = { key: node.metadata.name, subnet, publicIp, backendType: stored === '' ? 'udp' : stored };
  if (lease.backendType === 'vxlan') {
    let data: unknown;
    try {
      data = JSON.parse(get(n.backendData) ?? '');
    } catch {
      return rejected('malformed_json');
    }
    if (typeof data !== 'object' || data === null || Array.isArray(data)) return rejected('malformed_json');
    const o = data as Record<string, unknown>;
    const vni = goGet(o, 'VNI');
    if (vni !== undefined && vni !== null && !(typeof vni === 'number' && Number.isInteger(vni) && vni >= 0 && vni <= 0xffffffff)) return rejected('malformed_json');
    const mac = macModel(goGet(o, 'VtepMAC'));
    if (mac === null) return rejected('bad_vtep_mac');
    lease.vtepMac = mac;
    if (typeof vni === 'number') lease.vni = vni;
  }
  return { kind: 'lease', lease };
}

/** nodeToLease agrees with the model; returns the verdict. */
function agrees(node: NodeLike, n: AnnotationNames): Verdict {
  const r = nodeToLease(node, n);
  const want = nodeModel(node, n);
  assert.equal(r.kind, want.kind, `${JSON.stringify(r)} vs model ${JSON.stringify(want)}`);
  if (r.kind === 'rejected' && want.kind === 'rejected') {
    assert.ok(REJECT_REASONS.includes(r.rejection.reason) && RECORD_REASONS.has(r.rejection.reason));
    assert.equal(r.rejection.reason, want.reason, r.rejection.message);
    assert.equal(r.rejection.leaseKey, node.metadata.name);
    assert.ok(r.rejection.message.includes(`node ${JSON.stringify(node.metadata.name)}`) || r.rejection.message.includes(`node "${node.metadata.name}"`), r.rejection.message);
  }
  if (r.kind === 'lease' && want.kind === 'lease') assert.deepEqual(r.lease, want.lease);
  if (r.kind === 'ignored') assert.equal(isFlannelNode(node, n), false);
  return want;
}

/* ---------------------------------------------------------- generators */

const label = fc.stringMatching(/^[a-z0-9_-]{1,8}$/);
const fqdn = fc.array(label, { minLength: 2, maxLength: 4 }).map((l) => l.join('.'));
const validPrefix = fc.oneof(
  fqdn, fqdn.map((f) => `${f}/`),
  fc.tuple(fqdn, fc.stringMatching(/^[a-z0-9_-]{1,8}$/).filter((n) => n !== '-')).map(([f, n]) => `${f}/${n}`),
  fc.constant(DEFAULT_ANNOTATION_PREFIX),
);
const nearPrefix = fc.tuple(validPrefix, fc.integer({ min: 0, max: 7 })).map(([p, k]) => {
  switch (k) {
    case 0: return p.toUpperCase();
    case 1: return `${p}/x`;
    case 2: return p.replace(/\./g, '');
    case 3: return `/${p}`;
    case 4: return `${p.split('/')[0]}/a.b`;
    case 5: return `${p} `;
    case 6: return `Flannel.${p}`;
    default: return p.replace('.', '..');
  }
});
const anyPrefix = fc.oneof(validPrefix, nearPrefix, fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 20 }));

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const ipArb = u32.map(formatIPv4);
const macArb = fc.tuple(fc.uint8Array({ minLength: 6, maxLength: 6 }), fc.boolean()).map(([b, upper]) => {
  b[0] = (b[0]! & 0xfe) | 0x02;
  const s = [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
  return upper ? s.toUpperCase() : s;
});
const cidrText = fc.tuple(u32, fc.integer({ min: 0, max: 32 }), fc.boolean())
  .map(([a, p, masked]) => `${formatIPv4(masked ? (a & prefixMask(p)) >>> 0 : a)}/${p}`);
const v6Cidr = fc.constantFrom('fd00:10:244:1::/64', '2001:db8::/48', 'fd00::1/128', '::/0', 'fd00::/129', 'fd00:::/64x');
const badCidr = fc.oneof(fc.constantFrom('', '10.0.0.0', '10.0.0.0/33', '10.0.0.256/24', '010.0.0.0/8', ' 10.0.0.0/8', '10.0.0.0/8 ', '10.0.0.0/-1'), fc.string({ maxLength: 18 }));
const anyCidr = fc.oneof(cidrText, cidrText, v6Cidr, badCidr);

const specArb: fc.Arbitrary<NodeLike['spec']> = fc.oneof(
  fc.record({ podCIDR: cidrText, podCIDRs: fc.constant([] as string[]) }),
  cidrText.map((c) => ({ podCIDR: c, podCIDRs: [c] })),
  fc.record({ podCIDR: fc.option(anyCidr, { nil: undefined }), podCIDRs: fc.option(fc.array(anyCidr, { maxLength: 4 }), { nil: undefined }) }),
  fc.constantFrom(null, undefined, {}, { podCIDR: null, podCIDRs: null }),
);

const anyJsonText = fc.oneof(fc.json({ maxDepth: 2 }), fc.string({ maxLength: 20 }), fc.constantFrom('', 'null', '{}', '[]', '1', '{"VNI":1}'));
const backendDataText = fc.oneof(
  fc.tuple(u32, macArb).map(([v, m]) => `{"VNI":${v},"VtepMAC":"${m}"}`),
  fc.tuple(u32, macArb).map(([v, m]) => JSON.stringify({ vni: v, vtepmac: m })),
  fc.dictionary(fc.mixedCase(fc.constantFrom('VNI', 'VtepMAC')), fc.oneof(macArb, u32, fc.jsonValue({ maxDepth: 1 }), fc.constantFrom(-1, 1.5, 2 ** 32, '01:00:5e:00:00:01'))).map((o) => JSON.stringify(o)),
  anyJsonText,
);

/** Annotations of any sort: ours (valid or garbage values), under the prefix and around it, and unrelated ones. */
function annotationsArb(n: AnnotationNames): fc.Arbitrary<Record<string, string>> {
  const ours: Array<[string, fc.Arbitrary<string>]> = [
    [n.kubeSubnetManager, fc.oneof(fc.constant('true'), fc.constant('true'), fc.constantFrom('True', 'TRUE', 'true ', 'false', '', '1'))],
    [n.publicIp, fc.oneof(ipArb, ipArb, fc.constantFrom('', '1.2.3', '256.1.1.1', '01.2.3.4', '::1'), fc.string({ maxLength: 16 }))],
    [n.publicIpOverwrite, fc.oneof(fc.constant(''), ipArb, fc.constantFrom('1.2.3', 'x'))],
    [n.backendType, fc.oneof(fc.constantFrom('vxlan', 'vxlan', 'host-gw', 'udp', '', 'VXLAN', 'wireguard'), fc.string({ maxLength: 8 }))],
    [n.backendData, backendDataText],
  ];
  return fc.tuple(
    ...ours.map(([k, v]) => fc.option(v.map((x): [string, string] => [k, x]), { nil: undefined, freq: 4 })),
    fc.array(fc.tuple(fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom(...Object.values(n)).map((k) => k.toUpperCase())), fc.string({ maxLength: 20 })), { maxLength: 3 }),
  ).map((parts) => {
    const extra = parts.pop() as Array<[string, string]>;
    const pairs = [...(parts as Array<[string, string] | undefined>).filter((p): p is [string, string] => p !== undefined), ...extra];
    const out: Record<string, string> = {};
    for (const [k, v] of pairs) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    return out;
  });
}

const attrsArb: fc.Arbitrary<OwnLeaseAttrs> = fc.oneof(
  fc.record({ publicIp: u32, backendType: fc.constant('vxlan' as const), vni: fc.oneof(fc.integer({ min: 1, max: 0xffffff }), u32), vtepMac: macArb }),
  fc.record({ publicIp: u32, backendType: fc.constantFrom('host-gw' as const, 'udp' as const) }),
);

const nodeName = fc.oneof(fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?$/), fc.string({ maxLength: 20 }));

/* ---------------------------------------------------------- properties */

test('any prefix string: normalised as flannel\'s newAnnotations, or a ConfigError naming --kube-annotation-prefix', (t) => {
  let accepted = 0;
  check(t, fc.property(anyPrefix, (prefix) => {
    const want = prefixModel(prefix);
    let got: string;
    try {
      got = normalizeAnnotationPrefix(prefix);
    } catch (err) {
      assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
      assert.ok('error' in want, `refused ${JSON.stringify(prefix)}: ${err.message}`);
      assert.equal(err.problem, want.error);
      assert.equal(err.field, '--kube-annotation-prefix');
      assert.equal(err.origin, 'annotation prefix');
      assert.equal(err.value, prefix);
      return;
    }
    assert.ok('prefix' in want, `accepted ${JSON.stringify(prefix)} as ${got}, flannel refuses it (${'error' in want ? want.error : ''})`);
    assert.equal(got, want.prefix);
    accepted++;
    assert.ok(got.endsWith('/') || got.endsWith('-'));
    assert.equal(normalizeAnnotationPrefix(got), got, 'idempotent');
    const names = annotationNames(prefix);
    assert.equal(names.prefix, got);
    for (const [k, v] of Object.entries(names)) if (k !== 'prefix') assert.ok(v.startsWith(got) && v.length > got.length, `${k} = ${v}`);
    assert.equal(new Set(Object.values(names)).size, Object.keys(names).length, 'names are distinct');
  }));
  t.true(accepted > RUNS / 5, `${accepted} prefixes accepted`);
});

test('any node: a lease, a documented rejection naming the node, or ignored — as the model says; never a throw', (t) => {
  const counts = new Map<string, number>();
  const arb = validPrefix.chain((p) => {
    const n = annotationNames(p);
    return fc.tuple(fc.constant(n), nodeName, fc.option(annotationsArb(n), { nil: null, freq: 10 }), specArb);
  });
  check(t, fc.property(arb, ([n, name, annotations, spec]) => {
    const node: NodeLike = { metadata: { name, annotations }, spec };
    const v = agrees(node, n);
    const k = v.kind === 'rejected' ? v.reason : v.kind;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }), { numRuns: RUNS * 2 });
  t.log([...counts.entries()].map(([k, v]) => `${k} ${v}`).join(', '));
  for (const k of ['lease', 'ignored', ...RECORD_REASONS]) t.true((counts.get(k) ?? 0) > 0, `some nodes give ${k}`);
});

test('our own annotations parse back to our lease under any prefix; no patch is needed; the VtepMAC is kept', (t) => {
  const arb = fc.tuple(validPrefix, attrsArb, nodeName, cidrText, fc.constantFrom<'absent' | 'empty' | 'same' | 'other'>('absent', 'empty', 'same', 'other'), ipArb,
    fc.dictionary(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), { maxKeys: 3 }));
  check(t, fc.property(arb, ([prefix, attrs, name, podCIDR, ow, otherIp, unrelated]) => {
    const n = annotationNames(prefix);
    const current: Record<string, string> = { ...unrelated };
    const overwrite = ow === 'absent' ? undefined : ow === 'empty' ? '' : ow === 'same' ? formatIPv4(attrs.publicIp) : otherIp;
    if (overwrite !== undefined) current[n.publicIpOverwrite] = overwrite;
    const ann = { ...current, ...ownAnnotations(current, attrs, n) };
    const node: NodeLike = { metadata: { name, annotations: ann }, spec: { podCIDR, podCIDRs: [podCIDR] } };
    const v = agrees(node, n);
    assert.equal(v.kind, 'lease');
    if (v.kind !== 'lease') return;
    const want: Lease = {
      key: name, subnet: cidrModel(podCIDR)!, publicIp: overwrite ? quad(overwrite)! : attrs.publicIp, backendType: attrs.backendType,
    };
    if (attrs.backendType === 'vxlan') { want.vtepMac = attrs.vtepMac!.toLowerCase(); want.vni = attrs.vni!; }
    assert.deepEqual(v.lease, want);
    /* flannel patches again only when public-ip-overwrite differs from our address. */
    assert.equal(needsAnnotationPatch(ann, attrs, n), overwrite !== undefined && overwrite !== '' && overwrite !== formatIPv4(attrs.publicIp));
    assert.equal(annotationPatch(ann, attrs, n), null);
    assert.equal(storedVtepMac(ann, n), attrs.backendType === 'vxlan' ? attrs.vtepMac!.toLowerCase() : null);
    assert.equal(nodeLeaseChanged(node, node, n), false);
  }));
});

type NodeFault = (node: NodeLike, n: AnnotationNames) => NodeLike;

const withAnn = (node: NodeLike, f: (a: Record<string, string>) => void): NodeLike => {
  const a = { ...(node.metadata.annotations ?? {}) };
  f(a);
  return { ...node, metadata: { ...node.metadata, annotations: a } };
};
const setData = (v: string): NodeFault => (node, n) => withAnn(node, (a) => { a[n.backendData] = v; });

const nodeFaultArb: fc.Arbitrary<{ name: string; fault: NodeFault }> = fc.oneof(
  fc.constantFrom<keyof Omit<AnnotationNames, 'prefix'>>('kubeSubnetManager', 'publicIp', 'backendType', 'backendData')
    .map((k) => ({ name: `drop ${k}`, fault: (node: NodeLike, n: AnnotationNames) => withAnn(node, (a) => { delete a[n[k]]; }) })),
  fc.constantFrom<keyof Omit<AnnotationNames, 'prefix'>>('kubeSubnetManager', 'publicIp', 'backendType', 'backendData')
    .map((k) => ({
      name: `${k} under another case`,
      fault: (node: NodeLike, n: AnnotationNames) => withAnn(node, (a) => { const v = a[n[k]]; delete a[n[k]]; if (v !== undefined) a[n[k].toUpperCase()] = v; }),
    })),
  fc.constantFrom('True', 'TRUE', ' true', 'yes', '').map((v) => ({ name: `marker ${v}`, fault: (node: NodeLike, n: AnnotationNames) => withAnn(node, (a) => { a[n.kubeSubnetManager] = v; }) })),
  fc.oneof(fc.string({ maxLength: 16 }), fc.constantFrom('', '1.2.3', '1.2.3.4.5', '01.2.3.4', '256.0.0.1', '::1', '10.0.0.1/32'))
    .map((v) => ({ name: `public-ip ${v}`, fault: (node: NodeLike, n: AnnotationNames) => withAnn(node, (a) => { a[n.publicIp] = v; }) })),
  fc.oneof(ipArb, fc.constantFrom('x', '1.2.3', ''))
    .map((v) => ({ name: `overwrite ${v}`, fault: (node: NodeLike, n: AnnotationNames) => withAnn(node, (a) => { a[n.publicIpOverwrite] = v; }) })),
  anyJsonText.map((v) => ({ name: `backend-data ${v}`, fault: setData(v) })),
  fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.constantFrom(-1, 1.5, 2 ** 32, '1', null))
    .map((v) => ({ name: `VNI ${JSON.stringify(v)}`, fault: setData(JSON.stringify({ VNI: v, VtepMAC: '0e:00:00:00:00:01' })) })),
  fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.constantFrom('01:00:5e:00:00:01', '00:00:00:00:00:00', '0e:00:00:00:00', '0E-00-00-00-00-01'))
    .map((v) => ({ name: `VtepMAC ${JSON.stringify(v)}`, fault: setData(JSON.stringify({ VNI: 1, VtepMAC: v })) })),
  fc.constant({ name: 'backend-data keys lower-cased', fault: setData('{"vni":1,"vtepmac":"0E:00:00:00:00:01"}') }),
  fc.tuple(anyCidr, fc.array(anyCidr, { maxLength: 4 })).map(([c, list]) => ({
    name: 'pod CIDRs', fault: (node: NodeLike) => ({ ...node, spec: { podCIDR: c, podCIDRs: list } }),
  })),
);

test('structured faults of a valid vxlan node get the model\'s verdict, each invalid one with its named reason', (t) => {
  const counts = new Map<string, number>();
  const arb = fc.tuple(validPrefix, attrsArb.filter((a) => a.backendType === 'vxlan'), nodeName, cidrText, nodeFaultArb);
  check(t, fc.property(arb, ([prefix, attrs, name, podCIDR, { fault }]) => {
    const n = annotationNames(prefix);
    const node: NodeLike = { metadata: { name, annotations: ownAnnotations({}, attrs, n) }, spec: { podCIDR, podCIDRs: [podCIDR] } };
    const v = agrees(fault(node, n), n);
    const k = v.kind === 'rejected' ? v.reason : v.kind;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }));
  t.log([...counts.entries()].map(([k, v]) => `${k} ${v}`).join(', '));
  for (const k of ['lease', 'ignored', ...RECORD_REASONS]) t.true((counts.get(k) ?? 0) > 0, `some faults give ${k}`);
});
