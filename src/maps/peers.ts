/** Codec of fbpf_peers: pod subnet (LPM key) → struct fbpf_peer. */
import type { Codec } from './codec.js';
import { type Cidr, writeIPv4, readIPv4, formatMac, parseMac } from './addr.js';

export const PEER_MODES = { vxlan: 1, direct: 2, 'host-gw': 3, udp: 4 } as const;
export type PeerMode = keyof typeof PEER_MODES;
const MODE_NAMES = new Map<number, PeerMode>(Object.entries(PEER_MODES).map(([k, v]) => [v, k as PeerMode]));

export interface PeerValue {
  mode: PeerMode;
  /** Peer VtepMAC ("00:00:00:00:00:00" for modes that have none). */
  vtepMac: string;
  peerId: number;
  /** Peer public IP (host-arithmetic u32). */
  publicIp: number;
}

const ZERO_MAC = Buffer.alloc(6);

export const peersCodec: Codec<Cidr, PeerValue> = {
  mapName: 'fbpf_peers',
  keySize: 8,
  valueSize: 16,
  perCpu: false,
  encodeKey(k, buf, off) {
    buf.writeUInt32LE(k.prefix, off);
    writeIPv4(buf, off + 4, k.addr);
  },
  decodeKey(buf, off) {
    return { prefix: buf.readUInt32LE(off), addr: readIPv4(buf, off + 4) };
  },
  encodeValue(v, buf, off) {
    buf.writeUInt8(PEER_MODES[v.mode], off);
    buf.writeUInt8(0, off + 1);
    const mac = v.vtepMac === '00:00:00:00:00:00' ? ZERO_MAC : parseMac(v.vtepMac);
    mac.copy(buf, off + 2);
    buf.writeUInt32LE(v.peerId, off + 8);
    writeIPv4(buf, off + 12, v.publicIp);
  },
  decodeValue(buf, off) {
    const code = buf.readUInt8(off);
    const mode = MODE_NAMES.get(code);
    if (!mode) throw new RangeError(`fbpf_peers: unknown mode ${code}`);
    return {
      mode,
      vtepMac: formatMac(buf.subarray(off + 2, off + 8)),
      peerId: buf.readUInt32LE(off + 8),
      publicIp: readIPv4(buf, off + 12),
    };
  },
};
