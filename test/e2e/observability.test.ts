/**
 * Observability end to end (issue 5): a lab of two vxlan nodes with real
 * agents, a real etcd and one pod each.
 *
 *  - a known number of pings between the pods moves the per-peer counters by
 *    exactly that much, in the pinned map, in a scrape of /metrics and in
 *    `status --json`, on both nodes;
 *  - bad tunnel packets from a namespace that is not a peer (attached to the
 *    lab's segment) show up as drops by reason, with exact packet and byte
 *    counts, in all three places, and move no peer counter;
 *  - `status` with the agent killed says so and still shows live counters;
 *  - `status --watch` redraws with rates;
 *  - /readyz: 503 before the first sync, 200 after, 503 when a program is
 *    detached, 200 again once the agent re-attached it.
 * Everything is fetched from inside the node namespaces; the lab is removed
 * even when a test fails.
 */
import test from 'ava';
import crypto from 'node:crypto';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Lab, repoRoot, ETCD_PREFIX, type LabNode } from '../../src/cli/lab/lab.js';
import { etcdctl } from '../../src/cli/lab/etcd.js';
import { nsExec, nsRun, nsSpawn, vethBetween, addNetns } from '../../src/cli/lab/netns.js';
import { NodeMaps } from '../../src/maps/index.js';
import { readStateFile } from '../../src/control/state.js';
import type { PeerStats } from '../../src/maps/peer-stats.js';
import type { DropReason } from '../../src/maps/reasons.js';
import { requireRoot } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';
import { nsFetch, scrape, metric } from '../helpers/scrape.js';

requireRoot();

const PINGS = 5;
/** ICMP echo with ping's default 56 data bytes: 84-byte IPv4 packets (the counters count inner IP bytes). */
const PING_IP_BYTES = 84;
const BIN = path.join(repoRoot(), 'bin/flannel-bpf');

let lab: Lab;
const prefix = `ob${crypto.randomBytes(3).toString('hex')}`;
test.before(async () => {
  lab = await Lab.up({ nodes: 2, backend: 'vxlan', podsPerNode: 1, prefix });
  /* n1 was ready before n2 existed: wait until each agent's state file (written at most once a second) lists the other. */
  const [n1, n2] = [lab.node('n1'), lab.node('n2')];
  for (const [n, peer] of [[n1, n2], [n2, n1]] as const) {
    const key = peer.subnet!.replace('/', '-');
    await waitFor(() => readStateFile(n.stateDir)?.peers.some((p) => p.leaseKey === key) === true, { timeoutMs: 20_000, what: `${n.name}'s state file to list ${key}` });
  }
});
test.after.always(() => { lab?.down(); });

/* ------------------------------------------------------------ helpers */

interface StatusJson {
  agent: { running: boolean; ready: boolean; notReady: string[] };
  node: { name: string; subnet: string; publicIp: string; vtepMac: string };
  store: { state: string | null; live: boolean };
  programs: Array<{ hook: string; required: boolean; attached: boolean; progId: number | null; name: string | null }>;
  peers: { programmed: number; list: Array<{ peer: string | null; peerId: number; subnet: string; publicIp: string; mode: string; txPackets: number; txBytes: number; rxPackets: number; rxBytes: number; rates: null | { txPackets: number; txBytes: number; rxPackets: number; rxBytes: number } }> };
  drops: Array<{ reason: string; packets: number; bytes: number }>;
  warnings: Array<{ code: string; message: string }>;
}

function status(n: LabNode, ...args: string[]): string {
  return nsRun(n.ns, [BIN, 'status', `--bpffs-pin-dir=${n.pinDir}`, `--node-dir=${n.stateDir}`, ...args], { timeoutMs: 30_000 });
}
const statusJson = (n: LabNode): StatusJson => JSON.parse(status(n, '--json')) as StatusJson;

/** The peer entry of `peer` on node `n`: lease key and id from the agent's state file. */
function peerOn(n: LabNode, peer: LabNode): { key: string; id: number } {
  const key = peer.subnet!.replace('/', '-');
  const id = readStateFile(n.stateDir)?.peers.find((p) => p.leaseKey === key)?.peerId;
  if (!id) throw new Error(`${n.name} has no peer ${key}`);
  return { key, id };
}

function mapCounters(n: LabNode, id: number): PeerStats {
  const maps = NodeMaps.fromPinDir(n.pinDir);
  try {
    return maps.readPeerStats([id]).get(id)!;
  } finally {
    maps.close();
  }
}

function mapDrops(n: LabNode): Record<DropReason, { packets: bigint; bytes: bigint }> {
  const maps = NodeMaps.fromPinDir(n.pinDir);
  try {
    return maps.readDrops();
  } finally {
    maps.close();
  }
}

interface Counters { txPackets: number; txBytes: number; rxPackets: number; rxBytes: number }
const num = (s: PeerStats): Counters => ({ txPackets: Number(s.txPackets), txBytes: Number(s.txBytes), rxPackets: Number(s.rxPackets), rxBytes: Number(s.rxBytes) });
const minus = (a: Counters, b: Counters): Counters => ({ txPackets: a.txPackets - b.txPackets, txBytes: a.txBytes - b.txBytes, rxPackets: a.rxPackets - b.rxPackets, rxBytes: a.rxBytes - b.rxBytes });

/** The same peer's counters three ways: the pinned map, a scrape, status --json. */
function countersEverywhere(n: LabNode, peer: LabNode): { map: Counters; scrape: Counters; status: Counters } {
  const { key, id } = peerOn(n, peer);
  const map = num(mapCounters(n, id));
  const s = scrape(n);
  const labels = { peer: key, peer_ip: peer.ip, subnet: peer.subnet!, mode: 'vxlan' };
  const sc = {
    txPackets: metric(s, 'flannel_bpf_peer_tx_packets_total', labels) ?? NaN, txBytes: metric(s, 'flannel_bpf_peer_tx_bytes_total', labels) ?? NaN,
    rxPackets: metric(s, 'flannel_bpf_peer_rx_packets_total', labels) ?? NaN, rxBytes: metric(s, 'flannel_bpf_peer_rx_bytes_total', labels) ?? NaN,
  };
  const row = statusJson(n).peers.list.find((p) => p.subnet === peer.subnet);
  if (!row) throw new Error(`status on ${n.name} has no peer ${peer.subnet}`);
  return { map, scrape: sc, status: { txPackets: row.txPackets, txBytes: row.txBytes, rxPackets: row.rxPackets, rxBytes: row.rxBytes } };
}

function ping(fromPod: string, ip: string, count: number): void {
  const out = nsRun(fromPod, ['ping', '-c', String(count), '-i', '0.2', '-W', '2', '-q', ip], { timeoutMs: 30_000 });
  if (!new RegExp(`${count} packets transmitted, ${count} received`).test(out)) throw new Error(`ping ${ip}: ${out}`);
}

/* ------------------------------------------------------------ tests */

test.serial(`${PINGS} pings between two pods: exact per-peer deltas in the map, the scrape and status --json, on both nodes`, (t) => {
  const [n1, n2] = [lab.node('n1'), lab.node('n2')];
  const [p1, p2] = [lab.state.pods.find((p) => p.node === 'n1')!, lab.state.pods.find((p) => p.node === 'n2')!];
  const before1 = countersEverywhere(n1, n2);
  const before2 = countersEverywhere(n2, n1);
  t.deepEqual(before1.scrape, before1.map, 'n1: the scrape equals the map before');
  t.deepEqual(before1.status, before1.map, 'n1: status equals the map before');

  ping(p1.ns, p2.ip, PINGS);

  const after1 = countersEverywhere(n1, n2);
  const after2 = countersEverywhere(n2, n1);
  const want = { txPackets: PINGS, txBytes: PINGS * PING_IP_BYTES, rxPackets: PINGS, rxBytes: PINGS * PING_IP_BYTES };
  for (const where of ['map', 'scrape', 'status'] as const) {
    t.deepEqual(minus(after1[where], before1[where]), want, `n1 → n2 echo requests out, replies in (${where})`);
    t.deepEqual(minus(after2[where], before2[where]), want, `n2: requests in, replies out (${where})`);
  }
});

test.serial('bad tunnel packets from a namespace that is not a peer: drops by reason, exact, in the map, the scrape and status', (t) => {
  const [n1, n2] = [lab.node('n1'), lab.node('n2')];
  /* A stranger on n1's segment (br-a in the router), also holding n2's address to spoof it. */
  const x = `${prefix}-x`;
  addNetns(x);
  lab.state.namespaces.push(x);
  vethBetween(x, 'eth0', lab.state.router, `${prefix}x`);
  nsExec(lab.state.router, `ip link set ${prefix}x master br-a up`);
  const n1Mac = (JSON.parse(nsRun(n1.ns, ['ip', '-j', 'link', 'show', 'eth0'])) as Array<{ address: string }>)[0]!.address;
  nsExec(x, `ip link set eth0 up; ip addr add 192.168.10.250/24 dev eth0; ip addr add ${n2.ip}/32 dev eth0; ip neigh replace ${n1.ip} lladdr ${n1Mac} dev eth0 nud permanent`);

  const vtep = readStateFile(n1.stateDir)!.vtepMac.replace(/:/g, '');
  const innerIp = '4500001c00000000400100000af465020af42b020800f7ff00000000'; /* 28-byte IPv4/ICMP */
  const frame = (dstMac: string) => `${dstMac}0200000000020800${innerIp}`;
  const vxlan = (flags: string, vni: number) => `${flags}000000${vni.toString(16).padStart(6, '0')}00`;
  /* UDP payload 8 + 14 + 28 = 50 bytes → 92-byte frames at the uplink. */
  const FRAME_BYTES = 14 + 20 + 8 + 50;
  const sends: Array<{ reason: DropReason; from: string; count: number; payload: string }> = [
    { reason: 'unknown_source', from: '192.168.10.250', count: 5, payload: vxlan('08', 1) + frame(vtep) },
    { reason: 'wrong_vni', from: n2.ip, count: 3, payload: vxlan('08', 2) + frame(vtep) },
    { reason: 'bad_flags', from: n2.ip, count: 2, payload: vxlan('0c', 1) + frame(vtep) },
    { reason: 'inner_dst_mac', from: n2.ip, count: 4, payload: vxlan('08', 1) + frame('020000000001') },
  ];
  const peer = peerOn(n1, n2);
  const mapBefore = mapDrops(n1);
  const scrapeBefore = scrape(n1);
  const statusBefore = statusJson(n1);
  const peerBefore = num(mapCounters(n1, peer.id));

  const sender = `const d = require('node:dgram'); const [src, dst, n, hex] = process.argv.slice(1);
    const s = d.createSocket('udp4'); s.bind({ address: src, port: 0 }, async () => {
      for (let i = 0; i < Number(n); i++) await new Promise((r, j) => s.send(Buffer.from(hex, 'hex'), 8472, dst, (e) => (e ? j(e) : r())));
      s.close(); });`;
  for (const s of sends) nsRun(x, [process.execPath, '-e', sender, s.from, n1.ip, String(s.count), s.payload]);

  const mapAfter = mapDrops(n1);
  const scrapeAfter = scrape(n1);
  const statusAfter = statusJson(n1);
  for (const s of sends) {
    const mapDelta = { packets: Number(mapAfter[s.reason].packets - mapBefore[s.reason].packets), bytes: Number(mapAfter[s.reason].bytes - mapBefore[s.reason].bytes) };
    t.deepEqual(mapDelta, { packets: s.count, bytes: s.count * FRAME_BYTES }, `${s.reason} in the map`);
    const m = (sm: typeof scrapeAfter, name: string) => metric(sm, name, { reason: s.reason }) ?? NaN;
    t.deepEqual({ packets: m(scrapeAfter, 'flannel_bpf_drops_total') - m(scrapeBefore, 'flannel_bpf_drops_total'), bytes: m(scrapeAfter, 'flannel_bpf_drop_bytes_total') - m(scrapeBefore, 'flannel_bpf_drop_bytes_total') },
      { packets: s.count, bytes: s.count * FRAME_BYTES }, `${s.reason} in the scrape`);
    const st = (j: StatusJson) => j.drops.find((d) => d.reason === s.reason)!;
    t.deepEqual({ packets: st(statusAfter).packets - st(statusBefore).packets, bytes: st(statusAfter).bytes - st(statusBefore).bytes },
      { packets: s.count, bytes: s.count * FRAME_BYTES }, `${s.reason} in status --json`);
  }
  const others = (Object.keys(mapAfter) as DropReason[]).filter((r) => !sends.some((s) => s.reason === r));
  t.deepEqual(others.filter((r) => mapAfter[r].packets !== mapBefore[r].packets), [], 'no other reason moved');
  t.deepEqual(num(mapCounters(n1, peer.id)), peerBefore, 'packets spoofing the peer did not count as traffic from it');
  t.is(metric(scrapeAfter, 'flannel_bpf_drops_total', { reason: 'none' }), undefined, 'the unused slot is not exported');
  const screen = status(n1);
  t.regex(screen, /^ {2}unknown_source +\d+ +\d+ B +tunnel packet whose outer source IP is not a known peer$/m);
  t.regex(screen, /^ {2}inner_dst_mac +\d+ /m);
});

test.serial('a rejected lease: counted by reason in the scrape, named with its reason in status', async (t) => {
  const n1 = lab.node('n1');
  const key = '10.244.250.0-24';
  const before = metric(scrape(n1), 'flannel_bpf_lease_rejections_total', { reason: 'bad_vtep_mac' }) ?? 0;
  etcdctl(lab.state.etcd!, ['put', `${ETCD_PREFIX}/subnets/${key}`, JSON.stringify({ PublicIP: '192.168.10.99', BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: 'zz:00' } })]);
  try {
    const s = await waitFor(() => { const x = scrape(n1); return metric(x, 'flannel_bpf_peers', { state: 'rejected' }) === 1 ? x : null; }, { timeoutMs: 10_000, what: 'the rejection in the scrape' });
    t.is(metric(s, 'flannel_bpf_lease_rejections_total', { reason: 'bad_vtep_mac' }), before + 1);
    t.is(metric(s, 'flannel_bpf_peers', { state: 'programmed' }), 1, 'the other peer is unaffected');
    const st = await waitFor(() => { const j = statusJson(n1); return j.warnings.some((w) => w.code === 'rejected_lease') ? j : null; }, { timeoutMs: 5000, what: 'the rejection in the state file' });
    t.regex(st.warnings.find((w) => w.code === 'rejected_lease')!.message, new RegExp(`lease ${key} rejected \\(bad_vtep_mac\\): .*zz:00`));
  } finally {
    etcdctl(lab.state.etcd!, ['del', `${ETCD_PREFIX}/subnets/${key}`]);
  }
  await waitFor(() => metric(scrape(n1), 'flannel_bpf_peers', { state: 'rejected' }) === 0, { timeoutMs: 10_000, what: 'the rejection to go away with the lease' });
});

test.serial('status with the agent killed: says it is down, maps and live counters still shown', async (t) => {
  const [n1, n2] = [lab.node('n1'), lab.node('n2')];
  const pid = n1.pid!;
  lab.stopNode('n1', 'SIGKILL');
  await waitFor(() => { try { process.kill(pid, 0); return false; } catch { return true; } }, { timeoutMs: 10_000, what: `agent pid ${pid} to exit` });
  const before = statusJson(n1);
  t.false(before.agent.running);
  t.false(before.agent.ready);
  t.false(before.store.live);
  t.true(before.warnings.some((w) => w.code === 'agent_down'));
  t.is(before.peers.programmed, 1);
  t.true(before.programs.filter((p) => p.required).every((p) => p.attached && p.progId !== null), 'programs stay attached without the agent');

  /* The dataplane keeps forwarding, and counting, without the agent. */
  const [p1, p2] = [lab.state.pods.find((p) => p.node === 'n1')!, lab.state.pods.find((p) => p.node === 'n2')!];
  ping(p1.ns, p2.ip, 3);
  const after = statusJson(n1);
  const row = (j: StatusJson) => j.peers.list.find((p) => p.subnet === n2.subnet)!;
  t.is(row(after).txPackets - row(before).txPackets, 3);
  t.is(row(after).rxPackets - row(before).rxPackets, 3);

  const screen = status(n1);
  t.regex(screen, /^ {2}Agent {8}DOWN \(last pid \d+\) — the dataplane keeps forwarding with the pinned maps; counters below are live$/m);
  t.regex(screen, /^ {2}Lease store {2}etcd, unknown while the agent is down \(last known: connected\)$/m);
  t.regex(screen, new RegExp(`^ {2}${n2.subnet!.replace('/', '-').replace(/\./g, '\\.')} +${n2.subnet!.replace(/\./g, '\\.').replace('/', '\\/')} +${n2.ip.replace(/\./g, '\\.')} +vxlan +${row(after).txPackets} `, 'm'));
  t.regex(screen, /^ {2}! the agent is not running/m);
  t.regex(screen, /^ {2}fbpf_peers +lpm_trie +1 +65,536/m);
  t.throws(() => nsRun(n1.ns, [BIN, 'status', `--bpffs-pin-dir=${n1.pinDir}-missing`, `--node-dir=${n1.stateDir}`]),
    { message: /flannel-bpf is not set up on this node \(no pins under .*-missing\)[\s\S]*remedy:/ });
});

test.serial('readiness: 503 before the first sync, 200 after, 503 when a program is detached, 200 once re-attached', async (t) => {
  const n1 = lab.node('n1');
  const readyz = () => nsFetch(n1.ns, `http://${n1.ip}:${n1.healthzPort}/readyz`);
  const etcdPid = lab.state.etcd!.pid;
  /* Hold the lease store still while the agent starts, so it cannot sync. */
  if (n1.pid) lab.stopNode('n1', 'SIGKILL');
  process.kill(etcdPid, 'SIGSTOP');
  try {
    lab.startNode(n1);
    const first = await waitFor(() => { const r = readyz(); return r.status !== 0 ? r : null; }, { timeoutMs: 20_000, what: '/readyz to answer' });
    t.is(first.status, 503);
    t.regex(first.body, /maps synced with the lease store/);
    await new Promise((r) => setTimeout(r, 1000));
    const still = readyz();
    t.is(still.status, 503, 'still not ready while the store does not answer');
    t.regex(still.body, /maps synced with the lease store: no lease snapshot applied yet/);
    t.is(nsFetch(n1.ns, `http://${n1.ip}:${n1.metricsPort}/readyz`).status, 503, 'the metrics port says the same');
  } finally {
    process.kill(etcdPid, 'SIGCONT');
  }
  await waitFor(() => readyz().status === 200, { timeoutMs: 20_000, what: '/readyz 200 after the first sync' });
  await lab.waitReady([n1]);
  t.is(metric(scrape(n1), 'flannel_bpf_ready', {}), 1);
  t.is(metric(scrape(n1), 'flannel_bpf_program_detached_found_total', {}), 0);

  nsExec(n1.ns, 'tc filter del dev eth0 ingress pref 251 handle 0xfb bpf');
  const down = await waitFor(() => { const r = readyz(); return r.status === 503 ? r : null; }, { timeoutMs: 3000, intervalMs: 20, what: '/readyz 503 after the detach' });
  t.regex(down.body, /programs attached: .*uplink-tc-ingress/);
  await waitFor(() => readyz().status === 200, { timeoutMs: 15_000, intervalMs: 200, what: '/readyz 200 after the re-attach' });
  const s = scrape(n1);
  t.is(metric(s, 'flannel_bpf_program_detached_found_total', {}), 1, 'the agent found it detached once');
  t.is(metric(s, 'flannel_bpf_program_attached', { hook: 'uplink-tc-ingress' }), 1);
  /* The fast path is on (the default) and n1 has a pod: its two hooks are required, and attached. */
  t.is(metric(s, 'flannel_bpf_program_attached', { hook: 'dev-tc-ingress' }), 1);
  t.is(metric(s, 'flannel_bpf_program_attached', { hook: 'cni-tc-ingress' }), 1);
  const programs = statusJson(n1).programs;
  t.true(programs.filter((p) => p.required).every((p) => p.attached));
  /* Full names from the pins: the kernel keeps 15 characters, which fbpf_uplink_ingress and fbpf_uplink_ingress_fast share. */
  t.is(programs.find((p) => p.hook === 'uplink-tc-ingress')?.name, 'fbpf_uplink_ingress_fast');
});

test.serial('status --watch redraws with rates while traffic flows', async (t) => {
  const [n1, n2] = [lab.node('n1'), lab.node('n2')];
  const [p1, p2] = [lab.state.pods.find((p) => p.node === 'n1')!, lab.state.pods.find((p) => p.node === 'n2')!];
  const watch = nsSpawn(n1.ns, [BIN, 'status', `--bpffs-pin-dir=${n1.pinDir}`, `--node-dir=${n1.stateDir}`, '--watch', '--json', '--interval=0.5'], { out: 'pipe' });
  let out = '';
  watch.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => watch.on('exit', (code) => resolve(code)));
  try {
    const pinger = spawn('nsenter', [`--net=/run/netns/${p1.ns}`, '--', 'ping', '-c', '12', '-i', '0.2', '-q', p2.ip], { stdio: 'ignore' });
    await new Promise((r) => pinger.on('exit', r));
  } finally {
    watch.kill('SIGINT');
  }
  t.is(await exited, 0, 'SIGINT ends --watch cleanly');
  const docs = out.trim().split('\n').map((l) => JSON.parse(l) as StatusJson & { intervalSeconds: number | null });
  t.true(docs.length >= 3, `one document per interval (${docs.length})`);
  t.is(docs[0]!.intervalSeconds, null);
  t.true(docs.slice(1).every((d) => (d.intervalSeconds ?? 0) > 0.3));
  const rates = docs.slice(1).map((d) => d.peers.list.find((p) => p.subnet === n2.subnet)!.rates!);
  t.true(rates.some((r) => r.txPackets > 0 && r.rxPackets > 0), 'non-zero rates while pinging');
});
