/**
 * `flannel-bpf lab`: a cluster on one machine, in network namespaces.
 *
 *                 ┌──────────── <p>-rtr (router + the lab's etcd) ────────────┐
 *                 │  br-a 192.168.10.1/24          br-b 192.168.20.1/24        │
 *                 └──────┬──────────┬───────────────────┬─────────────────────┘
 *               <p>-n1 .11     <p>-n2 .12           <p>-n3 (192.168.20.13)     nodes on two L2 segments
 *                 cni0 + pods    cni0 + pods          cni0 + pods               (pods via the real CNI
 *                                                                                bridge + host-local)
 * Every node runs a real agent (its own pin dir under bpffs, its own
 * subnet.env/state dir) against the lab's etcd. Everything the lab creates is
 * recorded in <lab dir>/lab.json as it is created, so `lab down` can remove
 * it even after a crash. Names carry a unique prefix; the machine's own
 * network namespace is never touched.
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { addNetns, delNetns, listNetns, nsExec, nsSpawn, killPid, vethBetween, netnsExists, pidAlive } from './netns.js';
import { startEtcd, stopEtcd, etcdctl, etcdDataDir, type EtcdProcess } from './etcd.js';
import { flannelDelegateConfig, cniAdd, STANDARD_FLANNEL_NETCONF } from './cni.js';
import { readSubnetEnv, type SubnetEnv } from '../../control/subnet-env.js';
import { readStateFile, type AgentStateFile } from '../../control/state.js';
import { programStockHostGw, programStockRules, programStockVxlan, type StockNode } from './stock.js';

export const LAB_ROOT = '/run/flannel-bpf-lab';
export const LAB_PIN_ROOT = '/sys/fs/bpf';
export const NETWORK = '10.244.0.0/16';
export const ETCD_PREFIX = '/coreos.com/network';
export const SEGMENTS = [
  { name: 'a', bridge: 'br-a', net: '192.168.10', gw: '192.168.10.1' },
  { name: 'b', bridge: 'br-b', net: '192.168.20', gw: '192.168.20.1' },
] as const;

export type LabBackend = 'vxlan' | 'host-gw' | 'udp';

export interface LabOptions {
  nodes: number;
  backend: LabBackend;
  directRouting?: boolean;
  podsPerNode?: number;
  /** 1: every node on segment a (host-gw needs adjacency); 2 (default): nodes split over a and b. */
  segments?: 1 | 2;
  /** --decap for every agent (default auto). */
  decap?: 'auto' | 'xdp' | 'kernel' | 'tc';
  ipMasq?: boolean;
  /** Extra agent flags. */
  agentArgs?: string[];
  /** sysctls (`key=value`) set in a node's namespace (by node name) before its program starts, e.g. short neighbour timers. */
  nodeSysctls?: Record<string, string[]>;
  prefix?: string;
  /** Node indexes (1-based) that run another program instead of our agent (mixed clusters). */
  external?: Record<number, ExternalNode>;
  log?: (line: string) => void;
}

/** A node program other than our agent (e.g. a stock-flannel node), started the same way. */
export interface ExternalNode {
  kind: string;
  argv(ctx: { ns: string; ip: string; etcd: string; subnetFile: string; dir: string; name: string }): string[];
}

export interface LabNode {
  name: string;
  ns: string;
  index: number;
  segment: 'a' | 'b';
  ip: string;
  gateway: string;
  kind: 'flannel-bpf' | string;
  dir: string;
  pinDir: string;
  subnetFile: string;
  stateDir: string;
  logFile: string;
  pid: number | null;
  etcdEndpoint: string;
  subnet?: string;
  metricsPort: number;
  healthzPort: number;
  /** Agent flags of this node only (added after the lab's). */
  extraArgs?: string[];
  /** Environment of this node's program on top of ours (e.g. FLANNEL_BPF_OBJ_DIR for an upgrade). */
  extraEnv?: Record<string, string>;
}

export interface LabPod {
  name: string;
  ns: string;
  node: string;
  ip: string;
  containerId: string;
}

export interface LabState {
  version: 1;
  prefix: string;
  dir: string;
  pinRoot: string;
  createdAt: string;
  options: Omit<LabOptions, 'external' | 'log'> & { external?: Record<number, string> };
  router: string;
  etcd: EtcdProcess | null;
  nodes: LabNode[];
  pods: LabPod[];
  namespaces: string[];
}

export function repoRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const rel of ['../../..', '../../../..']) {
    const dir = path.resolve(here, rel);
    if (fs.existsSync(path.join(dir, 'bin/flannel-bpf'))) return dir;
  }
  throw new Error('cannot find the flannel-bpf checkout (bin/flannel-bpf)');
}

export function labDir(prefix: string): string {
  return path.join(LAB_ROOT, prefix);
}

function saveState(s: LabState): void {
  fs.mkdirSync(s.dir, { recursive: true, mode: 0o755 });
  const file = path.join(s.dir, 'lab.json');
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(s, null, 1)}\n`);
  fs.renameSync(`${file}.tmp`, file);
}

export function loadState(prefix: string): LabState | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(labDir(prefix), 'lab.json'), 'utf8')) as LabState;
  } catch {
    return null;
  }
}

/** Labs recorded on this machine (newest first). */
export function listLabs(): LabState[] {
  let names: string[] = [];
  try { names = fs.readdirSync(LAB_ROOT); } catch { return []; }
  return names.map((n) => loadState(n)).filter((s): s is LabState => s !== null)
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A random unicast, locally administered MAC, 02:<second>:… (the lab's router bridges use 02:fb). */
export function randomMac(second = 'fb'): string {
  return ['02', second, ...[...crypto.randomBytes(4)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

export class Lab {
  private constructor(readonly state: LabState, private readonly opts: LabOptions) {}

  static async up(opts: LabOptions): Promise<Lab> {
    const prefix = opts.prefix ?? `fl${crypto.randomBytes(2).toString('hex')}`;
    if (!/^[a-z][a-z0-9]{1,7}$/.test(prefix)) throw new Error(`lab prefix ${JSON.stringify(prefix)} must be 2–8 lower-case letters/digits`);
    if (opts.nodes < 0 || opts.nodes > 60) throw new Error('--nodes must be 0..60');
    if (loadState(prefix)) throw new Error(`a lab with prefix ${prefix} exists; run: flannel-bpf lab down ${prefix}`);
    const dir = labDir(prefix);
    const { external, log: _log, ...plain } = opts;
    const state: LabState = {
      version: 1, prefix, dir, pinRoot: path.join(LAB_PIN_ROOT, `flannel-bpf-lab-${prefix}`), createdAt: new Date().toISOString(),
      options: { ...plain, prefix, external: external ? Object.fromEntries(Object.entries(external).map(([k, v]) => [k, v.kind])) : undefined },
      router: `${prefix}-rtr`, etcd: null, nodes: [], pods: [], namespaces: [],
    };
    saveState(state);
    const lab = new Lab(state, opts);
    try {
      await lab.#build();
    } catch (err) {
      lab.say(`lab up failed: ${(err as Error).message}; tearing down`);
      lab.down();
      throw err;
    }
    return lab;
  }

  static open(prefix: string, log?: (line: string) => void): Lab {
    const s = loadState(prefix);
    if (!s) throw new Error(`no lab ${prefix} (known: ${listLabs().map((l) => l.prefix).join(', ') || 'none'})`);
    const { external: _ext, ...plain } = s.options;
    return new Lab(s, { ...plain, log });
  }

  say(line: string): void {
    this.opts.log?.(line);
  }

  #ns(name: string): string {
    addNetns(name);
    this.state.namespaces.push(name);
    saveState(this.state);
    return name;
  }

  async #build(): Promise<void> {
    const s = this.state;
    const t0 = Date.now();
    /* Router with the two segments, and the lab's etcd on both. */
    this.#ns(s.router);
    nsExec(s.router, 'sysctl -qw net.ipv4.ip_forward=1');
    for (const seg of SEGMENTS) {
      /*
       * An explicit MAC, as a real router has: a bridge without one takes the
       * lowest MAC of its ports, so a node added later (random veth MAC) could
       * change the router's MAC under every node's neighbour entry. Frames to
       * the old one (another port's MAC) reach the router as PACKET_OTHERHOST
       * and IP drops them: routed flows black-holed until ARP notices.
       */
      nsExec(s.router, `ip link add ${seg.bridge} address ${randomMac()} type bridge; ip addr add ${seg.gw}/24 dev ${seg.bridge}; ip link set ${seg.bridge} up`);
    }
    fs.mkdirSync(s.dir, { recursive: true });
    s.etcd = await startEtcd(s.router, SEGMENTS.map((x) => x.gw), etcdDataDir(s.dir), { logFile: path.join(s.dir, 'etcd.log') });
    saveState(s);
    const backend: Record<string, unknown> = { Type: this.opts.backend };
    if (this.opts.backend === 'vxlan' && this.opts.directRouting) backend.DirectRouting = true;
    etcdctl(s.etcd, ['put', `${ETCD_PREFIX}/config`, JSON.stringify({ Network: NETWORK, Backend: backend })]);
    this.say(`router, segments and etcd up (${Date.now() - t0} ms)`);

    for (let i = 1; i <= this.opts.nodes; i++) this.addNode(i);
    await this.waitReady(this.state.nodes);
    this.say(`${this.opts.nodes} nodes ready (${Date.now() - t0} ms)`);
    for (const n of this.state.nodes) {
      for (let k = 1; k <= (this.opts.podsPerNode ?? 0); k++) this.addPod(n.name);
    }
    if (this.opts.podsPerNode) {
      await this.settle();
      this.say(`${this.state.pods.length} pods created with the CNI bridge + host-local plugins (${Date.now() - t0} ms)`);
    }
  }

  /** The router's end of a node's uplink (a port of its segment's bridge). */
  routerPort(nodeName: string): string {
    return `${this.state.prefix.slice(0, 6)}${nodeName}`.slice(0, 15);
  }

  /** LabOptions.nodeSysctls of a node as sysctl arguments (validated: key=value with a plain key). */
  #sysctls(nodeName: string): string {
    const list = this.opts.nodeSysctls?.[nodeName] ?? [];
    for (const kv of list) if (!/^[a-z0-9_.]+=[0-9a-z_-]+$/i.test(kv)) throw new Error(`lab: bad sysctl "${kv}" (want key=value)`);
    return list.join(' ');
  }

  /** Create node i (namespace, uplink on its segment, program) — also used to join nodes later. */
  addNode(i: number, opts: { external?: ExternalNode; agentArgs?: string[]; segment?: 'a' | 'b' } = {}): LabNode {
    const s = this.state;
    const segments = this.opts.segments ?? 2;
    const seg = opts.segment ? SEGMENTS[opts.segment === 'a' ? 0 : 1]
      : segments === 1 ? SEGMENTS[0] : SEGMENTS[i <= Math.ceil(this.opts.nodes / 2) ? 0 : 1];
    const name = `n${i}`;
    const ns = this.#ns(`${s.prefix}-${name}`);
    const ip = `${seg.net}.${10 + i}`;
    vethBetween(ns, 'eth0', s.router, this.routerPort(name));
    nsExec(s.router, `ip link set ${this.routerPort(name)} master ${seg.bridge} up`);
    nsExec(ns, `ip addr add ${ip}/24 dev eth0; ip link set eth0 up; ip route add default via ${seg.gw}; sysctl -qw net.ipv4.ip_forward=1 ${this.#sysctls(name)}`);
    const dir = path.join(s.dir, name);
    fs.mkdirSync(dir, { recursive: true });
    const node: LabNode = {
      name, ns, index: i, segment: seg.name, ip, gateway: seg.gw, kind: 'flannel-bpf', dir,
      pinDir: path.join(s.pinRoot, name), subnetFile: path.join(dir, 'subnet.env'), stateDir: dir,
      logFile: path.join(dir, 'agent.log'), pid: null, etcdEndpoint: `http://${seg.gw}:2379`, metricsPort: 9472, healthzPort: 10267,
      extraArgs: opts.agentArgs,
    };
    const external = opts.external ?? this.opts.external?.[i];
    if (external) node.kind = external.kind;
    s.nodes.push(node);
    saveState(s);
    this.startNode(node, external);
    return node;
  }

  /** Start (or restart) a node's program. */
  startNode(node: LabNode, external?: ExternalNode): number {
    const argv = external
      ? external.argv({ ns: node.ns, ip: node.ip, etcd: node.etcdEndpoint, subnetFile: node.subnetFile, dir: node.dir, name: node.name })
      : this.agentArgv(node);
    const out = fs.openSync(node.logFile, 'a');
    const child = nsSpawn(node.ns, argv, { out, detached: true, env: node.extraEnv ? { ...process.env, ...node.extraEnv } : undefined });
    fs.closeSync(out);
    child.unref();
    if (!child.pid) throw new Error(`could not start ${node.name}`);
    node.pid = child.pid;
    saveState(this.state);
    return child.pid;
  }

  agentArgv(node: LabNode): string[] {
    return [path.join(repoRoot(), 'bin/flannel-bpf'), 'agent',
      `--etcd-endpoints=${node.etcdEndpoint}`, `--etcd-prefix=${ETCD_PREFIX}`, '--iface=eth0',
      `--bpffs-pin-dir=${node.pinDir}`, `--subnet-file=${node.subnetFile}`, `--state-dir=${node.stateDir}`,
      `--node-name=${node.name}`, `--healthz-ip=${node.ip}`, `--healthz-port=${node.healthzPort}`,
      `--metrics-addr=${node.ip}:${node.metricsPort}`, `--decap=${this.opts.decap ?? 'auto'}`,
      ...(this.opts.ipMasq === false ? [] : ['--ip-masq']), ...(this.opts.agentArgs ?? []), ...(node.extraArgs ?? [])];
  }

  /** Stop a node's program (SIGTERM, or SIGKILL to simulate a crash). */
  stopNode(name: string, signal: NodeJS.Signals = 'SIGTERM'): void {
    const n = this.node(name);
    if (n.pid) killPid(n.pid, signal);
    n.pid = null;
    saveState(this.state);
  }

  /** Stop a node's program and wait until it has exited. */
  async stopNodeAndWait(name: string, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<void> {
    const pid = this.node(name).pid;
    this.stopNode(name, signal);
    const deadline = Date.now() + timeoutMs;
    while (pid && pidAlive(pid)) {
      if (Date.now() > deadline) throw new Error(`${name} (pid ${pid}) did not exit after ${signal}`);
      await sleep(20);
    }
  }

  /** Is the node's program running? */
  running(name: string): boolean {
    const pid = this.node(name).pid;
    return pid !== null && pidAlive(pid);
  }

  /** The last lines of a node's log (for a failure message). */
  logTail(name: string, lines = 15): string {
    return tail(this.node(name).logFile, lines);
  }

  node(name: string): LabNode {
    const n = this.state.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name} in lab ${this.state.prefix}`);
    return n;
  }

  /**
   * Wait until every agent with pods and the fast path on has attached its
   * program to cni0 (the bridge plugin creates cni0 with the node's first pod;
   * the agent notices within a second). Attaching adds a clsact qdisc to cni0,
   * and the kernel deactivates a device for a qdisc graft: packets cni0 sends
   * in that moment are dropped. Tests that measure loss start after it.
   */
  async settle(nodes: readonly LabNode[] = this.state.nodes, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const pending = nodes.filter((n) => n.kind === 'flannel-bpf' && this.state.pods.some((p) => p.node === n.name)
      && !/--fast-path[= ]off\b/.test(this.agentArgv(n).join(' ')));
    for (const n of pending) {
      while (!/fbpf_cni_ingres/.test(nsExec(n.ns, 'tc filter show dev cni0 ingress 2>/dev/null || true'))) {
        if (n.pid && !pidAlive(n.pid)) throw new Error(`${n.name}'s agent exited; last log lines:\n${tail(n.logFile, 15)}`);
        if (Date.now() > deadline) throw new Error(`${n.name}'s agent did not attach the fast path to cni0 within ${timeoutMs} ms; last log lines:\n${tail(n.logFile, 15)}`);
        await sleep(50);
      }
    }
  }

  /** Wait until each node has written subnet.env and (for our agents) synced its maps. */
  async waitReady(nodes: readonly LabNode[], timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const n of nodes) {
      for (;;) {
        const env = readSubnetEnv(n.subnetFile);
        const st = n.kind === 'flannel-bpf' ? readStateFile(n.stateDir) : null;
        const ready = env?.subnet && (n.kind !== 'flannel-bpf' || (st?.lastSync && st.pid === n.pid));
        if (ready) {
          n.subnet = `${env.subnet!.addr >>> 24}.${(env.subnet!.addr >>> 16) & 255}.${(env.subnet!.addr >>> 8) & 255}.${env.subnet!.addr & 255}/${env.subnet!.prefix}`;
          break;
        }
        if (n.pid && !pidAlive(n.pid)) {
          throw new Error(`${n.name} (${n.kind}) exited; last log lines:\n${tail(n.logFile, 15)}`);
        }
        if (Date.now() > deadline) throw new Error(`${n.name} not ready after ${timeoutMs} ms; last log lines:\n${tail(n.logFile, 15)}`);
        await sleep(50);
      }
    }
    saveState(this.state);
  }

  /**
   * A node without any flannel program (for a stock dataplane programmed by
   * hand, e.g. src/cli/lab/stock.ts): namespace, uplink on a segment, and a
   * subnet.env so pods can be added to it.
   */
  addStaticNode(name: string, segment: 'a' | 'b', hostIndex: number, subnet: string, mtu: number): LabNode {
    const s = this.state;
    const seg = SEGMENTS[segment === 'a' ? 0 : 1];
    const ns = this.#ns(`${s.prefix}-${name}`);
    const ip = `${seg.net}.${hostIndex}`;
    const port = this.routerPort(name);
    vethBetween(ns, 'eth0', s.router, port);
    nsExec(s.router, `ip link set ${port} master ${seg.bridge} up`);
    nsExec(ns, `ip addr add ${ip}/24 dev eth0; ip link set eth0 up; ip route add default via ${seg.gw}; sysctl -qw net.ipv4.ip_forward=1 ${this.#sysctls(name)}`);
    const dir = path.join(s.dir, name);
    fs.mkdirSync(dir, { recursive: true });
    const node: LabNode = {
      name, ns, index: hostIndex, segment: seg.name, ip, gateway: seg.gw, kind: 'static', dir, pinDir: '', subnetFile: path.join(dir, 'subnet.env'),
      stateDir: dir, logFile: path.join(dir, 'agent.log'), pid: null, etcdEndpoint: '', subnet, metricsPort: 0, healthzPort: 0,
    };
    const net = subnet.split('/')[0] ?? '';
    fs.writeFileSync(node.subnetFile, `FLANNEL_NETWORK=${NETWORK}\nFLANNEL_SUBNET=${net.replace(/\.0$/, '.1')}/24\nFLANNEL_MTU=${mtu}\nFLANNEL_IPMASQ=false\n`);
    s.nodes.push(node);
    saveState(s);
    return node;
  }

  /**
   * Two nodes programmed exactly as stock flanneld programs them (static: no
   * agent, no lease; k1 = .201 with 10.244.250.0/24, k2 = .202 with
   * 10.244.251.0/24), flanneld's iptables rules, and a pod on each: the
   * side-by-side reference for the demo and the tests.
   */
  addStockPair(backend: 'vxlan' | 'host-gw', segments: ['a' | 'b', 'a' | 'b']): { k1: LabNode; k2: LabNode; kp1: LabPod; kp2: LabPod } {
    const mtu = backend === 'vxlan' ? 1450 : 1500;
    const k1 = this.addStaticNode('k1', segments[0], 201, '10.244.250.0/24', mtu);
    const k2 = this.addStaticNode('k2', segments[1], 202, '10.244.251.0/24', mtu);
    const spec = (n: LabNode, vtepMac: string): StockNode => ({ ns: n.ns, ip: n.ip, iface: 'eth0', subnet: n.subnet!, vtepMac });
    const [s1, s2] = [spec(k1, '0e:de:00:00:00:01'), spec(k2, '0e:de:00:00:00:02')];
    const program = backend === 'vxlan' ? programStockVxlan : programStockHostGw;
    program(s1, [s2]);
    program(s2, [s1]);
    for (const k of [k1, k2]) programStockRules({ ns: k.ns, subnet: k.subnet! }, NETWORK);
    return { k1, k2, kp1: this.addPod('k1'), kp2: this.addPod('k2') };
  }

  /** Create a pod on a node with the real CNI plugins, as kubelet + flannel's CNI plugin would. */
  addPod(nodeName: string): LabPod {
    const s = this.state;
    const node = this.node(nodeName);
    const env = readSubnetEnv(node.subnetFile);
    if (!env?.subnet || !env.network || !env.mtu || env.ipMasq === undefined) throw new Error(`${nodeName} has no complete subnet.env yet`);
    const k = s.pods.filter((p) => p.node === nodeName).length + 1;
    const name = `${nodeName}p${k}`;
    const ns = this.#ns(`${s.prefix}-${name}`);
    const containerId = `${s.prefix}-${name}`;
    const conf = flannelDelegateConfig(STANDARD_FLANNEL_NETCONF, env as SubnetEnv, path.join(node.dir, 'ipam'));
    fs.writeFileSync(path.join(node.dir, 'cni-delegate.json'), `${JSON.stringify(conf, null, 1)}\n`);
    const res = cniAdd(node.ns, ns, containerId, conf);
    const pod: LabPod = { name, ns, node: nodeName, ip: res.ip, containerId };
    s.pods.push(pod);
    saveState(s);
    return pod;
  }

  /** Remove a node: stop its program, delete its lease from etcd, remove its namespaces. */
  removeNode(name: string): void {
    const s = this.state;
    const n = this.node(name);
    this.stopNode(name, 'SIGKILL');
    if (s.etcd && n.subnet) {
      const key = `${ETCD_PREFIX}/subnets/${n.subnet.replace('/', '-')}`;
      try { etcdctl(s.etcd, ['del', key]); } catch { /* already gone */ }
    }
    for (const p of s.pods.filter((x) => x.node === name)) delNetns(p.ns);
    delNetns(n.ns);
    fs.rmSync(n.pinDir, { recursive: true, force: true });
    s.pods = s.pods.filter((x) => x.node !== name);
    s.nodes = s.nodes.filter((x) => x.name !== name);
    s.namespaces = s.namespaces.filter((x) => netnsExists(x));
    saveState(s);
  }

  /** Ping every pod from every pod: a matrix of received/sent. */
  async check(opts: { count?: number } = {}): Promise<PingMatrix> {
    const pods = this.state.pods;
    const results: PingMatrix = { pods: pods.map((p) => ({ name: p.name, node: p.node, ip: p.ip })), ok: [], failures: [], retried: [] };
    const jobs = pods.map(async (src) => {
      const row: boolean[] = [];
      for (const dst of pods) {
        /* One more try before calling a pair unreachable (a reply later than 2 s on a loaded machine); the pairs that needed it are listed. */
        let ok = await pingOnce(src.ns, dst.ip, opts.count ?? 1);
        if (!ok) {
          ok = await pingOnce(src.ns, dst.ip, 1);
          if (ok) results.retried.push(`${src.name}→${dst.name}`);
        }
        row.push(ok);
        if (!ok) results.failures.push(`${src.name}→${dst.name}`);
      }
      return row;
    });
    results.ok = await Promise.all(jobs);
    return results;
  }

  agentState(name: string): AgentStateFile | null {
    return readStateFile(this.node(name).stateDir);
  }

  /** Remove everything this lab created: programs (by pid), etcd, namespaces, pins, files. */
  down(): string[] {
    return teardown(this.state);
  }
}

export interface PingMatrix {
  pods: Array<{ name: string; node: string; ip: string }>;
  /** ok[i][j]: pod i reached pod j. */
  ok: boolean[][];
  failures: string[];
  /** Pairs whose first ping went unanswered and whose second one was answered. */
  retried: string[];
}

function pingOnce(ns: string, ip: string, count: number): Promise<boolean> {
  return new Promise((resolve) => {
    const child = nsSpawn(ns, ['ping', '-c', String(count), '-W', '2', '-i', '0.2', '-q', ip]);
    child.on('exit', (code) => resolve(code === 0));
    child.on('error', () => resolve(false));
  });
}

function tail(file: string, n: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Tear a lab down from its recorded state (works after a crash of `lab up` or of the tests). */
export function teardown(s: LabState): string[] {
  const done: string[] = [];
  for (const n of s.nodes) {
    if (n.pid && killPid(n.pid, 'SIGKILL')) done.push(`killed ${n.name} (pid ${n.pid})`);
  }
  if (s.etcd) {
    stopEtcd(s.etcd);
    done.push(`stopped etcd (pid ${s.etcd.pid})`);
  }
  const names = new Set([...s.namespaces, ...listNetns(`${s.prefix}-`)]);
  for (const ns of names) delNetns(ns);
  if (names.size) done.push(`deleted ${names.size} namespaces`);
  if (fs.existsSync(s.pinRoot)) {
    fs.rmSync(s.pinRoot, { recursive: true, force: true });
    done.push(`removed pins ${s.pinRoot}`);
  }
  fs.rmSync(s.dir, { recursive: true, force: true });
  done.push(`removed ${s.dir}`);
  return done;
}

/** Down every recorded lab, and any namespace that looks like one without a record. */
export function teardownAll(): string[] {
  const done: string[] = [];
  for (const s of listLabs()) done.push(...teardown(s));
  return done;
}
