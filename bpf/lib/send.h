/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* send.h — sending an IPv4 packet to a peer: the shared core of the compat send path and the fast path. */
#ifndef FBPF_SEND_H
#define FBPF_SEND_H

#include "maps.h"
#include "count.h"
#include "encap.h"
#include "fib.h"

/*
 * Forward the frame to `peer` and return the TC verdict: the inner TTL is
 * lowered (the caller has checked it is > 1), then the frame goes out of the
 * uplink per the peer's mode — plain (DirectRouting / host-gw, MACs from the
 * FIB), VXLAN or flannel UDP (outer headers built here). Counts tx for the
 * peer, or encap_failed.
 * Contract: skb starts with Ethernet + IPv4 at `ip` (a packet pointer the
 * caller bounds-checked); packet pointers are invalid afterwards.
 */
static __always_inline int fbpf_send_to_peer(struct __sk_buff *skb, const struct fbpf_node_config *cfg,
					     struct iphdr *ip, struct fbpf_peer *peer)
{
	__u64 segs = fbpf_skb_segs(skb);
	__u64 bytes = skb->len - FBPF_ETH_HLEN;
	int ret = TC_ACT_SHOT;
	__be16 sport;
	__u8 tos;

	fbpf_ip_decrease_ttl(ip);
	tos = ip->tos;

	if (peer->mode == FBPF_MODE_DIRECT || peer->mode == FBPF_MODE_HOSTGW) {
		int fib = fbpf_fib_redirect(skb, cfg, peer->public_ip_be, 1, &ret);

		if (fib == FBPF_FIB_RESOLVED) {
			fbpf_count_tx(peer->peer_id, segs, bytes);
			return ret;
		}
		if (peer->mode == FBPF_MODE_HOSTGW) {
			fbpf_count_tx(peer->peer_id, segs, bytes);
			return fbpf_send_via_neigh(cfg, peer->public_ip_be);
		}
		/*
		 * DirectRouting peer whose MAC is not resolved yet (or that is not
		 * on-link after all): VXLAN reaches it too, and resolving the outer
		 * destination resolves the same neighbour for the next packets.
		 */
		peer->mode = FBPF_MODE_VXLAN;
	}

	sport = fbpf_flow_sport(skb);
	if (peer->mode == FBPF_MODE_VXLAN)
		ret = fbpf_encap_vxlan(skb, cfg, peer, tos, sport);
	else if (peer->mode == FBPF_MODE_UDP)
		ret = fbpf_encap_udp(skb, cfg, peer, tos, sport);
	else
		return TC_ACT_OK;
	if (ret) {
		fbpf_count_drop(FBPF_DROP_ENCAP_FAILED, skb->len);
		return TC_ACT_SHOT;
	}
	fbpf_count_tx(peer->peer_id, segs, bytes);
	return fbpf_send_encapped(skb, cfg, peer->public_ip_be);
}

/* The peer whose subnet holds `daddr`, copied (the agent may update the map meanwhile); 0 if none. */
static __always_inline int fbpf_peer_for(__be32 daddr, struct fbpf_peer *out)
{
	struct fbpf_lpm_key key = { .prefixlen = 32, .addr_be = daddr };
	const struct fbpf_peer *found = bpf_map_lookup_elem(&fbpf_peers, &key);

	if (!found)
		return 0;
	__builtin_memcpy(out, found, sizeof(*out));
	return 1;
}

#endif /* FBPF_SEND_H */
