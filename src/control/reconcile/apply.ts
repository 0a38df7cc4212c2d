/**
 * The applier: the thin effectful edge of the reconciler. It keeps the lease
 * set and a Plan of it (plan.ts: the desired state of desiredState →
 * withPeerIds, kept between applies), diffs what the plan changed against a
 * mirror of the maps and writes only the difference, in batches, in
 * APPLY_ORDER so that no subnet is ever without an entry while it moves.
 *
 * Lease changes are incremental: a change re-decides the leases it can
 * affect, and only their subnets and public IPs are diffed and written
 * (results equal to a full recompute: test/unit/control-plan.test.ts). A
 * snapshot, a change of the uplink or of our own node, a large batch and the
 * first apply after a failed write recompute everything.
 *
 * At start it reads what is already in the (pinned) maps: entries of peers
 * that vanished while no agent ran are removed by the first apply (full
 * resync), and peer ids are recovered so counters continue across restarts.
 */
import type { NodeMaps } from '../../maps/index.js';
import { PEER_MODES, type PeerMode, type PeerValue } from '../../maps/peers.js';
import type { TunnelSource } from '../../maps/sources.js';
import { parseMac, prefixMask, type Cidr } from '../../maps/addr.js';
import type { Lease, Rejection } from '../lease/types.js';
import type { Logger } from '../log.js';
import type { OwnNode, UplinkFacts, UnreachablePeer } from './desired.js';
import type { DesiredPeerWithId } from './ids.js';
import { isEmptyDiff, type MapDiff } from './diff.js';
import { Plan, cidrId, cidrOfId, ipKey, ipOfKey, type PlanRound } from './plan.js';

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

/** One apply's stages, ms. */
export interface ApplyTimings {
  full: boolean;
  /** Leases (re)decided. */
  decided: number;
  /** Plan round: validation, conflicts, modes, ids. */
  planMs: number;
  /** Diff of the touched subnets / IPs against the mirror. */
  diffMs: number;
  /** Encoding and the batched map writes (and the mirror update). */
  writeMs: number;
}

/** The maps the reconciler writes. */
export type ReconcilerMaps = Pick<NodeMaps, 'peers' | 'sources' | 'peerStats'>;

/** A batch of pending changes larger than this share of the lease set is applied as a full recompute. */
const FULL_SHARE = 0.5;

export class Reconciler {
  readonly #plan: Plan;
  readonly #leases = new Map<string, Lease>();
  /** Lease changes not applied yet: key → lease, or null (removed). */
  readonly #pending = new Map<string, Lease | null>();
  /** The next apply recomputes everything (first apply, own/uplink change, after a failed write). */
  #needFull = true;
  /** The maps' contents: peers by cidrId, sources by public IP (ipKey). */
  #mirror = { peers: new Map<number, PeerValue>(), sources: new Map<number, TunnelSource>() };
  #synced = false;
  #last: ApplyResult | null = null;
  #plannedView: readonly DesiredPeerWithId[] | null = null;
  #timings: ApplyTimings | null = null;
  #rejectedView: Rejection[] = [];
  #unreachableView: UnreachablePeer[] = [];

  constructor(
    private readonly maps: ReconcilerMaps,
    own: OwnNode,
    uplink: UplinkFacts,
    private readonly capacity: number,
    private readonly log: Logger,
    private readonly hooks: ReconcilerHooks = {},
  ) {
    this.#plan = new Plan(own, uplink, capacity);
    this.reloadMirror();
  }

  /** Re-read the maps into the mirror (start, and after a failed write). */
  reloadMirror(): void {
    this.#mirror = { peers: readPeers(this.maps.peers), sources: readSources(this.maps.sources) };
    this.#needFull = true;
  }

  /** Where the last apply's time went (benchmarks, profiling). */
  get lastTimings(): ApplyTimings | null { return this.#timings; }
  /** Has a full lease snapshot been applied at least once? */
  get synced(): boolean { return this.#synced; }
  get last(): ApplyResult | null { return this.#last; }
  /** The programmed peers with their ids, ascending by lease key (for status and metrics labels). A new array after every change. */
  get planned(): readonly DesiredPeerWithId[] {
    this.#plannedView ??= this.#plan.planned.slice();
    return this.#plannedView;
  }
  /** The lease set (including changes not applied yet). Change it with stage/stageRemove, upsert/remove or snapshot. */
  get leases(): ReadonlyMap<string, Lease> { return this.#leases; }
  get ownNode(): OwnNode { return this.#plan.own; }
  get uplinkFacts(): UplinkFacts { return this.#plan.uplink; }
  setOwn(own: OwnNode): void { this.#plan.setOwn(own); this.#needFull = true; }
  setUplink(uplink: UplinkFacts): void { this.#plan.setUplink(uplink); this.#needFull = true; }

  /** Replace the whole lease set (snapshot / re-list) and apply. */
  snapshot(leases: readonly Lease[]): ApplyResult {
    this.#leases.clear();
    for (const l of leases) this.#leases.set(l.key, l);
    this.#pending.clear();
    this.#needFull = true;
    const r = this.#apply();
    this.#synced = true;
    return r;
  }

  upsert(lease: Lease): ApplyResult {
    this.stage(lease);
    return this.flush();
  }

  remove(key: string): ApplyResult {
    this.stageRemove(key);
    return this.flush();
  }

  /** Record a lease change, applied by the next flush (bursts coalesce into one apply). */
  stage(lease: Lease): void {
    this.#leases.set(lease.key, lease);
    this.#pending.set(lease.key, lease);
  }

  stageRemove(key: string): void {
    this.#leases.delete(key);
    this.#pending.set(key, null);
  }

  /** Apply the staged changes (incrementally when possible). */
  flush(): ApplyResult {
    return this.#apply();
  }

  /** Recompute everything from the lease set and write the difference. */
  apply(): ApplyResult {
    this.#needFull = true;
    return this.#apply();
  }

  #apply(): ApplyResult {
    const t0 = performance.now();
    const full = this.#needFull || this.#pending.size > Math.max(64, this.#leases.size * FULL_SHARE);
    let round: PlanRound;
    if (full) {
      const mirror = this.#mirror.peers;
      round = this.#plan.full(this.#leases, mirror.size > 0 ? (c) => mirror.get(cidrId(c.addr, c.prefix))?.peerId : undefined);
    } else {
      const changes = new Map<string, Lease | null>();
      for (const k of this.#pending.keys()) changes.set(k, this.#leases.get(k) ?? null);
      round = this.#plan.change(changes);
    }
    this.#pending.clear();
    const t1 = performance.now();
    const d = this.#diff(round);
    const t2 = performance.now();
    if (!isEmptyDiff(d)) {
      try {
        this.#write(d, round.taken);
      } catch (err) {
        /* As if the round had not run: the plan goes back, the mirror is re-read, the next apply recomputes all. */
        this.#plan.undo();
        this.reloadMirror();
        throw err;
      }
      applyToMirror(this.#mirror, d);
    }
    const t3 = performance.now();
    this.#timings = { full: round.full, decided: round.decided, planMs: t1 - t0, diffMs: t2 - t1, writeMs: t3 - t2 };
    this.#needFull = false;
    if (round.plannedChanged) this.#plannedView = null;
    if (round.rejectedChanged) this.#rejectedView = sortedByKey(this.#plan.rejected.values());
    if (round.unreachableChanged) this.#unreachableView = sortedByKey(this.#plan.unreachable.values());
    for (const r of round.newRejections) {
      this.log.warn(r.message, { lease: r.leaseKey, reason: r.reason });
      this.hooks.rejected?.(r);
    }
    for (const u of round.newUnreachable) this.log.warn(u.message, { lease: u.leaseKey, reason: u.reason });
    const result: ApplyResult = {
      diff: d, seconds: (performance.now() - t0) / 1000, peers: this.#plan.planned.length,
      rejected: this.#rejectedView, unreachable: this.#unreachableView,
    };
    this.#last = result;
    this.hooks.applied?.(result);
    return result;
  }

  /** What to write: the plan's subnets and IPs the round touched (a full round: all, and every mirror entry) against the mirror. */
  #diff(round: PlanRound): MapDiff {
    const wantPeers = this.#plan.peersBySubnet;
    const wantSources = this.#plan.sourcesByIp;
    const { peers, sources } = this.#mirror;
    const { upserts: upsertIds, deletes: deleteIds } = diffKeys(wantPeers, peers, round.subnets, samePeer);
    const { upserts: upsertIps, deletes: deleteIps } = diffKeys(wantSources, sources, round.ips, (have, p) => have.peerId === p.peerId);

    /* cidrId order is (address, prefix) order; numeric typed-array sorts need no callback. */
    return {
      sourceUpserts: [...numericSort(upsertIps.map(ipOfKey))].map((ip) => ({ publicIp: ip, value: { peerId: (wantSources.get(ipKey(ip)) as DesiredPeerWithId).peerId } })),
      peerUpserts: [...numericSort(upsertIds)].map((sid) => {
        const p = wantPeers.get(sid) as DesiredPeerWithId;
        return { subnet: { addr: p.subnet.addr >>> 0, prefix: p.subnet.prefix }, value: { mode: p.mode, vtepMac: p.vtepMac.toLowerCase(), peerId: p.peerId, publicIp: p.publicIp >>> 0 } };
      }),
      peerDeletes: [...numericSort(deleteIds)].map(cidrOfId),
      sourceDeletes: [...numericSort(deleteIps.map(ipOfKey))],
    };
  }

  /** The diff's batched writes, encoded straight into the syscall buffers. */
  #write(d: MapDiff, taken: readonly number[]): void {
    const { peers, sources, peerStats } = this.maps;
    /* Counters of an id given to a new peer start from zero (an all-zero value on every CPU). */
    const reused = taken.filter((id) => id < peerStats.capacity);
    if (reused.length) {
      const keys = Buffer.alloc(reused.length * peerStats.codec.keySize);
      reused.forEach((id, i) => peerStats.codec.encodeKey(id, keys, i * peerStats.codec.keySize));
      peerStats.map.updateBatch(keys, Buffer.alloc(reused.length * peerStats.map.valueBufSize), reused.length);
    }
    writeBatch(sources, d.sourceUpserts, (u, keys, ko, values, vo) => {
      sources.codec.encodeKey(u.publicIp, keys, ko);
      sources.codec.encodeValue(u.value, values, vo);
    });
    writeBatch(peers, d.peerUpserts, (u, keys, ko, values, vo) => {
      peers.codec.encodeKey(u.subnet, keys, ko);
      encodePeerValue(u.value, values, vo);
    });
    peers.deleteMany(d.peerDeletes);
    sources.deleteMany(d.sourceDeletes);
  }
}

function samePeer(have: PeerValue, p: DesiredPeerWithId): boolean {
  return have.mode === p.mode && have.peerId === p.peerId && have.publicIp >>> 0 === p.publicIp >>> 0
    && (have.vtepMac === p.vtepMac || have.vtepMac.toLowerCase() === p.vtepMac.toLowerCase());
}

function applyToMirror(m: { peers: Map<number, PeerValue>; sources: Map<number, TunnelSource> }, d: MapDiff): void {
  for (const u of d.sourceUpserts) m.sources.set(ipKey(u.publicIp), u.value);
  for (const u of d.peerUpserts) m.peers.set(cidrId(u.subnet.addr, u.subnet.prefix), u.value);
  for (const c of d.peerDeletes) m.peers.delete(cidrId(c.addr, c.prefix));
  for (const ip of d.sourceDeletes) m.sources.delete(ipKey(ip));
}

function numericSort(xs: number[]): Float64Array {
  return Float64Array.from(xs).sort();
}

function sortedByKey<T extends { leaseKey: string }>(xs: Iterable<T>): T[] {
  return [...xs].sort((a, b) => (a.leaseKey < b.leaseKey ? -1 : a.leaseKey > b.leaseKey ? 1 : 0));
}

/* ------------------------------------------------------------ fbpf_peers values, fast */

const HEX_DIGIT = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX_DIGIT[48 + i] = i;
for (let i = 0; i < 6; i++) { HEX_DIGIT[97 + i] = 10 + i; HEX_DIGIT[65 + i] = 10 + i; }
const HEX_BYTE = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));
const MODE_OF_CODE = new Map<number, PeerMode>(Object.entries(PEER_MODES).map(([k, v]) => [v, k as PeerMode]));
const ZERO_MAC = '00:00:00:00:00:00';

/**
 * peersCodec.encodeValue without a regex, a split and a Buffer per MAC: the
 * same bytes (checked against the codec by the unit tests), and the same
 * AddressError for a MAC the codec refuses.
 */
export function encodePeerValue(v: PeerValue, buf: Buffer, off: number): void {
  buf[off] = PEER_MODES[v.mode];
  buf[off + 1] = 0;
  const mac = v.vtepMac;
  if (mac === ZERO_MAC) {
    buf.fill(0, off + 2, off + 8);
  } else {
    let ok = mac.length === 17;
    let any = 0;
    for (let i = 0; ok && i < 6; i++) {
      const j = i * 3;
      const hi = HEX_DIGIT[mac.charCodeAt(j) & 0xffff] ?? -1;
      const lo = HEX_DIGIT[mac.charCodeAt(j + 1) & 0xffff] ?? -1;
      if (hi < 0 || lo < 0 || (i < 5 && mac.charCodeAt(j + 2) !== 58)) ok = false;
      else { buf[off + 2 + i] = hi * 16 + lo; any |= hi | lo; }
    }
    if (!ok || ((buf[off + 2] as number) & 1) !== 0 || any === 0) parseMac(mac).copy(buf, off + 2); /* throws what the codec throws */
  }
  buf.writeUInt32LE(v.peerId >>> 0, off + 8);
  buf.writeUInt32BE(v.publicIp >>> 0, off + 12);
}

/** peersCodec.decodeValue with a table for the MAC. */
export function decodePeerValue(buf: Buffer, off: number): PeerValue {
  const code = buf[off] as number;
  const mode = MODE_OF_CODE.get(code);
  if (!mode) throw new RangeError(`fbpf_peers: unknown mode ${code}`);
  const h = (i: number): string => HEX_BYTE[buf[off + 2 + i] as number] as string;
  return {
    mode,
    vtepMac: `${h(0)}:${h(1)}:${h(2)}:${h(3)}:${h(4)}:${h(5)}`,
    peerId: buf.readUInt32LE(off + 8),
    publicIp: buf.readUInt32BE(off + 12),
  };
}

/** The peers map by cidrId (keys canonical: host bits masked, as diff() reads them). */
function readPeers(peers: ReconcilerMaps['peers']): Map<number, PeerValue> {
  const { keys, values, count } = peers.map.lookupAll();
  const ks = peers.codec.keySize;
  const vs = peers.map.valueBufSize;
  const out = new Map<number, PeerValue>();
  for (let i = 0; i < count; i++) {
    const c: Cidr = peers.codec.decodeKey(keys, i * ks);
    out.set(cidrId((c.addr & prefixMask(c.prefix)) >>> 0, c.prefix), decodePeerValue(values, i * vs));
  }
  return out;
}

function readSources(sources: ReconcilerMaps['sources']): Map<number, TunnelSource> {
  return new Map(sources.entries().map(([ip, v]) => [ipKey(ip), v]));
}

/**
 * The keys to write and to delete so that `have` matches `want`: only the
 * `touched` keys (an incremental round), or, when `touched` is null, every
 * desired key and every held key that is not desired (a full round).
 */
function diffKeys<K, W, H>(want: ReadonlyMap<K, W>, have: ReadonlyMap<K, H>, touched: Iterable<K> | null, same: (have: H, want: W) => boolean): { upserts: K[]; deletes: K[] } {
  const upserts: K[] = [];
  const deletes: K[] = [];
  const check = (k: K): void => {
    const w = want.get(k);
    const h = have.get(k);
    if (w !== undefined) {
      if (h === undefined || !same(h, w)) upserts.push(k);
    } else if (h !== undefined) {
      deletes.push(k);
    }
  };
  if (touched) {
    for (const k of touched) check(k);
  } else {
    for (const k of want.keys()) check(k);
    for (const k of have.keys()) if (!want.has(k)) deletes.push(k);
  }
  return { upserts, deletes };
}

/** One batched update of `items` into a map: keys and values encoded side by side into the syscall buffers. */
function writeBatch<T>(
  target: { codec: { keySize: number }; map: { valueBufSize: number; updateBatch(keys: Buffer, values: Buffer, count: number): unknown } },
  items: readonly T[],
  encode: (item: T, keys: Buffer, keyOffset: number, values: Buffer, valueOffset: number) => void,
): void {
  const n = items.length;
  if (n === 0) return;
  const ks = target.codec.keySize;
  const vs = target.map.valueBufSize;
  const keys = Buffer.alloc(n * ks);
  const values = Buffer.alloc(n * vs);
  items.forEach((item, i) => encode(item, keys, i * ks, values, i * vs));
  target.map.updateBatch(keys, values, n);
}
