/**
 * Fixture facts for the `flannel-bpf status` unit tests: a vxlan node (n1,
 * kernel decap) with two peers, as status.ts would gather them.
 */
import { parseCidr, parseIPv4 } from '../../src/maps/addr.js';
import { DROP_REASONS, type DropReason } from '../../src/maps/reasons.js';
import type { DropStats } from '../../src/maps/drops.js';
import type { AgentStateFile } from '../../src/control/state.js';
import type { StatusFacts } from '../../src/cli/status-format.js';
import { hooksFor } from '../../src/loader/dataplane.js';

/** Whether this version's vxlan/kernel node uses a dev ingress program (older versions did). */
const DEV_INGRESS = hooksFor({ engine: 'kernel', backend: 'vxlan' }).includes('dev-tc-ingress');

export const NOW = new Date('2026-11-26T10:00:00.000Z');

export function zeroDrops(): Record<DropReason, DropStats> {
  return Object.fromEntries(DROP_REASONS.map((r) => [r, { packets: 0n, bytes: 0n }])) as Record<DropReason, DropStats>;
}

export function stateFile(over: Partial<AgentStateFile> = {}): AgentStateFile {
  return {
    version: 1, pid: 4242, startedAt: '2026-11-26T09:56:48.000Z', updatedAt: '2026-11-26T09:57:00.000Z', nodeName: 'n1',
    store: { kind: 'etcd', state: 'connected', since: '2026-11-26T09:56:48.500Z' },
    lease: { key: '10.244.1.0-24', subnet: '10.244.1.0/24', publicIp: '192.168.10.11' },
    network: '10.244.0.0/16',
    backend: { type: 'vxlan', vni: 1, port: 8472, directRouting: false, mtu: 1450 },
    vtepMac: '0e:fb:00:00:00:01',
    uplink: { name: 'eth0', ifindex: 2, mtu: 1500, mac: '02:00:00:00:10:11', driver: 'veth', reason: '--iface eth0' },
    device: { name: 'flannel-bpf', ifindex: 3, mtu: 1450 },
    engine: { requested: 'auto', resolved: 'kernel', xdpMode: null },
    pinDir: '/sys/fs/bpf/flannel-bpf', subnetFile: '/run/flannel/subnet.env', lastSync: '2026-11-26T09:57:10.000Z', maxPeers: 65536,
    peers: [
      { leaseKey: '10.244.2.0-24', subnet: '10.244.2.0/24', publicIp: '192.168.10.12', mode: 'vxlan', peerId: 1, vtepMac: '0e:fb:00:00:00:02' },
      { leaseKey: '10.244.3.0-24', subnet: '10.244.3.0/24', publicIp: '192.168.20.13', mode: 'vxlan', peerId: 2, vtepMac: '0e:fb:00:00:00:03' },
    ],
    rejected: [], unreachable: [], warnings: [],
    ...over,
  };
}

export function facts(over: Partial<StatusFacts> = {}): StatusFacts {
  return {
    now: NOW, pinDir: '/sys/fs/bpf/flannel-bpf', stateDir: '/run/flannel-bpf',
    config: {
      publicIp: parseIPv4('192.168.10.11'), vni: 1, port: 8472, backend: 'vxlan', decap: 'kernel', flags: 0, uplinkIfindex: 2, devIfindex: 3,
      subnet: parseCidr('10.244.1.0/24'), network: parseCidr('10.244.0.0/16'), mtu: 1450, vtepMac: '0e:fb:00:00:00:01',
      devMac: '0e:fb:00:00:00:01', uplinkMac: '02:00:00:00:10:11', cniIfindex: 0,
    },
    state: stateFile(),
    agentRunning: true,
    hooks: [
      { hook: 'uplink-xdp', ifindex: 2, progId: null, mode: null, ours: false },
      { hook: 'uplink-tc-ingress', ifindex: 2, progId: 101, ours: true },
      { hook: 'uplink-tc-egress', ifindex: 2, progId: null, ours: false },
      { hook: 'dev-tc-egress', ifindex: 3, progId: 102, ours: true },
      { hook: 'dev-tc-ingress', ifindex: 3, progId: DEV_INGRESS ? 103 : null, ours: DEV_INGRESS },
    ],
    programNames: new Map([[101, 'fbpf_uplink_ingress'], [102, 'fbpf_dev_egress'], [103, 'fbpf_dev_ingress']]),
    links: [
      { ifindex: 1, name: 'lo', mtu: 65536, mac: '00:00:00:00:00:00' },
      { ifindex: 2, name: 'eth0', mtu: 1500, mac: '02:00:00:00:10:11' },
      { ifindex: 3, name: 'flannel-bpf', mtu: 1450, mac: '0e:fb:00:00:00:01' },
      { ifindex: 4, name: 'cni0', mtu: 1450, mac: '0a:00:00:00:00:04' },
    ],
    peers: [
      { subnet: parseCidr('10.244.2.0/24'), value: { mode: 'vxlan', vtepMac: '0e:fb:00:00:00:02', peerId: 1, publicIp: parseIPv4('192.168.10.12') } },
      { subnet: parseCidr('10.244.3.0/24'), value: { mode: 'vxlan', vtepMac: '0e:fb:00:00:00:03', peerId: 2, publicIp: parseIPv4('192.168.20.13') } },
    ],
    sources: 2,
    capacity: { fbpf_peers: 65536, fbpf_sources: 65536, fbpf_peer_stats: 65536 },
    counters: new Map([
      [1, { txPackets: 7n, txBytes: 588n, rxPackets: 7n, rxBytes: 588n }],
      [2, { txPackets: 1000n, txBytes: 1_480_000n, rxPackets: 900n, rxBytes: 1_300_000n }],
    ]),
    drops: zeroDrops(),
    rpFilter: { all: 0, uplink: 2 },
    subnetEnvMtu: 1450,
    subnetEnvExists: true,
    agentSameNetns: true,
    ...over,
  };
}
