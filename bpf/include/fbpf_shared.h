/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * fbpf_shared.h — every struct and constant shared between the BPF programs
 * and the agent (src/maps/ mirrors this file; the agent checks the sizes of
 * the loaded maps against its codecs and refuses to start on a mismatch).
 *
 * Byte order: fields named *_be are in network byte order exactly as they
 * appear on the wire; every other integer is in host byte order.
 * Layouts are explicit (no implicit padding) so that TypeScript can encode
 * them with fixed offsets; the _Static_asserts pin the sizes.
 */
#ifndef FBPF_SHARED_H
#define FBPF_SHARED_H

#include <linux/types.h>

#define FBPF_ABI_VERSION 1

/* Backend of the node (flannel's Backend.Type). */
#define FBPF_BACKEND_VXLAN  1
#define FBPF_BACKEND_HOSTGW 2
#define FBPF_BACKEND_UDP    3

/* How a peer subnet is reached (peers map value). */
#define FBPF_MODE_VXLAN  1 /* VXLAN encap to the peer's public IP */
#define FBPF_MODE_DIRECT 2 /* VXLAN DirectRouting: plain IP, next hop = peer public IP */
#define FBPF_MODE_HOSTGW 3 /* host-gw: plain IP, next hop = peer public IP */
#define FBPF_MODE_UDP    4 /* flannel UDP backend: IPv4/UDP carrying the inner IP packet */

/* Receive-side decapsulation engine (node config). */
#define FBPF_DECAP_KERNEL 1 /* VXLAN device in external mode decapsulates */
#define FBPF_DECAP_XDP    2 /* XDP on the uplink strips the outer headers */
#define FBPF_DECAP_TC     3 /* TC ingress on the uplink strips the outer headers */

/* Node config flags. */
#define FBPF_F_STEER_DIRECT (1U << 0) /* steer plain packets from peer subnets through the device */
#define FBPF_F_FAST_PATH    (1U << 1) /* reserved for the conntrack-gated fast path */
#define FBPF_F_CHECK_SRC_MAC (1U << 2) /* tunnel packets must come from the next hop's MAC */

/* Default ports (flannel's). */
#define FBPF_VXLAN_PORT 8472
#define FBPF_UDP_PORT   8285

/* Outer UDP source port range for hashed flows (as the kernel's vxlan does). */
#define FBPF_SPORT_MIN 49152
#define FBPF_SPORT_BITS 14 /* 49152 + [0, 16384) = 49152..65535 */

/*
 * Drop reasons: index into the drops map. Names are part of the metrics
 * surface (flannel_bpf_drops_total{reason}); keep src/maps/reasons.ts in sync.
 */
enum fbpf_drop_reason {
	FBPF_DROP_NONE = 0,           /* unused slot */
	FBPF_DROP_UNKNOWN_SOURCE = 1, /* tunnel packet whose outer source is not a peer */
	FBPF_DROP_WRONG_VNI = 2,      /* VXLAN VNI is not ours */
	FBPF_DROP_BAD_FLAGS = 3,      /* VXLAN flags other than exactly the I flag */
	FBPF_DROP_TRUNCATED = 4,      /* tunnel packet shorter than its headers say */
	FBPF_DROP_IP_OPTIONS = 5,     /* outer IPv4 header carries options */
	FBPF_DROP_FRAGMENT = 6,       /* outer IPv4 packet is a fragment */
	FBPF_DROP_INNER_NOT_IPV4 = 7, /* inner packet is not IPv4 */
	FBPF_DROP_INNER_DST_MAC = 8,  /* inner destination MAC is not our VtepMAC */
	FBPF_DROP_TTL_EXCEEDED = 9,   /* inner TTL expires here: handed to the stack (ICMP) */
	FBPF_DROP_ENCAP_FAILED = 10,  /* bpf_skb_adjust_room refused to grow the packet */
	FBPF_DROP_DECAP_FAILED = 11,  /* the outer headers could not be removed */
	FBPF_DROP_NO_NEIGH = 12,      /* a host-gw next hop's MAC could not be resolved */
	FBPF_DROP_SOURCE_MAC = 13,    /* tunnel packet from a peer's IP but not from our next hop's MAC */
	FBPF_DROP_REASONS = 14,       /* number of slots in the drops map */
};

/* Peers map (LPM trie): pod subnet -> how to reach it. */
struct fbpf_lpm_key {
	__u32 prefixlen; /* LPM tries want the prefix length first */
	__u32 addr_be;
};

struct fbpf_peer {
	__u8 mode;          /* FBPF_MODE_* */
	__u8 flags;         /* reserved, 0 */
	__u8 vtep_mac[6];   /* peer's VtepMAC (inner destination MAC) */
	__u32 peer_id;      /* index into peer_stats */
	__u32 public_ip_be; /* tunnel endpoint / next hop */
};

/* Tunnel sources map (hash): peer public IP -> peer id. */
struct fbpf_tunnel_source {
	__u32 peer_id;
	__u32 flags; /* reserved, 0 */
};

/* Node config (array of one). */
struct fbpf_node_config {
	__u32 abi_version;     /* FBPF_ABI_VERSION; 0 = not configured, programs pass everything */
	__u32 public_ip_be;    /* outer source IP; tunnel packets must be addressed to it */
	__u32 vni;             /* VXLAN network identifier (flannel: 1) */
	__u16 port;            /* tunnel UDP port, host order (8472 vxlan, 8285 udp) */
	__u8 backend;          /* FBPF_BACKEND_* */
	__u8 decap;            /* FBPF_DECAP_* */
	__u32 flags;           /* FBPF_F_* */
	__u32 uplink_ifindex;  /* the underlay interface */
	__u32 dev_ifindex;     /* the flannel-bpf device */
	__u32 subnet_be;       /* our pod subnet */
	__u32 network_be;      /* the cluster network */
	__u8 subnet_len;
	__u8 network_len;
	__u16 mtu;             /* pod / device MTU */
	__u8 vtep_mac[6];      /* our VtepMAC: inner source MAC, and what inner frames must be sent to */
	__u8 dev_mac[6];       /* MAC of the flannel-bpf device (= vtep_mac for vxlan) */
	__u8 uplink_mac[6];    /* MAC of the uplink */
	__u16 reserved;
	__u32 cni_ifindex;     /* the cni0 bridge (fast path), 0 = unknown */
};

/* Per-peer counters (per-CPU array indexed by peer id). */
struct fbpf_peer_stats {
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 rx_bytes;
};

/* Drop counters (per-CPU array indexed by enum fbpf_drop_reason). */
struct fbpf_drop_stats {
	__u64 packets;
	__u64 bytes;
};

/*
 * Local endpoints map (hash): pod IPv4 -> its host-side veth and MAC, for
 * bpf_redirect_peer delivery. Written by the agent from cni0's neighbour and
 * FDB tables; the programs only use an entry whose MAC matches the FIB's
 * neighbour for the address (a reused IP cannot be misdelivered).
 */
struct fbpf_endpoint {
	__u32 ifindex;    /* host side of the pod's veth pair (a cni0 port) */
	__u8 mac[6];      /* the pod's eth0 MAC */
	__u16 reserved;
};

#define FBPF_MAX_ENDPOINTS 4096

/*
 * Fast-path events (per-CPU array indexed by enum fbpf_fast_event, value
 * struct fbpf_drop_stats): what the conntrack-gated fast path did.
 */
enum fbpf_fast_event {
	FBPF_FAST_TX = 0,         /* pod → peer sent from cni0 ingress, bypassing forwarding */
	FBPF_FAST_RX = 1,         /* decapsulated packet delivered to a local pod, bypassing forwarding */
	FBPF_FAST_CT_TRACKED = 2, /* conntrack knows the flow: left on the compat path */
	FBPF_FAST_NOT_ELIGIBLE = 3, /* not TCP/UDP, fragment, TTL, unresolved MAC…: compat path */
	FBPF_FAST_RX_PEER = 4,    /* of FBPF_FAST_RX: delivered with bpf_redirect_peer (known endpoint) */
	FBPF_FAST_EVENTS = 5,
};

/* Metadata XDP leaves in front of a frame it decapsulated, for the TC hand-off. */
#define FBPF_XDP_META_MAGIC 0xfb9f0001U
struct fbpf_xdp_meta {
	__u32 magic;
	__u32 peer_id;
};

/* Capacities (the agent may override max_entries of peers/sources/stats at load). */
#define FBPF_MAX_PEERS_DEFAULT 65536

#ifdef __bpf__
_Static_assert(sizeof(struct fbpf_lpm_key) == 8, "fbpf_lpm_key");
_Static_assert(sizeof(struct fbpf_peer) == 16, "fbpf_peer");
_Static_assert(sizeof(struct fbpf_tunnel_source) == 8, "fbpf_tunnel_source");
_Static_assert(sizeof(struct fbpf_node_config) == 64, "fbpf_node_config");
_Static_assert(sizeof(struct fbpf_peer_stats) == 32, "fbpf_peer_stats");
_Static_assert(sizeof(struct fbpf_drop_stats) == 16, "fbpf_drop_stats");
_Static_assert(sizeof(struct fbpf_xdp_meta) == 8, "fbpf_xdp_meta");
_Static_assert(sizeof(struct fbpf_endpoint) == 12, "fbpf_endpoint");
#endif

#endif /* FBPF_SHARED_H */
