import test from 'ava';
import { desiredState, isOnLink, ZERO_MAC, type OwnNode, type UplinkFacts } from '../../src/control/reconcile/desired.js';
import type { Lease } from '../../src/control/lease/types.js';
import { parseCidr, parseIPv4, formatCidr } from '../../src/maps/addr.js';
import { PEER_MODES } from '../../src/maps/peers.js';

const OWN: OwnNode = {
  subnet: parseCidr('10.244.1.0/24'),
  network: parseCidr('10.244.0.0/16'),
  publicIp: parseIPv4('192.168.1.1'),
  backend: 'vxlan',
  vni: 1,
  port: 8472,
  directRouting: false,
  leaseKey: 'node-1',
};
const UPLINK: UplinkFacts = { onLinkSubnets: [parseCidr('192.168.1.0/24')] };

function lease(key: string, subnet: string, ip: string, extra: Partial<Lease> = {}): Lease {
  const n = Number(subnet.split('.')[2] ?? 0);
  return { key, subnet: parseCidr(subnet), publicIp: parseIPv4(ip), backendType: 'vxlan', vtepMac: `0e:00:00:00:00:${n.toString(16).padStart(2, '0')}`, vni: 1, ...extra };
}
const near = lease('node-2', '10.244.2.0/24', '192.168.1.2');
const far = lease('node-3', '10.244.3.0/24', '10.10.0.3');

test('vxlan: every valid peer is a vxlan peer and a tunnel source', (t) => {
  const s = desiredState(OWN, [far, near], UPLINK);
  t.deepEqual(s.peers, [
    { leaseKey: 'node-2', subnet: near.subnet, mode: 'vxlan', publicIp: near.publicIp, vtepMac: near.vtepMac },
    { leaseKey: 'node-3', subnet: far.subnet, mode: 'vxlan', publicIp: far.publicIp, vtepMac: far.vtepMac },
  ]);
  t.deepEqual(s.sources, [{ publicIp: near.publicIp, leaseKey: 'node-2' }, { publicIp: far.publicIp, leaseKey: 'node-3' }]);
  t.deepEqual(s.rejected, []);
  t.deepEqual(s.unreachable, []);
  for (const p of s.peers) t.true(p.mode in PEER_MODES);
});

test('vxlan + DirectRouting: on-link peers are direct (still tunnel sources), others vxlan', (t) => {
  const s = desiredState({ ...OWN, directRouting: true }, [near, far], UPLINK);
  t.deepEqual(s.peers.map((p) => [p.leaseKey, p.mode]), [['node-2', 'direct'], ['node-3', 'vxlan']]);
  t.deepEqual(s.sources.map((x) => x.leaseKey), ['node-2', 'node-3']);
  t.is(s.peers[0]?.vtepMac, near.vtepMac, 'a direct peer keeps its VtepMAC');
  /* same peers, no on-link subnet: everything is vxlan */
  t.deepEqual(desiredState({ ...OWN, directRouting: true }, [near, far], { onLinkSubnets: [] }).peers.map((p) => p.mode), ['vxlan', 'vxlan']);
  /* several on-link subnets */
  const two = { onLinkSubnets: [parseCidr('192.168.1.0/24'), parseCidr('10.10.0.0/16')] };
  t.deepEqual(desiredState({ ...OWN, directRouting: true }, [near, far], two).peers.map((p) => p.mode), ['direct', 'direct']);
});

test('host-gw: adjacent peers are host-gw (not sources); others unreachable and not programmed', (t) => {
  const hg = (l: Lease): Lease => ({ ...l, backendType: 'host-gw', vtepMac: undefined, vni: undefined });
  const s = desiredState({ ...OWN, backend: 'host-gw', vni: 0, port: 0 }, [hg(near), hg(far)], UPLINK);
  t.deepEqual(s.peers, [{ leaseKey: 'node-2', subnet: near.subnet, mode: 'host-gw', publicIp: near.publicIp, vtepMac: ZERO_MAC }]);
  t.deepEqual(s.sources, []);
  t.is(s.unreachable.length, 1);
  t.is(s.unreachable[0]?.leaseKey, 'node-3');
  t.is(s.unreachable[0]?.reason, 'not_on_link');
  t.regex(s.unreachable[0]?.message ?? '', /10\.10\.0\.3.*192\.168\.1\.0\/24/);
});

test('udp: udp peers, tunnel sources, zero MAC', (t) => {
  const u = (l: Lease): Lease => ({ ...l, backendType: 'udp', vtepMac: undefined, vni: undefined });
  const s = desiredState({ ...OWN, backend: 'udp', vni: 0, port: 8285 }, [u(near), u(far)], UPLINK);
  t.deepEqual(s.peers.map((p) => [p.mode, p.vtepMac]), [['udp', ZERO_MAC], ['udp', ZERO_MAC]]);
  t.is(s.sources.length, 2);
});

test('our own lease never becomes a peer: same key is skipped silently, same subnet is rejected', (t) => {
  const mine = lease('node-1', '10.244.1.0/24', '192.168.1.1');
  const s = desiredState(OWN, [mine, near], UPLINK);
  t.deepEqual(s.peers.map((p) => p.leaseKey), ['node-2']);
  t.deepEqual(s.rejected, []);
  const impostor = lease('node-9', '10.244.1.0/24', '192.168.1.9');
  const s2 = desiredState(OWN, [impostor, near], UPLINK);
  t.deepEqual(s2.peers.map((p) => p.leaseKey), ['node-2']);
  t.deepEqual(s2.rejected.map((r) => [r.leaseKey, r.reason]), [['node-9', 'overlaps_own']]);
  /* etcd mode: the key is the subnet key */
  const s3 = desiredState({ ...OWN, leaseKey: '10.244.1.0-24' }, [{ ...mine, key: '10.244.1.0-24' }], UPLINK);
  t.deepEqual(s3.peers, []);
  t.deepEqual(s3.rejected, []);
});

test('duplicate public IP: the smaller key is the source, the other is rejected', (t) => {
  const twin = lease('node-0', '10.244.7.0/24', '192.168.1.2');
  const s = desiredState(OWN, [near, twin], UPLINK);
  t.deepEqual(s.sources, [{ publicIp: parseIPv4('192.168.1.2'), leaseKey: 'node-0' }]);
  t.deepEqual(s.peers.map((p) => p.leaseKey), ['node-0']);
  t.deepEqual(s.rejected.map((r) => [r.leaseKey, r.reason]), [['node-2', 'duplicate_public_ip']]);
});

test('rejected leases from validation are reported in desiredState', (t) => {
  const s = desiredState(OWN, [lease('x', '10.99.0.0/24', '192.168.1.5'), lease('y', '10.244.9.0/24', '192.168.1.6', { vni: 2 })], UPLINK);
  t.deepEqual(s.rejected.map((r) => r.reason), ['outside_network', 'vni_mismatch']);
  t.deepEqual(s.peers, []);
});

test('isOnLink', (t) => {
  t.true(isOnLink(parseIPv4('192.168.1.200'), UPLINK));
  t.false(isOnLink(parseIPv4('192.168.2.1'), UPLINK));
  t.is(formatCidr(UPLINK.onLinkSubnets[0] ?? parseCidr('0.0.0.0/0')), '192.168.1.0/24');
});
