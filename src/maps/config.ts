/** Codec of fbpf_config: the node's own configuration (struct fbpf_node_config). */
import type { Codec } from './codec.js';
import { writeIPv4, readIPv4, formatMac, parseMac } from './addr.js';

export const ABI_VERSION = 1;
export const BACKENDS = { vxlan: 1, 'host-gw': 2, udp: 3 } as const;
export type BackendType = keyof typeof BACKENDS;
export const DECAP_ENGINES = { kernel: 1, xdp: 2, tc: 3 } as const;
export type DecapEngine = keyof typeof DECAP_ENGINES;
export const CONFIG_FLAGS = { steerDirect: 1 << 0, fastPath: 1 << 1, checkSourceMac: 1 << 2 } as const;

export interface NodeConfig {
  publicIp: number;
  vni: number;
  port: number;
  backend: BackendType;
  decap: DecapEngine;
  flags: number;
  uplinkIfindex: number;
  devIfindex: number;
  subnet: { addr: number; prefix: number };
  network: { addr: number; prefix: number };
  mtu: number;
  vtepMac: string;
  devMac: string;
  uplinkMac: string;
  cniIfindex: number;
}

function nameOf<T extends Record<string, number>>(table: T, code: number, what: string): keyof T {
  const hit = Object.entries(table).find(([, v]) => v === code);
  if (!hit) throw new RangeError(`fbpf_config: unknown ${what} ${code}`);
  return hit[0] as keyof T;
}

function macBytes(s: string): Buffer {
  return s === '00:00:00:00:00:00' ? Buffer.alloc(6) : parseMac(s);
}

export const configCodec: Codec<number, NodeConfig> = {
  mapName: 'fbpf_config',
  keySize: 4,
  valueSize: 64,
  perCpu: false,
  encodeKey(k, buf, off) { buf.writeUInt32LE(k, off); },
  decodeKey(buf, off) { return buf.readUInt32LE(off); },
  encodeValue(c, buf, off) {
    buf.fill(0, off, off + 64);
    buf.writeUInt32LE(ABI_VERSION, off + 0);
    writeIPv4(buf, off + 4, c.publicIp);
    buf.writeUInt32LE(c.vni, off + 8);
    buf.writeUInt16LE(c.port, off + 12);
    buf.writeUInt8(BACKENDS[c.backend], off + 14);
    buf.writeUInt8(DECAP_ENGINES[c.decap], off + 15);
    buf.writeUInt32LE(c.flags, off + 16);
    buf.writeUInt32LE(c.uplinkIfindex, off + 20);
    buf.writeUInt32LE(c.devIfindex, off + 24);
    writeIPv4(buf, off + 28, c.subnet.addr);
    writeIPv4(buf, off + 32, c.network.addr);
    buf.writeUInt8(c.subnet.prefix, off + 36);
    buf.writeUInt8(c.network.prefix, off + 37);
    buf.writeUInt16LE(c.mtu, off + 38);
    macBytes(c.vtepMac).copy(buf, off + 40);
    macBytes(c.devMac).copy(buf, off + 46);
    macBytes(c.uplinkMac).copy(buf, off + 52);
    buf.writeUInt32LE(c.cniIfindex, off + 60);
  },
  decodeValue(buf, off) {
    const abi = buf.readUInt32LE(off);
    if (abi !== ABI_VERSION) throw new RangeError(`fbpf_config: ABI version ${abi}, this agent speaks ${ABI_VERSION}`);
    return {
      publicIp: readIPv4(buf, off + 4),
      vni: buf.readUInt32LE(off + 8),
      port: buf.readUInt16LE(off + 12),
      backend: nameOf(BACKENDS, buf.readUInt8(off + 14), 'backend'),
      decap: nameOf(DECAP_ENGINES, buf.readUInt8(off + 15), 'decap engine'),
      flags: buf.readUInt32LE(off + 16),
      uplinkIfindex: buf.readUInt32LE(off + 20),
      devIfindex: buf.readUInt32LE(off + 24),
      subnet: { addr: readIPv4(buf, off + 28), prefix: buf.readUInt8(off + 36) },
      network: { addr: readIPv4(buf, off + 32), prefix: buf.readUInt8(off + 37) },
      mtu: buf.readUInt16LE(off + 38),
      vtepMac: formatMac(buf.subarray(off + 40, off + 46)),
      devMac: formatMac(buf.subarray(off + 46, off + 52)),
      uplinkMac: formatMac(buf.subarray(off + 52, off + 58)),
      cniIfindex: buf.readUInt32LE(off + 60),
    };
  },
};
