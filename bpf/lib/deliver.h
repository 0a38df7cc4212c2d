/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * deliver.h — fast-path delivery of a packet from a peer to a local pod,
 * bypassing the kernel's forwarding path (TC ingress only).
 */
#ifndef FBPF_DELIVER_H
#define FBPF_DELIVER_H

#include "maps.h"
#include "count.h"
#include "parse.h"
#include "encap.h"
#include "ct.h"

#define FBPF_NOT_DELIVERED (-1)

static __always_inline int fbpf_not_eligible(struct __sk_buff *skb)
{
	fbpf_count_fast(FBPF_FAST_NOT_ELIGIBLE, fbpf_skb_segs(skb), skb->len);
	return FBPF_NOT_DELIVERED;
}

/*
 * Deliver the Ethernet/IPv4 frame in skb to the local pod it is addressed to,
 * when the fast path may take it: our subnet, TTL > 1, TCP/UDP, a flow
 * conntrack does not track, a pod MAC the kernel has resolved. Into the
 * pod's own eth0 with bpf_redirect_peer when the agent knows the pod's veth
 * (and its MAC matches the neighbour entry), else out of cni0 to the bridge.
 * Returns the TC verdict, or FBPF_NOT_DELIVERED to leave the packet to the
 * stack (the caller decides where it enters).
 */
static __always_inline int fbpf_fast_deliver(struct __sk_buff *skb, const struct fbpf_node_config *cfg)
{
	struct bpf_fib_lookup fib = {};
	const struct fbpf_endpoint *ep;
	void *data, *data_end;
	struct iphdr *ip;
	__be32 daddr;
	__u32 mask, ifindex;
	long rc;

	if (!(cfg->flags & FBPF_F_FAST_PATH) || !cfg->cni_ifindex)
		return FBPF_NOT_DELIVERED;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	ip = fbpf_parse_ipv4(data, data_end);
	if (!ip)
		return FBPF_NOT_DELIVERED;
	mask = cfg->subnet_len ? ~0U << (32 - cfg->subnet_len) : 0;
	if ((bpf_ntohl(ip->daddr) & mask) != bpf_ntohl(cfg->subnet_be))
		return FBPF_NOT_DELIVERED; /* not for a local pod */
	if (ip->ttl <= 1)
		return fbpf_not_eligible(skb);
	switch (fbpf_ct_tracked(skb, ip, data_end)) {
	case FBPF_CT_UNTRACKED:
		break;
	case FBPF_CT_TRACKED:
		fbpf_count_fast(FBPF_FAST_CT_TRACKED, fbpf_skb_segs(skb), skb->len);
		return FBPF_NOT_DELIVERED;
	default:
		return fbpf_not_eligible(skb);
	}
	daddr = ip->daddr;
	fib.family = AF_INET;
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = daddr;
	fib.ifindex = cfg->cni_ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	/* Only pods behind cni0 whose MAC is known; local addresses and the rest go up the stack. */
	if (rc != BPF_FIB_LKUP_RET_SUCCESS || fib.ifindex != cfg->cni_ifindex)
		return fbpf_not_eligible(skb);

	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	ip = fbpf_parse_ipv4(data, data_end);
	if (!ip)
		return FBPF_NOT_DELIVERED;
	fbpf_ip_decrease_ttl(ip);
	if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0))
		return TC_ACT_SHOT;
	fbpf_count_fast(FBPF_FAST_RX, fbpf_skb_segs(skb), skb->len - FBPF_ETH_HLEN);
	ep = bpf_map_lookup_elem(&fbpf_endpoints, &daddr);
	if (ep && fbpf_mac_eq(ep->mac, fib.dmac)) {
		ifindex = ep->ifindex;
		fbpf_count_fast(FBPF_FAST_RX_PEER, fbpf_skb_segs(skb), skb->len - FBPF_ETH_HLEN);
		return bpf_redirect_peer(ifindex, 0);
	}
	return bpf_redirect(fib.ifindex, 0);
}

#endif /* FBPF_DELIVER_H */
