/** Codec of fbpf_peer_stats: peer id → per-CPU struct fbpf_peer_stats (summed on read). */
import type { Codec } from './codec.js';

export interface PeerStats {
  txPackets: bigint;
  txBytes: bigint;
  rxPackets: bigint;
  rxBytes: bigint;
}

export const ZERO_PEER_STATS: PeerStats = { txPackets: 0n, txBytes: 0n, rxPackets: 0n, rxBytes: 0n };

export const peerStatsCodec: Codec<number, PeerStats> = {
  mapName: 'fbpf_peer_stats',
  keySize: 4,
  valueSize: 32,
  perCpu: true,
  encodeKey(k, buf, off) { buf.writeUInt32LE(k, off); },
  decodeKey(buf, off) { return buf.readUInt32LE(off); },
  encodeValue(v, buf, off) {
    buf.writeBigUInt64LE(v.txPackets, off);
    buf.writeBigUInt64LE(v.txBytes, off + 8);
    buf.writeBigUInt64LE(v.rxPackets, off + 16);
    buf.writeBigUInt64LE(v.rxBytes, off + 24);
  },
  decodeValue(buf, off) {
    return {
      txPackets: buf.readBigUInt64LE(off),
      txBytes: buf.readBigUInt64LE(off + 8),
      rxPackets: buf.readBigUInt64LE(off + 16),
      rxBytes: buf.readBigUInt64LE(off + 24),
    };
  },
  add(a, b) {
    return {
      txPackets: a.txPackets + b.txPackets,
      txBytes: a.txBytes + b.txBytes,
      rxPackets: a.rxPackets + b.rxPackets,
      rxBytes: a.rxBytes + b.rxBytes,
    };
  },
};
