/**
 * Lease-store outage (issue 7, item 3): the lab's etcd is killed for 30 s
 * while traffic runs, then restarted on the same data dir and ports.
 *
 * Lab: two flannel-bpf nodes (n1 on segment a, n2 on segment b, vxlan through
 * the router) and one stock-flannel node (n3, the flanneld emulator, on
 * segment a), one pod each. During the whole outage:
 *   - ping floods at 10 ms: p1 → p2 (flannel-bpf ↔ flannel-bpf) and
 *     p3 → p1 (stock ↔ flannel-bpf: the stock node's routes, neighbours and
 *     FDB entries carry the requests out and the replies back in);
 *   - paced TCP streams (one connection each, ~25 Mbit/s) p2 → p1 and p3 → p2,
 *     sha256 on both ends, longest receive gap measured by the server.
 * While etcd is down: the agents keep running and forwarding, say
 * `disconnected` in /metrics and `status --json`, stay live and ready. After
 * the restart a new peer lease is written at once (another node joining);
 * measured: etcd answering → agent reconnected, → lease in each agent's peer
 * map (must be ≤ 2 s), → route/neighbour/FDB on the stock node.
 * Figures are printed with t.log; docs/reliability.md quotes them.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { Lab, ETCD_PREFIX, repoRoot, type LabNode, type LabPod } from '../../../src/cli/lab/lab.js';
import { etcdctl, restartEtcd, stopEtcd, type EtcdProcess } from '../../../src/cli/lab/etcd.js';
import { nsExec, nsRun, nsSpawn, pidAlive } from '../../../src/cli/lab/netns.js';
import { NodeMaps } from '../../../src/maps/index.js';
import { formatCidr } from '../../../src/maps/addr.js';
import { readStateFile } from '../../../src/control/state.js';
import { LEASE_RETRY_MAX_MS } from '../../../src/control/subnet/etcd.js';
import { stockNode } from '../../helpers/stock-node.js';
import { requireRoot } from '../../helpers/netns.js';
import { waitFor } from '../../helpers/wait.js';

requireRoot();

const OUTAGE_MS = 30_000;
/** Traffic starts this long before the kill and ends well after the restart. */
const LEAD_MS = 3_000;
const TRAFFIC_MS = LEAD_MS + OUTAGE_MS + 9_000;
const PING_INTERVAL_MS = 10;
const PINGS = Math.round(TRAFFIC_MS / PING_INTERVAL_MS);
/** The acceptance bound: a change made by another node is in the maps this soon after etcd is back. */
const CHANGE_BOUND_MS = 2_000;
/** The "other nodes" that join right after a restart (leases as flanneld writes them). */
interface NewLease { key: string; subnet: string; publicIp: string; vtepMac: string }
const NEW_LEASE: NewLease = { key: '10.244.201.0-24', subnet: '10.244.201.0/24', publicIp: '192.168.20.99', vtepMac: '0e:fb:00:00:c9:01' };
const NEW_LEASE_2: NewLease = { key: '10.244.202.0-24', subnet: '10.244.202.0/24', publicIp: '192.168.20.98', vtepMac: '0e:fb:00:00:ca:01' };
const NEW_LEASE_3: NewLease = { key: '10.244.203.0-24', subnet: '10.244.203.0/24', publicIp: '192.168.20.97', vtepMac: '0e:fb:00:00:cb:01' };

const BIN = path.join(repoRoot(), 'bin/flannel-bpf');

let lab: Lab;
test.before(async () => {
  lab = await Lab.up({ nodes: 2, backend: 'vxlan', podsPerNode: 1, segments: 2 });
  /* The stock node starts after ours are up: stock flanneld exits when it loses a subnet race. */
  const stock = lab.addNode(3, { external: stockNode, segment: 'a' });
  await lab.waitReady([stock]);
  lab.addPod('n3');
  await waitFor(() => {
    const routes = nsExec(stock.ns, 'ip route');
    return ['n1', 'n2'].every((n) => routes.includes(lab.node(n).subnet!));
  }, { timeoutMs: 20_000, what: 'the stock node to program its peers' });
  await waitFor(() => ['n1', 'n2'].every((n) => peerSubnets(lab.node(n)).includes(stock.subnet!)), { what: 'the stock node in our maps' });
});
test.after.always(() => { lab?.down(); });

/* ------------------------------------------------------------ helpers */

const pod = (node: string): LabPod => lab.state.pods.find((p) => p.node === node)!;
const etcd = (): EtcdProcess => lab.state.etcd!;

function peerSubnets(n: LabNode): string[] {
  const maps = NodeMaps.fromPinDir(n.pinDir);
  try {
    return maps.peers.entries().map(([k]) => formatCidr(k)).sort();
  } finally {
    maps.close();
  }
}

/** GET a URL from inside a namespace (a node process there). */
function nsFetch(ns: string, url: string): { status: number; body: string } {
  const script = 'fetch(process.argv[1], { signal: AbortSignal.timeout(5000) }).then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })), (e) => process.stdout.write(JSON.stringify({ status: 0, body: String(e.cause?.code ?? e) })))';
  return JSON.parse(execFileSync('nsenter', [`--net=/run/netns/${ns}`, '--', process.execPath, '-e', script, url], { encoding: 'utf8', timeout: 15_000 })) as { status: number; body: string };
}

/** flannel_bpf_lease_store_state{store="etcd"} from a scrape: the state whose gauge is 1, and the full set. */
function scrapeStoreState(n: LabNode): { current: string[]; values: Record<string, number> } {
  const r = nsFetch(n.ns, `http://${n.ip}:${n.metricsPort}/metrics`);
  if (r.status !== 200) {
    const dead = lab.running(n.name) ? '' : `; the agent has exited, last log lines:\n${lab.logTail(n.name)}`;
    throw new Error(`scrape of ${n.name}: HTTP ${r.status} ${r.body}${dead}`);
  }
  const values: Record<string, number> = {};
  for (const m of r.body.matchAll(/^flannel_bpf_lease_store_state\{([^}]*)\} (\S+)$/gm)) {
    const state = /state="([^"]*)"/.exec(m[1]!)?.[1];
    if (state) values[state] = Number(m[2]);
  }
  return { current: Object.keys(values).filter((k) => values[k] === 1), values };
}

interface StatusJson { agent: { running: boolean; ready: boolean }; store: { kind: string; state: string | null; detail: string | null; live: boolean }; peers: { programmed: number }; warnings: Array<{ code: string; message: string }> }
function statusJson(n: LabNode): StatusJson {
  return JSON.parse(nsRun(n.ns, [BIN, 'status', `--bpffs-pin-dir=${n.pinDir}`, `--node-dir=${n.stateDir}`, '--json'], { timeoutMs: 30_000 })) as StatusJson;
}

function revision(): number {
  return Number((JSON.parse(etcdctl(etcd(), ['get', '/', '-w', 'json'])) as { header: { revision: number } }).header.revision);
}

/** A paced TCP stream (one connection) with sha256 on both ends; the server reports the longest gap between arrivals. */
const STREAM = `const net = require('node:net'), crypto = require('node:crypto');
const [mode, a, b, c, d] = process.argv.slice(1);
if (mode === 'server') {
  const srv = net.createServer((s) => {
    const h = crypto.createHash('sha256'); let bytes = 0, last = 0, maxGap = 0; const t0 = Date.now();
    s.on('data', (x) => { const now = Date.now(); if (last) maxGap = Math.max(maxGap, now - last); last = now; bytes += x.length; h.update(x); });
    s.on('end', () => { console.log(JSON.stringify({ bytes, sha256: h.digest('hex'), maxGapMs: maxGap, ms: Date.now() - t0 })); s.end(); srv.close(); });
    s.on('error', (e) => { console.error('server: ' + e.message); process.exit(1); });
  });
  srv.listen(Number(a), '0.0.0.0', () => console.log('listening'));
} else {
  const h = crypto.createHash('sha256'); let bytes = 0; const end = Date.now() + Number(c);
  const s = net.connect(Number(b), a, () => {
    const timer = setInterval(() => {
      if (Date.now() >= end) { clearInterval(timer); s.end(); return; }
      const buf = crypto.randomBytes(Number(d)); h.update(buf); bytes += buf.length; s.write(buf);
    }, 10);
  });
  s.on('close', () => console.log(JSON.stringify({ bytes, sha256: h.digest('hex') })));
  s.on('error', (e) => { console.error('client: ' + e.message); process.exit(1); });
}`;

function collect(child: ChildProcess): { out: () => string; err: () => string; exit: Promise<number | null> } {
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  return { out: () => out, err: () => err, exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
}

interface StreamResult { bytes: number; sentSha: string; recvSha: string; maxGapMs: number; clientExit: number | null; serverExit: number | null }
async function startStream(from: LabPod, to: LabPod, port: number, ms: number): Promise<{ done: Promise<StreamResult>; kill: () => void }> {
  const server = nsSpawn(to.ns, [process.execPath, '-e', STREAM, 'server', String(port)], { out: 'pipe' });
  const s = collect(server);
  await waitFor(() => s.out().includes('listening'), { what: `stream server in ${to.name}` });
  const client = nsSpawn(from.ns, [process.execPath, '-e', STREAM, 'client', to.ip, String(port), String(ms), '32768'], { out: 'pipe' });
  const c = collect(client);
  const kill = (): void => { for (const p of [client, server]) if (p.exitCode === null) p.kill('SIGKILL'); };
  const done = (async () => {
    const [clientExit, serverExit] = await Promise.all([c.exit, s.exit]);
    const sent = JSON.parse(c.out().trim() || '{}') as { bytes?: number; sha256?: string };
    const recv = JSON.parse(s.out().split('\n').find((l) => l.startsWith('{')) ?? '{}') as { bytes?: number; sha256?: string; maxGapMs?: number };
    if (clientExit !== 0 || serverExit !== 0) throw new Error(`stream ${from.name} → ${to.name} failed: ${c.err()} ${s.err()}`);
    return { bytes: recv.bytes ?? -1, sentSha: sent.sha256 ?? 'none', recvSha: recv.sha256 ?? 'none', maxGapMs: recv.maxGapMs ?? -1, clientExit, serverExit };
  })();
  return { done, kill };
}

function startFlood(from: LabPod, to: LabPod): { done: Promise<{ sent: number; received: number; code: number | null; out: string }>; kill: () => void } {
  const child = nsSpawn(from.ns, ['ping', '-c', String(PINGS), '-i', String(PING_INTERVAL_MS / 1000), '-W', '1', '-q', to.ip], { out: 'pipe' });
  const c = collect(child);
  return {
    kill: () => { if (child.exitCode === null) child.kill('SIGKILL'); },
    done: c.exit.then((code) => {
      const m = /(\d+) packets transmitted, (\d+) received/.exec(c.out());
      return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0), code, out: c.out() };
    }),
  };
}

/** The agent's failed re-list attempts (its log) since byte `from`: when, and the backoff it chose. */
function listRetries(n: LabNode, from: number): Array<{ at: number; retryInMs: number }> {
  const out: Array<{ at: number; retryInMs: number }> = [];
  for (const line of fs.readFileSync(n.logFile).subarray(from).toString('utf8').split('\n')) {
    if (!line.includes('listing subnet leases failed; retrying')) continue;
    try {
      const j = JSON.parse(line) as { ts: string; retryInMs: number };
      out.push({ at: Date.parse(j.ts), retryInMs: j.retryInMs });
    } catch { /* a partial last line */ }
  }
  return out;
}

/**
 * Right after etcd answers again (at tBack): another node's lease is written;
 * measured from tBack: each agent back to `connected`, the lease in each
 * agent's peer map, and the stock node's route + FDB entry for it.
 */
async function newLeaseAfterRecovery(tKill: number, tBack: number, lease: NewLease): Promise<{ tPut: number; reconnected: Record<string, number | null>; seen: Record<string, number | null> }> {
  const e = etcd();
  const ours = [lab.node('n1'), lab.node('n2')];
  const stock = lab.node('n3');
  const leaseId = /lease ([0-9a-f]+) granted/.exec(etcdctl(e, ['lease', 'grant', '86400']))?.[1];
  if (!leaseId) throw new Error('etcdctl lease grant gave no id');
  etcdctl(e, ['put', `--lease=${leaseId}`, `${ETCD_PREFIX}/subnets/${lease.key}`,
    JSON.stringify({ PublicIP: lease.publicIp, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: lease.vtepMac } })]);
  const tPut = Date.now();
  const maps = Object.fromEntries(ours.map((n) => [n.name, NodeMaps.fromPinDir(n.pinDir)]));
  const seen: Record<string, number | null> = {};
  const reconnected: Record<string, number | null> = {};
  try {
    await Promise.all([
      ...ours.map((n) => waitFor(() => maps[n.name]!.peers.entries().some(([k]) => formatCidr(k) === lease.subnet), { timeoutMs: 30_000, intervalMs: 10, what: `${lease.subnet} in ${n.name}'s map` })
        .then(() => { seen[n.name] = Date.now() - tBack; }, () => { seen[n.name] = null; })),
      ...ours.map((n) => waitFor(() => { const s = readStateFile(n.stateDir); return s?.store.state === 'connected' && Date.parse(s.store.since) >= tKill ? s : null; }, { timeoutMs: 30_000, intervalMs: 20, what: `${n.name} reconnected` })
        .then((s) => { reconnected[n.name] = Date.parse(s.store.since) - tBack; }, () => { reconnected[n.name] = null; })),
      /* Asynchronously, so the map polls above keep their 10 ms resolution. */
      waitFor(async () => {
        const { stdout } = await promisify(execFile)('nsenter', [`--net=/run/netns/${stock.ns}`, 'sh', '-c', `ip route show ${lease.subnet}; bridge fdb show dev flannel.1`], { encoding: 'utf8' });
        return stdout.includes(`${lease.subnet} via`) && stdout.includes('flannel.1') && stdout.includes(`${lease.vtepMac} dst ${lease.publicIp}`);
      }, { timeoutMs: 30_000, intervalMs: 20, what: `${lease.subnet} on the stock node` })
        .then(() => { seen.n3 = Date.now() - tBack; }, () => { seen.n3 = null; }),
    ]);
  } finally {
    for (const m of Object.values(maps)) m.close();
  }
  return { tPut, reconnected, seen };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/* ------------------------------------------------------------ tests */

test.serial('restartEtcd: a killed lab etcd comes back on its data dir and addresses, with its keys and revision', async (t) => {
  const e = etcd();
  etcdctl(e, ['put', '/fbpf-test/restart', 'kept']);
  const rev = revision();
  const pid = e.pid;
  const t0 = Date.now();
  stopEtcd(e, false);
  await waitFor(() => !pidAlive(pid), { what: `etcd pid ${pid} to exit` });
  t.throws(() => etcdctl({ ns: e.ns, endpoints: e.endpoints }, ['--dial-timeout=300ms', '--command-timeout=500ms', 'get', '/fbpf-test/restart']), undefined, 'etcd is down');
  const same = await restartEtcd(e);
  const ms = Date.now() - t0;
  t.is(same, lab.state.etcd!, 'the lab\'s recorded etcd is updated in place');
  t.not(e.pid, pid, 'a new process');
  t.true(pidAlive(e.pid));
  for (const ep of e.endpoints) {
    t.is(etcdctl({ ns: e.ns, endpoints: [ep] }, ['get', '/fbpf-test/restart', '--print-value-only']).trim(), 'kept', `the key survived, served on ${ep}`);
  }
  t.true(revision() >= rev, 'the revision continues');
  etcdctl(e, ['del', '/fbpf-test/restart']);
  t.log(`etcd SIGKILL → restarted and healthy on the same data dir: ${ms} ms`);
  /* Leave the agents connected again for the next test. */
  await waitFor(() => ['n1', 'n2'].every((n) => readStateFile(lab.node(n).stateDir)?.store.state === 'connected'), { timeoutMs: 20_000, what: 'the agents to reconnect' });
});

test.serial(`etcd killed for ${OUTAGE_MS / 1000} s under traffic: zero loss, store reported down, reconnect, a new lease in the maps ≤ ${CHANGE_BOUND_MS} ms after etcd is back (and on the stock node)`, async (t) => {
  const ours = [lab.node('n1'), lab.node('n2')];
  const stock = lab.node('n3');
  const [p1, p2, p3] = [pod('n1'), pod('n2'), pod('n3')];
  for (const n of ours) {
    t.deepEqual(scrapeStoreState(n).current, ['connected'], `${n.name}: connected before the outage`);
  }
  const peersBefore = Object.fromEntries(ours.map((n) => [n.name, peerSubnets(n)]));
  const stockRoutesBefore = nsExec(stock.ns, 'ip route show dev flannel.1');
  const stockLogBefore = nsExec(stock.ns, `wc -l < ${stock.logFile}`).trim();

  /* ---- traffic */
  const floods = { 'p1→p2 (flannel-bpf → flannel-bpf)': startFlood(p1, p2), 'p3→p1 (stock → flannel-bpf)': startFlood(p3, p1) };
  const streams = {
    'p2→p1 (flannel-bpf → flannel-bpf)': await startStream(p2, p1, 5301, TRAFFIC_MS),
    'p3→p2 (stock → flannel-bpf)': await startStream(p3, p2, 5302, TRAFFIC_MS),
  };
  t.teardown(() => { for (const f of Object.values(floods)) f.kill(); for (const s of Object.values(streams)) s.kill(); });
  await sleep(LEAD_MS);

  /* ---- outage */
  const e = etcd();
  const deadPid = e.pid;
  const logFrom = Object.fromEntries(ours.map((n) => [n.name, fs.statSync(n.logFile).size]));
  const tKill = Date.now();
  stopEtcd(e, false);
  await waitFor(() => !pidAlive(deadPid), { what: 'etcd to exit' });

  const detect: Record<string, number> = {};
  for (const n of ours) {
    const st = await waitFor(() => { const s = readStateFile(n.stateDir); return s?.store.state === 'disconnected' ? s : null; }, { timeoutMs: 15_000, what: `${n.name} to notice the store is down` });
    detect[n.name] = Date.parse(st.store.since) - tKill;
  }
  /* What an operator sees in the middle of the outage. */
  await sleep(5_000);
  const during: Record<string, { metric: Record<string, number>; status: StatusJson; healthz: number; readyz: number }> = {};
  for (const n of ours) {
    during[n.name] = {
      metric: scrapeStoreState(n).values,
      status: statusJson(n),
      healthz: nsFetch(n.ns, `http://${n.ip}:${n.healthzPort}/healthz`).status,
      readyz: nsFetch(n.ns, `http://${n.ip}:${n.healthzPort}/readyz`).status,
    };
  }
  const restartAt = tKill + OUTAGE_MS;
  await sleep(restartAt - Date.now() - 2_000);
  const lateAlive = Object.fromEntries([...ours, stock].map((n) => [n.name, lab.running(n.name)]));
  const peersLate = Object.fromEntries(ours.map((n) => [n.name, peerSubnets(n)]));
  const lateState = Object.fromEntries(ours.map((n) => [n.name, readStateFile(n.stateDir)?.store.state]));
  const stockRoutesLate = nsExec(stock.ns, 'ip route show dev flannel.1');
  await sleep(Math.max(0, restartAt - Date.now()));

  /* ---- recovery: etcd back, and another node's lease written at once */
  const tRestart = Date.now();
  await restartEtcd(e);
  const tBack = Date.now();
  const { tPut, reconnected, seen } = await newLeaseAfterRecovery(tKill, tBack, NEW_LEASE);

  /* ---- traffic results */
  const floodResults = Object.fromEntries(await Promise.all(Object.entries(floods).map(async ([k, f]) => [k, await f.done] as const)));
  const streamResults = Object.fromEntries(await Promise.all(Object.entries(streams).map(async ([k, s]) => [k, await s.done] as const)));
  const after = Object.fromEntries(ours.map((n) => [n.name, scrapeStoreState(n).current]));
  const stockLog = nsExec(stock.ns, `tail -n +${Number(stockLogBefore) + 1} ${stock.logFile}`);
  const stockWatchErrors = (stockLog.match(/watch channel for .* closed/g) ?? []).length;
  const retries = Object.fromEntries(ours.map((n) => [n.name, listRetries(n, logFrom[n.name]!).filter((r) => r.at < tBack)]));

  /* ---- figures */
  t.log(`etcd down ${((tBack - tKill) / 1000).toFixed(1)} s (SIGKILL at t=0, restart begun at ${((tRestart - tKill) / 1000).toFixed(1)} s, answering at ${((tBack - tKill) / 1000).toFixed(1)} s); new lease written ${tPut - tBack} ms after`);
  for (const [k, r] of Object.entries(floodResults)) t.log(`ping ${k} every ${PING_INTERVAL_MS} ms across the outage: ${r.received}/${r.sent} received, ${r.sent - r.received} lost`);
  for (const [k, r] of Object.entries(streamResults)) t.log(`TCP stream ${k}, one connection across the outage: ${(r.bytes / 1e6).toFixed(1)} MB, sha256 ${r.sentSha === r.recvSha ? 'match' : 'MISMATCH'}, longest receive gap ${r.maxGapMs} ms`);
  for (const n of ours) {
    const d = during[n.name]!;
    t.log(`${n.name} (flannel-bpf): store down noticed after ${detect[n.name]} ms; mid-outage: lease_store_state ${JSON.stringify(d.metric)}, status store.state=${d.status.store.state}, warnings [${d.status.warnings.map((w) => w.code).join(', ')}], /healthz ${d.healthz}, /readyz ${d.readyz}; reconnected ${reconnected[n.name]} ms after etcd answered; new lease in its peer map ${seen[n.name]} ms after etcd answered`);
    const r = retries[n.name]!;
    const last = r[r.length - 1];
    t.log(`${n.name} re-list attempts while etcd was down: ${r.length}, backoff ${r.map((x) => x.retryInMs).join(', ')} ms; the last failed ${last ? `${((tRestart - last.at) / 1000).toFixed(1)} s before the restart began, its retry fell inside etcd's ${((tBack - tRestart) / 1000).toFixed(1)} s start-up` : '(none)'}`);
  }
  t.log(`n3 (stock flannel emulator): process alive through the outage: ${lateAlive.n3}; its flannel.1 routes unchanged: ${stockRoutesLate === stockRoutesBefore}; watch-closed warnings logged: ${stockWatchErrors}; no store state exposed (no metrics); new lease as route + FDB ${seen.n3 === null ? 'NOT picked up within 30 s' : `${seen.n3} ms after etcd answered`}`);

  /* ---- assertions */
  for (const [k, r] of Object.entries(floodResults)) {
    t.is(r.sent, PINGS, `${k}: every ping sent`);
    t.is(r.received, r.sent, `${k}: zero loss across the outage`);
  }
  for (const [k, r] of Object.entries(streamResults)) {
    t.true(r.bytes > 0, `${k}: data flowed`);
    t.is(r.recvSha, r.sentSha, `${k}: the stream arrived intact`);
  }
  for (const n of ours) {
    const d = during[n.name]!;
    const r = retries[n.name]!.map((x) => x.retryInMs);
    t.true(r.length >= 3 && r.length <= OUTAGE_MS / LEASE_RETRY_MAX_MS + 10, `${n.name}: retried with backoff, at most one attempt per ${LEASE_RETRY_MAX_MS} ms, not in a hot loop (${r.length} attempts)`);
    t.true(r.every((x) => x >= 100 && x <= LEASE_RETRY_MAX_MS), `${n.name}: every retry waited 100..${LEASE_RETRY_MAX_MS} ms (${r.join(', ')})`);
    t.true(detect[n.name]! >= 0 && detect[n.name]! < 15_000, `${n.name} noticed the outage`);
    t.deepEqual(d.metric, { connecting: 0, connected: 0, disconnected: 1 }, `${n.name}: lease_store_state says disconnected`);
    t.is(d.status.store.state, 'disconnected', `${n.name}: status --json says disconnected`);
    t.true(d.status.store.live && d.status.agent.running, `${n.name}: status sees the agent running`);
    t.true(d.status.warnings.some((w) => w.code === 'store_not_connected'), `${n.name}: status warns about the store`);
    t.is(d.healthz, 200, `${n.name}: live during the outage`);
    t.is(d.readyz, 200, `${n.name}: still ready (synced maps keep forwarding)`);
    t.true(lateAlive[n.name], `${n.name}: the agent is still running after ${OUTAGE_MS / 1000 - 2} s without etcd`);
    t.is(lateState[n.name], 'disconnected', `${n.name}: still reports disconnected late in the outage`);
    t.deepEqual(peersLate[n.name], peersBefore[n.name], `${n.name}: the peer map kept its contents`);
    t.not(reconnected[n.name], null, `${n.name}: reconnected`);
    t.deepEqual(after[n.name], ['connected'], `${n.name}: lease_store_state connected again`);
    t.not(seen[n.name], null, `${n.name}: the new lease reached the map`);
    t.true((seen[n.name] ?? Infinity) <= CHANGE_BOUND_MS, `${n.name}: the new lease was in the map ${seen[n.name]} ms after etcd answered (bound ${CHANGE_BOUND_MS} ms)`);
  }
  t.true(lateAlive.n3, 'the stock node kept running');
  t.is(stockRoutesLate, stockRoutesBefore, 'the stock node kept its routes');
  t.not(seen.n3, null, 'the stock node picked the new lease up after the restart');
});

/** Latencies of the worst-phase run, for the bound check below. */
let worst: Record<string, number | null> | null = null;

test.serial(`worst phase: etcd killed and back right after the agents' failed re-list at the backoff cap (${LEASE_RETRY_MAX_MS} ms): reconnect, and a new lease in the maps within the cap`, async (t) => {
  const ours = [lab.node('n1'), lab.node('n2')];
  await waitFor(() => ours.every((n) => readStateFile(n.stateDir)?.store.state === 'connected'), { timeoutMs: 20_000, what: 'the agents connected' });
  const logFrom = Object.fromEntries(ours.map((n) => [n.name, fs.statSync(n.logFile).size]));
  const e = etcd();
  const deadPid = e.pid;
  const tKill = Date.now();
  stopEtcd(e, false);
  await waitFor(() => !pidAlive(deadPid), { what: 'etcd to exit' });
  /* Wait until every agent has just failed a re-list and chosen the longest wait: its next try is a full cap away. */
  const capped: Record<string, { at: number; retryInMs: number }> = {};
  for (const n of ours) {
    capped[n.name] = await waitFor(() => listRetries(n, logFrom[n.name]!).find((r) => r.retryInMs >= LEASE_RETRY_MAX_MS), { timeoutMs: 30_000, intervalMs: 10, what: `${n.name} to back off to the cap` });
  }
  const tRestart = Date.now();
  await restartEtcd(e);
  const tBack = Date.now();
  const { tPut, reconnected, seen } = await newLeaseAfterRecovery(tKill, tBack, NEW_LEASE_2);
  worst = seen;

  t.log(`etcd down ${((tBack - tKill) / 1000).toFixed(1)} s; restart begun ${Object.entries(capped).map(([k, c]) => `${tRestart - c.at} ms after ${k}'s failed re-list (next in ${c.retryInMs} ms)`).join(', ')}; etcd answering ${tBack - tRestart} ms later; new lease written ${tPut - tBack} ms after`);
  for (const n of ours) t.log(`${n.name} (flannel-bpf): store state connected ${reconnected[n.name]} ms after etcd answered; new lease in its peer map ${seen[n.name]} ms after etcd answered`);
  t.log(`n3 (stock flannel emulator, in its own phase here): new lease as route + FDB ${seen.n3 === null ? 'NOT picked up within 30 s' : `${seen.n3} ms after etcd answered`}`);

  for (const n of ours) {
    t.not(reconnected[n.name], null, `${n.name}: reconnected`);
    t.not(seen[n.name], null, `${n.name}: the new lease reached the map`);
    t.true((seen[n.name] ?? Infinity) <= LEASE_RETRY_MAX_MS + 1_000, `${n.name}: the new lease was in the map ${seen[n.name]} ms after etcd answered (the backoff cap is ${LEASE_RETRY_MAX_MS} ms)`);
  }
  t.not(seen.n3, null, 'the stock node picked the new lease up');
});

/* The issue's bound holds in the worst phase too: the re-list waits at most LEASE_RETRY_MAX_MS, and is cut short when the store answers. */
test.serial(`issue 7 bound: in the worst phase too, a new lease is in the maps ≤ ${CHANGE_BOUND_MS} ms after etcd is back`, (t) => {
  t.truthy(worst, 'the worst-phase run measured something');
  for (const n of ['n1', 'n2']) {
    t.true((worst?.[n] ?? Infinity) <= CHANGE_BOUND_MS, `${n}: ${worst?.[n]} ms (bound ${CHANGE_BOUND_MS} ms)`);
  }
});

test.serial('stock flannel\'s worst phase: etcd back right after the emulator\'s failed watch attempt at its longest backoff', async (t) => {
  const stock = lab.node('n3');
  const key = `watch channel for ${ETCD_PREFIX}/subnets closed`;
  const from = fs.statSync(stock.logFile).size;
  const count = (): number => fs.readFileSync(stock.logFile).subarray(from).toString('utf8').split('\n').filter((l) => l.includes(key)).length;
  const e = etcd();
  const deadPid = e.pid;
  const tKill = Date.now();
  stopEtcd(e, false);
  await waitFor(() => !pidAlive(deadPid), { what: 'etcd to exit' });
  /* Watch each failed attempt appear; once two are ≥ 4 s apart the emulator sleeps its longest backoff (5 s) next. */
  const arrivals: number[] = [];
  await waitFor(() => {
    while (count() > arrivals.length) arrivals.push(Date.now());
    const n = arrivals.length;
    return n >= 2 && arrivals[n - 1]! - arrivals[n - 2]! >= 4_000;
  }, { timeoutMs: 40_000, intervalMs: 10, what: 'the stock emulator to back off to 5 s' });
  const tRestart = Date.now();
  await restartEtcd(e);
  const tBack = Date.now();
  const { seen } = await newLeaseAfterRecovery(tKill, tBack, NEW_LEASE_3);
  t.log(`etcd down ${((tBack - tKill) / 1000).toFixed(1)} s; restart begun ${tRestart - arrivals[arrivals.length - 1]!} ms after the emulator's failed watch attempt #${arrivals.length} (gaps ${arrivals.slice(1).map((a, i) => a - arrivals[i]!).join(', ')} ms); etcd answering ${tBack - tRestart} ms later`);
  t.log(`n3 (stock flannel emulator): new lease as route + FDB ${seen.n3 === null ? 'NOT picked up within 30 s' : `${seen.n3} ms after etcd answered`}; flannel-bpf n1/n2 in the same (for them arbitrary) phase: ${seen.n1} / ${seen.n2} ms`);
  t.not(seen.n3, null, 'the stock node picked the new lease up');
  t.true((seen.n3 ?? Infinity) <= 5_000 + 1_000, `the stock node picked it up ${seen.n3} ms after etcd answered (its backoff cap is 5 s)`);
});
