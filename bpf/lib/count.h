/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* count.h — per-peer and per-reason counters (per-CPU, so plain increments). */
#ifndef FBPF_COUNT_H
#define FBPF_COUNT_H

#include "maps.h"

/* Count one dropped packet of `bytes` bytes under `reason`. */
static __always_inline void fbpf_count_drop(__u32 reason, __u64 bytes)
{
	struct fbpf_drop_stats *st = bpf_map_lookup_elem(&fbpf_drops, &reason);

	if (st) {
		st->packets++;
		st->bytes += bytes;
	}
}

/* Count `packets` packets / `bytes` inner bytes sent to peer `peer_id`. */
static __always_inline void fbpf_count_tx(__u32 peer_id, __u64 packets, __u64 bytes)
{
	struct fbpf_peer_stats *st = bpf_map_lookup_elem(&fbpf_peer_stats, &peer_id);

	if (st) {
		st->tx_packets += packets;
		st->tx_bytes += bytes;
	}
}

/* Count `packets` packets / `bytes` inner bytes received from peer `peer_id`. */
static __always_inline void fbpf_count_rx(__u32 peer_id, __u64 packets, __u64 bytes)
{
	struct fbpf_peer_stats *st = bpf_map_lookup_elem(&fbpf_peer_stats, &peer_id);

	if (st) {
		st->rx_packets += packets;
		st->rx_bytes += bytes;
	}
}

/* Count one fast-path event for an skb. */
static __always_inline void fbpf_count_fast(__u32 event, __u64 packets, __u64 bytes)
{
	struct fbpf_drop_stats *st = bpf_map_lookup_elem(&fbpf_fast_stats, &event);

	if (st) {
		st->packets += packets;
		st->bytes += bytes;
	}
}

/* Packets an skb stands for: GSO/GRO super-packets count every segment. */
static __always_inline __u64 fbpf_skb_segs(const struct __sk_buff *skb)
{
	return skb->gso_segs > 1 ? skb->gso_segs : 1;
}

#endif /* FBPF_COUNT_H */
