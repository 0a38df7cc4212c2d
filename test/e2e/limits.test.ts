/**
 * Limits, on a lab with real agents and etcd:
 *
 * - the peer map is full (n1 runs with --max-peers=3: two peers fit): a
 *   third peer is rejected with reason `capacity` (state, log, metric), the
 *   existing peers are untouched and keep forwarding, and the waiting lease
 *   is programmed as soon as a slot frees;
 * - a lease overlapping our own subnet is rejected (`overlaps_own`) and
 *   reported, the rest keeps working;
 * - the uplink disappears (moved to another namespace, as a driver reload
 *   would remove it) and returns: the agent reports it (log, readiness,
 *   flannel_bpf_link_events_total), recreates the VXLAN device that went with
 *   it (same VtepMAC), re-attaches, and pod traffic flows again.
 */
import test from 'ava';
import fs from 'node:fs';
import { Lab, ETCD_PREFIX, type LabPod } from '../../src/cli/lab/lab.js';
import { etcdctl } from '../../src/cli/lab/etcd.js';
import { addNetns, nsExec } from '../../src/cli/lab/netns.js';
import { readStateFile } from '../../src/control/state.js';
import { ping, pingFlood, labRunner } from '../helpers/traffic.js';
import { hookPrograms, mapState } from '../helpers/lab-inspect.js';
import { scrape, metric, readyz } from '../helpers/scrape.js';
import { requireRoot } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

requireRoot();

let lab: Lab;
test.before(async () => {
  lab = await Lab.up({ nodes: 0, backend: 'vxlan', podsPerNode: 0, segments: 2 });
  const nodes = [lab.addNode(1, { segment: 'a', agentArgs: ['--max-peers=3'] }), lab.addNode(2, { segment: 'a' }), lab.addNode(3, { segment: 'b' })];
  await lab.waitReady(nodes);
  for (const n of nodes) lab.addPod(n.name);
  await lab.settle();
});
test.after.always(() => { lab?.down(); });

function pod(node: string): LabPod {
  const p = lab.state.pods.find((x) => x.node === node);
  if (!p) throw new Error(`no pod on ${node}`);
  return p;
}

const leaseKey = (subnet: string) => subnet.replace('/', '-');

test.serial('peer map full: the extra lease is rejected with a clear error and a metric, existing peers untouched; programmed once a slot frees', async (t) => {
  const n1 = lab.node('n1');
  const before = mapState(n1.pinDir);
  t.is(before.subnets.length, 2, 'n1 holds its two peers (--max-peers=3: ids 1 and 2)');
  const flood = pingFlood(labRunner, pod('n1').ns, pod('n2').ip, 600, 5);

  const n4 = lab.addNode(4, { segment: 'b' });
  await lab.waitReady([n4]);
  const p4 = lab.addPod('n4');
  const st = await waitFor(() => readStateFile(n1.stateDir)?.rejected.find((r) => r.leaseKey === leaseKey(n4.subnet!)), { what: 'n4 rejected by n1', timeoutMs: 15_000 });
  t.is(st.reason, 'capacity');
  t.regex(st.message, /--max-peers=3.*raise --max-peers/, 'the message names the limit and the remedy');
  const log = fs.readFileSync(n1.logFile, 'utf8').split('\n').filter((l) => l.includes(leaseKey(n4.subnet!)) && l.includes('capacity'));
  t.true(log.length >= 1, 'one log line names the lease and the reason');
  t.regex(log[0] ?? '', /"level":"(error|warn)"/);

  const m = scrape(n1);
  t.true((metric(m, 'flannel_bpf_lease_rejections_total', { reason: 'capacity' }) ?? 0) >= 1, 'flannel_bpf_lease_rejections_total{reason="capacity"}');
  t.is(metric(m, 'flannel_bpf_peers', { state: 'rejected' }), 1);
  t.is(metric(m, 'flannel_bpf_peers', { state: 'programmed' }), 2);
  t.is(metric(m, 'flannel_bpf_map_capacity', { map: 'fbpf_peers' }), 3);

  t.deepEqual(mapState(n1.pinDir).subnets, before.subnets, 'the existing peers are untouched');
  const f = await flood.done;
  t.is(f.received, f.sent, `n1→n2 lost nothing while the map was full (${f.summary})`);
  t.deepEqual(ping(labRunner, pod('n2').ns, p4.ip), { sent: 3, received: 3 }, 'nodes with room program the new peer');
  t.is(ping(labRunner, pod('n1').ns, p4.ip, { count: 2 }).received, 0, 'n1 does not reach the peer it could not program');

  /* A slot frees: the waiting lease is programmed. */
  lab.removeNode('n3');
  await waitFor(() => mapState(n1.pinDir).subnets.includes(n4.subnet!), { what: 'n4 programmed on n1 once n3 left', timeoutMs: 15_000 });
  t.deepEqual(ping(labRunner, pod('n1').ns, p4.ip), { sent: 3, received: 3 });
  await waitFor(() => !readStateFile(n1.stateDir)?.rejected.some((r) => r.leaseKey === leaseKey(n4.subnet!)), { what: 'the rejection cleared' });
});

test.serial('a lease overlapping our own subnet is rejected (overlaps_own) and reported; the rest keeps working', async (t) => {
  const n1 = lab.node('n1');
  const half = `${n1.subnet!.replace(/\.0\/24$/, '.128')}/25`;
  const key = `${ETCD_PREFIX}/subnets/${leaseKey(half)}`;
  etcdctl(lab.state.etcd!, ['put', key, '{"PublicIP":"192.168.10.99","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:00:00:00:09:99"}}']);
  t.teardown(() => { etcdctl(lab.state.etcd!, ['del', key]); });
  const r = await waitFor(() => readStateFile(n1.stateDir)?.rejected.find((x) => x.leaseKey === leaseKey(half)), { what: 'the overlapping lease rejected', timeoutMs: 15_000 });
  t.is(r.reason, 'overlaps_own');
  t.true((metric(scrape(n1), 'flannel_bpf_lease_rejections_total', { reason: 'overlaps_own' }) ?? 0) >= 1);
  t.false(mapState(n1.pinDir).subnets.includes(half), 'not programmed');
  const other = lab.state.nodes.find((n) => n.name !== 'n1')!;
  const r2 = await waitFor(() => readStateFile(other.stateDir)?.rejected.find((x) => x.leaseKey === leaseKey(half)), { what: `${other.name} rejects it too` });
  t.is(r2.reason, 'overlaps_peer', 'other nodes see it overlap n1\'s lease');
  t.deepEqual((await lab.check()).failures, [], 'every pod still reaches every pod');
});

test.serial('the uplink disappears and returns: reported (log, metric), device recreated with the same VtepMAC, programs re-attached, traffic back', async (t) => {
  const n2 = lab.node('n2');
  const p1 = pod('n1');
  const p2 = pod('n2');
  t.deepEqual(ping(labRunner, p1.ns, p2.ip), { sent: 3, received: 3 });
  const vtepBefore = readStateFile(n2.stateDir)!.vtepMac;
  const hold = `${lab.state.prefix}-hold`;
  addNetns(hold);
  lab.state.namespaces.push(hold); /* removed by lab.down() */

  nsExec(n2.ns, `ip link set eth0 netns ${hold}`);
  await waitFor(() => fs.readFileSync(n2.logFile, 'utf8').includes('uplink eth0 is gone'), { what: 'the agent to report the uplink gone', timeoutMs: 10_000 });
  t.is(ping(labRunner, p1.ns, p2.ip, { count: 2 }).received, 0, 'no traffic while the uplink is away');

  nsExec(hold, `ip link set eth0 netns ${n2.ns}`);
  nsExec(n2.ns, `ip addr add ${n2.ip}/24 dev eth0; ip link set eth0 up; ip route replace default via ${n2.gateway}`);
  await waitFor(() => fs.readFileSync(n2.logFile, 'utf8').includes('uplink eth0 is back'), { what: 'the agent to see the uplink back', timeoutMs: 10_000 });
  const hooks = await waitFor(() => {
    const h = hookPrograms(n2.ns);
    return h.uplinkIngress && h.devEgress ? h : null;
  }, { what: 'programs re-attached', timeoutMs: 10_000 });
  t.truthy(hooks.devIngress, 'the fast path is back on the device too');
  const dev = JSON.parse(nsExec(n2.ns, 'ip -j link show dev flannel-bpf')) as Array<{ address: string }>;
  t.is(dev[0]?.address, vtepBefore, 'the device has the VtepMAC peers know');

  await waitFor(() => ping(labRunner, p1.ns, p2.ip, { count: 1 }).received === 1, { what: 'traffic n1→n2 again', timeoutMs: 10_000 });
  t.deepEqual(ping(labRunner, p2.ns, p1.ip), { sent: 3, received: 3 }, 'and n2→n1');
  const m = scrape(n2);
  t.is(metric(m, 'flannel_bpf_link_events_total', { event: 'uplink_lost' }), 1);
  t.is(metric(m, 'flannel_bpf_link_events_total', { event: 'uplink_returned' }), 1);
  t.is(metric(m, 'flannel_bpf_link_events_total', { event: 'device_recreated' }), 1, 'the VXLAN device went with its uplink and was recreated');
  await waitFor(() => readyz(n2).status === 200, { what: 'n2 ready again', timeoutMs: 15_000 });
});
