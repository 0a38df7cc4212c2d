/**
 * Drop reasons, indexed as enum fbpf_drop_reason in bpf/include/fbpf_shared.h.
 * These names are the `reason` label of flannel_bpf_drops_total.
 */
export const DROP_REASONS = [
  'none',
  'unknown_source',
  'wrong_vni',
  'bad_flags',
  'truncated',
  'ip_options',
  'fragment',
  'inner_not_ipv4',
  'inner_dst_mac',
  'ttl_exceeded',
  'encap_failed',
  'decap_failed',
  'no_neigh',
  'source_mac',
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

export const DROP_REASON_HELP: Record<DropReason, string> = {
  none: 'unused slot',
  unknown_source: 'tunnel packet whose outer source IP is not a known peer',
  wrong_vni: 'VXLAN packet with a VNI other than ours',
  bad_flags: 'VXLAN header with flags other than exactly the I flag, or reserved bits set',
  truncated: 'tunnel packet shorter than its headers say',
  ip_options: 'outer IPv4 header of a tunnel packet carries options',
  fragment: 'outer IPv4 tunnel packet is a fragment',
  inner_not_ipv4: 'inner packet is not IPv4',
  inner_dst_mac: 'inner destination MAC is not our VtepMAC',
  ttl_exceeded: 'inner TTL expired on this hop (handed to the stack, which answers with ICMP)',
  encap_failed: 'the packet could not be encapsulated',
  decap_failed: 'the outer headers could not be removed',
  no_neigh: 'the MAC of a host-gw next hop could not be resolved',
  source_mac: 'tunnel packet from a peer\'s IP whose outer source MAC is not our next hop towards that peer (--check-source-mac)',
};

export function dropReasonIndex(name: DropReason): number {
  return DROP_REASONS.indexOf(name);
}

/**
 * Fast-path events, indexed as enum fbpf_fast_event in bpf/include/fbpf_shared.h
 * (the `event` label of flannel_bpf_fast_path_packets_total).
 */
export const FAST_EVENTS = ['fast_tx', 'fast_rx', 'ct_tracked', 'not_eligible', 'fast_rx_peer'] as const;
export type FastEvent = (typeof FAST_EVENTS)[number];

export const FAST_EVENT_HELP: Record<FastEvent, string> = {
  fast_tx: 'pod packets sent to a peer from cni0 ingress, bypassing the kernel forwarding path',
  fast_rx: 'packets from peers delivered to a local pod, bypassing the kernel forwarding path',
  ct_tracked: 'packets left on the compat path because conntrack tracks their flow (NAT, kube-proxy)',
  not_eligible: 'packets left on the compat path: not TCP/UDP, fragment, TTL, or the pod MAC unknown',
  fast_rx_peer: 'of fast_rx: delivered straight into the pod\'s eth0 (bpf_redirect_peer) rather than through the cni0 bridge',
};
