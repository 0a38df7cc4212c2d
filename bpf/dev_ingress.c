// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * dev_ingress.c — TC ingress on the flannel-bpf VXLAN device (kernel decap
 * engine). The device runs in external (collect_md) mode on the VXLAN port and
 * has already removed the outer headers; the tunnel key says who sent the
 * packet and with which VNI. Only known peers with our VNI get through.
 * Frames without tunnel metadata were handed over by our own programs
 * (XDP/TC decap, host-gw steering) and pass untouched.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/count.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int fbpf_drop(__u32 reason, struct __sk_buff *skb)
{
	fbpf_count_drop(reason, skb->len);
	return TC_ACT_SHOT;
}

SEC("tc")
int fbpf_dev_ingress(struct __sk_buff *skb)
{
	const struct fbpf_node_config *cfg = fbpf_node_config();
	const struct fbpf_tunnel_source *src;
	struct bpf_tunnel_key key = {};
	void *data, *data_end;
	struct ethhdr *eth;
	__be32 remote;

	if (!cfg)
		return TC_ACT_OK;
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0)
		return TC_ACT_OK;

	remote = bpf_htonl(key.remote_ipv4);
	src = bpf_map_lookup_elem(&fbpf_sources, &remote);
	if (!src)
		return fbpf_drop(FBPF_DROP_UNKNOWN_SOURCE, skb);
	if (key.tunnel_id != cfg->vni)
		return fbpf_drop(FBPF_DROP_WRONG_VNI, skb);

	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return fbpf_drop(FBPF_DROP_TRUNCATED, skb);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return fbpf_drop(FBPF_DROP_INNER_NOT_IPV4, skb);
	if (!fbpf_mac_eq(eth->h_dest, cfg->vtep_mac))
		return fbpf_drop(FBPF_DROP_INNER_DST_MAC, skb);

	fbpf_count_rx(src->peer_id, fbpf_skb_segs(skb), skb->len - FBPF_ETH_HLEN);
	return TC_ACT_OK;
}
