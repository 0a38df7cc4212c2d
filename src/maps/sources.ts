/** Codec of fbpf_sources: peer public IP → struct fbpf_tunnel_source. */
import type { Codec } from './codec.js';
import { writeIPv4, readIPv4 } from './addr.js';

export interface TunnelSource {
  peerId: number;
}

export const sourcesCodec: Codec<number, TunnelSource> = {
  mapName: 'fbpf_sources',
  keySize: 4,
  valueSize: 8,
  perCpu: false,
  encodeKey(ip, buf, off) { writeIPv4(buf, off, ip); },
  decodeKey(buf, off) { return readIPv4(buf, off); },
  encodeValue(v, buf, off) {
    buf.writeUInt32LE(v.peerId, off);
    buf.writeUInt32LE(0, off + 4);
  },
  decodeValue(buf, off) { return { peerId: buf.readUInt32LE(off) }; },
};
