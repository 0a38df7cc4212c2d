/**
 * Validation of peer leases against our own configuration. Stock flannel
 * programs whatever a lease says (and silently ignores leases of another
 * backend type); flannel-bpf rejects anything it cannot program safely, with
 * a reason code and a message naming the lease, and never throws.
 *
 * Per-lease checks, in this order (the first failing one is reported):
 *   bad_subnet, outside_network, overlaps_own, bad_public_ip,
 *   duplicate_public_ip (our own public IP), backend_mismatch, bad_vtep_mac,
 *   vni_mismatch.
 * Then across the leases that passed, taken in ascending key order (plain
 * code-unit order, so the result does not depend on the input order): a
 * lease whose subnet overlaps one already accepted is rejected as
 * `overlaps_peer`, and one whose public IP is already used by an accepted
 * lease as `duplicate_public_ip`. The lease with the lexicographically
 * smaller key therefore always wins a conflict.
 */
import { cidrCovers, cidrOverlaps, cidrContains, formatCidr, formatIPv4, prefixMask, type Cidr } from '../../maps/addr.js';
import type { BackendType } from '../../maps/config.js';
import { describeLease, reject, type Lease, type Rejection } from './types.js';
import { storedBackendType } from './backend-data.js';

export interface ValidationContext {
  /** The cluster network (net-conf Network). */
  network: Cidr;
  /** Our own subnet. */
  ownSubnet: Cidr;
  /** Our own lease key (etcd subnet key or node name): a lease with this key is ours, never a peer. */
  ownKey?: string;
  /** Our own public IP: a peer lease advertising it is rejected. */
  ownPublicIp?: number;
  backend: BackendType;
  /** Our VNI (vxlan). */
  vni: number;
}

export interface LeaseSetValidation {
  /** Valid peer leases, ascending by key. */
  accepted: Lease[];
  /** Rejected leases, ascending by key. */
  rejected: Rejection[];
  /** Leases that are ours (same key as ownKey), not peers and not errors. */
  own: Lease[];
}

/** Why an address cannot be a peer's tunnel endpoint / next hop, or null. */
export function publicIpProblem(ip: number, network?: Cidr): string | null {
  const a = ip >>> 24;
  if (a === 0) return `${formatIPv4(ip)} is in 0.0.0.0/8 ("this network")`;
  if (a === 127) return `${formatIPv4(ip)} is a loopback address`;
  if (a >= 224 && a <= 239) return `${formatIPv4(ip)} is a multicast address`;
  if (a >= 240) return `${formatIPv4(ip)} is a reserved or broadcast address`;
  if (network && cidrContains(network, ip)) return `${formatIPv4(ip)} is inside the cluster pod network ${formatCidr(network)}`;
  return null;
}

/**
 * The first per-lease problem of a peer lease, or null when it passes. The
 * checks are plain comparisons; the message (which formats the lease) is
 * built only for a lease that fails one.
 */
export function leaseProblem(lease: Lease, ctx: ValidationContext): Rejection | null {
  const s = lease.subnet;
  if (!Number.isInteger(s.prefix) || s.prefix < 1 || s.prefix > 32 || ((s.addr & prefixMask(s.prefix)) >>> 0) !== s.addr >>> 0) {
    return reject(lease.key, 'bad_subnet', `${describeLease(lease)}: not a valid network address/prefix`);
  }
  if (!cidrCovers(ctx.network, s)) {
    return reject(lease.key, 'outside_network', `${describeLease(lease)}: subnet is outside the cluster network ${formatCidr(ctx.network)}`);
  }
  if (cidrOverlaps(ctx.ownSubnet, s)) {
    const how = s.prefix === ctx.ownSubnet.prefix ? 'is' : 'overlaps';
    return reject(lease.key, 'overlaps_own', `${describeLease(lease)}: subnet ${how} our own subnet ${formatCidr(ctx.ownSubnet)}`);
  }
  const a = lease.publicIp >>> 24;
  if (a === 0 || a === 127 || a >= 224 || cidrContains(ctx.network, lease.publicIp)) {
    const ipProblem = publicIpProblem(lease.publicIp, ctx.network);
    if (ipProblem) return reject(lease.key, 'bad_public_ip', `${describeLease(lease)}: public IP ${ipProblem}`);
  }
  if (ctx.ownPublicIp !== undefined && lease.publicIp === ctx.ownPublicIp) {
    return reject(lease.key, 'duplicate_public_ip', `${describeLease(lease)}: advertises our own public IP (a stale lease of this node?)`);
  }
  if (lease.backendType !== ctx.backend) {
    return reject(lease.key, 'backend_mismatch',
      `${describeLease(lease)}: backend type ${JSON.stringify(storedBackendType(lease.backendType))} is not ours (${JSON.stringify(storedBackendType(ctx.backend))}); stock flannel ignores such leases too`);
  }
  if (ctx.backend === 'vxlan') {
    if (!lease.vtepMac) return reject(lease.key, 'bad_vtep_mac', `${describeLease(lease)}: vxlan lease without a VtepMAC`);
    if (lease.vni !== undefined && lease.vni !== ctx.vni) {
      return reject(lease.key, 'vni_mismatch', `${describeLease(lease)}: VNI ${lease.vni} differs from ours (${ctx.vni}); its packets would be dropped`);
    }
  }
  return null;
}

/** The overlaps_peer rejection of `lease`, whose subnet overlaps the accepted `winner` (smaller key). */
export function overlapsPeer(lease: Lease, winner: Lease | undefined, winnerKey: string): Rejection {
  return reject(lease.key, 'overlaps_peer',
    `${describeLease(lease)}: subnet overlaps ${winner ? describeLease(winner) : JSON.stringify(winnerKey)}, which wins (smaller key)`);
}

/** The duplicate_public_ip rejection of `lease`, whose public IP the accepted lease `ownerKey` (smaller key) uses. */
export function duplicatePeerIp(lease: Lease, ownerKey: string): Rejection {
  return reject(lease.key, 'duplicate_public_ip',
    `${describeLease(lease)}: public IP is already used by lease ${JSON.stringify(ownerKey)}, which wins (smaller key)`);
}

/**
 * Accepted CIDRs that are pairwise disjoint, bucketed by prefix length (a
 * cluster's leases use one or two lengths). A CIDR c overlaps an accepted
 * one either covering it (found by masking c to each accepted length ≤ its
 * own: at most one, they are disjoint) or inside it (found by walking the
 * blocks of each longer accepted length inside c, or that length's whole
 * bucket when it is smaller); the one inside with the smallest key is named,
 * as it was accepted first.
 */
class DisjointCidrs {
  private readonly byPrefix = new Map<number, Map<number, string>>();

  /** Key of an accepted CIDR overlapping c, if any. */
  overlapping(c: Cidr): string | undefined {
    let inside: string | undefined;
    for (const [p, bucket] of this.byPrefix) {
      if (p <= c.prefix) {
        const hit = bucket.get((c.addr & prefixMask(p)) >>> 0);
        if (hit !== undefined) return hit; /* an accepted CIDR covers c */
        continue;
      }
      const blocks = 2 ** (p - c.prefix);
      if (blocks <= bucket.size) {
        const step = 2 ** (32 - p);
        for (let i = 0, a = c.addr >>> 0; i < blocks; i++, a += step) {
          const hit = bucket.get(a);
          if (hit !== undefined && (inside === undefined || hit < inside)) inside = hit;
        }
      } else {
        const mask = prefixMask(c.prefix);
        for (const [a, hit] of bucket) {
          if (((a & mask) >>> 0) === c.addr >>> 0 && (inside === undefined || hit < inside)) inside = hit;
        }
      }
    }
    return inside; /* c covers an accepted CIDR */
  }

  add(c: Cidr, key: string): void {
    let bucket = this.byPrefix.get(c.prefix);
    if (!bucket) this.byPrefix.set(c.prefix, (bucket = new Map()));
    bucket.set(c.addr >>> 0, key);
  }
}

/** Code-unit order (not locale order): the same everywhere. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Validate a set of peer leases. When a key occurs more than once, the last
 * occurrence in the input counts (a later store event replaces an earlier one).
 */
export function validateLeases(leases: readonly Lease[], ctx: ValidationContext): LeaseSetValidation {
  const byKey = new Map<string, Lease>();
  for (const l of leases) byKey.set(l.key, l);
  /* The default sort compares strings by UTF-16 code units: compareKeys' order, without a callback per comparison. */
  const sorted = [...byKey.keys()].sort().map((k) => byKey.get(k) as Lease);

  const accepted: Lease[] = [];
  const rejected: Rejection[] = [];
  const own: Lease[] = [];
  const taken = new DisjointCidrs();
  const ips = new Map<number, string>();

  for (const lease of sorted) {
    if (ctx.ownKey !== undefined && lease.key === ctx.ownKey) {
      own.push(lease);
      continue;
    }
    const problem = leaseProblem(lease, ctx);
    if (problem) {
      rejected.push(problem);
      continue;
    }
    const winner = taken.overlapping(lease.subnet);
    if (winner !== undefined) {
      rejected.push(overlapsPeer(lease, byKey.get(winner), winner));
      continue;
    }
    const ipOwner = ips.get(lease.publicIp);
    if (ipOwner !== undefined) {
      rejected.push(duplicatePeerIp(lease, ipOwner));
      continue;
    }
    taken.add(lease.subnet, lease.key);
    ips.set(lease.publicIp, lease.key);
    accepted.push(lease);
  }
  return { accepted, rejected, own };
}
