/**
 * The end-to-end matrix of issue 4, registered per backend: a 3-node lab
 * (two L2 segments joined by a router, except host-gw: one segment) with two
 * pods per node made by the real CNI plugins, real agents, real etcd.
 */
import test from 'ava';
import { Lab, type LabBackend, type LabPod } from '../../src/cli/lab/lab.js';
import { nsExec } from '../../src/cli/lab/netns.js';
import { NodeMaps } from '../../src/maps/index.js';
import { formatCidr, parseIPv4 } from '../../src/maps/addr.js';
import { FAST_EVENTS } from '../../src/maps/reasons.js';
import type { FdbRow } from '../../src/control/endpoints.js';
import { readSubnetEnv } from '../../src/control/subnet-env.js';
import { tcpTransfer, ping, labRunner } from './traffic.js';
import { requireRoot } from './netns.js';
import { waitFor } from './wait.js';

const MB100 = 100 * 1024 * 1024;

/** The node's neighbour entry on cni0 for a pod address (`managed` is present, as null, on managed entries). */
function podNeighbour(nodeNs: string, ip: string): { lladdr?: string; managed?: unknown } | undefined {
  return (JSON.parse(nsExec(nodeNs, `ip -j -d neigh show ${ip} dev cni0`)) as Array<{ lladdr?: string; managed?: unknown }>)[0];
}

export function registerLabMatrix(label: string, backend: LabBackend, opts: { directRouting?: boolean } = {}): void {
  requireRoot();
  const oneSegment = backend === 'host-gw';
  let lab: Lab;

  test.before(async () => {
    lab = await Lab.up({ nodes: 3, backend, directRouting: opts.directRouting, podsPerNode: 2, segments: oneSegment ? 1 : 2 });
  });
  test.after.always(() => { lab?.down(); });

  const pod = (name: string): LabPod => {
    const p = lab.state.pods.find((x) => x.name === name);
    if (!p) throw new Error(`no pod ${name}`);
    return p;
  };
  const gw = (node: string) => lab.node(node).subnet!.replace(/\.0\/24$/, '.1');
  const devAddr = (node: string) => lab.node(node).subnet!.replace(/\/24$/, '');

  test.serial(`${label}: every pod reaches every pod — same node, across the L2 segment${oneSegment ? '' : ', across the router'}`, async (t) => {
    const m = await lab.check();
    t.deepEqual(m.failures, []);
    if (m.retried.length) t.log(`answered on the second ping only: ${m.retried.join(', ')}`);
    t.is(m.ok.flat().filter(Boolean).length, 36);
    const seg = (n: string) => lab.node(n).segment;
    t.is(seg('n1'), seg('n2'), 'n1 and n2 share a segment');
    if (!oneSegment) t.not(seg('n1'), seg('n3'), 'n3 is only reachable through the router');
    const maps = NodeMaps.fromPinDir(lab.node('n1').pinDir);
    t.teardown(() => maps.close());
    const modes = Object.fromEntries(maps.peers.entries().map(([k, v]) => [formatCidr(k), v.mode]));
    const expected = (n: string) => (backend === 'udp' ? 'udp' : backend === 'host-gw' ? 'host-gw'
      : opts.directRouting && seg(n) === seg('n1') ? 'direct' : 'vxlan');
    t.deepEqual(modes, { [lab.node('n2').subnet!]: expected('n2'), [lab.node('n3').subnet!]: expected('n3') }, 'per-peer mode on n1');
  });

  test.serial(`${label}: host → remote pod, and remote pod → host (node addresses on the overlay)`, (t) => {
    t.deepEqual(ping(labRunner, lab.node('n1').ns, pod('n3p1').ip), { sent: 3, received: 3 }, 'node n1 → pod on n3');
    t.deepEqual(ping(labRunner, pod('n3p2').ns, gw('n1')), { sent: 3, received: 3 }, 'pod on n3 → n1\'s cni0');
    t.deepEqual(ping(labRunner, pod('n3p2').ns, devAddr('n1')), { sent: 3, received: 3 }, 'pod on n3 → n1\'s flannel-bpf address');
    t.deepEqual(ping(labRunner, pod('n1p1').ns, lab.node('n3').ip), { sent: 3, received: 3 }, 'pod on n1 → n3\'s public IP (masqueraded out)');
  });

  test.serial(`${label}: 100 MB TCP ${oneSegment ? 'across the segment' : 'across the router'} arrives intact (sha256)`, async (t) => {
    const r = await tcpTransfer(labRunner, pod('n1p1').ns, pod('n3p1').ns, pod('n3p1').ip, MB100);
    t.is(r.bytes, MB100);
    t.is(r.sha256Received, r.sha256Sent);
    t.log(`100 MB n1p1 → n3p1 at ${r.gbps.toFixed(2)} Gbit/s`);
    const maps = NodeMaps.fromPinDir(lab.node('n1').pinDir);
    t.teardown(() => maps.close());
    const peer = maps.peers.entries().find(([k]) => formatCidr(k) === lab.node('n3').subnet);
    t.truthy(peer, 'n3 is programmed on n1');
    const stats = maps.peerStats.get(peer![1].peerId);
    t.true((stats?.txBytes ?? 0n) >= BigInt(MB100), `n1 counted ≥ 100 MB towards n3 (${stats?.txBytes})`);
  });

  test.serial(`${label}: the largest ping that fits the pod MTU with DF set gets through; one byte more fails cleanly`, (t) => {
    const env = readSubnetEnv(lab.node('n1').subnetFile);
    const mtu = env?.mtu ?? 0;
    t.is(mtu, backend === 'vxlan' ? 1450 : backend === 'udp' ? 1472 : 1500, 'FLANNEL_MTU');
    t.is(Number(/ mtu (\d+)/.exec(nsExec(pod('n1p1').ns, 'ip -o link show dev eth0'))?.[1]), mtu, 'the CNI bridge plugin gave the pod FLANNEL_MTU');
    t.deepEqual(ping(labRunner, pod('n1p1').ns, pod('n3p1').ip, { count: 2, size: mtu - 28, df: true }), { sent: 2, received: 2 });
    let out = '';
    try { out = nsExec(pod('n1p1').ns, `ping -c 1 -W 2 -M do -s ${mtu - 27} ${pod('n3p1').ip} 2>&1`); } catch (err) { out = (err as Error).message; }
    t.regex(out, /message too long|mtu/i, 'refused at the sender with EMSGSIZE, not lost on the way');
  });

  test.serial(`${label}: an idle pod keeps its fast-path endpoint after cni0's FDB and the neighbour GC forget it, and the next flow goes straight into it`, async (t) => {
    /*
     * cni0 ages a silent pod's MAC out of its FDB (300 s by default; 2 s here), and the
     * kernel's neighbour GC deletes its STALE neighbour entry once the machine holds more
     * than gc_thresh1 neighbours (deleted by hand here). The pod and its veth stay.
     */
    const n3 = lab.node('n3');
    const target = pod('n3p2');
    const maps = NodeMaps.fromPinDir(n3.pinDir);
    t.teardown(() => maps.close());
    const key = parseIPv4(target.ip);
    t.true((await tcpTransfer(labRunner, pod('n1p2').ns, target.ns, target.ip, 1 << 20)).bytes === 1 << 20, 'a first flow');
    const ep = await waitFor(() => maps.endpoints.get(key), { what: `n3's endpoint for ${target.ip}` });
    const learned = () => (JSON.parse(nsExec(n3.ns, 'bridge -j fdb show br cni0')) as Array<FdbRow & { state?: string }>)
      .some((f) => f.mac?.toLowerCase() === ep.mac && !f.flags?.includes('self') && f.state !== 'permanent');
    t.true(learned(), 'the pod\'s MAC is learned on cni0');
    nsExec(n3.ns, 'ip link set cni0 type bridge ageing_time 200');
    t.teardown(() => { try { nsExec(n3.ns, 'ip link set cni0 type bridge ageing_time 30000'); } catch { /* the lab is going */ } });
    await waitFor(() => !learned() || null, { timeoutMs: 20_000, what: 'cni0 to forget the pod\'s MAC' });
    nsExec(n3.ns, `ip neigh del ${target.ip} dev cni0`);
    t.notRegex(nsExec(n3.ns, `ip neigh show ${target.ip} dev cni0`), /lladdr/, 'the neighbour entry is gone');
    /*
     * The deletion event makes the agent sync: the pod's entry becomes a managed one again and the kernel
     * resolves it, well before the 10 s poll, so the next flow's first packet finds it (else conntrack
     * would pin the whole flow to the compat path).
     */
    const entry = await waitFor(() => {
      const e = podNeighbour(n3.ns, target.ip);
      return e && 'managed' in e && e.lladdr ? e : null;
    }, { timeoutMs: 3000, what: 'a managed, resolved neighbour entry for the pod again' });
    t.is(entry.lladdr, ep.mac);
    t.deepEqual(maps.endpoints.get(key), ep, 'the endpoint is still there, unchanged');
    const peerIdx = FAST_EVENTS.indexOf('fast_rx_peer');
    const before = maps.fastStats.get(peerIdx)?.packets ?? 0n;
    const r = await tcpTransfer(labRunner, pod('n1p2').ns, target.ns, target.ip, 4 << 20);
    t.is(r.sha256Received, r.sha256Sent);
    const after = maps.fastStats.get(peerIdx)?.packets ?? 0n;
    t.true(after > before, `n3 delivered the new flow into the pod with bpf_redirect_peer (${before} → ${after})`);
  });

  test.serial(`${label}: a new pod's endpoint follows the kernel learning its MAC (neighbour monitor on cni0), not the next poll`, async (t) => {
    const n3 = lab.node('n3');
    const fresh = lab.addPod('n3');
    const maps = NodeMaps.fromPinDir(n3.pinDir);
    t.teardown(() => maps.close());
    const key = parseIPv4(fresh.ip);
    t.is(maps.endpoints.get(key) ?? null, null, 'no endpoint before the pod has talked');
    const t0 = Date.now();
    t.deepEqual(ping(labRunner, pod('n1p1').ns, fresh.ip, { count: 1 }), { sent: 1, received: 1 });
    /* The poll runs every 10 s while the monitor runs: within 1 s means the event did it. */
    const ep = await waitFor(() => maps.endpoints.get(key), { timeoutMs: 1000, intervalMs: 20, what: `n3's endpoint for the new pod ${fresh.ip}` });
    t.log(`endpoint ${Date.now() - t0} ms after the first ping was sent`);
    t.is(podNeighbour(n3.ns, fresh.ip)?.lladdr, ep.mac, 'the endpoint has the MAC the kernel learned');
    await waitFor(() => {
      const e = podNeighbour(n3.ns, fresh.ip);
      return e && 'managed' in e ? true : null;
    }, { timeoutMs: 2000, what: 'the new pod\'s neighbour entry to become a managed one' });
    const peerIdx = FAST_EVENTS.indexOf('fast_rx_peer');
    const before = maps.fastStats.get(peerIdx)?.packets ?? 0n;
    const r = await tcpTransfer(labRunner, pod('n1p2').ns, fresh.ns, fresh.ip, 4 << 20);
    t.is(r.sha256Received, r.sha256Sent);
    t.true((maps.fastStats.get(peerIdx)?.packets ?? 0n) > before, 'its first TCP flow went straight into it (bpf_redirect_peer)');
  });

  if (backend === 'host-gw') {
    test.serial('host-gw: a peer behind the router is reported unreachable and answered with ICMP, never silently black-holed', async (t) => {
      const n4 = lab.addNode(4, { segment: 'b' });
      await lab.waitReady([n4]);
      const st = await waitFor(() => lab.agentState('n1')?.unreachable.find((u) => u.subnet === n4.subnet), { what: 'n4 unreachable in n1\'s state' });
      t.regex(st.message, /not on the uplink's subnets/);
      const maps = NodeMaps.fromPinDir(lab.node('n1').pinDir);
      t.teardown(() => maps.close());
      t.false(maps.peers.entries().some(([k]) => formatCidr(k) === n4.subnet), 'not programmed');
      const target = n4.subnet!.replace(/\.0\/24$/, '.2');
      let out = '';
      try { out = nsExec(pod('n1p1').ns, `ping -c 1 -W 2 ${target} 2>&1`); } catch (err) { out = (err as Error).message; }
      t.regex(out, /Unreachable/i, 'the sender gets ICMP unreachable at once');
      t.deepEqual((await lab.check()).failures, [], 'the reachable pods are unaffected');
    });
  }
}
