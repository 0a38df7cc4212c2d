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
#include "lib/parse.h"
#include "lib/send.h"

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
	struct iphdr *ip;
	struct fbpf_peer peer;

	if (!cfg)
		return TC_ACT_OK;
	ip = fbpf_parse_ipv4((void *)(long)skb->data, (void *)(long)skb->data_end);
	if (!ip || !fbpf_peer_for(ip->daddr, &peer))
		return TC_ACT_OK;
	if (ip->ttl <= 1)
		return fbpf_ttl_exceeded(skb, cfg);
	return fbpf_send_to_peer(skb, cfg, ip, &peer);
}
