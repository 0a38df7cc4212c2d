/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ct.h — asking netfilter's conntrack whether it tracks a flow (kfuncs
 * bpf_skb_ct_lookup / bpf_ct_release, kernel ≥ 6.0 with nf_conntrack).
 *
 * The fast path may bypass the stack only for flows conntrack does not know:
 * a flow that netfilter tracks or NATs (kube-proxy) must see every packet in
 * both directions, or conntrack marks them INVALID and kube-proxy drops them.
 * A flow that starts on the fast path is never seen by conntrack on this node,
 * in either direction, so the decision is the same for both directions.
 */
#ifndef FBPF_CT_H
#define FBPF_CT_H

#include "common.h"
#include <bpf/bpf_core_read.h>

/*
 * Kernel structs, CO-RE relocated against the running kernel's BTF: only the
 * fields we read are declared.
 */
struct nf_conn {
	unsigned long status;
} __attribute__((preserve_access_index));

struct sk_buff {
	unsigned long _nfct;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

#define FBPF_NFCT_PTRMASK (~7UL)
#define FBPF_IPS_NAT_MASK ((1UL << 4) | (1UL << 5)) /* IPS_DST_NAT | IPS_SRC_NAT */

/* struct bpf_ct_opts as of 6.1 (12 bytes; later kernels accept this size too). */
struct bpf_ct_opts {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u8 reserved[2];
};

#define FBPF_CT_OPTS_SZ 12
#define FBPF_CT_CURRENT_NETNS (-1)

extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb_ctx, struct bpf_sock_tuple *bpf_tuple,
					 __u32 tuple__sz, struct bpf_ct_opts *opts, __u32 opts__sz) __ksym;
extern void bpf_ct_release(struct nf_conn *ct) __ksym;

enum fbpf_ct_answer {
	FBPF_CT_UNTRACKED = 0, /* conntrack has no entry: the fast path may take it */
	FBPF_CT_TRACKED = 1,   /* conntrack has an entry (either direction) */
	FBPF_CT_UNKNOWN = 2,   /* not TCP/UDP, a fragment, or unreadable: stay on the compat path */
};

/*
 * Has netfilter already NATed this packet? With br_netfilter (kube-proxy
 * needs bridge-nf-call-iptables=1) PREROUTING runs in the bridge, before cni0's
 * TC ingress: a service's DNAT is applied and its conntrack entry is attached
 * to the skb but not confirmed yet, so a lookup does not find it. Such a
 * packet must continue through the stack, which confirms the entry.
 */
static __always_inline int fbpf_skb_natted(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
	struct nf_conn *ct;
	unsigned long status = 0;

	if (!bpf_core_field_exists(skb->_nfct))
		return 0;
	ct = (void *)(skb->_nfct & FBPF_NFCT_PTRMASK);
	if (!ct)
		return 0;
	if (bpf_probe_read_kernel(&status, sizeof(status), &ct->status))
		return 1; /* unreadable: be safe */
	return (status & FBPF_IPS_NAT_MASK) != 0;
}

/*
 * Does conntrack (in this netns) track the flow of the IPv4 packet at `ip`?
 * Contract: `ip` is a bounds-checked packet pointer into skb; reads the L4 ports.
 */
static __always_inline int fbpf_ct_tracked(struct __sk_buff *skb, struct iphdr *ip, void *data_end)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_ct_opts opts = { .netns_id = FBPF_CT_CURRENT_NETNS };
	struct nf_conn *ct;
	__u16 *ports;

	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return FBPF_CT_UNKNOWN;
	if (ip->frag_off & bpf_htons(FBPF_IP_MF | FBPF_IP_OFFSET))
		return FBPF_CT_UNKNOWN;
	if (ip->ihl != 5)
		return FBPF_CT_UNKNOWN;
	ports = (void *)(ip + 1);
	if ((void *)(ports + 2) > data_end)
		return FBPF_CT_UNKNOWN;
	if (fbpf_skb_natted(skb))
		return FBPF_CT_TRACKED;
	tuple.ipv4.saddr = ip->saddr;
	tuple.ipv4.daddr = ip->daddr;
	tuple.ipv4.sport = ports[0];
	tuple.ipv4.dport = ports[1];
	opts.l4proto = ip->protocol;
	ct = bpf_skb_ct_lookup(skb, &tuple, sizeof(tuple.ipv4), &opts, FBPF_CT_OPTS_SZ);
	if (!ct)
		return FBPF_CT_UNTRACKED;
	bpf_ct_release(ct);
	return FBPF_CT_TRACKED;
}

#endif /* FBPF_CT_H */
