// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * uplink_xdp.c — XDP on the uplink (xdp decap engine): refuses bad tunnel
 * packets before an skb exists and strips the outer headers of good ones
 * before GRO, so the inner frames are GRO-merged. The TC step on the uplink
 * (uplink_ingress.c) hands the stripped frames to the flannel-bpf device.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/count.h"
#include "lib/parse.h"
#include "lib/decap.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int fbpf_uplink_xdp(struct xdp_md *ctx)
{
	const struct fbpf_node_config *cfg = fbpf_node_config();
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;
	struct fbpf_rx rx = {};
	int err;

	if (!cfg)
		return XDP_PASS;
	switch (fbpf_rx_classify(ctx, data, data_end, len, cfg, &rx)) {
	case FBPF_RX_DROP:
		fbpf_count_drop(rx.reason, len);
		return XDP_DROP;
	case FBPF_RX_TUNNEL:
		err = fbpf_xdp_decap(ctx, cfg, &rx);
		if (err == -1)
			return XDP_PASS; /* TC decapsulates it instead */
		if (err) {
			fbpf_count_drop(FBPF_DROP_DECAP_FAILED, len);
			return XDP_DROP;
		}
		fbpf_count_rx(rx.peer_id, 1, rx.inner_len);
		return XDP_PASS;
	default:
		return XDP_PASS;
	}
}
