/**
 * NodeMaps: the five maps of one node (DESIGN.md §3) with their codecs, taken
 * from a loaded object or from the node's pin directory. Opening checks every
 * map's key/value size against its codec and refuses on a mismatch.
 */
import path from 'node:path';
import { BpfMap } from '../loader/map.js';
import type { BpfObject } from '../loader/object.js';
import { TypedMap } from './codec.js';
import { peersCodec, type PeerValue } from './peers.js';
import { sourcesCodec, type TunnelSource } from './sources.js';
import { configCodec, type NodeConfig } from './config.js';
import { peerStatsCodec, type PeerStats } from './peer-stats.js';
import { dropsCodec, fastStatsCodec, type DropStats } from './drops.js';
import { endpointsCodec, type Endpoint } from './endpoints.js';
import { DROP_REASONS, FAST_EVENTS, type DropReason, type FastEvent } from './reasons.js';
import type { Cidr } from './addr.js';

export const MAP_NAMES = ['fbpf_peers', 'fbpf_sources', 'fbpf_config', 'fbpf_peer_stats', 'fbpf_drops', 'fbpf_fast_stats', 'fbpf_endpoints'] as const;
export type MapName = (typeof MAP_NAMES)[number];

/** The maps whose capacity follows --max-peers. */
export const PEER_SIZED_MAPS: readonly MapName[] = ['fbpf_peers', 'fbpf_sources', 'fbpf_peer_stats'];

export class NodeMaps {
  readonly peers: TypedMap<Cidr, PeerValue>;
  readonly sources: TypedMap<number, TunnelSource>;
  readonly config: TypedMap<number, NodeConfig>;
  readonly peerStats: TypedMap<number, PeerStats>;
  readonly drops: TypedMap<number, DropStats>;
  readonly fastStats: TypedMap<number, DropStats>;
  readonly endpoints: TypedMap<number, Endpoint>;

  private constructor(private readonly raw: Record<MapName, BpfMap>, private readonly owned: boolean) {
    this.peers = new TypedMap(raw.fbpf_peers, peersCodec);
    this.sources = new TypedMap(raw.fbpf_sources, sourcesCodec);
    this.config = new TypedMap(raw.fbpf_config, configCodec);
    this.peerStats = new TypedMap(raw.fbpf_peer_stats, peerStatsCodec);
    this.drops = new TypedMap(raw.fbpf_drops, dropsCodec);
    this.fastStats = new TypedMap(raw.fbpf_fast_stats, fastStatsCodec);
    this.endpoints = new TypedMap(raw.fbpf_endpoints, endpointsCodec);
  }

  static fromObject(obj: BpfObject): NodeMaps {
    const raw = Object.fromEntries(MAP_NAMES.map((n) => [n, obj.map(n)])) as Record<MapName, BpfMap>;
    return new NodeMaps(raw, false);
  }

  /** Open the pinned maps of a node (works while the agent is down). */
  static fromPinDir(dir: string): NodeMaps {
    const opened: BpfMap[] = [];
    try {
      const raw = Object.fromEntries(MAP_NAMES.map((n) => {
        const m = BpfMap.fromPin(path.join(dir, n));
        opened.push(m);
        return [n, m];
      })) as Record<MapName, BpfMap>;
      return new NodeMaps(raw, true);
    } catch (err) {
      for (const m of opened) m.close();
      throw err;
    }
  }

  map(name: MapName): BpfMap {
    return this.raw[name];
  }

  readConfig(): NodeConfig | null {
    try {
      return this.config.get(0);
    } catch {
      return null; /* not configured yet (ABI version 0) */
    }
  }

  /** Drop counters by reason, summed over CPUs. */
  readDrops(): Record<DropReason, DropStats> {
    const out = {} as Record<DropReason, DropStats>;
    const all = new Map(this.drops.entries());
    DROP_REASONS.forEach((name, i) => {
      out[name] = all.get(i) ?? { packets: 0n, bytes: 0n };
    });
    return out;
  }

  /** Fast-path events by name, summed over CPUs. */
  readFastStats(): Record<FastEvent, DropStats> {
    const all = new Map(this.fastStats.entries());
    return Object.fromEntries(FAST_EVENTS.map((name, i) => [name, all.get(i) ?? { packets: 0n, bytes: 0n }])) as Record<FastEvent, DropStats>;
  }

  /** Counters of the given peer ids (all ids when omitted: every non-zero slot). */
  readPeerStats(ids?: readonly number[]): Map<number, PeerStats> {
    const out = new Map<number, PeerStats>();
    if (ids) {
      for (const id of ids) out.set(id, this.peerStats.get(id) ?? { txPackets: 0n, txBytes: 0n, rxPackets: 0n, rxBytes: 0n });
      return out;
    }
    for (const [id, s] of this.peerStats.entries()) {
      if (s.txPackets || s.rxPackets || s.txBytes || s.rxBytes) out.set(id, s);
    }
    return out;
  }

  close(): void {
    if (this.owned) for (const m of Object.values(this.raw)) m.close();
  }
}
