// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * dev_egress.c — TC egress on the flannel-bpf device: the send path.
 *
 * The kernel routes the whole cluster network to the flannel-bpf device; here
 * the inner destination is looked up in the peers map and the packet leaves
 * through the uplink, encapsulated (vxlan, udp) or not (DirectRouting,
 * host-gw). Destinations outside every peer subnet are left untouched.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/count.h"
#include "lib/encap.h"
#include "lib/fib.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * A packet whose TTL would expire on this hop goes back into the stack on the
 * device's own ingress: the kernel's forwarding path then drops it and sends
 * ICMP time-exceeded to the source, as a router must.
 */
static __always_inline int fbpf_ttl_exceeded(struct __sk_buff *skb, const struct fbpf_node_config *cfg)
{
	fbpf_count_drop(FBPF_DROP_TTL_EXCEEDED, skb->len);
	if (bpf_skb_store_bytes(skb, 0, cfg->dev_mac, ETH_ALEN, 0))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

SEC("tc")
int fbpf_dev_egress(struct __sk_buff *skb)
{
	const struct fbpf_node_config *cfg = fbpf_node_config();
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct fbpf_lpm_key key = { .prefixlen = 32 };
	const struct fbpf_peer *found;
	struct fbpf_peer peer;
	__u64 segs, bytes;
	__u8 tos;
	__be16 sport;
	int ret = TC_ACT_SHOT;

	if (!cfg)
		return TC_ACT_OK;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->version != 4)
		return TC_ACT_OK;

	key.addr_be = ip->daddr;
	found = bpf_map_lookup_elem(&fbpf_peers, &key);
	if (!found)
		return TC_ACT_OK;
	__builtin_memcpy(&peer, found, sizeof(peer));

	if (ip->ttl <= 1)
		return fbpf_ttl_exceeded(skb, cfg);
	fbpf_ip_decrease_ttl(ip);
	tos = ip->tos;
	segs = fbpf_skb_segs(skb);
	bytes = skb->len - FBPF_ETH_HLEN;

	if (peer.mode == FBPF_MODE_DIRECT || peer.mode == FBPF_MODE_HOSTGW) {
		int fib = fbpf_fib_redirect(skb, cfg, peer.public_ip_be, 1, &ret);

		if (fib == FBPF_FIB_RESOLVED) {
			fbpf_count_tx(peer.peer_id, segs, bytes);
			return ret;
		}
		if (peer.mode == FBPF_MODE_HOSTGW) {
			fbpf_count_tx(peer.peer_id, segs, bytes);
			return fbpf_send_via_neigh(cfg, peer.public_ip_be);
		}
		/*
		 * DirectRouting peer whose MAC is not resolved yet (or that is not
		 * on-link after all): VXLAN reaches it too, and resolving the outer
		 * destination resolves the same neighbour for the next packets.
		 */
		peer.mode = FBPF_MODE_VXLAN;
	}

	sport = fbpf_flow_sport(skb);
	if (peer.mode == FBPF_MODE_VXLAN)
		ret = fbpf_encap_vxlan(skb, cfg, &peer, tos, sport);
	else if (peer.mode == FBPF_MODE_UDP)
		ret = fbpf_encap_udp(skb, cfg, &peer, tos, sport);
	else
		return TC_ACT_OK;
	if (ret) {
		fbpf_count_drop(FBPF_DROP_ENCAP_FAILED, skb->len);
		return TC_ACT_SHOT;
	}
	fbpf_count_tx(peer.peer_id, segs, bytes);
	return fbpf_send_encapped(skb, cfg, peer.public_ip_be);
}
