/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* common.h — includes, wire-format constants and tiny helpers used by every program. */
#ifndef FBPF_COMMON_H
#define FBPF_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "../include/fbpf_shared.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#ifndef AF_INET
#define AF_INET 2
#endif

#define FBPF_ETH_HLEN   14
#define FBPF_IPV4_HLEN  20 /* without options */
#define FBPF_UDP_HLEN   8
#define FBPF_VXLAN_HLEN 8

/* Bytes a VXLAN encapsulation adds after the outer Ethernet header. */
#define FBPF_VXLAN_ENCAP_LEN (FBPF_IPV4_HLEN + FBPF_UDP_HLEN + FBPF_VXLAN_HLEN + FBPF_ETH_HLEN) /* 50 */
/* Bytes flannel's UDP encapsulation adds after the outer Ethernet header. */
#define FBPF_UDP_ENCAP_LEN (FBPF_IPV4_HLEN + FBPF_UDP_HLEN) /* 28 */

/* VXLAN header, RFC 7348. */
struct fbpf_vxlanhdr {
	__be32 flags;   /* only the I flag (0x08000000) may be set */
	__be32 vni_be;  /* VNI in the upper 24 bits, low 8 bits reserved (0) */
};
#define FBPF_VXLAN_FLAG_I 0x08000000U

#define FBPF_IP_MF     0x2000
#define FBPF_IP_OFFSET 0x1FFF
#define FBPF_IPV4_DEFAULT_TTL 64
#define FBPF_IP_ECN_MASK 0x03

static __always_inline int fbpf_mac_eq(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] &&
	       a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

static __always_inline void fbpf_mac_copy(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, 6);
}

/* Fold a 32-bit one's-complement sum into the 16-bit Internet checksum. */
static __always_inline __u16 fbpf_csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

/*
 * Checksum of a 20-byte IPv4 header (no options) whose check field is 0.
 * Contract: iph points to stack memory, not packet memory.
 */
static __always_inline __u16 fbpf_ipv4_csum(const struct iphdr *iph)
{
	const __u16 *w = (const __u16 *)iph;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*iph) / 2); i++)
		sum += w[i];
	return fbpf_csum_fold(sum);
}

#endif /* FBPF_COMMON_H */
