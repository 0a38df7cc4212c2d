/**
 * A lab node seen from outside the agent: what is attached at our hooks (tc
 * and ip, the operator's view: program id and tag per hook) and what its
 * pinned maps hold.
 */
import { nsExec } from '../../src/cli/lab/netns.js';
import { NodeMaps } from '../../src/maps/index.js';
import { formatCidr, formatIPv4 } from '../../src/maps/addr.js';

export interface HookProgram { id: number; tag: string; name: string }

function tcProgram(ns: string, dev: string, dir: 'ingress' | 'egress'): HookProgram | null {
  let rows: Array<{ options?: { handle?: string; prog?: { id: number; tag: string; name: string } } }>;
  try {
    rows = JSON.parse(nsExec(ns, `tc -j filter show dev ${dev} ${dir}`) || '[]') as typeof rows;
  } catch {
    return null;
  }
  const ours = rows.find((r) => r.options?.handle === '0xfb' && r.options.prog);
  return ours?.options?.prog ? { id: ours.options.prog.id, tag: ours.options.prog.tag, name: ours.options.prog.name } : null;
}

/** Programs at each hook of a node (null where nothing of ours is attached). */
export function hookPrograms(ns: string): Record<'uplinkIngress' | 'devEgress' | 'devIngress' | 'xdp', HookProgram | null> {
  const link = JSON.parse(nsExec(ns, 'ip -j -d link show dev eth0')) as Array<{ xdp?: { prog?: { id: number; tag: string; name: string } } }>;
  const xdp = link[0]?.xdp?.prog ?? null;
  return {
    uplinkIngress: tcProgram(ns, 'eth0', 'ingress'),
    devEgress: tcProgram(ns, 'flannel-bpf', 'egress'),
    devIngress: tcProgram(ns, 'flannel-bpf', 'ingress'),
    xdp: xdp ? { id: xdp.id, tag: xdp.tag, name: xdp.name } : null,
  };
}

/** Peer subnets and tunnel sources in a node's pinned maps (works while its agent is down), and the peers map's id/size. */
export function mapState(pinDir: string): { subnets: string[]; sources: string[]; peersMapId: number; maxPeers: number } {
  const maps = NodeMaps.fromPinDir(pinDir);
  try {
    const raw = maps.map('fbpf_peers');
    return {
      subnets: maps.peers.entries().map(([k]) => formatCidr(k)).sort(),
      sources: maps.sources.entries().map(([ip]) => formatIPv4(ip)).sort(),
      peersMapId: raw.info.id, maxPeers: raw.maxEntries,
    };
  } finally {
    maps.close();
  }
}
