// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * dev_ingress.c — TC ingress on the flannel-bpf device (fast path, opt-in).
 * Every packet from a peer enters the stack here: decapsulated by the kernel
 * VXLAN device, handed over by the XDP/TC decap, or steered (host-gw /
 * DirectRouting). A packet for a local pod that the fast path may take goes
 * straight into the pod (lib/deliver.h); everything else continues up the
 * stack (compat path).
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/deliver.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int fbpf_dev_ingress(struct __sk_buff *skb)
{
	const struct fbpf_node_config *cfg = fbpf_node_config();
	int ret;

	if (!cfg)
		return TC_ACT_OK;
	ret = fbpf_fast_deliver(skb, cfg);
	return ret == FBPF_NOT_DELIVERED ? TC_ACT_OK : ret;
}
