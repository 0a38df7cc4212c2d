import test from 'ava';
import { diff, isEmptyDiff, applyDiffToMaps, APPLY_ORDER, type MapDiff } from '../../src/control/reconcile/diff.js';
import { desiredState, type OwnNode } from '../../src/control/reconcile/desired.js';
import { withPeerIds, type DesiredPeerWithId, type DesiredSourceWithId, type PlannedState } from '../../src/control/reconcile/ids.js';
import type { Lease } from '../../src/control/lease/types.js';
import type { PeerValue } from '../../src/maps/peers.js';
import type { TunnelSource } from '../../src/maps/sources.js';
import { parseCidr, parseIPv4, formatCidr } from '../../src/maps/addr.js';

const OWN: OwnNode = {
  subnet: parseCidr('10.244.1.0/24'), network: parseCidr('10.244.0.0/16'), publicIp: parseIPv4('192.168.1.1'),
  backend: 'vxlan', vni: 1, port: 8472, directRouting: true, leaseKey: 'node-1',
};
const UPLINK = { onLinkSubnets: [parseCidr('192.168.1.0/24')] };

function lease(key: string, subnet: string, ip: string, mac: string): Lease {
  return { key, subnet: parseCidr(subnet), publicIp: parseIPv4(ip), backendType: 'vxlan', vtepMac: mac, vni: 1 };
}

type Maps = { peers: Map<string, PeerValue>; sources: Map<number, TunnelSource> };
const empty = (): Maps => ({ peers: new Map(), sources: new Map() });

/** One reconcile round: leases → plan → diff → apply to the plain maps. */
function round(maps: Maps, prev: Map<string, number>, leases: Lease[], capacity = 1000): { plan: PlannedState; d: MapDiff } {
  const plan = withPeerIds(desiredState(OWN, leases, UPLINK), prev, capacity);
  const d = diff(maps, plan);
  applyDiffToMaps(maps, d);
  return { plan, d };
}

const A = lease('node-a', '10.244.2.0/24', '192.168.1.2', '0e:00:00:00:00:0a');
const B = lease('node-b', '10.244.3.0/24', '10.9.0.3', '0e:00:00:00:00:0b');

test('APPLY_ORDER: sources first, peer upserts before peer deletes, sources last', (t) => {
  t.deepEqual([...APPLY_ORDER], ['sourceUpserts', 'peerUpserts', 'peerDeletes', 'sourceDeletes']);
});

test('from empty maps: everything is an upsert; a second diff is empty (minimal)', (t) => {
  const maps = empty();
  const { plan, d } = round(maps, new Map(), [A, B]);
  t.deepEqual(d.peerUpserts.map((u) => [formatCidr(u.subnet), u.value]), [
    ['10.244.2.0/24', { mode: 'direct', vtepMac: '0e:00:00:00:00:0a', peerId: 1, publicIp: parseIPv4('192.168.1.2') }],
    ['10.244.3.0/24', { mode: 'vxlan', vtepMac: '0e:00:00:00:00:0b', peerId: 2, publicIp: parseIPv4('10.9.0.3') }],
  ]);
  t.deepEqual(d.sourceUpserts, [
    { publicIp: parseIPv4('10.9.0.3'), value: { peerId: 2 } },
    { publicIp: parseIPv4('192.168.1.2'), value: { peerId: 1 } },
  ]);
  t.deepEqual(d.peerDeletes, []);
  t.deepEqual(d.sourceDeletes, []);
  const again = diff(maps, plan);
  t.true(isEmptyDiff(again));
  t.true(isEmptyDiff(round(maps, plan.ids, [B, A]).d), 'same leases in another order: nothing to do');
});

test('a removed lease deletes its peer and source, nothing else', (t) => {
  const maps = empty();
  const r1 = round(maps, new Map(), [A, B]);
  const { d } = round(maps, r1.plan.ids, [A]);
  t.deepEqual(d.peerUpserts, []);
  t.deepEqual(d.sourceUpserts, []);
  t.deepEqual(d.peerDeletes.map(formatCidr), ['10.244.3.0/24']);
  t.deepEqual(d.sourceDeletes, [parseIPv4('10.9.0.3')]);
  t.is(maps.peers.size, 1);
  t.is(maps.sources.size, 1);
});

test('a changed VtepMAC or public IP is one upsert (plus the source move), never a delete of the subnet', (t) => {
  const maps = empty();
  const r1 = round(maps, new Map(), [A, B]);
  const B2 = { ...B, vtepMac: '0e:00:00:00:00:bb' };
  const d1 = round(maps, r1.plan.ids, [A, B2]).d;
  t.deepEqual(d1.peerUpserts.map((u) => formatCidr(u.subnet)), ['10.244.3.0/24']);
  t.deepEqual(d1.peerDeletes, []);
  t.deepEqual(d1.sourceUpserts, []);
  const B3 = { ...B2, publicIp: parseIPv4('10.9.0.33') };
  const d2 = round(maps, r1.plan.ids, [A, B3]).d;
  t.deepEqual(d2.peerUpserts.map((u) => u.value.publicIp), [parseIPv4('10.9.0.33')]);
  t.deepEqual(d2.sourceUpserts, [{ publicIp: parseIPv4('10.9.0.33'), value: { peerId: 2 } }]);
  t.deepEqual(d2.sourceDeletes, [parseIPv4('10.9.0.3')]);
  t.deepEqual(d2.peerDeletes, []);
});

test('a subnet moving to another lease is overwritten in place (no gap), with the new peer id', (t) => {
  const maps = empty();
  const r1 = round(maps, new Map(), [A, B]);
  const C = lease('node-c', '10.244.3.0/24', '10.9.0.4', '0e:00:00:00:00:0c'); /* takes over B's subnet */
  const { d, plan } = round(maps, r1.plan.ids, [A, C]);
  t.deepEqual(d.peerDeletes, [], 'the subnet is never deleted');
  t.deepEqual(d.peerUpserts.map((u) => [formatCidr(u.subnet), u.value.peerId, u.value.vtepMac]), [['10.244.3.0/24', 3, '0e:00:00:00:00:0c']]);
  t.deepEqual(plan.freed, [2]);
  t.deepEqual(plan.taken, [3]);
  t.deepEqual(d.sourceUpserts, [{ publicIp: parseIPv4('10.9.0.4'), value: { peerId: 3 } }]);
  t.deepEqual(d.sourceDeletes, [parseIPv4('10.9.0.3')]);
});

test('subnet split / merge: new entries are upserted before old ones are deleted', (t) => {
  const maps = empty();
  const big = lease('node-a', '10.244.4.0/23', '192.168.1.2', '0e:00:00:00:00:0a');
  const r1 = round(maps, new Map(), [big]);
  const small = lease('node-a', '10.244.4.0/24', '192.168.1.2', '0e:00:00:00:00:0a');
  const { d } = round(maps, r1.plan.ids, [small]);
  t.deepEqual(d.peerUpserts.map((u) => formatCidr(u.subnet)), ['10.244.4.0/24']);
  t.deepEqual(d.peerDeletes.map(formatCidr), ['10.244.4.0/23']);
  t.true(APPLY_ORDER.indexOf('peerUpserts') < APPLY_ORDER.indexOf('peerDeletes'));
  t.deepEqual([...maps.peers.keys()], ['10.244.4.0/24']);
});

test('DirectRouting flips are one upsert each (mode change only)', (t) => {
  const maps = empty();
  const r1 = round(maps, new Map(), [A, B]);
  const plan = withPeerIds(desiredState(OWN, [A, B], { onLinkSubnets: [] }), r1.plan.ids, 1000);
  const d = diff(maps, plan);
  t.deepEqual(d.peerUpserts.map((u) => [formatCidr(u.subnet), u.value.mode]), [['10.244.2.0/24', 'vxlan']]);
  t.true(d.sourceUpserts.length + d.sourceDeletes.length + d.peerDeletes.length === 0);
});

test('stale entries not in the desired state are deleted; current keys in any spelling are canonicalised', (t) => {
  const current = {
    peers: new Map<string, PeerValue>([['10.244.9.0/24', { mode: 'vxlan', vtepMac: '0E:00:00:00:00:09', peerId: 9, publicIp: 5 }]]),
    sources: new Map<number, TunnelSource>([[5, { peerId: 9 }]]),
  };
  const peer: DesiredPeerWithId = { leaseKey: 'x', subnet: parseCidr('10.244.9.0/24'), mode: 'vxlan', publicIp: 5, vtepMac: '0e:00:00:00:00:09', peerId: 9 };
  const src: DesiredSourceWithId = { publicIp: 5, leaseKey: 'x', peerId: 9 };
  t.true(isEmptyDiff(diff(current, { peers: [peer], sources: [src] })), 'MAC case does not count as a change');
  const d = diff(current, { peers: [], sources: [] });
  t.deepEqual(d.peerDeletes.map(formatCidr), ['10.244.9.0/24']);
  t.deepEqual(d.sourceDeletes, [5]);
  t.throws(() => diff(current, { peers: [peer, peer], sources: [] }));
  const oddSpelling = { peers: new Map([['10.244.9.5/24', current.peers.get('10.244.9.0/24') as PeerValue]]), sources: current.sources };
  t.true(isEmptyDiff(diff(oddSpelling, { peers: [peer], sources: [src] })), 'host bits in a current key are masked before comparing');
});

test('many rounds converge: after each diff the maps equal the plan', (t) => {
  const maps = empty();
  let prev = new Map<string, number>();
  const all = Array.from({ length: 40 }, (_, i) => lease(`n${String(i).padStart(2, '0')}`, `10.244.${i + 10}.0/24`, `10.9.${i}.1`, `0e:00:00:00:01:${(i + 16).toString(16)}`));
  for (let r = 0; r < 8; r++) {
    const subset = all.filter((_, i) => (i * 7 + r * 3) % 5 !== 0);
    const { plan } = round(maps, prev, subset);
    prev = plan.ids;
    t.deepEqual([...maps.peers.keys()].sort(), plan.peers.map((p) => formatCidr(p.subnet)).sort());
    t.deepEqual([...maps.sources.keys()].sort(), plan.sources.map((s) => s.publicIp).sort());
    t.is(maps.peers.size, subset.length);
    for (const p of plan.peers) t.is(maps.peers.get(formatCidr(p.subnet))?.peerId, p.peerId);
    t.true(isEmptyDiff(diff(maps, plan)));
  }
});
