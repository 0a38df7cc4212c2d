/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * fib.h — sending a packet out of the uplink towards a peer.
 *
 * Resolved next hops get their MACs from bpf_fib_lookup and a plain
 * bpf_redirect. Unresolved ones go through bpf_redirect_neigh, and only in a
 * form whose queued packet is correct once ARP completes: for encapsulated
 * packets without an explicit next hop (the kernel routes the outer header and
 * attaches that route to the skb). See DESIGN.md §2 "Things that bite".
 */
#ifndef FBPF_FIB_H
#define FBPF_FIB_H

#include "common.h"

enum fbpf_fib_result {
	FBPF_FIB_RESOLVED = 0, /* MACs written, *ret holds the redirect verdict */
	FBPF_FIB_NO_NEIGH = 1, /* the next hop is on-link but its MAC is unknown yet */
	FBPF_FIB_GATEWAY = 2,  /* the address is not on-link: it is reached through a router */
	FBPF_FIB_FAILED = 3,   /* no usable route */
};

/*
 * Look up `dst` from the uplink's point of view (output lookup). When the
 * neighbour is resolved, write the Ethernet addresses into the frame and set
 * *oif to the interface to send on. When `want_onlink` is set, a route
 * through a gateway is reported as FBPF_FIB_GATEWAY and nothing is written.
 */
static __always_inline int fbpf_fib_resolve(struct __sk_buff *skb, const struct fbpf_node_config *cfg,
					    __be32 dst, int want_onlink, __u32 *oif)
{
	struct bpf_fib_lookup fib = {};
	long rc;

	fib.family = AF_INET;
	fib.ipv4_src = cfg->public_ip_be;
	fib.ipv4_dst = dst;
	fib.ifindex = cfg->uplink_ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	if (want_onlink && (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH) &&
	    fib.ipv4_dst != dst)
		return FBPF_FIB_GATEWAY;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return FBPF_FIB_NO_NEIGH;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return FBPF_FIB_FAILED;
	if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0))
		return FBPF_FIB_FAILED;
	*oif = fib.ifindex;
	return FBPF_FIB_RESOLVED;
}

/* fbpf_fib_resolve, then redirect there: *ret holds the verdict when RESOLVED. */
static __always_inline int fbpf_fib_redirect(struct __sk_buff *skb, const struct fbpf_node_config *cfg,
					     __be32 dst, int want_onlink, int *ret)
{
	__u32 oif = 0;
	int res = fbpf_fib_resolve(skb, cfg, dst, want_onlink, &oif);

	if (res == FBPF_FIB_RESOLVED)
		*ret = bpf_redirect(oif, 0);
	return res;
}

/* Send an encapsulated frame whose outer destination is `dst` (a peer's public IP). */
static __always_inline int fbpf_send_encapped(struct __sk_buff *skb, const struct fbpf_node_config *cfg,
					      __be32 dst)
{
	int ret = TC_ACT_SHOT;

	if (fbpf_fib_redirect(skb, cfg, dst, 0, &ret) == FBPF_FIB_RESOLVED)
		return ret;
	/* The kernel routes the outer header itself and resolves the neighbour. */
	return bpf_redirect_neigh(cfg->uplink_ifindex, 0, 0, 0);
}

/*
 * Send a plain frame to the on-link next hop `nh` through the neighbour layer.
 * Caveat (why uplink_egress.c exists): when the neighbour is unresolved the
 * kernel queues the frame and, once ARP completes, re-outputs it through the
 * neighbour of the skb's original route (the flannel-bpf device's), i.e.
 * with the device's MAC as destination, out of the uplink. The uplink egress
 * program recognises those frames and gives them the right MACs.
 */
static __always_inline int fbpf_send_via_neigh(const struct fbpf_node_config *cfg, __be32 nh)
{
	struct bpf_redir_neigh p = {};

	p.nh_family = AF_INET;
	p.ipv4_nh = nh;
	return bpf_redirect_neigh(cfg->uplink_ifindex, &p, sizeof(p), 0);
}

#endif /* FBPF_FIB_H */
