/**
 * Next hops kept fresh for the programs (DESIGN.md §2, "Things that bite").
 *
 * The programs take a next hop's MAC from bpf_fib_lookup. That reads the
 * kernel's neighbour entry but, unlike the kernel's own output path, never
 * marks it used, so nothing drives the entry through DELAY/PROBE: when the
 * next hop's MAC changes without a gratuitous ARP (a router replaced, a peer's
 * NIC or VM replaced), traffic that only the programs send keeps going to the
 * old MAC. The kernel's answer to exactly this (Linux 5.16, NTF_MANAGED,
 * written for BPF dataplanes) is a "managed" neighbour entry: the kernel
 * re-probes it by itself, keeps it resolved and follows a MAC change within
 * seconds, with or without traffic.
 *
 * The agent makes the uplink neighbour of every peer's next hop (the peer
 * itself when on-link, else the gateway of the route to it) a managed entry,
 * tagged with our neighbour protocol (NEIGH_PROTO) so that it knows its own;
 * entries no peer needs any more are deleted. `flannel-bpf reset` deletes
 * them all. Gateways come first; on-link peers fill up to a cap of half the
 * namespace's neighbour table limit (gc_thresh3), so that managed entries never
 * crowd out the kernel's own.
 */
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { formatIPv4, isIPv4, parseIPv4, prefixMask } from '../maps/addr.js';

/** Neighbour protocol (NDA_PROTOCOL) of the entries the agent manages; 0xfb, for flannel-bpf. */
export const NEIGH_PROTO = 251;

/** A row of `ip -j route show dev <uplink>`. */
export interface RouteRow { dst?: string; gateway?: string; metric?: number; type?: string; nexthops?: unknown }
/** A row of `ip -j -d neigh show dev <uplink>` (`managed` is present, as null, on managed entries). */
export interface UplinkNeighRow { dst?: string; managed?: unknown; protocol?: string | number; state?: string[]; extern_learn?: unknown }

export interface NextHops {
  /** Gateways of routed peers, then on-link peers, each numerically sorted (the order the cap keeps). */
  ordered: string[];
  /** Peers with no route through the uplink (not reachable the way the programs send). */
  unrouted: number;
}

interface ParsedRoute { addr: number; prefix: number; gateway: string | null; metric: number }

function parseRoutes(routes: readonly RouteRow[]): ParsedRoute[] {
  const out: ParsedRoute[] = [];
  for (const r of routes) {
    if (!r.dst || (r.type && r.type !== 'unicast') || r.nexthops) continue;
    const [addr, plen] = r.dst === 'default' ? ['0.0.0.0', '0'] : r.dst.includes('/') ? r.dst.split('/') : [r.dst, '32'];
    if (!addr || !isIPv4(addr)) continue;
    if (r.gateway !== undefined && !isIPv4(r.gateway)) continue;
    const prefix = Number(plen);
    out.push({ addr: (parseIPv4(addr) & prefixMask(prefix)) >>> 0, prefix, gateway: r.gateway ?? null, metric: r.metric ?? 0 });
  }
  /* Longest prefix first; among equal prefixes the lowest metric wins, as in the kernel's FIB. */
  return out.sort((a, b) => b.prefix - a.prefix || a.metric - b.metric);
}

const numeric = (a: string, b: string): number => parseIPv4(a) - parseIPv4(b);

/**
 * Pure: the next hop on the uplink of each peer's public IP, by longest-prefix
 * match over the uplink's main-table routes. Policy routing is not modelled.
 */
export function nextHops(peerIps: Iterable<number>, routes: readonly RouteRow[]): NextHops {
  const table = parseRoutes(routes);
  const gateways = new Set<string>();
  const onLink = new Set<string>();
  let unrouted = 0;
  for (const ip of peerIps) {
    const hit = table.find((r) => ((ip & prefixMask(r.prefix)) >>> 0) === r.addr);
    if (!hit) { unrouted++; continue; }
    if (hit.gateway) gateways.add(hit.gateway);
    else onLink.add(formatIPv4(ip));
  }
  for (const g of gateways) onLink.delete(g);
  return { ordered: [...[...gateways].sort(numeric), ...[...onLink].sort(numeric)], unrouted };
}

export interface NeighbourPlan {
  /**
   * Make these managed entries of ours (`ip neigh replace … managed protocol 251`: keeps a known MAC).
   * Static (PERMANENT, NOARP) and externally learned entries of others are left as they are.
   */
  mark: string[];
  /** Delete these: ours, no longer a next hop (or beyond the cap). */
  drop: string[];
  /** Next hops left unmanaged because of the cap. */
  overLimit: number;
}

const isOurs = (r: UplinkNeighRow): boolean => String(r.protocol ?? '') === String(NEIGH_PROTO);
/** An entry someone else pinned (static ARP, another control plane): never turned into ours. */
const isForeignPinned = (r: UplinkNeighRow): boolean => !isOurs(r) && ((r.state ?? []).some((x) => x === 'PERMANENT' || x === 'NOARP') || 'extern_learn' in r);

/** Pure: what to change on the uplink so that exactly the first `limit` next hops are managed entries of ours. */
export function planNeighbours(have: readonly UplinkNeighRow[], ordered: readonly string[], limit: number): NeighbourPlan {
  const want = new Set(ordered.slice(0, Math.max(0, limit)));
  const rows = new Map(have.filter((r) => r.dst && isIPv4(r.dst)).map((r) => [r.dst!, r]));
  const mark = [...want].filter((ip) => {
    const r = rows.get(ip);
    return !r || (!isForeignPinned(r) && (!isOurs(r) || !('managed' in r)));
  });
  const drop = [...rows.values()].filter((r) => isOurs(r) && !want.has(r.dst!)).map((r) => r.dst!).sort(numeric);
  return { mark, drop, overLimit: Math.max(0, ordered.length - want.size) };
}

/** The `ip -batch` lines that carry out a plan on `dev`: deletions first, then the managed entries of ours. */
export function neighbourBatch(plan: NeighbourPlan, dev: string): string[] {
  return [
    ...plan.drop.map((a) => `neigh del ${a} dev ${dev}`),
    ...plan.mark.map((a) => `neigh replace ${a} dev ${dev} managed protocol ${NEIGH_PROTO}`),
  ];
}

/** Half the namespace's hard neighbour-table limit (net.ipv4.neigh.default.gc_thresh3). */
export function managedLimit(readFile: (p: string) => string = (p) => fs.readFileSync(p, 'utf8')): number {
  try {
    const v = Number(readFile('/proc/sys/net/ipv4/neigh/default/gc_thresh3').trim());
    if (Number.isInteger(v) && v > 0) return Math.floor(v / 2);
  } catch { /* no procfs: the kernel default */ }
  return 512;
}

/** `ip -force -batch -`: many neighbour changes in one process; resolves with stderr (one line per failed command). */
export function ipBatch(lines: readonly string[]): Promise<string> {
  if (lines.length === 0) return Promise.resolve('');
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['-force', '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => { err += d; });
    child.on('error', reject);
    child.on('close', () => resolve(err.trim()));
    child.stdin.end(`${lines.join('\n')}\n`);
  });
}

export interface NextHopStatus {
  /** Managed entries of ours on the uplink after the sync. */
  managed: number;
  /** Next hops left unmanaged because of the cap. */
  overLimit: number;
  /** Next hops the kernel refused to mark (e.g. a kernel without NTF_MANAGED), with its first message. */
  failed: number;
  error: string | null;
  /** Peers with no route through the uplink. */
  unrouted: number;
}

export interface NextHopIo {
  ip(args: string[]): Promise<string>;
  batch(lines: readonly string[]): Promise<string>;
  limit(): number;
}

/** Bring the uplink's managed neighbours in line with the peers' next hops. */
export async function syncNextHops(uplink: string, peerIps: Iterable<number>, io: NextHopIo): Promise<NextHopStatus & { marked: string[]; dropped: string[] }> {
  const hops = nextHops(peerIps, JSON.parse((await io.ip(['-j', 'route', 'show', 'dev', uplink])) || '[]') as RouteRow[]);
  const plan = planNeighbours(JSON.parse((await io.ip(['-j', '-d', 'neigh', 'show', 'dev', uplink])) || '[]') as UplinkNeighRow[], hops.ordered, io.limit());
  const lines = neighbourBatch(plan, uplink);
  const err = lines.length ? await io.batch(lines) : '';
  const after = (JSON.parse((await io.ip(['-j', '-d', 'neigh', 'show', 'dev', uplink])) || '[]') as UplinkNeighRow[]).filter((r) => isOurs(r) && 'managed' in r);
  const managed = new Set(after.map((r) => r.dst));
  const failed = plan.mark.filter((a) => !managed.has(a)).length;
  return {
    managed: managed.size, overLimit: plan.overLimit, failed, unrouted: hops.unrouted,
    error: failed ? (err.split('\n').find((l) => l.trim()) ?? 'the kernel kept no managed entry') : null,
    marked: plan.mark.filter((a) => managed.has(a)), dropped: plan.drop,
  };
}

/** `flannel-bpf reset`: delete every neighbour entry of ours on the uplink; returns the addresses. */
export function removeManagedNeighbours(uplink: string, ip: (args: string[]) => string): string[] {
  const ours = (JSON.parse(ip(['-j', '-d', 'neigh', 'show', 'dev', uplink]) || '[]') as UplinkNeighRow[]).filter((r) => r.dst && isOurs(r));
  for (const r of ours) {
    try { ip(['neigh', 'del', r.dst!, 'dev', uplink]); } catch { /* gone meanwhile */ }
  }
  return ours.map((r) => r.dst!);
}
