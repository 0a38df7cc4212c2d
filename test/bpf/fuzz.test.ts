/**
 * Packet fuzzing through BPF_PROG_TEST_RUN: ≥ 100,000 random and mutated
 * frames per program, every verdict compared with an independent model of
 * the documented rules (test/helpers/oracle.ts), then the counters compared
 * with the verdicts.
 *
 * Inputs: valid VXLAN / flannel-UDP frames from known and unknown sources
 * around random inner packets; the same with structured faults (every VXLAN
 * flag bit, reserved bits, VNIs, outer IP options, fragment bits, outer
 * destinations inside and outside the cluster network, length fields that
 * disagree with the frame, random ethertypes, inner headers); random byte
 * and bit flips, truncations at random lengths, trailing bytes; plain random
 * bytes; and, for the send-side programs (and for steering, which sees
 * both), pod packets to every kind of destination, TTL, size, option and
 * fragment.
 *
 * Per run: the test-run syscall succeeds for every frame the kernel accepts
 * (frames it refuses — shorter than Ethernet, or than the IPv4/IPv6 header
 * for TC — must be EINVAL and are counted apart); the verdict and the output
 * bytes are the model's; a receive program never forwards (redirects or
 * strips) a frame that is not a well-formed tunnel packet from a known peer
 * with our VNI (a second, positively written predicate, not the model), and
 * the number of accepted tunnel packets equals the number of frames that
 * predicate admits. Per program: drop counters = DROP verdicts (packets and
 * bytes, per reason), rx counters = accepted frames, tx counters = redirects
 * to peers, fast-path counters = fast-path verdicts.
 *
 * Runs are batched: one preallocated native arena holds the options, the
 * context, the input and the output, and one koffi call per frame passes a
 * pointer to it (no per-call marshalling).
 *
 * Seed: random per run, printed; FUZZ_SEED=<n> reproduces a run, FUZZ_SCALE
 * (default 1) multiplies the number of frames.
 */
import test from 'ava';
import koffi from 'koffi';
import {
  Harness, NODE, PEER, PEER_UNRESOLVED, PEER_ROUTED, CNI_MAC, POD_MAC, testTopology, type HarnessOptions,
} from '../helpers/bpf-harness.js';
import {
  eth, ipv4, tcp, udp, icmpEcho, vxlanFrame, udpTunnelFrame, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, type TunnelOpts,
} from '../helpers/packets.js';
import {
  rxVerdict, devEgress, cniIngress, devIngress, uplinkEgress, uplinkIngress, uplinkXdp, harnessFib, kernelRefuses,
  TC_ACT_REDIRECT, TC_ACT_SHOT, XDP_DROP, XDP_PASS, TC_ACT_OK,
  type Model, type ModelPeer, type ModelMode, type Outcome,
} from '../helpers/oracle.js';
import { loadLibrary, structSizes } from '../../src/loader/libbpf.js';
import type { ProgramKey } from '../../src/loader/dataplane.js';
import { parseIPv4, parseCidr, formatIPv4, cidrContains } from '../../src/maps/addr.js';
import { CONFIG_FLAGS } from '../../src/maps/config.js';
import { DROP_REASONS, FAST_EVENTS, type DropReason, type FastEvent } from '../../src/maps/reasons.js';

test.before(() => { testTopology(); });

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);

/* ------------------------------------------------------------------ runner */

/**
 * BPF_PROG_TEST_RUN without per-call marshalling: struct bpf_test_run_opts
 * (libbpf 1.x layout), a struct __sk_buff, the input and the output live in
 * one native arena whose address is written into the options once.
 */
class BatchRunner {
  static readonly OPTS = 0;
  static readonly CTX = 128;
  static readonly CTX_LEN = 192; /* sizeof(struct __sk_buff) on 6.x */
  static readonly IN = 512;
  static readonly IN_MAX = 4096;
  static readonly OUT = BatchRunner.IN + BatchRunner.IN_MAX;
  static readonly OUT_MAX = 8192;
  static readonly SIZE = BatchRunner.OUT + BatchRunner.OUT_MAX;

  private readonly mem: unknown;
  private readonly base: bigint;
  private readonly buf: Buffer;
  private readonly fn: (fd: number, opts: unknown) => number;
  readonly input: Buffer;

  constructor() {
    if (structSizes.testRunOpts !== 80) throw new Error(`unexpected struct bpf_test_run_opts size ${structSizes.testRunOpts}`);
    const lib = loadLibrary('libbpf.so.1', 'install libbpf1');
    this.fn = lib.func('int bpf_prog_test_run_opts(int fd, void *opts)') as (fd: number, opts: unknown) => number;
    this.mem = koffi.alloc('uint8_t', BatchRunner.SIZE);
    this.base = koffi.address(this.mem);
    this.buf = Buffer.from(koffi.view(this.mem, BatchRunner.SIZE));
    this.buf.fill(0);
    this.input = this.buf.subarray(BatchRunner.IN, BatchRunner.IN + BatchRunner.IN_MAX);
  }

  /** Run `fd` on the first `len` bytes of `input`; returns 0 or -errno. */
  run(fd: number, len: number, ctx: Buffer | null): number {
    const o = this.buf;
    o.fill(0, 0, 80);
    o.writeBigUInt64LE(80n, 0); /* sz */
    o.writeBigUInt64LE(this.base + BigInt(BatchRunner.IN), 8); /* data_in */
    o.writeBigUInt64LE(this.base + BigInt(BatchRunner.OUT), 16); /* data_out */
    o.writeUInt32LE(len, 24); /* data_size_in */
    o.writeUInt32LE(BatchRunner.OUT_MAX, 28); /* data_size_out */
    if (ctx) {
      ctx.copy(o, BatchRunner.CTX);
      o.writeBigUInt64LE(this.base + BigInt(BatchRunner.CTX), 32); /* ctx_in */
      o.writeUInt32LE(ctx.length, 48); /* ctx_size_in */
    }
    o.writeInt32LE(1, 60); /* repeat */
    return this.fn(fd, this.mem);
  }

  get retval(): number { return this.buf.readUInt32LE(56); }
  /** The frame as the program left it (a view, valid until the next run). */
  get output(): Buffer {
    return this.buf.subarray(BatchRunner.OUT, BatchRunner.OUT + this.buf.readUInt32LE(28));
  }

  free(): void { koffi.free(this.mem); }
}

/* --------------------------------------------------------------------- rng */

/** sfc32: small, fast, seedable. */
class Rng {
  private a: number; private b: number; private c: number; private d: number;
  constructor(seed: number) {
    this.a = 0x9e3779b9; this.b = 0x243f6a88; this.c = 0xb7e15162; this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** [0, 1) */
  next(): number { return this.u32() / 4294967296; }
  /** [0, n) */
  int(n: number): number { return Math.floor(this.next() * n); }
  range(lo: number, hi: number): number { return lo + this.int(hi - lo + 1); }
  chance(p: number): boolean { return this.next() < p; }
  pick<T>(a: readonly T[]): T { return a[this.int(a.length)] as T; }
}

/** 64 KiB of random bytes to slice payloads from. */
function noisePool(g: Rng): Buffer {
  const b = Buffer.alloc(65536);
  for (let i = 0; i < b.length; i += 4) b.writeUInt32LE(g.u32(), i);
  return b;
}

/* ---------------------------------------------------------------- the world */

const mac = (s: string): Buffer => Buffer.from(s.split(':').map((h) => parseInt(h, 16)));
const VTEP = { 7: '0e:fb:00:00:00:02', 8: '0e:fb:00:00:00:03', 9: '0e:fb:00:00:00:05' } as const;

interface PeerDef { subnet: string; publicIp: string; vtepMac: string; id: number; mode: ModelMode }

const peer = (p: { publicIp: string; vtepMac: string }, subnet: string, id: number, mode: ModelMode): PeerDef =>
  ({ subnet, publicIp: p.publicIp, vtepMac: p.vtepMac, id, mode });

/** Send side: every mode, resolved / unresolved / behind a router, and a more specific prefix inside a peer subnet. */
const TX_PEERS_VXLAN: PeerDef[] = [
  peer(PEER, '10.244.2.0/24', 7, 'vxlan'),
  peer(PEER_UNRESOLVED, '10.244.3.0/24', 8, 'direct'),
  peer(PEER_ROUTED, '10.244.5.0/24', 9, 'direct'),
  peer(PEER, '10.244.4.0/24', 10, 'direct'),
  peer(PEER_ROUTED, '10.244.6.0/24', 11, 'vxlan'),
  peer(PEER_UNRESOLVED, '10.244.2.128/25', 12, 'vxlan'),
];
const TX_PEERS_HOSTGW: PeerDef[] = [
  peer(PEER, '10.244.2.0/24', 7, 'host-gw'),
  peer(PEER_UNRESOLVED, '10.244.3.0/24', 8, 'host-gw'),
  peer(PEER_ROUTED, '10.244.5.0/24', 9, 'host-gw'),
];
const TX_PEERS_UDP: PeerDef[] = [
  peer(PEER, '10.244.2.0/24', 7, 'udp'),
  peer(PEER_UNRESOLVED, '10.244.3.0/24', 8, 'udp'),
  peer(PEER_ROUTED, '10.244.5.0/24', 9, 'udp'),
];
/** Receive side: three tunnel sources. */
const rxPeers = (mode: ModelMode): PeerDef[] => [
  peer(PEER, '10.244.2.0/24', 7, mode),
  peer(PEER_UNRESOLVED, '10.244.3.0/24', 8, mode),
  peer(PEER_ROUTED, '10.244.5.0/24', 9, mode),
];

/** rx: tunnel traffic arriving on the uplink; tx: pod packets; mixed: both (steering sees either). */
type Family = 'rx' | 'tx' | 'mixed';

interface FuzzConfig {
  name: string;
  prog: ProgramKey;
  tc: boolean;
  harness: HarnessOptions;
  peers: PeerDef[];
  family: Family;
  oracle: (m: Model, f: Buffer) => Outcome;
  /** Run with a __sk_buff whose ifindex is the uplink (programs that compare with it). */
  uplinkCtx?: boolean;
  runs: number;
  /** A receive program: forwarding a frame that is not a well-formed tunnel packet is the worst bug. */
  receive?: boolean;
}

const N = (n: number): number => Math.max(1, Math.round(n * SCALE));

const CONFIGS: FuzzConfig[] = [
  { name: 'uplink_ingress (TC ingress), vxlan, tc engine, VNI 0xabcde port 4789', prog: 'uplinkIngress', tc: true,
    harness: { backend: 'vxlan', decap: 'tc', vni: 0xabcde, port: 4789 }, peers: rxPeers('vxlan'), family: 'rx', oracle: (m, f) => uplinkIngress(m, f), runs: N(100_000), receive: true },
  { name: 'uplink_ingress (TC ingress), vxlan, kernel engine', prog: 'uplinkIngress', tc: true,
    harness: { backend: 'vxlan', decap: 'kernel' }, peers: rxPeers('vxlan'), family: 'rx', oracle: (m, f) => uplinkIngress(m, f), runs: N(100_000), receive: true },
  { name: 'uplink_ingress (TC ingress), udp backend, tc engine', prog: 'uplinkIngress', tc: true,
    harness: { backend: 'udp', decap: 'tc' }, peers: rxPeers('udp'), family: 'rx', oracle: (m, f) => uplinkIngress(m, f), runs: N(50_000), receive: true },
  { name: 'uplink_ingress_fast (TC ingress, fast path), vxlan, tc engine', prog: 'uplinkIngressFast', tc: true,
    harness: { backend: 'vxlan', decap: 'tc', fastPath: true }, peers: rxPeers('vxlan'), family: 'rx', oracle: (m, f) => uplinkIngress(m, f, true), runs: N(100_000), receive: true },
  { name: 'uplink_ingress (TC ingress), host-gw backend, steering', prog: 'uplinkIngress', tc: true,
    harness: { backend: 'host-gw', steer: true }, peers: TX_PEERS_HOSTGW, family: 'mixed', oracle: (m, f) => uplinkIngress(m, f), runs: N(50_000), receive: true },
  { name: 'uplink_ingress (TC ingress), vxlan DirectRouting, tc engine, steering', prog: 'uplinkIngress', tc: true,
    harness: { backend: 'vxlan', decap: 'tc', steer: true }, peers: rxPeers('direct'), family: 'mixed', oracle: (m, f) => uplinkIngress(m, f), runs: N(50_000), receive: true },
  { name: 'uplink_ingress (TC ingress), vxlan, tc engine, --check-source-mac', prog: 'uplinkIngress', tc: true,
    harness: { backend: 'vxlan', decap: 'tc', checkSourceMac: true }, peers: rxPeers('vxlan'), family: 'rx', oracle: (m, f) => uplinkIngress(m, f), runs: N(100_000), receive: true },
  { name: 'uplink_xdp (XDP), udp backend, --check-source-mac', prog: 'uplinkXdp', tc: false,
    harness: { backend: 'udp', decap: 'xdp', checkSourceMac: true }, peers: rxPeers('udp'), family: 'rx', oracle: uplinkXdp, runs: N(100_000), receive: true },
  { name: 'uplink_xdp (XDP), vxlan', prog: 'uplinkXdp', tc: false,
    harness: { backend: 'vxlan', decap: 'xdp' }, peers: rxPeers('vxlan'), family: 'rx', oracle: uplinkXdp, runs: N(100_000), receive: true },
  { name: 'uplink_xdp (XDP), udp backend', prog: 'uplinkXdp', tc: false,
    harness: { backend: 'udp', decap: 'xdp' }, peers: rxPeers('udp'), family: 'rx', oracle: uplinkXdp, runs: N(50_000), receive: true },
  { name: 'dev_egress (TC egress), vxlan backend (vxlan + DirectRouting peers)', prog: 'devEgress', tc: true,
    harness: { backend: 'vxlan' }, peers: TX_PEERS_VXLAN, family: 'tx', oracle: devEgress, runs: N(100_000) },
  { name: 'dev_egress (TC egress), host-gw backend', prog: 'devEgress', tc: true,
    harness: { backend: 'host-gw' }, peers: TX_PEERS_HOSTGW, family: 'tx', oracle: devEgress, runs: N(50_000) },
  { name: 'dev_egress (TC egress), udp backend', prog: 'devEgress', tc: true,
    harness: { backend: 'udp' }, peers: TX_PEERS_UDP, family: 'tx', oracle: devEgress, runs: N(50_000) },
  { name: 'uplink_egress (TC egress), host-gw backend', prog: 'uplinkEgress', tc: true, uplinkCtx: true,
    harness: { backend: 'host-gw' }, peers: TX_PEERS_HOSTGW, family: 'tx', oracle: uplinkEgress, runs: N(100_000) },
  { name: 'cni_ingress (TC ingress on cni0, fast path), vxlan', prog: 'cniIngress', tc: true,
    harness: { backend: 'vxlan', fastPath: true }, peers: TX_PEERS_VXLAN, family: 'tx', oracle: cniIngress, runs: N(100_000) },
  { name: 'dev_ingress (TC ingress on the device, fast path), vxlan', prog: 'devIngress', tc: true,
    harness: { backend: 'vxlan', fastPath: true }, peers: rxPeers('vxlan'), family: 'tx', oracle: devIngress, runs: N(100_000) },
];

function modelOf(h: Harness, peers: PeerDef[]): Model {
  const c = h.config;
  return {
    node: {
      backend: c.backend, decap: c.decap, publicIp: c.publicIp, vni: c.vni, port: c.port,
      network: c.network, subnet: c.subnet, vtepMac: mac(c.vtepMac), devMac: mac(c.devMac), fastPath: c.cniIfindex !== 0,
      steer: (c.flags & CONFIG_FLAGS.steerDirect) !== 0, checkSourceMac: (c.flags & CONFIG_FLAGS.checkSourceMac) !== 0,
    },
    peers: peers.map((p): ModelPeer => ({ subnet: parseCidr(p.subnet), mode: p.mode, publicIp: parseIPv4(p.publicIp), vtepMac: mac(p.vtepMac), id: p.id })),
    fib: harnessFib({ uplinkMac: NODE.uplinkMac, peerMac: PEER.mac, cniMac: CNI_MAC, podMac: POD_MAC }),
  };
}

/* -------------------------------------------------------------- generators */

interface GenCtx {
  g: Rng;
  noise: Buffer;
  port: number;
  vni: number;
  backend: 'vxlan' | 'udp' | 'host-gw';
  /** The device MAC, when frames should often carry it as source (uplink egress fix-up). */
  devMac: string;
  /** How often a pod packet goes to the one resolved local pod (fast-path delivery). */
  localPod: number;
  /** Inner packets reused across frames (regenerated as the run goes). */
  inner: Buffer[];
}

const KNOWN_SOURCES = [PEER.publicIp, PEER_UNRESOLVED.publicIp, PEER_ROUTED.publicIp];
const ip = (n: number): string => formatIPv4(n >>> 0);

function noise(c: GenCtx, n: number): Buffer {
  const off = c.g.int(c.noise.length - n);
  return c.noise.subarray(off, off + n);
}

function payloadLen(c: GenCtx): number {
  const r = c.g.next();
  if (r < 0.4) return c.g.int(64);
  if (r < 0.85) return c.g.int(1400);
  if (r < 0.95) return c.g.range(1400, 2000); /* past the 1500-byte MTU */
  return c.g.range(2000, 3300); /* up to what BPF_PROG_TEST_RUN builds */
}

/** A source or destination address for a pod packet (destinations: half of them in peer subnets). */
function podAddr(c: GenCtx, dst = false): string {
  const g = c.g;
  switch (dst && g.chance(0.35) ? g.int(4) : g.int(12)) {
    case 0: case 1: return `10.244.2.${g.int(256)}`; /* peer subnet (and its /25 inside) */
    case 2: return `10.244.3.${g.int(256)}`;
    case 3: return `10.244.${g.pick([4, 5, 6])}.${g.int(256)}`;
    case 4: return g.pick(['10.244.1.5', '10.244.1.6', '10.244.1.1', '10.244.1.0', '10.244.1.255']);
    case 5: return `10.244.1.${g.int(256)}`; /* own subnet */
    case 6: return `10.244.${g.int(256)}.${g.int(256)}`; /* elsewhere in the cluster network */
    case 7: return g.pick(['8.8.8.8', NODE.publicIp, PEER.publicIp, '192.168.50.3', '10.9.0.5', '10.96.0.10']);
    default: return ip(g.u32());
  }
}

function ttl(c: GenCtx): number {
  const r = c.g.next();
  if (r < 0.15) return c.g.pick([0, 1, 2]);
  if (r < 0.3) return c.g.int(256);
  return c.g.pick([63, 64, 255]);
}

function fragOff(c: GenCtx, p: number): number {
  if (!c.g.chance(p)) return c.g.chance(0.5) ? 0x4000 : 0;
  return c.g.pick([0x2000, 0x6000, 0x2000 | c.g.range(1, 0x1fff), c.g.range(1, 0x1fff), 0x8000, c.g.int(0x10000)]);
}

function options(c: GenCtx): Buffer {
  return Buffer.from(noise(c, 4 * c.g.range(1, 10)));
}

/** An inner IPv4 packet (no Ethernet): TCP, UDP, ICMP or another protocol. */
function innerPacket(c: GenCtx, dst?: string): Buffer {
  const g = c.g;
  const src = podAddr(c);
  const d = dst ?? (c.g.chance(c.localPod) ? '10.244.1.5' : podAddr(c, true));
  const body = noise(c, payloadLen(c));
  const proto = g.pick([IPPROTO_TCP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDP, IPPROTO_ICMP, 47, 132, g.int(256)]);
  const l4 = proto === IPPROTO_TCP ? tcp({ sport: g.int(65536), dport: g.int(65536), src, dst: d }, body)
    : proto === IPPROTO_UDP ? udp({ sport: g.int(65536), dport: g.chance(0.1) ? c.port : g.int(65536), src, dst: d }, body)
      : proto === IPPROTO_ICMP ? icmpEcho({ type: g.pick([0, 8, 3, 11]) }, body) : Buffer.from(body);
  return ipv4({
    src, dst: d, proto, ttl: ttl(c), tos: g.int(256), id: g.int(65536), fragOff: fragOff(c, 0.05),
    options: g.chance(0.05) ? options(c) : undefined,
  }, l4);
}

function randomMac(c: GenCtx): string {
  return Array.from({ length: 6 }, () => c.g.int(256).toString(16).padStart(2, '0')).join(':');
}

function outerDst(c: GenCtx): string {
  const r = c.g.next();
  if (r < 0.72) return NODE.publicIp;
  if (r < 0.8) return ip(c.g.u32()); /* another address: the node's tunnel socket listens on all of them */
  if (r < 0.88) return c.g.pick(['10.244.1.1', '10.244.1.255']); /* local to the node, inside the cluster network */
  if (r < 0.95) return `10.244.1.${c.g.pick([2, 5, 9, 77, 254])}`; /* pod traffic (forwarded) */
  return `10.244.${c.g.range(2, 250)}.${c.g.int(256)}`; /* cluster network, no route here */
}

function outerSrc(c: GenCtx): string {
  const r = c.g.next();
  if (r < 0.75) return c.g.pick(KNOWN_SOURCES);
  if (r < 0.85) return c.g.pick(['192.168.50.4', '192.168.50.1', '10.9.0.6', '10.244.2.7', '0.0.0.0', '255.255.255.255']);
  return ip(c.g.u32());
}

function vxFlags(c: GenCtx): number {
  const r = c.g.next();
  if (r < 0.85) return 0x08000000;
  const bit = (1 << c.g.int(32)) >>> 0;
  if (r < 0.93) return (0x08000000 | bit) >>> 0; /* every flag and reserved bit, with I */
  if (r < 0.96) return bit;
  return c.g.chance(0.5) ? 0 : c.g.u32();
}

function vni(c: GenCtx): number {
  const r = c.g.next();
  if (r < 0.85) return c.vni;
  return c.g.pick([0, 1, 0xffffff, (c.vni + 1) & 0xffffff, (c.vni - 1) & 0xffffff, c.vni ^ 0x800000, c.g.int(0x1000000)]);
}

/** A tunnel frame as the given backend sends it, with each field occasionally wrong. */
function tunnelFrame(c: GenCtx, allValid: boolean): Buffer {
  const g = c.g;
  const backend = c.backend === 'udp' ? 'udp' : 'vxlan';
  const innerIp = g.chance(0.9) ? g.pick(c.inner) : innerPacket(c);
  const o: TunnelOpts = {
    outerSrc: allValid ? g.pick(KNOWN_SOURCES) : outerSrc(c),
    outerDst: allValid ? NODE.publicIp : outerDst(c),
    /* PEER is the on-link peer and the gateway of PEER_ROUTED: the right source MAC for every resolved source. */
    outerEthSrc: allValid || g.chance(0.8) ? PEER.mac : g.pick([randomMac(c), NODE.uplinkMac, POD_MAC]), outerEthDst: NODE.uplinkMac,
    sport: g.range(49152, 65535),
    dport: allValid || g.chance(0.92) ? c.port : g.pick([4789, 8472, 8285, 0, g.int(65536)]),
    outerTtl: g.range(1, 255),
  };
  if (backend === 'vxlan') {
    o.innerEthSrc = g.pick([VTEP[7], VTEP[8], VTEP[9], randomMac(c)]);
    o.innerEthDst = allValid || g.chance(0.88) ? NODE.vtepMac : g.pick(['ff:ff:ff:ff:ff:ff', VTEP[7], '0e:fb:00:00:00:00', randomMac(c)]);
    if (!allValid) {
      o.vni = vni(c);
      o.flags = vxFlags(c);
      o.reserved = g.chance(0.93) ? 0 : g.range(1, 255);
    } else {
      o.vni = c.vni;
    }
  }
  if (!allValid) {
    if (g.chance(0.05)) o.options = options(c);
    o.fragOff = fragOff(c, 0.08);
  }
  const f = backend === 'vxlan' ? vxlanFrame(o, innerIp) : udpTunnelFrame(o, innerIp);
  if (!allValid) structuredEdits(c, f, backend);
  return f;
}

/** Length fields that disagree with the frame, other ethertypes and versions, in place. */
function structuredEdits(c: GenCtx, f: Buffer, backend: 'vxlan' | 'udp'): void {
  const g = c.g;
  const ihl = (f[14]! & 0x0f) * 4;
  const udpOff = 14 + ihl;
  const set16 = (off: number, v: number): void => { if (off + 2 <= f.length) f.writeUInt16BE(v & 0xffff, off); };
  const lenValue = (cur: number): number => g.pick([0, 1, 7, 8, 19, 20, 27, 28, 0xffff, cur + g.range(1, 64), cur - g.range(1, 64), g.int(65536)]);
  if (g.chance(0.04)) set16(12, g.pick([0x86dd, 0x0806, 0x8100, 0x88a8, 0x0801, 0x0008, g.int(65536)]));
  if (g.chance(0.03)) f[14] = g.pick([0x44, 0x46, 0x4f, 0x40, 0x65, 0x55, g.int(256)]);
  if (g.chance(0.03)) f[23] = g.pick([IPPROTO_TCP, IPPROTO_ICMP, 0, 255, g.int(256)]);
  if (g.chance(0.05)) set16(16, lenValue(f.readUInt16BE(16)));
  if (g.chance(0.05)) set16(udpOff + 4, lenValue(f.length >= udpOff + 6 ? f.readUInt16BE(udpOff + 4) : 0));
  const inner = udpOff + 8 + (backend === 'vxlan' ? 22 : 0);
  if (backend === 'vxlan' && g.chance(0.04)) set16(inner - 2, g.pick([0x86dd, 0x0806, 0x8100, g.int(65536)]));
  if (g.chance(0.04) && inner < f.length) f[inner] = g.pick([0x45, 0x44, 0x46, 0x65, 0x40, 0x05, g.int(256)]);
  if (g.chance(0.05)) set16(inner + 2, lenValue(f.length >= inner + 4 ? f.readUInt16BE(inner + 2) : 0));
}

/** Random damage: byte and bit flips (mostly in the headers), 16-bit fields, truncation, trailing bytes. */
function mutate(c: GenCtx, frame: Buffer): Buffer {
  const g = c.g;
  let f = frame;
  const ops = g.range(1, 3);
  for (let k = 0; k < ops; k++) {
    if (f.length === 0) break;
    const pos = (): number => (g.chance(0.75) ? g.int(Math.min(f.length, 100)) : g.int(f.length));
    switch (g.int(6)) {
      case 0: for (let n = g.range(1, 8); n > 0; n--) f[pos()] = g.int(256); break;
      case 1: { const p = pos(); f[p] = f[p]! ^ (1 << g.int(8)); break; }
      case 2: { const p = pos() & ~1; if (p + 2 <= f.length) f.writeUInt16BE(g.pick([0, 0xffff, g.int(65536)]), p); break; }
      case 3: f = f.subarray(0, g.int(f.length + 1)); break;
      case 4: f = f.subarray(0, g.range(Math.min(f.length, 34), f.length)); break;
      default: f = Buffer.concat([f, noise(c, g.range(1, 64))]); break;
    }
  }
  return f;
}

/** Plain random bytes, sometimes shaped to get past the first checks. */
function randomFrame(c: GenCtx): Buffer {
  const g = c.g;
  const r = g.next();
  const len = r < 0.5 ? g.int(65) : r < 0.9 ? g.range(64, 300) : g.range(300, 1600);
  const f = Buffer.from(noise(c, len));
  if (len >= 14 && g.chance(0.6)) f.writeUInt16BE(0x0800, 12);
  if (len >= 15 && g.chance(0.5)) f[14] = g.chance(0.8) ? 0x45 : 0x40 | g.int(16);
  if (len >= 24 && g.chance(0.4)) f[23] = IPPROTO_UDP;
  if (len >= 26 && g.chance(0.3)) f.writeUInt16BE(0, 20);
  if (len >= 30 && g.chance(0.3)) f.writeUInt32BE(parseIPv4(g.pick(KNOWN_SOURCES)), 26);
  if (len >= 34 && g.chance(0.3)) f.writeUInt32BE(parseIPv4(g.chance(0.5) ? NODE.publicIp : podAddr(c)), 30);
  if (len >= 38 && g.chance(0.4)) f.writeUInt16BE(c.port, 36);
  return f;
}

/** A pod's packet (Ethernet/IPv4), with occasionally odd headers. */
function podFrame(c: GenCtx): Buffer {
  const g = c.g;
  const innerIp = g.chance(0.7) ? innerPacket(c) : g.pick(c.inner);
  const ethSrc = g.chance(c.devMac ? 0.5 : 0) ? c.devMac : g.pick([POD_MAC, CNI_MAC, NODE.vtepMac, randomMac(c)]);
  const f = eth({ src: ethSrc, dst: g.pick([CNI_MAC, NODE.vtepMac, c.devMac || POD_MAC, randomMac(c)]) }, innerIp);
  if (g.chance(0.04)) f.writeUInt16BE(g.pick([0x86dd, 0x0806, 0x8100, g.int(65536)]), 12);
  if (g.chance(0.04)) f[14] = g.pick([0x44, 0x40, 0x46, 0x4f, 0x65, g.int(256)]);
  if (g.chance(0.04)) f.writeUInt16BE(g.int(65536), 16);
  return f;
}

function rxFrame(c: GenCtx): Buffer {
  const r = c.g.next();
  if (r < 0.1) return tunnelFrame(c, true);
  if (r < 0.6) return tunnelFrame(c, false);
  if (r < 0.85) return mutate(c, tunnelFrame(c, c.g.chance(0.5)));
  if (r < 0.93) return randomFrame(c);
  return c.g.chance(0.7) ? podFrame(c) : mutate(c, podFrame(c));
}

function txFrame(c: GenCtx): Buffer {
  const r = c.g.next();
  if (r < 0.6) return podFrame(c);
  if (r < 0.85) return mutate(c, podFrame(c));
  if (r < 0.95) return randomFrame(c);
  return tunnelFrame(c, c.g.chance(0.5));
}

/* ------------------------------------------------------ independent invariant */

/**
 * A well-formed tunnel packet from a known peer with our VNI, checked
 * positively and independently of the oracle's classifier: the only kind of
 * frame a receive program may strip or redirect.
 */
function wellFormedTunnel(m: Model, f: Buffer): boolean {
  const n = m.node;
  if (f.length < 14 + 20 + 8 || f.readUInt16BE(12) !== 0x0800 || f[14] !== 0x45 || f[23] !== IPPROTO_UDP) return false;
  if ((f.readUInt16BE(20) & 0x3fff) !== 0 || f.readUInt16BE(36) !== n.port) return false;
  const src = f.readUInt32BE(26);
  if (!m.peers.some((p) => p.publicIp === src && p.mode !== 'host-gw')) return false;
  /* --check-source-mac in the harness: PEER is on-link and the gateway of PEER_ROUTED; PEER_UNRESOLVED cannot be checked. */
  if (n.checkSourceMac && src !== parseIPv4(PEER_UNRESOLVED.publicIp) && !f.subarray(6, 12).equals(mac(PEER.mac))) return false;
  const dst = f.readUInt32BE(30);
  if (cidrContains(n.network, dst) && m.fib.forwards(dst)) return false; /* pod traffic on the same port */
  const tot = f.readUInt16BE(16);
  const ulen = f.readUInt16BE(38);
  if (tot > f.length - 14 || ulen > tot - 20) return false;
  let iip = 42;
  if (n.backend === 'vxlan') {
    if (ulen < 50 || f.readUInt32BE(42) !== 0x08000000 || f.readUInt32BE(46) !== ((n.vni << 8) >>> 0)) return false;
    if (!f.subarray(50, 56).equals(n.vtepMac) || f.readUInt16BE(62) !== 0x0800) return false;
    iip = 64;
  }
  if (f.length < iip + 20 || f[iip]! >> 4 !== 4 || (f[iip]! & 15) < 5) return false;
  const itot = f.readUInt16BE(iip + 2);
  return itot >= (f[iip]! & 15) * 4 && itot <= ulen - 8 - (iip - 42);
}

/** With steering: a frame from a peer's pod subnet handed on unchanged but for its destination MAC (the device's). */
function steered(m: Model, f: Buffer, out: Buffer): boolean {
  if (f.length < 34 || f.readUInt16BE(12) !== 0x0800 || out.length !== f.length) return false;
  const src = f.readUInt32BE(26);
  return m.peers.some((p) => cidrContains(p.subnet, src)) && out.subarray(0, 6).equals(m.node.devMac) && out.subarray(6).equals(f.subarray(6));
}

/* ------------------------------------------------------------------- driver */

interface Tally {
  runs: number;
  refused: number;
  labels: Map<string, number>;
  drops: Map<DropReason, { packets: number; bytes: number }>;
  peers: Map<number, { txPackets: number; txBytes: number; rxPackets: number; rxBytes: number }>;
  fast: Map<FastEvent, { packets: number; bytes: number }>;
  failures: string[];
  mismatches: number;
  /** Frames the independent predicate calls well-formed tunnel packets from known peers. */
  wellFormed: number;
}

function hex(b: Buffer, max = 160): string {
  return b.subarray(0, max).toString('hex') + (b.length > max ? `…(${b.length} bytes)` : '');
}

function compare(exp: Outcome, input: Buffer, out: Buffer): string | null {
  if (exp.output === null) {
    return out.equals(input) ? null : 'output differs from the input (expected untouched)';
  }
  if (out.length !== exp.output.length) return `output is ${out.length} bytes, expected ${exp.output.length}`;
  const want = exp.wild ? Buffer.from(exp.output) : exp.output;
  for (const [off, len] of exp.wild ?? []) out.copy(want, off, off, off + len);
  if (!out.equals(want)) {
    let i = 0;
    while (i < out.length && out[i] === want[i]) i++;
    return `output differs at byte ${i}: got ${hex(out.subarray(i, i + 24))}, expected ${hex(want.subarray(i, i + 24))}`;
  }
  for (const check of exp.checks ?? []) {
    const p = check(out);
    if (p) return p;
  }
  return null;
}

function fuzz(cfg: FuzzConfig, seed: number, h: Harness): { tally: Tally; ms: number } {
  for (const p of cfg.peers) {
    h.peer({ subnet: p.subnet, publicIp: p.publicIp, vtepMac: p.vtepMac, id: p.id }, p.mode);
  }
  const model = modelOf(h, cfg.peers);
  const g = new Rng(seed);
  const c: GenCtx = {
    g, noise: noisePool(g), port: h.config.port, vni: h.config.vni, backend: h.config.backend,
    devMac: cfg.prog === 'uplinkEgress' ? h.config.devMac : '', localPod: cfg.prog === 'devIngress' ? 0.4 : 0.05, inner: [],
  };
  for (let i = 0; i < 256; i++) c.inner.push(innerPacket(c, g.chance(0.3) ? '10.244.1.5' : undefined));
  const ctx = cfg.uplinkCtx ? Buffer.alloc(BatchRunner.CTX_LEN) : null;
  ctx?.writeUInt32LE(testTopology().uplinkIfindex, 40);
  const fd = h.dp.program(cfg.prog).fd;
  const runner = new BatchRunner();
  const tally: Tally = { runs: 0, refused: 0, labels: new Map(), drops: new Map(), peers: new Map(), fast: new Map(), failures: [], mismatches: 0, wellFormed: 0 };
  const fail = (i: number, frame: Buffer, problem: string): void => {
    tally.mismatches++;
    if (tally.failures.length < 6) tally.failures.push(`frame #${i} (FUZZ_SEED=${SEED}): ${problem}\n    frame ${hex(frame)}`);
  };
  const gen = cfg.family === 'rx' ? rxFrame : cfg.family === 'tx' ? txFrame : (x: GenCtx) => (x.g.chance(0.5) ? rxFrame(x) : txFrame(x));
  const started = performance.now();
  try {
    for (let i = 0; i < cfg.runs; i++) {
      if ((i & 15) === 0) c.inner[g.int(c.inner.length)] = innerPacket(c, g.chance(0.3) ? '10.244.1.5' : undefined);
      let frame = gen(c);
      if (frame.length > BatchRunner.IN_MAX) frame = frame.subarray(0, BatchRunner.IN_MAX);
      frame.copy(runner.input);
      const rc = runner.run(fd, frame.length, ctx);
      tally.runs++;
      const refuse = kernelRefuses(frame, cfg.tc);
      if (rc !== 0) {
        if (refuse && rc === -22) { tally.refused++; continue; }
        fail(i, frame, `BPF_PROG_TEST_RUN failed with ${rc}${refuse ? ' (expected EINVAL)' : ' (the kernel should accept this frame)'}`);
        continue;
      }
      if (refuse) { fail(i, frame, 'the kernel ran a frame it refuses (EINVAL expected)'); continue; }
      const exp = cfg.oracle(model, frame);
      const out = runner.output;
      const retval = runner.retval;
      if (retval !== exp.retval) {
        fail(i, frame, `verdict ${retval}, model says ${exp.retval} (${exp.label})`);
        continue;
      }
      const problem = compare(exp, frame, out);
      if (problem) { fail(i, frame, `${exp.label}: ${problem}`); continue; }
      if (cfg.receive) {
        if (model.node.backend !== 'host-gw' && wellFormedTunnel(model, frame)) tally.wellFormed++;
        const forwarded = cfg.tc ? retval === TC_ACT_REDIRECT : retval === XDP_PASS && !out.equals(frame);
        if (forwarded && !wellFormedTunnel(model, frame) && !(model.node.steer && steered(model, frame, out))) {
          fail(i, frame, 'a frame that is not a well-formed tunnel packet from a known peer was forwarded');
        }
      }
      tally.labels.set(exp.label, (tally.labels.get(exp.label) ?? 0) + 1);
      const e = exp.effects;
      if (e.drop) {
        const d = tally.drops.get(e.drop.reason) ?? { packets: 0, bytes: 0 };
        d.packets++; d.bytes += e.drop.bytes;
        tally.drops.set(e.drop.reason, d);
      }
      for (const [dir, v] of [['rx', e.rx], ['tx', e.tx]] as const) {
        if (!v) continue;
        const s = tally.peers.get(v.peer) ?? { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 };
        if (dir === 'rx') { s.rxPackets++; s.rxBytes += v.bytes; } else { s.txPackets++; s.txBytes += v.bytes; }
        tally.peers.set(v.peer, s);
      }
      for (const ev of e.fast ?? []) {
        const s = tally.fast.get(ev.event) ?? { packets: 0, bytes: 0 };
        s.packets++; s.bytes += ev.bytes;
        tally.fast.set(ev.event, s);
      }
    }
  } finally {
    runner.free();
  }
  return { tally, ms: performance.now() - started };
}

function summary(cfg: FuzzConfig, t: Tally, ms: number): string {
  const labels = [...t.labels.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
  return `${cfg.name}: ${t.runs} runs in ${(ms / 1000).toFixed(2)} s (${((ms * 1000) / t.runs).toFixed(1)} µs/run); `
    + `refused by the kernel ${t.refused}; ${labels}`;
}

for (const [index, cfg] of CONFIGS.entries()) {
  test(`fuzz ${cfg.name}: ${cfg.runs} frames, every verdict as the model says, counters = verdicts`, (t) => {
    const seed = (SEED + index * 0x9e3779b9) >>> 0;
    const h = new Harness(cfg.harness);
    t.teardown(() => h.close());
    const { tally, ms } = fuzz(cfg, seed, h);
    t.log(summary(cfg, tally, ms));
    t.log(`seed ${SEED} (config seed ${seed}); reproduce with FUZZ_SEED=${SEED}`);
    t.deepEqual(tally.failures, [], `${tally.mismatches} of ${tally.runs} frames disagree with the model`);
    t.true(tally.runs - tally.refused > 0.9 * cfg.runs, 'most frames reach the program');

    /* Counters against verdicts. */
    const drops = h.maps.readDrops();
    let dropVerdicts = 0;
    let dropCounted = 0;
    for (const reason of DROP_REASONS) {
      const want = tally.drops.get(reason) ?? { packets: 0, bytes: 0 };
      dropVerdicts += want.packets;
      dropCounted += Number(drops[reason].packets);
      t.deepEqual({ packets: Number(drops[reason].packets), bytes: Number(drops[reason].bytes) }, want, `drop counter ${reason}`);
    }
    t.is(dropCounted, dropVerdicts, 'sum of the drop counters = number of drop verdicts');
    for (const p of cfg.peers) {
      const want = tally.peers.get(p.id) ?? { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 };
      t.deepEqual(h.stats(p.id), want, `peer ${p.id} counters`);
    }
    const fast = h.maps.readFastStats();
    for (const ev of FAST_EVENTS) {
      const want = tally.fast.get(ev) ?? { packets: 0, bytes: 0 };
      t.deepEqual({ packets: Number(fast[ev].packets), bytes: Number(fast[ev].bytes) }, want, `fast-path counter ${ev}`);
    }
    const accepted = [...tally.labels.entries()].filter(([k]) => k.startsWith('accept')).reduce((s, [, v]) => s + v, 0);
    const rx = [...tally.peers.values()].reduce((s, v) => s + v.rxPackets, 0);
    t.is(rx, accepted, 'rx packet counters = accepted verdicts');
    if (cfg.receive) {
      const tunnels = [...tally.labels.entries()].filter(([k]) => k.startsWith('accept') && !k.startsWith('accept:steer')).reduce((s, [, v]) => s + v, 0);
      t.is(tunnels, tally.wellFormed, 'accepted tunnel packets = frames the independent well-formedness predicate admits');
    }
    t.log(`drops counted ${dropCounted} (${[...tally.drops.entries()].map(([k, v]) => `${k} ${v.packets}`).join(', ') || 'none'}); `
      + `rx ${rx}; tx ${[...tally.peers.values()].reduce((s, v) => s + v.txPackets, 0)}`);
  });
}

/* ------------------------------------------------- regressions found by fuzzing */

const SPOOFER = '203.0.113.9';
const localInner = (): Buffer => ipv4({ src: '10.244.2.9', dst: '10.244.1.5', proto: IPPROTO_ICMP }, icmpEcho({}, Buffer.alloc(32, 7)));

/*
 * The kernel's VXLAN socket listens on every local address, including the
 * node's addresses inside the cluster network (cni0's gateway 10.244.X.1, the
 * device's 10.244.X.0, the subnet broadcast): a spoofed VXLAN packet to one of
 * them must get the source check like any other, not pass as "pod traffic".
 */
for (const [backend, decap, prog] of [['vxlan', 'kernel', 'uplinkIngress'], ['vxlan', 'tc', 'uplinkIngress'], ['vxlan', 'xdp', 'uplinkXdp'], ['udp', 'tc', 'uplinkIngress']] as const) {
  test(`${backend}/${decap}: a spoofed tunnel packet to a node-local address in the cluster network is refused (unknown_source)`, (t) => {
    const h = new Harness({ backend, decap }).peer(PEER, backend === 'vxlan' ? 'vxlan' : 'udp');
    t.teardown(() => h.close());
    const build = backend === 'vxlan' ? vxlanFrame : udpTunnelFrame;
    for (const dst of ['10.244.1.1', '10.244.1.255']) {
      const f = build({ outerSrc: SPOOFER, outerDst: dst, innerEthDst: NODE.vtepMac }, localInner());
      const r = h.run(prog, f);
      t.is(r.retval, prog === 'uplinkXdp' ? XDP_DROP : TC_ACT_SHOT, `to ${dst}`);
    }
    t.deepEqual(h.nonZeroDrops(), { unknown_source: 2 });
    /* Pod traffic to the same port (DirectRouting carries it unencapsulated) still passes. */
    const pod = build({ outerSrc: '10.244.2.7', outerDst: '10.244.1.9' }, localInner());
    t.is(h.run(prog, pod).retval, prog === 'uplinkXdp' ? XDP_PASS : TC_ACT_OK);
    t.deepEqual(h.nonZeroDrops(), { unknown_source: 2 });
  });
}

test('the fuzz model agrees with the hand-written verdicts of ingress.test.ts on a few anchors', (t) => {
  const h = new Harness({ backend: 'vxlan', decap: 'tc' }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const m = modelOf(h, [peer(PEER, '10.244.2.0/24', 7, 'vxlan')]);
  const inner = localInner();
  const from = { outerSrc: PEER.publicIp, outerDst: NODE.publicIp, innerEthDst: NODE.vtepMac };
  t.is(rxVerdict(m, vxlanFrame(from, inner)).kind, 'tunnel');
  t.deepEqual(rxVerdict(m, vxlanFrame({ ...from, vni: 2 }, inner)), { kind: 'drop', reason: 'wrong_vni' });
  t.deepEqual(rxVerdict(m, vxlanFrame({ ...from, flags: 0 }, inner)), { kind: 'drop', reason: 'bad_flags' });
  t.deepEqual(rxVerdict(m, vxlanFrame({ ...from, fragOff: 0x00b9 }, inner)), { kind: 'pass' });
  t.deepEqual(rxVerdict(m, vxlanFrame({ ...from, outerSrc: '192.168.50.99' }, inner)), { kind: 'drop', reason: 'unknown_source' });
  t.deepEqual(rxVerdict(m, vxlanFrame({ ...from, outerDst: '10.244.1.1' }, inner)).kind, 'tunnel', 'node-local cluster address: ours');
  t.deepEqual(rxVerdict(m, vxlanFrame({ ...from, outerDst: '10.244.1.9' }, inner)), { kind: 'pass' }, 'a pod: forwarded, not ours');
});
