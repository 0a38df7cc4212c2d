// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cni_ingress.c — TC ingress on the cni0 bridge (fast path, opt-in): a pod's
 * packet to a pod on another node is sent to the peer right here, skipping
 * the kernel's forwarding path (netfilter, routing, the flannel-bpf device),
 * when conntrack does not track its flow (lib/ct.h). Everything else —
 * tracked/NATed flows, the node itself, the internet, ICMP, TTL expiry —
 * takes the normal (compat) path.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/count.h"
#include "lib/parse.h"
#include "lib/send.h"
#include "lib/ct.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int fbpf_cni_ingress(struct __sk_buff *skb)
{
	const struct fbpf_node_config *cfg = fbpf_node_config();
	void *data, *data_end;
	struct iphdr *ip;
	struct fbpf_peer peer;

	if (!cfg || !(cfg->flags & FBPF_F_FAST_PATH))
		return TC_ACT_OK;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	ip = fbpf_parse_ipv4(data, data_end);
	if (!ip || !fbpf_peer_for(ip->daddr, &peer))
		return TC_ACT_OK;
	if (ip->ttl <= 1) {
		fbpf_count_fast(FBPF_FAST_NOT_ELIGIBLE, 1, skb->len);
		return TC_ACT_OK; /* the stack answers with ICMP time exceeded */
	}
	switch (fbpf_ct_tracked(skb, ip, data_end)) {
	case FBPF_CT_UNTRACKED:
		break;
	case FBPF_CT_TRACKED:
		fbpf_count_fast(FBPF_FAST_CT_TRACKED, fbpf_skb_segs(skb), skb->len);
		return TC_ACT_OK;
	default:
		fbpf_count_fast(FBPF_FAST_NOT_ELIGIBLE, fbpf_skb_segs(skb), skb->len);
		return TC_ACT_OK;
	}
	fbpf_count_fast(FBPF_FAST_TX, fbpf_skb_segs(skb), skb->len - FBPF_ETH_HLEN);
	return fbpf_send_to_peer(skb, cfg, ip, &peer);
}
