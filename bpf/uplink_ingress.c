// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * uplink_ingress.c — TC ingress on the uplink: the receive path's TC step.
 *
 *  - xdp engine: frames XDP decapsulated (they carry fbpf_xdp_meta) are
 *    handed to the stack on the flannel-bpf device;
 *  - every engine: tunnel packets get the shared verdict; refused ones are
 *    dropped and counted here, as early as TC allows;
 *  - kernel engine (vxlan): accepted packets are counted and continue to the
 *    flannel-bpf VXLAN device (VNI-bound, like flannel.1), which decapsulates;
 *  - tc engine, udp backend, or XDP not attached: stripped here and handed to
 *    the flannel-bpf device;
 *  - host-gw / DirectRouting: plain packets from a peer subnet are steered
 *    through the flannel-bpf device too, so that rp_filter, conntrack and
 *    kube-proxy see them arrive on it.
 * Everything else passes untouched.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/count.h"
#include "lib/parse.h"
#include "lib/decap.h"
#ifdef FBPF_FAST_PATH
#include "lib/deliver.h"
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * How many bytes of headers the classifier needs linear: the fixed stack,
 * plus the outer IPv4 options when there are some (rare: such tunnel packets
 * are refused, but they must be recognised to be counted).
 */
static __always_inline __u32 fbpf_rx_need(void *data, void *data_end)
{
	struct iphdr *ip = fbpf_parse_ipv4(data, data_end);

	if (ip && ip->ihl > 5)
		return FBPF_RX_PARSE_LEN + (ip->ihl - 5) * 4;
	return FBPF_RX_PARSE_LEN;
}

/*
 * Hand a decapsulated (or steered) frame over: straight into the local pod
 * when the fast path is built in and may take it (uplink_ingress_fast.c),
 * else to the stack on the flannel-bpf device (its MAC is the frame's
 * destination).
 */
static __always_inline int fbpf_to_device(struct __sk_buff *skb, const struct fbpf_node_config *cfg)
{
#ifdef FBPF_FAST_PATH
	int ret = fbpf_fast_deliver(skb, cfg);

	if (ret != FBPF_NOT_DELIVERED)
		return ret;
#endif
	return bpf_redirect(cfg->dev_ifindex, BPF_F_INGRESS);
}

/* Steer a plain packet from a peer subnet through the flannel-bpf device. */
static __always_inline int fbpf_steer(struct __sk_buff *skb, const struct fbpf_node_config *cfg)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = fbpf_parse_ipv4(data, data_end);
	struct fbpf_lpm_key key = { .prefixlen = 32 };
	const struct fbpf_peer *peer;

	if (!ip)
		return TC_ACT_OK;
	key.addr_be = ip->saddr;
	peer = bpf_map_lookup_elem(&fbpf_peers, &key);
	if (!peer)
		return TC_ACT_OK;
	fbpf_count_rx(peer->peer_id, fbpf_skb_segs(skb), skb->len - FBPF_ETH_HLEN);
	if (bpf_skb_store_bytes(skb, 0, cfg->dev_mac, ETH_ALEN, 0))
		return TC_ACT_SHOT;
	return fbpf_to_device(skb, cfg);
}

#ifndef FBPF_UPLINK_INGRESS_NAME
#define FBPF_UPLINK_INGRESS_NAME fbpf_uplink_ingress
#endif

SEC("tc")
int FBPF_UPLINK_INGRESS_NAME(struct __sk_buff *skb)
{
	const struct fbpf_node_config *cfg = fbpf_node_config();
	struct fbpf_rx rx = {};
	void *data, *data_end;
	__u32 linear, need;

	if (!cfg)
		return TC_ACT_OK;
	if (cfg->decap == FBPF_DECAP_XDP && fbpf_xdp_decapped(skb))
		return fbpf_to_device(skb, cfg);

	/*
	 * Pull only when the headers are not in the linear part already: a pull
	 * of a cloned skb (every TCP segment is one) copies its head.
	 */
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	need = fbpf_rx_need(data, data_end);
	linear = skb->data_end - skb->data;
	if (linear < need && skb->len > linear) {
		bpf_skb_pull_data(skb, skb->len < need ? skb->len : need);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}

	switch (fbpf_rx_classify(skb, data, data_end, skb->len, cfg, &rx)) {
	case FBPF_RX_DROP:
		fbpf_count_drop(rx.reason, skb->len);
		return TC_ACT_SHOT;
	case FBPF_RX_TUNNEL:
		if (cfg->decap == FBPF_DECAP_KERNEL && cfg->backend == FBPF_BACKEND_VXLAN) {
			/* The VXLAN device decapsulates (tunnel GRO); it only ever sees what passed here. */
			fbpf_count_rx(rx.peer_id, fbpf_skb_segs(skb), rx.inner_len);
			return TC_ACT_OK;
		}
		if (fbpf_tc_decap(skb, cfg, &rx)) {
			fbpf_count_drop(FBPF_DROP_DECAP_FAILED, skb->len);
			return TC_ACT_SHOT;
		}
		fbpf_count_rx(rx.peer_id, fbpf_skb_segs(skb), rx.inner_len);
		return fbpf_to_device(skb, cfg);
	default:
		break;
	}
	if (cfg->flags & FBPF_F_STEER_DIRECT)
		return fbpf_steer(skb, cfg);
	return TC_ACT_OK;
}
