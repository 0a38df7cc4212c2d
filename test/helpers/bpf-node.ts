/**
 * Simulated nodes for dataplane interop tests (no agent yet): a node
 * namespace with an uplink, a pod namespace behind a veth, and either the
 * flannel-bpf dataplane (device + programs + maps, set up in-process) or a
 * stock flannel node (kernel devices and per-peer route/neigh/FDB exactly as
 * flanneld programs them).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { NetnsSet } from './netns.js';
import { inNetns, run } from './netns.js';
import { Dataplane, detachAll, type Engine } from '../../src/loader/dataplane.js';
import { ensureDevice, linkInfo, type IpRunner } from '../../src/control/device.js';
import { CONFIG_FLAGS, type BackendType } from '../../src/maps/config.js';
import type { PeerMode } from '../../src/maps/peers.js';
import { parseCidr, parseIPv4 } from '../../src/maps/addr.js';

export interface NodeDef {
  ns: string;
  pod: string;
  /** Underlay address of the node (its public IP). */
  ip: string;
  /** Pod subnet, e.g. 10.244.1.0/24; the pod gets .2, the node side .1. */
  subnet: string;
  vtepMac: string;
}

export const NETWORK = '10.244.0.0/16';

export function podIp(n: NodeDef): string {
  return n.subnet.replace(/\.0\/24$/, '.2');
}
function gwIp(n: NodeDef): string {
  return n.subnet.replace(/\.0\/24$/, '.1');
}
function netAddr(n: NodeDef): string {
  return n.subnet.replace(/\/24$/, '');
}

export function ipIn(set: NetnsSet, ns: string): IpRunner {
  return (args) => run('nsenter', [`--net=/run/netns/${ns}`, 'ip', ...args]);
}

/** Two node namespaces on one L2 underlay (eth0 ↔ eth0), each with one pod. */
export function twoNodes(set: NetnsSet, a: Omit<NodeDef, 'ns' | 'pod'>, b: Omit<NodeDef, 'ns' | 'pod'>, podMtu: number): [NodeDef, NodeDef] {
  const A: NodeDef = { ...a, ns: set.add('na'), pod: set.add('pa') };
  const B: NodeDef = { ...b, ns: set.add('nb'), pod: set.add('pb') };
  set.veth(A.ns, 'eth0', B.ns, 'eth0');
  for (const n of [A, B]) {
    set.exec(n.ns, `sysctl -qw net.ipv4.ip_forward=1
      ip addr add ${n.ip}/24 dev eth0; ip link set eth0 up`);
    set.veth(n.ns, 'vpod', n.pod, 'eth0');
    set.exec(n.ns, `ip addr add ${gwIp(n)}/24 dev vpod; ip link set vpod mtu ${podMtu} up`);
    set.exec(n.pod, `ip addr add ${podIp(n)}/24 dev eth0; ip link set eth0 mtu ${podMtu} up; ip route add default via ${gwIp(n)}`);
  }
  return [A, B];
}

/** Program a node the way stock flanneld's vxlan backend does, with `peer` as its only remote. */
export function stockVxlanNode(set: NetnsSet, n: NodeDef, peer: NodeDef, directRouting = false): void {
  set.exec(n.ns, `ip link add flannel.1 type vxlan id 1 local ${n.ip} dev eth0 dstport 8472 nolearning
    ip link set flannel.1 address ${n.vtepMac} mtu 1450 up
    ip addr add ${netAddr(n)}/32 dev flannel.1`);
  if (directRouting) {
    set.exec(n.ns, `ip route replace ${peer.subnet} via ${peer.ip}`);
  } else {
    set.exec(n.ns, `ip neigh replace ${netAddr(peer)} lladdr ${peer.vtepMac} dev flannel.1 nud permanent
      bridge fdb replace ${peer.vtepMac} dev flannel.1 dst ${peer.ip} self permanent
      ip route replace ${peer.subnet} via ${netAddr(peer)} dev flannel.1 onlink`);
  }
}

/** Program a node the way stock flanneld's host-gw backend does. */
export function stockHostGwNode(set: NetnsSet, n: NodeDef, peer: NodeDef): void {
  set.exec(n.ns, `ip route replace ${peer.subnet} via ${peer.ip} dev eth0`);
}

export interface BpfNode {
  dp: Dataplane;
  devIfindex: number;
  uplinkIfindex: number;
  close(): void;
}

/**
 * Set up flannel-bpf on a node: device, pinned maps under a per-run pin
 * directory, node config, one peer, attach for the engine. close() detaches,
 * closes and removes the pins.
 */
export function bpfNode(set: NetnsSet, n: NodeDef, opts: {
  backend: BackendType; engine: Engine; peer: NodeDef; peerMode: PeerMode; pinRoot: string; rpFilterStrict?: boolean;
}): BpfNode {
  const ip = ipIn(set, n.ns);
  const mtu = opts.backend === 'vxlan' ? 1450 : opts.backend === 'udp' ? 1472 : 1500;
  const port = opts.backend === 'udp' ? 8285 : 8472;
  const dev = ensureDevice({
    kind: opts.backend === 'vxlan' ? 'vxlan' : 'veth', mac: n.vtepMac, mtu, port, vni: 1,
    subnet: parseCidr(n.subnet), network: parseCidr(NETWORK), uplink: 'eth0',
  }, ip);
  if (opts.rpFilterStrict) {
    /* The effective rp_filter is max(all, device): strict everywhere. */
    set.exec(n.ns, 'sysctl -qw net.ipv4.conf.all.rp_filter=1');
  }
  const uplink = linkInfo('eth0', ip);
  const pinDir = path.join(opts.pinRoot, n.ns);
  const dp = Dataplane.load({ pinDir });
  dp.maps.config.set(0, {
    publicIp: parseIPv4(n.ip), vni: 1, port, backend: opts.backend, decap: opts.engine,
    flags: opts.peerMode === 'direct' || opts.peerMode === 'host-gw' ? CONFIG_FLAGS.steerDirect : 0,
    uplinkIfindex: uplink.ifindex, devIfindex: dev.ifindex, subnet: parseCidr(n.subnet), network: parseCidr(NETWORK),
    mtu, vtepMac: n.vtepMac, devMac: dev.mac, uplinkMac: uplink.mac, cniIfindex: 0,
  });
  dp.maps.peers.set(parseCidr(opts.peer.subnet), {
    mode: opts.peerMode, vtepMac: opts.peerMode === 'host-gw' ? '00:00:00:00:00:00' : opts.peer.vtepMac,
    peerId: 1, publicIp: parseIPv4(opts.peer.ip),
  });
  if (opts.peerMode !== 'host-gw') dp.maps.sources.set(parseIPv4(opts.peer.ip), { peerId: 1 });
  const plan = { uplinkIfindex: uplink.ifindex, devIfindex: dev.ifindex, engine: opts.engine, backend: opts.backend };
  inNetns(n.ns, () => dp.attach(plan));
  return {
    dp, devIfindex: dev.ifindex, uplinkIfindex: uplink.ifindex,
    close() {
      try { inNetns(n.ns, () => detachAll(plan)); } catch { /* namespace already gone */ }
      dp.close();
      fs.rmSync(pinDir, { recursive: true, force: true });
    },
  };
}
