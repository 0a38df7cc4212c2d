// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * dev_ingress.c — TC ingress on the flannel-bpf device (fast path, opt-in).
 * Every packet from a peer enters the stack here: decapsulated by the kernel
 * VXLAN device, handed over by the XDP/TC decap, or steered (host-gw /
 * DirectRouting). A packet for a local pod whose flow conntrack does not
 * track goes straight to the pod through the cni0 bridge (MACs from the FIB),
 * skipping the kernel's forwarding path; everything else continues up the
 * stack (compat path).
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/count.h"
#include "lib/parse.h"
#include "lib/encap.h"
#include "lib/ct.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int fbpf_not_eligible(struct __sk_buff *skb)
{
	fbpf_count_fast(FBPF_FAST_NOT_ELIGIBLE, fbpf_skb_segs(skb), skb->len);
	return TC_ACT_OK;
}

SEC("tc")
int fbpf_dev_ingress(struct __sk_buff *skb)
{
	const struct fbpf_node_config *cfg = fbpf_node_config();
	struct bpf_fib_lookup fib = {};
	void *data, *data_end;
	struct iphdr *ip;
	__u32 mask;
	long rc;

	if (!cfg || !(cfg->flags & FBPF_F_FAST_PATH) || !cfg->cni_ifindex)
		return TC_ACT_OK;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	ip = fbpf_parse_ipv4(data, data_end);
	if (!ip)
		return TC_ACT_OK;
	mask = cfg->subnet_len ? ~0U << (32 - cfg->subnet_len) : 0;
	if ((bpf_ntohl(ip->daddr) & mask) != bpf_ntohl(cfg->subnet_be))
		return TC_ACT_OK; /* not for a local pod */
	if (ip->ttl <= 1)
		return fbpf_not_eligible(skb);
	switch (fbpf_ct_tracked(skb, ip, data_end)) {
	case FBPF_CT_UNTRACKED:
		break;
	case FBPF_CT_TRACKED:
		fbpf_count_fast(FBPF_FAST_CT_TRACKED, fbpf_skb_segs(skb), skb->len);
		return TC_ACT_OK;
	default:
		return fbpf_not_eligible(skb);
	}

	fib.family = AF_INET;
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	fib.ifindex = cfg->cni_ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	/* Only pods behind cni0 whose MAC is known; local addresses and the rest go up the stack. */
	if (rc != BPF_FIB_LKUP_RET_SUCCESS || fib.ifindex != cfg->cni_ifindex)
		return fbpf_not_eligible(skb);

	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	ip = fbpf_parse_ipv4(data, data_end);
	if (!ip)
		return TC_ACT_OK;
	fbpf_ip_decrease_ttl(ip);
	if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0))
		return TC_ACT_SHOT;
	fbpf_count_fast(FBPF_FAST_RX, fbpf_skb_segs(skb), skb->len - FBPF_ETH_HLEN);
	return bpf_redirect(fib.ifindex, 0);
}
