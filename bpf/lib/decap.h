/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * decap.h — removing the outer headers of a packet that fbpf_rx_classify()
 * accepted, in TC and in XDP, and handing the inner frame to the stack on the
 * flannel-bpf device.
 */
#ifndef FBPF_DECAP_H
#define FBPF_DECAP_H

#include "parse.h"

/*
 * TC: strip rx->strip bytes after the outer Ethernet header.
 * Contract: after success the frame is an Ethernet frame addressed to the
 * flannel-bpf device (VXLAN: the inner Ethernet header, whose destination
 * the classifier checked to be our VtepMAC; UDP: the outer header with its
 * destination rewritten to the device MAC) followed by the inner IPv4
 * packet. FIXED_GSO always: GRO'd packets keep their segment size.
 */
static __always_inline int fbpf_tc_decap(struct __sk_buff *skb, const struct fbpf_node_config *cfg,
					 const struct fbpf_rx *rx)
{
	struct ethhdr eth;

	if (rx->strip == FBPF_VXLAN_ENCAP_LEN) {
		if (bpf_skb_load_bytes(skb, FBPF_ETH_HLEN + FBPF_VXLAN_ENCAP_LEN - FBPF_ETH_HLEN,
				       &eth, sizeof(eth)))
			return -1;
	} else {
		if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)))
			return -1;
		fbpf_mac_copy(eth.h_dest, cfg->dev_mac);
	}
	if (bpf_skb_adjust_room(skb, -(__s32)rx->strip, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO))
		return -1;
	if (bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0))
		return -1;
	return 0;
}

/*
 * XDP: strip the outer headers in place and leave a fbpf_xdp_meta in front
 * of the frame for the TC hand-off on the uplink.
 * Contract: returns 0 when the frame now holds the inner frame (as
 * fbpf_tc_decap describes) with metadata; -1 when nothing was changed
 * (metadata unsupported) so that TC can decapsulate instead; -2 when the
 * frame was changed but could not be completed (the caller drops it).
 */
static __always_inline int fbpf_xdp_decap(struct xdp_md *ctx, const struct fbpf_node_config *cfg,
					  const struct fbpf_rx *rx)
{
	struct fbpf_xdp_meta *meta;
	struct ethhdr *eth;
	void *data, *data_end;
	struct ethhdr outer;

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta)))
		return -1;
	if (rx->strip == FBPF_UDP_ENCAP_LEN) {
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		eth = data;
		if ((void *)(eth + 1) > data_end)
			goto undo;
		__builtin_memcpy(&outer, eth, sizeof(outer));
		fbpf_mac_copy(outer.h_dest, cfg->dev_mac);
	}
	if (bpf_xdp_adjust_head(ctx, (int)rx->strip))
		goto undo;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (rx->strip == FBPF_UDP_ENCAP_LEN) {
		eth = data;
		if ((void *)(eth + 1) > data_end)
			return -2;
		__builtin_memcpy(eth, &outer, sizeof(outer));
	}
	meta = (void *)(long)ctx->data_meta;
	if ((void *)(meta + 1) > data)
		return -2;
	meta->magic = FBPF_XDP_META_MAGIC;
	meta->peer_id = rx->peer_id;
	return 0;
undo:
	bpf_xdp_adjust_meta(ctx, (int)sizeof(*meta));
	return -1;
}

/*
 * TC on the uplink: is this a frame XDP decapsulated? (It carries our metadata.)
 */
static __always_inline int fbpf_xdp_decapped(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	struct fbpf_xdp_meta *meta = (void *)(long)skb->data_meta;

	if ((void *)(meta + 1) > data)
		return 0;
	return meta->magic == FBPF_XDP_META_MAGIC;
}

#endif /* FBPF_DECAP_H */
