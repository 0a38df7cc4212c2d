/**
 * Local endpoints for the fast path's bpf_redirect_peer delivery: for each pod
 * behind cni0, its IPv4 address, the host side of its veth (a cni0 port) and
 * its MAC — joined from cni0's neighbour table (IP → MAC) and the bridge's
 * FDB (MAC → port). The programs only use an entry whose MAC matches the
 * kernel's neighbour entry at the time, so a stale entry is never harmful.
 */
import { execFile } from 'node:child_process';
import { parseIPv4, isIPv4, cidrContains, formatIPv4, type Cidr } from '../maps/addr.js';
import type { Endpoint } from '../maps/endpoints.js';
import type { TypedMap } from '../maps/codec.js';
import { planNeighbours, neighbourBatch, type UplinkNeighRow } from './nexthops.js';

/** The bridge flannel's CNI configuration makes (the bridge plugin's default name). */
export const CNI_BRIDGE = 'cni0';

/** A row of `ip -j -d neigh show dev cni0`. */
export interface NeighRow extends UplinkNeighRow { lladdr?: string }
export interface FdbRow { mac?: string; ifname?: string; flags?: string[] }
export interface PortRow { ifindex?: number; ifname?: string }

const USABLE = new Set(['REACHABLE', 'STALE', 'DELAY', 'PROBE', 'PERMANENT', 'NOARP']);

/**
 * Pure: the endpoints map contents from the three tables.
 *
 * `previous` (the map as it is) keeps an endpoint the tables have forgotten
 * while its port is still on the bridge (a pod's veth is deleted with the pod,
 * and a new pod gets a new veth), unless a usable neighbour entry now gives
 * the IP another MAC. Two tables forget idle pods:
 *  - cni0 ages its learned FDB entries out after 300 s of silence from the pod;
 *  - the neighbour GC deletes an entry 60 s after it went STALE whenever the
 *    machine holds more than gc_thresh1 (128) IPv4 neighbours — counted over
 *    every namespace, so any node with a few dozen pods.
 * Dropping the endpoint then sent the first packets to an idle pod the slow
 * way (out of cni0 through the bridge, where a decapsulated GSO packet is
 * segmented in software) until the next sync: 0.5–2 s at 6 instead of
 * 15 Gbit/s here. A kept endpoint is safe: the programs use it only while the
 * kernel's neighbour entry for the IP exists with the same MAC.
 */
export function desiredEndpoints(neigh: readonly NeighRow[], fdb: readonly FdbRow[], ports: readonly PortRow[], subnet: Cidr,
  previous?: ReadonlyMap<number, Endpoint>): Map<number, Endpoint> {
  const portIndex = new Map(ports.filter((p) => p.ifname && p.ifindex).map((p) => [p.ifname!, p.ifindex!]));
  const portSet = new Set(portIndex.values());
  const macPort = new Map<string, number>();
  for (const f of fdb) {
    if (!f.mac || !f.ifname || f.flags?.includes('self')) continue;
    const idx = portIndex.get(f.ifname);
    if (idx) macPort.set(f.mac.toLowerCase(), idx);
  }
  const out = new Map<number, Endpoint>();
  const neighMac = new Map<number, string>(); /* usable neighbour entries: IP → MAC */
  for (const n of neigh) {
    if (!n.dst || !n.lladdr || !isIPv4(n.dst)) continue;
    if (!(n.state ?? []).some((s) => USABLE.has(s))) continue;
    const ip = parseIPv4(n.dst);
    if (!cidrContains(subnet, ip)) continue;
    const mac = n.lladdr.toLowerCase();
    neighMac.set(ip, mac);
    const ifindex = macPort.get(mac);
    if (ifindex) out.set(ip, { ifindex, mac });
  }
  for (const [ip, kept] of previous ?? []) {
    if (out.has(ip) || !portSet.has(kept.ifindex) || !cidrContains(subnet, ip)) continue;
    const mac = neighMac.get(ip);
    if (mac === undefined || mac === kept.mac) out.set(ip, kept);
  }
  return out;
}

export const defaultAsyncBridgeRunner = (args: string[]): Promise<string> => new Promise((resolve, reject) => {
  execFile('bridge', args, { encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
    if (err) reject(new Error(`bridge ${args.join(' ')} failed: ${(stderr || err.message).trim()}`));
    else resolve(stdout);
  });
});

export interface EndpointIo {
  ip(args: string[]): Promise<string>;
  bridge(args: string[]): Promise<string>;
  /** `ip -force -batch -` (nexthops.ts ipBatch): resolves with stderr. */
  batch(lines: readonly string[]): Promise<string>;
  /** The cap on managed entries (nexthops.ts managedLimit). */
  limit(): number;
}

export interface EndpointSync {
  endpoints: Map<number, Endpoint>;
  /** Pod addresses whose neighbour entry was made a managed entry of ours, and ours deleted (pod gone). */
  marked: string[];
  dropped: string[];
  /** stderr of the batch, when the kernel refused a change. */
  error: string | null;
}

/**
 * Read cni0's tables (in the agent's namespace) without blocking the event
 * loop (the three listings run in parallel) and work out the endpoints. With
 * `managed`, every endpoint's neighbour entry is made a managed entry of ours
 * (NTF_MANAGED, protocol nexthops.ts NEIGH_PROTO), as the uplink's next hops are: the
 * kernel keeps it resolved and the neighbour GC never deletes it. The programs
 * need that entry (bpf_fib_lookup); without it the first packet of a flow to
 * an idle pod goes up the stack, conntrack starts tracking the flow, and the
 * whole flow stays on the compat path (through cni0's bridge: 6 instead of
 * 15 Gbit/s after a tc decap here). Entries of ours whose pod has gone are
 * deleted. An idle pod sees one unicast ARP probe about every 30 s.
 */
export async function syncPodEndpointsAsync(bridgeDev: string, subnet: Cidr, previous: ReadonlyMap<number, Endpoint>, io: EndpointIo,
  managed: boolean): Promise<EndpointSync> {
  const [neighJson, ports, fdb] = await Promise.all([
    io.ip(['-j', '-d', 'neigh', 'show', 'dev', bridgeDev]), io.ip(['-j', 'link', 'show', 'master', bridgeDev]), io.bridge(['-j', 'fdb', 'show', 'br', bridgeDev]),
  ]);
  const neigh = JSON.parse(neighJson || '[]') as NeighRow[];
  const endpoints = desiredEndpoints(neigh, JSON.parse(fdb || '[]') as FdbRow[], JSON.parse(ports || '[]') as PortRow[], subnet, previous);
  if (!managed) return { endpoints, marked: [], dropped: [], error: null };
  const plan = planNeighbours(neigh, [...endpoints.keys()].sort((a, b) => a - b).map(formatIPv4), io.limit());
  const lines = neighbourBatch(plan, bridgeDev);
  const err = lines.length ? await io.batch(lines) : '';
  return { endpoints, marked: plan.mark, dropped: plan.drop, error: err ? err.split('\n')[0]! : null };
}

/** Bring the map in line with `want`; returns the number of changes. */
export function syncEndpoints(map: TypedMap<number, Endpoint>, want: ReadonlyMap<number, Endpoint>): number {
  const have = new Map(map.entries());
  let changes = 0;
  for (const [ip, ep] of want) {
    const cur = have.get(ip);
    if (!cur || cur.ifindex !== ep.ifindex || cur.mac !== ep.mac) { map.set(ip, ep); changes++; }
  }
  for (const ip of have.keys()) {
    if (!want.has(ip)) { map.delete(ip); changes++; }
  }
  return changes;
}
