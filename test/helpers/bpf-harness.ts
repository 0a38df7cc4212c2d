/**
 * A node's dataplane loaded for BPF_PROG_TEST_RUN, inside this process's
 * private network namespace. The namespace holds a small underlay so that
 * the programs' FIB lookups have something real to find:
 *
 *   fbu0 192.168.50.1/24 (the uplink)   neighbour 192.168.50.2 resolved (PEER_MAC)
 *                                       192.168.50.3 on-link, unresolved
 *   10.9.0.0/16 via 192.168.50.2        (a routed peer network)
 *   fbd0 (stands in for the flannel-bpf device); forwarding on, as on a node (bpf_fib_lookup wants it)
 *   fbc0 bridge 10.244.1.1/24 (stands in for cni0)  neighbour 10.244.1.5 resolved (POD_MAC), 10.244.1.6 not
 */
import { Dataplane, type ProgramKey } from '../../src/loader/dataplane.js';
import { testRun, type TestRunResult } from '../../src/loader/testrun.js';
import type { NodeMaps } from '../../src/maps/index.js';
import type { NodeConfig, BackendType, DecapEngine } from '../../src/maps/config.js';
import { CONFIG_FLAGS } from '../../src/maps/config.js';
import type { PeerMode } from '../../src/maps/peers.js';
import { parseIPv4, parseCidr, formatMac } from '../../src/maps/addr.js';
import { DROP_REASONS, type DropReason } from '../../src/maps/reasons.js';
import { privateNetns } from './netns.js';

export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;
export const XDP_DROP = 1;
export const XDP_PASS = 2;

export const NODE = {
  publicIp: '192.168.50.1',
  uplinkMac: '02:fb:00:00:50:01',
  vtepMac: '0e:fb:00:00:00:01',
  subnet: '10.244.1.0/24',
  network: '10.244.0.0/16',
};
/** An adjacent peer whose MAC is resolved. */
export const PEER = { publicIp: '192.168.50.2', mac: '02:fb:00:00:50:02', vtepMac: '0e:fb:00:00:00:02', subnet: '10.244.2.0/24', id: 7 };
/** An adjacent peer whose MAC is not resolved yet. */
export const PEER_UNRESOLVED = { publicIp: '192.168.50.3', vtepMac: '0e:fb:00:00:00:03', subnet: '10.244.3.0/24', id: 8 };
/** A peer behind the router 192.168.50.2. */
export const PEER_ROUTED = { publicIp: '10.9.0.5', vtepMac: '0e:fb:00:00:00:05', subnet: '10.244.5.0/24', id: 9 };

export const CNI_MAC = '02:fb:00:00:c0:01';
export const POD_MAC = '02:fb:00:00:c0:05';

let topo: { uplinkIfindex: number; devIfindex: number; devMac: string; cniIfindex: number } | undefined;

/** Build the private namespace's underlay once per process. */
export function testTopology(): { uplinkIfindex: number; devIfindex: number; devMac: string; cniIfindex: number } {
  if (topo) return topo;
  const { sh } = privateNetns();
  sh(`sysctl -qw net.ipv4.ip_forward=1
      ip link add fbu0 address ${NODE.uplinkMac} type veth peer name fbu1
      ip link add fbd0 type veth peer name fbd1
      ip addr add ${NODE.publicIp}/24 dev fbu0
      ip link set fbu0 up; ip link set fbu1 up; ip link set fbd0 up; ip link set fbd1 up
      ip neigh replace ${PEER.publicIp} lladdr ${PEER.mac} dev fbu0 nud permanent
      ip route add 10.9.0.0/16 via ${PEER.publicIp} dev fbu0
      ip link add fbc0 address ${CNI_MAC} type bridge; ip addr add 10.244.1.1/24 dev fbc0; ip link set fbc0 up
      ip neigh replace 10.244.1.5 lladdr ${POD_MAC} dev fbc0 nud permanent`);
  const idx = (dev: string) => Number(/^(\d+):/.exec(sh(`ip -o link show dev ${dev}`))?.[1]);
  const devMac = sh("ip -o link show dev fbd0 | sed -n 's/.*link\\/ether \\([0-9a-f:]*\\).*/\\1/p'").trim();
  topo = { uplinkIfindex: idx('fbu0'), devIfindex: idx('fbd0'), devMac, cniIfindex: idx('fbc0') };
  return topo;
}

export interface HarnessOptions {
  backend?: BackendType;
  decap?: DecapEngine;
  steer?: boolean;
  /** Turn the conntrack-gated fast path on (and point it at the fbc0 "cni0"). */
  fastPath?: boolean;
  /** --check-source-mac: tunnel packets must come from the next hop's MAC. */
  checkSourceMac?: boolean;
  vni?: number;
  port?: number;
  /** Leave the config map empty (agent not configured yet). */
  unconfigured?: boolean;
  /** Act as another node (for round trips): its public IP and VtepMAC. */
  identity?: { publicIp: string; vtepMac: string };
}

export class Harness {
  readonly dp: Dataplane;
  readonly maps: NodeMaps;
  readonly config: NodeConfig;

  constructor(opts: HarnessOptions = {}) {
    const t = testTopology();
    this.dp = Dataplane.load();
    this.maps = this.dp.maps;
    const backend = opts.backend ?? 'vxlan';
    this.config = {
      publicIp: parseIPv4(opts.identity?.publicIp ?? NODE.publicIp),
      vni: opts.vni ?? 1,
      port: opts.port ?? (backend === 'udp' ? 8285 : 8472),
      backend,
      decap: opts.decap ?? (backend === 'udp' ? 'tc' : 'kernel'),
      flags: (opts.steer ? CONFIG_FLAGS.steerDirect : 0) | (opts.fastPath ? CONFIG_FLAGS.fastPath : 0) | (opts.checkSourceMac ? CONFIG_FLAGS.checkSourceMac : 0),
      uplinkIfindex: t.uplinkIfindex,
      devIfindex: t.devIfindex,
      subnet: parseCidr(NODE.subnet),
      network: parseCidr(NODE.network),
      mtu: backend === 'vxlan' ? 1450 : backend === 'udp' ? 1472 : 1500,
      vtepMac: opts.identity?.vtepMac ?? NODE.vtepMac,
      devMac: backend === 'vxlan' ? (opts.identity?.vtepMac ?? NODE.vtepMac) : t.devMac,
      uplinkMac: NODE.uplinkMac,
      cniIfindex: opts.fastPath ? t.cniIfindex : 0,
    };
    if (!opts.unconfigured) this.maps.config.set(0, this.config);
  }

  /** Program a peer subnet (and its tunnel source for tunnel modes). */
  peer(p: { subnet: string; publicIp: string; vtepMac?: string; id: number }, mode: PeerMode): this {
    this.maps.peers.set(parseCidr(p.subnet), {
      mode, vtepMac: p.vtepMac ?? '00:00:00:00:00:00', peerId: p.id, publicIp: parseIPv4(p.publicIp),
    });
    if (mode !== 'host-gw') this.maps.sources.set(parseIPv4(p.publicIp), { peerId: p.id });
    return this;
  }

  run(prog: ProgramKey, packet: Buffer, opts: { ctx?: Buffer; repeat?: number } = {}): TestRunResult {
    return testRun(this.dp.program(prog).fd, packet, { ctx: opts.ctx, repeat: opts.repeat });
  }

  drops(): Record<DropReason, number> {
    const all = this.maps.readDrops();
    return Object.fromEntries(DROP_REASONS.map((r) => [r, Number(all[r].packets)])) as Record<DropReason, number>;
  }

  dropBytes(reason: DropReason): number {
    return Number(this.maps.readDrops()[reason].bytes);
  }

  /** Reasons with a non-zero count. */
  nonZeroDrops(): Partial<Record<DropReason, number>> {
    return Object.fromEntries(Object.entries(this.drops()).filter(([, n]) => n > 0));
  }

  fast(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.maps.readFastStats()).map(([k, v]) => [k, Number(v.packets)]));
  }

  stats(id: number): { txPackets: number; txBytes: number; rxPackets: number; rxBytes: number } {
    const s = this.maps.peerStats.get(id);
    return {
      txPackets: Number(s?.txPackets ?? 0n), txBytes: Number(s?.txBytes ?? 0n),
      rxPackets: Number(s?.rxPackets ?? 0n), rxBytes: Number(s?.rxBytes ?? 0n),
    };
  }

  close(): void {
    this.dp.close();
  }
}

/** A struct __sk_buff for ctx_in: only the fields the kernel lets tests set. */
export function skbCtx(o: { gsoSegs?: number; gsoSize?: number; ifindex?: number }): Buffer {
  const ctx = Buffer.alloc(192); /* sizeof(struct __sk_buff) on 6.x */
  if (o.ifindex) ctx.writeUInt32LE(o.ifindex, 40);
  if (o.gsoSegs) ctx.writeUInt32LE(o.gsoSegs, 164);
  if (o.gsoSize) ctx.writeUInt32LE(o.gsoSize, 176);
  return ctx;
}

export { formatMac };
