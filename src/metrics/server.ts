/**
 * The Prometheus endpoint (--metrics-addr, default 0.0.0.0:9472): every value
 * is read from the BPF maps and the agent at scrape time, nothing is
 * sampled in between.
 *
 *   GET /metrics   Prometheus text format 0.0.4 (docs/metrics.md)
 *   GET /healthz   as on --healthz-port (process alive, event loop answers)
 *   GET /readyz    as on --healthz-port (programs attached, synced, subnet.env)
 *
 * One scrape = one snapshot: the per-CPU peer counters are read with batched
 * lookups of just the slots in use (peer-counters.ts) and summed over CPUs,
 * the drop counters with one batched lookup; the peer and tunnel-source maps
 * are counted with batched lookups. The low-cardinality families are
 * prom-client metrics (plus prom-client's process metrics); the four per-peer
 * families (4 × peers series: 40,000 lines at 10,000 peers) are rendered
 * straight from the snapshot with label strings cached per peer, because
 * prom-client's per-series label hashing and formatting alone takes longer
 * than the 100 ms a scrape of 10,000 peers may take (bench/scrape.bench.ts).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import client from 'prom-client';
import type { NodeMaps } from '../maps/index.js';
import { DROP_REASONS, FAST_EVENTS, type DropReason, type FastEvent } from '../maps/reasons.js';
import type { DropStats } from '../maps/drops.js';
import { formatCidr, formatIPv4 } from '../maps/addr.js';
import type { BackendType } from '../maps/config.js';
import { hookStates, hooksFor, type HookName, type HookState } from '../loader/dataplane.js';
import type { Engine } from '../loader/engine.js';
import type { DesiredPeerWithId } from '../control/reconcile/ids.js';
import type { ApplyResult } from '../control/reconcile/apply.js';
import type { StoreState } from '../control/subnet/types.js';
import { EventLoopWatch, readinessReport, serveHealth, type ReadinessCheck } from './health.js';
import { readPeerCounters } from './peer-counters.js';

export const METRICS_VERSION = '0.1.0';

/** What the metrics read from the agent (class Agent satisfies it; the benchmark fakes it). */
export interface MetricsAgentView {
  readonly nodeName: string;
  readonly flags: { readonly maxPeers: number; readonly kubeSubnetMgr: boolean };
  readonly storeState: { readonly state: StoreState; readonly since: Date; readonly detail?: string };
  readonly conf: { readonly backend: { readonly type: BackendType } } | null;
  readonly lease: { readonly key: string; readonly subnet: { addr: number; prefix: number }; readonly publicIp: number } | null;
  readonly uplink: { readonly iface: { readonly name: string } } | null;
  readonly engine: Engine | null;
  readonly xdpMode: string | null;
  readonly vtepMac: string;
  readonly dp: { readonly maps: NodeMaps } | null;
  readonly reconciler: {
    readonly planned: readonly DesiredPeerWithId[];
    readonly last: Pick<ApplyResult, 'rejected' | 'unreachable'> | null;
    readonly synced: boolean;
  } | null;
  readonly hooks: readonly HookState[];
  /** The fast path is on (its hooks are required: the device's ingress, and cni0's once it exists). */
  readonly fastPath?: boolean;
  attached(): boolean;
  readonly subnetEnvWritten: boolean;
  readonly lastSync: Date | null;
  readonly leaseEvents: Readonly<Record<LeaseEventType, number>>;
  readonly rejectedTotal: ReadonlyMap<string, number>;
  readonly lastApply: Pick<ApplyResult, 'seconds'> | null;
  readonly detachedFound?: { readonly count: number; readonly lastAt: Date | null; readonly hooks: readonly string[] };
  /** The uplink exists right now. */
  readonly uplinkUp?: boolean;
  /** Link events the agent handled: the uplink lost / returned, the device recreated. */
  readonly linkEvents?: Readonly<Record<LinkEvent, number>>;
  /** The peers' next hops the kernel keeps resolved (managed neighbour entries); null until synced or when off. */
  readonly nextHops?: { readonly managed: number; readonly overLimit: number; readonly failed: number } | null;
  /** Every lease not programmed: unparsable records (store-level) and leases the reconciler refused. */
  rejectedLeases?(): readonly { readonly leaseKey: string }[];
}

export type LinkEvent = 'uplink_lost' | 'uplink_returned' | 'device_recreated';
export const LINK_EVENTS: readonly LinkEvent[] = ['uplink_lost', 'uplink_returned', 'device_recreated'];
export type LeaseEventType = 'added' | 'updated' | 'removed' | 'snapshot' | 'rejected';
export const LEASE_EVENT_TYPES: readonly LeaseEventType[] = ['added', 'updated', 'removed', 'snapshot', 'rejected'];
export const STORE_STATES: readonly StoreState[] = ['connecting', 'connected', 'disconnected'];
export const PEER_STATES = ['programmed', 'unreachable', 'rejected'] as const;
/** The maps that fill up with peers (their capacity follows --max-peers). */
export const FILL_MAPS = ['fbpf_peers', 'fbpf_sources', 'fbpf_peer_stats'] as const;
/** Reasons exported as `reason` label values (slot 0, "none", is never used). */
export const EXPORTED_DROP_REASONS: readonly DropReason[] = DROP_REASONS.filter((r) => r !== 'none');
export const RECONCILE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Readiness stays down this long after the agent found programs detached, so probes see the event. */
export const REATTACH_HOLD_MS = 5000;

export type MetricType = 'counter' | 'gauge' | 'histogram';
export interface MetricDoc {
  name: string;
  type: MetricType;
  labels: readonly string[];
  help: string;
}

const PEER_LABELS = ['peer', 'peer_ip', 'subnet', 'mode'] as const;

/** Every flannel-bpf metric (process/nodejs metrics come from prom-client). docs/metrics.md lists the same. */
export const METRICS: readonly MetricDoc[] = [
  { name: 'flannel_bpf_peer_tx_packets_total', type: 'counter', labels: PEER_LABELS, help: 'Packets sent to the peer by the dataplane (encapsulated or routed; a GSO packet counts as its segments).' },
  { name: 'flannel_bpf_peer_tx_bytes_total', type: 'counter', labels: PEER_LABELS, help: 'Bytes of the inner IPv4 packets sent to the peer (outer headers not included).' },
  { name: 'flannel_bpf_peer_rx_packets_total', type: 'counter', labels: PEER_LABELS, help: 'Packets received from the peer and accepted (decapsulated or steered; a GRO packet counts as its segments).' },
  { name: 'flannel_bpf_peer_rx_bytes_total', type: 'counter', labels: PEER_LABELS, help: 'Bytes of the inner IPv4 packets received from the peer (outer headers not included).' },
  { name: 'flannel_bpf_drops_total', type: 'counter', labels: ['reason'], help: 'Packets the dataplane dropped, by reason.' },
  { name: 'flannel_bpf_drop_bytes_total', type: 'counter', labels: ['reason'], help: 'Bytes of the packets the dataplane dropped (whole frames as the hook saw them), by reason.' },
  { name: 'flannel_bpf_fast_path_packets_total', type: 'counter', labels: ['event'], help: 'What the conntrack-gated fast path did with packets: fast_tx / fast_rx (bypassed the kernel forwarding path), ct_tracked / not_eligible (left on the compat path).' },
  { name: 'flannel_bpf_fast_path_bytes_total', type: 'counter', labels: ['event'], help: 'Bytes of the packets in flannel_bpf_fast_path_packets_total.' },
  { name: 'flannel_bpf_peers', type: 'gauge', labels: ['state'], help: 'Peer leases by state: programmed (in the maps), unreachable (host-gw peer not on the uplink\'s subnets), rejected (invalid lease).' },
  { name: 'flannel_bpf_map_entries', type: 'gauge', labels: ['map'], help: 'Entries in a peer-sized BPF map (fbpf_peer_stats: peer ids in use).' },
  { name: 'flannel_bpf_map_capacity', type: 'gauge', labels: ['map'], help: 'Capacity (max_entries) of a peer-sized BPF map (--max-peers).' },
  { name: 'flannel_bpf_reconcile_duration_seconds', type: 'histogram', labels: [], help: 'Time to compute the desired peer set and write the difference to the maps, per apply.' },
  { name: 'flannel_bpf_lease_events_total', type: 'counter', labels: ['type'], help: 'Lease events received from the lease store, by type (added, updated, removed, snapshot, rejected).' },
  { name: 'flannel_bpf_lease_rejections_total', type: 'counter', labels: ['reason'], help: 'Peer leases rejected (logged once per lease and reason), by reason.' },
  { name: 'flannel_bpf_lease_store_state', type: 'gauge', labels: ['store', 'state'], help: 'Connection state of the lease store (etcd or kube): 1 for the current state, 0 for the others.' },
  { name: 'flannel_bpf_last_sync_timestamp_seconds', type: 'gauge', labels: [], help: 'Unix time the maps were last brought in line with the lease store (0: never).' },
  { name: 'flannel_bpf_program_attached', type: 'gauge', labels: ['hook'], help: 'Whether our program is attached at a hook this node needs (its engine and backend; with the fast path also the device\'s and cni0\'s ingress) (1) or not (0), checked at scrape time.' },
  { name: 'flannel_bpf_program_detached_found_total', type: 'counter', labels: [], help: 'Times the agent found a required program detached and re-attached it.' },
  { name: 'flannel_bpf_link_events_total', type: 'counter', labels: ['event'], help: 'Link events the agent handled: uplink_lost (the uplink vanished), uplink_returned (it came back and the programs were re-attached), device_recreated (the flannel-bpf device was deleted and recreated with the same VtepMAC).' },
  { name: 'flannel_bpf_next_hops', type: 'gauge', labels: ['state'], help: 'Next hops of peers on the uplink by state: managed (a managed neighbour entry the kernel keeps resolved, so a MAC change is followed), over_limit (left unmanaged by the cap, half of gc_thresh3), failed (the kernel refused the managed entry).' },
  { name: 'flannel_bpf_ready', type: 'gauge', labels: [], help: 'Readiness as /readyz reports it (1 ready, 0 not).' },
  { name: 'flannel_bpf_info', type: 'gauge', labels: ['node', 'backend', 'decap', 'xdp_mode', 'uplink', 'subnet', 'public_ip', 'vtep_mac', 'version'], help: 'Constant 1, labelled with the node\'s configuration.' },
  { name: 'flannel_bpf_scrape_read_seconds', type: 'gauge', labels: [], help: 'Time this scrape spent reading the BPF maps.' },
  { name: 'flannel_bpf_scrape_errors_total', type: 'counter', labels: [], help: 'Scrapes whose map reads failed (the map-derived families are missing from those scrapes).' },
];

function metricDoc(name: string): MetricDoc {
  const m = METRICS.find((x) => x.name === name);
  if (!m) throw new Error(`metric ${name} is not documented in METRICS`);
  return m;
}

/* ------------------------------------------------------------ readiness */

/** Where our programs are (from the hooks the agent last reported) and which it needs. */
function attachPlanOf(agent: MetricsAgentView): { uplinkIfindex: number; devIfindex: number; cniIfindex?: number; required: HookName[] } | null {
  if (!agent.engine || !agent.conf || agent.hooks.length === 0) return null;
  const up = agent.hooks.find((h) => h.hook.startsWith('uplink-'))?.ifindex;
  const dev = agent.hooks.find((h) => h.hook.startsWith('dev-'))?.ifindex;
  if (!up || !dev) return null;
  const fastPath = agent.fastPath ?? false;
  /* The agent records cni0 even with the fast path off; only the fast path hooks it. */
  const cni = fastPath ? agent.hooks.find((h) => h.hook === 'cni-tc-ingress')?.ifindex : undefined;
  return {
    uplinkIfindex: up, devIfindex: dev, cniIfindex: cni,
    required: hooksFor({ engine: agent.engine, backend: agent.conf.backend.type, fastPath, cniIfindex: cni }),
  };
}

/** The hooks as the kernel has them now (not as the agent last saw them). */
export function liveHooks(agent: MetricsAgentView): { hooks: HookState[]; required: HookName[] } {
  const plan = attachPlanOf(agent);
  if (!plan) return { hooks: [], required: [] };
  try {
    return { hooks: hookStates(plan), required: plan.required };
  } catch {
    return { hooks: [...agent.hooks], required: plan.required };
  }
}

/**
 * /readyz checks shared by the health server (--healthz-port) and the
 * metrics server. "programs attached" is checked live at request time, and
 * stays failing for REATTACH_HOLD_MS after the agent found a program
 * detached and re-attached it (the agent does so within a second, quicker
 * than any probe).
 */
export function readinessChecks(agent: MetricsAgentView, now: () => number = Date.now): ReadinessCheck[] {
  const programs = (): { ok: boolean; detail: string } => {
    if (!agent.attached()) {
      return { ok: false, detail: agent.hooks.length ? `not attached: ${agent.hooks.filter((h) => !h.ours).map((h) => h.hook).join(', ')}` : 'not yet' };
    }
    const live = liveHooks(agent);
    const missing = live.required.filter((h) => !live.hooks.find((s) => s.hook === h)?.ours);
    if (missing.length) return { ok: false, detail: `detached: ${missing.join(', ')}` };
    const found = agent.detachedFound;
    if (found?.lastAt) {
      const age = now() - found.lastAt.getTime();
      if (age < REATTACH_HOLD_MS) {
        return { ok: false, detail: `found detached ${(age / 1000).toFixed(1)} s ago (${found.hooks.join(', ') || 'programs'}) and re-attached; ready again in ${((REATTACH_HOLD_MS - age) / 1000).toFixed(1)} s` };
      }
    }
    return { ok: true, detail: '' };
  };
  return [
    { name: 'uplink present', ok: () => agent.uplinkUp !== false, detail: () => `${agent.uplink?.iface.name ?? 'the uplink'} is gone` },
    { name: 'programs attached', ok: () => programs().ok, detail: () => programs().detail },
    { name: 'maps synced with the lease store', ok: () => agent.reconciler?.synced === true, detail: () => 'no lease snapshot applied yet' },
    { name: 'subnet.env written', ok: () => agent.subnetEnvWritten, detail: () => 'not yet' },
  ];
}

/* ------------------------------------------------------------ per-peer families */

const PEER_FAMILIES = [
  'flannel_bpf_peer_tx_packets_total', 'flannel_bpf_peer_tx_bytes_total', 'flannel_bpf_peer_rx_packets_total', 'flannel_bpf_peer_rx_bytes_total',
] as const;

export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** `peer="…",peer_ip="…",subnet="…",mode="…"` of a planned peer. */
export function peerLabelString(p: Pick<DesiredPeerWithId, 'leaseKey' | 'publicIp' | 'subnet' | 'mode'>): string {
  return `peer="${escapeLabelValue(p.leaseKey)}",peer_ip="${formatIPv4(p.publicIp)}",subnet="${formatCidr(p.subnet)}",mode="${p.mode}"`;
}

function formatValue(v: number): string {
  return Number.isInteger(v) && Math.abs(v) < 1e21 ? v.toFixed(0) : String(v);
}

/** The four per-peer families in text format; counters[4*i+k] belong to peers[i]. */
export function renderPeerFamilies(labels: readonly string[], counters: Float64Array): string {
  const out: string[] = [];
  PEER_FAMILIES.forEach((name, k) => {
    const doc = metricDoc(name);
    const lines = new Array<string>(labels.length + 2);
    lines[0] = `# HELP ${name} ${escapeHelp(doc.help)}`;
    lines[1] = `# TYPE ${name} counter`;
    for (let i = 0; i < labels.length; i++) lines[i + 2] = `${name}{${labels[i]}} ${formatValue(counters[i * 4 + k] ?? 0)}`;
    out.push(lines.join('\n'));
  });
  return `${out.join('\n\n')}\n`;
}

/* ------------------------------------------------------------ the metrics */

interface Snapshot {
  peers: readonly DesiredPeerWithId[];
  counters: Float64Array | null;
  drops: Record<DropReason, DropStats> | null;
  fast: Record<FastEvent, DropStats> | null;
  entries: Partial<Record<(typeof FILL_MAPS)[number], number>>;
  capacity: Partial<Record<(typeof FILL_MAPS)[number], number>>;
  hooks: HookState[];
  required: HookName[];
  ready: boolean;
  readSeconds: number;
}

export interface AgentMetricsOptions {
  /** prom-client's process and Node.js metrics (default true). */
  defaultMetrics?: boolean;
  /** Readiness checks for flannel_bpf_ready (default readinessChecks(agent)). */
  checks?: readonly ReadinessCheck[];
  /** Called when a scrape's map reads fail. */
  onError?: (err: Error) => void;
}

export class AgentMetrics {
  readonly registry = new client.Registry();
  readonly checks: readonly ReadinessCheck[];
  readonly #agent: MetricsAgentView;
  readonly #reconcile: client.Histogram;
  readonly #onError: (err: Error) => void;
  #seenApply: unknown = null;
  #snap: Snapshot | null = null;
  #scrapeErrors = 0;
  /** Per-peer label strings, rebuilt when the planned peer list changes. */
  #labelCache: { planned: readonly DesiredPeerWithId[] | null; labels: string[]; ids: number[] } = { planned: null, labels: [], ids: [] };

  constructor(agent: MetricsAgentView, opts: AgentMetricsOptions = {}) {
    this.#agent = agent;
    this.checks = opts.checks ?? readinessChecks(agent);
    this.#onError = opts.onError ?? (() => undefined);
    const reg = [this.registry];
    const self = this;
    const snap = (): Snapshot | null => this.#snap;
    const doc = (name: string) => ({ name, help: metricDoc(name).help, labelNames: [...metricDoc(name).labels], registers: reg });

    new client.Counter({
      ...doc('flannel_bpf_drops_total'),
      collect() {
        const s = snap();
        this.reset();
        if (!s?.drops) return;
        for (const r of EXPORTED_DROP_REASONS) this.inc({ reason: r }, Number(s.drops[r].packets));
      },
    });
    new client.Counter({
      ...doc('flannel_bpf_drop_bytes_total'),
      collect() {
        const s = snap();
        this.reset();
        if (!s?.drops) return;
        for (const r of EXPORTED_DROP_REASONS) this.inc({ reason: r }, Number(s.drops[r].bytes));
      },
    });
    for (const [name, field] of [['flannel_bpf_fast_path_packets_total', 'packets'], ['flannel_bpf_fast_path_bytes_total', 'bytes']] as const) {
      new client.Counter({
        ...doc(name),
        collect() {
          const s = snap();
          this.reset();
          if (!s?.fast) return;
          for (const e of FAST_EVENTS) this.inc({ event: e }, Number(s.fast[e][field]));
        },
      });
    }
    new client.Gauge({
      ...doc('flannel_bpf_peers'),
      collect() {
        const r = agent.reconciler;
        this.set({ state: 'programmed' }, r?.planned.length ?? 0);
        this.set({ state: 'unreachable' }, r?.last?.unreachable.length ?? 0);
        this.set({ state: 'rejected' }, agent.rejectedLeases ? agent.rejectedLeases().length : r?.last?.rejected.length ?? 0);
      },
    });
    new client.Gauge({
      ...doc('flannel_bpf_map_entries'),
      collect() {
        const s = snap();
        this.reset();
        for (const m of FILL_MAPS) if (s?.entries[m] !== undefined) this.set({ map: m }, s.entries[m]!);
      },
    });
    new client.Gauge({
      ...doc('flannel_bpf_map_capacity'),
      collect() {
        const s = snap();
        this.reset();
        for (const m of FILL_MAPS) if (s?.capacity[m] !== undefined) this.set({ map: m }, s.capacity[m]!);
      },
    });
    this.#reconcile = new client.Histogram({ ...doc('flannel_bpf_reconcile_duration_seconds'), buckets: RECONCILE_BUCKETS });
    new client.Counter({
      ...doc('flannel_bpf_lease_events_total'),
      collect() {
        this.reset();
        for (const t of LEASE_EVENT_TYPES) this.inc({ type: t }, agent.leaseEvents[t] ?? 0);
      },
    });
    new client.Counter({
      ...doc('flannel_bpf_lease_rejections_total'),
      collect() {
        this.reset();
        for (const [reason, n] of agent.rejectedTotal) this.inc({ reason }, n);
      },
    });
    new client.Gauge({
      ...doc('flannel_bpf_lease_store_state'),
      collect() {
        const store = agent.flags.kubeSubnetMgr ? 'kube' : 'etcd';
        for (const st of STORE_STATES) this.set({ store, state: st }, agent.storeState.state === st ? 1 : 0);
      },
    });
    new client.Gauge({
      ...doc('flannel_bpf_last_sync_timestamp_seconds'),
      collect() { this.set(agent.lastSync ? agent.lastSync.getTime() / 1000 : 0); },
    });
    new client.Gauge({
      ...doc('flannel_bpf_program_attached'),
      collect() {
        const s = snap();
        this.reset();
        if (!s) return;
        for (const h of s.required) this.set({ hook: h }, s.hooks.find((x) => x.hook === h)?.ours ? 1 : 0);
      },
    });
    new client.Counter({
      ...doc('flannel_bpf_program_detached_found_total'),
      collect() { this.reset(); this.inc(agent.detachedFound?.count ?? 0); },
    });
    new client.Counter({
      ...doc('flannel_bpf_link_events_total'),
      collect() {
        this.reset();
        for (const e of LINK_EVENTS) this.inc({ event: e }, agent.linkEvents?.[e] ?? 0);
      },
    });
    new client.Gauge({
      ...doc('flannel_bpf_next_hops'),
      collect() {
        this.reset();
        const n = agent.nextHops;
        if (!n) return;
        this.set({ state: 'managed' }, n.managed);
        this.set({ state: 'over_limit' }, n.overLimit);
        this.set({ state: 'failed' }, n.failed);
      },
    });
    new client.Gauge({
      ...doc('flannel_bpf_ready'),
      collect() { this.set(snap()?.ready ? 1 : 0); },
    });
    new client.Gauge({
      ...doc('flannel_bpf_info'),
      collect() {
        this.reset();
        const l = agent.lease;
        this.set({
          node: agent.nodeName, backend: agent.conf?.backend.type ?? '', decap: agent.engine ?? '', xdp_mode: agent.xdpMode ?? '',
          uplink: agent.uplink?.iface.name ?? '', subnet: l ? formatCidr(l.subnet) : '', public_ip: l ? formatIPv4(l.publicIp) : '',
          vtep_mac: agent.vtepMac, version: METRICS_VERSION,
        }, 1);
      },
    });
    new client.Gauge({
      ...doc('flannel_bpf_scrape_read_seconds'),
      collect() { this.set(snap()?.readSeconds ?? 0); },
    });
    new client.Counter({
      ...doc('flannel_bpf_scrape_errors_total'),
      collect() { this.reset(); this.inc(self.#scrapeErrors); },
    });
    if (opts.defaultMetrics !== false) client.collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Feed the reconcile histogram: call on every agent change (AgentDeps.onChange). */
  onAgentChange(agent: Pick<MetricsAgentView, 'lastApply'> = this.#agent): void {
    const a = agent.lastApply;
    if (a && a !== this.#seenApply) {
      this.#seenApply = a;
      this.#reconcile.observe(a.seconds);
    }
  }

  #labels(planned: readonly DesiredPeerWithId[]): { labels: string[]; ids: number[] } {
    const c = this.#labelCache;
    if (c.planned !== planned) {
      const old = new Map<string, string>();
      if (c.planned) c.planned.forEach((p, i) => old.set(`${p.peerId}|${p.leaseKey}|${p.publicIp}|${p.subnet.addr}/${p.subnet.prefix}|${p.mode}`, c.labels[i]!));
      c.labels = planned.map((p) => old.get(`${p.peerId}|${p.leaseKey}|${p.publicIp}|${p.subnet.addr}/${p.subnet.prefix}|${p.mode}`) ?? peerLabelString(p));
      c.ids = planned.map((p) => p.peerId);
      c.planned = planned;
    }
    return c;
  }

  /** Read everything map-derived once (one scrape). */
  #read(): Snapshot {
    const t0 = performance.now();
    const agent = this.#agent;
    const peers = agent.reconciler?.planned ?? [];
    const maps = agent.dp?.maps ?? null;
    const live = liveHooks(agent);
    const s: Snapshot = {
      peers, counters: null, drops: null, fast: null, entries: {}, capacity: {}, hooks: live.hooks, required: live.required,
      ready: readinessReport(this.checks).ready, readSeconds: 0,
    };
    if (maps) {
      try {
        const { ids } = this.#labels(peers);
        s.counters = readPeerCounters(maps.peerStats.map, ids);
        s.drops = maps.readDrops();
        s.fast = maps.readFastStats();
        s.entries = {
          fbpf_peers: maps.map('fbpf_peers').lookupAll(8192).count,
          fbpf_sources: maps.map('fbpf_sources').lookupAll(8192).count,
          fbpf_peer_stats: new Set(ids).size,
        };
        for (const m of FILL_MAPS) s.capacity[m] = maps.map(m).maxEntries;
      } catch (err) {
        this.#scrapeErrors++;
        s.counters = null;
        s.drops = null;
        s.entries = {};
        this.#onError(err as Error);
      }
    }
    s.readSeconds = (performance.now() - t0) / 1000;
    return s;
  }

  /** One scrape: the whole exposition text. */
  async scrape(): Promise<string> {
    const s = this.#read();
    this.#snap = s;
    try {
      const base = await this.registry.metrics();
      if (!s.counters) return base;
      const { labels } = this.#labels(s.peers);
      return `${base}\n${renderPeerFamilies(labels, s.counters)}`;
    } finally {
      this.#snap = null;
    }
  }
}

/* ------------------------------------------------------------ the server */

export interface MetricsServerOptions {
  host: string;
  port: number;
  metrics: AgentMetrics;
  maxLagMs?: number;
  /** Listen on this Unix socket instead of host:port (benchmarks). */
  socketPath?: string;
}

export interface MetricsServer {
  server: http.Server;
  port: number;
  close(): void;
}

/** Serve /metrics (and /healthz, /readyz) until close(). */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const loop = new EventLoopWatch();
  const maxLag = opts.maxLagMs ?? 5000;
  const m = opts.metrics;
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' });
      res.end('only GET\n');
      return;
    }
    if (url === '/metrics') {
      m.scrape().then((body) => {
        res.writeHead(200, { 'content-type': m.contentType });
        res.end(req.method === 'HEAD' ? undefined : body);
      }, (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`scrape failed: ${(err as Error).message}\n`);
      });
      return;
    }
    if (serveHealth(url, res, loop, maxLag, m.checks)) return;
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: try /metrics, /healthz or /readyz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (opts.socketPath) server.listen(opts.socketPath, () => resolve());
    else server.listen(opts.port, opts.host || '0.0.0.0', () => resolve());
  });
  return {
    server,
    port: opts.socketPath ? 0 : (server.address() as AddressInfo).port,
    close: () => { server.close(); loop.stop(); },
  };
}
