/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* encap.h — building flannel's VXLAN and UDP encapsulations in TC (skb) context. */
#ifndef FBPF_ENCAP_H
#define FBPF_ENCAP_H

#include "common.h"

/* Outer headers of a VXLAN packet, written in one store after the outer Ethernet header. */
struct fbpf_vxlan_encap {
	struct iphdr ip;
	struct udphdr udp;
	struct fbpf_vxlanhdr vx;
	struct ethhdr eth;
} __attribute__((packed));

/* Outer headers of a flannel UDP packet (no header of its own: the inner IP packet follows). */
struct fbpf_udp_encap {
	struct iphdr ip;
	struct udphdr udp;
} __attribute__((packed));

_Static_assert(sizeof(struct fbpf_vxlan_encap) == FBPF_VXLAN_ENCAP_LEN, "vxlan encap is 50 bytes");
_Static_assert(sizeof(struct fbpf_udp_encap) == FBPF_UDP_ENCAP_LEN, "udp encap is 28 bytes");

/*
 * Decrement the TTL of an IPv4 header in packet memory and patch its checksum
 * incrementally (RFC 1624, as the kernel's ip_decrease_ttl). The header's
 * one's-complement sum is unchanged, so skb->csum needs no update.
 */
static __always_inline void fbpf_ip_decrease_ttl(struct iphdr *ip)
{
	__u32 check = ip->check;

	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xFFFF));
	ip->ttl--;
}

/*
 * Outer UDP source port from the inner flow hash, in 49152..65535, so that
 * flows spread over NIC queues and ECMP paths the way the kernel's vxlan does.
 */
static __always_inline __be16 fbpf_flow_sport(struct __sk_buff *skb)
{
	__u32 hash = bpf_get_hash_recalc(skb);

	return bpf_htons(FBPF_SPORT_MIN + (hash >> (32 - FBPF_SPORT_BITS)));
}

/* Outer ECN from the inner TOS as RFC 6040 / INET_ECN_encapsulate: copy, but CE becomes ECT(0). */
static __always_inline __u8 fbpf_outer_tos(__u8 inner_tos)
{
	__u8 ecn = inner_tos & FBPF_IP_ECN_MASK;

	return ecn == FBPF_IP_ECN_MASK ? 0x02 : ecn;
}

/* An IP total length or UDP length field; GSO super-packets may exceed 16 bits (0, as the kernel). */
static __always_inline __be16 fbpf_len16(__u32 len)
{
	return len > 0xffff ? 0 : bpf_htons((__u16)len);
}

/* Fill an outer IPv4 header (no options, DF clear, TTL 64, UDP) with its checksum. */
static __always_inline void fbpf_outer_ip(struct iphdr *ip, __be32 saddr, __be32 daddr,
					  __u32 tot_len, __u8 inner_tos)
{
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = fbpf_outer_tos(inner_tos);
	ip->tot_len = fbpf_len16(tot_len);
	ip->id = (__be16)bpf_get_prandom_u32();
	ip->frag_off = 0;
	ip->ttl = FBPF_IPV4_DEFAULT_TTL;
	ip->protocol = IPPROTO_UDP;
	ip->check = 0;
	ip->saddr = saddr;
	ip->daddr = daddr;
	ip->check = fbpf_ipv4_csum(ip);
}

/*
 * Encapsulate the frame in VXLAN towards `peer`.
 * Contract: skb starts with Ethernet + the inner IPv4 packet; on success the
 * frame is outer Eth (unchanged, the caller rewrites or lets the neighbour
 * layer fill it) / IPv4 / UDP(sport, cfg->port, csum 0) / VXLAN(I, VNI) /
 * inner Eth(src = our VtepMAC, dst = peer VtepMAC) / inner IPv4. GSO packets
 * keep their segment size (FIXED_GSO: the device MTU already leaves room)
 * and are marked UDP-tunnel so they segment correctly. Returns 0 or < 0.
 */
static __always_inline int fbpf_encap_vxlan(struct __sk_buff *skb, const struct fbpf_node_config *cfg,
					    const struct fbpf_peer *peer, __u8 inner_tos, __be16 sport)
{
	__u32 inner_len = skb->len - FBPF_ETH_HLEN;
	struct fbpf_vxlan_encap h = {};
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
		      BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
		      BPF_F_ADJ_ROOM_ENCAP_L2(FBPF_ETH_HLEN);

	struct iphdr ip = {};

	fbpf_outer_ip(&ip, cfg->public_ip_be, peer->public_ip_be,
		      inner_len + FBPF_VXLAN_ENCAP_LEN, inner_tos);
	__builtin_memcpy(&h.ip, &ip, sizeof(ip));
	h.udp.source = sport;
	h.udp.dest = bpf_htons(cfg->port);
	h.udp.len = fbpf_len16(inner_len + FBPF_VXLAN_ENCAP_LEN - FBPF_IPV4_HLEN);
	h.udp.check = 0;
	h.vx.flags = bpf_htonl(FBPF_VXLAN_FLAG_I);
	h.vx.vni_be = bpf_htonl(cfg->vni << 8);
	fbpf_mac_copy(h.eth.h_dest, peer->vtep_mac);
	fbpf_mac_copy(h.eth.h_source, cfg->vtep_mac);
	h.eth.h_proto = bpf_htons(ETH_P_IP);

	if (bpf_skb_adjust_room(skb, FBPF_VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC, flags))
		return -1;
	if (bpf_skb_store_bytes(skb, FBPF_ETH_HLEN, &h, sizeof(h), 0))
		return -1;
	return 0;
}

/*
 * Encapsulate the frame in flannel's UDP format towards `peer`.
 * Contract: as fbpf_encap_vxlan, but the result is outer Eth / IPv4 /
 * UDP(sport, cfg->port, csum 0) / inner IPv4 — flannel's udp backend wire
 * format, which has no header of its own.
 */
static __always_inline int fbpf_encap_udp(struct __sk_buff *skb, const struct fbpf_node_config *cfg,
					  const struct fbpf_peer *peer, __u8 inner_tos, __be16 sport)
{
	__u32 inner_len = skb->len - FBPF_ETH_HLEN;
	struct fbpf_udp_encap h = {};
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
		      BPF_F_ADJ_ROOM_ENCAP_L4_UDP;

	struct iphdr ip = {};

	fbpf_outer_ip(&ip, cfg->public_ip_be, peer->public_ip_be,
		      inner_len + FBPF_UDP_ENCAP_LEN, inner_tos);
	__builtin_memcpy(&h.ip, &ip, sizeof(ip));
	h.udp.source = sport;
	h.udp.dest = bpf_htons(cfg->port);
	h.udp.len = fbpf_len16(inner_len + FBPF_UDP_HLEN);
	h.udp.check = 0;

	if (bpf_skb_adjust_room(skb, FBPF_UDP_ENCAP_LEN, BPF_ADJ_ROOM_MAC, flags))
		return -1;
	if (bpf_skb_store_bytes(skb, FBPF_ETH_HLEN, &h, sizeof(h), 0))
		return -1;
	return 0;
}

#endif /* FBPF_ENCAP_H */
