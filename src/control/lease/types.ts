/**
 * The lease model shared by both subnet stores (etcd keys and Kubernetes Node
 * annotations), and the rejection record every invalid lease turns into.
 */
import { formatCidr, formatIPv4, type Cidr } from '../../maps/addr.js';
import type { BackendType } from '../../maps/config.js';

/** One node's subnet lease as flannel publishes it. */
export interface Lease {
  /** Identity in its store: etcd `10.244.1.0-24` (relative key), kube: the node name. */
  key: string;
  /** The node's pod subnet. */
  subnet: Cidr;
  /** Tunnel endpoint / next hop (host-arithmetic u32). */
  publicIp: number;
  /**
   * flannel's BackendType. The udp backend publishes an empty type; it is
   * normalised to 'udp' here (and written back empty). Other values are kept
   * exactly as published (flannel compares them case-sensitively).
   */
  backendType: BackendType | (string & {});
  /** vxlan: the peer's VtepMAC, lower-case colon form. */
  vtepMac?: string;
  /** vxlan: the VNI the peer advertises. */
  vni?: number;
  /** Expiry (ms since the epoch) when the store knows it (etcd TTL). */
  expiration?: number;
}

/** Machine-readable reason a lease is not programmed (metric label, log field). */
export type RejectReason =
  | 'bad_subnet'
  | 'bad_public_ip'
  | 'bad_vtep_mac'
  | 'malformed_json'
  | 'outside_network'
  | 'overlaps_own'
  | 'overlaps_peer'
  | 'duplicate_public_ip'
  | 'backend_mismatch'
  | 'vni_mismatch'
  | 'capacity';

export const REJECT_REASONS: readonly RejectReason[] = [
  'bad_subnet', 'bad_public_ip', 'bad_vtep_mac', 'malformed_json', 'outside_network', 'overlaps_own',
  'overlaps_peer', 'duplicate_public_ip', 'backend_mismatch', 'vni_mismatch', 'capacity',
];

export interface Rejection {
  leaseKey: string;
  reason: RejectReason;
  /** One line for the log, naming the lease. */
  message: string;
}

/** Result of reading one lease record from a store. */
export type LeaseParse =
  | { kind: 'lease'; lease: Lease }
  | { kind: 'rejected'; rejection: Rejection }
  /** Not a flannel lease at all (kube: a node without `kube-subnet-manager: "true"`); nothing to report. */
  | { kind: 'ignored'; why: string };

export function describeLease(l: Pick<Lease, 'key'> & Partial<Pick<Lease, 'subnet' | 'publicIp'>>): string {
  const parts: string[] = [];
  if (l.subnet) parts.push(`subnet ${formatCidr(l.subnet)}`);
  if (l.publicIp !== undefined) parts.push(`public IP ${formatIPv4(l.publicIp)}`);
  return `lease ${JSON.stringify(l.key)}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

export function reject(key: string, reason: RejectReason, message: string): Rejection {
  return { leaseKey: key, reason, message };
}
