/**
 * Codec: the byte layout of one map's keys and values, mirrored from
 * bpf/include/fbpf_shared.h. TypedMap puts a codec over a loaded map; at
 * construction the map's real key/value sizes are checked against the codec
 * and a mismatch refuses to go on (old pins or a stale build).
 */
import { BpfMap } from '../loader/map.js';
import { FlannelBpfError } from '../loader/errors.js';

export interface Codec<K, V> {
  readonly mapName: string;
  readonly keySize: number;
  /** Size of one value (for per-CPU maps: one CPU's value). */
  readonly valueSize: number;
  readonly perCpu: boolean;
  encodeKey(key: K, buf: Buffer, off: number): void;
  decodeKey(buf: Buffer, off: number): K;
  encodeValue(value: V, buf: Buffer, off: number): void;
  decodeValue(buf: Buffer, off: number): V;
  /** Per-CPU maps: how two CPUs' values combine (sum). */
  add?(a: V, b: V): V;
}

export class MapLayoutMismatchError extends FlannelBpfError {
  constructor(readonly mapName: string, what: string, expected: number, actual: number) {
    super(`map ${mapName}: ${what} is ${actual} bytes in the loaded map but ${expected} in this agent`,
      'the BPF objects and the agent are from different builds, or old pins survive an upgrade: rebuild (scripts/build-bpf.sh) and, if pins are stale, run "flannel-bpf reset"');
  }
}

/** Refuse to work with a map whose sizes differ from the codec's. */
export function checkLayout(map: BpfMap, codec: Codec<unknown, unknown>): void {
  if (map.keySize !== codec.keySize) throw new MapLayoutMismatchError(codec.mapName, 'key size', codec.keySize, map.keySize);
  if (map.valueSize !== codec.valueSize) {
    throw new MapLayoutMismatchError(codec.mapName, 'value size', codec.valueSize, map.valueSize);
  }
}

export class TypedMap<K, V> {
  constructor(readonly map: BpfMap, readonly codec: Codec<K, V>) {
    checkLayout(map, codec as Codec<unknown, unknown>);
  }

  get capacity(): number { return this.map.maxEntries; }

  key(k: K): Buffer {
    const b = Buffer.alloc(this.codec.keySize);
    this.codec.encodeKey(k, b, 0);
    return b;
  }

  /** Decode a value buffer as the syscall returns it (summing CPUs for per-CPU maps). */
  decodeValueBuf(buf: Buffer, off = 0): V {
    if (!this.codec.perCpu) return this.codec.decodeValue(buf, off);
    const add = this.codec.add;
    if (!add) throw new Error(`codec ${this.codec.mapName} has no add() for per-CPU values`);
    let acc = this.codec.decodeValue(buf, off);
    for (let cpu = 1; cpu < this.map.ncpus; cpu++) acc = add(acc, this.codec.decodeValue(buf, off + cpu * this.map.cpuStride));
    return acc;
  }

  /** Encode a value for an update (per-CPU maps: the same value on every CPU). */
  encodeValueBuf(v: V, buf = Buffer.alloc(this.map.valueBufSize), off = 0): Buffer {
    for (let cpu = 0; cpu < this.map.ncpus; cpu++) this.codec.encodeValue(v, buf, off + cpu * this.map.cpuStride);
    return buf;
  }

  get(k: K): V | null {
    const raw = this.map.lookup(this.key(k));
    return raw ? this.decodeValueBuf(raw) : null;
  }

  set(k: K, v: V): void {
    this.map.update(this.key(k), this.encodeValueBuf(v));
  }

  delete(k: K): boolean {
    return this.map.delete(this.key(k));
  }

  /** All entries, read with one batched lookup where the kernel supports it. */
  entries(): Array<[K, V]> {
    const { keys, values, count } = this.map.lookupAll();
    const out: Array<[K, V]> = [];
    for (let i = 0; i < count; i++) {
      out.push([this.codec.decodeKey(keys, i * this.codec.keySize), this.decodeValueBuf(values, i * this.map.valueBufSize)]);
    }
    return out;
  }

  /** Write many entries in one batched syscall. */
  setMany(entries: ReadonlyArray<readonly [K, V]>): void {
    if (entries.length === 0) return;
    const keys = Buffer.alloc(entries.length * this.codec.keySize);
    const values = Buffer.alloc(entries.length * this.map.valueBufSize);
    entries.forEach(([k, v], i) => {
      this.codec.encodeKey(k, keys, i * this.codec.keySize);
      this.encodeValueBuf(v, values, i * this.map.valueBufSize);
    });
    this.map.updateBatch(keys, values, entries.length);
  }

  /** Delete many keys in one batched syscall (all must exist). */
  deleteMany(ks: readonly K[]): void {
    if (ks.length === 0) return;
    const keys = Buffer.alloc(ks.length * this.codec.keySize);
    ks.forEach((k, i) => this.codec.encodeKey(k, keys, i * this.codec.keySize));
    this.map.deleteBatch(keys, ks.length);
  }
}
