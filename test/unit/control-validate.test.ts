import test from 'ava';
import { validateLeases, leaseProblem, publicIpProblem, type ValidationContext } from '../../src/control/lease/validate.js';
import type { Lease, RejectReason } from '../../src/control/lease/types.js';
import { parseCidr, parseIPv4, formatIPv4 } from '../../src/maps/addr.js';

const CTX: ValidationContext = {
  network: parseCidr('10.244.0.0/16'),
  ownSubnet: parseCidr('10.244.1.0/24'),
  ownKey: '10.244.1.0-24',
  ownPublicIp: parseIPv4('192.168.1.1'),
  backend: 'vxlan',
  vni: 1,
};

let macSeq = 0;
function lease(key: string, subnet: string, ip: string, extra: Partial<Lease> = {}): Lease {
  macSeq++;
  return {
    key, subnet: parseCidr(subnet), publicIp: parseIPv4(ip), backendType: 'vxlan',
    vtepMac: `0e:00:00:00:${(macSeq >> 8).toString(16).padStart(2, '0')}:${(macSeq & 255).toString(16).padStart(2, '0')}`, vni: 1, ...extra,
  };
}

test('a clean set is accepted in key order', (t) => {
  const r = validateLeases([lease('10.244.3.0-24', '10.244.3.0/24', '192.168.1.3'), lease('10.244.2.0-24', '10.244.2.0/24', '192.168.1.2')], CTX);
  t.deepEqual(r.accepted.map((l) => l.key), ['10.244.2.0-24', '10.244.3.0-24']);
  t.deepEqual(r.rejected, []);
  t.deepEqual(r.own, []);
});

test('our own lease (same key) is set aside, neither peer nor error', (t) => {
  const r = validateLeases([lease('10.244.1.0-24', '10.244.1.0/24', '192.168.1.1')], CTX);
  t.deepEqual(r.accepted, []);
  t.deepEqual(r.rejected, []);
  t.is(r.own.length, 1);
});

test('each per-lease reason', (t) => {
  const cases: [Lease, RejectReason][] = [
    [lease('bad-subnet', '10.244.2.0/24', '192.168.1.2', { subnet: { addr: parseIPv4('10.244.2.7'), prefix: 24 } }), 'bad_subnet'],
    [lease('outside', '10.245.2.0/24', '192.168.1.2'), 'outside_network'],
    [lease('bigger-than-network', '10.0.0.0/8', '192.168.1.2'), 'outside_network'],
    [lease('same-subnet-other-key', '10.244.1.0/24', '192.168.1.9'), 'overlaps_own'],
    [lease('covers-own', '10.244.0.0/23', '192.168.1.9'), 'overlaps_own'],
    [lease('inside-own', '10.244.1.128/25', '192.168.1.9'), 'overlaps_own'],
    [lease('zero-ip', '10.244.2.0/24', '0.0.0.0'), 'bad_public_ip'],
    [lease('loopback', '10.244.2.0/24', '127.0.0.1'), 'bad_public_ip'],
    [lease('multicast', '10.244.2.0/24', '224.0.0.5'), 'bad_public_ip'],
    [lease('broadcast', '10.244.2.0/24', '255.255.255.255'), 'bad_public_ip'],
    [lease('in-pod-net', '10.244.2.0/24', '10.244.2.1'), 'bad_public_ip'],
    [lease('our-ip', '10.244.2.0/24', '192.168.1.1'), 'duplicate_public_ip'],
    [lease('hostgw', '10.244.2.0/24', '192.168.1.2', { backendType: 'host-gw', vtepMac: undefined, vni: undefined }), 'backend_mismatch'],
    [lease('wg', '10.244.2.0/24', '192.168.1.2', { backendType: 'wireguard' }), 'backend_mismatch'],
    [lease('udp', '10.244.2.0/24', '192.168.1.2', { backendType: 'udp' }), 'backend_mismatch'],
    [lease('vni', '10.244.2.0/24', '192.168.1.2', { vni: 4096 }), 'vni_mismatch'],
    [lease('nomac', '10.244.2.0/24', '192.168.1.2', { vtepMac: undefined }), 'bad_vtep_mac'],
  ];
  for (const [l, reason] of cases) {
    const p = leaseProblem(l, CTX);
    t.is(p?.reason, reason, l.key);
    t.is(p?.leaseKey, l.key);
    t.true((p?.message ?? '').includes(JSON.stringify(l.key)), p?.message);
    const r = validateLeases([l], CTX);
    t.deepEqual(r.accepted, []);
    t.is(r.rejected[0]?.reason, reason);
  }
});

test('a vxlan lease without VNI is accepted; host-gw context accepts host-gw leases', (t) => {
  t.is(leaseProblem(lease('novni', '10.244.2.0/24', '192.168.1.2', { vni: undefined }), CTX), null);
  const hg: ValidationContext = { ...CTX, backend: 'host-gw', vni: 0 };
  t.is(leaseProblem(lease('hg', '10.244.2.0/24', '192.168.1.2', { backendType: 'host-gw', vtepMac: undefined, vni: undefined }), hg), null);
  t.is(leaseProblem(lease('vx', '10.244.2.0/24', '192.168.1.2'), hg)?.reason, 'backend_mismatch');
});

test('overlapping peers: the smaller key wins regardless of input order', (t) => {
  const a = lease('node-a', '10.244.2.0/24', '192.168.1.2');
  const b = lease('node-b', '10.244.2.0/24', '192.168.1.3');
  const c = lease('node-c', '10.244.2.128/25', '192.168.1.4');
  const d = lease('node-0', '10.244.4.0/23', '192.168.1.5');
  const e = lease('node-e', '10.244.5.0/24', '192.168.1.6');
  for (const input of [[a, b, c, d, e], [e, d, c, b, a], [c, a, e, b, d]]) {
    const r = validateLeases(input, CTX);
    t.deepEqual(r.accepted.map((l) => l.key), ['node-0', 'node-a']);
    t.deepEqual(r.rejected.map((x) => [x.leaseKey, x.reason]), [['node-b', 'overlaps_peer'], ['node-c', 'overlaps_peer'], ['node-e', 'overlaps_peer']]);
    t.true(r.rejected[0]?.message.includes('"node-a"'));
    t.true(r.rejected[2]?.message.includes('"node-0"'), 'covered by a larger accepted subnet');
  }
});

test('a larger subnet that covers an accepted one is rejected', (t) => {
  const r = validateLeases([lease('a', '10.244.2.0/24', '192.168.1.2'), lease('b', '10.244.0.0/22', '192.168.1.3')], { ...CTX, ownSubnet: parseCidr('10.244.100.0/24') });
  t.deepEqual(r.accepted.map((l) => l.key), ['a']);
  t.is(r.rejected[0]?.reason, 'overlaps_peer');
});

test('invalid leases do not block valid ones (only valid leases compete)', (t) => {
  const r = validateLeases([lease('a', '10.244.2.0/24', '192.168.1.2', { vni: 9 }), lease('b', '10.244.2.0/24', '192.168.1.3')], CTX);
  t.deepEqual(r.accepted.map((l) => l.key), ['b']);
  t.deepEqual(r.rejected.map((x) => x.reason), ['vni_mismatch']);
});

test('duplicate public IP: smaller key wins', (t) => {
  const r = validateLeases([lease('n2', '10.244.3.0/24', '192.168.1.2'), lease('n1', '10.244.2.0/24', '192.168.1.2')], CTX);
  t.deepEqual(r.accepted.map((l) => l.key), ['n1']);
  t.deepEqual(r.rejected.map((x) => [x.leaseKey, x.reason]), [['n2', 'duplicate_public_ip']]);
  t.true(r.rejected[0]?.message.includes('"n1"'));
});

test('a key given twice: the last occurrence counts', (t) => {
  const r = validateLeases([lease('n1', '10.244.2.0/24', '192.168.1.2'), lease('n1', '10.244.3.0/24', '192.168.1.3')], CTX);
  t.is(r.accepted.length, 1);
  t.is(formatIPv4(r.accepted[0]?.publicIp ?? 0), '192.168.1.3');
});

test('key order is code-unit order, not locale order', (t) => {
  const r = validateLeases([lease('b', '10.244.2.0/24', '192.168.1.2'), lease('B', '10.244.2.0/24', '192.168.1.3')], CTX);
  t.deepEqual(r.accepted.map((l) => l.key), ['B']);
});

test('publicIpProblem', (t) => {
  t.is(publicIpProblem(parseIPv4('192.168.1.2')), null);
  t.is(publicIpProblem(parseIPv4('169.254.1.1')), null);
  t.regex(publicIpProblem(parseIPv4('240.0.0.1')) ?? '', /reserved/);
  t.regex(publicIpProblem(parseIPv4('10.244.0.9'), parseCidr('10.244.0.0/16')) ?? '', /inside the cluster pod network/);
});

test('scales: 20 000 leases with conflicts validate quickly and deterministically', (t) => {
  const ctx: ValidationContext = { ...CTX, network: parseCidr('10.0.0.0/8'), ownSubnet: parseCidr('10.0.0.0/24'), ownKey: 'self' };
  const leases: Lease[] = [];
  for (let i = 1; i <= 20000; i++) {
    const subnet = `10.${(i >> 8) & 255}.${i & 255}.0/24`;
    leases.push(lease(`n${String(i).padStart(5, '0')}`, subnet, `172.16.${(i >> 8) & 255}.${i & 255}`));
  }
  leases.push(lease('n00000-dup', '10.0.5.0/24', '172.31.0.1')); /* sorts after n00000, before n00005 */
  leases.push(lease('n99999', '10.1.0.0/16', '172.31.0.2')); /* covers n00256..n00511 */
  const start = process.hrtime.bigint();
  const r = validateLeases(leases, ctx);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.is(r.accepted.length, 20000);
  t.true(r.accepted.some((l) => l.key === 'n00000-dup'));
  t.deepEqual(r.rejected.map((x) => [x.leaseKey, x.reason]).sort(), [['n00005', 'overlaps_peer'], ['n99999', 'overlaps_peer']]);
  t.true(ms < 2000, `${ms} ms`);
});
