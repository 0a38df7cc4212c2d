/** Codec of fbpf_endpoints: local pod IPv4 → struct fbpf_endpoint (its veth ifindex and MAC). */
import type { Codec } from './codec.js';
import { writeIPv4, readIPv4, formatMac, parseMac } from './addr.js';

export interface Endpoint {
  ifindex: number;
  mac: string;
}

export const endpointsCodec: Codec<number, Endpoint> = {
  mapName: 'fbpf_endpoints',
  keySize: 4,
  valueSize: 12,
  perCpu: false,
  encodeKey(ip, buf, off) { writeIPv4(buf, off, ip); },
  decodeKey(buf, off) { return readIPv4(buf, off); },
  encodeValue(v, buf, off) {
    buf.writeUInt32LE(v.ifindex, off);
    parseMac(v.mac).copy(buf, off + 4);
    buf.writeUInt16LE(0, off + 10);
  },
  decodeValue(buf, off) {
    return { ifindex: buf.readUInt32LE(off), mac: formatMac(buf.subarray(off + 4, off + 10)) };
  },
};
