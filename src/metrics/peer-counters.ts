/**
 * Reading the per-peer counters fast enough to scrape 10,000 peers.
 *
 * fbpf_peer_stats is a per-CPU array sized --max-peers (65,536 by default)
 * whose slots are indexed by peer id. Ids are handed out lowest-first, so
 * the slots in use are (nearly) the prefix 0..maxId. `readPeerStatsRange`
 * reads exactly that prefix with BPF_MAP_LOOKUP_BATCH (one syscall per 8,192
 * slots) instead of the whole array; the summing helpers add the CPUs' slots
 * without decoding every value through the codec:
 *   - `sumPeerCounters` as float64 (Prometheus' value type; exact below 2^53),
 *   - `sumPeerCountersExact` as bigint (status --json: exact u64).
 */
import os from 'node:os';
import type { BpfMap } from '../loader/map.js';
import { libbpf, structSizes } from '../loader/libbpf.js';
import { syscallError } from '../loader/errors.js';
import type { PeerStats } from '../maps/peer-stats.js';

const ENOENT = os.constants.errno.ENOENT;
const CHUNK = 8192;
const TWO32 = 4294967296;

/** Raw per-CPU values of slots 0..count-1 (the layout the syscall returns). */
export interface PeerStatsRange {
  /** Slots read (= requested count unless the array is smaller). */
  count: number;
  values: Buffer;
  /** Bytes per slot (all CPUs). */
  slotSize: number;
  /** Bytes per CPU inside a slot. */
  cpuStride: number;
  ncpus: number;
}

function batchOpts(): Buffer {
  const opts = Buffer.alloc(structSizes.mapBatchOpts);
  opts.writeBigUInt64LE(BigInt(structSizes.mapBatchOpts), 0);
  return opts;
}

/** Read slots 0..count-1 of a (per-CPU) array map with batched lookups. */
export function readPeerStatsRange(map: BpfMap, count: number): PeerStatsRange {
  const want = Math.max(0, Math.min(count, map.maxEntries));
  const slotSize = map.valueBufSize;
  const values = Buffer.alloc(want * slotSize);
  const lib = libbpf();
  const inBatch = Buffer.alloc(Math.max(map.keySize, 8));
  const outBatch = Buffer.alloc(Math.max(map.keySize, 8));
  let got = 0;
  let first = true;
  while (got < want) {
    const step = Math.min(CHUNK, want - got);
    const keys = Buffer.alloc(step * map.keySize);
    const part = values.subarray(got * slotSize, (got + step) * slotSize);
    const n = new Uint32Array([step]);
    const rc = lib.bpf_map_lookup_batch(map.fd, first ? null : inBatch, outBatch, keys, part, n, batchOpts());
    if (rc < 0 && rc !== -ENOENT) throw syscallError(`batch lookup of map ${map.name}`, rc);
    got += n[0] ?? 0;
    if (rc === -ENOENT || (n[0] ?? 0) === 0) break;
    outBatch.copy(inBatch);
    first = false;
  }
  return { count: got, values, slotSize, cpuStride: map.cpuStride, ncpus: map.ncpus };
}

/**
 * Per-peer sums as float64: out[4*i .. 4*i+3] = tx packets, tx bytes,
 * rx packets, rx bytes of ids[i] (zeros for ids beyond the range read).
 */
export function sumPeerCounters(range: PeerStatsRange, ids: readonly number[]): Float64Array {
  const out = new Float64Array(ids.length * 4);
  const v = range.values;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id >= range.count) continue;
    let txp = 0; let txb = 0; let rxp = 0; let rxb = 0;
    for (let cpu = 0, off = id * range.slotSize; cpu < range.ncpus; cpu++, off += range.cpuStride) {
      txp += v.readUInt32LE(off) + v.readUInt32LE(off + 4) * TWO32;
      txb += v.readUInt32LE(off + 8) + v.readUInt32LE(off + 12) * TWO32;
      rxp += v.readUInt32LE(off + 16) + v.readUInt32LE(off + 20) * TWO32;
      rxb += v.readUInt32LE(off + 24) + v.readUInt32LE(off + 28) * TWO32;
    }
    out[i * 4] = txp;
    out[i * 4 + 1] = txb;
    out[i * 4 + 2] = rxp;
    out[i * 4 + 3] = rxb;
  }
  return out;
}

/** Per-peer sums, exact (u64 as bigint). */
export function sumPeerCountersExact(range: PeerStatsRange, ids: readonly number[]): Map<number, PeerStats> {
  const out = new Map<number, PeerStats>();
  const v = range.values;
  for (const id of ids) {
    const s: PeerStats = { txPackets: 0n, txBytes: 0n, rxPackets: 0n, rxBytes: 0n };
    if (id < range.count) {
      for (let cpu = 0, off = id * range.slotSize; cpu < range.ncpus; cpu++, off += range.cpuStride) {
        s.txPackets += v.readBigUInt64LE(off);
        s.txBytes += v.readBigUInt64LE(off + 8);
        s.rxPackets += v.readBigUInt64LE(off + 16);
        s.rxBytes += v.readBigUInt64LE(off + 24);
      }
    }
    out.set(id, s);
  }
  return out;
}

/** Read and sum the counters of `ids` (float64). */
export function readPeerCounters(map: BpfMap, ids: readonly number[]): Float64Array {
  let max = -1;
  for (const id of ids) if (id > max) max = id;
  return sumPeerCounters(readPeerStatsRange(map, max + 1), ids);
}

/** Read and sum the counters of `ids` (exact). */
export function readPeerCountersExact(map: BpfMap, ids: readonly number[]): Map<number, PeerStats> {
  let max = -1;
  for (const id of ids) if (id > max) max = id;
  return sumPeerCountersExact(readPeerStatsRange(map, max + 1), ids);
}
