// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * uplink_egress.c — TC egress on the uplink (host-gw backend only).
 *
 * The first packet to a host-gw peer whose MAC is not resolved yet goes
 * through bpf_redirect_neigh with an explicit next hop; the kernel queues it
 * until ARP completes and then sends it out of the uplink with the Ethernet
 * header of the flannel-bpf device's neighbour entry (see lib/fib.h). Such
 * frames carry the device's MAC as source: here they get the next hop's MAC,
 * so the first packet of a flow is not lost. Everything else passes.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/count.h"
#include "lib/fib.h"
#include "lib/parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int fbpf_uplink_egress(struct __sk_buff *skb)
{
	const struct fbpf_node_config *cfg = fbpf_node_config();
	struct fbpf_lpm_key key = { .prefixlen = 32 };
	const struct fbpf_peer *peer;
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *ip;
	__be32 nh;
	__u32 oif = 0;

	if (!cfg || cfg->backend != FBPF_BACKEND_HOSTGW)
		return TC_ACT_OK;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end || !fbpf_mac_eq(eth->h_source, cfg->dev_mac))
		return TC_ACT_OK;
	ip = fbpf_parse_ipv4(data, data_end);
	if (!ip)
		return TC_ACT_OK;
	key.addr_be = ip->daddr;
	peer = bpf_map_lookup_elem(&fbpf_peers, &key);
	if (!peer)
		return TC_ACT_OK;
	nh = peer->public_ip_be;
	if (fbpf_fib_resolve(skb, cfg, nh, 1, &oif) != FBPF_FIB_RESOLVED) {
		fbpf_count_drop(FBPF_DROP_NO_NEIGH, skb->len);
		return TC_ACT_SHOT;
	}
	if (oif == skb->ifindex)
		return TC_ACT_OK;
	return bpf_redirect(oif, 0);
}
