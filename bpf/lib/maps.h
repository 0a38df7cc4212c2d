/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * maps.h — the maps of DESIGN.md §3. Every program includes this file; all
 * maps are pinned by name under the node's pin directory, so the programs of
 * one node (and successive agent runs) share one set of maps.
 */
#ifndef FBPF_MAPS_H
#define FBPF_MAPS_H

#include "common.h"

/* Pod subnet -> how to reach it. Written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct fbpf_lpm_key);
	__type(value, struct fbpf_peer);
	__uint(max_entries, FBPF_MAX_PEERS_DEFAULT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fbpf_peers SEC(".maps");

/* Peer public IP (network order) -> peer id. The tunnel source check. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct fbpf_tunnel_source);
	__uint(max_entries, FBPF_MAX_PEERS_DEFAULT);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fbpf_sources SEC(".maps");

/* The node's own configuration. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct fbpf_node_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fbpf_config SEC(".maps");

/* Peer id -> tx/rx counters. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fbpf_peer_stats);
	__uint(max_entries, FBPF_MAX_PEERS_DEFAULT);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fbpf_peer_stats SEC(".maps");

/* Drop reason -> counters. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fbpf_drop_stats);
	__uint(max_entries, FBPF_DROP_REASONS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fbpf_drops SEC(".maps");

/* Local pod IPv4 -> its veth and MAC (fast-path delivery with bpf_redirect_peer). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct fbpf_endpoint);
	__uint(max_entries, FBPF_MAX_ENDPOINTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fbpf_endpoints SEC(".maps");

/* Fast-path event -> counters. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fbpf_drop_stats);
	__uint(max_entries, FBPF_FAST_EVENTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fbpf_fast_stats SEC(".maps");

/* The node config, or NULL while the agent has not configured this node. */
static __always_inline const struct fbpf_node_config *fbpf_node_config(void)
{
	__u32 zero = 0;
	const struct fbpf_node_config *cfg = bpf_map_lookup_elem(&fbpf_config, &zero);

	if (!cfg || cfg->abi_version != FBPF_ABI_VERSION)
		return 0;
	return cfg;
}

#endif /* FBPF_MAPS_H */
