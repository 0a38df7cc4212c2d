/**
 * An independent model of the dataplane's verdicts, for the packet fuzzer
 * (test/bpf/fuzz.test.ts). It is written from the documented rules —
 * DESIGN.md §1–§3, the contract comments of bpf/lib/*.h, the drop reasons of
 * fbpf_shared.h and the verdicts asserted in test/bpf/{ingress,egress,
 * malformed,fastpath}.test.ts — and never calls into the C code or its
 * loader: every verdict the programs return is compared with what this model
 * predicts, byte for byte where the output is determined.
 *
 * The receive classifier (fbpf_rx_classify):
 *   a frame is a tunnel packet ("ours") when it is Ethernet/IPv4 (version 4,
 *   IHL ≥ 5) carrying UDP, not a later fragment, with the whole UDP header
 *   present, to our tunnel port, and addressed to a destination the node
 *   would not forward: outside the cluster network, or inside it but local
 *   to the node (cni0's gateway, the device's address, a broadcast) — those
 *   reach the kernel's tunnel socket, which listens on every address.
 *   Anything else passes untouched. A tunnel packet is then checked in a
 *   fixed order and the first failure is its drop reason: source is a
 *   known peer (unknown_source), with --check-source-mac the outer source
 *   MAC is our resolved next hop's towards it (source_mac; unresolved: not
 *   checked), no outer IP options (ip_options), not a
 *   first fragment (fragment), outer total length within the frame and ≥ 28,
 *   UDP length within the IP payload and ≥ 8 (truncated); VXLAN: UDP length
 *   holds VXLAN + inner Ethernet + inner IPv4 (truncated), flags exactly
 *   the I flag and the reserved VNI byte zero (bad_flags), VNI ours
 *   (wrong_vni), inner ethertype IPv4 (inner_not_ipv4), inner destination
 *   MAC our VtepMAC (inner_dst_mac), inner version 4 / IHL ≥ 5
 *   (inner_not_ipv4), inner total length between its header length and the
 *   tunnel payload (truncated); UDP backend: the payload holds an IPv4
 *   header (truncated), version 4 / IHL ≥ 5 (inner_not_ipv4), inner total
 *   length between its header length and the UDP payload (truncated).
 *
 * The test namespace's routing (test/helpers/bpf-harness.ts) is modelled by
 * HARNESS_FIB: which next hops bpf_fib_lookup resolves, and the MTU rule it
 * applies to an skb (len ≤ MTU + 14 + 4, see is_skb_forwardable).
 */
import { parseIPv4, parseCidr, cidrContains, type Cidr } from '../../src/maps/addr.js';
import type { DropReason, FastEvent } from '../../src/maps/reasons.js';

export const ETH_HLEN = 14;
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;
export const XDP_DROP = 1;
export const XDP_PASS = 2;
export const XDP_META_MAGIC = 0xfb9f0001;
const VXLAN_FLAG_I = 0x08000000;
/** Bytes removed after the outer Ethernet header. */
const VXLAN_STRIP = 50;
const UDP_STRIP = 28;

export type ModelMode = 'vxlan' | 'direct' | 'host-gw' | 'udp';

export interface ModelPeer {
  subnet: Cidr;
  mode: ModelMode;
  publicIp: number;
  vtepMac: Buffer;
  id: number;
}

export interface ModelNode {
  backend: 'vxlan' | 'udp' | 'host-gw';
  decap: 'tc' | 'kernel' | 'xdp';
  publicIp: number;
  vni: number;
  port: number;
  network: Cidr;
  subnet: Cidr;
  vtepMac: Buffer;
  devMac: Buffer;
  fastPath: boolean;
  /** FBPF_F_STEER_DIRECT: plain packets from peer subnets are handed to the device. */
  steer: boolean;
  /** FBPF_F_CHECK_SRC_MAC: a peer's tunnel packets must come from our next hop's MAC towards it. */
  checkSourceMac?: boolean;
}

/** What bpf_fib_lookup answers for the node's namespace. */
export type FibAnswer =
  | { rc: 'resolved'; dmac: Buffer; smac: Buffer; gateway: boolean }
  | { rc: 'no_neigh'; gateway: boolean }
  | { rc: 'failed' };

export interface ModelFib {
  /** Output lookup towards `dst` on the uplink, for an skb of `skbLen` bytes. */
  uplink(dst: number, skbLen: number): FibAnswer;
  /** Output lookup towards `dst` on cni0 (fast-path delivery), for an skb of `skbLen` bytes. */
  cni(dst: number, skbLen: number): FibAnswer;
  /** Would the node forward a packet to `dst` that arrived on the uplink (a unicast route through a device)? */
  forwards(dst: number): boolean;
}

export interface Model {
  node: ModelNode;
  peers: ModelPeer[];
  fib: ModelFib;
}

/** Counter changes one run causes. */
export interface Effects {
  drop?: { reason: DropReason; bytes: number };
  rx?: { peer: number; bytes: number };
  tx?: { peer: number; bytes: number };
  fast?: Array<{ event: FastEvent; bytes: number }>;
}

/**
 * A predicted outcome. `output` null = the frame comes back untouched;
 * otherwise the exact bytes, except `wild` ranges (kernel-chosen: outer IP id
 * and checksum, outer UDP source port) which are checked by `checks`.
 */
export interface Outcome {
  retval: number;
  /** Short label for the statistics: pass, drop:<reason>, accept, tx, ttl, fast_rx, fixup… */
  label: string;
  output: Buffer | null;
  wild?: Array<[number, number]>;
  /** Extra checks on the actual output: return a problem or null. */
  checks?: Array<(out: Buffer) => string | null>;
  effects: Effects;
}

/* ------------------------------------------------------------------ helpers */

const u16 = (b: Buffer, o: number): number => (b[o]! << 8) | b[o + 1]!;
const u32 = (b: Buffer, o: number): number => b.readUInt32BE(o);

function macAt(b: Buffer, o: number, mac: Buffer): boolean {
  for (let i = 0; i < 6; i++) if (b[o + i] !== mac[i]) return false;
  return true;
}

/** Longest-prefix match over the peers (the peers map is an LPM trie). */
export function lpm(peers: readonly ModelPeer[], addr: number): ModelPeer | undefined {
  let best: ModelPeer | undefined;
  for (const p of peers) {
    if (cidrContains(p.subnet, addr) && (!best || p.subnet.prefix > best.subnet.prefix)) best = p;
  }
  return best;
}

/** A copy of an Ethernet/IPv4 frame with the IP TTL lowered by one and the checksum patched as the kernel's ip_decrease_ttl. */
export function decTtl(frame: Buffer): Buffer {
  const b = Buffer.from(frame);
  /* ip_decrease_ttl works on the checksum as loaded by a little-endian CPU:
     check += htons(0x0100); check += (check >= 0xffff). */
  let raw = b.readUInt16LE(ETH_HLEN + 10) + 0x0001;
  raw = (raw + (raw >= 0xffff ? 1 : 0)) & 0xffff;
  b.writeUInt16LE(raw, ETH_HLEN + 10);
  b[ETH_HLEN + 8] = (b[ETH_HLEN + 8]! - 1) & 0xff;
  return b;
}

export function ipChecksumOk(b: Buffer, off: number, len: number): boolean {
  let sum = 0;
  for (let i = 0; i < len; i += 2) sum += u16(b, off + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

/**
 * Does the kernel refuse to build this frame for BPF_PROG_TEST_RUN (EINVAL)?
 * Every frame needs an Ethernet header; an skb with an IPv4 / IPv6 ethertype
 * also needs that network header.
 */
export function kernelRefuses(frame: Buffer, tc: boolean): boolean {
  if (frame.length < ETH_HLEN) return true;
  if (!tc) return false;
  const type = u16(frame, 12);
  if (type === 0x0800 && frame.length < ETH_HLEN + 20) return true;
  if (type === 0x86dd && frame.length < ETH_HLEN + 40) return true;
  return false;
}

/* --------------------------------------------------------- receive classifier */

export type RxVerdict =
  | { kind: 'pass' }
  | { kind: 'drop'; reason: DropReason }
  | { kind: 'tunnel'; peer: number; strip: number; innerLen: number };

const drop = (reason: DropReason): RxVerdict => ({ kind: 'drop', reason });

/** The receive verdict for a frame (see the file comment). */
export function rxVerdict(m: Model, f: Buffer): RxVerdict {
  const { node } = m;
  const len = f.length;
  if (node.backend !== 'vxlan' && node.backend !== 'udp') return { kind: 'pass' };
  if (len < ETH_HLEN + 20 || u16(f, 12) !== 0x0800) return { kind: 'pass' };
  const ip = ETH_HLEN;
  const version = f[ip]! >> 4;
  const ihl = f[ip]! & 0x0f;
  if (version !== 4 || ihl < 5) return { kind: 'pass' };
  if (f[ip + 9] !== 17) return { kind: 'pass' };
  const fragField = u16(f, ip + 6);
  if (fragField & 0x1fff) return { kind: 'pass' }; /* a later fragment has no UDP header */
  const udp = ip + ihl * 4;
  if (len < udp + 8) return { kind: 'pass' };
  if (u16(f, udp + 2) !== node.port) return { kind: 'pass' };
  const daddr = u32(f, ip + 16);
  if (cidrContains(node.network, daddr) && m.fib.forwards(daddr)) return { kind: 'pass' }; /* pod traffic */

  const saddr = u32(f, ip + 12);
  const src = m.peers.find((p) => p.mode !== 'host-gw' && p.publicIp === saddr);
  if (!src) return drop('unknown_source');
  if (node.checkSourceMac) {
    /* Output lookup towards the source; nothing to compare (fail open) unless it resolves. */
    const nh = m.fib.uplink(saddr, 0);
    if (nh.rc === 'resolved' && !nh.dmac.equals(f.subarray(6, 12))) return drop('source_mac');
  }
  if (ihl !== 5) return drop('ip_options');
  if (fragField & 0x2000) return drop('fragment');
  const totLen = u16(f, ip + 2);
  const udpLen = u16(f, udp + 4);
  if (totLen + ETH_HLEN > len || totLen < 28) return drop('truncated');
  if (udpLen < 8 || udpLen > totLen - 20) return drop('truncated');

  if (node.backend === 'vxlan') {
    const vx = udp + 8;
    if (len < vx + 8 || udpLen < 8 + 8 + 14 + 20) return drop('truncated');
    const flags = u32(f, vx);
    const vniWord = u32(f, vx + 4);
    if (flags !== VXLAN_FLAG_I || (vniWord & 0xff) !== 0) return drop('bad_flags');
    if (vniWord >>> 8 !== node.vni) return drop('wrong_vni');
    const ieth = vx + 8;
    if (len < ieth + ETH_HLEN) return drop('truncated');
    if (u16(f, ieth + 12) !== 0x0800) return drop('inner_not_ipv4');
    if (!macAt(f, ieth, node.vtepMac)) return drop('inner_dst_mac');
    const iip = ieth + ETH_HLEN;
    if (len < iip + 20) return drop('truncated');
    if (f[iip]! >> 4 !== 4 || (f[iip]! & 0x0f) < 5) return drop('inner_not_ipv4');
    const innerLen = u16(f, iip + 2);
    if (innerLen < (f[iip]! & 0x0f) * 4 || innerLen > udpLen - 8 - 8 - 14) return drop('truncated');
    return { kind: 'tunnel', peer: src.id, strip: VXLAN_STRIP, innerLen };
  }
  const iip = udp + 8;
  if (len < iip + 20 || udpLen < 8 + 20) return drop('truncated');
  if (f[iip]! >> 4 !== 4 || (f[iip]! & 0x0f) < 5) return drop('inner_not_ipv4');
  const innerLen = u16(f, iip + 2);
  if (innerLen < (f[iip]! & 0x0f) * 4 || innerLen > udpLen - 8) return drop('truncated');
  return { kind: 'tunnel', peer: src.id, strip: UDP_STRIP, innerLen };
}

/** The frame a decapsulation leaves: VXLAN → the inner Ethernet frame; UDP → outer Ethernet (dst = device MAC) + inner IP. */
export function decapsulated(m: Model, f: Buffer, strip: number): Buffer {
  if (strip === VXLAN_STRIP) return Buffer.from(f.subarray(VXLAN_STRIP)); /* 14 + 36: the inner Ethernet header on */
  const out = Buffer.concat([f.subarray(0, ETH_HLEN), f.subarray(ETH_HLEN + UDP_STRIP)]);
  m.node.devMac.copy(out, 0);
  return out;
}

/* ------------------------------------------------------------- the programs */

const untouched = (retval: number, label: string, effects: Effects = {}): Outcome => ({ retval, label, output: null, effects });

/** Ethernet + IPv4 with a readable base header (fbpf_parse_ipv4). */
function isIPv4Frame(f: Buffer): boolean {
  return f.length >= ETH_HLEN + 20 && u16(f, 12) === 0x0800 && f[ETH_HLEN]! >> 4 === 4;
}

/** May conntrack be asked about this packet (fbpf_ct_tracked ≠ UNKNOWN)? Conntrack in the test namespace tracks nothing. */
function ctAnswerable(f: Buffer): boolean {
  const proto = f[ETH_HLEN + 9];
  if (proto !== 6 && proto !== 17) return false;
  if (u16(f, ETH_HLEN + 6) & 0x3fff) return false;
  if ((f[ETH_HLEN]! & 0x0f) !== 5) return false;
  return f.length >= ETH_HLEN + 20 + 4;
}

/**
 * Fast-path delivery of an Ethernet/IPv4 frame to a local pod (lib/deliver.h):
 * null = not delivered (the caller decides), with the events it counted.
 */
function fastDeliver(m: Model, f: Buffer, fast: Array<{ event: FastEvent; bytes: number }>): Buffer | null {
  if (!m.node.fastPath) return null;
  if (!isIPv4Frame(f)) return null;
  const daddr = u32(f, ETH_HLEN + 16);
  if (!cidrContains(m.node.subnet, daddr)) return null;
  const notEligible = (): null => { fast.push({ event: 'not_eligible', bytes: f.length }); return null; };
  if (f[ETH_HLEN + 8]! <= 1) return notEligible();
  if (!ctAnswerable(f)) return notEligible();
  const fib = m.fib.cni(daddr, f.length);
  if (fib.rc !== 'resolved') return notEligible();
  const out = decTtl(f);
  fib.dmac.copy(out, 0);
  fib.smac.copy(out, 6);
  fast.push({ event: 'fast_rx', bytes: f.length - ETH_HLEN });
  return out;
}

/** Outer UDP source port check: a flow hash in 49152..65535. */
const sportCheck = (off: number) => (out: Buffer): string | null => {
  const p = u16(out, off);
  return p >= 49152 && p <= 65535 ? null : `outer UDP source port ${p} outside 49152..65535`;
};
const outerCsumCheck = (out: Buffer): string | null =>
  (ipChecksumOk(out, ETH_HLEN, 20) ? null : 'outer IPv4 checksum invalid');

/** fbpf_send_to_peer: the frame (TTL > 1) goes to `peer`. Returns the outcome (always a redirect). */
function sendToPeer(m: Model, f: Buffer, peer: ModelPeer, label: string, fast: Effects['fast']): Outcome {
  const { node } = m;
  const inner = decTtl(f); /* whole frame, TTL − 1 */
  const effects: Effects = { tx: { peer: peer.id, bytes: f.length - ETH_HLEN } };
  if (fast) effects.fast = fast;
  let mode = peer.mode;
  if (mode === 'direct' || mode === 'host-gw') {
    const fib = m.fib.uplink(peer.publicIp, f.length);
    if (fib.rc === 'resolved' && !fib.gateway) {
      fib.dmac.copy(inner, 0);
      fib.smac.copy(inner, 6);
      return { retval: TC_ACT_REDIRECT, label, output: inner, effects };
    }
    if (mode === 'host-gw') return { retval: TC_ACT_REDIRECT, label: `${label}:neigh`, output: inner, effects };
    mode = 'vxlan'; /* DirectRouting peer not resolved on-link: VXLAN reaches it too */
  }
  const innerIp = inner.subarray(ETH_HLEN);
  const tos = inner[ETH_HLEN + 1]!;
  const vx = mode === 'vxlan';
  const add = vx ? VXLAN_STRIP : UDP_STRIP;
  const h = Buffer.alloc(add);
  const totLen = innerIp.length + add;
  h[0] = 0x45;
  h[1] = (tos & 3) === 3 ? 2 : tos & 3;
  h.writeUInt16BE(totLen > 0xffff ? 0 : totLen, 2);
  h[8] = 64;
  h[9] = 17;
  h.writeUInt32BE(node.publicIp, 12);
  h.writeUInt32BE(peer.publicIp, 16);
  h.writeUInt16BE(node.port, 22);
  h.writeUInt16BE(totLen - 20 > 0xffff ? 0 : totLen - 20, 24);
  if (vx) {
    h.writeUInt32BE(VXLAN_FLAG_I, 28);
    h.writeUInt32BE((node.vni << 8) >>> 0, 32);
    peer.vtepMac.copy(h, 36);
    node.vtepMac.copy(h, 42);
    h.writeUInt16BE(0x0800, 48);
  }
  const out = Buffer.concat([inner.subarray(0, ETH_HLEN), h, innerIp]);
  const fib = m.fib.uplink(peer.publicIp, out.length);
  let how = 'neigh';
  if (fib.rc === 'resolved') {
    fib.dmac.copy(out, 0);
    fib.smac.copy(out, 6);
    how = 'fib';
  }
  return {
    retval: TC_ACT_REDIRECT, label: `${label}:${vx ? 'vxlan' : 'udp'}:${how}`, output: out,
    wild: [[ETH_HLEN + 4, 2], [ETH_HLEN + 10, 2], [ETH_HLEN + 20, 2]],
    checks: [outerCsumCheck, sportCheck(ETH_HLEN + 20)],
    effects,
  };
}

/** TC egress on the flannel-bpf device (dev_egress.c). */
export function devEgress(m: Model, f: Buffer): Outcome {
  if (!isIPv4Frame(f)) return untouched(TC_ACT_OK, 'pass');
  const peer = lpm(m.peers, u32(f, ETH_HLEN + 16));
  if (!peer) return untouched(TC_ACT_OK, 'pass');
  if (f[ETH_HLEN + 8]! <= 1) {
    const out = Buffer.from(f);
    m.node.devMac.copy(out, 0);
    return { retval: TC_ACT_REDIRECT, label: 'ttl_exceeded', output: out, effects: { drop: { reason: 'ttl_exceeded', bytes: f.length } } };
  }
  return sendToPeer(m, f, peer, 'tx', undefined);
}

/** TC ingress on cni0 (cni_ingress.c, fast path). */
export function cniIngress(m: Model, f: Buffer): Outcome {
  if (!m.node.fastPath) return untouched(TC_ACT_OK, 'pass');
  if (!isIPv4Frame(f)) return untouched(TC_ACT_OK, 'pass');
  const peer = lpm(m.peers, u32(f, ETH_HLEN + 16));
  if (!peer) return untouched(TC_ACT_OK, 'pass');
  if (f[ETH_HLEN + 8]! <= 1 || !ctAnswerable(f)) {
    return untouched(TC_ACT_OK, 'not_eligible', { fast: [{ event: 'not_eligible', bytes: f.length }] });
  }
  return sendToPeer(m, f, peer, 'fast_tx', [{ event: 'fast_tx', bytes: f.length - ETH_HLEN }]);
}

/** TC ingress on the flannel-bpf device (dev_ingress.c, fast path). */
export function devIngress(m: Model, f: Buffer): Outcome {
  const fast: Array<{ event: FastEvent; bytes: number }> = [];
  const out = fastDeliver(m, f, fast);
  if (!out) return untouched(TC_ACT_OK, fast.length ? 'not_eligible' : 'pass', fast.length ? { fast } : {});
  return { retval: TC_ACT_REDIRECT, label: 'fast_rx', output: out, effects: { fast } };
}

/** TC egress on the uplink (uplink_egress.c, host-gw fix-up of frames the neighbour layer re-sent). */
export function uplinkEgress(m: Model, f: Buffer): Outcome {
  if (m.node.backend !== 'host-gw') return untouched(TC_ACT_OK, 'pass');
  if (!macAt(f, 6, m.node.devMac) || !isIPv4Frame(f)) return untouched(TC_ACT_OK, 'pass');
  const peer = lpm(m.peers, u32(f, ETH_HLEN + 16));
  if (!peer) return untouched(TC_ACT_OK, 'pass');
  const fib = m.fib.uplink(peer.publicIp, f.length);
  if (fib.rc !== 'resolved' || fib.gateway) {
    return { retval: TC_ACT_SHOT, label: 'drop:no_neigh', output: null, effects: { drop: { reason: 'no_neigh', bytes: f.length } } };
  }
  const out = Buffer.from(f);
  fib.dmac.copy(out, 0);
  fib.smac.copy(out, 6);
  return { retval: TC_ACT_OK, label: 'fixup', output: out, effects: {} }; /* already on the uplink */
}

/**
 * TC ingress on the uplink (uplink_ingress.c; `fast` = uplink_ingress_fast.c).
 * With steering (host-gw, DirectRouting), a frame that is not a tunnel packet
 * but comes from a peer's pod subnet is handed to the device: destination
 * MAC = the device's, counted as received from that peer.
 */
export function uplinkIngress(m: Model, f: Buffer, fast = false): Outcome {
  const v = rxVerdict(m, f);
  if (v.kind === 'pass') {
    const from = m.node.steer && isIPv4Frame(f) ? lpm(m.peers, u32(f, ETH_HLEN + 12)) : undefined;
    if (!from) return untouched(TC_ACT_OK, 'pass');
    const out = Buffer.from(f);
    m.node.devMac.copy(out, 0);
    const effects: Effects = { rx: { peer: from.id, bytes: f.length - ETH_HLEN } };
    if (fast) {
      const events: Array<{ event: FastEvent; bytes: number }> = [];
      const delivered = fastDeliver(m, out, events);
      if (events.length) effects.fast = events;
      if (delivered) return { retval: TC_ACT_REDIRECT, label: 'accept:steer:pod', output: delivered, effects };
    }
    return { retval: TC_ACT_REDIRECT, label: 'accept:steer', output: out, effects };
  }
  if (v.kind === 'drop') {
    return { retval: TC_ACT_SHOT, label: `drop:${v.reason}`, output: null, effects: { drop: { reason: v.reason, bytes: f.length } } };
  }
  const rx = { peer: v.peer, bytes: v.innerLen };
  if (m.node.decap === 'kernel' && m.node.backend === 'vxlan') return untouched(TC_ACT_OK, 'accept:kernel', { rx });
  const inner = decapsulated(m, f, v.strip);
  if (fast) {
    const events: Array<{ event: FastEvent; bytes: number }> = [];
    const delivered = fastDeliver(m, inner, events);
    const effects: Effects = events.length ? { rx, fast: events } : { rx };
    if (delivered) return { retval: TC_ACT_REDIRECT, label: 'accept:pod', output: delivered, effects };
    return { retval: TC_ACT_REDIRECT, label: 'accept', output: inner, effects };
  }
  return { retval: TC_ACT_REDIRECT, label: 'accept', output: inner, effects: { rx } };
}

/** XDP on the uplink (uplink_xdp.c): accepted frames come back stripped, behind an fbpf_xdp_meta. */
export function uplinkXdp(m: Model, f: Buffer): Outcome {
  const v = rxVerdict(m, f);
  if (v.kind === 'pass') return untouched(XDP_PASS, 'pass');
  if (v.kind === 'drop') {
    return { retval: XDP_DROP, label: `drop:${v.reason}`, output: null, effects: { drop: { reason: v.reason, bytes: f.length } } };
  }
  const meta = Buffer.alloc(8);
  meta.writeUInt32LE(XDP_META_MAGIC, 0); /* host order, x86 */
  meta.writeUInt32LE(v.peer, 4);
  return {
    retval: XDP_PASS, label: 'accept', output: Buffer.concat([meta, decapsulated(m, f, v.strip)]),
    effects: { rx: { peer: v.peer, bytes: v.innerLen } },
  };
}

/* --------------------------------------------------- the harness's namespace */

const mac = (s: string): Buffer => Buffer.from(s.split(':').map((h) => parseInt(h, 16)));

/** Largest skb bpf_fib_lookup lets through on a 1500-byte-MTU device (MTU + Ethernet + VLAN header). */
export const FIB_MAX_SKB = 1500 + 14 + 4;

/**
 * The routing of test/helpers/bpf-harness.ts's private namespace: uplink
 * 192.168.50.1/24 with 192.168.50.2 resolved, 10.9.0.0/16 via 192.168.50.2;
 * cni0 10.244.1.1/24 with 10.244.1.5 resolved; no default route, no route
 * for the rest of the cluster network.
 */
export function harnessFib(o: { uplinkMac: string; peerMac: string; cniMac: string; podMac: string }): ModelFib {
  const uplinkNet = parseCidr('192.168.50.0/24');
  const routed = parseCidr('10.9.0.0/16');
  const cniNet = parseCidr('10.244.1.0/24');
  const gw = parseIPv4('192.168.50.2');
  const pod = parseIPv4('10.244.1.5');
  const local = new Set(['192.168.50.1', '192.168.50.255', '10.244.1.1', '10.244.1.255'].map(parseIPv4));
  const viaNeigh = (nh: number, gateway: boolean, skbLen: number): FibAnswer => {
    if (nh !== gw) return { rc: 'no_neigh', gateway };
    if (skbLen > FIB_MAX_SKB) return { rc: 'failed' }; /* FRAG_NEEDED */
    return { rc: 'resolved', dmac: mac(o.peerMac), smac: mac(o.uplinkMac), gateway };
  };
  return {
    uplink(dst, skbLen) {
      if (local.has(dst)) return { rc: 'failed' };
      if (cidrContains(uplinkNet, dst)) return viaNeigh(dst, false, skbLen);
      if (cidrContains(routed, dst)) return viaNeigh(gw, true, skbLen);
      return { rc: 'failed' };
    },
    cni(dst, skbLen) {
      if (dst !== pod) return { rc: 'failed' };
      if (skbLen > FIB_MAX_SKB) return { rc: 'failed' };
      return { rc: 'resolved', dmac: mac(o.podMac), smac: mac(o.cniMac), gateway: false };
    },
    forwards(dst) {
      if (local.has(dst)) return false;
      return cidrContains(cniNet, dst) || cidrContains(uplinkNet, dst) || cidrContains(routed, dst);
    },
  };
}
