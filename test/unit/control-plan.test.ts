/**
 * The Reconciler's incremental plan against the specification: a reference
 * reconciler that recomputes everything on every apply with the pure
 * pipeline (desiredState → withPeerIds → diff, string-keyed mirror, as the
 * Reconciler did before it kept a plan). Random lease sequences (single
 * changes, batches, snapshots, uplink changes, restarts over programmed
 * maps, failed map writes) over a small address space, so that overlaps,
 * duplicate IPs, capacity limits and cascades are common; after every step
 * the two must agree on the apply result (diff, rejections, unreachable),
 * the planned peers, the log lines, the rejection hook calls and the maps'
 * bytes. FC_SEED=<n> runs another sequence; FC_DEBUG=1 prints the first
 * disagreement (fast-check only reports the counterexample).
 */
import test from 'ava';
import fc from 'fast-check';
import { Reconciler, encodePeerValue, decodePeerValue, type ApplyResult } from '../../src/control/reconcile/apply.js';
import { Plan } from '../../src/control/reconcile/plan.js';
import { desiredState, type OwnNode, type UplinkFacts, type UnreachablePeer } from '../../src/control/reconcile/desired.js';
import { withPeerIds, recoverPeerIds, type DesiredPeerWithId } from '../../src/control/reconcile/ids.js';
import { diff, isEmptyDiff, applyDiffToMaps, type MapDiff } from '../../src/control/reconcile/diff.js';
import type { Lease, Rejection } from '../../src/control/lease/types.js';
import type { Logger, LogFields, LogLevel } from '../../src/control/log.js';
import { TypedMap } from '../../src/maps/codec.js';
import { peersCodec, type PeerValue } from '../../src/maps/peers.js';
import { sourcesCodec, type TunnelSource } from '../../src/maps/sources.js';
import { peerStatsCodec } from '../../src/maps/peer-stats.js';
import type { BpfMap } from '../../src/loader/map.js';
import { formatCidr, parseCidr, parseIPv4, type Cidr } from '../../src/maps/addr.js';

/* ------------------------------------------------------------ fakes */

/** A BPF map in memory: the calls TypedMap and the Reconciler make, with the kernel's batch semantics. */
class FakeMap {
  readonly entries = new Map<string, Buffer>();
  readonly cpuStride: number;
  readonly valueBufSize: number;
  /** Make the next updateBatch fail after writing this many entries. */
  failAfter: number | null = null;
  constructor(readonly name: string, readonly keySize: number, readonly valueSize: number, readonly maxEntries: number, readonly ncpus = 1) {
    this.cpuStride = ncpus > 1 ? Math.ceil(valueSize / 8) * 8 : valueSize;
    this.valueBufSize = this.cpuStride * ncpus;
  }
  get perCpu(): boolean { return this.ncpus > 1; }
  lookup(key: Buffer): Buffer | null { return this.entries.get(key.toString('hex')) ?? null; }
  update(key: Buffer, value: Buffer): void { this.entries.set(key.toString('hex'), Buffer.from(value)); }
  delete(key: Buffer): boolean { return this.entries.delete(key.toString('hex')); }
  lookupAll(): { keys: Buffer; values: Buffer; count: number } {
    const ks = [...this.entries.keys()].sort();
    return {
      keys: Buffer.concat(ks.map((k) => Buffer.from(k, 'hex'))),
      values: Buffer.concat(ks.map((k) => this.entries.get(k) as Buffer)),
      count: ks.length,
    };
  }
  updateBatch(keys: Buffer, values: Buffer, count: number): number {
    for (let i = 0; i < count; i++) {
      if (this.failAfter !== null && i >= this.failAfter) {
        this.failAfter = null;
        throw new Error(`batch update of map ${this.name} (${i} of ${count} written): ENOSPC`);
      }
      const k = keys.subarray(i * this.keySize, (i + 1) * this.keySize).toString('hex');
      if (!this.entries.has(k) && this.entries.size >= this.maxEntries) throw new Error(`map ${this.name} full`);
      this.entries.set(k, Buffer.from(values.subarray(i * this.valueBufSize, (i + 1) * this.valueBufSize)));
    }
    return count;
  }
  deleteBatch(keys: Buffer, count: number): number {
    for (let i = 0; i < count; i++) {
      const k = keys.subarray(i * this.keySize, (i + 1) * this.keySize).toString('hex');
      if (!this.entries.delete(k)) throw new Error(`batch delete from map ${this.name}: ENOENT (${k})`);
    }
    return count;
  }
  clone(): FakeMap {
    const c = new FakeMap(this.name, this.keySize, this.valueSize, this.maxEntries, this.ncpus);
    for (const [k, v] of this.entries) c.entries.set(k, Buffer.from(v));
    return c;
  }
}

interface Maps {
  raw: { peers: FakeMap; sources: FakeMap; peerStats: FakeMap };
  peers: TypedMap<Cidr, PeerValue>;
  sources: TypedMap<number, TunnelSource>;
  peerStats: TypedMap<number, import('../../src/maps/peer-stats.js').PeerStats>;
}

function wrap(raw: Maps['raw']): Maps {
  return {
    raw,
    peers: new TypedMap(raw.peers as unknown as BpfMap, peersCodec),
    sources: new TypedMap(raw.sources as unknown as BpfMap, sourcesCodec),
    peerStats: new TypedMap(raw.peerStats as unknown as BpfMap, peerStatsCodec),
  };
}

function fakeMaps(capacity: number): Maps {
  return wrap({
    peers: new FakeMap('fbpf_peers', 8, 16, capacity),
    sources: new FakeMap('fbpf_sources', 4, 8, capacity),
    peerStats: new FakeMap('fbpf_peer_stats', 4, 32, capacity, 2),
  });
}

/** Map contents as comparable text (peer stats: which ids were zeroed, i.e. written). */
function dump(m: Maps): unknown {
  const sorted = (f: FakeMap): string[] => [...f.entries].map(([k, v]) => `${k}=${v.toString('hex')}`).sort();
  return { peers: sorted(m.raw.peers), sources: sorted(m.raw.sources), peerStats: sorted(m.raw.peerStats) };
}

type Line = [LogLevel, string, LogFields | undefined];

function capture(): { log: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const log: Logger = {
    level: 'debug',
    enabled: () => true,
    debug: (m, f) => { lines.push(['debug', m, f]); },
    info: (m, f) => { lines.push(['info', m, f]); },
    warn: (m, f) => { lines.push(['warn', m, f]); },
    error: (m, f) => { lines.push(['error', m, f]); },
    log: (l, m, f) => { lines.push([l, m, f]); },
    child: () => log,
  };
  return { log, lines };
}

/* ------------------------------------------------------------ the specification */

/** The Reconciler as it was: a full recompute with the pure pipeline on every apply. */
class ReferenceReconciler {
  readonly leases = new Map<string, Lease>();
  #ids = new Map<string, number>();
  #mirror = { peers: new Map<string, PeerValue>(), sources: new Map<number, TunnelSource>() };
  #lastRejected = new Map<string, string>();
  #lastUnreachable = new Map<string, string>();
  planned: DesiredPeerWithId[] = [];
  last: ApplyResult | null = null;

  constructor(private readonly maps: Maps, private own: OwnNode, private uplink: UplinkFacts, private readonly capacity: number,
    private readonly log: Logger, private readonly onRejected: (r: Rejection) => void) {
    this.reloadMirror();
  }

  reloadMirror(): void {
    this.#mirror.peers = new Map(this.maps.peers.entries().map(([k, v]) => [formatCidr(k), v]));
    this.#mirror.sources = new Map(this.maps.sources.entries());
  }

  setUplink(u: UplinkFacts): void { this.uplink = u; }

  snapshot(leases: readonly Lease[]): ApplyResult {
    this.leases.clear();
    for (const l of leases) this.leases.set(l.key, l);
    return this.apply();
  }

  apply(): ApplyResult {
    const desired = desiredState(this.own, [...this.leases.values()], this.uplink);
    if (this.#ids.size === 0 && this.#mirror.peers.size > 0) this.#ids = recoverPeerIds(this.#mirror.peers, desired.peers);
    const planned = withPeerIds(desired, this.#ids, this.capacity);
    const d = diff(this.#mirror, planned);
    if (!isEmptyDiff(d)) {
      try {
        const zero = { txPackets: 0n, txBytes: 0n, rxPackets: 0n, rxBytes: 0n };
        const reused = planned.taken.filter((id) => id < this.maps.peerStats.capacity);
        if (reused.length) this.maps.peerStats.setMany(reused.map((id) => [id, zero] as const));
        this.maps.sources.setMany(d.sourceUpserts.map((u) => [u.publicIp, u.value] as const));
        this.maps.peers.setMany(d.peerUpserts.map((u) => [u.subnet, u.value] as const));
        this.maps.peers.deleteMany(d.peerDeletes);
        this.maps.sources.deleteMany(d.sourceDeletes);
      } catch (err) {
        this.reloadMirror();
        throw err;
      }
      applyDiffToMaps(this.#mirror, d);
    }
    this.#ids = planned.ids;
    this.planned = planned.peers;
    const now = new Map(planned.rejected.map((r) => [r.leaseKey, `${r.reason}: ${r.message}`]));
    for (const r of planned.rejected) {
      if (this.#lastRejected.get(r.leaseKey) !== `${r.reason}: ${r.message}`) {
        this.log.warn(r.message, { lease: r.leaseKey, reason: r.reason });
        this.onRejected(r);
      }
    }
    this.#lastRejected = now;
    const unr = new Map(planned.unreachable.map((u) => [u.leaseKey, u.message]));
    for (const u of planned.unreachable) {
      if (this.#lastUnreachable.get(u.leaseKey) !== u.message) this.log.warn(u.message, { lease: u.leaseKey, reason: u.reason });
    }
    this.#lastUnreachable = unr;
    this.last = { diff: d, seconds: 0, peers: planned.peers.length, rejected: planned.rejected, unreachable: planned.unreachable };
    return this.last;
  }
}

/* ------------------------------------------------------------ scenarios */

const NETWORK = '10.244.0.0/16';
const OWN_SUBNET = '10.244.1.0/24';
const OWN_IP = '192.168.1.1';
const KEYS = ['a', 'b', 'c', 'd', 'e', 'f', 'B', 'own'];
/* Nest-heavy: /23 ⊃ two /24 ⊃ /25s, a /22 over four /24s, plus our own subnet's neighbourhood and the outside. */
const SUBNETS = [
  '10.244.2.0/23', '10.244.2.0/24', '10.244.3.0/24', '10.244.2.0/25', '10.244.2.128/25', '10.244.3.0/25',
  '10.244.4.0/22', '10.244.4.0/24', '10.244.5.0/24', '10.244.6.0/24', '10.244.7.0/24',
  '10.244.8.0/24', '10.244.9.0/24', '10.244.0.0/23', '10.245.0.0/24',
];
const IPS = ['192.168.1.2', '192.168.1.3', '192.168.1.4', '10.9.0.5', '10.9.0.6', '10.9.0.7', OWN_IP, '127.0.0.1', '10.244.9.9'];
const MACS = ['0e:00:00:00:00:0a', '0e:00:00:00:00:0b', '0E:00:00:00:00:0C', '0e:00:00:00:00:0d'];
const ON_LINK = ['192.168.1.0/24', '10.9.0.0/24'];

interface Setup { backend: 'vxlan' | 'host-gw' | 'udp'; directRouting: boolean; capacity: number; onLink: boolean[] }

type Op =
  | { op: 'upsert'; lease: Lease }
  | { op: 'remove'; key: string }
  | { op: 'batch'; changes: Array<{ lease: Lease } | { key: string }> }
  | { op: 'snapshot'; leases: Lease[] }
  | { op: 'uplink'; onLink: boolean[] }
  | { op: 'restart'; leases: Lease[]; junk: Array<{ subnet: string; peerId: number; ip: string }> }
  | { op: 'fail'; inner: Op; map: 'peers' | 'sources'; after: number };

function leaseArb(backend: Setup['backend']): fc.Arbitrary<Lease> {
  return fc.record({
    key: fc.constantFrom(...KEYS),
    subnet: fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...SUBNETS).map((s) => parseCidr(s)) },
      { weight: 1, arbitrary: fc.constant({ addr: parseIPv4('10.244.6.7'), prefix: 24 }) }),
    publicIp: fc.constantFrom(...IPS).map(parseIPv4),
    backendType: fc.oneof({ weight: 10, arbitrary: fc.constant(backend) }, { weight: 1, arbitrary: fc.constantFrom('vxlan', 'host-gw', 'udp', 'wireguard') }),
    vtepMac: fc.oneof({ weight: 10, arbitrary: fc.constantFrom(...MACS) }, { weight: 1, arbitrary: fc.constant(undefined) }),
    vni: fc.oneof({ weight: 10, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.constantFrom(2, undefined) }),
  }).map((l) => {
    const out: Lease = { key: l.key, subnet: l.subnet, publicIp: l.publicIp, backendType: l.backendType };
    if (l.vtepMac !== undefined && l.backendType === 'vxlan') out.vtepMac = l.vtepMac;
    if (l.vni !== undefined && l.backendType === 'vxlan') out.vni = l.vni;
    return out;
  });
}

function uniqueByKey(ls: Lease[]): Lease[] {
  return [...new Map(ls.map((l) => [l.key, l])).values()];
}

function opArb(backend: Setup['backend']): fc.Arbitrary<Op> {
  const lease = leaseArb(backend);
  const base: fc.Arbitrary<Op> = fc.oneof(
    { weight: 10, arbitrary: lease.map((l): Op => ({ op: 'upsert', lease: l })) },
    { weight: 4, arbitrary: fc.constantFrom(...KEYS, 'zz').map((key): Op => ({ op: 'remove', key })) },
    { weight: 4, arbitrary: fc.array(fc.oneof(lease.map((l) => ({ lease: l })), fc.constantFrom(...KEYS).map((key) => ({ key }))), { minLength: 1, maxLength: 6 }).map((changes): Op => ({ op: 'batch', changes })) },
    { weight: 1, arbitrary: fc.array(lease, { maxLength: 8 }).map((ls): Op => ({ op: 'snapshot', leases: uniqueByKey(ls) })) },
    { weight: 1, arbitrary: fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }).map((onLink): Op => ({ op: 'uplink', onLink })) },
    {
      weight: 1,
      arbitrary: fc.record({
        leases: fc.array(lease, { maxLength: 8 }),
        /* What an earlier run (or anything else) left in the pinned maps: stale entries, ids out of range or shared. */
        junk: fc.array(fc.record({ subnet: fc.constantFrom(...SUBNETS.slice(0, 13)), peerId: fc.nat(8), ip: fc.constantFrom(...IPS) }), { maxLength: 4 }),
        /* ids for the new leases' own subnets, often shared (recovery must not give one id twice) */
        ids: fc.array(fc.option(fc.nat(3)), { maxLength: 8 }),
      }).map(({ leases, junk, ids }): Op => {
        const ls = uniqueByKey(leases);
        const own = ls.flatMap((l, i) => (ids[i] === undefined || ids[i] === null ? [] : [{ subnet: formatCidr(l.subnet), peerId: ids[i] as number, ip: IPS[i % IPS.length] as string }]));
        return { op: 'restart', leases: ls, junk: [...junk, ...own.filter((j) => formatCidr(parseCidr(j.subnet, false)) === j.subnet)] };
      }),
    },
  );
  return fc.oneof(
    { weight: 12, arbitrary: base },
    { weight: 1, arbitrary: fc.record({ inner: base, map: fc.constantFrom('peers' as const, 'sources' as const), after: fc.nat(3) }).map((f): Op => ({ op: 'fail', ...f })) },
  );
}

const setupArb: fc.Arbitrary<Setup> = fc.record({
  backend: fc.constantFrom('vxlan' as const, 'vxlan' as const, 'host-gw' as const, 'udp' as const),
  directRouting: fc.boolean(),
  capacity: fc.oneof(fc.integer({ min: 2, max: 6 }), fc.constant(1000)),
  onLink: fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }),
});

const uplinkOf = (onLink: boolean[]): UplinkFacts => ({ onLinkSubnets: ON_LINK.filter((_, i) => onLink[i]).map((s) => parseCidr(s)) });

/** Drive the Reconciler and the reference through the same operations; compare after each. */
function run(t: import('ava').ExecutionContext, setup: Setup, ops: Op[]): void {
  const own: OwnNode = {
    subnet: parseCidr(OWN_SUBNET), network: parseCidr(NETWORK), publicIp: parseIPv4(OWN_IP), backend: setup.backend,
    vni: 1, port: 8472, directRouting: setup.directRouting, leaseKey: 'own',
  };
  let uplink = uplinkOf(setup.onLink);
  const mine = { maps: fakeMaps(setup.capacity), ...capture(), hooked: [] as Rejection[] };
  const ref = { maps: fakeMaps(setup.capacity), ...capture(), hooked: [] as Rejection[] };
  const make = (): { rec: Reconciler; spec: ReferenceReconciler } => ({
    rec: new Reconciler(mine.maps, own, uplink, setup.capacity, mine.log, { rejected: (r) => mine.hooked.push(r) }),
    spec: new ReferenceReconciler(ref.maps, own, uplink, setup.capacity, ref.log, (r) => ref.hooked.push(r)),
  });
  let { rec, spec } = make();
  const both = (f: (x: Reconciler | ReferenceReconciler, isRef: boolean) => ApplyResult): [ApplyResult | string, ApplyResult | string] => {
    const res: Array<ApplyResult | string> = [];
    for (const [x, isRef] of [[rec, false], [spec, true]] as const) {
      try { res.push(f(x, isRef)); } catch (err) { res.push(`threw: ${(err as Error).message}`); }
    }
    return [res[0] as ApplyResult | string, res[1] as ApplyResult | string];
  };
  const step = (op: Op): [ApplyResult | string, ApplyResult | string] => {
    switch (op.op) {
      case 'upsert':
        return both((x, isRef) => (isRef ? ((x as ReferenceReconciler).leases.set(op.lease.key, op.lease), (x as ReferenceReconciler).apply()) : (x as Reconciler).upsert(op.lease)));
      case 'remove':
        return both((x, isRef) => (isRef ? ((x as ReferenceReconciler).leases.delete(op.key), (x as ReferenceReconciler).apply()) : (x as Reconciler).remove(op.key)));
      case 'batch':
        return both((x, isRef) => {
          for (const c of op.changes) {
            if (isRef) {
              const s = x as ReferenceReconciler;
              if ('lease' in c) s.leases.set(c.lease.key, c.lease); else s.leases.delete(c.key);
            } else {
              const r = x as Reconciler;
              if ('lease' in c) r.stage(c.lease); else r.stageRemove(c.key);
            }
          }
          return isRef ? (x as ReferenceReconciler).apply() : (x as Reconciler).flush();
        });
      case 'snapshot':
        return both((x) => x.snapshot(op.leases));
      case 'uplink':
        uplink = uplinkOf(op.onLink);
        return both((x, isRef) => { x.setUplink(uplink); return isRef ? (x as ReferenceReconciler).apply() : (x as Reconciler).flush(); });
      case 'restart':
        for (const m of [mine.maps, ref.maps]) {
          for (const j of op.junk) {
            m.peers.set(parseCidr(j.subnet), { mode: 'vxlan', vtepMac: '0e:00:00:00:00:99', peerId: j.peerId, publicIp: parseIPv4(j.ip) });
            m.sources.set(parseIPv4(j.ip), { peerId: j.peerId });
          }
        }
        ({ rec, spec } = make());
        return both((x) => x.snapshot(op.leases));
      case 'fail':
        mine.maps.raw[op.map].failAfter = op.after;
        ref.maps.raw[op.map].failAfter = op.after;
        try {
          return step(op.inner);
        } finally {
          mine.maps.raw[op.map].failAfter = null;
          ref.maps.raw[op.map].failAfter = null;
        }
    }
  };
  for (const [i, op] of ops.entries()) {
    const [a, b] = step(op);
    const where = `step ${i} (${op.op})`;
    if (typeof a === 'string' || typeof b === 'string') {
      t.is(typeof a, typeof b, `${where}: both fail or neither: ${String(a)} / ${String(b)}`);
    } else {
      t.deepEqual({ ...a, seconds: 0 }, b, where);
    }
    t.deepEqual(rec.planned, spec.planned, `${where}: planned`);
    t.deepEqual(mine.lines, ref.lines, `${where}: log lines`);
    t.deepEqual(mine.hooked, ref.hooked, `${where}: rejection hook`);
    t.deepEqual(dump(mine.maps), dump(ref.maps), `${where}: map contents`);
  }
}

test('incremental applies equal a full recompute with the pure pipeline (random lease sequences)', (t) => {
  fc.assert(fc.property(setupArb.chain((setup) => fc.tuple(fc.constant(setup), fc.array(opArb(setup.backend), { minLength: 1, maxLength: 40 }))), ([setup, ops]) => {
    let ok = true;
    const probe = {
      is: (a: unknown, b: unknown, m?: string) => { if (a !== b) { ok = false; throw new Error(`${m}: ${String(a)} !== ${String(b)}`); } },
      deepEqual: (a: unknown, b: unknown, m?: string) => {
        const x = JSON.stringify(a, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
        const y = JSON.stringify(b, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
        if (x !== y) { ok = false; const e = `${m}:\n  incremental ${x}\n  reference   ${y}`; if (process.env.FC_DEBUG) console.error(e); throw new Error(e); }
      },
    } as unknown as import('ava').ExecutionContext;
    run(probe, setup, ops);
    return ok;
  }), { numRuns: 1000, seed: Number(process.env.FC_SEED ?? 0x5eed), verbose: 0 });
  t.pass();
});

test('a named scenario: removing the winner of a conflict chain programs the losers in key order, ids recycled next round', (t) => {
  const mk = (key: string, subnet: string, ip: string): Lease => ({ key, subnet: parseCidr(subnet), publicIp: parseIPv4(ip), backendType: 'vxlan', vtepMac: '0e:00:00:00:00:0a', vni: 1 });
  run(t, { backend: 'vxlan', directRouting: false, capacity: 1000, onLink: [true, false] }, [
    { op: 'snapshot', leases: [mk('a', '10.244.2.0/23', '10.9.0.5'), mk('b', '10.244.2.0/24', '10.9.0.6'), mk('c', '10.244.3.0/24', '10.9.0.6'), mk('d', '10.244.4.0/24', '10.9.0.7')] },
    { op: 'remove', key: 'a' }, /* b wins now; c loses to b on the public IP */
    { op: 'upsert', lease: mk('b', '10.244.5.0/24', '10.9.0.5') }, /* b moves away: c is programmed */
    { op: 'upsert', lease: mk('a', '10.244.2.0/23', '10.9.0.9') }, /* a covers c: c loses again */
    { op: 'batch', changes: [{ key: 'a' }, { lease: mk('e', '10.244.6.0/24', '10.9.0.8') }] },
  ]);
});

/* ------------------------------------------------------------ the plan alone */

test('one change at 10k leases re-decides only the leases it can affect', (t) => {
  const own: OwnNode = { subnet: parseCidr('10.0.0.0/24'), network: parseCidr('10.0.0.0/8'), publicIp: parseIPv4('172.16.0.1'), backend: 'vxlan', vni: 1, port: 8472, directRouting: false, leaseKey: '10.0.0.0-24' };
  const leases: Lease[] = [];
  for (let i = 1; i <= 10_000; i++) {
    const addr = (parseIPv4('10.64.0.0') + i * 256) >>> 0;
    leases.push({ key: `k${String(i).padStart(5, '0')}`, subnet: { addr, prefix: 24 }, publicIp: (parseIPv4('172.16.0.1') + i) >>> 0, backendType: 'vxlan', vtepMac: '0e:00:00:00:00:01', vni: 1 });
  }
  const plan = new Plan(own, { onLinkSubnets: [] }, 65536);
  const full = plan.full(leases);
  t.is(plan.planned.length, 10_000);
  t.is(full.taken.length, 10_000);
  const moved = { ...leases[500]!, vtepMac: '0e:00:00:00:00:02' };
  const r = plan.change(new Map([[moved.key, moved]]));
  t.is(r.decided, 1);
  t.deepEqual([...(r.subnets ?? [])], [moved.subnet.addr * 64 + 24]);
  t.is(plan.planned[500]?.vtepMac, '0e:00:00:00:00:02');
  t.is(plan.planned[500]?.peerId, 501, 'keeps its id');
  /* A /16 over 256 of them: they all lose to it (smaller key) — and win again when it goes. */
  const big: Lease = { key: 'a-big', subnet: parseCidr('10.65.0.0/16'), publicIp: parseIPv4('172.31.0.1'), backendType: 'vxlan', vtepMac: '0e:00:00:00:00:03', vni: 1 };
  const r2 = plan.change(new Map([[big.key, big]]));
  t.is(r2.decided, 257);
  t.is(plan.rejected.size, 256);
  t.is(plan.planned.length, 10_000 - 256 + 1);
  const r3 = plan.change(new Map([[big.key, null]]));
  t.is(plan.rejected.size, 0);
  t.is(plan.planned.length, 10_000);
  t.is(r3.taken.length, 256, 'the returning peers take fresh ids (the ones they had were freed a round earlier and are the lowest free)');
});

/* ------------------------------------------------------------ the fast codec */

test('encodePeerValue / decodePeerValue write and read the codec\'s bytes', (t) => {
  const modes = ['vxlan', 'direct', 'host-gw', 'udp'] as const;
  fc.assert(fc.property(
    fc.constantFrom(...modes), fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 }), fc.boolean(), fc.nat(), fc.nat(),
    (mode, bytes, upper, peerId, ip) => {
      const b = [...bytes];
      b[0] = (b[0] as number) & 0xfe;
      if (!b.some((x) => x !== 0)) b[5] = 1;
      let mac = b.map((x) => x.toString(16).padStart(2, '0')).join(':');
      if (upper) mac = mac.toUpperCase();
      const v: PeerValue = { mode, vtepMac: mac, peerId: peerId >>> 0, publicIp: ip >>> 0 };
      const want = Buffer.alloc(16);
      peersCodec.encodeValue(v, want, 0);
      const got = Buffer.alloc(16);
      encodePeerValue(v, got, 0);
      t.deepEqual(got, want);
      t.deepEqual(decodePeerValue(got, 0), peersCodec.decodeValue(want, 0));
    },
  ));
  const zero = Buffer.alloc(16, 0xff);
  encodePeerValue({ mode: 'host-gw', vtepMac: '00:00:00:00:00:00', peerId: 3, publicIp: 1 }, zero, 0);
  const want = Buffer.alloc(16, 0xff);
  peersCodec.encodeValue({ mode: 'host-gw', vtepMac: '00:00:00:00:00:00', peerId: 3, publicIp: 1 }, want, 0);
  t.deepEqual(zero, want);
  for (const bad of ['01:00:00:00:00:01', 'zz:00:00:00:00:01', '0e:00:00:00:00', '0e-00-00-00-00-01', '0e:00:00:00:00:0100']) {
    const a = t.throws(() => peersCodec.encodeValue({ mode: 'vxlan', vtepMac: bad, peerId: 1, publicIp: 1 }, Buffer.alloc(16), 0));
    const b = t.throws(() => encodePeerValue({ mode: 'vxlan', vtepMac: bad, peerId: 1, publicIp: 1 }, Buffer.alloc(16), 0));
    t.is(b?.message, a?.message, bad);
  }
});

/* keep the imports honest */
void (null as unknown as MapDiff | UnreachablePeer);
