/**
 * Diff of the desired peer/source map contents against what the maps hold.
 * Only real changes are listed. The applier must apply the four lists in
 * APPLY_ORDER:
 *
 *   1. sourceUpserts  – accept a new peer's tunnel packets before we send to it
 *   2. peerUpserts    – a subnet that moves to another lease is overwritten in
 *                       place (never deleted and re-added), and a new, more or
 *                       less specific entry exists before the old one goes
 *   3. peerDeletes    – stop sending before we stop accepting
 *   4. sourceDeletes
 *
 * so that no subnet that is in both the old and the new state is ever
 * missing from the maps, not even for one packet.
 */
import { formatCidr, parseCidr, type Cidr } from '../../maps/addr.js';
import type { PeerValue } from '../../maps/peers.js';
import type { TunnelSource } from '../../maps/sources.js';
import type { DesiredPeerWithId, DesiredSourceWithId } from './ids.js';

export interface CurrentMaps {
  /** Peers map contents keyed by formatCidr(subnet). */
  peers: ReadonlyMap<string, PeerValue>;
  /** Tunnel-sources map contents keyed by public IP (host-arithmetic u32). */
  sources: ReadonlyMap<number, TunnelSource>;
}

export interface DesiredMaps {
  peers: readonly DesiredPeerWithId[];
  sources: readonly DesiredSourceWithId[];
}

export interface MapDiff {
  sourceUpserts: { publicIp: number; value: TunnelSource }[];
  peerUpserts: { subnet: Cidr; value: PeerValue }[];
  peerDeletes: Cidr[];
  sourceDeletes: number[];
}

export const APPLY_ORDER = ['sourceUpserts', 'peerUpserts', 'peerDeletes', 'sourceDeletes'] as const;

export function peerValueOf(p: DesiredPeerWithId): PeerValue {
  return { mode: p.mode, vtepMac: p.vtepMac.toLowerCase(), peerId: p.peerId, publicIp: p.publicIp >>> 0 };
}

export function samePeerValue(a: PeerValue, b: PeerValue): boolean {
  return a.mode === b.mode && a.vtepMac.toLowerCase() === b.vtepMac.toLowerCase() && a.peerId === b.peerId && a.publicIp >>> 0 === b.publicIp >>> 0;
}

function cidrOrder(a: Cidr, b: Cidr): number {
  return a.addr - b.addr || a.prefix - b.prefix;
}

export function diff(current: CurrentMaps, desired: DesiredMaps): MapDiff {
  /* Canonical current keys (the applier may hand us any spelling parseCidr accepts). */
  const cur = new Map<string, PeerValue>();
  for (const [k, v] of current.peers) cur.set(formatCidr(parseCidr(k, false)), v);

  const peerUpserts: MapDiff['peerUpserts'] = [];
  const want = new Set<string>();
  for (const p of desired.peers) {
    const k = formatCidr(p.subnet);
    if (want.has(k)) throw new Error(`desired peers contain subnet ${k} twice (leases must be validated first)`);
    want.add(k);
    const value = peerValueOf(p);
    const have = cur.get(k);
    if (!have || !samePeerValue(have, value)) peerUpserts.push({ subnet: { addr: p.subnet.addr >>> 0, prefix: p.subnet.prefix }, value });
  }
  const peerDeletes: Cidr[] = [];
  for (const k of cur.keys()) if (!want.has(k)) peerDeletes.push(parseCidr(k, false));

  const sourceUpserts: MapDiff['sourceUpserts'] = [];
  const wantIps = new Set<number>();
  for (const s of desired.sources) {
    const ip = s.publicIp >>> 0;
    if (wantIps.has(ip)) throw new Error(`desired sources contain ${ip} twice (leases must be validated first)`);
    wantIps.add(ip);
    const have = current.sources.get(ip);
    if (!have || have.peerId !== s.peerId) sourceUpserts.push({ publicIp: ip, value: { peerId: s.peerId } });
  }
  const sourceDeletes: number[] = [];
  for (const ip of current.sources.keys()) if (!wantIps.has(ip >>> 0)) sourceDeletes.push(ip >>> 0);

  peerUpserts.sort((a, b) => cidrOrder(a.subnet, b.subnet));
  peerDeletes.sort(cidrOrder);
  sourceUpserts.sort((a, b) => a.publicIp - b.publicIp);
  sourceDeletes.sort((a, b) => a - b);
  return { sourceUpserts, peerUpserts, peerDeletes, sourceDeletes };
}

export function isEmptyDiff(d: MapDiff): boolean {
  return d.sourceUpserts.length + d.peerUpserts.length + d.peerDeletes.length + d.sourceDeletes.length === 0;
}

/** Apply a diff to plain Maps (what the applier does to the BPF maps, in APPLY_ORDER): for tests and dry runs. */
export function applyDiffToMaps(current: { peers: Map<string, PeerValue>; sources: Map<number, TunnelSource> }, d: MapDiff): void {
  for (const u of d.sourceUpserts) current.sources.set(u.publicIp, u.value);
  for (const u of d.peerUpserts) current.peers.set(formatCidr(u.subnet), u.value);
  for (const c of d.peerDeletes) current.peers.delete(formatCidr(c));
  for (const ip of d.sourceDeletes) current.sources.delete(ip);
}
