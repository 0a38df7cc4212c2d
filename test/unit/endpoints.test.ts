/** The fast path's pod endpoints: cni0 neighbours joined with the bridge FDB (pure), and their managed neighbour entries. */
import test from 'ava';
import { desiredEndpoints, syncPodEndpointsAsync, type EndpointIo } from '../../src/control/endpoints.js';
import { parseCidr, parseIPv4, formatIPv4 } from '../../src/maps/addr.js';

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

test('a kept endpoint goes when its port leaves the bridge or a usable neighbour entry gives the IP another MAC', (t) => {
  const ip = parseIPv4('10.244.1.2');
  const previous = new Map([[ip, { ifindex: 7, mac: '02:00:00:00:00:01' }]]);
  const noLearned = fdb.filter((f) => f.mac !== '02:00:00:00:00:01');
  const neigh = [{ dst: '10.244.1.2', lladdr: '02:00:00:00:00:01', state: ['STALE'] }];
  t.is(desiredEndpoints(neigh, noLearned, ports.filter((p) => p.ifindex !== 7), subnet, previous).size, 0, 'port gone');
  t.is(desiredEndpoints([], noLearned, ports.filter((p) => p.ifindex !== 7), subnet, previous).size, 0, 'port and neighbour gone');
  t.is(desiredEndpoints([{ ...neigh[0]!, lladdr: '02:00:00:00:00:31' }], noLearned, ports, subnet, previous).size, 0, 'new MAC');
});

test('an endpoint outlives its neighbour entry (garbage-collected, or failed) while its port stays on the bridge', (t) => {
  const ip = parseIPv4('10.244.1.2');
  const ep = { ifindex: 7, mac: '02:00:00:00:00:01' };
  const previous = new Map([[ip, ep]]);
  t.deepEqual(desiredEndpoints([], fdb, ports, subnet, previous).get(ip), ep, 'neighbour gone, FDB entry kept');
  const noLearned = fdb.filter((f) => f.mac !== '02:00:00:00:00:01');
  t.deepEqual(desiredEndpoints([], noLearned, ports, subnet, previous).get(ip), ep, 'neighbour and FDB entry gone');
  t.deepEqual(desiredEndpoints([{ dst: '10.244.1.2', state: ['FAILED'] }], noLearned, ports, subnet, previous).get(ip), ep, 'neighbour failed');
  /* A previous entry outside the subnet is never carried. */
  const foreign = new Map([[parseIPv4('10.244.9.2'), ep]]);
  t.is(desiredEndpoints([], fdb, ports, subnet, foreign).size, 0);
});

test('a learned FDB entry wins over the previous endpoint (the MAC moved to another port)', (t) => {
  const ip = parseIPv4('10.244.1.2');
  const previous = new Map([[ip, { ifindex: 7, mac: '02:00:00:00:00:02' }]]);
  const m = desiredEndpoints([{ dst: '10.244.1.2', lladdr: '02:00:00:00:00:02', state: ['REACHABLE'] }], fdb, ports, subnet, previous);
  t.deepEqual(m.get(ip), { ifindex: 9, mac: '02:00:00:00:00:02' });
});

/* syncPodEndpointsAsync against recorded tables: the batch it sends is the effect under test. */
function fakeIo(neigh: unknown[], batchErr = '') {
  const sent: string[] = [];
  const io: EndpointIo = {
    ip: async (args) => JSON.stringify(args.includes('neigh') ? neigh : ports),
    bridge: async () => JSON.stringify(fdb),
    batch: async (lines) => { sent.push(...lines); return batchErr; },
    limit: () => 512,
  };
  return { io, sent };
}

test('pods\' neighbour entries become managed entries of ours; ours whose pod has gone are deleted', async (t) => {
  const { io, sent } = fakeIo([
    { dst: '10.244.1.2', lladdr: '02:00:00:00:00:01', state: ['STALE'] },
    { dst: '10.244.1.3', lladdr: '02:00:00:00:00:02', state: ['REACHABLE'], managed: null, protocol: '251' },
    { dst: '10.244.1.9', state: ['FAILED'], managed: null, protocol: '251' },
    { dst: '10.244.1.10', lladdr: '02:00:00:00:00:99', state: ['PERMANENT'] },
  ]);
  const r = await syncPodEndpointsAsync('cni0', subnet, new Map(), io, true);
  t.deepEqual([...r.endpoints.keys()].map(formatIPv4), ['10.244.1.2', '10.244.1.3']);
  t.deepEqual(sent, ['neigh del 10.244.1.9 dev cni0', 'neigh replace 10.244.1.2 dev cni0 managed protocol 251'],
    'the unmanaged pod entry is marked, the already-managed one left alone, ours of a gone pod deleted, a static one of someone else untouched');
  t.deepEqual(r.marked, ['10.244.1.2']);
  t.deepEqual(r.dropped, ['10.244.1.9']);
  t.is(r.error, null);
});

test('a kept endpoint whose neighbour entry was deleted gets it back as a managed entry (the kernel resolves it)', async (t) => {
  const ip = parseIPv4('10.244.1.2');
  const { io, sent } = fakeIo([], 'RTNETLINK answers: Invalid argument');
  const r = await syncPodEndpointsAsync('cni0', subnet, new Map([[ip, { ifindex: 7, mac: '02:00:00:00:00:01' }]]), io, true);
  t.true(r.endpoints.has(ip));
  t.deepEqual(sent, ['neigh replace 10.244.1.2 dev cni0 managed protocol 251']);
  t.is(r.error, 'RTNETLINK answers: Invalid argument', 'the kernel\'s refusal is reported');
});

test('--managed-neighbours=off: endpoints only, no neighbour changes', async (t) => {
  const { io, sent } = fakeIo([{ dst: '10.244.1.2', lladdr: '02:00:00:00:00:01', state: ['STALE'] }]);
  const r = await syncPodEndpointsAsync('cni0', subnet, new Map(), io, false);
  t.is(r.endpoints.size, 1);
  t.deepEqual(sent, []);
});
