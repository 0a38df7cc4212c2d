/**
 * Map codecs (src/maps/): byte layouts match bpf/include/fbpf_shared.h,
 * round trips, per-CPU summing, and strict address parsing. No root needed.
 */
import test from 'ava';
import { peersCodec } from '../../src/maps/peers.js';
import { sourcesCodec } from '../../src/maps/sources.js';
import { configCodec, type NodeConfig } from '../../src/maps/config.js';
import { peerStatsCodec } from '../../src/maps/peer-stats.js';
import { dropsCodec } from '../../src/maps/drops.js';
import { DROP_REASONS, DROP_REASON_HELP } from '../../src/maps/reasons.js';
import {
  parseIPv4, formatIPv4, parseCidr, formatCidr, parseMac, formatMac, cidrContains, cidrOverlaps, cidrCovers, AddressError,
} from '../../src/maps/addr.js';
import fs from 'node:fs';

test('peers codec: LPM key = {prefixlen LE u32, addr network order}; value layout of struct fbpf_peer', (t) => {
  const k = Buffer.alloc(8);
  peersCodec.encodeKey(parseCidr('10.244.2.0/24'), k, 0);
  t.deepEqual([...k], [24, 0, 0, 0, 10, 244, 2, 0]);
  const v = Buffer.alloc(16);
  peersCodec.encodeValue({ mode: 'vxlan', vtepMac: '0e:2a:01:02:03:04', peerId: 0x0102, publicIp: parseIPv4('192.168.1.9') }, v, 0);
  t.deepEqual([...v], [1, 0, 0x0e, 0x2a, 1, 2, 3, 4, 2, 1, 0, 0, 192, 168, 1, 9]);
  t.deepEqual(peersCodec.decodeValue(v, 0), { mode: 'vxlan', vtepMac: '0e:2a:01:02:03:04', peerId: 0x0102, publicIp: parseIPv4('192.168.1.9') });
  for (const [mode, code] of [['direct', 2], ['host-gw', 3], ['udp', 4]] as const) {
    peersCodec.encodeValue({ mode, vtepMac: '00:00:00:00:00:00', peerId: 1, publicIp: 1 }, v, 0);
    t.is(v[0], code);
    t.is(peersCodec.decodeValue(v, 0).mode, mode);
  }
  v[0] = 99;
  t.throws(() => peersCodec.decodeValue(v, 0), { message: /unknown mode 99/ });
});

test('sources codec: key = IPv4 in network order, value = {peer_id, flags}', (t) => {
  const k = Buffer.alloc(4);
  sourcesCodec.encodeKey(parseIPv4('10.1.2.3'), k, 0);
  t.deepEqual([...k], [10, 1, 2, 3]);
  const v = Buffer.alloc(8);
  sourcesCodec.encodeValue({ peerId: 513 }, v, 0);
  t.deepEqual([...v], [1, 2, 0, 0, 0, 0, 0, 0]);
});

test('config codec: every field at its offset in struct fbpf_node_config (64 bytes), round trip', (t) => {
  const c: NodeConfig = {
    publicIp: parseIPv4('192.168.1.1'), vni: 1, port: 8472, backend: 'vxlan', decap: 'xdp', flags: 3,
    uplinkIfindex: 2, devIfindex: 7, subnet: parseCidr('10.244.1.0/24'), network: parseCidr('10.244.0.0/16'), mtu: 1450,
    vtepMac: '0e:00:00:00:00:01', devMac: '0e:00:00:00:00:01', uplinkMac: '02:00:00:00:00:09', cniIfindex: 11,
  };
  const b = Buffer.alloc(64);
  configCodec.encodeValue(c, b, 0);
  t.is(b.readUInt32LE(0), 1, 'abi_version');
  t.deepEqual([...b.subarray(4, 8)], [192, 168, 1, 1], 'public_ip_be');
  t.is(b.readUInt16LE(12), 8472);
  t.is(b[14], 1, 'backend vxlan');
  t.is(b[15], 2, 'decap xdp');
  t.is(b.readUInt32LE(24), 7, 'dev_ifindex');
  t.deepEqual([...b.subarray(28, 32)], [10, 244, 1, 0]);
  t.is(b[36], 24);
  t.is(b[37], 16);
  t.is(b.readUInt16LE(38), 1450);
  t.is(formatMac(b.subarray(52, 58)), '02:00:00:00:00:09');
  t.is(b.readUInt32LE(60), 11);
  t.deepEqual(configCodec.decodeValue(b, 0), c);
  b.writeUInt32LE(0, 0);
  t.throws(() => configCodec.decodeValue(b, 0), { message: /ABI version 0/ });
});

test('per-CPU codecs add CPUs together', (t) => {
  const a = { txPackets: 1n, txBytes: 2n, rxPackets: 3n, rxBytes: 4n };
  t.deepEqual(peerStatsCodec.add!(a, a), { txPackets: 2n, txBytes: 4n, rxPackets: 6n, rxBytes: 8n });
  t.deepEqual(dropsCodec.add!({ packets: 1n, bytes: 60n }, { packets: 2n, bytes: 40n }), { packets: 3n, bytes: 100n });
  t.true(peerStatsCodec.perCpu && dropsCodec.perCpu);
});

test('drop reasons: same names and order as enum fbpf_drop_reason in the shared header', (t) => {
  const header = fs.readFileSync(new URL('../../bpf/include/fbpf_shared.h', import.meta.url), 'utf8');
  const fromC = [...header.matchAll(/FBPF_DROP_([A-Z0-9_]+) = (\d+),/g)]
    .filter((m) => m[1] !== 'REASONS').map((m) => [m[1]!.toLowerCase(), Number(m[2])] as const);
  t.deepEqual(fromC.map(([n]) => n), [...DROP_REASONS]);
  fromC.forEach(([, v], i) => t.is(v, i));
  t.is(Number(/FBPF_DROP_REASONS = (\d+)/.exec(header)?.[1]), DROP_REASONS.length);
  for (const r of DROP_REASONS) t.truthy(DROP_REASON_HELP[r]);
});

test('struct sizes in the shared header match the codecs', (t) => {
  const header = fs.readFileSync(new URL('../../bpf/include/fbpf_shared.h', import.meta.url), 'utf8');
  const size = (name: string) => Number(new RegExp(`sizeof\\(struct ${name}\\) == (\\d+)`).exec(header)?.[1]);
  t.is(size('fbpf_lpm_key'), peersCodec.keySize);
  t.is(size('fbpf_peer'), peersCodec.valueSize);
  t.is(size('fbpf_tunnel_source'), sourcesCodec.valueSize);
  t.is(size('fbpf_node_config'), configCodec.valueSize);
  t.is(size('fbpf_peer_stats'), peerStatsCodec.valueSize);
  t.is(size('fbpf_drop_stats'), dropsCodec.valueSize);
});

test('IPv4 parsing is strict', (t) => {
  t.is(parseIPv4('10.244.1.2'), 0x0af40102);
  t.is(formatIPv4(0xc0a80001), '192.168.0.1');
  for (const bad of ['10.244.1', '10.244.1.256', '10.244.01.2', ' 10.0.0.1', '1.2.3.4.5', '', 'a.b.c.d', 12]) {
    t.throws(() => parseIPv4(bad), { instanceOf: AddressError }, String(bad));
  }
});

test('CIDR parsing, containment and overlap', (t) => {
  t.is(formatCidr(parseCidr('10.244.0.0/16')), '10.244.0.0/16');
  t.throws(() => parseCidr('10.244.1.1/16'), { message: /host bits set \(network is 10\.244\.0\.0\/16\)/ });
  t.is(formatCidr(parseCidr('10.244.1.1/16', false)), '10.244.0.0/16');
  for (const bad of ['10.0.0.0', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/ 8']) t.throws(() => parseCidr(bad), { instanceOf: AddressError });
  const net = parseCidr('10.244.0.0/16');
  t.true(cidrContains(net, parseIPv4('10.244.200.1')));
  t.false(cidrContains(net, parseIPv4('10.245.0.1')));
  t.true(cidrCovers(net, parseCidr('10.244.3.0/24')));
  t.false(cidrCovers(parseCidr('10.244.3.0/24'), net));
  t.true(cidrOverlaps(parseCidr('10.244.3.0/24'), net));
  t.false(cidrOverlaps(parseCidr('10.244.3.0/24'), parseCidr('10.244.4.0/24')));
  t.true(cidrCovers(parseCidr('0.0.0.0/0'), net));
});

test('MAC parsing rejects malformed, multicast and zero MACs', (t) => {
  t.is(formatMac(parseMac('0E:2A:aa:BB:01:02')), '0e:2a:aa:bb:01:02');
  for (const bad of ['0e:2a:aa:bb:01', '0e-2a-aa-bb-01-02', '01:00:5e:00:00:01', '00:00:00:00:00:00', 'zz:2a:aa:bb:01:02', null]) {
    t.throws(() => parseMac(bad), { instanceOf: AddressError }, String(bad));
  }
});
