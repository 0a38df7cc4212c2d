/**
 * Peer ids: small integers indexing the per-CPU peer-stats array. The array
 * (like the peer and source maps) has `capacity` = --max-peers entries; id 0
 * is never used (it means "no peer" to the programs), so ids are
 * 1..capacity-1 and at most capacity-1 peers fit.
 *
 * assignPeerIds is pure and deterministic:
 * - a lease key that had an id keeps it (its counters continue);
 * - new keys, in ascending key order, take the lowest free id;
 * - ids freed in this same round are handed out only after every id that was
 *   already free, so a departing peer's last packets are not counted for its
 *   successor (the applier still zeroes the counters of every `taken` id);
 * - when the ids run out, the remaining new keys (the largest keys) are
 *   rejected with reason 'capacity'; peers that already had ids are never
 *   displaced.
 */
import { formatCidr } from '../../maps/addr.js';
import type { PeerValue } from '../../maps/peers.js';
import { reject, type Rejection } from '../lease/types.js';
import { compareKeys } from '../lease/validate.js';
import type { DesiredPeer, DesiredSource, DesiredState, UnreachablePeer } from './desired.js';

export interface PeerIdAssignment {
  /** Lease key → id for every desired peer that fits. */
  ids: Map<string, number>;
  /** Ids given to a lease that did not have them before (ascending): zero their counters before use. */
  taken: number[];
  /** Ids no longer held by the lease that had them (ascending); an id may also be in `taken` when it was recycled this round. */
  freed: number[];
  /** Desired peers left out for lack of ids. */
  rejected: Rejection[];
}

/** A desired peer left out for lack of ids. */
export function capacityRejection(key: string, capacity: number): Rejection {
  return reject(key, 'capacity',
    `lease ${JSON.stringify(key)} not programmed: all ${capacity - 1} peer ids are in use (--max-peers=${capacity}); raise --max-peers`);
}

export function assignPeerIds(
  previous: ReadonlyMap<string, number>,
  desired: readonly { leaseKey: string }[],
  capacity: number,
): PeerIdAssignment {
  if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`peer capacity ${capacity} must be a positive integer`);
  const maxId = capacity - 1;
  const wanted = [...new Set(desired.map((d) => d.leaseKey))].sort(compareKeys);
  const ids = new Map<string, number>();
  const used = new Set<number>();
  const fresh: string[] = [];

  for (const key of wanted) {
    const id = previous.get(key);
    if (id !== undefined && Number.isInteger(id) && id >= 1 && id <= maxId && !used.has(id)) {
      ids.set(key, id);
      used.add(id);
    } else {
      fresh.push(key);
    }
  }
  const previousIds = new Set(previous.values());
  const freed = [...previousIds].filter((id) => Number.isInteger(id) && id >= 1 && !used.has(id)).sort((a, b) => a - b);
  const freedNow = new Set(freed);

  const taken: number[] = [];
  const rejected: Rejection[] = [];
  let next = 1; /* scan cursor over ids that were free before this round */
  let recycled = 0; /* cursor into `freed` */
  for (const key of fresh) {
    while (next <= maxId && (used.has(next) || freedNow.has(next))) next++;
    let id: number | undefined;
    if (next <= maxId) {
      id = next++;
    } else {
      while (recycled < freed.length && ((freed[recycled] ?? 0) < 1 || (freed[recycled] ?? 0) > maxId || used.has(freed[recycled] ?? 0))) recycled++;
      if (recycled < freed.length) id = freed[recycled++];
    }
    if (id === undefined) {
      rejected.push(capacityRejection(key, capacity));
      continue;
    }
    ids.set(key, id);
    used.add(id);
    taken.push(id);
  }
  taken.sort((a, b) => a - b);
  return { ids, taken, freed, rejected };
}

/**
 * Rebuild lease key → id from what is already in the peers map (agent restart):
 * each desired peer whose subnet is in the map adopts that entry's id, so
 * counters survive restarts. Ids of 0 and ids claimed twice are not adopted
 * (the smaller key keeps a shared id).
 */
export function recoverPeerIds(
  currentPeers: ReadonlyMap<string, Pick<PeerValue, 'peerId'>>,
  desired: readonly Pick<DesiredPeer, 'leaseKey' | 'subnet'>[],
): Map<string, number> {
  const out = new Map<string, number>();
  const claimed = new Set<number>();
  for (const p of [...desired].sort((a, b) => compareKeys(a.leaseKey, b.leaseKey))) {
    const id = currentPeers.get(formatCidr(p.subnet))?.peerId;
    if (id === undefined || id === 0 || claimed.has(id)) continue;
    out.set(p.leaseKey, id);
    claimed.add(id);
  }
  return out;
}

export interface DesiredPeerWithId extends DesiredPeer {
  peerId: number;
}

export interface DesiredSourceWithId extends DesiredSource {
  peerId: number;
}

export interface PlannedState {
  peers: DesiredPeerWithId[];
  sources: DesiredSourceWithId[];
  rejected: Rejection[];
  unreachable: UnreachablePeer[];
  /** Lease key → id, to pass as `previous` next round. */
  ids: Map<string, number>;
  taken: number[];
  freed: number[];
}

/** Give the desired peers their ids; peers that do not fit move to `rejected` (with their sources). */
export function withPeerIds(state: DesiredState, previous: ReadonlyMap<string, number>, capacity: number): PlannedState {
  const a = assignPeerIds(previous, state.peers, capacity);
  const peers: DesiredPeerWithId[] = [];
  for (const p of state.peers) {
    const peerId = a.ids.get(p.leaseKey);
    if (peerId !== undefined) peers.push({ ...p, peerId });
  }
  const sources: DesiredSourceWithId[] = [];
  for (const s of state.sources) {
    const peerId = a.ids.get(s.leaseKey);
    if (peerId !== undefined) sources.push({ ...s, peerId });
  }
  const rejected = [...state.rejected, ...a.rejected].sort((x, y) => compareKeys(x.leaseKey, y.leaseKey));
  return { peers, sources, rejected, unreachable: state.unreachable, ids: a.ids, taken: a.taken, freed: a.freed };
}
