/**
 * Packet builders and parsers for tests: Ethernet, IPv4, UDP, TCP, ICMP,
 * VXLAN, with correct checksums unless told otherwise. Addresses are strings
 * ("10.0.0.1", "02:00:00:00:00:01").
 */
import { parseIPv4 as ip4, formatIPv4, formatMac } from '../../src/maps/addr.js';

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

/** One's-complement sum of buf (big-endian 16-bit words), not folded. */
export function onesSum(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += (buf[buf.length - 1] ?? 0) << 8;
  return sum;
}

export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

export function checksum(buf: Buffer, initial = 0): number {
  return ~fold(onesSum(buf, initial)) & 0xffff;
}

function pseudoHeaderSum(src: string, dst: string, proto: number, len: number): number {
  const ph = Buffer.alloc(12);
  ph.writeUInt32BE(ip4(src), 0);
  ph.writeUInt32BE(ip4(dst), 4);
  ph[9] = proto;
  ph.writeUInt16BE(len, 10);
  return onesSum(ph);
}

export interface EthOpts { dst?: string; src?: string; type?: number }
export function eth(opts: EthOpts, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(14);
  macBytes(opts.dst ?? '02:00:00:00:00:02').copy(h, 0);
  macBytes(opts.src ?? '02:00:00:00:00:01').copy(h, 6);
  h.writeUInt16BE(opts.type ?? ETH_P_IP, 12);
  return Buffer.concat([h, payload]);
}

export interface IPv4Opts {
  src: string;
  dst: string;
  proto: number;
  ttl?: number;
  tos?: number;
  id?: number;
  /** Raw flags+fragment offset field (e.g. 0x4000 = DF, 0x2000 = MF). */
  fragOff?: number;
  /** IP options (padded to 4 bytes by the caller). */
  options?: Buffer;
  /** Override the total length field. */
  totLen?: number;
  /** Override the checksum field. */
  check?: number;
}
export function ipv4(opts: IPv4Opts, payload: Buffer): Buffer {
  const optLen = opts.options?.length ?? 0;
  if (optLen % 4) throw new RangeError('IPv4 options must be a multiple of 4 bytes');
  const h = Buffer.alloc(20 + optLen);
  h[0] = 0x40 | ((20 + optLen) / 4);
  h[1] = opts.tos ?? 0;
  h.writeUInt16BE(opts.totLen ?? h.length + payload.length, 2);
  h.writeUInt16BE(opts.id ?? 0x1234, 4);
  h.writeUInt16BE(opts.fragOff ?? 0x4000, 6);
  h[8] = opts.ttl ?? 64;
  h[9] = opts.proto;
  h.writeUInt32BE(ip4(opts.src), 12);
  h.writeUInt32BE(ip4(opts.dst), 16);
  opts.options?.copy(h, 20);
  h.writeUInt16BE(opts.check ?? checksum(h), 10);
  return Buffer.concat([h, payload]);
}

export interface UdpOpts { sport: number; dport: number; src: string; dst: string; noChecksum?: boolean; len?: number }
export function udp(opts: UdpOpts, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(opts.sport, 0);
  h.writeUInt16BE(opts.dport, 2);
  h.writeUInt16BE(opts.len ?? 8 + payload.length, 4);
  const seg = Buffer.concat([h, payload]);
  if (!opts.noChecksum) {
    const c = checksum(seg, pseudoHeaderSum(opts.src, opts.dst, IPPROTO_UDP, seg.length));
    seg.writeUInt16BE(c === 0 ? 0xffff : c, 6);
  }
  return seg;
}

export interface TcpOpts {
  sport: number; dport: number; src: string; dst: string;
  seq?: number; ack?: number; flags?: number; window?: number;
}
export function tcp(opts: TcpOpts, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(opts.sport, 0);
  h.writeUInt16BE(opts.dport, 2);
  h.writeUInt32BE(opts.seq ?? 1000, 4);
  h.writeUInt32BE(opts.ack ?? 0, 8);
  h[12] = 5 << 4;
  h[13] = opts.flags ?? 0x18; /* PSH|ACK */
  h.writeUInt16BE(opts.window ?? 65535, 14);
  const seg = Buffer.concat([h, payload]);
  seg.writeUInt16BE(checksum(seg, pseudoHeaderSum(opts.src, opts.dst, IPPROTO_TCP, seg.length)), 16);
  return seg;
}

export function icmpEcho(opts: { id?: number; seq?: number; type?: number }, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = opts.type ?? 8;
  h.writeUInt16BE(opts.id ?? 0x4242, 4);
  h.writeUInt16BE(opts.seq ?? 1, 6);
  const msg = Buffer.concat([h, payload]);
  msg.writeUInt16BE(checksum(msg), 2);
  return msg;
}

export interface VxlanOpts { vni: number; flags?: number; reserved?: number }
export function vxlan(opts: VxlanOpts, inner: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(opts.flags ?? 0x08000000, 0);
  h.writeUInt32BE(((opts.vni << 8) | (opts.reserved ?? 0)) >>> 0, 4);
  return Buffer.concat([h, inner]);
}

/* ---------------- composite builders ---------------- */

export interface FlowOpts {
  src: string; dst: string; ttl?: number; tos?: number;
  sport?: number; dport?: number;
  payloadLen?: number; fill?: number;
  ethSrc?: string; ethDst?: string;
}

function fillPayload(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** Ethernet/IPv4/TCP frame. */
export function tcpFrame(o: FlowOpts): Buffer {
  const seg = tcp({ sport: o.sport ?? 40000, dport: o.dport ?? 5201, src: o.src, dst: o.dst },
    fillPayload(o.payloadLen ?? 64, o.fill ?? 7));
  return eth({ dst: o.ethDst, src: o.ethSrc }, ipv4({ src: o.src, dst: o.dst, proto: IPPROTO_TCP, ttl: o.ttl, tos: o.tos }, seg));
}

/** Ethernet/IPv4/UDP frame. */
export function udpFrame(o: FlowOpts): Buffer {
  const seg = udp({ sport: o.sport ?? 40000, dport: o.dport ?? 5201, src: o.src, dst: o.dst },
    fillPayload(o.payloadLen ?? 64, o.fill ?? 3));
  return eth({ dst: o.ethDst, src: o.ethSrc }, ipv4({ src: o.src, dst: o.dst, proto: IPPROTO_UDP, ttl: o.ttl, tos: o.tos }, seg));
}

/** Ethernet/IPv4/ICMP echo frame. */
export function icmpFrame(o: FlowOpts): Buffer {
  const msg = icmpEcho({}, fillPayload(o.payloadLen ?? 56, o.fill ?? 5));
  return eth({ dst: o.ethDst, src: o.ethSrc }, ipv4({ src: o.src, dst: o.dst, proto: IPPROTO_ICMP, ttl: o.ttl, tos: o.tos }, msg));
}

export interface TunnelOpts {
  outerSrc: string; outerDst: string;
  outerEthSrc?: string; outerEthDst?: string;
  sport?: number; dport?: number;
  vni?: number; flags?: number; reserved?: number;
  innerEthSrc?: string; innerEthDst?: string;
  outerTtl?: number; fragOff?: number; options?: Buffer;
}

/** A VXLAN packet as a stock kernel (flannel.1) would send it, around an inner IPv4 packet (no Ethernet). */
export function vxlanFrame(o: TunnelOpts, innerIp: Buffer): Buffer {
  const innerEth = eth({ src: o.innerEthSrc ?? '0e:00:00:00:00:02', dst: o.innerEthDst ?? '0e:00:00:00:00:01' }, innerIp);
  const vx = vxlan({ vni: o.vni ?? 1, flags: o.flags, reserved: o.reserved }, innerEth);
  const u = udp({ sport: o.sport ?? 50000, dport: o.dport ?? 8472, src: o.outerSrc, dst: o.outerDst, noChecksum: true }, vx);
  const ip = ipv4({ src: o.outerSrc, dst: o.outerDst, proto: IPPROTO_UDP, ttl: o.outerTtl ?? 64, fragOff: o.fragOff ?? 0, options: o.options }, u);
  return eth({ src: o.outerEthSrc ?? '02:00:00:00:01:02', dst: o.outerEthDst ?? '02:00:00:00:01:01' }, ip);
}

/** flannel's UDP backend format: outer IPv4/UDP(8285) whose payload is the inner IPv4 packet. */
export function udpTunnelFrame(o: TunnelOpts, innerIp: Buffer): Buffer {
  const u = udp({ sport: o.sport ?? 8285, dport: o.dport ?? 8285, src: o.outerSrc, dst: o.outerDst, noChecksum: true }, innerIp);
  const ip = ipv4({ src: o.outerSrc, dst: o.outerDst, proto: IPPROTO_UDP, ttl: o.outerTtl ?? 64, fragOff: o.fragOff ?? 0, options: o.options }, u);
  return eth({ src: o.outerEthSrc ?? '02:00:00:00:01:02', dst: o.outerEthDst ?? '02:00:00:00:01:01' }, ip);
}

/* ---------------- parsers ---------------- */

export interface ParsedEth { dst: string; src: string; type: number; payload: Buffer }
export function parseEth(b: Buffer): ParsedEth {
  if (b.length < 14) throw new RangeError(`frame of ${b.length} bytes has no Ethernet header`);
  return { dst: formatMac(b.subarray(0, 6)), src: formatMac(b.subarray(6, 12)), type: b.readUInt16BE(12), payload: b.subarray(14) };
}

export interface ParsedIPv4 {
  version: number; ihl: number; tos: number; totLen: number; id: number; fragOff: number;
  ttl: number; proto: number; check: number; src: string; dst: string;
  checksumOk: boolean; header: Buffer; payload: Buffer;
}
export function parseIPv4Packet(b: Buffer): ParsedIPv4 {
  if (b.length < 20) throw new RangeError(`${b.length} bytes is too short for IPv4`);
  const ihl = b[0]! & 0x0f;
  const header = b.subarray(0, ihl * 4);
  const totLen = b.readUInt16BE(2);
  return {
    version: b[0]! >> 4, ihl, tos: b[1]!, totLen, id: b.readUInt16BE(4), fragOff: b.readUInt16BE(6),
    ttl: b[8]!, proto: b[9]!, check: b.readUInt16BE(10),
    src: formatIPv4(b.readUInt32BE(12)), dst: formatIPv4(b.readUInt32BE(16)),
    checksumOk: fold(onesSum(header)) === 0xffff,
    header, payload: b.subarray(ihl * 4, totLen),
  };
}

export interface ParsedUdp { sport: number; dport: number; len: number; check: number; payload: Buffer }
export function parseUdp(b: Buffer): ParsedUdp {
  return { sport: b.readUInt16BE(0), dport: b.readUInt16BE(2), len: b.readUInt16BE(4), check: b.readUInt16BE(6), payload: b.subarray(8) };
}

export interface ParsedVxlan { flags: number; vni: number; reserved: number; payload: Buffer }
export function parseVxlan(b: Buffer): ParsedVxlan {
  const w = b.readUInt32BE(4);
  return { flags: b.readUInt32BE(0), vni: w >>> 8, reserved: w & 0xff, payload: b.subarray(8) };
}

/** Is the L4 (TCP/UDP/ICMP) checksum of this IPv4 packet valid? */
export function l4ChecksumOk(ipPacket: Buffer): boolean {
  const ip = parseIPv4Packet(ipPacket);
  if (ip.proto === IPPROTO_ICMP) return fold(onesSum(ip.payload)) === 0xffff;
  if (ip.proto === IPPROTO_UDP && ip.payload.readUInt16BE(6) === 0) return true;
  const sum = onesSum(ip.payload, pseudoHeaderSum(ip.src, ip.dst, ip.proto, ip.payload.length));
  return fold(sum) === 0xffff;
}

/** A copy of an IPv4 packet with its TTL lowered by `by` and the header checksum recomputed. */
export function withTtl(ipPacket: Buffer, ttl: number): Buffer {
  const b = Buffer.from(ipPacket);
  const ihl = (b[0]! & 0x0f) * 4;
  b[8] = ttl;
  b.writeUInt16BE(0, 10);
  b.writeUInt16BE(checksum(b.subarray(0, ihl)), 10);
  return b;
}
