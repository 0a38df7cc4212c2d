/**
 * `flannel-bpf status`, the pure part: facts gathered on the node
 * (status.ts) → a StatusReport (the `--json` document, docs/status-schema.md,
 * docs/status.schema.json) → the screen people read.
 *
 * Nothing here does I/O, so every line of the screen and every warning is
 * unit-tested (test/unit/status-*.test.ts).
 */
import { formatCidr, formatIPv4, type Cidr } from '../maps/addr.js';
import { CONFIG_FLAGS, type NodeConfig } from '../maps/config.js';
import type { PeerValue } from '../maps/peers.js';
import type { PeerStats } from '../maps/peer-stats.js';
import type { DropStats } from '../maps/drops.js';
import { DROP_REASONS, DROP_REASON_HELP, type DropReason } from '../maps/reasons.js';
import type { AgentStateFile } from '../control/state.js';
import { hooksFor, type HookName, type HookState } from '../loader/dataplane.js';

export const STATUS_SCHEMA = 'flannel-bpf/status/v1';
/** Peers shown without --peers. */
export const TOP_PEERS = 10;
/** Fill level from which a map is reported as nearly full. */
export const FULL_WARN = 0.9;
/** Outer headers each backend adds (tunnel MTU = uplink MTU − this). */
export const ENCAP_OVERHEAD: Record<string, number> = { vxlan: 50, udp: 28, 'host-gw': 0 };

/* ------------------------------------------------------------------ facts */

export interface LinkFact {
  ifindex: number;
  name: string;
  mtu: number;
  mac: string;
}

/** Everything status.ts gathers; buildReport turns it into a report. */
export interface StatusFacts {
  now: Date;
  pinDir: string;
  stateDir: string;
  /** The pinned node config (fbpf_config). */
  config: NodeConfig;
  /** The agent's state file, if any. */
  state: AgentStateFile | null;
  agentRunning: boolean;
  /** What is attached at each hook now (hookStates over the config's ifindexes). */
  hooks: readonly HookState[];
  /** Program id → program name. */
  programNames: ReadonlyMap<number, string>;
  /** Interfaces of the network namespace the command runs in. */
  links: readonly LinkFact[];
  /** Entries of fbpf_peers. */
  peers: ReadonlyArray<{ subnet: Cidr; value: PeerValue }>;
  /** Entries of fbpf_sources. */
  sources: number;
  /** max_entries of the peer-sized maps. */
  capacity: { fbpf_peers: number; fbpf_sources: number; fbpf_peer_stats: number };
  /** Summed counters by peer id. */
  counters: ReadonlyMap<number, PeerStats>;
  drops: Readonly<Record<DropReason, DropStats>>;
  /** net.ipv4.conf.{all,<uplink>}.rp_filter in this namespace (null: unreadable). */
  rpFilter: { all: number | null; uplink: number | null };
  /** FLANNEL_MTU of subnet.env (null: no subnet.env / unknown). */
  subnetEnvMtu: number | null;
  subnetEnvExists: boolean | null;
  /** Is the running agent in this command's network namespace? (null: agent not running / unknown) */
  agentSameNetns: boolean | null;
}

/* ------------------------------------------------------------------ report */

export type WarningCode =
  | 'agent_down' | 'no_state_file' | 'not_synced' | 'store_not_connected' | 'program_detached' | 'wrong_netns'
  | 'rp_filter_strict' | 'mtu_mismatch' | 'unreachable_peer' | 'rejected_lease' | 'map_nearly_full';

export interface StatusWarning {
  code: WarningCode;
  message: string;
  remedy: string;
}

export interface Rates {
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
}

export interface PeerRow {
  /** Node name (kube) or lease key (etcd); null when the state file does not know the id. */
  peer: string | null;
  peerId: number;
  subnet: string;
  publicIp: string;
  mode: string;
  vtepMac: string | null;
  txPackets: bigint;
  txBytes: bigint;
  rxPackets: bigint;
  rxBytes: bigint;
  /** Per second since the previous sample (--watch); null otherwise. */
  rates: Rates | null;
}

export interface ProgramRow {
  hook: HookName;
  interface: string | null;
  ifindex: number;
  required: boolean;
  attached: boolean;
  progId: number | null;
  name: string | null;
  xdpMode: 'native' | 'generic' | null;
}

export interface MapRow {
  name: 'fbpf_peers' | 'fbpf_sources' | 'fbpf_peer_stats';
  type: 'lpm_trie' | 'hash' | 'percpu_array';
  entries: number;
  capacity: number;
  fill: number;
}

export interface DropRow {
  reason: DropReason;
  packets: bigint;
  bytes: bigint;
  help: string;
  /** Packets per second since the previous sample (--watch); null otherwise. */
  rate: number | null;
}

export interface StatusReport {
  schema: typeof STATUS_SCHEMA;
  generatedAt: string;
  /** Seconds since the previous sample (--watch), null for a single sample. */
  intervalSeconds: number | null;
  pinDir: string;
  stateDir: string;
  node: {
    name: string | null;
    leaseKey: string | null;
    subnet: string;
    network: string;
    publicIp: string;
    vtepMac: string;
  };
  backend: {
    type: string;
    vni: number;
    port: number;
    directRouting: boolean;
    fastPath: boolean;
    podMtu: number | null;
    tunnelMtu: number | null;
  };
  uplink: { name: string | null; ifindex: number; mtu: number | null; mac: string; driver: string | null; chosenBy: string | null };
  device: { name: string | null; ifindex: number; mtu: number | null; mac: string };
  decap: { engine: string; requested: string | null; xdpMode: 'native' | 'generic' | null; description: string };
  programs: ProgramRow[];
  maps: MapRow[];
  agent: {
    running: boolean;
    pid: number | null;
    startedAt: string | null;
    uptimeSeconds: number | null;
    ready: boolean;
    notReady: string[];
    lastSync: string | null;
    lastSyncAgeSeconds: number | null;
    stateUpdatedAt: string | null;
  };
  store: { kind: 'etcd' | 'kube' | null; state: string | null; since: string | null; detail: string | null; live: boolean };
  peers: { programmed: number; unreachable: number; rejected: number; list: PeerRow[] };
  drops: DropRow[];
  leases: {
    rejected: Array<{ leaseKey: string; reason: string; message: string }>;
    unreachable: Array<{ leaseKey: string; subnet: string; publicIp: string; message: string }>;
  };
  warnings: StatusWarning[];
}

/** A previous report, for rates (--watch). */
export interface PreviousSample {
  report: StatusReport;
  at: Date;
}

const DECAP_TEXT: Record<string, string> = {
  kernel: 'the kernel VXLAN device decapsulates (tunnel GRO); our TC program on it checks the peer and VNI',
  xdp: 'XDP on the uplink checks and strips the outer headers before GRO; TC hands the frames to flannel-bpf',
  tc: 'TC ingress on the uplink checks and strips the outer headers',
};

function decapDescription(engine: string, backend: string, xdpMode: string | null): string {
  if (backend === 'host-gw') return 'no tunnel: TC ingress on the uplink steers packets from peer subnets through flannel-bpf';
  const base = DECAP_TEXT[engine] ?? engine;
  return engine === 'xdp' && xdpMode ? `${base} (XDP ${xdpMode} mode)` : base;
}

function iso(d: Date): string {
  return d.toISOString();
}

function ageSeconds(now: Date, then: string | null | undefined): number | null {
  if (!then) return null;
  const t = Date.parse(then);
  return Number.isNaN(t) ? null : Math.max(0, (now.getTime() - t) / 1000);
}

function rate(cur: bigint, prev: bigint, dt: number): number {
  return cur >= prev && dt > 0 ? Number(cur - prev) / dt : 0;
}

/** Facts → report (pure). `prev` adds rates. */
export function buildReport(f: StatusFacts, prev?: PreviousSample): StatusReport {
  const c = f.config;
  const st = f.state;
  const linkBy = new Map(f.links.map((l) => [l.ifindex, l]));
  const uplinkLink = linkBy.get(c.uplinkIfindex);
  const devLink = linkBy.get(c.devIfindex);
  const uplinkMac = c.uplinkMac;
  const inNodeNetns = f.agentSameNetns !== false
    && (f.links.length === 0 || (uplinkLink !== undefined && (uplinkMac === '00:00:00:00:00:00' || uplinkLink.mac === uplinkMac)));
  const uplinkName = (inNodeNetns ? uplinkLink?.name : undefined) ?? st?.uplink?.name ?? null;
  const uplinkMtu = (inNodeNetns ? uplinkLink?.mtu : undefined) ?? st?.uplink?.mtu ?? null;
  const overhead = ENCAP_OVERHEAD[c.backend] ?? 0;
  const tunnelMtu = uplinkMtu !== null ? uplinkMtu - overhead : null;
  const warnings: StatusWarning[] = [];
  const warn = (code: WarningCode, message: string, remedy: string) => warnings.push({ code, message, remedy });
  const dt = prev ? (f.now.getTime() - prev.at.getTime()) / 1000 : 0;

  /* Programs. */
  const fastPath = (c.flags & CONFIG_FLAGS.fastPath) !== 0;
  /* cni0's hook is required once the agent has attached to it (the pinned config names it): cni0 appears with the first pod, the agent follows within a second. */
  const required = new Set<HookName>(hooksFor({ engine: c.decap, backend: c.backend, fastPath, cniIfindex: c.cniIfindex || undefined }));
  const programs: ProgramRow[] = f.hooks.map((h) => {
    const link = linkBy.get(h.ifindex);
    return {
      hook: h.hook,
      interface: inNodeNetns ? link?.name ?? null : null,
      ifindex: h.ifindex,
      required: required.has(h.hook),
      attached: h.ours,
      progId: h.progId && h.progId > 0 ? h.progId : null,
      name: h.progId ? f.programNames.get(h.progId) ?? null : null,
      xdpMode: h.hook === 'uplink-xdp' ? (h.mode ?? null) : null,
    };
  });
  const xdpRow = programs.find((p) => p.hook === 'uplink-xdp');

  /* Maps. */
  const peerIds = new Set(f.peers.map((p) => p.value.peerId));
  const maps: MapRow[] = [
    { name: 'fbpf_peers', type: 'lpm_trie', entries: f.peers.length, capacity: f.capacity.fbpf_peers, fill: 0 },
    { name: 'fbpf_sources', type: 'hash', entries: f.sources, capacity: f.capacity.fbpf_sources, fill: 0 },
    { name: 'fbpf_peer_stats', type: 'percpu_array', entries: peerIds.size, capacity: f.capacity.fbpf_peer_stats, fill: 0 },
  ];
  for (const m of maps) m.fill = m.capacity > 0 ? m.entries / m.capacity : 0;

  /* Peers: the map is the truth; names come from the state file. */
  const names = new Map<number, string>();
  for (const p of st?.peers ?? []) names.set(p.peerId, p.leaseKey);
  /* The state file is written at most once a second: a peer programmed since then has no name there yet. In etcd mode its name is flannel's lease key, the subnet. */
  const keyOf = st?.store.kind === 'etcd' ? (subnet: Cidr): string => formatCidr(subnet).replace('/', '-') : (): null => null;
  const prevPeers = new Map((prev?.report.peers.list ?? []).map((p) => [`${p.peerId}|${p.subnet}`, p]));
  const list: PeerRow[] = f.peers.map(({ subnet, value }) => {
    const s = f.counters.get(value.peerId) ?? { txPackets: 0n, txBytes: 0n, rxPackets: 0n, rxBytes: 0n };
    const row: PeerRow = {
      peer: names.get(value.peerId) ?? keyOf(subnet), peerId: value.peerId, subnet: formatCidr(subnet), publicIp: formatIPv4(value.publicIp),
      mode: value.mode, vtepMac: value.vtepMac === '00:00:00:00:00:00' ? null : value.vtepMac,
      txPackets: s.txPackets, txBytes: s.txBytes, rxPackets: s.rxPackets, rxBytes: s.rxBytes, rates: null,
    };
    const p = prevPeers.get(`${row.peerId}|${row.subnet}`);
    if (prev) {
      row.rates = p
        ? { txPackets: rate(row.txPackets, p.txPackets, dt), txBytes: rate(row.txBytes, p.txBytes, dt), rxPackets: rate(row.rxPackets, p.rxPackets, dt), rxBytes: rate(row.rxBytes, p.rxBytes, dt) }
        : { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 };
    }
    return row;
  });
  list.sort((a, b) => {
    const ra = a.rates ? a.rates.txBytes + a.rates.rxBytes : 0;
    const rb = b.rates ? b.rates.txBytes + b.rates.rxBytes : 0;
    if (ra !== rb) return rb - ra;
    const ta = a.txBytes + a.rxBytes;
    const tb = b.txBytes + b.rxBytes;
    if (ta !== tb) return tb > ta ? 1 : -1;
    return (a.peer ?? a.subnet).localeCompare(b.peer ?? b.subnet);
  });

  /* Drops. */
  const prevDrops = new Map((prev?.report.drops ?? []).map((d) => [d.reason, d]));
  const drops: DropRow[] = DROP_REASONS.filter((r) => r !== 'none').map((reason) => {
    const d = f.drops[reason];
    const p = prevDrops.get(reason);
    return { reason, packets: d.packets, bytes: d.bytes, help: DROP_REASON_HELP[reason], rate: prev ? rate(d.packets, p?.packets ?? d.packets, dt) : null };
  });

  /* Agent and readiness (as /readyz: programs attached, synced, subnet.env written). */
  const detached = inNodeNetns ? programs.filter((p) => p.required && !p.attached) : [];
  const notReady: string[] = [];
  if (!f.agentRunning) notReady.push('agent is not running');
  if (!inNodeNetns) notReady.push('programs unknown: not in the node\'s network namespace');
  if (detached.length) notReady.push(`programs detached: ${detached.map((p) => p.hook).join(', ')}`);
  if (!st?.lastSync) notReady.push('maps never synced with the lease store');
  if (f.subnetEnvExists === false) notReady.push('subnet.env missing');
  const running = f.agentRunning;

  if (!running) {
    warn('agent_down', st ? `the agent is not running (last pid ${st.pid}, state written ${st.updatedAt})` : 'the agent is not running',
      'the dataplane keeps forwarding with what is in the maps (counters below are live), but lease changes are not applied: start the agent (DaemonSet pod / service) and read its log for why it stopped');
  }
  if (!st) {
    warn('no_state_file', `no agent state file in ${f.stateDir}: peer names, the lease store and the uplink's name are unknown`,
      'pass the agent\'s --state-dir (or --node-dir DIR, the directory holding state.json)');
  }
  if (!inNodeNetns) {
    warn('wrong_netns', f.agentSameNetns === false
      ? `status runs in another network namespace than the agent (pid ${st?.pid}): programs, interfaces and rp_filter shown are not the node's`
      : `ifindex ${c.uplinkIfindex} in this network namespace is ${uplinkLink ? `${uplinkLink.name} (${uplinkLink.mac})` : 'absent'}, not the uplink (${uplinkMac}): programs, interfaces and rp_filter shown are not the node's`,
    f.agentSameNetns === false && st
      ? `run it in the agent's namespace: nsenter --net=/proc/${st.pid}/ns/net flannel-bpf status --bpffs-pin-dir=${f.pinDir} --node-dir=${f.stateDir}`
      : 'run status in the node\'s network namespace (on the host, in a hostNetwork pod, or with nsenter --net=… for a simulated node)');
  }
  if (running && st && !st.lastSync) warn('not_synced', 'the agent has not synced the maps with the lease store yet', `check the lease store (${st.store.kind}): the store state is ${st.store.state}`);
  if (running && st && st.store.state !== 'connected') {
    warn('store_not_connected', `the lease store (${st.store.kind}) is ${st.store.state}${st.store.detail ? `: ${st.store.detail}` : ''}`,
      'the maps keep their last contents; check that the store is reachable from this node (endpoints, certificates, RBAC)');
  }
  for (const p of detached) {
    warn('program_detached', `no flannel-bpf program at ${p.hook} on ${p.interface ?? `ifindex ${p.ifindex}`}${p.progId ? ` (program ${p.progId} ${p.name ?? ''} is there instead)` : ''}`,
      running ? 'the agent re-attaches its programs within a few seconds; if this persists, read its log' : 'start the agent: it re-attaches the programs from the pinned maps');
  }
  const rp = Math.max(f.rpFilter.all ?? 0, f.rpFilter.uplink ?? 0);
  if (rp === 1 && inNodeNetns) {
    warn('rp_filter_strict', `rp_filter is strict on the uplink${uplinkName ? ` ${uplinkName}` : ''} (net.ipv4.conf.all.rp_filter=${f.rpFilter.all ?? '?'}, net.ipv4.conf.${uplinkName ?? '<uplink>'}.rp_filter=${f.rpFilter.uplink ?? '?'})`,
      'packets from pod subnets that reach the uplink without being steered through flannel-bpf (programs detached, asymmetric routes) are dropped by the kernel; set it to 2 (loose) as most CNIs recommend');
  }
  const podMtu = f.subnetEnvMtu;
  const cni0 = f.links.find((l) => l.name === 'cni0');
  if (tunnelMtu !== null && podMtu !== null && podMtu > tunnelMtu) {
    warn('mtu_mismatch', `pods get MTU ${podMtu} (subnet.env) but the tunnel carries at most ${tunnelMtu} (uplink${uplinkName ? ` ${uplinkName}` : ''} MTU ${uplinkMtu} − ${overhead})`,
      'restart the agent so it rewrites subnet.env, then recreate the pods (or raise the uplink MTU)');
  }
  if (tunnelMtu !== null && cni0 && inNodeNetns && cni0.mtu > tunnelMtu) {
    warn('mtu_mismatch', `cni0 has MTU ${cni0.mtu} but the tunnel carries at most ${tunnelMtu} (uplink MTU ${uplinkMtu} − ${overhead})`,
      'pods created before an MTU change keep the old MTU: recreate them after fixing subnet.env (the CNI bridge takes the smallest pod MTU)');
  }
  if (podMtu !== null && c.mtu && podMtu !== c.mtu) {
    warn('mtu_mismatch', `subnet.env says MTU ${podMtu} but the agent configured ${c.mtu}`, 'subnet.env is stale: restart the agent to rewrite it, then recreate pods');
  }
  for (const u of st?.unreachable ?? []) {
    warn('unreachable_peer', `peer ${u.leaseKey} (subnet ${u.subnet}, next hop ${u.publicIp}) is unreachable with host-gw: not on the uplink's subnets`,
      'host-gw needs every node on one layer-2 segment; use the vxlan backend (with DirectRouting) across routers');
  }
  for (const r of st?.rejected ?? []) warn('rejected_lease', `lease ${r.leaseKey} rejected (${r.reason}): ${r.message}`, 'fix or delete the lease in the store; the other peers are unaffected');
  for (const m of maps) {
    if (m.fill >= FULL_WARN) warn('map_nearly_full', `${m.name} is ${(m.fill * 100).toFixed(0)}% full (${m.entries} of ${m.capacity})`, 'raise --max-peers (takes effect after "flannel-bpf reset" and an agent restart)');
  }

  return {
    schema: STATUS_SCHEMA,
    generatedAt: iso(f.now),
    intervalSeconds: prev ? dt : null,
    pinDir: f.pinDir,
    stateDir: f.stateDir,
    node: {
      name: st?.nodeName || null, leaseKey: st?.lease?.key ?? null, subnet: formatCidr(c.subnet), network: formatCidr(c.network),
      publicIp: formatIPv4(c.publicIp), vtepMac: c.vtepMac,
    },
    backend: {
      type: c.backend, vni: c.vni, port: c.port, directRouting: c.backend === 'vxlan' && (c.flags & CONFIG_FLAGS.steerDirect) !== 0, fastPath: (c.flags & CONFIG_FLAGS.fastPath) !== 0,
      podMtu, tunnelMtu,
    },
    uplink: { name: uplinkName, ifindex: c.uplinkIfindex, mtu: uplinkMtu, mac: c.uplinkMac, driver: st?.uplink?.driver ?? null, chosenBy: st?.uplink?.reason ?? null },
    device: { name: (inNodeNetns ? devLink?.name : undefined) ?? st?.device?.name ?? null, ifindex: c.devIfindex, mtu: (inNodeNetns ? devLink?.mtu : undefined) ?? st?.device?.mtu ?? null, mac: c.devMac },
    decap: { engine: c.decap, requested: st?.engine?.requested ?? null, xdpMode: xdpRow?.attached ? xdpRow.xdpMode : null, description: decapDescription(c.decap, c.backend, xdpRow?.attached ? xdpRow.xdpMode : null) },
    programs,
    maps,
    agent: {
      running, pid: st?.pid ?? null, startedAt: st?.startedAt ?? null, uptimeSeconds: running ? ageSeconds(f.now, st?.startedAt) : null,
      ready: notReady.length === 0, notReady, lastSync: st?.lastSync ?? null, lastSyncAgeSeconds: ageSeconds(f.now, st?.lastSync), stateUpdatedAt: st?.updatedAt ?? null,
    },
    store: { kind: st?.store.kind ?? null, state: st?.store.state ?? null, since: st?.store.since ?? null, detail: st?.store.detail ?? null, live: running },
    peers: { programmed: f.peers.length, unreachable: st?.unreachable.length ?? 0, rejected: st?.rejected.length ?? 0, list },
    drops,
    leases: { rejected: [...(st?.rejected ?? [])], unreachable: [...(st?.unreachable ?? [])] },
    warnings,
  };
}

/* ------------------------------------------------------------------ JSON */

const U64 = '\u0000u64:';

/** The --json document: counters (u64) as exact integer literals. */
export function reportToJson(r: StatusReport, pretty = true): string {
  const s = JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? `${U64}${v.toString()}` : v), pretty ? 2 : undefined);
  return s.replace(/"\\u0000u64:(\d+)"/g, '$1');
}

/* ------------------------------------------------------------------ screen */

export function formatCount(n: bigint | number): string {
  const s = typeof n === 'bigint' ? n.toString() : Math.round(n).toString();
  return s.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** 588 B, 1.4 KiB, 12.0 MiB … */
export function formatBytes(n: bigint | number): string {
  let v = typeof n === 'bigint' ? Number(n) : n;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** Bytes per second as bits per second: 9.8 kbit/s, 1.20 Gbit/s. */
export function formatBitRate(bytesPerSecond: number): string {
  const bits = bytesPerSecond * 8;
  const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
  let v = bits;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) { v /= 1000; u++; }
  return u === 0 ? `${Math.round(v)} ${units[0]}` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function formatPacketRate(pps: number): string {
  if (pps >= 1e6) return `${(pps / 1e6).toFixed(2)} Mpkt/s`;
  if (pps >= 1e3) return `${(pps / 1e3).toFixed(1)} kpkt/s`;
  return `${pps < 10 && pps > 0 ? pps.toFixed(1) : Math.round(pps)} pkt/s`;
}

/** 3s, 2m 50s, 4h 03m, 2d 01h. */
export function formatAge(seconds: number | null): string {
  if (seconds === null) return '?';
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d ${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

export interface Column {
  title: string;
  right?: boolean;
}

/** A plain-text table: titles, then rows, columns separated by two spaces. */
export function table(cols: readonly Column[], rows: readonly (readonly string[])[], indent = '  '): string[] {
  const widths = cols.map((c, i) => Math.max(c.title.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => indent + cells.map((cell, i) => {
    const w = widths[i] ?? 0;
    const last = i === cols.length - 1;
    return cols[i]?.right ? cell.padStart(w) : last ? cell : cell.padEnd(w);
  }).join('  ').trimEnd();
  return [line(cols.map((c) => c.title)), ...rows.map(line)];
}

export interface FormatOptions {
  /** Every peer (--peers) instead of the busiest TOP_PEERS. */
  allPeers?: boolean;
  top?: number;
}

function kv(label: string, value: string): string {
  return `  ${label.padEnd(12)} ${value}`;
}

/** The screen. */
export function formatStatus(r: StatusReport, opts: FormatOptions = {}): string {
  const out: string[] = [];
  const a = r.agent;
  const when = r.generatedAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  out.push(`flannel-bpf status — node ${r.node.name ?? '(unknown)'}${r.node.leaseKey && r.node.leaseKey !== r.node.name ? ` (lease ${r.node.leaseKey})` : ''} — ${when}`);
  out.push('');
  if (a.running) {
    out.push(kv('Agent', `running, pid ${a.pid}, up ${formatAge(a.uptimeSeconds)} — ${a.ready ? 'ready' : `NOT READY (${a.notReady.join('; ')})`}`));
  } else {
    out.push(kv('Agent', `DOWN${a.pid ? ` (last pid ${a.pid})` : ''} — the dataplane keeps forwarding with the pinned maps; counters below are live`));
  }
  const s = r.store;
  const applied = `last change applied ${formatAge(a.lastSyncAgeSeconds)} ago`;
  out.push(kv('Lease sync', !a.lastSync ? 'never synced with the lease store'
    : !a.running ? `${applied} by the stopped agent; later lease changes are not applied`
      : s.state === 'connected' ? `in sync, watching the store (${applied})`
        : `${applied}; the store is ${s.state ?? 'unknown'}, later changes are not seen`));
  out.push(kv('Lease store', s.kind === null ? 'unknown (no state file)'
    : s.live ? `${s.kind}, ${s.state}${s.since ? ` for ${formatAge(Math.max(0, (Date.parse(r.generatedAt) - Date.parse(s.since)) / 1000))}` : ''}${s.detail ? ` (${s.detail})` : ''}`
      : `${s.kind}, unknown while the agent is down (last known: ${s.state})`));
  out.push(kv('Subnet', `${r.node.subnet} (network ${r.node.network})`));
  out.push(kv('Public IP', r.node.publicIp));
  out.push(kv('VtepMAC', r.node.vtepMac));
  const b = r.backend;
  const opt = b.type === 'vxlan' ? `VNI ${b.vni}, port ${b.port}, DirectRouting ${b.directRouting ? 'on' : 'off'}` : b.type === 'udp' ? `port ${b.port}` : 'direct routes via peers\' public IPs';
  out.push(kv('Backend', `${b.type} — ${opt}${b.fastPath ? ', fast path on' : ''}`));
  out.push(kv('MTU', b.type === 'host-gw'
    ? `pods ${b.podMtu ?? '?'}, uplink ${r.uplink.mtu ?? '?'} (no encapsulation)`
    : `pods ${b.podMtu ?? '?'}, tunnel ${b.tunnelMtu ?? '?'}${r.uplink.mtu !== null ? ` (uplink ${r.uplink.mtu} − ${ENCAP_OVERHEAD[b.type] ?? 0})` : ''}`));
  const u = r.uplink;
  out.push(kv('Uplink', `${u.name ?? '?'} — ifindex ${u.ifindex}${u.driver ? `, driver ${u.driver}` : ''}${u.mtu !== null ? `, MTU ${u.mtu}` : ''}, MAC ${u.mac}${u.chosenBy ? `, chosen by ${u.chosenBy}` : ''}`));
  const xdp = r.decap.xdpMode ? ` ${r.decap.xdpMode}` : '';
  out.push(kv('Decap', `${r.decap.engine}${xdp}${r.decap.requested && r.decap.requested !== r.decap.engine ? ` (requested ${r.decap.requested})` : ''} — ${r.decap.description}`));
  out.push(kv('Pins', r.pinDir));

  out.push('', 'PROGRAMS');
  const foreignNetns = r.warnings.some((w) => w.code === 'wrong_netns');
  const used = r.programs.filter((p) => p.required || p.progId !== null);
  out.push(...table(
    [{ title: 'HOOK' }, { title: 'INTERFACE' }, { title: 'PROGRAM' }, { title: 'ID', right: true }, { title: 'STATE' }],
    used.map((p) => [p.hook, `${p.interface ?? '?'} (${p.ifindex})`, p.name ?? '-', p.progId === null ? '-' : String(p.progId),
      foreignNetns ? 'unknown (other netns)'
        : p.attached ? (p.required ? `attached${p.xdpMode ? ` (${p.xdpMode})` : ''}` : 'attached (not needed)') : p.required ? (p.progId ? 'FOREIGN PROGRAM' : 'DETACHED') : 'foreign program'])));
  const unused = r.programs.filter((p) => !p.required && p.progId === null).map((p) => p.hook);
  if (unused.length) out.push(`  not used by ${r.backend.type}/${r.decap.engine}: ${unused.join(', ')}`);

  out.push('', 'MAPS');
  out.push(...table(
    [{ title: 'MAP' }, { title: 'TYPE' }, { title: 'ENTRIES', right: true }, { title: 'CAPACITY', right: true }, { title: 'FILL', right: true }],
    r.maps.map((m) => [m.name, m.type, formatCount(m.entries), formatCount(m.capacity), `${(m.fill * 100).toFixed(m.fill > 0 && m.fill < 0.001 ? 3 : 1)}%`])));

  const list = r.peers.list;
  const top = opts.allPeers ? list.length : opts.top ?? TOP_PEERS;
  const shown = list.slice(0, top);
  out.push('', `PEERS — ${r.peers.programmed} programmed, ${r.peers.unreachable} unreachable, ${r.peers.rejected} rejected${shown.length < list.length ? ` (the ${shown.length} busiest shown; --peers for all)` : ''}`);
  if (list.length === 0) {
    out.push('  none');
  } else {
    const watch = r.intervalSeconds !== null;
    const cols: Column[] = [{ title: 'PEER' }, { title: 'SUBNET' }, { title: 'PUBLIC IP' }, { title: 'MODE' },
      { title: 'TX PKTS', right: true }, { title: 'TX BYTES', right: true }, { title: 'RX PKTS', right: true }, { title: 'RX BYTES', right: true }];
    if (watch) cols.push({ title: 'TX RATE', right: true }, { title: 'RX RATE', right: true });
    out.push(...table(cols, shown.map((p) => {
      const row = [p.peer ?? `? (id ${p.peerId})`, p.subnet, p.publicIp, p.mode, formatCount(p.txPackets), formatBytes(p.txBytes), formatCount(p.rxPackets), formatBytes(p.rxBytes)];
      if (watch) {
        const rt = p.rates ?? { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 };
        row.push(`${formatPacketRate(rt.txPackets)} ${formatBitRate(rt.txBytes)}`, `${formatPacketRate(rt.rxPackets)} ${formatBitRate(rt.rxBytes)}`);
      }
      return row;
    })));
  }

  out.push('', 'DROPS');
  const dropped = r.drops.filter((d) => d.packets > 0n);
  if (dropped.length === 0) {
    out.push('  none');
  } else {
    const watch = r.intervalSeconds !== null;
    const cols: Column[] = [{ title: 'REASON' }, { title: 'PACKETS', right: true }, { title: 'BYTES', right: true }];
    if (watch) cols.push({ title: 'RATE', right: true });
    cols.push({ title: 'MEANING' });
    out.push(...table(cols, dropped.map((d) => {
      const row = [d.reason, formatCount(d.packets), formatBytes(d.bytes)];
      if (watch) row.push(formatPacketRate(d.rate ?? 0));
      row.push(d.help);
      return row;
    })));
  }

  out.push('', 'WARNINGS');
  if (r.warnings.length === 0) out.push('  none');
  for (const w of r.warnings) out.push(`  ! ${w.message}`, `    → ${w.remedy}`);
  return `${out.join('\n')}\n`;
}
