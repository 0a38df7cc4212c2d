/**
 * The applier: the thin effectful edge of the reconciler. It keeps the lease
 * set, and on every change computes the desired state (pure: desiredState →
 * withPeerIds → diff against a mirror of the maps) and writes only the
 * difference, in batches, in APPLY_ORDER so that no subnet is ever without
 * an entry while it moves.
 *
 * At start it reads what is already in the (pinned) maps: entries of peers
 * that vanished while no agent ran are removed by the first apply (full
 * resync), and peer ids are recovered so counters continue across restarts.
 */
import type { NodeMaps } from '../../maps/index.js';
import type { PeerValue } from '../../maps/peers.js';
import type { TunnelSource } from '../../maps/sources.js';
import { formatCidr } from '../../maps/addr.js';
import type { Lease, Rejection } from '../lease/types.js';
import type { Logger } from '../log.js';
import { desiredState, type OwnNode, type UplinkFacts, type UnreachablePeer } from './desired.js';
import { withPeerIds, recoverPeerIds, type DesiredPeerWithId } from './ids.js';
import { diff, isEmptyDiff, applyDiffToMaps, type MapDiff } from './diff.js';

export interface ApplyResult {
  diff: MapDiff;
  /** Wall time of compute + map writes, seconds. */
  seconds: number;
  peers: number;
  rejected: Rejection[];
  unreachable: UnreachablePeer[];
}

export interface ReconcilerHooks {
  /** After every apply (metrics, state file). */
  applied?(r: ApplyResult): void;
  /** A rejection that is new since the previous apply (logged once, counted). */
  rejected?(r: Rejection): void;
}

export class Reconciler {
  readonly leases = new Map<string, Lease>();
  #ids = new Map<string, number>();
  #mirror = { peers: new Map<string, PeerValue>(), sources: new Map<number, TunnelSource>() };
  #planned: DesiredPeerWithId[] = [];
  #lastRejected = new Map<string, string>();
  #lastUnreachable = new Map<string, string>();
  #synced = false;
  #last: ApplyResult | null = null;

  constructor(
    private readonly maps: NodeMaps,
    private own: OwnNode,
    private uplink: UplinkFacts,
    private readonly capacity: number,
    private readonly log: Logger,
    private readonly hooks: ReconcilerHooks = {},
  ) {
    this.reloadMirror();
  }

  /** Re-read the maps into the mirror (start, and after a failed write). */
  reloadMirror(): void {
    this.#mirror.peers = new Map(this.maps.peers.entries().map(([k, v]) => [formatCidr(k), v]));
    this.#mirror.sources = new Map(this.maps.sources.entries());
  }

  /** Has a full lease snapshot been applied at least once? */
  get synced(): boolean { return this.#synced; }
  get last(): ApplyResult | null { return this.#last; }
  /** The programmed peers with their ids (for status and metrics labels). */
  get planned(): readonly DesiredPeerWithId[] { return this.#planned; }
  get ownNode(): OwnNode { return this.own; }

  get uplinkFacts(): UplinkFacts { return this.uplink; }
  setOwn(own: OwnNode): void { this.own = own; }
  setUplink(uplink: UplinkFacts): void { this.uplink = uplink; }

  /** Replace the whole lease set (snapshot / re-list) and apply. */
  snapshot(leases: readonly Lease[]): ApplyResult {
    this.leases.clear();
    for (const l of leases) this.leases.set(l.key, l);
    const r = this.apply();
    this.#synced = true;
    return r;
  }

  upsert(lease: Lease): ApplyResult {
    this.leases.set(lease.key, lease);
    return this.apply();
  }

  remove(key: string): ApplyResult {
    this.leases.delete(key);
    return this.apply();
  }

  /** Compute and write the difference between the lease set and the maps. */
  apply(): ApplyResult {
    const t0 = performance.now();
    const desired = desiredState(this.own, [...this.leases.values()], this.uplink);
    if (this.#ids.size === 0 && this.#mirror.peers.size > 0) {
      this.#ids = recoverPeerIds(this.#mirror.peers, desired.peers);
    }
    const planned = withPeerIds(desired, this.#ids, this.capacity);
    const d = diff(this.#mirror, planned);
    if (!isEmptyDiff(d)) {
      try {
        this.#write(d, planned.taken);
      } catch (err) {
        this.reloadMirror();
        throw err;
      }
      applyDiffToMaps(this.#mirror, d);
    }
    this.#ids = planned.ids;
    this.#planned = planned.peers;
    this.#report(planned.rejected, planned.unreachable);
    const result: ApplyResult = {
      diff: d, seconds: (performance.now() - t0) / 1000, peers: planned.peers.length,
      rejected: planned.rejected, unreachable: planned.unreachable,
    };
    this.#last = result;
    this.hooks.applied?.(result);
    return result;
  }

  #write(d: MapDiff, taken: readonly number[]): void {
    /* Counters of an id given to a new peer start from zero. */
    const zero = { txPackets: 0n, txBytes: 0n, rxPackets: 0n, rxBytes: 0n };
    const reused = taken.filter((id) => id < this.maps.peerStats.capacity);
    if (reused.length) this.maps.peerStats.setMany(reused.map((id) => [id, zero] as const));
    this.maps.sources.setMany(d.sourceUpserts.map((u) => [u.publicIp, u.value] as const));
    this.maps.peers.setMany(d.peerUpserts.map((u) => [u.subnet, u.value] as const));
    this.maps.peers.deleteMany(d.peerDeletes);
    this.maps.sources.deleteMany(d.sourceDeletes);
  }

  #report(rejected: readonly Rejection[], unreachable: readonly UnreachablePeer[]): void {
    const now = new Map(rejected.map((r) => [r.leaseKey, `${r.reason}: ${r.message}`]));
    for (const r of rejected) {
      if (this.#lastRejected.get(r.leaseKey) !== `${r.reason}: ${r.message}`) {
        this.log.warn(r.message, { lease: r.leaseKey, reason: r.reason });
        this.hooks.rejected?.(r);
      }
    }
    this.#lastRejected = now;
    const unr = new Map(unreachable.map((u) => [u.leaseKey, u.message]));
    for (const u of unreachable) {
      if (this.#lastUnreachable.get(u.leaseKey) !== u.message) this.log.warn(u.message, { lease: u.leaseKey, reason: u.reason });
    }
    this.#lastUnreachable = unr;
  }
}
