/**
 * The reconciler's plan, kept between applies so that a lease change costs
 * what it touches, not a recomputation of every lease.
 *
 * It computes exactly what the pure pipeline computes — validateLeases →
 * desiredState → withPeerIds, which stay the specification (and
 * test/unit/control-plan.test.ts checks the two against each other on random
 * lease sequences) — from state it keeps:
 *
 * - per lease key an Entry: the lease, its per-lease verdict (own lease,
 *   rejected by a per-lease check, or candidate), whether it won every
 *   conflict (accepted), its mode or unreachable record, its peer id;
 * - indexes of the candidates by subnet (per prefix length, then address)
 *   and by public IP, to find the leases a change can affect;
 * - the peer-id allocator (ids in use, the lowest possibly free id) and the
 *   desired peers that are waiting for an id (capacity rejections);
 * - the results: programmed peers ascending by key, desired peers by subnet
 *   and tunnel sources by public IP (what the maps must hold), rejections and
 *   unreachable peers by key.
 *
 * Conflicts are decided in key order, smaller key first (validateLeases): a
 * candidate is accepted when no accepted candidate with a smaller key
 * overlaps its subnet or uses its public IP. After a change, the changed
 * keys and every candidate that overlaps one of them (before or after the
 * change) with a larger key are re-decided in ascending key order (a heap);
 * a candidate whose verdict flips brings in its own larger neighbours. When a
 * key is decided every smaller key is final, so the result is the one the
 * ordered pass over all leases gives. Ids then follow assignPeerIds: keys
 * that keep being programmed keep their ids, the others free theirs, and new
 * keys (with the ones waiting) take, in key order, the lowest id that was
 * free before the round, then ids freed in the round.
 *
 * A full round (snapshot, uplink or own-node change) builds a new state with
 * the same code in one ordered pass, starting from the previous ids.
 */
import { prefixMask, type Cidr } from '../../maps/addr.js';
import type { PeerMode } from '../../maps/peers.js';
import type { Lease, Rejection } from '../lease/types.js';
import { leaseProblem, overlapsPeer, duplicatePeerIp, type ValidationContext } from '../lease/validate.js';
import { isTunnelMode, peerModeOf, validationContext, ZERO_MAC, type OwnNode, type UplinkFacts, type UnreachablePeer } from './desired.js';
import { capacityRejection, type DesiredPeerWithId } from './ids.js';

/** A CIDR as one number (exact in a double: < 2^38). */
export function cidrId(addr: number, prefix: number): number {
  return (addr >>> 0) * 64 + prefix;
}

export function cidrOfId(id: number): Cidr {
  return { addr: Math.floor(id / 64), prefix: id % 64 };
}

/**
 * An IPv4 address as a map key: its int32 form (a small integer to V8, which
 * hashes and stores it without a heap number; above 127.255.255.255 the
 * unsigned form is not). ipOfKey gives the unsigned address back.
 */
export function ipKey(ip: number): number {
  return ip | 0;
}

export function ipOfKey(k: number): number {
  return k >>> 0;
}

const OWN = 0;
const PROBLEM = 1;
const CANDIDATE = 2;

interface Entry {
  readonly lease: Lease;
  readonly kind: typeof OWN | typeof PROBLEM | typeof CANDIDATE;
  /** The per-lease rejection (kind PROBLEM). */
  readonly problem: Rejection | null;
  /** A candidate that no accepted smaller key conflicts with. */
  accepted: boolean;
  /** Why a candidate lost (overlaps_peer / duplicate_public_ip). */
  conflict: Rejection | null;
  /** Accepted: its mode, or null when it is unreachable. */
  mode: PeerMode | null;
  unreachable: UnreachablePeer | null;
  /** 0 = none. */
  peerId: number;
  capacity: Rejection | null;
  peer: DesiredPeerWithId | null;
}

function rejectionOf(e: Entry): Rejection | null {
  return e.problem ?? e.conflict ?? e.capacity;
}

function programmable(e: Entry | undefined): boolean {
  return e !== undefined && e.accepted && e.mode !== null;
}

type Bucket = string | string[];

function bucketAdd<K>(m: Map<K, Bucket>, k: K, key: string): void {
  const b = m.get(k);
  if (b === undefined) m.set(k, key);
  else if (typeof b === 'string') m.set(k, [b, key]);
  else b.push(key);
}

function bucketDelete<K>(m: Map<K, Bucket>, k: K, key: string): void {
  const b = m.get(k);
  if (b === undefined) return;
  if (typeof b === 'string') {
    if (b === key) m.delete(k);
    return;
  }
  const i = b.indexOf(key);
  if (i >= 0) b.splice(i, 1);
  if (b.length === 1) m.set(k, b[0] as string);
  else if (b.length === 0) m.delete(k);
}

function forBucket(b: Bucket | undefined, fn: (key: string) => void): void {
  if (b === undefined) return;
  if (typeof b === 'string') fn(b);
  else for (const k of b) fn(k);
}

/** Min-heap of lease keys (code-unit order), each key at most once. */
class KeyHeap {
  private readonly items: string[] = [];
  private readonly queued = new Set<string>();
  get size(): number { return this.items.length; }
  push(k: string): void {
    if (this.queued.has(k)) return;
    this.queued.add(k);
    const a = this.items;
    let i = a.push(k) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((a[p] as string) <= k) break;
      a[i] = a[p] as string;
      i = p;
    }
    a[i] = k;
  }
  pop(): string | undefined {
    const a = this.items;
    const top = a[0];
    if (top === undefined) return undefined;
    const last = a.pop() as string;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && (a[r] as string) < (a[l] as string) ? r : l;
        if ((a[c] as string) >= last) break;
        a[i] = a[c] as string;
        i = c;
      }
      a[i] = last;
    }
    this.queued.delete(top);
    return top;
  }
}

/** Index of a sorted array where `key` is or would be inserted. */
function searchByKey(a: readonly { leaseKey: string }[], key: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((a[mid] as { leaseKey: string }).leaseKey < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Everything the plan holds; a full round builds a new one and swaps it in. */
class State {
  readonly entries = new Map<string, Entry>();
  /** Candidates: prefix length → network address → keys. */
  readonly bySubnet = new Map<number, Map<number, Bucket>>();
  /** Candidates: public IP (ipKey) → keys. */
  readonly byIp = new Map<number, Bucket>();
  /** used[id] = 1 while a key holds id (index 0 unused). */
  readonly used: Uint8Array;
  /** Every id below this one is in use. */
  lowFree = 1;
  /** Desired peers without an id (capacity rejections), by key. */
  readonly waiting = new Map<string, Entry>();
  /** Programmed peers, ascending by key. */
  readonly planned: DesiredPeerWithId[] = [];
  /** What the peers map must hold: cidrId → peer. */
  readonly peersBySubnet = new Map<number, DesiredPeerWithId>();
  /** What the tunnel-sources map must hold: public IP (ipKey) → peer (tunnel modes). */
  readonly sourcesByIp = new Map<number, DesiredPeerWithId>();
  readonly rejected = new Map<string, Rejection>();
  readonly unreachable = new Map<string, UnreachablePeer>();

  constructor(readonly capacity: number) {
    this.used = new Uint8Array(capacity);
  }
}

/** What one round changed. */
export interface PlanRound {
  full: boolean;
  /** cidrIds whose desired peers-map entry may have changed (null: a full round, every one). */
  subnets: Set<number> | null;
  /** Public IPs (ipKey) whose desired sources-map entry may have changed (null: a full round, every one). */
  ips: Set<number> | null;
  /** Ids given to a key that did not hold them (ascending): zero their counters. */
  taken: number[];
  /** Keys whose rejection is new or different, ascending. */
  newRejections: Rejection[];
  /** Unreachable peers whose message is new or different, ascending by key. */
  newUnreachable: UnreachablePeer[];
  /** Did the programmed peers change (a peer added, removed or different)? */
  plannedChanged: boolean;
  /** Did the set of rejections / unreachable peers change? */
  rejectedChanged: boolean;
  unreachableChanged: boolean;
  /** How many keys were (re)decided. */
  decided: number;
}

/** Before-round values of the keys a round touches (to undo it, and to see what changed). */
interface Before {
  lease: Lease | undefined;
  peerId: number;
  peer: DesiredPeerWithId | null;
  rejection: Rejection | null;
  unreachable: UnreachablePeer | null;
}

export class Plan {
  #s: State;
  #ctx: ValidationContext;
  #own: OwnNode;
  #uplink: UplinkFacts;
  /** Set while the last round can still be undone: the touched keys' values before it. */
  #undo: Map<string, Before> | null = null;
  #undoState: State | null = null;
  /**
   * Ids a full round read back from the maps (or carried) whose writes
   * failed: the next full round starts from them, as the recovery is not
   * repeated once it found ids (the Reconciler kept them before it wrote).
   */
  #carryIds: ReadonlyMap<string, number> | null = null;
  #undoCarry: ReadonlyMap<string, number> | null = null;

  constructor(own: OwnNode, uplink: UplinkFacts, readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`peer capacity ${capacity} must be a positive integer`);
    this.#own = own;
    this.#ctx = validationContext(own);
    this.#uplink = uplink;
    this.#s = new State(capacity);
  }

  get own(): OwnNode { return this.#own; }
  get uplink(): UplinkFacts { return this.#uplink; }
  /** Takes effect at the next full round. */
  setOwn(own: OwnNode): void { this.#own = own; this.#ctx = validationContext(own); }
  setUplink(uplink: UplinkFacts): void { this.#uplink = uplink; }

  /** Programmed peers ascending by key (a live array: copy it to keep it). */
  get planned(): readonly DesiredPeerWithId[] { return this.#s.planned; }
  get peersBySubnet(): ReadonlyMap<number, DesiredPeerWithId> { return this.#s.peersBySubnet; }
  get sourcesByIp(): ReadonlyMap<number, DesiredPeerWithId> { return this.#s.sourcesByIp; }
  get rejected(): ReadonlyMap<string, Rejection> { return this.#s.rejected; }
  get unreachable(): ReadonlyMap<string, UnreachablePeer> { return this.#s.unreachable; }
  get size(): number { return this.#s.entries.size; }
  /** Lease key → peer id of every programmed peer. */
  ids(): Map<string, number> {
    const out = new Map<string, number>();
    for (const p of this.#s.planned) out.set(p.leaseKey, p.peerId);
    return out;
  }

  /* ------------------------------------------------------------ full round */

  /**
   * Plan `leases` (unique keys) from scratch. Previous ids are the current
   * plan's, or `recover(desired peer)` when the plan has none (restart: ids
   * read back from the maps, see recoverPeerIds).
   */
  full(leases: ReadonlyMap<string, Lease> | Iterable<Lease>, recover?: (subnet: Cidr) => number | undefined, previous?: ReadonlyMap<string, number>): PlanRound {
    const old = this.#s;
    const s = new State(this.capacity);
    let byKey: ReadonlyMap<string, Lease>;
    if (leases instanceof Map) {
      byKey = leases as ReadonlyMap<string, Lease>;
    } else {
      const m = new Map<string, Lease>();
      for (const l of leases as Iterable<Lease>) m.set(l.key, l);
      byKey = m;
    }
    const keys = [...byKey.keys()];
    /* Stores list in key order (etcd): sort only when not sorted yet; the default sort is UTF-16 code-unit order, as compareKeys. */
    for (let i = 1; i < keys.length; i++) {
      if ((keys[i - 1] as string) > (keys[i] as string)) { keys.sort(); break; }
    }

    /* 1. Decide every lease in key order (each sees only smaller keys in the indexes). */
    const desired: Entry[] = [];
    for (const k of keys) {
      const e = this.#entry(byKey.get(k) as Lease);
      s.entries.set(k, e);
      if (e.kind !== CANDIDATE) continue;
      this.#decide(s, e);
      this.#index(s, e);
      if (programmable(e)) desired.push(e);
    }

    /* 2. Ids: keep valid previous ones, then assignPeerIds' order for the rest. */
    let prev: ReadonlyMap<string, number>;
    let carry: ReadonlyMap<string, number> | null = null;
    if (previous) prev = previous;
    else if (this.#carryIds) prev = carry = this.#carryIds;
    else if (old.planned.length > 0 || !recover) prev = this.#idsOf(old);
    else {
      const rec = new Map<string, number>();
      const claimed = new Set<number>();
      for (const e of desired) {
        const id = recover(e.lease.subnet);
        if (id === undefined || id === 0 || claimed.has(id)) continue;
        rec.set(e.lease.key, id);
        claimed.add(id);
      }
      prev = rec;
      if (rec.size > 0) carry = rec;
    }
    this.#carryIds = null;
    const maxId = this.capacity - 1;
    const fresh: Entry[] = [];
    for (const e of desired) {
      const id = prev.get(e.lease.key);
      if (id !== undefined && Number.isInteger(id) && id >= 1 && id <= maxId && !s.used[id]) {
        e.peerId = id;
        s.used[id] = 1;
      } else {
        fresh.push(e);
      }
    }
    const freed: number[] = [];
    const seen = new Set<number>();
    for (const id of prev.values()) {
      if (!Number.isInteger(id) || id < 1 || seen.has(id)) continue;
      seen.add(id);
      if (id > maxId || !s.used[id]) freed.push(id);
    }
    freed.sort((a, b) => a - b);
    const taken = this.#assign(s, fresh, freed);

    /* 3. Results, in key order; unchanged peers keep their objects. */
    for (const k of keys) {
      const e = s.entries.get(k) as Entry;
      if (programmable(e) && e.peerId > 0) {
        const before = old.entries.get(k)?.peer ?? null;
        e.peer = this.#peerOf(e, before);
        s.planned.push(e.peer);
        s.peersBySubnet.set(cidrId(e.peer.subnet.addr, e.peer.subnet.prefix), e.peer);
        if (isTunnelMode(e.peer.mode)) s.sourcesByIp.set(ipKey(e.peer.publicIp), e.peer);
      }
      const r = rejectionOf(e);
      if (r) s.rejected.set(k, r);
      if (e.unreachable) s.unreachable.set(k, e.unreachable);
    }

    const round: PlanRound = {
      full: true,
      subnets: null,
      ips: null,
      taken,
      plannedChanged: old.planned.length !== s.planned.length || s.planned.some((p, i) => old.planned[i] !== p),
      newRejections: [...s.rejected.values()].filter((r) => !sameRejection(old.rejected.get(r.leaseKey), r)),
      newUnreachable: [...s.unreachable.values()].filter((u) => old.unreachable.get(u.leaseKey)?.message !== u.message),
      rejectedChanged: !sameRejections(old.rejected, s.rejected),
      unreachableChanged: !sameUnreachable(old.unreachable, s.unreachable),
      decided: keys.length,
    };
    this.#s = s;
    this.#undo = null;
    this.#undoState = old;
    this.#undoCarry = carry;
    return round;
  }

  /* ------------------------------------------------------------ incremental round */

  /** Apply lease changes (key → new lease, or null: removed) in one round. */
  change(changes: ReadonlyMap<string, Lease | null>): PlanRound {
    const s = this.#s;
    const before = new Map<string, Before>();
    const touch = (k: string, e: Entry | undefined): void => {
      if (before.has(k)) return;
      before.set(k, {
        lease: e?.lease, peerId: e?.peerId ?? 0, peer: e?.peer ?? null,
        rejection: e ? rejectionOf(e) : null, unreachable: e?.unreachable ?? null,
      });
    };
    const heap = new KeyHeap();
    const queueAbove = (l: Lease): void => {
      this.#forOverlapping(s, l, (k) => { if (k > l.key) heap.push(k); });
    };

    /* 1. Swap the changed entries; queue them and every candidate they overlap with a larger key. */
    for (const [key, lease] of changes) {
      const old = s.entries.get(key);
      touch(key, old);
      if (old?.kind === CANDIDATE) {
        this.#unindex(s, old);
        queueAbove(old.lease);
      }
      if (lease) {
        const e = this.#entry(lease);
        if (old) { e.peerId = old.peerId; e.peer = old.peer; e.capacity = old.capacity; }
        s.entries.set(key, e);
        if (e.kind === CANDIDATE) {
          this.#index(s, e);
          queueAbove(lease);
        }
        heap.push(key);
      } else if (old) {
        s.entries.delete(key);
        s.waiting.delete(key);
      }
    }

    /* 2. Re-decide in key order; a flipped verdict brings in the flipped lease's larger neighbours. */
    let decided = 0;
    for (let k = heap.pop(); k !== undefined; k = heap.pop()) {
      const e = s.entries.get(k);
      if (!e) continue;
      touch(k, e);
      decided++;
      const was = e.accepted;
      if (e.kind === CANDIDATE) this.#decide(s, e);
      if (was !== e.accepted && !changes.has(k)) queueAbove(e.lease);
    }

    /* 3. Ids (assignPeerIds' order), waiting keys included. */
    const freed: number[] = [];
    const freshKeys = new Set<string>();
    for (const [k, b] of before) {
      const e = s.entries.get(k);
      const id = e ? e.peerId : b.peerId;
      if (!e || !programmable(e)) {
        if (id > 0) freed.push(id);
        if (e) { e.peerId = 0; e.capacity = null; }
        s.waiting.delete(k);
      } else if (e.peerId === 0) {
        freshKeys.add(k);
      }
    }
    for (const [k, e] of s.waiting) {
      if (e.peerId === 0) { freshKeys.add(k); touch(k, e); }
    }
    const fresh = [...freshKeys].sort().map((k) => s.entries.get(k) as Entry);
    freed.sort((a, b) => a - b);
    const taken = this.#assign(s, fresh, freed);

    /* 4. Results for the touched keys. */
    const subnets = new Set<number>();
    const ips = new Set<number>();
    const newRejections: Rejection[] = [];
    const newUnreachable: UnreachablePeer[] = [];
    let rejectedChanged = false;
    let unreachableChanged = false;
    let plannedChanged = false;
    for (const [k, b] of before) {
      const e = s.entries.get(k);
      const peer = e && programmable(e) && e.peerId > 0 ? this.#peerOf(e, b.peer) : null;
      if (e) e.peer = peer;
      if (peer !== b.peer) {
        plannedChanged = true;
        if (b.peer) {
          const sid = cidrId(b.peer.subnet.addr, b.peer.subnet.prefix);
          subnets.add(sid);
          if (s.peersBySubnet.get(sid) === b.peer) s.peersBySubnet.delete(sid);
          if (isTunnelMode(b.peer.mode)) {
            const ip = ipKey(b.peer.publicIp);
            ips.add(ip);
            if (s.sourcesByIp.get(ip) === b.peer) s.sourcesByIp.delete(ip);
          }
        }
        if (peer) {
          const sid = cidrId(peer.subnet.addr, peer.subnet.prefix);
          subnets.add(sid);
          s.peersBySubnet.set(sid, peer);
          if (isTunnelMode(peer.mode)) {
            const ip = ipKey(peer.publicIp);
            ips.add(ip);
            s.sourcesByIp.set(ip, peer);
          }
        }
        const i = searchByKey(s.planned, k);
        const at = s.planned[i]?.leaseKey === k;
        if (peer && at) s.planned[i] = peer;
        else if (peer) s.planned.splice(i, 0, peer);
        else if (at) s.planned.splice(i, 1);
      }
      const r = e ? rejectionOf(e) : null;
      if (r !== b.rejection) {
        if (!sameRejection(b.rejection ?? undefined, r ?? undefined)) rejectedChanged = true;
        if (r) {
          s.rejected.set(k, r);
          if (!sameRejection(b.rejection ?? undefined, r)) newRejections.push(r);
        } else {
          s.rejected.delete(k);
        }
      }
      const u = e?.unreachable ?? null;
      if (u !== b.unreachable) {
        if (!sameUnreachableRecord(u, b.unreachable)) unreachableChanged = true;
        if (u) {
          s.unreachable.set(k, u);
          if (b.unreachable?.message !== u.message) newUnreachable.push(u);
        } else {
          s.unreachable.delete(k);
        }
      }
    }
    newRejections.sort(byLeaseKey);
    newUnreachable.sort(byLeaseKey);
    this.#undo = before;
    this.#undoState = null;
    return { full: false, subnets, ips, taken, plannedChanged, newRejections, newUnreachable, rejectedChanged, unreachableChanged, decided };
  }

  /**
   * Forget the last round (its map writes failed): the plan is again the one
   * before it, as if the round had not run.
   */
  undo(): void {
    const before = this.#undo;
    if (this.#undoState) {
      this.#s = this.#undoState;
      this.#carryIds = this.#undoCarry;
    } else if (before) {
      /* Rebuild from the leases and ids before the round: the same plan (deterministic; a waiting key had no free id). */
      const leases = new Map<string, Lease>();
      for (const [k, e] of this.#s.entries) leases.set(k, e.lease);
      const ids = this.ids();
      for (const [k, b] of before) {
        if (b.lease) leases.set(k, b.lease);
        else leases.delete(k);
        if (b.peerId > 0) ids.set(k, b.peerId);
        else ids.delete(k);
      }
      this.full(leases.values(), undefined, ids);
    }
    this.#undo = null;
    this.#undoState = null;
    this.#undoCarry = null;
  }

  /* ------------------------------------------------------------ helpers */

  #entry(lease: Lease): Entry {
    const own = this.#ctx.ownKey !== undefined && lease.key === this.#ctx.ownKey;
    const problem = own ? null : leaseProblem(lease, this.#ctx);
    return {
      lease, kind: own ? OWN : problem ? PROBLEM : CANDIDATE, problem,
      accepted: false, conflict: null, mode: null, unreachable: null, peerId: 0, capacity: null, peer: null,
    };
  }

  /** Decide a candidate against the accepted candidates with smaller keys (all final). */
  #decide(s: State, e: Entry): void {
    const l = e.lease;
    const k = l.key;
    let cover: string | undefined;
    let inside: string | undefined;
    this.#forOverlapping(s, l, (o) => {
      if (o >= k) return;
      const oe = s.entries.get(o) as Entry;
      if (!oe.accepted) return;
      if (oe.lease.subnet.prefix <= l.subnet.prefix) cover = o;
      else if (inside === undefined || o < inside) inside = o;
    }, true);
    const winner = cover ?? inside;
    let conflict: Rejection | null = null;
    if (winner !== undefined) {
      conflict = overlapsPeer(l, s.entries.get(winner)?.lease, winner);
    } else {
      forBucket(s.byIp.get(ipKey(l.publicIp)), (o) => {
        if (conflict === null && o < k && (s.entries.get(o) as Entry).accepted) conflict = duplicatePeerIp(l, o);
      });
    }
    if (conflict) {
      e.accepted = false;
      e.conflict = sameRejection(e.conflict ?? undefined, conflict) ? e.conflict : conflict;
      e.mode = null;
      e.unreachable = null;
      return;
    }
    e.accepted = true;
    e.conflict = null;
    const mode = peerModeOf(this.#own, l, this.#uplink);
    if (typeof mode === 'string') {
      e.mode = mode;
      e.unreachable = null;
    } else {
      e.mode = null;
      e.unreachable = e.unreachable && sameUnreachableRecord(e.unreachable, mode) ? e.unreachable : mode;
    }
  }

  /**
   * Every candidate key whose subnet overlaps l's (l's own key included when
   * indexed), then (unless subnetsOnly) every candidate with l's public IP.
   */
  #forOverlapping(s: State, l: Lease, fn: (key: string) => void, subnetsOnly = false): void {
    const c = l.subnet;
    const addr = c.addr >>> 0;
    for (const [p, byAddr] of s.bySubnet) {
      if (p <= c.prefix) {
        forBucket(byAddr.get((addr & prefixMask(p)) >>> 0), fn);
        continue;
      }
      const blocks = 2 ** (p - c.prefix);
      if (blocks <= byAddr.size) {
        const step = 2 ** (32 - p);
        for (let i = 0, a = addr; i < blocks; i++, a += step) forBucket(byAddr.get(a), fn);
      } else {
        const mask = prefixMask(c.prefix);
        for (const [a, b] of byAddr) if (((a & mask) >>> 0) === addr) forBucket(b, fn);
      }
    }
    if (!subnetsOnly) forBucket(s.byIp.get(ipKey(l.publicIp)), fn);
  }

  #index(s: State, e: Entry): void {
    const c = e.lease.subnet;
    let byAddr = s.bySubnet.get(c.prefix);
    if (!byAddr) s.bySubnet.set(c.prefix, (byAddr = new Map()));
    bucketAdd(byAddr, c.addr >>> 0, e.lease.key);
    bucketAdd(s.byIp, ipKey(e.lease.publicIp), e.lease.key);
  }

  #unindex(s: State, e: Entry): void {
    const c = e.lease.subnet;
    const byAddr = s.bySubnet.get(c.prefix);
    if (byAddr) {
      bucketDelete(byAddr, c.addr >>> 0, e.lease.key);
      if (byAddr.size === 0) s.bySubnet.delete(c.prefix);
    }
    bucketDelete(s.byIp, ipKey(e.lease.publicIp), e.lease.key);
  }

  /**
   * Give `fresh` (ascending by key, no id yet) ids: the lowest id free before
   * this round, then ids in `freed` (ascending; still marked used) — which
   * are released afterwards when nobody took them. Keys left over wait.
   */
  #assign(s: State, fresh: readonly Entry[], freed: readonly number[]): number[] {
    const maxId = this.capacity - 1;
    const used = s.used;
    const taken: number[] = [];
    /* Ids freed this round stay marked until the end: never handed out before every other free id. */
    for (const id of freed) if (id <= maxId) used[id] = 1;
    let next = s.lowFree;
    let recycled = 0;
    const retaken = new Set<number>();
    for (const e of fresh) {
      while (next <= maxId && used[next]) next++;
      let id: number | undefined;
      if (next <= maxId) {
        id = next++;
      } else {
        while (recycled < freed.length && ((freed[recycled] as number) > maxId || retaken.has(freed[recycled] as number))) recycled++;
        if (recycled < freed.length) id = freed[recycled++];
      }
      if (id === undefined) {
        e.peerId = 0;
        const r = capacityRejection(e.lease.key, this.capacity);
        e.capacity = e.capacity && sameRejection(e.capacity, r) ? e.capacity : r;
        s.waiting.set(e.lease.key, e);
        continue;
      }
      if (used[id] && freed.includes(id)) retaken.add(id);
      used[id] = 1;
      e.peerId = id;
      e.capacity = null;
      s.waiting.delete(e.lease.key);
      taken.push(id);
    }
    if (fresh.length > 0) s.lowFree = next;
    for (const id of freed) {
      if (id > maxId || retaken.has(id)) continue;
      used[id] = 0;
      if (id < s.lowFree) s.lowFree = id;
    }
    taken.sort((a, b) => a - b);
    return taken;
  }

  #peerOf(e: Entry, before: DesiredPeerWithId | null): DesiredPeerWithId {
    const l = e.lease;
    const mode = e.mode as PeerMode;
    const vtepMac = l.vtepMac ?? ZERO_MAC;
    if (before && before.peerId === e.peerId && before.mode === mode && before.publicIp === l.publicIp && before.vtepMac === vtepMac
      && before.subnet.addr === l.subnet.addr && before.subnet.prefix === l.subnet.prefix) return before;
    return { leaseKey: l.key, subnet: l.subnet, mode, publicIp: l.publicIp, vtepMac, peerId: e.peerId };
  }

  #idsOf(s: State): Map<string, number> {
    const out = new Map<string, number>();
    for (const p of s.planned) out.set(p.leaseKey, p.peerId);
    return out;
  }
}

function byLeaseKey(a: { leaseKey: string }, b: { leaseKey: string }): number {
  return a.leaseKey < b.leaseKey ? -1 : a.leaseKey > b.leaseKey ? 1 : 0;
}

function sameRejection(a: Rejection | undefined, b: Rejection | undefined): boolean {
  if (a === b) return true;
  return a !== undefined && b !== undefined && a.leaseKey === b.leaseKey && a.reason === b.reason && a.message === b.message;
}

function sameUnreachableRecord(a: UnreachablePeer | null, b: UnreachablePeer | null): boolean {
  if (a === b) return true;
  return a !== null && b !== null && a.leaseKey === b.leaseKey && a.message === b.message && a.publicIp === b.publicIp
    && a.subnet.addr === b.subnet.addr && a.subnet.prefix === b.subnet.prefix && a.reason === b.reason;
}

function sameRejections(a: ReadonlyMap<string, Rejection>, b: ReadonlyMap<string, Rejection>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, r] of a) if (!sameRejection(r, b.get(k))) return false;
  return true;
}

function sameUnreachable(a: ReadonlyMap<string, UnreachablePeer>, b: ReadonlyMap<string, UnreachablePeer>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, u] of a) if (!sameUnreachableRecord(u, b.get(k) ?? null)) return false;
  return true;
}
