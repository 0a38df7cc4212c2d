/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * parse.h — the receive verdict core shared by every decap engine (XDP, TC,
 * and the kernel engine's early check), so that all engines give the same
 * verdict and count the same reason for the same packet.
 */
#ifndef FBPF_PARSE_H
#define FBPF_PARSE_H

#include "maps.h"

enum fbpf_rx_verdict {
	FBPF_RX_PASS = 0,   /* not a tunnel packet for us: leave it to the stack */
	FBPF_RX_DROP = 1,   /* a tunnel packet we refuse: rx->reason says why */
	FBPF_RX_TUNNEL = 2, /* a valid tunnel packet from peer rx->peer_id */
};

struct fbpf_rx {
	__u32 reason;    /* FBPF_DROP_* when the verdict is DROP */
	__u32 peer_id;   /* sender when the verdict is TUNNEL */
	__u32 strip;     /* bytes after the outer Ethernet header to remove */
	__u32 inner_len; /* length of the inner IPv4 packet */
};

/*
 * Bytes of headers the classifier reads: Eth + IPv4 + UDP + VXLAN + Eth + IPv4
 * (84). An outer IPv4 header with options needs (ihl - 5) * 4 more.
 */
#define FBPF_RX_PARSE_LEN (FBPF_ETH_HLEN + FBPF_IPV4_HLEN + FBPF_UDP_HLEN + FBPF_VXLAN_HLEN + FBPF_ETH_HLEN + FBPF_IPV4_HLEN)

/* Is addr inside the cluster network? */
static __always_inline int fbpf_in_cluster(const struct fbpf_node_config *cfg, __be32 addr)
{
	__u32 mask = cfg->network_len ? ~0U << (32 - cfg->network_len) : 0;

	return (bpf_ntohl(addr) & mask) == bpf_ntohl(cfg->network_be);
}

/*
 * Would the node forward a packet from saddr to daddr that arrived on the
 * uplink (a unicast route through some device, e.g. to a local pod)? No for
 * its own addresses and broadcasts — cni0's gateway, the device's address,
 * the subnet broadcast — which the stack delivers locally, where the
 * kernel's tunnel socket listens on every address; no when nothing routes
 * daddr either.
 * Contract: ctx is the program's context (skb or xdp_md), only handed to
 * bpf_fib_lookup (an input lookup on the uplink); nothing is written.
 */
static __always_inline int fbpf_rx_forwarded(void *ctx, const struct fbpf_node_config *cfg,
					     __be32 saddr, __be32 daddr)
{
	struct bpf_fib_lookup fib = {};
	long rc;

	fib.family = AF_INET;
	fib.ipv4_src = saddr;
	fib.ipv4_dst = daddr;
	fib.ifindex = cfg->uplink_ifindex;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	return rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH ||
	       rc == BPF_FIB_LKUP_RET_FRAG_NEEDED;
}

/*
 * With FBPF_F_CHECK_SRC_MAC: did a tunnel packet from peer `saddr` come from
 * our next hop towards that peer (the peer when on-link, else the gateway),
 * i.e. is its outer source MAC the one an output FIB lookup from the uplink
 * returns? A host on the segment that forges a peer's IP has another MAC.
 * Contract: 1 when the check is off, when that next hop is not resolved (fail
 * open: nothing to compare; the agent keeps next hops resolved), or when the
 * MACs match; 0 otherwise. ctx is only handed to bpf_fib_lookup.
 */
static __always_inline int fbpf_rx_src_mac_ok(void *ctx, const struct fbpf_node_config *cfg,
					      __be32 saddr, const __u8 *smac)
{
	struct bpf_fib_lookup fib = {};

	if (!(cfg->flags & FBPF_F_CHECK_SRC_MAC))
		return 1;
	fib.family = AF_INET;
	fib.ipv4_src = cfg->public_ip_be;
	fib.ipv4_dst = saddr;
	fib.ifindex = cfg->uplink_ifindex;
	/* A nominal length: no MTU verdict wanted (with 0, an skb's own length is checked). */
	fib.tot_len = FBPF_IPV4_HLEN;
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT) != BPF_FIB_LKUP_RET_SUCCESS)
		return 1;
	return fbpf_mac_eq(smac, fib.dmac);
}

static __always_inline int fbpf_rx_drop(struct fbpf_rx *rx, __u32 reason)
{
	rx->reason = reason;
	return FBPF_RX_DROP;
}

/*
 * Classify one received frame.
 * Contract: ctx is the program's context (for a FIB lookup only);
 * [data, data_end) is the directly readable part of the frame and pkt_len its
 * full length. A packet is ours when it is IPv4/UDP to the tunnel port, with
 * a complete UDP header, addressed to anything the node would not forward:
 * every address outside the cluster network (the kernel's VXLAN socket
 * listens on every local address, so every such packet would reach it), and
 * inside it the node's own addresses (cni0's gateway, the device's address,
 * broadcasts: delivered to that socket too). Pod-to-pod UDP on the same port,
 * which DirectRouting carries unencapsulated, is forwarded to a pod and is not
 * ours. Until then the verdict is PASS. Checks then run in a fixed order
 * (source, source MAC, IP options, fragment, lengths, VXLAN flags, VNI, inner frame) and
 * the first failure is the drop reason. Nothing is written to the packet or
 * to maps.
 */
static __always_inline int fbpf_rx_classify(void *ctx, void *data, void *data_end, __u64 pkt_len,
					    const struct fbpf_node_config *cfg, struct fbpf_rx *rx)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;
	const struct fbpf_tunnel_source *src;
	__u32 ihl_len, tot_len, udp_len, inner_tot;
	__be32 saddr;

	if (cfg->backend != FBPF_BACKEND_VXLAN && cfg->backend != FBPF_BACKEND_UDP)
		return FBPF_RX_PASS;
	if ((void *)(eth + 1) > data_end)
		return FBPF_RX_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return FBPF_RX_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return FBPF_RX_PASS;
	if (ip->version != 4 || ip->ihl < 5)
		return FBPF_RX_PASS;
	if (ip->protocol != IPPROTO_UDP)
		return FBPF_RX_PASS;
	/* A later fragment has no UDP header: it cannot be recognised. */
	if (ip->frag_off & bpf_htons(FBPF_IP_OFFSET))
		return FBPF_RX_PASS;
	ihl_len = ip->ihl * 4;
	udp = (void *)ip + ihl_len;
	if ((void *)(udp + 1) > data_end)
		return FBPF_RX_PASS;
	if (udp->dest != bpf_htons(cfg->port))
		return FBPF_RX_PASS;
	/* Pod traffic to the same port (rare: only then is the FIB asked). */
	if (fbpf_in_cluster(cfg, ip->daddr) && fbpf_rx_forwarded(ctx, cfg, ip->saddr, ip->daddr))
		return FBPF_RX_PASS;

	/* Addressed to our tunnel: from here on every refusal is a counted drop. */
	saddr = ip->saddr;
	src = bpf_map_lookup_elem(&fbpf_sources, &saddr);
	if (!src)
		return fbpf_rx_drop(rx, FBPF_DROP_UNKNOWN_SOURCE);
	rx->peer_id = src->peer_id;
	if (!fbpf_rx_src_mac_ok(ctx, cfg, saddr, eth->h_source))
		return fbpf_rx_drop(rx, FBPF_DROP_SOURCE_MAC);
	if (ihl_len != FBPF_IPV4_HLEN)
		return fbpf_rx_drop(rx, FBPF_DROP_IP_OPTIONS);
	if (ip->frag_off & bpf_htons(FBPF_IP_MF))
		return fbpf_rx_drop(rx, FBPF_DROP_FRAGMENT);

	tot_len = bpf_ntohs(ip->tot_len);
	udp_len = bpf_ntohs(udp->len);
	if (tot_len + FBPF_ETH_HLEN > pkt_len || tot_len < FBPF_IPV4_HLEN + FBPF_UDP_HLEN)
		return fbpf_rx_drop(rx, FBPF_DROP_TRUNCATED);
	if (udp_len < FBPF_UDP_HLEN || udp_len > tot_len - FBPF_IPV4_HLEN)
		return fbpf_rx_drop(rx, FBPF_DROP_TRUNCATED);

	if (cfg->backend == FBPF_BACKEND_VXLAN) {
		struct fbpf_vxlanhdr *vx = (void *)(udp + 1);
		struct ethhdr *ieth;
		struct iphdr *iip;

		if ((void *)(vx + 1) > data_end ||
		    udp_len < FBPF_UDP_HLEN + FBPF_VXLAN_HLEN + FBPF_ETH_HLEN + FBPF_IPV4_HLEN)
			return fbpf_rx_drop(rx, FBPF_DROP_TRUNCATED);
		if (vx->flags != bpf_htonl(FBPF_VXLAN_FLAG_I) || (vx->vni_be & bpf_htonl(0xff)))
			return fbpf_rx_drop(rx, FBPF_DROP_BAD_FLAGS);
		if (vx->vni_be != bpf_htonl(cfg->vni << 8))
			return fbpf_rx_drop(rx, FBPF_DROP_WRONG_VNI);
		ieth = (void *)(vx + 1);
		if ((void *)(ieth + 1) > data_end)
			return fbpf_rx_drop(rx, FBPF_DROP_TRUNCATED);
		if (ieth->h_proto != bpf_htons(ETH_P_IP))
			return fbpf_rx_drop(rx, FBPF_DROP_INNER_NOT_IPV4);
		if (!fbpf_mac_eq(ieth->h_dest, cfg->vtep_mac))
			return fbpf_rx_drop(rx, FBPF_DROP_INNER_DST_MAC);
		iip = (void *)(ieth + 1);
		if ((void *)(iip + 1) > data_end)
			return fbpf_rx_drop(rx, FBPF_DROP_TRUNCATED);
		if (iip->version != 4 || iip->ihl < 5)
			return fbpf_rx_drop(rx, FBPF_DROP_INNER_NOT_IPV4);
		inner_tot = bpf_ntohs(iip->tot_len);
		if (inner_tot < iip->ihl * 4 ||
		    inner_tot > udp_len - FBPF_UDP_HLEN - FBPF_VXLAN_HLEN - FBPF_ETH_HLEN)
			return fbpf_rx_drop(rx, FBPF_DROP_TRUNCATED);
		rx->strip = FBPF_VXLAN_ENCAP_LEN;
	} else {
		struct iphdr *iip = (void *)(udp + 1);

		if ((void *)(iip + 1) > data_end || udp_len < FBPF_UDP_HLEN + FBPF_IPV4_HLEN)
			return fbpf_rx_drop(rx, FBPF_DROP_TRUNCATED);
		if (iip->version != 4 || iip->ihl < 5)
			return fbpf_rx_drop(rx, FBPF_DROP_INNER_NOT_IPV4);
		inner_tot = bpf_ntohs(iip->tot_len);
		if (inner_tot < iip->ihl * 4 || inner_tot > udp_len - FBPF_UDP_HLEN)
			return fbpf_rx_drop(rx, FBPF_DROP_TRUNCATED);
		rx->strip = FBPF_UDP_ENCAP_LEN;
	}
	rx->inner_len = inner_tot;
	return FBPF_RX_TUNNEL;
}

/*
 * Parse the Ethernet + IPv4 header at the start of a frame.
 * Contract: returns the IPv4 header when the frame is IPv4 and the base
 * header is readable, NULL otherwise.
 */
static __always_inline struct iphdr *fbpf_parse_ipv4(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->version != 4)
		return 0;
	return ip;
}

#endif /* FBPF_PARSE_H */
