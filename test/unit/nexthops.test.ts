/** Next hops kept resolved by the kernel: which neighbours become managed entries, and the sync against a scripted `ip` (pure logic). */
import test from 'ava';
import { nextHops, planNeighbours, managedLimit, syncNextHops, NEIGH_PROTO, type UplinkNeighRow } from '../../src/control/nexthops.js';
import { parseIPv4 } from '../../src/maps/addr.js';

const routes = [
  { dst: 'default', gateway: '192.168.10.1', flags: [] },
  { dst: '192.168.10.0/24', protocol: 'kernel', scope: 'link', prefsrc: '192.168.10.11' },
  { dst: '172.16.0.0/16', gateway: '192.168.10.254', metric: 100 },
  { dst: '172.16.0.0/16', gateway: '192.168.10.253', metric: 50 },
  { dst: '10.99.0.0/16', type: 'unreachable' },
];
const ips = (...a: string[]) => a.map(parseIPv4);

test('on-link peers are their own next hop; routed peers share their gateway; gateways come first', (t) => {
  const h = nextHops(ips('192.168.10.13', '192.168.20.12', '192.168.10.12', '192.168.30.5', '172.16.4.4'), routes);
  t.deepEqual(h.ordered, ['192.168.10.1', '192.168.10.253', '192.168.10.12', '192.168.10.13']);
  t.is(h.unrouted, 0);
});

test('longest prefix wins over the default route, and the lowest metric among equal prefixes', (t) => {
  t.deepEqual(nextHops(ips('172.16.9.9'), routes).ordered, ['192.168.10.253']);
  t.deepEqual(nextHops(ips('192.168.10.200'), routes).ordered, ['192.168.10.200']);
});

test('a peer behind an unreachable route or without any route through the uplink is counted, not guessed', (t) => {
  const h = nextHops(ips('10.99.1.1', '8.8.8.8'), routes.filter((r) => r.dst !== 'default'));
  t.deepEqual(h.ordered, []);
  t.is(h.unrouted, 2);
});

test('a gateway that is also a peer is listed once', (t) => {
  t.deepEqual(nextHops(ips('192.168.10.1', '192.168.20.5'), routes).ordered, ['192.168.10.1']);
});

const ours = (dst: string, extra: Partial<UplinkNeighRow> = {}): UplinkNeighRow => ({ dst, managed: null, protocol: String(NEIGH_PROTO), state: ['REACHABLE'], ...extra });

test('plan: mark what is not yet a managed entry of ours, delete ours that no peer needs, leave the kernel\'s own alone', (t) => {
  const have: UplinkNeighRow[] = [
    ours('192.168.10.1'),
    { dst: '192.168.10.12', lladdr: '02:00:00:00:00:12', state: ['STALE'] } as UplinkNeighRow, // the kernel's: becomes ours
    ours('192.168.10.13', { managed: undefined }), // ours but not managed (e.g. replaced by hand)
    ours('192.168.10.99'), // ours, peer gone
    { dst: '192.168.10.50', state: ['REACHABLE'] }, // not ours, not needed: untouched
  ].map((r) => { const o = { ...r }; if (o.managed === undefined) delete o.managed; return o; });
  const p = planNeighbours(have, ['192.168.10.1', '192.168.10.12', '192.168.10.13', '192.168.10.14'], 100);
  t.deepEqual(p.mark, ['192.168.10.12', '192.168.10.13', '192.168.10.14']);
  t.deepEqual(p.drop, ['192.168.10.99']);
  t.is(p.overLimit, 0);
});

test('plan: a static neighbour entry (PERMANENT, NOARP) or one another control plane learned is never taken over', (t) => {
  const have: UplinkNeighRow[] = [
    { dst: '192.168.10.1', state: ['PERMANENT'] },
    { dst: '192.168.10.12', state: ['NOARP'] },
    { dst: '192.168.10.13', state: ['REACHABLE'], extern_learn: null },
  ];
  const p = planNeighbours(have, ['192.168.10.1', '192.168.10.12', '192.168.10.13', '192.168.10.14'], 100);
  t.deepEqual(p.mark, ['192.168.10.14']);
  t.deepEqual(p.drop, []);
});

test('plan: the cap keeps the first next hops (gateways) and releases ours beyond it', (t) => {
  const p = planNeighbours([ours('192.168.10.13')], ['192.168.10.1', '192.168.10.12', '192.168.10.13'], 2);
  t.deepEqual(p.mark, ['192.168.10.1', '192.168.10.12']);
  t.deepEqual(p.drop, ['192.168.10.13']);
  t.is(p.overLimit, 1);
});

test('the cap is half of gc_thresh3, 512 when it cannot be read', (t) => {
  t.is(managedLimit(() => '1024\n'), 512);
  t.is(managedLimit(() => '8192'), 4096);
  t.is(managedLimit(() => { throw new Error('ENOENT'); }), 512);
  t.is(managedLimit(() => 'garbage'), 512);
});

test('sync: one batch of changes, then what the kernel kept is what is reported (a refused entry counts as failed with its message)', async (t) => {
  const table: UplinkNeighRow[] = [ours('192.168.10.99')];
  const batches: string[][] = [];
  const io = {
    ip: async (args: string[]) => (args.includes('route') ? JSON.stringify(routes) : JSON.stringify(table)),
    batch: async (lines: readonly string[]) => {
      batches.push([...lines]);
      table.length = 0;
      table.push(ours('192.168.10.1')); /* the kernel took the gateway but refused the on-link peer */
      return 'Error: Invalid argument.\nCommand failed -:2';
    },
    limit: () => 512,
  };
  const r = await syncNextHops('eth0', ips('192.168.20.12', '192.168.10.13'), io);
  t.deepEqual(batches, [[
    'neigh del 192.168.10.99 dev eth0',
    `neigh replace 192.168.10.1 dev eth0 managed protocol ${NEIGH_PROTO}`,
    `neigh replace 192.168.10.13 dev eth0 managed protocol ${NEIGH_PROTO}`,
  ]]);
  t.is(r.managed, 1);
  t.is(r.failed, 1);
  t.is(r.error, 'Error: Invalid argument.');
  t.deepEqual(r.marked, ['192.168.10.1']);
  t.deepEqual(r.dropped, ['192.168.10.99']);
});

test('sync: nothing to change runs no batch command', async (t) => {
  let calls = 0;
  const io = {
    ip: async (args: string[]) => (args.includes('route') ? JSON.stringify(routes) : JSON.stringify([ours('192.168.10.1')])),
    batch: async () => { calls++; return ''; },
    limit: () => 512,
  };
  const r = await syncNextHops('eth0', ips('192.168.20.12'), io);
  t.is(calls, 0);
  t.is(r.managed, 1);
  t.is(r.failed, 0);
  t.is(r.error, null);
});
