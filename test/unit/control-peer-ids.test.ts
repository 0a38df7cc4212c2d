import test from 'ava';
import { assignPeerIds, recoverPeerIds, withPeerIds } from '../../src/control/reconcile/ids.js';
import { desiredState, type OwnNode } from '../../src/control/reconcile/desired.js';
import type { Lease } from '../../src/control/lease/types.js';
import type { PeerValue } from '../../src/maps/peers.js';
import { parseCidr, parseIPv4 } from '../../src/maps/addr.js';

const keys = (...k: string[]): { leaseKey: string }[] => k.map((leaseKey) => ({ leaseKey }));

test('first assignment: ids 1.. in key order, never 0, all taken', (t) => {
  const a = assignPeerIds(new Map(), keys('c', 'a', 'b'), 100);
  t.deepEqual([...a.ids], [['a', 1], ['b', 2], ['c', 3]]);
  t.deepEqual(a.taken, [1, 2, 3]);
  t.deepEqual(a.freed, []);
  t.deepEqual(a.rejected, []);
});

test('unchanged keys keep their ids; nothing taken or freed', (t) => {
  const prev = new Map([['a', 7], ['b', 3]]);
  const a = assignPeerIds(prev, keys('b', 'a'), 100);
  t.deepEqual(a.ids, prev);
  t.deepEqual(a.taken, []);
  t.deepEqual(a.freed, []);
});

test('freed ids are reported and recycled lowest first, from the next round on', (t) => {
  const r1 = assignPeerIds(new Map(), keys('a', 'b', 'c', 'd'), 100); /* a1 b2 c3 d4 */
  const r2 = assignPeerIds(r1.ids, keys('a', 'd', 'e'), 100); /* b, c leave; e is new */
  t.deepEqual(r2.freed, [2, 3]);
  t.is(r2.ids.get('e'), 5, 'ids freed this round are not reused in the same round');
  t.deepEqual(r2.taken, [5]);
  const r3 = assignPeerIds(r2.ids, keys('a', 'd', 'e', 'f', 'g', 'h'), 100);
  t.deepEqual([r3.ids.get('f'), r3.ids.get('g'), r3.ids.get('h')], [2, 3, 6]);
  t.deepEqual(r3.taken, [2, 3, 6]);
  t.is(r3.ids.get('a'), 1);
  t.is(r3.ids.get('d'), 4);
});

test('ids freed this round are recycled when nothing else is left', (t) => {
  const r1 = assignPeerIds(new Map(), keys('a', 'b', 'c'), 4); /* ids 1..3 */
  const r2 = assignPeerIds(r1.ids, keys('a', 'c', 'z'), 4);
  t.is(r2.ids.get('z'), 2);
  t.deepEqual(r2.freed, [2]);
  t.deepEqual(r2.taken, [2]);
});

test('capacity: at most capacity-1 peers; the excess (largest new keys) is rejected, existing untouched', (t) => {
  const r1 = assignPeerIds(new Map(), keys('m', 'n'), 4); /* ids 1, 2; one left */
  const r2 = assignPeerIds(r1.ids, keys('m', 'n', 'b', 'a', 'z'), 4);
  t.is(r2.ids.get('m'), 1);
  t.is(r2.ids.get('n'), 2);
  t.is(r2.ids.get('a'), 3);
  t.deepEqual(r2.rejected.map((r) => [r.leaseKey, r.reason]), [['b', 'capacity'], ['z', 'capacity']]);
  t.regex(r2.rejected[0]?.message ?? '', /--max-peers=4/);
  t.regex(r2.rejected[0]?.message ?? '', /raise --max-peers/);
  t.deepEqual(r2.taken, [3]);
  const one = assignPeerIds(new Map(), keys('a'), 1);
  t.is(one.ids.size, 0);
  t.is(one.rejected[0]?.reason, 'capacity');
  t.throws(() => assignPeerIds(new Map(), keys('a'), 0), { instanceOf: RangeError });
});

test('previous ids out of range (capacity shrunk) or shared are reassigned', (t) => {
  const a = assignPeerIds(new Map([['a', 9], ['b', 1], ['c', 1], ['d', 0]]), keys('a', 'b', 'c', 'd'), 5);
  t.is(a.ids.get('b'), 1);
  t.deepEqual([a.ids.get('a'), a.ids.get('c'), a.ids.get('d')], [2, 3, 4]);
  t.deepEqual(a.taken, [2, 3, 4]);
  t.deepEqual(a.freed, [9]);
  t.is(new Set(a.ids.values()).size, 4);
});

test('deterministic: same inputs in any order give the same result', (t) => {
  const prev = new Map([['x', 2]]);
  const one = assignPeerIds(prev, keys('q', 'x', 'b', 'k'), 50);
  const two = assignPeerIds(prev, keys('k', 'b', 'x', 'q'), 50);
  t.deepEqual([...one.ids].sort(), [...two.ids].sort());
  t.deepEqual(one.taken, two.taken);
});

test('large: 65535 peers fill --max-peers 65536 exactly; one more is rejected', (t) => {
  const many = Array.from({ length: 65536 }, (_, i) => ({ leaseKey: `n${String(i).padStart(6, '0')}` }));
  const a = assignPeerIds(new Map(), many, 65536);
  t.is(a.ids.size, 65535);
  t.is(Math.max(...a.ids.values()), 65535);
  t.false([...a.ids.values()].includes(0));
  t.deepEqual(a.rejected.map((r) => r.leaseKey), ['n065535']);
});

test('recoverPeerIds adopts ids from the peers map by subnet (restart keeps counters)', (t) => {
  const current = new Map<string, PeerValue>([
    ['10.244.2.0/24', { mode: 'vxlan', vtepMac: '0e:00:00:00:00:02', peerId: 12, publicIp: 1 }],
    ['10.244.3.0/24', { mode: 'vxlan', vtepMac: '0e:00:00:00:00:03', peerId: 12, publicIp: 2 }],
    ['10.244.4.0/24', { mode: 'vxlan', vtepMac: '0e:00:00:00:00:04', peerId: 0, publicIp: 3 }],
  ]);
  const r = recoverPeerIds(current, [
    { leaseKey: 'b', subnet: parseCidr('10.244.3.0/24') },
    { leaseKey: 'a', subnet: parseCidr('10.244.2.0/24') },
    { leaseKey: 'c', subnet: parseCidr('10.244.4.0/24') },
    { leaseKey: 'd', subnet: parseCidr('10.244.5.0/24') },
  ]);
  t.deepEqual([...r], [['a', 12]]);
});

test('withPeerIds drops peers and sources that do not fit and reports them', (t) => {
  const own: OwnNode = { subnet: parseCidr('10.244.1.0/24'), network: parseCidr('10.244.0.0/16'), publicIp: parseIPv4('192.168.1.1'), backend: 'vxlan', vni: 1, port: 8472, directRouting: false };
  const leases: Lease[] = [2, 3, 4].map((n) => ({ key: `node-${n}`, subnet: parseCidr(`10.244.${n}.0/24`), publicIp: parseIPv4(`192.168.1.${n}`), backendType: 'vxlan', vtepMac: `0e:00:00:00:00:0${n}`, vni: 1 }));
  const p = withPeerIds(desiredState(own, leases, { onLinkSubnets: [] }), new Map(), 3);
  t.deepEqual(p.peers.map((x) => [x.leaseKey, x.peerId]), [['node-2', 1], ['node-3', 2]]);
  t.deepEqual(p.sources.map((x) => [x.leaseKey, x.peerId]), [['node-2', 1], ['node-3', 2]]);
  t.deepEqual(p.rejected.map((r) => [r.leaseKey, r.reason]), [['node-4', 'capacity']]);
  t.deepEqual(p.taken, [1, 2]);
});
