/**
 * Control-plane benchmark (issue 6 item 3, DESIGN.md §7), all in one run:
 *
 *  1. Programming N = 1k, 5k, 10k peers from a lease snapshot (Lease objects
 *     in memory) through the real Reconciler into real, unpinned BPF maps,
 *     versus programming the same N peers the way flanneld does (per peer a
 *     PERMANENT neighbour + a `self permanent` FDB entry + an onlink route on a
 *     flannel.1 VXLAN device) in a scratch network namespace: one
 *     `ip -batch -` + one `bridge -batch -` per N (iproute2 at its fastest),
 *     alternating A B / B A. Also: the per-peer-exec cost (3 commands per
 *     peer), the kernel floor (the same map writes from prebuilt buffers),
 *     the reconciler's stages, one lease change at N, and a restart resync.
 *  2. Lease change in a real etcd → entry in the agent's pinned peers map,
 *     p50/p99 over ≥ 200 changes (add / update VtepMAC / delete, in turn),
 *     with one agent in a lab namespace and the lab's etcd, etcd3 in-process.
 *  3. Agent RSS and CPU at 10k peers, idle.
 *  4. Metrics scrape at 10k peers: the agent's own /metrics (the exporter in
 *     src/metrics/server.ts), and bench/scrape.bench.ts when present (full
 *     runs).
 *  5. Agent start to ready with existing pins (SIGTERM, start, /readyz), with
 *     the agent log's phase timestamps.
 *
 *   node --import ./node_modules/tsx/dist/esm/index.mjs bench/controlplane.ts [--quick] [--strict] [--only=programming|lab]
 *
 * Needs root. Never touches the machine's root network namespace: the
 * netlink comparison runs in `ip netns add <prefix>-nl`; the lab lives in
 * <prefix>-* namespaces; after the lab is up this process's main thread
 * moves into the lab router's namespace (to reach etcd and the agent).
 * Everything is removed in the end, also on failure and on Ctrl-C.
 * Writes bench/results/controlplane-<date>-<host>.json and prints a markdown
 * table on stdout (progress on stderr). Exit 1 on errors (and with --strict
 * also when a target is missed).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { Etcd3 } from 'etcd3';
import { Dataplane, type ProgramKey } from '../src/loader/dataplane.js';
import { Reconciler } from '../src/control/reconcile/apply.js';
import { isEmptyDiff, type OwnNode, type UplinkFacts } from '../src/control/reconcile/index.js';
import { nullLogger } from '../src/control/log.js';
import { formatIPv4, parseCidr, parseMac, cidrOverlaps, type Cidr } from '../src/maps/addr.js';
import type { Lease } from '../src/control/lease/types.js';
import { etcdLeasePath, etcdLeaseValue, etcdSubnetsPath, parseEtcdLease } from '../src/control/lease/etcd.js';
import { NodeMaps } from '../src/maps/index.js';
import { Lab, ETCD_PREFIX, LAB_ROOT, listLabs, type LabNode } from '../src/cli/lab/lab.js';
import { etcdctl } from '../src/cli/lab/etcd.js';
import { addNetns, delNetns, listNetns, netnsExists, pidAlive } from '../src/cli/lab/netns.js';
import { readSubnetEnv } from '../src/control/subnet-env.js';
import { readStateFile } from '../src/control/state.js';
import { enterNetns } from '../test/helpers/netns.js';
import { summarize, roundSummary, median, ratio, fmt, fmtMedianRange, fmtRatio, type Summary } from './lib/stats.js';
import { markdownTable, verdict } from './lib/table.js';
import { environment, writeResults, resultsFile, REPO_ROOT } from './lib/results.js';
import { svgBarChart } from './lib/chart.js';
import { Cleanup } from './lib/cleanup.js';
import { readMem, readMemBreakdown, sampleIdle } from './lib/proc.js';
import { Progress, sleep, blockFor, nextTurn } from './lib/progress.js';

/* ------------------------------------------------------------ configuration */

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const STRICT = argv.includes('--strict');
/** --only=programming | --only=lab: run one half (for investigations; the committed results come from whole runs). */
const ONLY = argv.find((a) => a.startsWith('--only='))?.slice('--only='.length) ?? null;
if (ONLY !== null && ONLY !== 'programming' && ONLY !== 'lab') {
  process.stderr.write(`bench/controlplane: --only must be programming or lab, not ${JSON.stringify(ONLY)}\n`);
  process.exit(2);
}
const SIZES = [1000, 5000, 10_000];

const CFG = QUICK
  ? { progReps: 3, upsertsPerRep: 3, perExecPeers: 100, changes: 102, changesAt10k: 21, idleSeconds: 5, scrapeReps: 5, restartSmall: 1, restartAt10k: 2, runScrapeBench: false }
  : { progReps: 9, upsertsPerRep: 5, perExecPeers: 1000, changes: 600, changesAt10k: 300, idleSeconds: 10, scrapeReps: 20, restartSmall: 3, restartAt10k: 5, runScrapeBench: true };

const TARGETS = {
  program10kMs: 50,
  program10kRatio: 20,
  leaseChangeP99Ms: 10,
  rssMb: 100,
  scrapeMs: 100,
  restartReadyMs: 1000,
};

/** The agent's default --max-peers (capacity of the peer-sized maps). */
const MAX_PEERS = 65536;
/** Cluster network of the in-process runs and of the lab (a /8 holds 10k /24 leases; the lab's default /16 holds 256). */
const NETWORK = '10.0.0.0/8';
const TSX = path.join(REPO_ROOT, 'node_modules/tsx/dist/esm/index.mjs');

const progress = new Progress();
const cleanup = new Cleanup((l) => process.stderr.write(`${l}\n`));
const errors: Array<{ section: string; error: string }> = [];

/* ------------------------------------------------------------ peers */

const A10 = (10 << 24) >>> 0;
const A172 = (172 << 24) >>> 0;

/** Bulk peer i (1-based): 10.64.0.0/24 + i (10.64.1.0 … 10.103.16.0 for 10k), away from the lab agent's own subnet (10.0.1–100.0). */
function bulkSubnet(i: number): Cidr {
  return { addr: (A10 + (64 << 16) + i * 256) >>> 0, prefix: 24 };
}
function bulkIp(i: number): number {
  return (A172 + (16 << 16) + 1 + i) >>> 0; /* 172.16.0.2 … */
}
function mac(i: number, variant = 0): string {
  return `0e:${(0xf0 | (variant & 0x0f)).toString(16)}:${[(i >>> 24) & 255, (i >>> 16) & 255, (i >>> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
}
function bulkLeases(n: number): Lease[] {
  const out: Lease[] = [];
  for (let i = 1; i <= n; i++) {
    const subnet = bulkSubnet(i);
    out.push({ key: `${formatIPv4(subnet.addr)}-24`, subnet, publicIp: bulkIp(i), backendType: 'vxlan', vtepMac: mac(i), vni: 1 });
  }
  return out;
}

const OWN: OwnNode = {
  subnet: parseCidr('10.0.0.0/24'), network: parseCidr(NETWORK), publicIp: (A172 + (16 << 16) + 1) >>> 0, backend: 'vxlan',
  vni: 1, port: 8472, directRouting: false, leaseKey: '10.0.0.0-24',
};
const UPLINK: UplinkFacts = { onLinkSubnets: [] };

/* ------------------------------------------------------------ helpers */

function now(): number {
  return performance.now();
}

/** Fresh, unpinned maps (the objects share one set of maps; one object is enough and loads fastest). */
function loadMaps(): Dataplane {
  let last: unknown;
  for (const only of [['devEgress'], ['uplinkIngress'], ['uplinkEgress']] as ProgramKey[][]) {
    try {
      return Dataplane.load({ only, maxPeers: MAX_PEERS });
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

function mapCount(maps: NodeMaps, name: 'fbpf_peers' | 'fbpf_sources'): number {
  return maps.map(name).lookupAll(8192).count;
}

function sh(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 256 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.slice(0, 6).join(' ')}… failed: ${(e.stderr || e.message).trim().split('\n').slice(0, 3).join(' / ')}`);
  }
}

function errText(err: unknown): string {
  return (err as Error)?.message?.split('\n').slice(0, 4).join(' / ') ?? String(err);
}

async function section<T>(name: string, fn: () => Promise<T> | T): Promise<T | null> {
  try {
    return await fn();
  } catch (err) {
    errors.push({ section: name, error: errText(err) });
    progress.say(name, `FAILED: ${errText(err)}`);
    return null;
  }
}

const rs = (xs: number[]): Summary => roundSummary(summarize(xs));

/* ------------------------------------------------------------ 1. programming N peers */

interface ReconcilerRep {
  ctorMs: number;
  snapshotMs: number;
  /** The snapshot's stages (Reconciler.lastTimings). */
  stages: Stages;
  upsertMs: number[];
  /** Leases each one-change apply re-decided (the incremental plan's reach). */
  upsertDecided: number[];
  resyncMs: number;
}

function reconcilerRep(leases: readonly Lease[], upserts: number): ReconcilerRep {
  const n = leases.length;
  const dp = loadMaps();
  try {
    const t0 = now();
    const rec = new Reconciler(dp.maps, OWN, UPLINK, MAX_PEERS, nullLogger);
    const t1 = now();
    const r = rec.snapshot(leases);
    const t2 = now();
    const timings = rec.lastTimings;
    const stages: Stages = { planMs: timings?.planMs ?? NaN, diffMs: timings?.diffMs ?? NaN, writeMs: timings?.writeMs ?? NaN };
    /* Verify (outside the timing): every peer and tunnel source is in the kernel's maps, values right. */
    if (r.peers !== n || r.rejected.length) throw new Error(`reconciler programmed ${r.peers} of ${n} peers (${r.rejected.length} rejected)`);
    const peers = mapCount(dp.maps, 'fbpf_peers');
    const sources = mapCount(dp.maps, 'fbpf_sources');
    if (peers !== n || sources !== n) throw new Error(`maps hold ${peers} peers / ${sources} sources, expected ${n}`);
    const probe = leases[n >> 1]!;
    const got = dp.maps.peers.get(probe.subnet);
    if (!got || got.vtepMac !== probe.vtepMac || got.publicIp !== probe.publicIp) throw new Error(`peer ${probe.key} reads back wrong: ${JSON.stringify(got)}`);

    /* One lease change at N (what every watch event costs). */
    const upsertMs: number[] = [];
    const upsertDecided: number[] = [];
    for (let k = 0; k < upserts; k++) {
      const l = leases[(k * 7919 + 13) % n]!;
      const changed = { ...l, vtepMac: mac(k + 1, 1) };
      const t = now();
      rec.upsert(changed);
      upsertMs.push(now() - t);
      upsertDecided.push(rec.lastTimings?.decided ?? NaN);
      if (dp.maps.peers.get(l.subnet)?.vtepMac !== changed.vtepMac) throw new Error('an upsert did not reach the map');
    }
    /* Restart resync: a new reconciler over the programmed maps, same leases: nothing to write. */
    const t3 = now();
    const rec2 = new Reconciler(dp.maps, OWN, UPLINK, MAX_PEERS, nullLogger);
    const r2 = rec2.snapshot([...rec.leases.values()]);
    const resyncMs = now() - t3;
    if (!isEmptyDiff(r2.diff)) throw new Error('resync over programmed maps wrote something');
    return { ctorMs: t1 - t0, snapshotMs: t2 - t1, stages, upsertMs, upsertDecided, resyncMs };
  } finally {
    dp.close();
  }
}

/** The same writes the reconciler makes (sources, peers, zeroed counters), from prebuilt buffers: the kernel's share. */
function kernelFloorRep(leases: readonly Lease[]): number {
  const n = leases.length;
  const dp = loadMaps();
  try {
    const { peers, sources, peerStats } = dp.maps;
    const pk = Buffer.alloc(n * peers.codec.keySize);
    const pv = Buffer.alloc(n * peers.map.valueBufSize);
    const sk = Buffer.alloc(n * sources.codec.keySize);
    const sv = Buffer.alloc(n * sources.map.valueBufSize);
    const ik = Buffer.alloc(n * 4);
    const iv = Buffer.alloc(n * peerStats.map.valueBufSize);
    leases.forEach((l, i) => {
      peers.codec.encodeKey(l.subnet, pk, i * peers.codec.keySize);
      peers.codec.encodeValue({ mode: 'vxlan', vtepMac: l.vtepMac!, peerId: i + 1, publicIp: l.publicIp }, pv, i * peers.map.valueBufSize);
      sources.codec.encodeKey(l.publicIp, sk, i * sources.codec.keySize);
      sources.codec.encodeValue({ peerId: i + 1 }, sv, i * sources.map.valueBufSize);
      ik.writeUInt32LE(i + 1, i * 4);
    });
    const t = now();
    peerStats.map.updateBatch(ik, iv, n);
    sources.map.updateBatch(sk, sv, n);
    peers.map.updateBatch(pk, pv, n);
    const ms = now() - t;
    if (mapCount(dp.maps, 'fbpf_peers') !== n) throw new Error('kernel floor: peers map incomplete');
    return ms;
  } finally {
    dp.close();
  }
}

/** Where a snapshot's time goes, from the Reconciler's own timings: plan round (per-lease checks, conflicts, modes, ids), diff against the mirror, encoding + batched writes. */
interface Stages { planMs: number; diffMs: number; writeMs: number }

/* netlink, as flanneld programs it */

const VTEP = { local: '192.168.77.1', mac: '0e:fb:00:00:00:01' };

function netnsSetup(ns: string): void {
  addNetns(ns);
  sh('ip', ['-n', ns, '-batch', '-'], [
    'link add eth0 type veth peer name eth0p',
    `addr add ${VTEP.local}/24 dev eth0`,
    'link set eth0 up',
    'link set eth0p up',
  ].join('\n'));
}

/** flannel.1 exactly as flanneld creates it (stock.ts), fresh: deleting it removes its routes, neighbours and FDB entries. */
function recreateFlannel1(ns: string): void {
  try { sh('ip', ['-n', ns, 'link', 'del', 'flannel.1']); } catch { /* not there */ }
  sh('ip', ['-n', ns, '-batch', '-'], [
    `link add flannel.1 type vxlan id 1 local ${VTEP.local} dev eth0 dstport 8472 nolearning`,
    `link set flannel.1 address ${VTEP.mac} mtu 1450 up`,
    'addr add 10.0.0.0/32 dev flannel.1',
  ].join('\n'));
}

function netAddr(l: Lease): string {
  return formatIPv4(l.subnet.addr);
}

function netlinkBatches(leases: readonly Lease[]): { ip: string; bridge: string } {
  const ip: string[] = [];
  const br: string[] = [];
  for (const l of leases) {
    const net = netAddr(l);
    ip.push(`neigh replace ${net} lladdr ${l.vtepMac} dev flannel.1 nud permanent`);
    ip.push(`route replace ${net}/${l.subnet.prefix} via ${net} dev flannel.1 onlink`);
    br.push(`fdb replace ${l.vtepMac} dev flannel.1 dst ${formatIPv4(l.publicIp)} self permanent`);
  }
  return { ip: `${ip.join('\n')}\n`, bridge: `${br.join('\n')}\n` };
}

function countFlannel1(ns: string): { routes: number; neigh: number; fdb: number } {
  const lines = (s: string, re: RegExp): number => s.split('\n').filter((l) => re.test(l)).length;
  return {
    routes: lines(sh('ip', ['-n', ns, 'route', 'show', 'dev', 'flannel.1']), / via .* onlink/),
    neigh: lines(sh('ip', ['-n', ns, 'neigh', 'show', 'dev', 'flannel.1']), /PERMANENT/),
    fdb: lines(sh('bridge', ['-n', ns, 'fdb', 'show', 'dev', 'flannel.1']), / dst .*self permanent/),
  };
}

interface NetlinkRep { totalMs: number; ipMs: number; bridgeMs: number }

function netlinkRep(ns: string, leases: readonly Lease[], batches: { ip: string; bridge: string }): NetlinkRep {
  recreateFlannel1(ns);
  const t0 = now();
  sh('ip', ['-n', ns, '-batch', '-'], batches.ip);
  const t1 = now();
  sh('bridge', ['-n', ns, '-batch', '-'], batches.bridge);
  const t2 = now();
  const c = countFlannel1(ns);
  const n = leases.length;
  if (c.routes !== n || c.neigh !== n || c.fdb !== n) throw new Error(`flannel.1 holds ${c.routes} routes / ${c.neigh} neighbours / ${c.fdb} FDB entries, expected ${n}`);
  return { totalMs: t2 - t0, ipMs: t1 - t0, bridgeMs: t2 - t1 };
}

/** Process start cost of the two batch commands (empty input). */
function netlinkSpawnMs(ns: string): number {
  const xs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = now();
    sh('ip', ['-n', ns, '-batch', '-'], '');
    sh('bridge', ['-n', ns, '-batch', '-'], '');
    xs.push(now() - t);
  }
  return median(xs);
}

/** flanneld's per-peer call pattern done with one process per call: neigh, FDB, route for each peer. */
function perExecRun(ns: string, leases: readonly Lease[]): number {
  recreateFlannel1(ns);
  const t0 = now();
  for (const l of leases) {
    const net = netAddr(l);
    sh('ip', ['-n', ns, 'neigh', 'replace', net, 'lladdr', l.vtepMac!, 'dev', 'flannel.1', 'nud', 'permanent']);
    sh('bridge', ['-n', ns, 'fdb', 'replace', l.vtepMac!, 'dev', 'flannel.1', 'dst', formatIPv4(l.publicIp), 'self', 'permanent']);
    sh('ip', ['-n', ns, 'route', 'replace', `${net}/${l.subnet.prefix}`, 'via', net, 'dev', 'flannel.1', 'onlink']);
  }
  const ms = now() - t0;
  const c = countFlannel1(ns);
  if (c.routes !== leases.length) throw new Error(`per-exec: ${c.routes} routes, expected ${leases.length}`);
  return ms;
}

interface ProgrammingResult {
  n: number;
  reconcilerMs: Summary;
  reconcilerCtorMs: Summary;
  kernelFloorMs: Summary;
  stagesMs: Record<keyof Stages, Summary>;
  oneChangeAtNMs: Summary;
  /** Leases one change re-decided (max over the changes). */
  oneChangeDecidedMax: number;
  resyncMs: Summary;
  netlinkBatchMs: Summary;
  netlinkIpMs: Summary;
  netlinkBridgeMs: Summary;
  /** netlink batch median / reconciler median. */
  ratio: number;
}

async function benchProgramming(prefix: string): Promise<{ sizes: ProgrammingResult[]; spawnMs: number; perExec: unknown; coldFirstSnapshotMs: number }> {
  const say = progress.section('1 programming');
  const ns = `${prefix}-nl`;
  netnsSetup(ns);
  cleanup.add(`scratch netns ${ns}`, () => delNetns(ns));
  say(`scratch namespace ${ns} with a flannel.1 VXLAN device (VNI 1, port 8472, nolearning) as flanneld makes it`);

  /* The very first snapshot of a process runs cold (no JIT): recorded apart, as an agent start sees it. */
  const cold = reconcilerRep(bulkLeases(1000), 0).snapshotMs;
  const spawnMs = netlinkSpawnMs(ns);
  say(`cold first snapshot (1k peers): ${fmt(cold)} ms; ip+bridge process start (empty batches): ${fmt(spawnMs)} ms`);

  const sizes: ProgrammingResult[] = [];
  for (const n of SIZES) {
    const leases = bulkLeases(n);
    const batches = netlinkBatches(leases);
    const rec: ReconcilerRep[] = [];
    const floor: number[] = [];
    const stages: Stages[] = [];
    const nl: NetlinkRep[] = [];
    for (let r = 0; r < CFG.progReps; r++) {
      /* Alternate the order: A B, B A, … */
      const a = (): void => { rec.push(reconcilerRep(leases, CFG.upsertsPerRep)); floor.push(kernelFloorRep(leases)); stages.push(rec.at(-1)!.stages); };
      const b = (): void => { nl.push(netlinkRep(ns, leases, batches)); };
      if (r % 2 === 0) { a(); b(); } else { b(); a(); }
      say(`N=${n} run ${r + 1}/${CFG.progReps}: reconciler ${fmt(rec.at(-1)!.snapshotMs)} ms, netlink batch ${fmt(nl.at(-1)!.totalMs)} ms`);
    }
    const recMs = rs(rec.map((x) => x.snapshotMs));
    const nlMs = rs(nl.map((x) => x.totalMs));
    const stageKeys: (keyof Stages)[] = ['planMs', 'diffMs', 'writeMs'];
    sizes.push({
      n,
      reconcilerMs: recMs,
      reconcilerCtorMs: rs(rec.map((x) => x.ctorMs)),
      kernelFloorMs: rs(floor),
      stagesMs: Object.fromEntries(stageKeys.map((k) => [k, rs(stages.map((s) => s[k]))])) as Record<keyof Stages, Summary>,
      oneChangeAtNMs: rs(rec.flatMap((x) => x.upsertMs)),
      oneChangeDecidedMax: Math.max(0, ...rec.flatMap((x) => x.upsertDecided)),
      resyncMs: rs(rec.map((x) => x.resyncMs)),
      netlinkBatchMs: nlMs,
      netlinkIpMs: rs(nl.map((x) => x.ipMs)),
      netlinkBridgeMs: rs(nl.map((x) => x.bridgeMs)),
      ratio: Math.round(ratio(nlMs.median, recMs.median) * 100) / 100,
    });
    say(`N=${n}: reconciler median ${fmt(recMs.median)} ms vs netlink ${fmt(nlMs.median)} ms → ${fmtRatio(ratio(nlMs.median, recMs.median))}`);
  }

  /* Per-peer exec: 3 processes per peer. 1k peers in a full run; a quick run measures fewer and scales to 1k. */
  const k = CFG.perExecPeers;
  say(`per-peer exec: ${k} peers × (ip neigh, bridge fdb, ip route) = ${3 * k} processes…`);
  const perExecMs = perExecRun(ns, bulkLeases(k));
  const perExec = {
    peersMeasured: k,
    ms: Math.round(perExecMs),
    perPeerMs: Math.round((perExecMs / k) * 1000) / 1000,
    at1kMs: Math.round((perExecMs / k) * 1000),
    extrapolated: k !== 1000,
  };
  say(`per-peer exec: ${fmt(perExec.perPeerMs)} ms per peer → ${fmt(perExec.at1kMs / 1000)} s for 1k peers${perExec.extrapolated ? ` (scaled from ${k})` : ''}`);

  delNetns(ns);
  return { sizes, spawnMs: Math.round(spawnMs * 100) / 100, perExec, coldFirstSnapshotMs: Math.round(cold * 100) / 100 };
}

/* ------------------------------------------------------------ lab: 2–5 */

type Kv = Etcd3['kv'];

interface ChangeResult {
  changes: number;
  peersInCluster: number;
  allMs: Summary;
  byKind: Record<'add' | 'update' | 'delete', Summary>;
  putAckMs: Summary;
  /** Mean time between two looks at the map (the measurement's resolution), µs. */
  pollIntervalUs: number;
}

/**
 * `count` lease changes, each: put (or delete) in etcd, then poll the
 * agent's pinned peers map until the entry shows the change. Changes rotate
 * add → update (new VtepMAC) → delete on peer subnets 10.<octet>.<slot>.0/24.
 */
async function leaseChanges(kv: Kv, maps: NodeMaps, count: number, octet: number, peersInCluster: number, say: (m: string) => void): Promise<ChangeResult> {
  const peersMap = maps.map('fbpf_peers');
  const into = Buffer.alloc(peersMap.valueBufSize);
  const kinds = ['add', 'update', 'delete'] as const;
  const byKind: Record<(typeof kinds)[number], number[]> = { add: [], update: [], delete: [] };
  const all: number[] = [];
  const acks: number[] = [];
  let polls = 0;
  let pollTime = 0;
  for (let j = 0; j < count; j++) {
    const slot = Math.floor(j / 3);
    const kind = kinds[j % 3]!;
    const subnet: Cidr = { addr: (A10 + (octet << 16) + (slot << 8)) >>> 0, prefix: 24 };
    const keyBuf = maps.peers.key(subnet);
    const etcdKey = Buffer.from(etcdLeasePath(ETCD_PREFIX, subnet));
    const publicIp = (A172 + (24 << 16) + octet * 1024 + slot + 1) >>> 0;
    const vtepMac = mac(slot, kind === 'add' ? 2 : 3);
    const macBytes = parseMac(vtepMac);
    const value = Buffer.from(etcdLeaseValue({ publicIp, backendType: 'vxlan', vni: 1, vtepMac }));
    const shows = (): boolean => {
      const v = peersMap.lookup(keyBuf, into);
      if (kind === 'delete') return v === null;
      return v !== null && v.subarray(2, 8).equals(macBytes);
    };
    await sleep(2 + Math.random() * 4); /* the agent is idle when a change comes */
    if (shows()) throw new Error(`change ${j} (${kind}) already visible before it was made`);
    let ack = NaN;
    const t0 = now();
    const req = (kind === 'delete' ? kv.deleteRange({ key: etcdKey }) : kv.put({ key: etcdKey, value })).then(() => { ack = now() - t0; });
    let seen = NaN;
    const p0 = now();
    let k = 0;
    for (;;) {
      await nextTurn(); /* lets the request go out and its answer come in */
      k++;
      if (shows()) { seen = now() - t0; break; }
      if (now() - t0 > 10_000) throw new Error(`change ${j} (${kind} ${formatIPv4(subnet.addr)}/24) not in the agent's map after 10 s`);
      blockFor(0.05); /* 50 µs: poll without taking a whole CPU from etcd and the agent */
    }
    polls += k;
    pollTime += now() - p0;
    await req;
    all.push(seen);
    byKind[kind].push(seen);
    acks.push(ack);
    if ((j + 1) % 50 === 0 || j + 1 === count) say(`${j + 1}/${count} changes, p50 so far ${fmt(median(all))} ms`);
  }
  return {
    changes: count, peersInCluster, allMs: rs(all),
    byKind: { add: rs(byKind.add), update: rs(byKind.update), delete: rs(byKind.delete) },
    putAckMs: rs(acks), pollIntervalUs: Math.round((pollTime / polls) * 1000),
  };
}

/** Put n bulk leases in transactions of 128 (etcd's --max-txn-ops default), 4 in flight. */
async function putBulk(kv: Kv, n: number, ownSubnet: Cidr | null): Promise<number> {
  const ops: Array<{ key: Buffer; value: Buffer }> = [];
  for (let i = 1; i <= n; i++) {
    const subnet = bulkSubnet(i);
    if (ownSubnet && cidrOverlaps(subnet, ownSubnet)) throw new Error(`bulk peer ${formatIPv4(subnet.addr)}/24 would overlap the agent's own subnet`);
    ops.push({ key: Buffer.from(etcdLeasePath(ETCD_PREFIX, subnet)), value: Buffer.from(etcdLeaseValue({ publicIp: bulkIp(i), backendType: 'vxlan', vni: 1, vtepMac: mac(i) })) });
  }
  const batches: (typeof ops)[] = [];
  for (let i = 0; i < ops.length; i += 128) batches.push(ops.slice(i, i + 128));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < batches.length) {
      const b = batches[next++]!;
      await kv.txn({ compare: [], success: b.map((o) => ({ request_put: { key: o.key, value: o.value } })), failure: [] });
    }
  };
  const t = now();
  await Promise.all([worker(), worker(), worker(), worker()]);
  return now() - t;
}

async function waitMapCount(maps: NodeMaps, want: number, timeoutMs: number): Promise<number> {
  const t = now();
  for (;;) {
    const c = mapCount(maps, 'fbpf_peers');
    if (c === want) return now() - t;
    if (now() - t > timeoutMs) throw new Error(`the agent's peers map holds ${c} entries after ${timeoutMs / 1000} s, expected ${want}`);
    await sleep(20);
  }
}

function httpGet(url: string, opts: { timeoutMs?: number; agent?: http.Agent } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: opts.agent ?? false, timeout: opts.timeoutMs ?? 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
  });
}

/**
 * Where the agent's memory is: anonymous vs file-backed RSS (smaps_rollup) and
 * V8's own figures from the agent's /metrics (prom-client's default process
 * and Node.js metrics), when the exporter is there.
 */
async function agentMemory(node: LabNode): Promise<Record<string, number | string>> {
  const mb = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;
  const out: Record<string, number | string> = {};
  const m = readMemBreakdown(node.pid!);
  Object.assign(out, { rssMb: mb(m.rss), anonMb: mb(m.anon), fileBackedMb: mb(m.file) });
  try {
    const body = (await httpGet(`http://${node.ip}:${node.metricsPort}/metrics`, { timeoutMs: 10_000 })).body;
    const pick = (series: string): number => {
      const line = body.split('\n').find((l) => l.startsWith(`${series} `));
      return line ? Number(line.slice(series.length + 1).trim().split(' ')[0]) : NaN;
    };
    const v8: Array<[string, string]> = [
      ['v8HeapTotalMb', 'nodejs_heap_size_total_bytes'],
      ['v8HeapUsedMb', 'nodejs_heap_size_used_bytes'],
      ['externalMb', 'nodejs_external_memory_bytes'],
      ['oldSpaceUsedMb', 'nodejs_heap_space_size_used_bytes{space="old"}'],
      ['codeSpaceUsedMb', 'nodejs_heap_space_size_used_bytes{space="code"}'],
      ['largeObjectSpaceUsedMb', 'nodejs_heap_space_size_used_bytes{space="large_object"}'],
      ['newSpaceTotalMb', 'nodejs_heap_space_size_total_bytes{space="new"}'],
    ];
    for (const [k, series] of v8) {
      const x = pick(series);
      if (Number.isFinite(x)) out[k] = mb(x);
    }
  } catch (err) {
    out.v8 = `no /metrics: ${errText(err)}`;
  }
  return out;
}

async function benchScrape(node: LabNode, peers: number, say: (m: string) => void): Promise<unknown> {
  const url = `http://${node.ip}:${node.metricsPort}/metrics`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    let first;
    try {
      first = await httpGet(url, { agent, timeoutMs: 10_000 });
    } catch (err) {
      return { missing: `the agent serves no /metrics at ${url} (${errText(err)}): the exporter is not wired into this build` };
    }
    if (first.status !== 200) return { missing: `GET ${url} → HTTP ${first.status}` };
    const series = first.body.split('\n').filter((l) => l.startsWith('flannel_bpf_peer_tx_packets_total{')).length;
    if (series !== peers) throw new Error(`the scrape has ${series} per-peer tx series, expected ${peers}`);
    await httpGet(url, { agent });
    const ms: number[] = [];
    for (let i = 0; i < CFG.scrapeReps; i++) {
      const t = now();
      const r = await httpGet(url, { agent });
      ms.push(now() - t);
      if (r.status !== 200) throw new Error(`scrape ${i}: HTTP ${r.status}`);
    }
    const s = rs(ms);
    say(`agent /metrics at ${peers} peers: median ${fmt(s.median)} ms, p95 ${fmt(s.p95)} ms (${(first.body.length / 1e6).toFixed(1)} MB, ${CFG.scrapeReps} scrapes)`);
    return { source: `GET ${url} (the lab agent's exporter, keep-alive, from the router namespace)`, ms: s, bytes: first.body.length, perPeerSeries: 4 * series };
  } finally {
    agent.destroy();
  }
}

/** bench/scrape.bench.ts (the exporter's own benchmark: synthetic non-zero counters, in process and over a Unix socket). */
function runScrapeBench(say: (m: string) => void): unknown {
  const file = path.join(REPO_ROOT, 'bench/scrape.bench.ts');
  if (!fs.existsSync(file)) return { missing: 'bench/scrape.bench.ts not present' };
  say('running bench/scrape.bench.ts --peers=10000 --runs=15 …');
  const r = spawnSync(process.execPath, ['--import', TSX, file, '--peers=10000', '--runs=15'], { encoding: 'utf8', timeout: 180_000, cwd: REPO_ROOT });
  const out = `${r.stdout ?? ''}`;
  const grab = (label: string): { median: number; p95: number } | null => {
    const m = new RegExp(`${label}:\\s+median ([\\d.]+) ms, p95 ([\\d.]+) ms`).exec(out);
    return m ? { median: Number(m[1]), p95: Number(m[2]) } : null;
  };
  return { exitCode: r.status, inProcessMs: grab('scrape in process'), overHttpMs: grab('scrape over HTTP'), output: out.trim().split('\n'), stderr: (r.stderr ?? '').trim().split('\n').slice(-5) };
}

interface RestartRep {
  readyMs: number;
  /** VmRSS about 0.3 s after ready, MB. */
  rssAfterReadyMb: number;
  /** The agent's own lastSync timestamp (state file, ms resolution) relative to the spawn. */
  stateLastSyncMs: number | null;
  peersKept: number;
  phasesMs: Record<string, number>;
}

const PHASES: Array<[string, (msg: string) => boolean]> = [
  ['first log line', () => true],
  ['etcd connected', (m) => m === 'etcd connected'],
  ['network config read', (m) => m.startsWith('found network config')],
  ['uplink chosen', (m) => m.startsWith('using interface')],
  ['own lease acquired', (m) => m.startsWith('acquired lease')],
  ['dataplane loaded + attached', (m) => m === 'dataplane attached'],
  ['subnet.env written', (m) => m.startsWith('wrote subnet file')],
  ['leases listed', (m) => m === 'lease snapshot'],
  ['snapshot applied', (m) => m.startsWith('lease snapshot applied')],
];

function logPhases(file: string, offset: number, wall0: number): Record<string, number> {
  const text = fs.readFileSync(file, 'utf8').slice(offset);
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let rec: { ts?: string; msg?: string };
    try { rec = JSON.parse(line) as { ts?: string; msg?: string }; } catch { continue; }
    if (!rec.ts || typeof rec.msg !== 'string') continue;
    for (const [name, match] of PHASES) {
      if (out[name] === undefined && match(rec.msg)) out[name] = Date.parse(rec.ts) - wall0;
    }
  }
  return out;
}

async function readyStatus(url: string): Promise<number> {
  try {
    return (await httpGet(url, { timeoutMs: 250 })).status;
  } catch {
    return 0;
  }
}

async function restartOnce(lab: Lab, node: LabNode, maps: NodeMaps, peers: number): Promise<RestartRep> {
  await lab.stopNodeAndWait(node.name, 'SIGTERM');
  const kept = mapCount(maps, 'fbpf_peers');
  if (kept !== peers) throw new Error(`after SIGTERM the pinned peers map holds ${kept} entries, expected ${peers}`);
  const url = `http://${node.ip}:${node.healthzPort}/readyz`;
  if ((await readyStatus(url)) !== 0) throw new Error('something still answers on the stopped agent\'s healthz port');
  const offset = fs.statSync(node.logFile).size;
  const wall0 = Date.now();
  const t0 = now();
  const pid = lab.startNode(node);
  let readyMs = NaN;
  while (Number.isNaN(readyMs)) {
    if ((await readyStatus(url)) === 200) readyMs = now() - t0;
    else {
      if (!pidAlive(pid)) throw new Error(`the restarted agent (pid ${pid}) exited`);
      if (now() - t0 > 60_000) throw new Error('the restarted agent is not ready after 60 s');
      await sleep(5);
    }
  }
  let stateLastSyncMs: number | null = null;
  for (let i = 0; i < 40 && stateLastSyncMs === null; i++) {
    const st = readStateFile(node.stateDir);
    if (st?.pid === pid && st.lastSync && Date.parse(st.lastSync) >= wall0) stateLastSyncMs = Date.parse(st.lastSync) - wall0;
    else await sleep(50);
  }
  await sleep(300); /* let the log lines land */
  const rssAfterReadyMb = Math.round((readMem(pid).rss / 2 ** 20) * 10) / 10;
  return { readyMs, rssAfterReadyMb, stateLastSyncMs, peersKept: kept, phasesMs: logPhases(node.logFile, offset, wall0) };
}

function summarizeRestarts(reps: RestartRep[]): unknown {
  const phases: Record<string, Summary> = {};
  for (const [name] of PHASES) {
    const xs = reps.map((r) => r.phasesMs[name]).filter((x): x is number => x !== undefined);
    if (xs.length) phases[name] = rs(xs);
  }
  return {
    reps: reps.length,
    readyMs: rs(reps.map((r) => r.readyMs)),
    rssAfterReadyMb: rs(reps.map((r) => r.rssAfterReadyMb)),
    stateLastSyncMs: rs(reps.map((r) => r.stateLastSyncMs ?? NaN)),
    phasesFromSpawnMs: phases,
    runs: reps.map((r) => ({ readyMs: Math.round(r.readyMs * 10) / 10, stateLastSyncMs: r.stateLastSyncMs, phasesMs: r.phasesMs })),
  };
}

/** Does bin/flannel-bpf run the compiled build (dist/ with a stamp no source file is newer than)? Its own test, in JS. */
function compiledBuildInUse(): boolean {
  const stamp = path.join(REPO_ROOT, 'dist/.build-stamp');
  if (!fs.existsSync(path.join(REPO_ROOT, 'dist/src/cli/main.js')) || !fs.existsSync(stamp) || process.env.FLANNEL_BPF_FROM_SOURCE) return false;
  const since = fs.statSync(stamp).mtimeMs;
  const newer = (dir: string): boolean => fs.readdirSync(dir, { withFileTypes: true }).some((e) => {
    const f = path.join(dir, e.name);
    return e.isDirectory() ? newer(f) : e.name.endsWith('.ts') && fs.statSync(f).mtimeMs > since;
  });
  return !newer(path.join(REPO_ROOT, 'src'));
}

/** What a start costs before the agent does anything: Node, tsx + the CLI, the agent's modules, the etcd client's modules. */
function startupAnatomy(): unknown {
  const bin = path.join(REPO_ROOT, 'bin/flannel-bpf');
  const gnuTime = fs.existsSync('/usr/bin/time');
  const maxRss: Record<string, number> = {};
  const time = (cmd: string, args: string[], label: string): Summary => {
    const xs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = now();
      const r = spawnSync(cmd, args, { stdio: 'ignore', cwd: REPO_ROOT, timeout: 60_000 });
      if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`);
      xs.push(now() - t);
    }
    if (gnuTime) {
      /* Peak RSS of the same command (GNU time's %M, KB), measured apart so the timing above has no wrapper. */
      const r = spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { encoding: 'utf8', cwd: REPO_ROOT, timeout: 60_000, stdio: ['ignore', 'ignore', 'pipe'] });
      const kb = Number((r.stderr ?? '').trim().split('\n').at(-1));
      if (Number.isFinite(kb)) maxRss[label] = Math.round((kb / 1024) * 10) / 10;
    }
    return rs(xs);
  };
  const imp = (files: string[]): string => files.map((f) => `await import(${JSON.stringify(pathToFileURL(path.join(REPO_ROOT, f)).href)});`).join('');
  const compiled = compiledBuildInUse();
  return {
    compiledDist: compiled,
    nodeBareMs: time(process.execPath, ['-e', '0'], 'nodeBare'),
    cliVersionMs: time(bin, ['version'], 'cliVersion'),
    agentHelpMs: time(bin, ['agent', '--help'], 'agentHelp'),
    agentPlusEtcdModulesMs: compiled
      ? time(process.execPath, ['--input-type=module', '-e', imp(['dist/src/cli/agent.js', 'dist/src/control/subnet/etcd.js'])], 'agentPlusEtcdModules')
      : time(process.execPath, ['--import', TSX, '--input-type=module', '-e', imp(['src/cli/agent.ts', 'src/control/subnet/etcd.ts'])], 'agentPlusEtcdModules'),
    maxRssMb: maxRss,
  };
}

interface LabResults {
  leaseChange?: ChangeResult | null;
  leaseChangeAt10k?: ChangeResult | null;
  rssAt0?: unknown;
  bulkLoad?: unknown;
  idle10k?: unknown;
  scrape10k?: unknown;
  scrapeBench?: unknown;
  restartSmall?: unknown;
  restart10k?: unknown;
  list10k?: unknown;
  startupAnatomy?: unknown;
}

async function benchLab(prefix: string): Promise<LabResults> {
  const say = progress.section('lab');
  const out: LabResults = {};
  say(`lab ${prefix}: router + etcd, cluster network ${NETWORK} (10k /24 leases need more than the lab's default /16)`);
  const lab = await Lab.up({ nodes: 0, backend: 'vxlan', segments: 1, prefix, log: (l) => say(l) });
  cleanup.add(`lab ${prefix}`, () => { for (const l of lab.down()) progress.say('cleanup', l); });
  etcdctl(lab.state.etcd!, ['put', `${ETCD_PREFIX}/config`, JSON.stringify({ Network: NETWORK, Backend: { Type: 'vxlan' } })]);
  const node = lab.addNode(1);
  await lab.waitReady([node]);
  const ownSubnet = readSubnetEnv(node.subnetFile)?.subnet ?? null;
  say(`agent n1 ready (pid ${node.pid}, subnet ${node.subnet}, pins ${node.pinDir})`);

  /* From here on this thread lives in the router namespace: etcd and the agent's ports are reachable. */
  enterNetns(lab.state.router);
  const client = new Etcd3({ hosts: lab.state.etcd!.endpoints[0]! });
  cleanup.add('etcd client', () => client.close());
  const maps = NodeMaps.fromPinDir(node.pinDir);
  cleanup.add('pinned maps', () => maps.close());
  await client.kv.range({ key: Buffer.from(`${ETCD_PREFIX}/config`) }); /* connect before timing */

  out.leaseChange = await section('2 lease change', async () => {
    const s = progress.section('2 lease change');
    s(`${CFG.changes} changes (add / update VtepMAC / delete in turn), each timed from the etcd call to the agent's pinned map showing it`);
    return leaseChanges(client.kv, maps, CFG.changes, 200, 0, s);
  });

  out.restartSmall = await section('5 restart (0 peers)', async () => {
    const s = progress.section('5 restart');
    const reps: RestartRep[] = [];
    for (let i = 0; i < CFG.restartSmall; i++) {
      reps.push(await restartOnce(lab, node, maps, 0));
      s(`0 peers, run ${i + 1}/${CFG.restartSmall}: ready ${fmt(reps.at(-1)!.readyMs)} ms after spawn`);
    }
    return summarizeRestarts(reps);
  });

  out.rssAt0 = await section('3 RSS at 0 peers', async () => {
    await sleep(1000);
    const idle = await sampleIdle(node.pid!, 2);
    return { rssMb: rs(idle.rss.map((b) => b / 2 ** 20)), cpuPct: Math.round(idle.cpuPct * 100) / 100, memory: await agentMemory(node) };
  });

  const loaded = await section('3 load 10k peers', async () => {
    const s = progress.section('3 load');
    const n = 10_000;
    s(`putting ${n} peer leases into etcd (txns of 128, 4 in flight)…`);
    const t0 = now();
    const putMs = await putBulk(client.kv, n, ownSubnet);
    const programmedMs = await waitMapCount(maps, n, 180_000);
    const totalMs = now() - t0;
    s(`${n} leases put in ${fmt(putMs)} ms; agent's map complete ${fmt(totalMs)} ms after the first put`);
    out.bulkLoad = { peers: n, putMs: Math.round(putMs), mapCompleteAfterFirstPutMs: Math.round(totalMs), agentCatchUpAfterLastPutMs: Math.round(programmedMs) };
    return n;
  });

  if (loaded) {
    out.idle10k = await section('3 idle at 10k', async () => {
      const s = progress.section('3 idle');
      await sleep(2000); /* settle: state file write, GC */
      s(`sampling VmRSS and CPU of pid ${node.pid} for ${CFG.idleSeconds} s idle…`);
      const idle = await sampleIdle(node.pid!, CFG.idleSeconds);
      const rss = rs(idle.rss.map((b) => b / 2 ** 20));
      const memory = await agentMemory(node);
      s(`RSS median ${fmt(rss.median)} MB (max ${fmt(rss.max)}), peak (VmHWM) ${fmt(idle.hwm / 2 ** 20)} MB; CPU ${fmt(idle.cpuPct)} % self + ${fmt(idle.childCpuPct)} % in commands it ran`);
      return {
        peers: loaded, seconds: Math.round(idle.seconds * 10) / 10, rssMb: rss, hwmMb: Math.round((idle.hwm / 2 ** 20) * 10) / 10,
        cpuPctOfOneCpu: Math.round(idle.cpuPct * 100) / 100, childCpuPctOfOneCpu: Math.round(idle.childCpuPct * 100) / 100, ticks: idle.ticks,
        memory,
      };
    });
    out.scrape10k = await section('4 scrape', () => benchScrape(node, loaded, progress.section('4 scrape')));
    if (CFG.runScrapeBench) out.scrapeBench = await section('4 scrape bench', () => runScrapeBench(progress.section('4 scrape')));
    out.leaseChangeAt10k = await section('2 lease change at 10k', async () => {
      const s = progress.section('2 lease change @10k');
      s(`${CFG.changesAt10k} changes with ${loaded} peers in the cluster`);
      return leaseChanges(client.kv, maps, CFG.changesAt10k, 210, loaded, s);
    });
    out.list10k = await section('5 list 10k', async () => {
      /* What the agent does twice at start (acquire its lease, then the watch's snapshot): range over every lease, parse each. */
      const key = Buffer.from(`${etcdSubnetsPath(ETCD_PREFIX)}/`);
      const rangeEnd = Buffer.from(key);
      rangeEnd[rangeEnd.length - 1]! += 1;
      const rangeMs: number[] = [];
      const parseMs: number[] = [];
      let count = 0;
      for (let i = 0; i < 5; i++) {
        const t = now();
        const res = await client.kv.range({ key, range_end: rangeEnd });
        rangeMs.push(now() - t);
        const t2 = now();
        for (const kv of res.kvs) parseEtcdLease(Buffer.from(kv.key).toString('utf8'), Buffer.from(kv.value).toString('utf8'));
        parseMs.push(now() - t2);
        count = res.kvs.length;
      }
      progress.say('5 restart', `etcd range of all ${count} leases: ${fmt(median(rangeMs))} ms; parsing them (parseEtcdLease): ${fmt(median(parseMs))} ms`);
      return { leases: count, rangeMs: rs(rangeMs), parseMs: rs(parseMs) };
    });
    out.restart10k = await section('5 restart (10k peers)', async () => {
      const s = progress.section('5 restart');
      const reps: RestartRep[] = [];
      for (let i = 0; i < CFG.restartAt10k; i++) {
        reps.push(await restartOnce(lab, node, maps, loaded));
        const r = reps.at(-1)!;
        s(`10k peers, run ${i + 1}/${CFG.restartAt10k}: ready ${fmt(r.readyMs)} ms after spawn (leases listed at ${r.phasesMs['leases listed'] ?? '?'} ms, applied at ${r.phasesMs['snapshot applied'] ?? '?'} ms); RSS ${fmt(r.rssAfterReadyMb)} MB`);
      }
      return summarizeRestarts(reps);
    });
  }
  out.startupAnatomy = await section('5 startup anatomy', () => startupAnatomy());
  return out;
}

/* ------------------------------------------------------------ leftovers */

/**
 * Remove what an earlier run of this benchmark left when it was SIGKILLed
 * (no cleanup possible): labs named cpb<4 hex> whose recorded processes are
 * all gone. A lab with any live process may belong to a concurrent run and is
 * left alone. Removal goes by namespace (killing what still runs inside, i.e.
 * strays of that lab), never by recorded pid, which may have been reused.
 */
function sweepStaleRuns(say: (m: string) => void): void {
  for (const s of listLabs()) {
    if (!/^cpb[0-9a-f]{4}$/.test(s.prefix)) continue;
    const pids = [s.etcd?.pid ?? null, ...s.nodes.map((n) => n.pid)].filter((p): p is number => p !== null);
    if (pids.some((p) => pidAlive(p))) continue;
    for (const ns of new Set([...s.namespaces, ...listNetns(`${s.prefix}-`)])) if (netnsExists(ns)) delNetns(ns);
    fs.rmSync(s.pinRoot, { recursive: true, force: true });
    fs.rmSync(path.join(LAB_ROOT, s.prefix), { recursive: true, force: true });
    say(`removed the remains of an interrupted run: lab ${s.prefix}`);
  }
}

/* ------------------------------------------------------------ report */

function get<T>(o: unknown, ...keys: string[]): T | undefined {
  let cur: unknown = o;
  for (const k of keys) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur as T | undefined;
}

interface TargetCheck { measure: string; result: string; value: number | null; target: string; met: boolean | null }

function checks(prog: Awaited<ReturnType<typeof benchProgramming>> | null, lab: LabResults | null): TargetCheck[] {
  const out: TargetCheck[] = [];
  const at10k = prog?.sizes.find((s) => s.n === 10_000);
  const v = (x: number | undefined | null): number | null => (x === undefined || x === null || !Number.isFinite(x) ? null : x);
  const add = (measure: string, value: number | null, result: string, target: string, ok: (x: number) => boolean): void => {
    out.push({ measure, value, result: value === null ? 'n/a' : result, target, met: value === null ? null : ok(value) });
  };
  const rec = v(at10k?.reconcilerMs.median);
  add('10k peers programmed (reconciler, median)', rec, `${fmt(rec ?? NaN)} ms`, `≤ ${TARGETS.program10kMs} ms`, (x) => x <= TARGETS.program10kMs);
  const r = v(at10k?.ratio);
  add('10k peers: netlink batch / reconciler', r, fmtRatio(r ?? NaN), `≥ ${TARGETS.program10kRatio}×`, (x) => x >= TARGETS.program10kRatio);
  const lc = v(lab?.leaseChange?.allMs.p99);
  add(`lease change → map p99 (${lab?.leaseChange?.changes ?? 0} changes, small cluster)`, lc, `${fmt(lc ?? NaN)} ms`, `≤ ${TARGETS.leaseChangeP99Ms} ms`, (x) => x <= TARGETS.leaseChangeP99Ms);
  const lc10 = v(lab?.leaseChangeAt10k?.allMs.p99);
  add(`lease change → map p99 at 10k peers (${lab?.leaseChangeAt10k?.changes ?? 0} changes)`, lc10, `${fmt(lc10 ?? NaN)} ms`, `≤ ${TARGETS.leaseChangeP99Ms} ms`, (x) => x <= TARGETS.leaseChangeP99Ms);
  const rss = v(get<number>(lab?.idle10k, 'rssMb', 'max'));
  add('agent RSS at 10k peers idle (max of samples)', rss, `${fmt(rss ?? NaN)} MB`, `≤ ${TARGETS.rssMb} MB`, (x) => x <= TARGETS.rssMb);
  const sc = v(get<number>(lab?.scrape10k, 'ms', 'p95'));
  add('metrics scrape at 10k peers (agent /metrics, p95)', sc, `${fmt(sc ?? NaN)} ms`, `≤ ${TARGETS.scrapeMs} ms`, (x) => x <= TARGETS.scrapeMs);
  const rr = v(get<number>(lab?.restart10k, 'readyMs', 'median'));
  add('restart to ready with pins, 10k peers (median)', rr, `${fmt(rr ?? NaN)} ms`, `≤ ${TARGETS.restartReadyMs} ms`, (x) => x <= TARGETS.restartReadyMs);
  const rr0 = v(get<number>(lab?.restartSmall, 'readyMs', 'median'));
  add('restart to ready with pins, 0 peers (median)', rr0, `${fmt(rr0 ?? NaN)} ms`, `≤ ${TARGETS.restartReadyMs} ms`, (x) => x <= TARGETS.restartReadyMs);
  return out;
}

function report(prog: Awaited<ReturnType<typeof benchProgramming>> | null, lab: LabResults | null, targetChecks: TargetCheck[], file: string): string {
  const parts: string[] = [];
  parts.push(`## Control plane (${QUICK ? 'quick' : 'full'} run, ${new Date().toISOString().slice(0, 16)}Z, ${environment().host})`);
  parts.push(markdownTable(['measure', 'result', 'target', 'verdict'], targetChecks.map((c) => [c.measure, c.result, c.target, verdict(c.met)])));
  if (prog) {
    parts.push(`### Programming N peers from a lease snapshot (ms, median (min–max) of ${CFG.progReps} runs each, alternating)`);
    parts.push(markdownTable(
      ['N', 'flannel-bpf reconciler', 'kernel floor (same map writes)', 'netlink: ip -batch + bridge -batch', 'netlink / reconciler', 'one lease change at N', 'restart resync at N'],
      prog.sizes.map((s) => [s.n, fmtMedianRange(s.reconcilerMs), fmtMedianRange(s.kernelFloorMs), `${fmtMedianRange(s.netlinkBatchMs)} [ip ${fmt(s.netlinkIpMs.median)} + bridge ${fmt(s.netlinkBridgeMs.median)}]`, fmtRatio(s.ratio), fmtMedianRange(s.oneChangeAtNMs), fmtMedianRange(s.resyncMs)]),
      ['r', 'l', 'l', 'l', 'r', 'l', 'l'],
    ));
    const pe = prog.perExec as { at1kMs: number; perPeerMs: number; extrapolated: boolean; peersMeasured: number };
    const rec1k = prog.sizes.find((s) => s.n === 1000)?.reconcilerMs.median ?? NaN;
    parts.push([
      `Per-peer exec (one \`ip\`/\`bridge\` process per neigh, FDB entry and route, as a shell script would): ${fmt(pe.perPeerMs)} ms per peer → ${fmt(pe.at1kMs / 1000)} s for 1k peers`
        + `${pe.extrapolated ? ` (scaled from ${pe.peersMeasured} peers)` : ''}, ${fmtRatio(ratio(pe.at1kMs, rec1k))} the reconciler at 1k.`,
      `Process start of the two batch commands (empty input): ${fmt(prog.spawnMs)} ms. First snapshot of a cold process (1k peers): ${fmt(prog.coldFirstSnapshotMs)} ms.`,
    ].join('\n'));
    const s10 = prog.sizes.find((s) => s.n === 10_000);
    if (s10) {
      const st = s10.stagesMs;
      parts.push('### Where a 10k snapshot goes (ms, medians; the Reconciler\'s own stage timings)');
      parts.push(markdownTable(['plan (checks, conflicts, modes, ids)', 'diff vs mirror', 'encode + batched map writes', 'of which kernel (floor)', 'reconciler total', 'one change at 10k: leases re-decided'],
        [[fmt(st.planMs.median), fmt(st.diffMs.median), fmt(st.writeMs.median), fmt(s10.kernelFloorMs.median), fmt(s10.reconcilerMs.median), s10.oneChangeDecidedMax]]));
    }
  }
  if (lab) {
    const rows: Array<Array<string | number>> = [];
    for (const [label, c] of [['0 peers', lab.leaseChange], ['10k peers', lab.leaseChangeAt10k]] as const) {
      if (!c) continue;
      rows.push([label, c.changes, fmt(c.allMs.median), fmt(c.allMs.p99), fmt(c.allMs.max), `${fmt(c.byKind.add.median)} / ${fmt(c.byKind.update.median)} / ${fmt(c.byKind.delete.median)}`, fmt(c.putAckMs.median), c.pollIntervalUs]);
    }
    if (rows.length) {
      parts.push('### Lease change in etcd → agent\'s map (ms)');
      parts.push(markdownTable(['cluster', 'changes', 'p50', 'p99', 'max', 'p50 add / update / delete', 'etcd put ack p50', 'poll interval µs'], rows));
    }
    const idle = lab.idle10k as { rssMb: Summary; hwmMb: number; cpuPctOfOneCpu: number; childCpuPctOfOneCpu: number; seconds: number } | undefined;
    const load = lab.bulkLoad as { putMs: number; mapCompleteAfterFirstPutMs: number } | undefined;
    const rss0 = get<Summary>(lab.rssAt0, 'rssMb');
    if (idle) {
      parts.push('### Agent at 10k peers, idle');
      parts.push(markdownTable(['RSS median (min–max)', 'peak RSS (VmHWM)', 'RSS at 0 peers', `CPU over ${idle.seconds} s`, 'CPU of commands it ran', '10k leases: put / in map'],
        [[`${fmtMedianRange(idle.rssMb)} MB`, `${fmt(idle.hwmMb)} MB`, rss0 ? `${fmt(rss0.median)} MB` : 'n/a', `${fmt(idle.cpuPctOfOneCpu)} % of a CPU`, `${fmt(idle.childCpuPctOfOneCpu)} %`, load ? `${fmt(load.putMs)} / ${fmt(load.mapCompleteAfterFirstPutMs)} ms` : 'n/a']]));
    }
    const memRows: Array<Array<string | number>> = [];
    for (const [label, m] of [['0 peers', get<Record<string, number>>(lab.rssAt0, 'memory')], ['10k peers', get<Record<string, number>>(lab.idle10k, 'memory')]] as const) {
      if (!m) continue;
      const f = (k: string): string => (typeof m[k] === 'number' ? fmt(m[k]) : 'n/a');
      memRows.push([label, f('rssMb'), f('anonMb'), f('fileBackedMb'), f('v8HeapTotalMb'), f('v8HeapUsedMb'), f('oldSpaceUsedMb'), f('codeSpaceUsedMb'), f('externalMb')]);
    }
    if (memRows.length) {
      parts.push('Agent memory (MB): RSS split by smaps_rollup; V8 figures from the agent\'s own /metrics');
      parts.push(markdownTable(['peers', 'RSS', 'anonymous', 'file-backed', 'V8 heap total', 'V8 heap used', 'old space used', 'code space used', 'external'], memRows));
    }
    const sc = lab.scrape10k as { ms?: Summary; bytes?: number; missing?: string } | undefined;
    if (sc) {
      parts.push('### Metrics scrape at 10k peers');
      if (sc.missing) parts.push(`missing: ${sc.missing}`);
      else if (sc.ms) parts.push(markdownTable(['source', 'median', 'p95', 'max', 'size'], [['agent /metrics over HTTP', `${fmt(sc.ms.median)} ms`, `${fmt(sc.ms.p95)} ms`, `${fmt(sc.ms.max)} ms`, `${((sc.bytes ?? 0) / 1e6).toFixed(1)} MB`]]));
      const sb = lab.scrapeBench as { inProcessMs?: { median: number; p95: number } | null; overHttpMs?: { median: number; p95: number } | null; missing?: string } | undefined;
      if (sb?.overHttpMs) parts.push(`bench/scrape.bench.ts (synthetic counters): in process median ${fmt(sb.inProcessMs?.median ?? NaN)} ms / p95 ${fmt(sb.inProcessMs?.p95 ?? NaN)} ms; over HTTP median ${fmt(sb.overHttpMs.median)} ms / p95 ${fmt(sb.overHttpMs.p95)} ms.`);
    }
    const restartRows: Array<Array<string | number>> = [];
    const phaseNames = PHASES.map(([n]) => n);
    for (const [label, r] of [['0 peers', lab.restartSmall], ['10k peers', lab.restart10k]] as const) {
      const ready = get<Summary>(r, 'readyMs');
      if (!ready) continue;
      const ph = get<Record<string, Summary>>(r, 'phasesFromSpawnMs') ?? {};
      const rss = get<Summary>(r, 'rssAfterReadyMb');
      restartRows.push([label, ready.n, fmtMedianRange(ready), ...phaseNames.map((p) => (ph[p] ? fmt(ph[p].median) : '–')), rss ? fmt(rss.median) : 'n/a']);
    }
    if (restartRows.length) {
      parts.push('### Restart with existing pins: spawn → /readyz 200 (ms; phases = agent log timestamps after spawn, medians)');
      parts.push(markdownTable(['peers', 'runs', 'ready', ...phaseNames, 'RSS after (MB)'], restartRows));
    }
    const l10 = lab.list10k as { leases: number; rangeMs: Summary; parseMs: Summary } | undefined;
    if (l10) parts.push(`Listing all ${l10.leases} leases from etcd (in-process etcd3, as the agent's subnet manager does at start, twice): range ${fmt(l10.rangeMs.median)} ms + parsing ${fmt(l10.parseMs.median)} ms (medians of 5).`);
    const an = lab.startupAnatomy as { nodeBareMs: Summary; cliVersionMs: Summary; agentHelpMs: Summary; agentPlusEtcdModulesMs: Summary; compiledDist: boolean; maxRssMb: Record<string, number> } | undefined;
    if (an) {
      const mr = (k: string): string => (an.maxRssMb[k] !== undefined ? `, ${fmt(an.maxRssMb[k]!)} MB peak RSS` : '');
      parts.push(`Start-up anatomy (${an.compiledDist ? 'compiled dist/' : 'TypeScript through tsx, no dist/'}; medians of 3): node alone ${fmt(an.nodeBareMs.median)} ms${mr('nodeBare')}; \`flannel-bpf version\` ${fmt(an.cliVersionMs.median)} ms${mr('cliVersion')}; \`flannel-bpf agent --help\` (agent modules) ${fmt(an.agentHelpMs.median)} ms${mr('agentHelp')}; agent + etcd client modules ${fmt(an.agentPlusEtcdModulesMs.median)} ms${mr('agentPlusEtcdModules')}.`);
    }
  }
  if (errors.length) parts.push(`### Errors\n${errors.map((e) => `- ${e.section}: ${e.error}`).join('\n')}`);
  parts.push(`Results: ${path.relative(REPO_ROOT, file)}`);
  return `${parts.join('\n\n')}\n`;
}

/**
 * The chart of a run: every target as measured ÷ target (for the speed-up,
 * target ÷ measured), so that a bar under the line at 1 is a target met; and
 * the reconciler's speed-up over the netlink batch at each N.
 */
function targetChart(list: TargetCheck[], prog: Awaited<ReturnType<typeof benchProgramming>> | null, host: string, d: Date): string {
  const share = (c: TargetCheck): number => {
    const limit = Number(/[\d.]+/.exec(c.target)?.[0] ?? NaN);
    if (c.value === null || !Number.isFinite(limit)) return NaN;
    return c.target.startsWith('≥') ? limit / c.value : c.value / limit;
  };
  const sizes = prog?.sizes ?? [];
  return svgBarChart({
    title: `flannel-bpf control plane (${host}, ${d.toISOString().slice(0, 10)}): measured as a share of each target, below 1 = met`,
    groups: list.map((c) => c.measure.replace(/ \(.*\)$/, '')),
    series: [{ name: 'measured ÷ target (speed-up: target ÷ measured)', values: list.map(share) }],
    referenceLine: 1,
    yLabel: `share of target; netlink batch ÷ reconciler: ${sizes.map((x) => `${x.n / 1000}k ${fmtRatio(x.ratio)}`).join(', ')}`,
  });
}

/* ------------------------------------------------------------ main */

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench/controlplane: needs root (BPF maps, network namespaces)\n');
    return 2;
  }
  cleanup.installHandlers();
  sweepStaleRuns(progress.section('start'));
  const startedAt = new Date();
  const env = environment();
  const prefix = `cpb${crypto.randomBytes(2).toString('hex')}`;
  const agentBuild = compiledBuildInUse() ? 'compiled dist/' : 'TypeScript sources through tsx (no current dist/: run scripts/build.sh)';
  progress.say('start', `${QUICK ? 'quick' : 'full'} run, prefix ${prefix}, ${env.cpus} CPUs, load ${env.loadavgAtStart.join(' ')}, commit ${env.git.commit?.slice(0, 10) ?? '?'}${env.git.dirty ? ' (dirty tree)' : ''}; the lab's agents run ${agentBuild}`);
  let prog: Awaited<ReturnType<typeof benchProgramming>> | null = null;
  let lab: LabResults | null = null;
  try {
    if (ONLY !== 'lab') prog = await section('1 programming', () => benchProgramming(prefix));
    if (ONLY !== 'programming') lab = await section('lab', () => benchLab(prefix));
  } finally {
    cleanup.run();
  }
  /* Quick and partial runs get their own file: the committed results come from whole full runs. */
  const file = resultsFile(['controlplane', QUICK ? 'quick' : null, ONLY].filter(Boolean).join('-'), startedAt);
  const targetChecks = checks(prog, lab);
  const data = {
    bench: 'controlplane',
    version: 1,
    mode: QUICK ? 'quick' : 'full',
    only: ONLY,
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round(progress.elapsed() * 10) / 10,
    environment: env,
    agentBuild,
    loadavgAtEnd: os.loadavg().map((x) => Math.round(x * 100) / 100),
    config: CFG,
    method: {
      programming: 'Lease objects in memory → Reconciler.snapshot() on fresh unpinned maps (Dataplane.load, --max-peers 65536), timed with performance.now() around snapshot(); the maps are read back and checked after. '
        + 'Netlink: flannel.1 (vxlan id 1, dstport 8472, nolearning) recreated in a scratch netns, then one `ip -n <ns> -batch -` (per peer: neigh replace … nud permanent; route replace <subnet> via <net> dev flannel.1 onlink) and one `bridge -n <ns> -batch -` (per peer: fdb replace <mac> dev flannel.1 dst <ip> self permanent), timed from spawn to exit, entries counted after. '
        + 'The two alternate (A B, B A, …). The batch makes the same one-request-one-ack netlink calls flanneld makes in process, so it approximates flanneld’s own cost; per-peer exec (3 processes per peer) is the shell-script upper bound. '
        + 'Kernel floor: the same three batched map updates from prebuilt buffers. Stages: the Reconciler\'s own timings of the snapshot (plan round, diff, encode + writes). One lease change at N: Reconciler.upsert of one changed VtepMAC (incremental).',
      leaseChange: 'One agent (lab node n1, real etcd 3.4 in the lab router namespace on tmpfs). This process moves its main thread into the router namespace and uses etcd3 in-process (raw KV put/deleteRange). '
        + 'Clock starts just before the etcd call is issued; then the agent’s pinned fbpf_peers map (opened once, raw bpf lookup with a prebuilt key) is polled: one event-loop turn (so the request and its answer flow) + one lookup + a 50 µs futex sleep per poll; the clock stops at the first lookup showing the change (entry with the new VtepMAC, or gone). '
        + 'Resolution = the mean poll interval (reported). Changes rotate add / update VtepMAC / delete, 2–6 ms apart (the agent is idle when each comes).',
      idle: 'After the 10k leases are in the agent’s map and 2 s settle: VmRSS from /proc/<pid>/status every 250 ms, utime+stime (and cutime+cstime of the commands it runs) from /proc/<pid>/stat at both ends.',
      scrape: 'GET /metrics of the lab agent (the exporter in src/metrics/server.ts) over a keep-alive connection from the router namespace, full body read; series count checked on the first scrape.',
      restart: 'SIGTERM (the dataplane and pins stay; the peers map is checked to still hold every entry), spawn the same agent command, poll GET /readyz on --healthz-port every 5 ms until 200. Phases from the agent’s JSON log timestamps (ms) relative to the spawn.',
    },
    targets: TARGETS,
    checks: targetChecks,
    programming: prog,
    lab,
    errors,
  };
  writeResults('controlplane', data, file);
  const text = report(prog, lab, targetChecks, file);
  fs.writeFileSync(file.replace(/\.json$/, '.md'), text);
  fs.writeFileSync(file.replace(/\.json$/, '.svg'), targetChart(targetChecks, prog, env.host, startedAt));
  process.stdout.write(text);
  if (errors.length) return 1;
  if (STRICT && targetChecks.some((c) => c.met === false)) return 1;
  return 0;
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => {
  cleanup.run();
  process.stderr.write(`bench/controlplane: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
