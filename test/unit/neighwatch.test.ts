/** cni0's neighbour events (src/control/neighwatch.ts): parsing, which events matter, and the watcher's line handling. */
import test from 'ava';
import { spawn } from 'node:child_process';
import { parseNeighEvent, eventChangesEndpoint, watchNeighbours, type NeighEvent } from '../../src/control/neighwatch.js';
import { parseCidr } from '../../src/maps/addr.js';

const subnet = parseCidr('10.244.6.0/24');

test('monitor lines as iproute2 6.1 prints them', (t) => {
  t.deepEqual(parseNeighEvent('10.244.6.2 lladdr B6:AF:E7:BD:EA:22 managed STALE proto 251'), { deleted: false, ip: '10.244.6.2', mac: 'b6:af:e7:bd:ea:22' });
  t.deepEqual(parseNeighEvent('Deleted 10.244.6.2 lladdr b6:af:e7:bd:ea:22 STALE'), { deleted: true, ip: '10.244.6.2', mac: 'b6:af:e7:bd:ea:22' });
  t.deepEqual(parseNeighEvent('10.244.6.3  FAILED'), { deleted: false, ip: '10.244.6.3', mac: null });
  t.deepEqual(parseNeighEvent('miss 10.244.6.4  INCOMPLETE'), { deleted: false, ip: '10.244.6.4', mac: null });
  t.is(parseNeighEvent('fe80::1 lladdr b6:af:e7:bd:ea:22 router STALE'), null, 'IPv6');
  t.is(parseNeighEvent(''), null);
  t.is(parseNeighEvent('10.244.6.5 lladdr nonsense REACHABLE')?.mac, null, 'a malformed MAC is no MAC');
});

test('a new or changed pod MAC of our subnet, or a deleted endpoint\'s entry, asks for a sync', (t) => {
  const ev = (line: string) => parseNeighEvent(line)!;
  const ep = { ifindex: 7, mac: 'b6:af:e7:bd:ea:22' };
  t.true(eventChangesEndpoint(ev('10.244.6.2 lladdr b6:af:e7:bd:ea:22 REACHABLE'), subnet, undefined), 'new pod');
  t.true(eventChangesEndpoint(ev('10.244.6.2 lladdr 02:00:00:00:00:09 REACHABLE'), subnet, ep), 'MAC changed');
  t.false(eventChangesEndpoint(ev('10.244.6.2 lladdr b6:af:e7:bd:ea:22 managed STALE proto 251'), subnet, ep), 'an idle pod re-probed');
  t.false(eventChangesEndpoint(ev('Deleted 10.244.6.2 lladdr b6:af:e7:bd:ea:22 STALE'), subnet, undefined), 'deleted, no endpoint');
  t.true(eventChangesEndpoint(ev('Deleted 10.244.6.2 lladdr b6:af:e7:bd:ea:22 managed STALE proto 251'), subnet, ep), 'an endpoint\'s entry deleted: made managed again');
  t.false(eventChangesEndpoint(ev('Deleted 10.244.7.2 lladdr b6:af:e7:bd:ea:22 STALE'), subnet, ep), 'deleted, another subnet');
  t.false(eventChangesEndpoint(ev('10.244.6.2  FAILED'), subnet, undefined), 'no MAC');
  t.false(eventChangesEndpoint(ev('10.244.7.2 lladdr b6:af:e7:bd:ea:22 REACHABLE'), subnet, undefined), 'another subnet');
});

test('the watcher hands over whole lines, even split across reads, and reports an exit it did not ask for', async (t) => {
  const events: NeighEvent[] = [];
  const exited = new Promise<string>((resolve) => {
    const w = watchNeighbours('cni0', 4, (e) => events.push(e), resolve, (args) => {
      t.deepEqual(args, ['monitor', 'neigh', 'dev', 'cni0']);
      return spawn('sh', ['-c', 'printf "10.244.6.2 lladdr b6:af:e7:bd:ea:22 REA"; sleep 0.1; printf "CHABLE\\nfe80::1 router\\nDeleted 10.244.6.3 lladdr 02:00:00:00:00:03 STALE\\n"; echo "Cannot find device" >&2; exit 1'],
        { stdio: ['ignore', 'pipe', 'pipe'] });
    });
    t.is(w.ifindex, 4);
  });
  t.is(await exited, 'Cannot find device');
  t.deepEqual(events, [
    { deleted: false, ip: '10.244.6.2', mac: 'b6:af:e7:bd:ea:22' },
    { deleted: true, ip: '10.244.6.3', mac: '02:00:00:00:00:03' },
  ]);
});

test('a watcher stopped on purpose does not report its exit', async (t) => {
  let reported = false;
  const child = spawn('sleep', ['30'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const w = watchNeighbours('cni0', 4, () => undefined, () => { reported = true; }, () => child);
  t.true(w.running());
  w.stop();
  await new Promise((r) => child.on('close', r));
  t.false(w.running());
  t.false(reported);
});
