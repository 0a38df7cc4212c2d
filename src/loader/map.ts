/**
 * A BPF map by file descriptor: element and batch operations on raw key /
 * value Buffers. Typed access lives in src/maps/ (codecs over these bytes).
 */
import os from 'node:os';
import {
  libbpf, BPF_ANY, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH, structSizes,
} from './libbpf.js';
import { syscallError } from './errors.js';

const ENOENT = os.constants.errno.ENOENT;

export interface MapInfo {
  id: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

const MAP_INFO_LEN = 96;

/** bpf_obj_get_info_by_fd for a map fd. */
export function mapInfo(fd: number): MapInfo {
  const lib = libbpf();
  const buf = Buffer.alloc(MAP_INFO_LEN);
  const len = new Uint32Array([MAP_INFO_LEN]);
  const rc = lib.bpf_obj_get_info_by_fd(fd, buf, len);
  if (rc < 0) throw syscallError('bpf_obj_get_info_by_fd(map)', rc);
  const nameEnd = buf.indexOf(0, 24);
  return {
    type: buf.readUInt32LE(0),
    id: buf.readUInt32LE(4),
    keySize: buf.readUInt32LE(8),
    valueSize: buf.readUInt32LE(12),
    maxEntries: buf.readUInt32LE(16),
    flags: buf.readUInt32LE(20),
    name: buf.toString('utf8', 24, nameEnd > 0 && nameEnd < 40 ? nameEnd : 40),
  };
}

let cpuCount: number | undefined;
/** Possible CPUs, the multiplier of per-CPU values. */
export function possibleCpus(): number {
  if (cpuCount === undefined) {
    const n = libbpf().libbpf_num_possible_cpus();
    if (n <= 0) throw syscallError('libbpf_num_possible_cpus', n);
    cpuCount = n;
  }
  return cpuCount;
}

function batchOpts(): Buffer {
  const opts = Buffer.alloc(structSizes.mapBatchOpts);
  opts.writeBigUInt64LE(BigInt(structSizes.mapBatchOpts), 0);
  return opts;
}

export class BpfMap {
  readonly info: MapInfo;
  readonly perCpu: boolean;
  /** Bytes of one value as the syscalls want them (per-CPU: rounded to 8 × CPUs). */
  readonly valueBufSize: number;
  /** Bytes of one CPU's slot inside a per-CPU value. */
  readonly cpuStride: number;
  readonly ncpus: number;
  #fd: number;
  readonly #ownsFd: boolean;

  constructor(fd: number, opts: { ownsFd: boolean; name?: string }) {
    this.#fd = fd;
    this.#ownsFd = opts.ownsFd;
    this.info = mapInfo(fd);
    if (opts.name) this.info.name = opts.name;
    this.perCpu = this.info.type === BPF_MAP_TYPE_PERCPU_ARRAY || this.info.type === BPF_MAP_TYPE_PERCPU_HASH;
    this.ncpus = this.perCpu ? possibleCpus() : 1;
    this.cpuStride = this.perCpu ? Math.ceil(this.info.valueSize / 8) * 8 : this.info.valueSize;
    this.valueBufSize = this.cpuStride * this.ncpus;
  }

  /** Open a pinned map by path (bpf_obj_get). */
  static fromPin(path: string): BpfMap {
    const fd = libbpf().bpf_obj_get(path);
    if (fd < 0) throw syscallError(`bpf_obj_get(${path})`, fd);
    return new BpfMap(fd, { ownsFd: true });
  }

  get fd(): number {
    if (this.#fd < 0) throw new Error(`map ${this.info.name} is closed`);
    return this.#fd;
  }
  get name(): string { return this.info.name; }
  get keySize(): number { return this.info.keySize; }
  get valueSize(): number { return this.info.valueSize; }
  get maxEntries(): number { return this.info.maxEntries; }

  #checkKey(key: Buffer): void {
    if (key.length !== this.keySize) {
      throw new RangeError(`map ${this.name}: key is ${key.length} bytes, map wants ${this.keySize}`);
    }
  }

  /** The value for key, or null when absent. Per-CPU maps return all CPUs' slots. */
  lookup(key: Buffer, into?: Buffer): Buffer | null {
    this.#checkKey(key);
    const value = into ?? Buffer.alloc(this.valueBufSize);
    const rc = libbpf().bpf_map_lookup_elem(this.fd, key, value);
    if (rc === -ENOENT) return null;
    if (rc < 0) throw syscallError(`lookup in map ${this.name}`, rc);
    return value;
  }

  update(key: Buffer, value: Buffer, flags = BPF_ANY): void {
    this.#checkKey(key);
    if (value.length !== this.valueBufSize) {
      throw new RangeError(`map ${this.name}: value is ${value.length} bytes, map wants ${this.valueBufSize}`);
    }
    const rc = libbpf().bpf_map_update_elem(this.fd, key, value, BigInt(flags));
    if (rc < 0) throw syscallError(`update of map ${this.name}`, rc);
  }

  /** Delete key; false when it was not there. */
  delete(key: Buffer): boolean {
    this.#checkKey(key);
    const rc = libbpf().bpf_map_delete_elem(this.fd, key);
    if (rc === -ENOENT) return false;
    if (rc < 0) throw syscallError(`delete from map ${this.name}`, rc);
    return true;
  }

  /** Every key (get_next_key walk). */
  keys(): Buffer[] {
    const out: Buffer[] = [];
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const rc = libbpf().bpf_map_get_next_key(this.fd, prev, next);
      if (rc === -ENOENT) return out;
      if (rc < 0) throw syscallError(`key walk of map ${this.name}`, rc);
      out.push(next);
      prev = next;
    }
  }

  /** Write `count` entries from flat key/value buffers in one syscall; returns how many were written. */
  updateBatch(keys: Buffer, values: Buffer, count: number, flags = BPF_ANY): number {
    if (count === 0) return 0;
    if (keys.length < count * this.keySize || values.length < count * this.valueBufSize) {
      throw new RangeError(`map ${this.name}: batch buffers too small for ${count} entries`);
    }
    const n = new Uint32Array([count]);
    const opts = batchOpts();
    opts.writeBigUInt64LE(BigInt(flags), 8);
    const rc = libbpf().bpf_map_update_batch(this.fd, keys, values, n, opts);
    if (rc < 0) throw syscallError(`batch update of map ${this.name} (${n[0]} of ${count} written)`, rc);
    return n[0] ?? 0;
  }

  /** Delete `count` keys from a flat key buffer in one syscall; missing keys are an error (ENOENT). */
  deleteBatch(keys: Buffer, count: number): number {
    if (count === 0) return 0;
    const n = new Uint32Array([count]);
    const rc = libbpf().bpf_map_delete_batch(this.fd, keys, n, batchOpts());
    if (rc < 0) throw syscallError(`batch delete from map ${this.name} (${n[0]} of ${count} deleted)`, rc);
    return n[0] ?? 0;
  }

  /**
   * Read the whole map with BPF_MAP_LOOKUP_BATCH. Returns flat buffers of
   * `count` keys and values (values in the per-CPU layout for per-CPU maps).
   */
  lookupAll(chunk = 4096): { keys: Buffer; values: Buffer; count: number } {
    const lib = libbpf();
    const cap = this.maxEntries;
    const step = Math.min(chunk, cap);
    const keyParts: Buffer[] = [];
    const valueParts: Buffer[] = [];
    let total = 0;
    const inBatch = Buffer.alloc(Math.max(this.keySize, 8));
    const outBatch = Buffer.alloc(Math.max(this.keySize, 8));
    let first = true;
    for (;;) {
      const keys = Buffer.alloc(step * this.keySize);
      const values = Buffer.alloc(step * this.valueBufSize);
      const n = new Uint32Array([step]);
      const rc = lib.bpf_map_lookup_batch(this.fd, first ? null : inBatch, outBatch, keys, values, n, batchOpts());
      const got = n[0] ?? 0;
      if (rc < 0 && rc !== -ENOENT) throw syscallError(`batch lookup of map ${this.name}`, rc);
      if (got > 0) {
        keyParts.push(keys.subarray(0, got * this.keySize));
        valueParts.push(values.subarray(0, got * this.valueBufSize));
        total += got;
      }
      if (rc === -ENOENT) break;
      outBatch.copy(inBatch);
      first = false;
    }
    return { keys: Buffer.concat(keyParts), values: Buffer.concat(valueParts), count: total };
  }

  /** Pin this map at path (bpf_obj_pin). */
  pin(path: string): void {
    const rc = libbpf().bpf_obj_pin(this.fd, path);
    if (rc < 0) throw syscallError(`pin map ${this.name} at ${path}`, rc);
  }

  close(): void {
    if (this.#ownsFd && this.#fd >= 0) libbpf().close(this.#fd);
    this.#fd = -1;
  }
}
