/**
 * The dataplane benchmark (npm run bench / bench:quick): the same 2-node
 * topology built once per variant — two node namespaces on one L2 segment,
 * one pod each made by the real CNI bridge plugin — and every figure measured
 * on all variants in alternation (A B C … A B C …, ≥ 5 rounds, the order
 * rotated each round), reporting medians, spread and ratios against stock
 * flannel's kernel VXLAN and against the native underlay.
 *
 * Variants: native underlay (node ↔ node, no overlay), stock flannel VXLAN
 * (flannel.1 + per-peer route/neigh/FDB exactly as flanneld programs them, with
 * flanneld's --ip-masq rules), stock host-gw, and flannel-bpf: vxlan compat and
 * fast path for each decap engine, vxlan + DirectRouting, host-gw, udp.
 *
 * Figures: single-stream TCP Gbit/s and 4-stream TCP (iperf3), UDP 64-byte
 * packets/s delivered (iperf3 -u -l 64 -b 0), request/response latency p50/p99
 * (sockperf ping-pong, UDP 64 B), and CPU busy % of the machine at a fixed
 * offered rate (iperf3 -b) as the CPU cost.
 */
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { Lab, NETWORK } from '../src/cli/lab/lab.js';
import { nsRun, nsSpawn } from '../src/cli/lab/netns.js';
import { programStockVxlan, programStockHostGw, programStockRules, type StockNode } from '../src/cli/lab/stock.js';
import { summarize, roundSummary, ratio, fmt, fmtRatio, type Summary } from './lib/stats.js';
import { markdownTable } from './lib/table.js';
import { Progress, sleep } from './lib/progress.js';
import { Cleanup } from './lib/cleanup.js';
import { machineCpuSample, machineBusyPct } from './lib/proc.js';
import { writeResults, resultsFile, environment } from './lib/results.js';
import { svgBarChart } from './lib/chart.js';
import { programRunStats, programCosts, type ProgramCost } from './lib/bpfstats.js';
import { libbpf } from '../src/loader/libbpf.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 2 : Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = quick ? 1 : 4;
const FIXED_RATE = process.env.BENCH_FIXED_RATE ?? '2G';
/*
 * Where the traffic generators run. 'split' (the default): iperf3's client on
 * CPU 0 and its server on CPU 1, so that every variant gets the same placement
 * (the sender's CPU also runs the whole forwarding path in softirq: veth
 * transmit runs the receive side on the sending CPU). 'none': the scheduler
 * places them, as in the runs before 2026-11-26 evening, which made the CPU
 * figure bimodal.
 */
const PIN = (process.env.BENCH_PIN ?? 'split') as 'split' | 'none';
const onCpu = (cpu: number, argv: string[]): string[] => (PIN === 'split' ? ['taskset', '-c', String(cpu), ...argv] : argv);
const CLIENT_CPU = 0;
const SERVER_CPU = 1;
/* --profile (npm run bench:profile): no figures; a system-wide perf profile of each variant under single-stream TCP and under 64-byte UDP. */
const PROFILE = process.argv.includes('--profile');
const progress = new Progress();
const say = progress.section('dataplane');
const cleanup = new Cleanup();
cleanup.installHandlers();

/** A pair of namespaces to measure between. */
interface Pair { client: string; server: string; serverIp: string }

interface Variant {
  id: string;
  label: string;
  kind: 'baseline' | 'stock' | 'flannel-bpf';
  /** In --quick. */
  quick: boolean;
  pair?: Pair;
  /** The flannel-bpf agents of its two nodes (none for the stock and native variants). */
  agents?: number[];
}

const VARIANTS: Variant[] = [
  { id: 'native', label: 'native underlay (no overlay)', kind: 'baseline', quick: true },
  { id: 'stock-vxlan', label: 'stock flannel VXLAN', kind: 'stock', quick: true },
  { id: 'stock-host-gw', label: 'stock flannel host-gw', kind: 'stock', quick: false },
  { id: 'vxlan-compat-kernel', label: 'flannel-bpf vxlan, compat, kernel decap', kind: 'flannel-bpf', quick: false },
  { id: 'vxlan-fast-kernel', label: 'flannel-bpf vxlan, fast path, kernel decap', kind: 'flannel-bpf', quick: false },
  { id: 'vxlan-compat-xdp', label: 'flannel-bpf vxlan, compat, xdp decap', kind: 'flannel-bpf', quick: false },
  { id: 'vxlan-fast-xdp', label: 'flannel-bpf vxlan, fast path, xdp decap', kind: 'flannel-bpf', quick: false },
  { id: 'vxlan-compat-tc', label: 'flannel-bpf vxlan, compat, tc decap', kind: 'flannel-bpf', quick: false },
  { id: 'vxlan-fast-tc', label: 'flannel-bpf vxlan, fast path, tc decap (the default on veth)', kind: 'flannel-bpf', quick: true },
  { id: 'dr-fast', label: 'flannel-bpf vxlan + DirectRouting, fast path', kind: 'flannel-bpf', quick: false },
  { id: 'host-gw-compat', label: 'flannel-bpf host-gw, compat', kind: 'flannel-bpf', quick: false },
  { id: 'host-gw-fast', label: 'flannel-bpf host-gw, fast path', kind: 'flannel-bpf', quick: false },
  { id: 'udp-fast', label: 'flannel-bpf udp (tc decap), fast path', kind: 'flannel-bpf', quick: false },
];

/* BENCH_ONLY=id,id,… measures a subset, written as *-partial-* (gitignored); the committed results come from a full run. */
const only = process.env.BENCH_ONLY?.split(',').filter(Boolean);
const variants = VARIANTS.filter((v) => (only ? only.includes(v.id) : !quick || v.quick));
const want = (id: string) => variants.some((v) => v.id === id);
const variant = (id: string): Variant => VARIANTS.find((v) => v.id === id)!;

/* ----------------------------------------------------------- topologies */

async function buildStock(): Promise<void> {
  const lab = await Lab.up({ nodes: 0, backend: 'vxlan', segments: 1, prefix: `bs${process.pid % 10000}` });
  cleanup.add('stock lab', () => lab.down());
  const node = (name: string, host: number, subnet: string, mtu: number) => lab.addStaticNode(name, 'a', host, subnet, mtu);
  const spec = (n: ReturnType<typeof node>, mac: string): StockNode => ({ ns: n.ns, ip: n.ip, iface: 'eth0', subnet: n.subnet!, vtepMac: mac });
  if (want('native')) {
    const a = node('u1', 101, '10.244.101.0/24', 1500);
    const b = node('u2', 102, '10.244.102.0/24', 1500);
    variant('native').pair = { client: a.ns, server: b.ns, serverIp: b.ip };
  }
  if (want('stock-vxlan')) {
    const a = node('k1', 111, '10.244.111.0/24', 1450);
    const b = node('k2', 112, '10.244.112.0/24', 1450);
    programStockVxlan(spec(a, '0e:de:00:00:01:11'), [spec(b, '0e:de:00:00:01:12')]);
    programStockVxlan(spec(b, '0e:de:00:00:01:12'), [spec(a, '0e:de:00:00:01:11')]);
    for (const n of [a, b]) programStockRules({ ns: n.ns, subnet: n.subnet! }, NETWORK);
    const pa = lab.addPod('k1');
    const pb = lab.addPod('k2');
    variant('stock-vxlan').pair = { client: pa.ns, server: pb.ns, serverIp: pb.ip };
  }
  if (want('stock-host-gw')) {
    const a = node('h1', 121, '10.244.121.0/24', 1500);
    const b = node('h2', 122, '10.244.122.0/24', 1500);
    programStockHostGw(spec(a, '00:00:00:00:00:00'), [spec(b, '00:00:00:00:00:00')]);
    programStockHostGw(spec(b, '00:00:00:00:00:00'), [spec(a, '00:00:00:00:00:00')]);
    for (const n of [a, b]) programStockRules({ ns: n.ns, subnet: n.subnet! }, NETWORK);
    const pa = lab.addPod('h1');
    const pb = lab.addPod('h2');
    variant('stock-host-gw').pair = { client: pa.ns, server: pb.ns, serverIp: pb.ip };
  }
}

/** A lab of one backend whose node pairs run flannel-bpf with different agent flags. */
async function buildOurs(backend: 'vxlan' | 'host-gw' | 'udp', directRouting: boolean, pairs: Array<{ id: string; args: string[] }>): Promise<void> {
  const todo = pairs.filter((p) => want(p.id));
  if (todo.length === 0) return;
  const lab = await Lab.up({ nodes: 0, backend, directRouting, segments: 1, prefix: `b${backend[0]}${directRouting ? 'd' : ''}${process.pid % 10000}` });
  cleanup.add(`${backend} lab`, () => lab.down());
  let i = 0;
  const nodes = todo.map((p) => {
    const a = lab.addNode(++i, { agentArgs: p.args, segment: 'a' });
    const b = lab.addNode(++i, { agentArgs: p.args, segment: 'a' });
    return { p, a, b };
  });
  await lab.waitReady(nodes.flatMap((x) => [x.a, x.b]));
  for (const { p, a, b } of nodes) variant(p.id).agents = [a.pid!, b.pid!];
  for (const { p, a, b } of nodes) {
    lab.addPod(a.name);
    const pb = lab.addPod(b.name);
    const pa = lab.state.pods.find((x) => x.node === a.name)!;
    variant(p.id).pair = { client: pa.ns, server: pb.ns, serverIp: pb.ip };
  }
  /* Let the agents find cni0 and attach the fast path, and neighbours settle. */
  await sleep(2500);
  for (const { p } of nodes) {
    const v = variant(p.id);
    nsRun(v.pair!.client, ['ping', '-c', '2', '-i', '0.2', '-W', '1', v.pair!.serverIp]);
  }
}

/* ----------------------------------------------------------- measurements */

/*
 * Only the measured topology's agents run. A full run keeps 13 topologies up,
 * and their 22 idle agents (timers, neighbour syncs, state writes) kept 14–24 %
 * of this 2-CPU machine busy with no traffic at all — noise on every figure.
 * The others are stopped (SIGSTOP) while a variant is measured: their programs
 * and maps keep working in the kernel, nothing of theirs carries traffic, and
 * SIGCONT resumes them. BENCH_QUIET=off keeps them all running.
 */
const QUIET = (process.env.BENCH_QUIET ?? 'on') !== 'off';
const allAgents = (): number[] => variants.flatMap((v) => v.agents ?? []);
function signalAll(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try { process.kill(pid, sig); } catch { /* already gone: the lab's teardown reports it */ }
  }
}
async function quietExcept(v: Variant): Promise<void> {
  if (!QUIET) return;
  const mine = new Set(v.agents ?? []);
  signalAll(allAgents().filter((p) => !mine.has(p)), 'SIGSTOP');
  signalAll([...mine], 'SIGCONT');
  await sleep(1000); /* a resumed agent runs its overdue timers first */
}

interface IperfJson {
  end?: {
    sum_received?: { bits_per_second?: number };
    sum_sent?: { bits_per_second?: number; retransmits?: number };
    sum?: { packets?: number; lost_packets?: number; seconds?: number; bits_per_second?: number };
  };
  error?: string;
}

let portSeq = 0;
async function iperf(pair: Pair, args: string[], seconds = SECONDS): Promise<IperfJson> {
  const port = String(5300 + (portSeq++ % 500));
  const server = nsSpawn(pair.server, onCpu(SERVER_CPU, ['iperf3', '-s', '-1', '-p', port]));
  try {
    await sleep(120);
    const out = nsRun(pair.client, onCpu(CLIENT_CPU, ['iperf3', '-c', pair.serverIp, '-p', port, '-t', String(seconds), '-J', ...args]), { timeoutMs: (seconds + 20) * 1000 });
    const j = JSON.parse(out) as IperfJson;
    if (j.error) throw new Error(`iperf3: ${j.error}`);
    return j;
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
  }
}

async function tcpGbps(pair: Pair, streams: number): Promise<number> {
  const j = await iperf(pair, ['-P', String(streams)]);
  return (j.end?.sum_received?.bits_per_second ?? 0) / 1e9;
}

async function udpPps(pair: Pair): Promise<number> {
  const j = await iperf(pair, ['-u', '-l', '64', '-b', '0']);
  const s = j.end?.sum;
  const delivered = (s?.packets ?? 0) - (s?.lost_packets ?? 0);
  return delivered / (s?.seconds || SECONDS);
}

async function latency(pair: Pair): Promise<{ p50: number; p99: number }> {
  const port = String(11000 + (portSeq++ % 500));
  /*
   * Client and server on one CPU: the round trip then measures the path, not
   * the VM's cross-CPU wake-up latency (which alone is ~25 µs here and made
   * the samples bimodal).
   */
  const server = nsSpawn(pair.server, ['taskset', '-c', '0', 'sockperf', 'sr', '-i', pair.serverIp, '-p', port]);
  try {
    await sleep(150);
    const out = nsRun(pair.client, ['taskset', '-c', '0', 'sockperf', 'pp', '-i', pair.serverIp, '-p', port, '-t', String(SECONDS), '-m', '64'], { timeoutMs: (SECONDS + 20) * 1000 });
    const pct = (p: string) => Number(new RegExp(`percentile ${p} =\\s*([0-9.]+)`).exec(out)?.[1]);
    return { p50: pct('50.000'), p99: pct('99.000') };
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
  }
}

/* The per-packet CPU figure: UDP datagrams of this size at this rate (no GSO: every datagram crosses the dataplane alone). */
const FIXED_UDP_RATE = process.env.BENCH_FIXED_UDP_RATE ?? '400M';
const FIXED_UDP_LEN = 1400;

/** Gbit/s of an iperf3 rate ('2G', '400M'). */
function rateGbps(rate: string): number {
  const n = Number.parseFloat(rate);
  return rate.endsWith('G') ? n : rate.endsWith('M') ? n / 1e3 : n / 1e9;
}

/**
 * CPU busy % of the whole machine while iperf3 offers a fixed rate (single
 * stream: TCP at FIXED_RATE, or FIXED_UDP_LEN-byte UDP at FIXED_UDP_RATE);
 * retried once when the run did not carry the rate (a failed start would
 * measure an idle machine).
 */
async function cpuAtRate(pair: Pair, proto: 'tcp' | 'udp'): Promise<{ busyPct: number; gbps: number }> {
  const rate = proto === 'tcp' ? FIXED_RATE : FIXED_UDP_RATE;
  const args = proto === 'tcp' ? ['-b', rate] : ['-u', '-l', String(FIXED_UDP_LEN), '-b', rate];
  let r = await cpuAtRateOnce(pair, args);
  if (!(r.gbps > 0.8 * rateGbps(rate))) r = await cpuAtRateOnce(pair, args);
  return r;
}

async function cpuAtRateOnce(pair: Pair, rateArgs: string[]): Promise<{ busyPct: number; gbps: number }> {
  const port = String(5300 + (portSeq++ % 500));
  const server = nsSpawn(pair.server, onCpu(SERVER_CPU, ['iperf3', '-s', '-1', '-p', port]));
  try {
    await sleep(200);
    const client = nsSpawn(pair.client, onCpu(CLIENT_CPU, ['iperf3', '-c', pair.serverIp, '-p', port, '-t', String(SECONDS + 1), '-J', ...rateArgs]), { out: 'pipe' });
    let out = '';
    client.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
    /* 'close', not 'exit': the process can exit before its piped output is all read (a 25-min run lost its last figure to a JSON cut at 4096 bytes). */
    const done = new Promise<void>((r) => client.on('close', () => r()));
    await sleep(700); /* skip the ramp-up */
    const a = machineCpuSample();
    await sleep((SECONDS - 0.5) * 1000);
    const b = machineCpuSample();
    await done;
    let j: IperfJson = {};
    try { j = JSON.parse(out || '{}') as IperfJson; } catch { /* unreadable: 0 Gbit/s, and cpuAtRate retries once */ }
    /* TCP: what the receiver got; UDP: what was sent less what was lost. */
    const udp = j.end?.sum;
    const bps = j.end?.sum_received?.bits_per_second
      ?? (udp?.bits_per_second !== undefined && udp.packets ? udp.bits_per_second * (1 - (udp.lost_packets ?? 0) / udp.packets) : 0);
    return { busyPct: machineBusyPct(a, b), gbps: bps / 1e9 };
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
  }
}

type Metric = 'tcp1' | 'tcp4' | 'udp64' | 'latP50' | 'latP99' | 'cpuPct' | 'cpuUdpPct';
const METRICS: Array<{ key: Metric; label: string; unit: string; better: 'higher' | 'lower' }> = [
  { key: 'tcp1', label: 'TCP 1 stream', unit: 'Gbit/s', better: 'higher' },
  { key: 'tcp4', label: 'TCP 4 streams', unit: 'Gbit/s', better: 'higher' },
  { key: 'udp64', label: 'UDP 64 B', unit: 'kpps', better: 'higher' },
  { key: 'latP50', label: 'latency p50', unit: 'µs', better: 'lower' },
  { key: 'latP99', label: 'latency p99', unit: 'µs', better: 'lower' },
  { key: 'cpuPct', label: `CPU at ${FIXED_RATE}bit/s TCP`, unit: '%', better: 'lower' },
  { key: 'cpuUdpPct', label: `CPU at ${FIXED_UDP_RATE}bit/s UDP ${FIXED_UDP_LEN} B`, unit: '%', better: 'lower' },
];

/**
 * Busy % of the machine with no traffic: the background of every topology's
 * agents and etcd (26 agents in a full run, each with its timers), which the
 * CPU figures subtract so that they show what moving the traffic costs.
 */
async function backgroundBusy(): Promise<number> {
  const a = machineCpuSample();
  await sleep(BACKGROUND_SECONDS * 1000);
  return machineBusyPct(a, machineCpuSample());
}
const BACKGROUND_SECONDS = quick ? 1 : 5; /* 5 s: one whole period of the agents' slowest timer (the next-hop sync) */

async function measure(v: Variant, samples: Record<string, Record<Metric, number[]>>, background: Record<string, number[]>): Promise<void> {
  const pair = v.pair!;
  const s = (samples[v.id] ??= { tcp1: [], tcp4: [], udp64: [], latP50: [], latP99: [], cpuPct: [], cpuUdpPct: [] });
  s.tcp1.push(await tcpGbps(pair, 1));
  s.tcp4.push(await tcpGbps(pair, 4));
  s.udp64.push((await udpPps(pair)) / 1000);
  const lat = await latency(pair);
  s.latP50.push(lat.p50);
  s.latP99.push(lat.p99);
  const idle = await backgroundBusy();
  (background[v.id] ??= []).push(idle);
  const cpu = await cpuAtRate(pair, 'tcp');
  s.cpuPct.push(cpu.gbps > 0 ? Math.max(0, cpu.busyPct - idle) : NaN);
  const cpuUdp = await cpuAtRate(pair, 'udp');
  s.cpuUdpPct.push(cpuUdp.gbps > 0 ? Math.max(0, cpuUdp.busyPct - idle) : NaN);
}

/* ----------------------------------------------------------- profile */

/** Where the kernel spends the machine's time: the hottest symbols of a system-wide profile. */
interface Hotspot { symbol: string; pct: number }

/** BPF_STATS_RUN_TIME of enum bpf_stats_type. */
const BPF_STATS_RUN_TIME = 0;

/**
 * Profile every variant (perf record -a -g at 999 Hz for PROFILE_SECONDS,
 * both CPUs) while one workload runs, and keep the symbols at 0.25 % of
 * self time or more. The point is evidence of where the cycles go, per variant, in the
 * same topologies the figures come from.
 */
async function profileAll(): Promise<void> {
  const PROFILE_SECONDS = 3;
  try {
    execFileSync('perf', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('bench --profile needs perf: apt-get install linux-perf');
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fbpf-profile-'));
  cleanup.add('profile data', () => fs.rmSync(dir, { recursive: true, force: true }));
  const workloads: Array<{ id: string; label: string; client: (p: Pair, port: string) => string[] }> = [
    { id: 'tcp1', label: 'single-stream TCP', client: (p, port) => ['iperf3', '-c', p.serverIp, '-p', port, '-t', String(PROFILE_SECONDS + 2)] },
    { id: 'udp64', label: 'UDP 64 B flood', client: (p, port) => ['iperf3', '-c', p.serverIp, '-p', port, '-t', String(PROFILE_SECONDS + 2), '-u', '-l', '64', '-b', '0'] },
    { id: 'udpfixed', label: `UDP ${FIXED_UDP_LEN} B at ${FIXED_UDP_RATE}bit/s (the per-packet CPU figure)`, client: (p, port) => ['iperf3', '-c', p.serverIp, '-p', port, '-t', String(PROFILE_SECONDS + 2), '-u', '-l', String(FIXED_UDP_LEN), '-b', FIXED_UDP_RATE] },
  ];
  /*
   * The programs' own cost: with run-time stats on (BPF_ENABLE_STATS, for as
   * long as this process holds the fd; it adds two clock reads per run, which
   * is why only the profile turns it on) the kernel sums each program's run
   * time and run count, read before and after the same window perf records.
   */
  const statsFd = libbpf().bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (statsFd < 0) throw new Error(`bench --profile: BPF_ENABLE_STATS failed (errno ${libbpf().errno()}); it needs root (CAP_SYS_ADMIN)`);
  cleanup.add('BPF run-time stats', () => libbpf().close(statsFd));
  const results: Array<{ variant: string; workload: string; hot: Hotspot[]; bpf: ProgramCost[] }> = [];
  for (const v of variants) {
    await quietExcept(v);
    for (const w of workloads) {
      const pair = v.pair!;
      const port = String(5300 + (portSeq++ % 500));
      const server = nsSpawn(pair.server, onCpu(SERVER_CPU, ['iperf3', '-s', '-1', '-p', port]));
      const data = path.join(dir, `${v.id}-${w.id}.data`);
      let bpf: ProgramCost[] = [];
      try {
        await sleep(150);
        const client = nsSpawn(pair.client, onCpu(CLIENT_CPU, w.client(pair, port)));
        await sleep(1000); /* past the ramp-up */
        const p0 = programRunStats();
        const t0 = process.hrtime.bigint();
        execFileSync('perf', ['record', '-a', '-g', '-F', '999', '-o', data, '--', 'sleep', String(PROFILE_SECONDS)], { stdio: 'ignore' });
        /* ≥ 100 runs/s: the stopped topologies' programs still see the odd ARP or agent packet. */
        bpf = programCosts(p0, programRunStats(), Number(process.hrtime.bigint() - t0)).filter((b) => b.runsPerSec >= 100);
        await new Promise<void>((r) => (client.exitCode !== null ? r() : client.on('exit', () => r())));
      } finally {
        if (server.exitCode === null) server.kill('SIGKILL');
      }
      const report = execFileSync('perf', ['report', '-i', data, '--no-children', '--sort', 'sym', '--percent-limit', '0.25', '--stdio', '-g', 'none'], { encoding: 'utf8', maxBuffer: 64 << 20 });
      const hot = [...report.matchAll(/^\s+([\d.]+)%\s+\[[.kK]\]\s+(\S+)/gm)].map((m) => ({ symbol: m[2]!, pct: Number(m[1]) }));
      results.push({ variant: v.label, workload: w.label, hot, bpf });
      say(`profile ${v.id} ${w.id}: ${hot.slice(0, 4).map((h) => `${h.symbol} ${h.pct}%`).join(', ')}; BPF ${bpf.map((b) => `${b.program} ${fmt(b.nsPerRun)} ns × ${fmt(b.runsPerSec / 1000)}k/s`).join(', ') || 'none'}`);
    }
  }
  const env = environment();
  /* A BENCH_ONLY subset never overwrites the committed results of a whole run. */
  const file = resultsFile(['profile', quick ? 'quick' : null, only ? 'partial' : null].filter(Boolean).join('-'));
  writeResults('profile', { bench: 'dataplane-profile', startedAt: new Date().toISOString(), environment: env, seconds: PROFILE_SECONDS, results }, file);
  const md = [`# Dataplane profile — ${env.host}, ${new Date().toISOString()}`, '',
    `perf record -a -g -F 999 for ${PROFILE_SECONDS} s per variant and workload (both CPUs, the whole machine); self time per symbol, the top 15 (the JSON keeps all ≥ 0.25 %). Kernel ${env.kernel}, commit ${env.git.commit?.slice(0, 12) ?? '?'}${env.git.dirty ? ' (dirty)' : ''}.`, '',
    'Under each profile: what our BPF programs themselves cost in the same window (kernel run-time stats, BPF_ENABLE_STATS): runs per second, ns per run, and their share of one CPU. A run of a TC program is one skb (a GSO packet counts once). With stats on, each run also pays two clock reads (tens of ns in this VM), so ns per run are upper bounds; programs under 100 runs/s (other topologies\' stray packets) are left out.', '',
    ...results.flatMap((r) => [`## ${r.variant} — ${r.workload}`, '', markdownTable(['symbol', 'self %'], r.hot.slice(0, 15).map((h) => [h.symbol, fmt(h.pct)])), '',
      ...(r.bpf.length ? [markdownTable(['BPF program', 'runs/s', 'ns per run', '% of one CPU'], r.bpf.map((b) => [b.program, fmt(b.runsPerSec), fmt(b.nsPerRun), fmt(b.cpuPct)])), ''] : [])])].join('\n');
  fs.writeFileSync(file.replace(/\.json$/, '.md'), md);
  process.stdout.write(`${md}\nresults: ${file} (+ .md)\n`);
}

/* ----------------------------------------------------------- main */

async function main(): Promise<void> {
  say(`${variants.length} variants, ${ROUNDS} rounds of ${SECONDS} s per figure${quick ? ' (quick)' : ''}`);
  await buildStock();
  await buildOurs('vxlan', false, [
    { id: 'vxlan-compat-kernel', args: ['--fast-path=off', '--decap=kernel'] },
    { id: 'vxlan-fast-kernel', args: ['--fast-path=on', '--decap=kernel'] },
    { id: 'vxlan-compat-xdp', args: ['--fast-path=off', '--decap=xdp'] },
    { id: 'vxlan-fast-xdp', args: ['--fast-path=on', '--decap=xdp'] },
    { id: 'vxlan-compat-tc', args: ['--fast-path=off', '--decap=tc'] },
    { id: 'vxlan-fast-tc', args: ['--fast-path=on', '--decap=tc'] },
  ]);
  await buildOurs('vxlan', true, [{ id: 'dr-fast', args: ['--fast-path=on'] }]);
  await buildOurs('host-gw', false, [
    { id: 'host-gw-compat', args: ['--fast-path=off'] },
    { id: 'host-gw-fast', args: ['--fast-path=on'] },
  ]);
  await buildOurs('udp', false, [{ id: 'udp-fast', args: ['--fast-path=on', '--decap=tc'] }]);
  say(`topologies ready (${progress.elapsed().toFixed(1)} s)`);
  /* Registered after the labs, so it runs before their teardown (which kills by pid either way). */
  cleanup.add('resume stopped agents', () => signalAll(allAgents(), 'SIGCONT'));
  if (PROFILE) {
    await profileAll();
    return;
  }

  const samples: Record<string, Record<Metric, number[]>> = {};
  const background: Record<string, number[]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    const order = variants.map((_, i) => variants[(i + round) % variants.length]!);
    for (const v of order) {
      const t0 = performance.now();
      await quietExcept(v);
      await measure(v, samples, background);
      const s = samples[v.id]!;
      say(`round ${round + 1}/${ROUNDS} ${v.id.padEnd(20)} tcp1 ${fmt(s.tcp1.at(-1)!)} Gbit/s, tcp4 ${fmt(s.tcp4.at(-1)!)}, udp64 ${fmt(s.udp64.at(-1)!)} kpps, p50 ${fmt(s.latP50.at(-1)!)} µs, cpu tcp ${fmt(s.cpuPct.at(-1)!)} % udp ${fmt(s.cpuUdpPct.at(-1)!)} % over ${fmt(background[v.id]!.at(-1)!)} % idle (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
  }

  const summary: Record<string, Record<Metric, Summary>> = {};
  for (const v of variants) {
    summary[v.id] = Object.fromEntries(METRICS.map((m) => [m.key, roundSummary(summarize(samples[v.id]![m.key]))])) as Record<Metric, Summary>;
  }
  const med = (id: string, m: Metric) => summary[id]?.[m].median ?? NaN;
  /* Ratios oriented so that > 1 is better: throughput ours/theirs, latency and CPU theirs/ours. */
  const gain = (id: string, ref: string, m: Metric) => {
    const better = METRICS.find((x) => x.key === m)!.better;
    return better === 'higher' ? ratio(med(id, m), med(ref, m)) : ratio(med(ref, m), med(id, m));
  };

  const rows = variants.map((v) => [v.label, ...METRICS.map((m) => `${fmt(med(v.id, m.key))} (${fmt(summary[v.id]![m.key].min)}–${fmt(summary[v.id]![m.key].max)})`)]);
  const table = markdownTable(['variant', ...METRICS.map((m) => `${m.label} (${m.unit})`)], rows);
  const ratioRows = variants.filter((v) => v.id !== 'stock-vxlan').map((v) => [v.label,
    ...METRICS.map((m) => fmtRatio(gain(v.id, 'stock-vxlan', m.key))), fmtRatio(ratio(med(v.id, 'tcp1'), med('native', 'tcp1')))]);
  const ratioTable = markdownTable(['variant (ratio vs stock VXLAN; > 1 is better)', ...METRICS.map((m) => m.label), 'TCP 1 stream vs native'], ratioRows);

  const targets = checkTargets(med, gain);
  const env = environment();
  const result = {
    kind: 'dataplane', quick, rounds: ROUNDS, secondsPerFigure: SECONDS, fixedRate: FIXED_RATE, fixedUdpRate: FIXED_UDP_RATE, fixedUdpLen: FIXED_UDP_LEN, cpuAccounting: 'wall × CPUs − exact idle (/proc/stat idle+iowait), less the busy share with no traffic measured just before', pin: PIN, quiet: QUIET, env,
    variants: variants.map((v) => ({ id: v.id, label: v.label, kind: v.kind, summary: summary[v.id], samples: samples[v.id], backgroundBusyPct: background[v.id] })),
    ratiosVsStockVxlan: Object.fromEntries(variants.map((v) => [v.id, Object.fromEntries(METRICS.map((m) => [m.key, gain(v.id, 'stock-vxlan', m.key)]))])),
    tcp1VsNative: Object.fromEntries(variants.map((v) => [v.id, ratio(med(v.id, 'tcp1'), med('native', 'tcp1'))])),
    targets,
  };
  const name = ['dataplane', quick ? 'quick' : null, only ? 'partial' : null].filter(Boolean).join('-');
  const file = writeResults(name, result);
  const md = [`# Dataplane benchmark — ${env.host}, ${new Date().toISOString()}`, '',
    `${ROUNDS} alternating rounds, ${SECONDS} s per figure; median (min–max). Kernel ${env.kernel}, ${env.cpus} CPUs, commit ${env.git.commit?.slice(0, 12) ?? '?'}${env.git.dirty ? ' (dirty)' : ''}.`, '',
    `iperf3 client on CPU ${CLIENT_CPU}, server on CPU ${SERVER_CPU} (BENCH_PIN=${PIN}). CPU figures: busy share of all ${env.cpus} CPUs (wall time less the kernel's exact idle time) while the fixed rate runs, less the busy share with no traffic measured just before (the other topologies' agents and etcd: median ${fmt(summarize(Object.values(background).flat()).median)} %).`, '',
    table, '', ratioTable, '', '## Targets', '', markdownTable(['target', 'measured', 'met'], targets.map((x) => [x.target, x.measured, x.met ? 'yes' : 'NO'])), ''].join('\n');
  fs.writeFileSync(file.replace(/\.json$/, '.md'), md);
  const chart = svgBarChart({
    title: `flannel-bpf dataplane vs stock flannel VXLAN (${env.host}, ${isoDay()})`,
    groups: METRICS.map((m) => m.label).concat(['TCP vs native']),
    series: variants.filter((v) => v.id !== 'stock-vxlan').map((v) => ({
      name: v.label,
      values: [...METRICS.map((m) => gain(v.id, 'stock-vxlan', m.key)), ratio(med(v.id, 'tcp1'), med('native', 'tcp1'))],
    })),
    referenceLine: 1,
    yLabel: 'ratio (> 1: better than stock VXLAN; last group: share of native)',
  });
  fs.writeFileSync(file.replace(/\.json$/, '.svg'), chart);
  process.stdout.write(`${md}\nresults: ${file} (+ .md, .svg)\n`);
}

function isoDay(): string {
  return new Date().toISOString().slice(0, 10);
}

function checkTargets(med: (id: string, m: Metric) => number, gain: (id: string, ref: string, m: Metric) => number): Array<{ target: string; measured: string; met: boolean }> {
  const out: Array<{ target: string; measured: string; met: boolean }> = [];
  const add = (target: string, value: number, goal: number, cmp: '>=' | '<=') => {
    if (!Number.isFinite(value)) return;
    /* Three decimals: a ratio a hair under its goal must not print as the goal itself. */
    out.push({ target, measured: `${value.toFixed(3)}×`, met: cmp === '>=' ? value >= goal : value <= goal });
  };
  const inv = (x: number) => (Number.isFinite(x) && x > 0 ? 1 / x : NaN);
  /* The fast VXLAN default on this machine: --decap=auto picks tc with the fast path on veth. */
  const FAST = 'vxlan-fast-tc';
  add('fast VXLAN TCP ≥ 1.10× stock VXLAN', gain(FAST, 'stock-vxlan', 'tcp1'), 1.1, '>=');
  add('fast VXLAN TCP ≥ 0.95× stock host-gw', ratio(med(FAST, 'tcp1'), med('stock-host-gw', 'tcp1')), 0.95, '>=');
  add('fast VXLAN UDP 64 B pps ≥ 1.4× stock VXLAN', gain(FAST, 'stock-vxlan', 'udp64'), 1.4, '>=');
  add('fast VXLAN latency p50 ≤ 0.90× stock VXLAN', inv(gain(FAST, 'stock-vxlan', 'latP50')), 0.9, '<=');
  add('fast VXLAN CPU at fixed rate ≤ 0.80× stock VXLAN (TCP)', inv(gain(FAST, 'stock-vxlan', 'cpuPct')), 0.8, '<=');
  add('fast VXLAN CPU at fixed rate ≤ 0.80× stock VXLAN (UDP)', inv(gain(FAST, 'stock-vxlan', 'cpuUdpPct')), 0.8, '<=');
  add('compat VXLAN TCP ≥ 1.0× stock VXLAN', gain('vxlan-compat-kernel', 'stock-vxlan', 'tcp1'), 1.0, '>=');
  add('compat VXLAN UDP 64 B pps ≥ 1.2× stock VXLAN', gain('vxlan-compat-kernel', 'stock-vxlan', 'udp64'), 1.2, '>=');
  add('host-gw TCP ≥ 1.0× stock host-gw (compat)', ratio(med('host-gw-compat', 'tcp1'), med('stock-host-gw', 'tcp1')), 1.0, '>=');
  add('host-gw TCP ≥ 1.0× stock host-gw (fast path)', ratio(med('host-gw-fast', 'tcp1'), med('stock-host-gw', 'tcp1')), 1.0, '>=');
  add('host-gw fast path pps ≥ 1.2× stock host-gw', ratio(med('host-gw-fast', 'udp64'), med('stock-host-gw', 'udp64')), 1.2, '>=');
  return out;
}

main().then(() => { cleanup.run(); }, (err: unknown) => {
  process.stderr.write(`dataplane bench failed: ${(err as Error).stack ?? String(err)}\n`);
  cleanup.run();
  process.exitCode = 1;
});

