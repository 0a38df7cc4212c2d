/** The fast path's pod endpoints: cni0 neighbours joined with the bridge FDB (pure). */
import test from 'ava';
import { desiredEndpoints } from '../../src/control/endpoints.js';
import { parseCidr, parseIPv4 } from '../../src/maps/addr.js';

const subnet = parseCidr('10.244.1.0/24');
const ports = [{ ifindex: 7, ifname: 'veth1' }, { ifindex: 9, ifname: 'veth2' }];
const fdb = [
  { mac: '02:00:00:00:00:01', ifname: 'veth1', flags: [] },
  { mac: '02:00:00:00:00:02', ifname: 'veth2' },
  { mac: '0a:00:00:00:00:ff', ifname: 'veth1', flags: ['self'] },
];

test('each pod IP maps to the port its MAC was learned on', (t) => {
  const m = desiredEndpoints([
    { dst: '10.244.1.2', lladdr: '02:00:00:00:00:01', state: ['REACHABLE'] },
    { dst: '10.244.1.3', lladdr: '02:00:00:00:00:02', state: ['STALE'] },
  ], fdb, ports, subnet);
  t.deepEqual([...m.entries()], [
    [parseIPv4('10.244.1.2'), { ifindex: 7, mac: '02:00:00:00:00:01' }],
    [parseIPv4('10.244.1.3'), { ifindex: 9, mac: '02:00:00:00:00:02' }],
  ]);
});

test('unresolved neighbours, foreign subnets, unknown MACs and self entries are left out', (t) => {
  const m = desiredEndpoints([
    { dst: '10.244.1.4', state: ['INCOMPLETE'] },
    { dst: '10.244.1.5', lladdr: '02:00:00:00:00:01', state: ['FAILED'] },
    { dst: '10.244.9.2', lladdr: '02:00:00:00:00:01', state: ['REACHABLE'] },
    { dst: '10.244.1.6', lladdr: '02:00:00:00:00:77', state: ['REACHABLE'] },
    { dst: '10.244.1.7', lladdr: '0a:00:00:00:00:ff', state: ['REACHABLE'] },
    { dst: 'fe80::1', lladdr: '02:00:00:00:00:01', state: ['REACHABLE'] },
  ], fdb, ports, subnet);
  t.is(m.size, 0);
});

test('an endpoint outlives its aged-out FDB entry while the neighbour MAC and the port stay', (t) => {
  const ip = parseIPv4('10.244.1.2');
  const previous = new Map([[ip, { ifindex: 7, mac: '02:00:00:00:00:01' }]]);
  const neigh = [{ dst: '10.244.1.2', lladdr: '02:00:00:00:00:01', state: ['STALE'] }];
  const noLearned = fdb.filter((f) => f.mac !== '02:00:00:00:00:01');
  t.deepEqual([...desiredEndpoints(neigh, noLearned, ports, subnet, previous).entries()], [[ip, { ifindex: 7, mac: '02:00:00:00:00:01' }]]);
  /* Without the previous entry it cannot be built from the tables alone. */
  t.is(desiredEndpoints(neigh, noLearned, ports, subnet).size, 0);
});

test('a kept endpoint goes when its port leaves the bridge, its neighbour MAC changes or the neighbour goes', (t) => {
  const ip = parseIPv4('10.244.1.2');
  const previous = new Map([[ip, { ifindex: 7, mac: '02:00:00:00:00:01' }]]);
  const noLearned = fdb.filter((f) => f.mac !== '02:00:00:00:00:01');
  const neigh = [{ dst: '10.244.1.2', lladdr: '02:00:00:00:00:01', state: ['STALE'] }];
  t.is(desiredEndpoints(neigh, noLearned, ports.filter((p) => p.ifindex !== 7), subnet, previous).size, 0, 'port gone');
  t.is(desiredEndpoints([{ ...neigh[0]!, lladdr: '02:00:00:00:00:31' }], noLearned, ports, subnet, previous).size, 0, 'new MAC');
  t.is(desiredEndpoints([{ ...neigh[0]!, state: ['FAILED'] }], noLearned, ports, subnet, previous).size, 0, 'neighbour unusable');
  t.is(desiredEndpoints([], noLearned, ports, subnet, previous).size, 0, 'neighbour gone');
});

test('a learned FDB entry wins over the previous endpoint (the MAC moved to another port)', (t) => {
  const ip = parseIPv4('10.244.1.2');
  const previous = new Map([[ip, { ifindex: 7, mac: '02:00:00:00:00:02' }]]);
  const m = desiredEndpoints([{ dst: '10.244.1.2', lladdr: '02:00:00:00:00:02', state: ['REACHABLE'] }], fdb, ports, subnet, previous);
  t.deepEqual(m.get(ip), { ifindex: 9, mac: '02:00:00:00:00:02' });
});
