/**
 * A next hop changes its MAC without a gratuitous ARP: a peer node's uplink
 * (host-gw: its NIC or VM replaced, same IP), or the router between two
 * segments (vxlan, routed peers). The senders' neighbour entries hold the old
 * MAC until the kernel's neighbour state machine re-resolves it. Our programs
 * read that entry through bpf_fib_lookup, which never marks it used, so the
 * agent makes every next hop's entry a kernel-managed one (re-probed by the
 * kernel itself: src/control/nexthops.ts). Pod traffic must come back, on the
 * compat path (ICMP) and the fast path (UDP, untracked), as it does for stock
 * flannel's kernel routes.
 *
 * flannel-bpf and two nodes programmed exactly as stock flanneld programs them
 * are measured in the same lab, all probes started at the same moment; both
 * figures are printed. Without the managed entries (--managed-neighbours=off)
 * the router case stays black-holed past the 20 s probe window.
 */
import test, { type ExecutionContext } from 'ava';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, randomMac, type LabNode, type LabPod } from '../../src/cli/lab/lab.js';
import { nsExec } from '../../src/cli/lab/netns.js';
import { requireRoot } from '../helpers/netns.js';
import { labRunner, ping } from '../helpers/traffic.js';
import { NodeMaps } from '../../src/maps/index.js';
import { scrape, metric } from '../helpers/scrape.js';

requireRoot();

const PROBE = path.join(path.dirname(fileURLToPath(import.meta.url)), '../helpers/udp-probe.mjs');
/** How long a probe waits for the path to come back (the kernel needs ~5 s with the timers below). */
const PROBE_MS = 20_000;

/**
 * A short REACHABLE time on the senders' uplinks (0.5–1.5 s instead of
 * 15–45 s), set before anything runs there: an entry's timer keeps the period
 * it was armed with. DELAY stays at its default 5 s, which is also the
 * kernel's re-probe interval for managed entries: so a managed entry, too,
 * goes REACHABLE → DELAY (never STALE), as one in use does. Receivers keep
 * the defaults: their own ARP requests (sent with the new MAC) would teach
 * the sender the new MAC and hide what the sender does by itself.
 */
const FAST_NUD = { n1: ['net.ipv4.neigh.eth0.base_reachable_time_ms=1000'], k1: ['net.ipv4.neigh.eth0.base_reachable_time_ms=1000'] };
/**
 * The same with DELAY at 1 s: an entry not used within 1 s of leaving
 * REACHABLE goes STALE instead, and only traffic through the kernel's
 * neighbour output takes it out of STALE. This is the case that black-holes
 * routed traffic without managed entries (--managed-neighbours=off: nothing
 * back within 20 s), so the router case runs with it.
 */
const FAST_NUD_STALE = Object.fromEntries(Object.entries(FAST_NUD).map(([n, l]) => [n, [...l, 'net.ipv4.neigh.eth0.delay_first_probe_time=1']]));

/** Wait until n's agent has made its uplink neighbour entry for `nextHop` a managed one (it syncs every 5 s). */
async function waitManaged(n: LabNode, nextHop: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const row = nsExec(n.ns, `ip -d neigh show ${nextHop} dev eth0`).trim();
    if (/\bmanaged\b/.test(row) && /\bproto 251\b/.test(row)) return row;
    if (Date.now() > deadline) throw new Error(`${n.name}: no managed entry for ${nextHop} after 15 s (have: ${row || 'none'})`);
    await new Promise((r) => setTimeout(r, 250));
  }
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
      if (!done && /bytes from .*icmp_seq=\d+/.test(d)) { done = true; resolve(Date.now() - t0); child.kill('SIGINT'); }
    });
    child.on('exit', () => { if (!done) { done = true; resolve(null); } });
  });
}

/**
 * ms until the first UDP echo from a udp-probe server on `ip` (one datagram per 50 ms), or null.
 * Asynchronous, so that every probe of a measurement starts at the same moment.
 */
function firstUdpReply(ns: string, ip: string, port: number): Promise<number | null> {
  const child = labRunner.spawn(ns, `${process.execPath} ${PROBE} client ${ip} ${port} 50 ${PROBE_MS}`);
  let out = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => { out += d; });
  return new Promise((resolve) => {
    child.on('exit', () => {
      try { resolve((JSON.parse(out.trim().split('\n').pop() ?? '{}') as { firstReplyMs?: number | null }).firstReplyMs ?? null); } catch { resolve(null); }
    });
  });
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

/** ICMP and UDP probes of a path, started together. */
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

/**
 * The measurement both kinds of case share: UDP echo servers, every path
 * checked before, then `change()` and ICMP + UDP probes of flannel-bpf's pair
 * (p1 → p2) and stock flannel's (kp1 → kp2) started together; prints and
 * asserts that every path comes back and that the UDP probes took n1's fast path.
 */
async function changeAndMeasure(t: ExecutionContext, lab: Lab, k: { kp1: LabPod; kp2: LabPod }, port: number, change: () => void): Promise<void> {
  const p1 = lab.state.pods.find((p) => p.node === 'n1')!;
  const p2 = lab.state.pods.find((p) => p.node === 'n2')!;
  await udpServer(t, p2.ns, port);
  await udpServer(t, k.kp2.ns, port);
  t.deepEqual(ping(labRunner, p1.ns, p2.ip), { sent: 3, received: 3 }, 'flannel-bpf path works before the change');
  t.deepEqual(ping(labRunner, k.kp1.ns, k.kp2.ip), { sent: 3, received: 3 }, 'stock path works before the change');
  t.not(await firstUdpReply(p1.ns, p2.ip, port), null, 'UDP works before the change');
  const fastBefore = fastTx(lab.node('n1'));

  change();
  const [ours, stock] = await Promise.all([recovery(p1, p2, port), recovery(k.kp1, k.kp2, port)]);
  t.log(`flannel-bpf: ICMP (compat path) back after ${fmt(ours.icmpMs)}, UDP (fast path) after ${fmt(ours.udpMs)}`);
  t.log(`stock flannel: ICMP back after ${fmt(stock.icmpMs)}, UDP after ${fmt(stock.udpMs)}`);
  t.not(stock.icmpMs, null, 'the kernel path (stock) recovers: the scenario is what the kernel handles');
  t.not(ours.icmpMs, null, 'flannel-bpf compat path recovers');
  t.not(ours.udpMs, null, 'flannel-bpf fast path recovers');
  const fastAfter = fastTx(lab.node('n1'));
  t.true(fastAfter > fastBefore, `the UDP probes took the fast path on n1 (fast_tx ${fastBefore} → ${fastAfter})`);
}

/**
 * Peers on one segment; both receivers' uplinks get a new MAC. With host-gw,
 * flannel-bpf's compat path sends through the kernel's neighbour output
 * (bpf_redirect_neigh), which drives the entry like any kernel traffic; with
 * vxlan, both paths send encapsulated frames with the FIB's MACs, so nothing
 * but the programs uses the entry (nodes rarely talk to a peer's IP otherwise).
 */
async function peerMacCase(t: ExecutionContext, backend: 'host-gw' | 'vxlan'): Promise<void> {
  const lab = await Lab.up({ nodes: 2, backend, podsPerNode: 1, segments: 1, nodeSysctls: FAST_NUD });
  t.teardown(() => lab.down());
  const k = lab.addStockPair(backend, ['a', 'a']);
  t.log(`n1's entry for its peer n2: ${await waitManaged(lab.node('n1'), lab.node('n2').ip)}`);
  await changeAndMeasure(t, lab, k, 7101, () => {
    /*
     * As behind a switch, the old MAC must lead nowhere: the router's bridge
     * floods no unknown unicast on segment a, and forgets the old MACs at once.
     * (Otherwise the bridge still delivers frames for the old MAC to the node's
     * port, and the node's ingress programs take them: no re-resolution measured.)
     */
    const ports = ['n1', 'n2', 'k1', 'k2'].map((n) => lab.routerPort(n));
    nsExec(lab.state.router, ports.map((p) => `bridge link set dev ${p} flood off`).join('; '));
    const oldMacs = ['n2', 'k2'].map((n) => (JSON.parse(nsExec(lab.node(n).ns, 'ip -j link show eth0')) as Array<{ address: string }>)[0]!.address);
    for (const n of ['n2', 'k2']) nsExec(lab.node(n).ns, `ip link set eth0 address ${randomMac('fc')}`);
    nsExec(lab.state.router, ['n2', 'k2'].map((n, i) => `bridge fdb del ${oldMacs[i]} dev ${lab.routerPort(n)} master 2>/dev/null || true`).join('; '));
  });
}

test.serial('next hop MAC change without gratuitous ARP (host-gw: a peer node\'s uplink gets a new MAC): flannel-bpf traffic comes back as it does for stock flannel, compat and fast path', (t) => peerMacCase(t, 'host-gw'));

test.serial('next hop MAC change without gratuitous ARP (vxlan, one segment: a peer node\'s uplink gets a new MAC; only the programs use the entry): flannel-bpf traffic comes back as it does for stock flannel, compat and fast path', (t) => peerMacCase(t, 'vxlan'));

test.serial('next hop MAC change without gratuitous ARP (vxlan: the router between the segments gets a new MAC): routed flannel-bpf traffic comes back as it does for stock flannel, compat and fast path', async (t) => {
  const lab = await Lab.up({ nodes: 2, backend: 'vxlan', podsPerNode: 1, segments: 2, nodeSysctls: FAST_NUD_STALE });
  t.teardown(() => lab.down());
  const k = lab.addStockPair('vxlan', ['a', 'b']);
  t.is(lab.node('n1').segment, lab.node('k1').segment, 'both senders sit on the segment whose router MAC changes');
  t.log(`n1's entry for its gateway: ${await waitManaged(lab.node('n1'), lab.node('n1').gateway)}`);
  const m = scrape(lab.node('n1'));
  t.is(metric(m, 'flannel_bpf_next_hops', { state: 'managed' }), 1, 'one next hop (the gateway, for the peer on segment b)');
  t.is(metric(m, 'flannel_bpf_next_hops', { state: 'failed' }), 0);
  await changeAndMeasure(t, lab, k, 7102, () => { nsExec(lab.state.router, `ip link set br-a address ${randomMac()}`); });
});
