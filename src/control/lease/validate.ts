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

/** The first per-lease problem of a peer lease, or null when it passes. */
export function leaseProblem(lease: Lease, ctx: ValidationContext): Rejection | null {
  const who = describeLease(lease);
  const s = lease.subnet;
  if (!Number.isInteger(s.prefix) || s.prefix < 1 || s.prefix > 32 || ((s.addr & prefixMask(s.prefix)) >>> 0) !== s.addr >>> 0) {
    return reject(lease.key, 'bad_subnet', `${who}: not a valid network address/prefix`);
  }
  if (!cidrCovers(ctx.network, s)) {
    return reject(lease.key, 'outside_network', `${who}: subnet is outside the cluster network ${formatCidr(ctx.network)}`);
  }
  if (cidrOverlaps(ctx.ownSubnet, s)) {
    const how = s.prefix === ctx.ownSubnet.prefix ? 'is' : 'overlaps';
    return reject(lease.key, 'overlaps_own', `${who}: subnet ${how} our own subnet ${formatCidr(ctx.ownSubnet)}`);
  }
  const ipProblem = publicIpProblem(lease.publicIp, ctx.network);
  if (ipProblem) return reject(lease.key, 'bad_public_ip', `${who}: public IP ${ipProblem}`);
  if (ctx.ownPublicIp !== undefined && lease.publicIp === ctx.ownPublicIp) {
    return reject(lease.key, 'duplicate_public_ip', `${who}: advertises our own public IP (a stale lease of this node?)`);
  }
  if (lease.backendType !== ctx.backend) {
    return reject(lease.key, 'backend_mismatch',
      `${who}: backend type ${JSON.stringify(storedBackendType(lease.backendType))} is not ours (${JSON.stringify(storedBackendType(ctx.backend))}); stock flannel ignores such leases too`);
  }
  if (ctx.backend === 'vxlan') {
    if (!lease.vtepMac) return reject(lease.key, 'bad_vtep_mac', `${who}: vxlan lease without a VtepMAC`);
    if (lease.vni !== undefined && lease.vni !== ctx.vni) {
      return reject(lease.key, 'vni_mismatch', `${who}: VNI ${lease.vni} differs from ours (${ctx.vni}); its packets would be dropped`);
    }
  }
  return null;
}

/**
 * Accepted CIDRs that are pairwise disjoint, with overlap queries in
 * O(prefix depth): `exact` holds each accepted CIDR, `inside` every
 * enclosing block (down to the cluster network's prefix) of an accepted one.
 */
class DisjointCidrs {
  private readonly exact = new Map<number, string>();
  private readonly inside = new Map<number, string>();
  constructor(private readonly minPrefix: number) {}

  private static id(addr: number, prefix: number): number {
    return addr * 64 + prefix; /* < 2^38: exact in a double */
  }

  /** Key of an accepted CIDR overlapping c, if any. */
  overlapping(c: Cidr): string | undefined {
    for (let p = this.minPrefix; p <= c.prefix; p++) {
      const hit = this.exact.get(DisjointCidrs.id((c.addr & prefixMask(p)) >>> 0, p));
      if (hit !== undefined) return hit; /* an accepted CIDR covers c */
    }
    return this.inside.get(DisjointCidrs.id(c.addr, c.prefix)); /* c covers an accepted CIDR */
  }

  add(c: Cidr, key: string): void {
    this.exact.set(DisjointCidrs.id(c.addr, c.prefix), key);
    for (let p = this.minPrefix; p <= c.prefix; p++) {
      const id = DisjointCidrs.id((c.addr & prefixMask(p)) >>> 0, p);
      if (!this.inside.has(id)) this.inside.set(id, key);
    }
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
  const sorted = [...byKey.values()].sort((a, b) => compareKeys(a.key, b.key));

  const accepted: Lease[] = [];
  const rejected: Rejection[] = [];
  const own: Lease[] = [];
  const taken = new DisjointCidrs(ctx.network.prefix);
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
      const w = byKey.get(winner);
      rejected.push(reject(lease.key, 'overlaps_peer',
        `${describeLease(lease)}: subnet overlaps ${w ? describeLease(w) : JSON.stringify(winner)}, which wins (smaller key)`));
      continue;
    }
    const ipOwner = ips.get(lease.publicIp);
    if (ipOwner !== undefined) {
      rejected.push(reject(lease.key, 'duplicate_public_ip',
        `${describeLease(lease)}: public IP is already used by lease ${JSON.stringify(ipOwner)}, which wins (smaller key)`));
      continue;
    }
    taken.add(lease.subnet, lease.key);
    ips.set(lease.publicIp, lease.key);
    accepted.push(lease);
  }
  return { accepted, rejected, own };
}
