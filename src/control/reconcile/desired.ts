/**
 * The reconciler's pure core: from our own node, the peer leases and facts
 * about the uplink, the peer and tunnel-source map contents we want.
 *
 * Modes per backend (DESIGN.md §2 "Backends"):
 *   vxlan                  → 'vxlan'
 *   vxlan + DirectRouting  → 'direct' when the peer's public IP is on one of
 *                            the uplink's on-link subnets, else 'vxlan'
 *   host-gw                → 'host-gw' when on-link; otherwise the peer is
 *                            `unreachable` (reported, never programmed)
 *   udp                    → 'udp'
 * Tunnel sources (receive-side allow list) are every programmed peer of a
 * tunnel mode (vxlan, direct, udp): a DirectRouting peer can still send
 * VXLAN (a stock flannel peer that does not see us as on-link does).
 */
import { cidrContains, formatCidr, formatIPv4, type Cidr } from '../../maps/addr.js';
import type { BackendType } from '../../maps/config.js';
import type { PeerMode } from '../../maps/peers.js';
import type { Lease, Rejection } from '../lease/types.js';
import { validateLeases, type ValidationContext } from '../lease/validate.js';

export const ZERO_MAC = '00:00:00:00:00:00';

export interface OwnNode {
  subnet: Cidr;
  /** The cluster network (net-conf Network). */
  network: Cidr;
  publicIp: number;
  backend: BackendType;
  vni: number;
  port: number;
  directRouting: boolean;
  /** Our lease key (etcd subnet key / node name), to recognise our own lease. */
  leaseKey?: string;
}

export interface UplinkFacts {
  /** Prefixes directly connected to the uplink (its addresses' subnets). */
  onLinkSubnets: readonly Cidr[];
}

export interface DesiredPeer {
  leaseKey: string;
  subnet: Cidr;
  mode: PeerMode;
  publicIp: number;
  /** The peer's VtepMAC, or 00:00:00:00:00:00 when it has none (host-gw, udp). */
  vtepMac: string;
}

export interface DesiredSource {
  publicIp: number;
  leaseKey: string;
}

export interface UnreachablePeer {
  leaseKey: string;
  subnet: Cidr;
  publicIp: number;
  reason: 'not_on_link';
  message: string;
}

export interface DesiredState {
  /** Ascending by lease key. */
  peers: DesiredPeer[];
  /** Ascending by lease key; public IPs are unique. */
  sources: DesiredSource[];
  rejected: Rejection[];
  unreachable: UnreachablePeer[];
}

export function isOnLink(ip: number, uplink: UplinkFacts): boolean {
  return uplink.onLinkSubnets.some((c) => cidrContains(c, ip));
}

export function isTunnelMode(mode: PeerMode): boolean {
  return mode === 'vxlan' || mode === 'direct' || mode === 'udp';
}

/**
 * How an accepted lease is programmed: its mode, or why it cannot be
 * (host-gw and not on-link).
 */
export function peerModeOf(own: Pick<OwnNode, 'backend' | 'directRouting'>, l: Lease, uplink: UplinkFacts): PeerMode | UnreachablePeer {
  switch (own.backend) {
    case 'vxlan':
      return own.directRouting && isOnLink(l.publicIp, uplink) ? 'direct' : 'vxlan';
    case 'host-gw':
      if (isOnLink(l.publicIp, uplink)) return 'host-gw';
      return {
        leaseKey: l.key, subnet: l.subnet, publicIp: l.publicIp, reason: 'not_on_link',
        message: `lease ${JSON.stringify(l.key)} (subnet ${formatCidr(l.subnet)}): host-gw next hop ${formatIPv4(l.publicIp)} is not on the uplink's subnets `
          + `(${uplink.onLinkSubnets.map(formatCidr).join(', ') || 'none'}); host-gw needs layer-2 adjacency — use the vxlan backend (with DirectRouting) across routers`,
      };
    case 'udp':
      return 'udp';
  }
}

/** The validation context of our own node. */
export function validationContext(own: OwnNode): ValidationContext {
  return {
    network: own.network,
    ownSubnet: own.subnet,
    ownKey: own.leaseKey,
    ownPublicIp: own.publicIp,
    backend: own.backend,
    vni: own.vni,
  };
}

export function desiredState(own: OwnNode, leases: readonly Lease[], uplink: UplinkFacts): DesiredState {
  const v = validateLeases(leases, validationContext(own));
  const peers: DesiredPeer[] = [];
  const sources: DesiredSource[] = [];
  const unreachable: UnreachablePeer[] = [];

  for (const l of v.accepted) {
    const mode = peerModeOf(own, l, uplink);
    if (typeof mode !== 'string') {
      unreachable.push(mode);
      continue;
    }
    peers.push({ leaseKey: l.key, subnet: l.subnet, mode, publicIp: l.publicIp, vtepMac: l.vtepMac ?? ZERO_MAC });
    if (isTunnelMode(mode)) sources.push({ publicIp: l.publicIp, leaseKey: l.key });
  }
  return { peers, sources, rejected: v.rejected, unreachable };
}
