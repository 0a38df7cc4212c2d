/**
 * The stock-flanneld emulator (test/fixtures/stock-flannel.ts) against a real
 * etcd, in network namespaces: what it writes to etcd (byte for byte), the
 * kernel state it programs (flannel.1, neighbour / FDB / onlink routes,
 * DirectRouting and host-gw routes, iptables chains), pod traffic through it,
 * and flanneld's behaviours the lab depends on (config retry, lease reuse by
 * PublicIP and from subnet.env, the lost creation race, lease revocation,
 * re-list after compaction, the empty-snapshot reset on an unparsable key).
 *
 * Layout: etcd runs on 127.0.0.1 in this process's private namespace
 * (test/helpers/etcd.ts); a small TCP forwarder (a child process, in that
 * namespace) exposes it on the LAN bridges, which live in the same private
 * namespace and double as the router between LAN 1 (192.168.71.0/24) and
 * LAN 2 (192.168.72.0/24). Nodes and pods are named namespaces (NetnsSet).
 * Nothing touches the machine's root network namespace.
 */
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { NetnsSet, privateNetns } from '../helpers/netns.js';
import { startEtcd, freePort, type EtcdServer } from '../helpers/etcd.js';
import { ping } from '../helpers/traffic.js';
import { stockFlannelCommandLine } from '../fixtures/stock-flannel.js';
import { masqRules, forwardRules } from '../../src/control/masquerade.js';
import { parseCidr, formatIPv4, type Cidr } from '../../src/maps/addr.js';

const priv = privateNetns();

const NETWORK = '10.244.0.0/16';
const LAN1 = '192.168.71';
const LAN2 = '192.168.72';

let etcd: EtcdServer;
let proxyPort = 0;
let proxy: ChildProcess | null = null;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fbt-stockfl-'));
let seq = 0;

/** A TCP forwarder 0.0.0.0:proxyPort → etcd (127.0.0.1), as a child in the private namespace. */
async function startProxy(): Promise<void> {
  const target = Number(new URL(etcd.endpoint).port);
  const script = `
    const net = require('node:net');
    const srv = net.createServer((c) => {
      const u = net.connect(${target}, '127.0.0.1');
      c.pipe(u); u.pipe(c);
      c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
      c.on('close', () => u.destroy()); u.on('close', () => c.destroy());
    });
    srv.listen(${proxyPort}, '0.0.0.0', () => process.stdout.write('listening\\n'));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  proxy = child;
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`etcd forwarder exited (${code})`)));
  });
}

async function stopProxy(): Promise<void> {
  const p = proxy;
  proxy = null;
  if (!p || p.pid === undefined || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  process.kill(p.pid, 'SIGKILL');
  await gone;
}

test.before(async () => {
  etcd = await startEtcd({ name: 'stockfl' });
  proxyPort = await freePort();
  await startProxy();
});

test.after.always(async () => {
  await stopProxy();
  await etcd?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/* ------------------------------------------------------------------ lab helpers */

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

interface Node {
  ns: string;
  ip: string;
  lan: string;
}

interface Lab {
  set: NetnsSet;
  prefix: string;
  bridges: string[];
  node(name: string, lan: string, host: number): Node;
  etcdUrl(lan: string): string;
}

/** Bridges (in the private namespace, also the router) and nodes attached to them. */
function makeLab(t: ExecutionContext, tag: string): Lab {
  const id = ++seq;
  const set = new NetnsSet(tag);
  const bridges: string[] = [];
  const hostVeths: string[] = [];
  t.teardown(() => {
    set.cleanup();
    for (const v of hostVeths) try { priv.sh(`ip link del ${v} 2>/dev/null || true`); } catch { /* gone with its peer */ }
    for (const b of bridges) try { priv.sh(`ip link del ${b}`); } catch { /* gone */ }
  });
  priv.sh('sysctl -qw net.ipv4.ip_forward=1');
  const bridgeOf = new Map<string, string>();
  const ensureBridge = (lan: string): string => {
    const have = bridgeOf.get(lan);
    if (have) return have;
    const br = `sfbr${id}${lan.split('.')[2]}`;
    priv.sh(`ip link add ${br} type bridge; ip addr add ${lan}.254/24 dev ${br}; ip link set ${br} up`);
    bridges.push(br);
    bridgeOf.set(lan, br);
    return br;
  };
  return {
    set,
    prefix: `/lab${id}-${set.prefix}/network`,
    bridges,
    node(name: string, lan: string, host: number): Node {
      const br = ensureBridge(lan);
      const ns = set.add(name);
      const hv = `sfv${id}${name}`.slice(0, 15);
      priv.sh(`ip link add ${hv} type veth peer name eth0 netns ${ns}; ip link set ${hv} master ${br} up`);
      hostVeths.push(hv);
      set.exec(ns, `sysctl -qw net.ipv4.ip_forward=1
        ip addr add ${lan}.${host}/24 dev eth0; ip link set eth0 up
        ip route add default via ${lan}.254`);
      return { ns, ip: `${lan}.${host}`, lan };
    },
    etcdUrl(lan: string): string {
      return `http://${lan}.254:${proxyPort}`;
    },
  };
}

interface Ready { ready: true; subnet: string; vtepMac: string | null }

interface Stock {
  child: ChildProcess;
  node: Node;
  subnetFile: string;
  out: () => string;
  err: () => string;
  ready: Promise<Ready>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startStock(t: ExecutionContext, lab: Lab, node: Node, extra: string[] = [], env: Record<string, string> = {}, subnetFile?: string): Stock {
  const file = subnetFile ?? path.join(tmp, `${path.basename(node.ns)}-${++seq}.env`);
  const args = [`--etcd-endpoints=${lab.etcdUrl(node.lan)}`, `--etcd-prefix=${lab.prefix}`, '--iface=eth0', `--subnet-file=${file}`, ...extra];
  const envPrefix = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const child = lab.set.spawn(node.ns, `${envPrefix.length ? `env ${envPrefix.join(' ')} ` : ''}${stockFlannelCommandLine(args)}`);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => { out += d; });
  child.stderr?.on('data', (d: string) => { err += d; });
  /* 'close', not 'exit': stdout/stderr are fully read by then. */
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  const ready = new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${node.ns}: no ready line in 25 s\n${err.slice(-3000)}`)), 25_000);
    const check = (): void => {
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue;
        const j = JSON.parse(line) as Ready;
        if (j.ready) {
          clearTimeout(timer);
          resolve(j);
          return;
        }
      }
    };
    child.stdout?.on('data', check);
    void exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`${node.ns}: exited (${e.code ?? e.signal}) before ready\n${err.slice(-3000)}`));
    });
  });
  ready.catch(() => undefined);
  const s: Stock = { child, node, subnetFile: file, out: () => out, err: () => err, ready, exited };
  t.teardown(() => {
    if (!t.passed) console.error(`--- ${node.ns} stderr (tail) ---\n${err.slice(-6000)}`);
  });
  return s;
}

/** Pod namespace behind a node: <subnet>.1 on the node's vpod, <subnet>.2 in the pod. */
function addPod(lab: Lab, node: Node, subnet: string, mtu: number): string {
  const c = parseCidr(subnet);
  const gw = formatIPv4(c.addr + 1);
  const ip = formatIPv4(c.addr + 2);
  const pod = lab.set.add(`p${node.ns.slice(-2)}`);
  lab.set.veth(node.ns, 'vpod', pod, 'eth0');
  lab.set.exec(node.ns, `ip addr add ${gw}/${c.prefix} dev vpod; ip link set vpod mtu ${mtu} up`);
  lab.set.exec(pod, `ip addr add ${ip}/${c.prefix} dev eth0; ip link set eth0 mtu ${mtu} up; ip route add default via ${gw}`);
  return pod;
}

function podIp(subnet: string): string {
  return formatIPv4(parseCidr(subnet).addr + 2);
}

const netAddr = (subnet: string): string => subnet.split('/')[0] as string;
const keyOf = (lab: Lab, subnet: string): string => `${lab.prefix}/subnets/${subnet.replace('/', '-')}`;
const vxlanValue = (ip: string, mac: string): string => `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`;

function etcdValue(key: string): string {
  return etcd.ctl(['get', key, '--print-value-only']).replace(/\n$/, '');
}

/** The etcd lease attached to a key: id (hex) and TTL as `etcdctl lease timetolive` reports. */
function etcdLeaseOf(key: string): { id: string; granted: number; remaining: number } {
  const raw = etcd.ctl(['get', key, '-w', 'json']);
  const m = /"lease":(\d+)/.exec(raw);
  if (!m) throw new Error(`no etcd lease on ${key}: ${raw}`);
  const id = BigInt(m[1] as string).toString(16);
  const out = etcd.ctl(['lease', 'timetolive', id]);
  const t = /granted with TTL\((\d+)s\), remaining\((\d+)s\)/.exec(out);
  return { id, granted: Number(t?.[1]), remaining: Number(t?.[2]) };
}

function putConfig(lab: Lab, conf: object): void {
  etcd.ctl(['put', `${lab.prefix}/config`, JSON.stringify(conf)]);
}

function writePrevEnv(file: string, subnet: string, mtu = 1450): void {
  const c = parseCidr(subnet);
  fs.writeFileSync(file, `FLANNEL_NETWORK=${NETWORK}\nFLANNEL_SUBNET=${formatIPv4(c.addr + 1)}/${c.prefix}\nFLANNEL_MTU=${mtu}\nFLANNEL_IPMASQ=false\n`);
}

const sh = (lab: Lab, n: Node, script: string): string => lab.set.exec(n.ns, script);

function neighbours(lab: Lab, n: Node): string[] {
  return sh(lab, n, 'ip neigh show dev flannel.1').split('\n').map((l) => l.trim()).filter(Boolean);
}
function fdb(lab: Lab, n: Node): string[] {
  return sh(lab, n, 'bridge fdb show dev flannel.1').split('\n').map((l) => l.trim()).filter(Boolean);
}
function podRoutes(lab: Lab, n: Node): string[] {
  return sh(lab, n, 'ip route show').split('\n').map((l) => l.trim()).filter((l) => l.startsWith('10.244.') && !l.includes(' dev vpod '));
}

/* ------------------------------------------------------------------ tests */

test.serial('vxlan: two stock nodes — leases, flannel.1, peer entries, iptables, pod traffic, revocation, restart, re-list after compaction', async (t) => {
  const lab = makeLab(t, 'sfx');
  const A = lab.node('na', LAN1, 1);
  const B = lab.node('nb', LAN1, 2);

  /* A starts before the config exists: flanneld retries every second and prints "timed out". */
  const a = startStock(t, lab, A, ['--ip-masq']);
  await waitFor('A to wait for the config', () => /Couldn't fetch network config: flannel config not found in etcd store/.test(a.err()) && a.out().includes('timed out'));
  putConfig(lab, { Network: NETWORK, Backend: { Type: 'vxlan' } });
  /* One after the other: two flanneld starting at once can pick the same random subnet, and the
   * loser exits (see the race test). */
  const ra = await a.ready;
  const b = startStock(t, lab, B);
  const rb = await b.ready;
  const macA = ra.vtepMac as string;
  const macB = rb.vtepMac as string;

  /* Leases: distinct random /24s in Network, flannel's exact value bytes, fresh 24 h etcd leases. */
  t.not(ra.subnet, rb.subnet);
  for (const r of [ra, rb]) t.regex(r.subnet, /^10\.244\.(\d+)\.0\/24$/);
  for (const mac of [macA, macB]) {
    t.regex(mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    t.is(parseInt(mac.slice(0, 2), 16) & 3, 2, `${mac} is locally administered unicast`);
  }
  t.is(etcdValue(keyOf(lab, ra.subnet)), vxlanValue(A.ip, macA));
  t.is(etcdValue(keyOf(lab, rb.subnet)), vxlanValue(B.ip, macB));
  const leaseA = etcdLeaseOf(keyOf(lab, ra.subnet));
  t.is(leaseA.granted, 86400);
  t.true(leaseA.remaining > 86300);

  /* subnet.env, flannel's format. */
  const cA = parseCidr(ra.subnet);
  t.is(fs.readFileSync(a.subnetFile, 'utf8'), `FLANNEL_NETWORK=${NETWORK}\nFLANNEL_SUBNET=${formatIPv4(cA.addr + 1)}/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`);
  t.is(fs.statSync(a.subnetFile).mode & 0o777, 0o644);

  /* flannel.1 exactly as flanneld creates it. */
  const link = sh(lab, A, 'ip -d link show flannel.1');
  t.regex(link, /mtu 1450 /);
  t.regex(link, /state UNKNOWN|,UP/);
  t.true(link.includes(`link/ether ${macA} `));
  t.regex(link, new RegExp(`vxlan id 1 local ${A.ip.replace(/\./g, '\\.')} dev eth0 srcport 0 0 dstport 8472 nolearning `));
  t.deepEqual(sh(lab, A, 'ip -4 -o addr show dev flannel.1').trim().split('\n').map((l) => l.split(/\s+/)[3]), [`${netAddr(ra.subnet)}/32`]);

  /* Peer entries: neighbour PERMANENT, FDB self permanent, onlink route; no cluster route. */
  await waitFor('A programs B', () => podRoutes(lab, A).length === 1);
  t.deepEqual(neighbours(lab, A), [`${netAddr(rb.subnet)} lladdr ${macB} PERMANENT`]);
  t.deepEqual(fdb(lab, A), [`${macB} dst ${B.ip} self permanent`]);
  t.deepEqual(podRoutes(lab, A), [`${rb.subnet} via ${netAddr(rb.subnet)} dev flannel.1 onlink`]);
  await waitFor('B programs A', () => podRoutes(lab, B).length === 1);
  t.deepEqual(neighbours(lab, B), [`${netAddr(ra.subnet)} lladdr ${macA} PERMANENT`]);
  t.deepEqual(fdb(lab, B), [`${macA} dst ${A.ip} self permanent`]);
  t.deepEqual(podRoutes(lab, B), [`${ra.subnet} via ${netAddr(ra.subnet)} dev flannel.1 onlink`]);

  /* iptables: flannel's chains (masquerade only with --ip-masq, forward rules by default). */
  const net: Cidr = parseCidr(NETWORK);
  const natA = sh(lab, A, 'iptables-save -t nat').split('\n');
  t.deepEqual(natA.filter((l) => l.startsWith('-A FLANNEL-POSTRTG ')), masqRules(net, cA, true).rules.map((r) => `-A FLANNEL-POSTRTG ${r}`));
  t.true(natA.includes('-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG'));
  for (const n of [A, B]) {
    const filter = sh(lab, n, 'iptables-save -t filter').split('\n');
    t.deepEqual(filter.filter((l) => l.startsWith('-A FLANNEL-FWD ')), forwardRules(net).rules.map((r) => `-A FLANNEL-FWD ${r}`));
    t.true(filter.includes('-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD'));
  }
  t.false(sh(lab, B, 'iptables-save -t nat').includes('FLANNEL-POSTRTG'), 'no masquerade chain without --ip-masq');

  /* Key log lines. */
  for (const re of [
    /Using interface with name eth0 and address 192\.168\.71\.1\n/,
    /Found network config - Backend type: vxlan\n/,
    new RegExp(`Wrote subnet file to ${a.subnetFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\n`),
    new RegExp(`Lease acquired: ${ra.subnet.replace(/\./g, '\\.')}\n`),
    /^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ main\.go:\d+\] /m,
  ]) t.regex(a.err(), re);

  /* Pods behind each node reach each other through the VXLAN overlay. */
  const pa = addPod(lab, A, ra.subnet, 1450);
  const pb = addPod(lab, B, rb.subnet, 1450);
  t.deepEqual(ping(lab.set, pa, podIp(rb.subnet)), { sent: 3, received: 3 });
  t.deepEqual(ping(lab.set, pb, podIp(ra.subnet)), { sent: 3, received: 3 });

  /* A lease of another backend type is ignored with flannel's warning. */
  etcd.ctl(['put', `${lab.prefix}/subnets/10.244.250.0-24`, '{"PublicIP":"192.168.71.9","PublicIPv6":null,"BackendType":"host-gw"}']);
  await waitFor('the non-vxlan warning', () => /ignoring non-vxlan v4Subnet\(10\.244\.250\.0\/24\) v6Subnet\(::\/0\): type=host-gw/.test(a.err()));
  t.false(sh(lab, A, 'ip route').includes('10.244.250.0'));
  etcd.ctl(['del', `${lab.prefix}/subnets/10.244.250.0-24`]);

  /* B's lease deleted: A removes B's neighbour, FDB entry and route; B shuts down (exit 0). */
  etcd.ctl(['del', keyOf(lab, rb.subnet)]);
  await waitFor('A to remove B', () => podRoutes(lab, A).length === 0 && neighbours(lab, A).length === 0 && fdb(lab, A).length === 0);
  t.deepEqual((await b.exited).code, 0);
  t.regex(b.err(), /Lease has been revoked\. Shutting down daemon\./);

  /* SIGTERM: A exits 0 and leaves the kernel state alone; restarted, it reuses its lease and flannel.1. */
  process.kill(a.child.pid as number, 'SIGTERM');
  t.is((await a.exited).code, 0);
  t.true(sh(lab, A, 'ip -4 -o addr show dev flannel.1').includes(`${netAddr(ra.subnet)}/32`));
  t.true(sh(lab, A, 'iptables-save -t nat').includes('-A FLANNEL-POSTRTG'));
  const a2 = startStock(t, lab, A, ['--ip-masq'], {}, a.subnetFile);
  const ra2 = await a2.ready;
  t.deepEqual(ra2, ra, 'same subnet, same VtepMAC');
  t.true(a2.err().includes(`Found lease (ip: ${ra.subnet} ipv6: ::/0) for current IP (192.168.71.1), reusing`));
  t.is(etcdValue(keyOf(lab, ra.subnet)), vxlanValue(A.ip, macA));
  t.not(etcdLeaseOf(keyOf(lab, ra.subnet)).id, leaseA.id, 'a fresh etcd lease');
  await waitFor('A2 to watch', () => /Waiting for 2\dh\d+m[\d.]+s to renew lease/.test(a2.err()));

  /* Watch fell behind the compaction horizon (etcd unreachable meanwhile): A re-lists and programs the new peer. */
  await stopProxy();
  const macC = '0e:00:5e:00:99:01';
  etcd.ctl(['put', `${lab.prefix}/subnets/10.244.99.0-24`, vxlanValue('192.168.71.3', macC)]);
  etcd.ctl(['put', `${lab.prefix}/unrelated`, 'x']);
  etcd.compact();
  await startProxy();
  await waitFor('A to re-list after compaction', () => /fell behind compaction horizon \(compact rev \d+\), re-listing and resuming/.test(a2.err()), 20_000);
  await waitFor('A to program the peer found by the re-list', () => podRoutes(lab, A).includes('10.244.99.0/24 via 10.244.99.0 dev flannel.1 onlink'));
  t.deepEqual(neighbours(lab, A), [`10.244.99.0 lladdr ${macC} PERMANENT`]);
  t.deepEqual(fdb(lab, A), [`${macC} dst 192.168.71.3 self permanent`]);
});

test.serial('vxlan DirectRouting: on-link peer gets a plain route, routed peer gets VXLAN; subnet.env reuse; an unparsable key drops every peer', async (t) => {
  const lab = makeLab(t, 'sfd');
  const A = lab.node('na', LAN1, 1);
  const B = lab.node('nb', LAN1, 2);
  const C = lab.node('nc', LAN2, 3);
  putConfig(lab, { Network: NETWORK, Backend: { Type: 'vxlan', DirectRouting: true } });
  /* Previous subnets in subnet.env are reused when free (keys then sort B, C, A). */
  const want = { A: '10.244.90.0/24', B: '10.244.100.0/24', C: '10.244.42.0/24' };
  const files = { A: path.join(tmp, `dr-a-${seq}.env`), B: path.join(tmp, `dr-b-${seq}.env`), C: path.join(tmp, `dr-c-${seq}.env`) };
  writePrevEnv(files.A, want.A);
  writePrevEnv(files.B, want.B);
  writePrevEnv(files.C, want.C);
  /* A starts last, so its first snapshot (in key order B, C, A) fixes the order of its peer list. */
  const b = startStock(t, lab, B, [], {}, files.B);
  const c = startStock(t, lab, C, [], {}, files.C);
  const [rb, rc] = await Promise.all([b.ready, c.ready]);
  const a = startStock(t, lab, A, [], {}, files.A);
  const ra = await a.ready;
  t.deepEqual([ra.subnet, rb.subnet, rc.subnet], [want.A, want.B, want.C]);
  t.regex(c.err(), /Found previously leased subnet \(10\.244\.42\.0\/24\), reusing/);
  t.regex(a.err(), /VXLAN config: VNI=1 Port=0 GBP=false Learning=false DirectRouting=true/);

  /* A: B is on-link → "<subnet> via <PublicIP>" only; C is behind the router → neighbour + FDB + onlink route. */
  await waitFor('A programs B and C', () => podRoutes(lab, A).length === 2);
  t.deepEqual(podRoutes(lab, A).sort(), [
    `${want.B} via ${B.ip} dev eth0`,
    `${want.C} via ${netAddr(want.C)} dev flannel.1 onlink`,
  ].sort());
  t.deepEqual(neighbours(lab, A), [`${netAddr(want.C)} lladdr ${rc.vtepMac} PERMANENT`]);
  t.deepEqual(fdb(lab, A), [`${rc.vtepMac} dst ${C.ip} self permanent`]);
  /* C: both peers are routed → VXLAN for both. */
  await waitFor('C programs A and B', () => podRoutes(lab, C).length === 2);
  t.deepEqual(podRoutes(lab, C).sort(), [
    `${want.A} via ${netAddr(want.A)} dev flannel.1 onlink`,
    `${want.B} via ${netAddr(want.B)} dev flannel.1 onlink`,
  ].sort());

  const pa = addPod(lab, A, want.A, 1450);
  const pb = addPod(lab, B, want.B, 1450);
  const pc = addPod(lab, C, want.C, 1450);
  t.deepEqual(ping(lab.set, pa, podIp(want.B)), { sent: 3, received: 3 }, 'A→B direct');
  t.deepEqual(ping(lab.set, pb, podIp(want.A)), { sent: 3, received: 3 }, 'B→A direct');
  t.deepEqual(ping(lab.set, pa, podIp(want.C)), { sent: 3, received: 3 }, 'A→C vxlan through the router');
  t.deepEqual(ping(lab.set, pc, podIp(want.B)), { sent: 3, received: 3 }, 'C→B vxlan through the router');

  /* flanneld quirk: a PUT under <prefix>/subnets that does not parse yields an empty snapshot, and
   * its LeaseWatcher then removes EVERY peer (the leases themselves are untouched). It also emits a
   * Removed for the node's own lease (last here), whose deletions fail and are retried for minutes. */
  etcd.ctl(['put', `${lab.prefix}/subnets/not-a-subnet`, '{}']);
  await waitFor('A to drop every peer', () => podRoutes(lab, A).length === 0 && neighbours(lab, A).length === 0 && fdb(lab, A).length === 0);
  await waitFor('the warning', () => a.err().includes('Watch of subnet leases failed because header revision != 0'));
  t.is(etcdValue(keyOf(lab, want.B)), vxlanValue(B.ip, rb.vtepMac as string), "B's lease is still in etcd");

  /* flannel.1 deleted under it: flanneld recreates it (new random MAC, same /32) but, in etcd
   * mode, does not update its lease, so peers keep the old VtepMAC. */
  sh(lab, C, 'ip link del flannel.1');
  await waitFor('C to recreate flannel.1', () => c.err().includes('VXLAN device flannel.1 recreated successfully'));
  t.regex(c.err(), /Interface flannel\.1 deleted\n[^]*vxlan device missing, attempting to recreate\.\.\.\n/);
  const relink = sh(lab, C, 'ip -d link show flannel.1');
  t.regex(relink, /vxlan id 1 local 192\.168\.72\.3 dev eth0 .*dstport 8472 nolearning /);
  t.false(relink.includes(`link/ether ${rc.vtepMac as string} `), 'a new MAC');
  t.true(sh(lab, C, 'ip -4 -o addr show dev flannel.1').includes(`${netAddr(want.C)}/32`));
  t.is(etcdValue(keyOf(lab, want.C)), vxlanValue(C.ip, rc.vtepMac as string), 'the lease still carries the old VtepMAC');
});

test.serial('host-gw: route via the peer PublicIP on the LAN, "Error adding route to" for a non-adjacent peer, removal', async (t) => {
  const lab = makeLab(t, 'sfh');
  const A = lab.node('na', LAN1, 1);
  const B = lab.node('nb', LAN1, 2);
  const C = lab.node('nc', LAN2, 3);
  putConfig(lab, { Network: NETWORK, Backend: { Type: 'host-gw' } });
  /* Started together, so distinct previous subnets (random picks could collide, as with flanneld). */
  const files = ['a', 'b', 'c'].map((n, i) => {
    const f = path.join(tmp, `hg-${n}-${seq}.env`);
    writePrevEnv(f, `10.244.${11 + i}.0/24`, 1500);
    return f;
  });
  const a = startStock(t, lab, A, [], {}, files[0]);
  const b = startStock(t, lab, B, [], {}, files[1]);
  const c = startStock(t, lab, C, [], {}, files[2]);
  const [ra, rb, rc] = await Promise.all([a.ready, b.ready, c.ready]);
  t.deepEqual([ra.subnet, rb.subnet, rc.subnet], ['10.244.11.0/24', '10.244.12.0/24', '10.244.13.0/24']);
  t.is(ra.vtepMac, null);
  t.is(etcdValue(keyOf(lab, ra.subnet)), `{"PublicIP":"${A.ip}","PublicIPv6":null,"BackendType":"host-gw"}`);
  t.is(etcdLeaseOf(keyOf(lab, rb.subnet)).granted, 86400);
  t.regex(fs.readFileSync(a.subnetFile, 'utf8'), /\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n$/);
  t.false(sh(lab, A, 'ip link').includes('flannel.'), 'no device with host-gw');

  await waitFor('A routes B', () => podRoutes(lab, A).length === 1);
  t.deepEqual(podRoutes(lab, A), [`${rb.subnet} via ${B.ip} dev eth0`]);
  await waitFor('A logs the route it cannot add', () => a.err().includes(`Error adding route to {Ifindex: `) && a.err().includes(`Dst: ${rc.subnet} `));
  t.regex(a.err(), new RegExp(`Subnet added: ${rc.subnet.replace(/\./g, '\\.')} via 192\\.168\\.72\\.3\n`));
  t.deepEqual(podRoutes(lab, C), [], 'C has no adjacent peer');

  const pa = addPod(lab, A, ra.subnet, 1500);
  const pb = addPod(lab, B, rb.subnet, 1500);
  t.deepEqual(ping(lab.set, pa, podIp(rb.subnet)), { sent: 3, received: 3 });
  t.deepEqual(ping(lab.set, pb, podIp(ra.subnet)), { sent: 3, received: 3 });

  etcd.ctl(['del', keyOf(lab, rb.subnet)]);
  await waitFor('A to remove the route to B', () => podRoutes(lab, A).length === 0);
  await waitFor('the removal log line', () => a.err().includes(`Subnet removed: ${rb.subnet}\n`));
  t.is((await b.exited).code, 0);
});

test.serial('lost creation race: the loser exits with "failed to acquire lease: subnet already exists", as flanneld', async (t) => {
  const lab = makeLab(t, 'sfr');
  const D = lab.node('nd', LAN1, 4);
  const E = lab.node('ne', LAN1, 5);
  putConfig(lab, { Network: NETWORK, Backend: { Type: 'vxlan' } });
  const fd = path.join(tmp, `race-d-${seq}.env`);
  const fe = path.join(tmp, `race-e-${seq}.env`);
  writePrevEnv(fd, '10.244.7.0/24');
  writePrevEnv(fe, '10.244.7.0/24');
  /* Both list the leases (10.244.7.0/24 free for both), then create after 1.5 s: one txn fails. */
  const env = { STOCK_FLANNEL_ACQUIRE_DELAY_MS: '1500' };
  const d = startStock(t, lab, D, [], env, fd);
  const e = startStock(t, lab, E, [], env, fe);
  const results = await Promise.allSettled([d.ready, e.ready]);
  const won = results.filter((r) => r.status === 'fulfilled');
  t.is(won.length, 1, 'exactly one node got the subnet');
  t.is((won[0] as PromiseFulfilledResult<Ready>).value.subnet, '10.244.7.0/24');
  const loser = results[0]?.status === 'fulfilled' ? e : d;
  const winner = loser === d ? E : D;
  t.is((await loser.exited).code, 1);
  t.regex(loser.err(), /E\d{4} [\d:.]+ +\d+ main\.go:\d+\] Error registering network: failed to acquire lease: subnet already exists\n/);
  t.is(etcdValue(keyOf(lab, '10.244.7.0/24')).includes(`"PublicIP":"${winner.ip}"`), true);
  t.is(etcd.ctl(['get', '--prefix', '--keys-only', `${lab.prefix}/subnets`]).split('\n').filter(Boolean).length, 1, 'no lease for the loser');
});
