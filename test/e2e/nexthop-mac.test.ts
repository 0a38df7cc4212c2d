/**
 * A peer node's uplink changes its MAC without a gratuitous ARP (its NIC or
 * VM is replaced, same IP): the senders' neighbour entries hold the old MAC
 * until the kernel's neighbour state machine re-resolves it. Pod traffic to
 * that node must come back, on flannel-bpf's compat path (ICMP) and fast path
 * (UDP, untracked), as it does for stock flannel's kernel routes.
 *
 * The senders' namespaces get short neighbour timers so a run takes seconds.
 * flannel-bpf and two nodes programmed exactly as stock flanneld programs them
 * are measured in the same lab at the same moment; both figures are printed.
 * (Not covered here, and open: when the router between two segments changes
 * its MAC, routed VXLAN traffic from flannel-bpf nodes was still black-holed
 * after 20 s in this lab while stock flannel recovered in 1–5 s.)
 */
import test from 'ava';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, randomMac, type LabNode, type LabPod } from '../../src/cli/lab/lab.js';
import { nsExec } from '../../src/cli/lab/netns.js';
import { requireRoot } from '../helpers/netns.js';
import { labRunner, ping } from '../helpers/traffic.js';
import { NodeMaps } from '../../src/maps/index.js';

requireRoot();

const PROBE = path.join(path.dirname(fileURLToPath(import.meta.url)), '../helpers/udp-probe.mjs');
/** How long a probe waits for the path to come back (the kernel needs ~5 s with the timers below). */
const PROBE_MS = 20_000;

/** Short neighbour timers on a node's uplink (its own namespace): REACHABLE for 0.5–1.5 s, 1 s in DELAY. */
function fastNud(ns: string): void {
  nsExec(ns, 'sysctl -qw net.ipv4.neigh.eth0.base_reachable_time_ms=1000 net.ipv4.neigh.eth0.delay_first_probe_time=1');
}

interface Recovery { icmpMs: number | null; udpMs: number | null }

/** ms until the first echo reply from `ip` (ping every 100 ms), or null within PROBE_MS. */
function firstPingReply(ns: string, ip: string): Promise<number | null> {
  const t0 = Date.now();
  const child = labRunner.spawn(ns, `ping -n -i 0.1 -W 1 -w ${PROBE_MS / 1000} ${ip}`);
  return new Promise((resolve) => {
    let done = false;
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => {
      if (!done && /icmp_seq=\d+/.test(d)) { done = true; resolve(Date.now() - t0); child.kill('SIGINT'); }
    });
    child.on('exit', () => { if (!done) { done = true; resolve(null); } });
  });
}

/** ms until the first UDP echo from a udp-probe server on `ip` (one datagram per 50 ms), or null. */
async function firstUdpReply(ns: string, ip: string, port: number): Promise<number | null> {
  const out = labRunner.exec(ns, `${process.execPath} ${PROBE} client ${ip} ${port} 50 ${PROBE_MS}`, { timeoutMs: PROBE_MS + 10_000 });
  return (JSON.parse(out.trim().split('\n').pop() ?? '{}') as { firstReplyMs: number | null }).firstReplyMs;
}

async function udpServer(t: { teardown(fn: () => void): void }, ns: string, port: number): Promise<void> {
  const server = labRunner.spawn(ns, `${process.execPath} ${PROBE} server ${port}`);
  t.teardown(() => { server.kill('SIGKILL'); });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`udp probe server in ${ns} did not start`)), 10_000);
    server.stdout?.setEncoding('utf8');
    server.stdout?.on('data', (d: string) => { if (d.includes('listening')) { clearTimeout(timer); resolve(); } });
  });
}

async function recovery(from: LabPod, to: LabPod, port: number): Promise<Recovery> {
  const [icmpMs, udpMs] = await Promise.all([firstPingReply(from.ns, to.ip), firstUdpReply(from.ns, to.ip, port)]);
  return { icmpMs, udpMs };
}

/** Packets n sent on the fast path so far. */
function fastTx(n: LabNode): bigint {
  const maps = NodeMaps.fromPinDir(n.pinDir);
  try { return maps.readFastStats().fast_tx.packets; } finally { maps.close(); }
}

const fmt = (ms: number | null) => (ms === null ? `none within ${PROBE_MS / 1000} s` : `${(ms / 1000).toFixed(1)} s`);

test.serial('next hop MAC change without gratuitous ARP (host-gw: a peer node\'s uplink gets a new MAC): flannel-bpf traffic comes back as it does for stock flannel, compat and fast path', async (t) => {
  const lab = await Lab.up({ nodes: 2, backend: 'host-gw', podsPerNode: 1, segments: 1 });
  t.teardown(() => lab.down());
  const k = lab.addStockPair('host-gw', ['a', 'a']);
  const p1 = lab.state.pods.find((p) => p.node === 'n1')!;
  const p2 = lab.state.pods.find((p) => p.node === 'n2')!;
  for (const n of ['n1', 'k1']) fastNud(lab.node(n).ns);
  await udpServer(t, p2.ns, 7101);
  await udpServer(t, k.kp2.ns, 7101);
  t.deepEqual(ping(labRunner, p1.ns, p2.ip), { sent: 3, received: 3 }, 'flannel-bpf path works before the change');
  t.deepEqual(ping(labRunner, k.kp1.ns, k.kp2.ip), { sent: 3, received: 3 }, 'stock path works before the change');
  t.not(await firstUdpReply(p1.ns, p2.ip, 7101), null, 'UDP works before the change');
  const fastBefore = fastTx(lab.node('n1'));

  for (const n of ['n2', 'k2']) nsExec(lab.node(n).ns, `ip link set eth0 address ${randomMac('fc')}`);
  const [ours, stock] = await Promise.all([recovery(p1, p2, 7101), recovery(k.kp1, k.kp2, 7101)]);
  t.log(`flannel-bpf: ICMP (compat path) back after ${fmt(ours.icmpMs)}, UDP (fast path) after ${fmt(ours.udpMs)}`);
  t.log(`stock flannel: ICMP back after ${fmt(stock.icmpMs)}, UDP after ${fmt(stock.udpMs)}`);
  t.not(stock.icmpMs, null, 'the kernel path (stock) recovers: the scenario is what the kernel handles');
  t.not(ours.icmpMs, null, 'flannel-bpf compat path recovers');
  t.not(ours.udpMs, null, 'flannel-bpf fast path recovers');
  const fastAfter = fastTx(lab.node('n1'));
  t.true(fastAfter > fastBefore, `the UDP probes took the fast path on n1 (fast_tx ${fastBefore} → ${fastAfter})`);
});
