/** Codec of fbpf_drops: drop reason → per-CPU struct fbpf_drop_stats (summed on read). */
import type { Codec } from './codec.js';

export interface DropStats {
  packets: bigint;
  bytes: bigint;
}

export const dropsCodec: Codec<number, DropStats> = {
  mapName: 'fbpf_drops',
  keySize: 4,
  valueSize: 16,
  perCpu: true,
  encodeKey(k, buf, off) { buf.writeUInt32LE(k, off); },
  decodeKey(buf, off) { return buf.readUInt32LE(off); },
  encodeValue(v, buf, off) {
    buf.writeBigUInt64LE(v.packets, off);
    buf.writeBigUInt64LE(v.bytes, off + 8);
  },
  decodeValue(buf, off) {
    return { packets: buf.readBigUInt64LE(off), bytes: buf.readBigUInt64LE(off + 8) };
  },
  add(a, b) {
    return { packets: a.packets + b.packets, bytes: a.bytes + b.bytes };
  },
};

/** Codec of fbpf_fast_stats: fast-path event → per-CPU {packets, bytes} (the drops layout). */
export const fastStatsCodec: Codec<number, DropStats> = { ...dropsCodec, mapName: 'fbpf_fast_stats' };
