import test from 'ava';
import {
  normalizeAnnotationPrefix, annotationNames, nodeToLease, nodePodSubnet, needsAnnotationPatch, ownAnnotations, annotationPatch,
  nodeLeaseChanged, storedVtepMac, storedNodePublicIp, backendDataAnnotation, isFlannelNode, type NodeLike,
} from '../../src/control/lease/kube.js';
import type { OwnLeaseAttrs } from '../../src/control/lease/backend-data.js';
import type { Lease, LeaseParse, RejectReason } from '../../src/control/lease/types.js';
import { ConfigError } from '../../src/control/config/errors.js';
import { parseCidr, parseIPv4, formatCidr } from '../../src/maps/addr.js';

const N = annotationNames();
const P = 'flannel.alpha.coreos.com/';

function node(name: string, ann: Record<string, string>, spec: NodeLike['spec'] = { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] }): NodeLike {
  return { metadata: { name, annotations: ann }, spec };
}
const vxlanAnn = (ip = '192.168.1.11', mac = '12:c6:65:89:b4:e3'): Record<string, string> => ({
  [`${P}backend-data`]: `{"VNI":1,"VtepMAC":"${mac}"}`,
  [`${P}backend-type`]: 'vxlan',
  [`${P}kube-subnet-manager`]: 'true',
  [`${P}public-ip`]: ip,
});
function leaseOf(t: import('ava').ExecutionContext, r: LeaseParse): Lease {
  if (r.kind !== 'lease') t.fail(`expected a lease, got ${JSON.stringify(r)}`);
  return (r as { lease: Lease }).lease;
}

test('annotation prefix normalisation (flannel newAnnotations)', (t) => {
  t.is(normalizeAnnotationPrefix('flannel.alpha.coreos.com'), 'flannel.alpha.coreos.com/');
  t.is(normalizeAnnotationPrefix('flannel.alpha.coreos.com/'), 'flannel.alpha.coreos.com/');
  t.is(normalizeAnnotationPrefix('example.com/net'), 'example.com/net-');
  t.is(normalizeAnnotationPrefix('example.com/net-'), 'example.com/net-');
  t.is(N.backendData, 'flannel.alpha.coreos.com/backend-data');
  t.is(annotationNames('example.com/net').publicIp, 'example.com/net-public-ip');
  t.is(annotationNames('example.com/net').kubeSubnetManager, 'example.com/net-kube-subnet-manager');
  const e = t.throws(() => normalizeAnnotationPrefix('a.com/b/c'), { instanceOf: ConfigError }) as ConfigError;
  t.is(e.problem, 'subnet/kube: prefix can contain at most single slash');
  t.is(e.field, '--kube-annotation-prefix');
  for (const bad of ['nodomain', 'example.com/Net', 'example.com/a.b', '/x']) {
    t.is((t.throws(() => normalizeAnnotationPrefix(bad), { instanceOf: ConfigError }) as ConfigError).problem,
      'subnet/kube: prefix must be in a format: fqdn/[0-9a-z-_]*', bad);
  }
});

test('nodes without kube-subnet-manager "true" are ignored', (t) => {
  t.is(nodeToLease(node('n1', {}), N).kind, 'ignored');
  t.is(nodeToLease(node('n1', { ...vxlanAnn(), [`${P}kube-subnet-manager`]: 'True' }), N).kind, 'ignored');
  t.is(nodeToLease({ metadata: { name: 'n1', annotations: null } }, N).kind, 'ignored');
  t.false(isFlannelNode(node('n1', {}), N));
  t.true(isFlannelNode(node('n1', vxlanAnn()), N));
});

test('a vxlan node becomes a lease keyed by node name', (t) => {
  const l = leaseOf(t, nodeToLease(node('worker-1', vxlanAnn()), N));
  t.deepEqual(l, { key: 'worker-1', subnet: parseCidr('10.244.1.0/24'), publicIp: parseIPv4('192.168.1.11'), backendType: 'vxlan', vtepMac: '12:c6:65:89:b4:e3', vni: 1 });
});

test('custom prefix: annotations under another prefix are not read', (t) => {
  const names = annotationNames('example.com/net');
  t.is(nodeToLease(node('n1', vxlanAnn()), names).kind, 'ignored');
  const ann = Object.fromEntries(Object.entries(vxlanAnn()).map(([k, v]) => [k.replace(P, 'example.com/net-'), v]));
  t.is(nodeToLease(node('n1', ann), names).kind, 'lease');
});

test('podCIDRs: first IPv4 entry, IPv6 skipped; fallback to podCIDR; errors as bad_subnet', (t) => {
  t.is(formatCidr(nodePodSubnet(node('n', {}, { podCIDRs: ['fd00:1::/64', '10.244.9.0/24'] })) as ReturnType<typeof parseCidr>), '10.244.9.0/24');
  t.is(formatCidr(nodePodSubnet(node('n', {}, { podCIDR: '10.244.8.0/24', podCIDRs: [] })) as ReturnType<typeof parseCidr>), '10.244.8.0/24');
  t.is(formatCidr(nodePodSubnet(node('n', {}, { podCIDR: '10.244.8.0/24' })) as ReturnType<typeof parseCidr>), '10.244.8.0/24');
  t.regex(nodePodSubnet(node('n', {}, {})) as string, /pod cidr not assigned/);
  t.regex(nodePodSubnet(node('n', {}, null)) as string, /pod cidr not assigned/);
  t.regex(nodePodSubnet(node('n', {}, { podCIDRs: ['fd00:1::/64'] })) as string, /missing IPv4/);
  t.regex(nodePodSubnet(node('n', {}, { podCIDRs: ['10.0.0.0/24', 'fd00::/64', '10.0.1.0/24'] })) as string, /IPv4\/IPv6 only or dualstack/);
  t.regex(nodePodSubnet(node('n', {}, { podCIDRs: ['10.0.0/24'] })) as string, /invalid/);
  const r = nodeToLease(node('n7', vxlanAnn(), {}), N);
  t.is(r.kind, 'rejected');
  t.is(r.kind === 'rejected' ? r.rejection.reason : '', 'bad_subnet');
  t.is(r.kind === 'rejected' ? r.rejection.leaseKey : '', 'n7');
});

test('public-ip-overwrite is honoured when reading a node', (t) => {
  const l = leaseOf(t, nodeToLease(node('n1', { ...vxlanAnn('10.0.0.1'), [`${P}public-ip-overwrite`]: '203.0.113.7' }), N));
  t.is(l.publicIp, parseIPv4('203.0.113.7'));
  const r = nodeToLease(node('n1', { ...vxlanAnn('10.0.0.1'), [`${P}public-ip-overwrite`]: 'nat-gw' }), N);
  t.is(r.kind === 'rejected' ? r.rejection.reason : '', 'bad_public_ip');
  t.true(r.kind === 'rejected' && r.rejection.message.includes('public-ip-overwrite'));
});

test('udp nodes (empty backend-type) and host-gw nodes', (t) => {
  const udp = leaseOf(t, nodeToLease(node('u', { [`${P}backend-type`]: '', [`${P}backend-data`]: 'null', [`${P}kube-subnet-manager`]: 'true', [`${P}public-ip`]: '10.0.0.3' }), N));
  t.is(udp.backendType, 'udp');
  const hg = leaseOf(t, nodeToLease(node('h', { [`${P}backend-type`]: 'host-gw', [`${P}backend-data`]: 'null', [`${P}kube-subnet-manager`]: 'true', [`${P}public-ip`]: '10.0.0.4' }), N));
  t.is(hg.backendType, 'host-gw');
  t.is(hg.vtepMac, undefined);
});

test('rejections: bad public IP, malformed backend-data, bad VtepMAC', (t) => {
  const cases: [Record<string, string>, RejectReason][] = [
    [{ ...vxlanAnn(), [`${P}public-ip`]: '' }, 'bad_public_ip'],
    [{ ...vxlanAnn(), [`${P}public-ip`]: '10.0.0.1.2' }, 'bad_public_ip'],
    [{ ...vxlanAnn(), [`${P}backend-data`]: '{"VNI":1,"VtepMAC":' }, 'malformed_json'],
    [{ ...vxlanAnn(), [`${P}backend-data`]: 'null' }, 'malformed_json'],
    [{ ...vxlanAnn(), [`${P}backend-data`]: '' }, 'malformed_json'],
    [{ ...vxlanAnn(), [`${P}backend-data`]: '{"VNI":1,"VtepMAC":"12:c6:65:89:b4"}' }, 'bad_vtep_mac'],
  ];
  for (const [ann, reason] of cases) {
    const r = nodeToLease(node('bad-node', ann), N);
    t.is(r.kind === 'rejected' ? r.rejection.reason : r.kind, reason, JSON.stringify(ann));
    t.true(r.kind === 'rejected' && r.rejection.message.includes('bad-node'));
  }
});

const OWN: OwnLeaseAttrs = { publicIp: parseIPv4('192.168.1.11'), backendType: 'vxlan', vni: 1, vtepMac: '12:c6:65:89:b4:e3' };

test('own annotations: exact backend-data bytes, host-gw literal null, udp empty type', (t) => {
  t.deepEqual(ownAnnotations({}, OWN, N), {
    [`${P}backend-type`]: 'vxlan',
    [`${P}backend-data`]: '{"VNI":1,"VtepMAC":"12:c6:65:89:b4:e3"}',
    [`${P}public-ip`]: '192.168.1.11',
    [`${P}kube-subnet-manager`]: 'true',
  });
  t.is(backendDataAnnotation({ publicIp: 1, backendType: 'host-gw' }), 'null');
  const udp = ownAnnotations(null, { publicIp: parseIPv4('10.0.0.3'), backendType: 'udp' }, N);
  t.is(udp[`${P}backend-type`], '');
  t.is(udp[`${P}backend-data`], 'null');
});

test('own annotations round-trip through nodeToLease', (t) => {
  for (const attrs of [OWN, { publicIp: parseIPv4('10.0.0.4'), backendType: 'host-gw' as const }, { publicIp: parseIPv4('10.0.0.3'), backendType: 'udp' as const }]) {
    const l = leaseOf(t, nodeToLease(node('self', ownAnnotations({}, attrs, N)), N));
    t.is(l.publicIp, attrs.publicIp);
    t.is(l.backendType, attrs.backendType);
    t.is(l.vtepMac, attrs.vtepMac);
    t.is(l.vni, attrs.vni);
  }
});

test('needsAnnotationPatch: flannel\'s rule', (t) => {
  const current = ownAnnotations({}, OWN, N);
  t.false(needsAnnotationPatch(current, OWN, N));
  t.true(needsAnnotationPatch({}, OWN, N));
  t.true(needsAnnotationPatch(null, OWN, N));
  t.true(needsAnnotationPatch({ ...current, [`${P}backend-data`]: '{"VtepMAC":"12:c6:65:89:b4:e3","VNI":1}' }, OWN, N), 'key order matters');
  t.true(needsAnnotationPatch({ ...current, [`${P}backend-type`]: 'host-gw' }, OWN, N));
  t.true(needsAnnotationPatch({ ...current, [`${P}public-ip`]: '192.168.1.12' }, OWN, N));
  t.true(needsAnnotationPatch({ ...current, [`${P}kube-subnet-manager`]: 'false' }, OWN, N));
  t.true(needsAnnotationPatch({ ...current, [`${P}public-ip-overwrite`]: '203.0.113.7' }, OWN, N));
  t.false(needsAnnotationPatch({ ...current, [`${P}public-ip-overwrite`]: '192.168.1.11' }, OWN, N));
  t.false(needsAnnotationPatch({ ...current, 'other/annotation': 'x' }, OWN, N));
});

test('annotationPatch: only the changed keys; overwrite copied into public-ip; null when nothing changes', (t) => {
  const current = ownAnnotations({}, OWN, N);
  t.is(annotationPatch(current, OWN, N), null);
  t.deepEqual(annotationPatch({ ...current, [`${P}public-ip`]: '1.1.1.1' }, OWN, N), { metadata: { annotations: { [`${P}public-ip`]: '192.168.1.11' } } });
  const withOverwrite = { ...current, [`${P}public-ip-overwrite`]: '203.0.113.7' };
  t.deepEqual(annotationPatch(withOverwrite, OWN, N), { metadata: { annotations: { [`${P}public-ip`]: '203.0.113.7' } } });
  /* flannel "needs" a patch on every start here, but the values already match: nothing to send */
  t.true(needsAnnotationPatch({ ...withOverwrite, [`${P}public-ip`]: '203.0.113.7' }, OWN, N));
  t.is(annotationPatch({ ...withOverwrite, [`${P}public-ip`]: '203.0.113.7' }, OWN, N), null);
  const fresh = annotationPatch({}, OWN, N);
  t.deepEqual(fresh?.metadata.annotations, ownAnnotations({}, OWN, N));
});

test('nodeLeaseChanged: lease-relevant annotations and pod CIDRs only', (t) => {
  const a = node('n', vxlanAnn());
  t.false(nodeLeaseChanged(a, node('n', { ...vxlanAnn(), 'unrelated/x': 'y' }), N));
  t.true(nodeLeaseChanged(a, node('n', vxlanAnn('192.168.1.99')), N));
  t.true(nodeLeaseChanged(a, node('n', vxlanAnn(undefined, '12:c6:65:89:b4:e4')), N));
  t.true(nodeLeaseChanged(a, node('n', { ...vxlanAnn(), [`${P}public-ip-overwrite`]: '1.2.3.4' }), N));
  t.true(nodeLeaseChanged(a, node('n', vxlanAnn(), { podCIDR: '10.244.2.0/24', podCIDRs: ['10.244.2.0/24'] }), N));
});

test('storedVtepMac / storedNodePublicIp read our own node', (t) => {
  t.is(storedVtepMac(vxlanAnn(), N), '12:c6:65:89:b4:e3');
  t.is(storedVtepMac({ [`${P}backend-data`]: 'null' }, N), null);
  t.is(storedVtepMac({ [`${P}backend-data`]: '{"VNI":1,"VtepMAC":"ff:ff:ff:ff:ff:ff"}' }, N), null);
  t.is(storedVtepMac({}, N), null);
  t.is(storedNodePublicIp({ [`${P}node-public-ip`]: '10.9.9.9' }, N), '10.9.9.9');
  t.is(storedNodePublicIp({ [`${P}node-public-ip`]: '' }, N), null);
});
