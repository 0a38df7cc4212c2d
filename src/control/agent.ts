/**
 * The agent: flanneld's job with BPF maps instead of per-peer routes.
 *
 *   flags ─▶ subnet manager (etcd | kube) ─▶ network config, own lease
 *         ─▶ node setup: uplink, device, ip_forward, programs + maps, masquerade, subnet.env
 *         ─▶ lease watch ─▶ Reconciler (pure desired state, batched map diff)
 *
 * Stopping (SIGTERM/SIGINT) leaves the dataplane running: programs stay
 * attached and maps pinned, so a restart loses nothing. `flannel-bpf reset`
 * removes it all.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AgentFlags } from './config/flags.js';
import { parseNetConf, checkNetworkConfig, backendPodMtu, backendPort, backendVni, type NetConf } from './config/net-conf.js';
import type { Lease, Rejection } from './lease/types.js';
import type { OwnLeaseAttrs } from './lease/backend-data.js';
import type { Logger } from './log.js';
import { Reconciler, type ApplyResult } from './reconcile/apply.js';
import type { OwnNode } from './reconcile/desired.js';
import { ensureDevice, linkInfo, defaultIpRunner, defaultAsyncIpRunner, type IpRunner, type AsyncIpRunner, type DeviceState, DEVICE_NAME } from './device.js';
import { chooseUplink, readInterfaces, readRoutes, onLinkSubnets, parseOnLinkRoutes, type UplinkChoice } from './uplink.js';
import { chooseVtepMac } from './vtep.js';
import { writeSubnetEnv, readSubnetEnv } from './subnet-env.js';
import { masqRules, forwardRules, ensureRules, ensureRulesAsync, defaultExec, defaultAsyncExec, type Exec, type AsyncExec } from './masquerade.js';
import { writeStateFile, statePeerOf, stateWrittenAt, type AgentStateFile } from './state.js';
import { syncPodEndpointsAsync, syncEndpoints, defaultAsyncBridgeRunner, CNI_BRIDGE, type EndpointIo } from './endpoints.js';
import { watchNeighbours, eventChangesEndpoint, type MonitorSpawner, type NeighbourWatch, type NeighEvent } from './neighwatch.js';
import { syncNextHops, ipBatch, managedLimit, type NextHopIo, type NextHopStatus } from './nexthops.js';
import { Dataplane, hookStates, hooksFor, type HookState, type AttachPlan } from '../loader/dataplane.js';
import { resolveEngine, type Engine } from '../loader/engine.js';
import { FlannelBpfError } from '../loader/errors.js';
import { setLibbpfLogSink } from '../loader/log.js';
import { interfaceDriver } from '../loader/ethtool.js';
import { libbpf } from '../loader/libbpf.js';
import { NodeMaps } from '../maps/index.js';
import { CONFIG_FLAGS, type BackendType } from '../maps/config.js';
import { formatCidr, formatIPv4, cidrContains, parseCidr, parseIPv4, type Cidr } from '../maps/addr.js';

export type { LeaseEvent, StoreState, SubnetManager } from './subnet/types.js';
import { SubnetError, type LeaseEvent, type StoreState, type SubnetManager } from './subnet/types.js';
import { pause } from './subnet/util.js';

export interface AgentDeps {
  log: Logger;
  env: Readonly<Record<string, string | undefined>>;
  makeSubnetManager(flags: AgentFlags, log: Logger): SubnetManager | Promise<SubnetManager>;
  ip?: IpRunner;
  exec?: Exec;
  /** The same, without blocking the event loop (the periodic checks). */
  ipAsync?: AsyncIpRunner;
  execAsync?: AsyncExec;
  /** Node name for logs and identity (etcd mode: hostname by default). */
  nodeName?: string;
  /** Neighbour-table access for the managed next hops (default: the `ip` command). */
  nextHopIo?: NextHopIo;
  /** cni0's tables and neighbour changes for the fast path's endpoints. */
  endpointIo?: EndpointIo;
  /** Starts `ip monitor neigh dev cni0` (neighwatch.ts); null: poll only. */
  neighbourMonitor?: MonitorSpawner | null;
  /** Called whenever something status/metrics care about changes. */
  onChange?(agent: Agent): void;
}

export class AgentError extends FlannelBpfError {}

export { CNI_BRIDGE };

/** Seconds between polls of cni0's tables: with the neighbour monitor running, and without it. */
const ENDPOINT_POLL_WATCHED = 10;
const ENDPOINT_POLL = 2;
/** Events within this window share one sync (a pod's ARP exchange is a few events). */
const ENDPOINT_EVENT_DELAY_MS = 20;

/** Metric of the --ip-blackhole-route route: below the bridge's connected route. */
export const BLACKHOLE_METRIC = 4096;

export class Agent {
  readonly startedAt = new Date();
  storeState: { state: StoreState; since: Date; detail?: string } = { state: 'connecting', since: new Date() };
  conf: NetConf | null = null;
  lease: Lease | null = null;
  uplink: UplinkChoice | null = null;
  uplinkDriver = 'unknown';
  device: DeviceState | null = null;
  engine: Engine | null = null;
  xdpMode: string | null = null;
  vtepMac = '';
  podMtu = 0;
  /** The conntrack-gated fast path is loaded and on. */
  fastPath = false;
  dp: Dataplane | null = null;
  reconciler: Reconciler | null = null;
  hooks: HookState[] = [];
  subnetEnvWritten = false;
  lastSync: Date | null = null;
  warnings: string[] = [];
  readonly leaseEvents = { added: 0, updated: 0, removed: 0, snapshot: 0, rejected: 0 };
  readonly rejectedTotal = new Map<string, number>();
  lastApply: ApplyResult | null = null;
  readonly applyHistory: number[] = [];
  /** The uplink exists (false from when it vanished until it returns). */
  uplinkUp = true;
  /** Link events the periodic check handled (metrics: flannel_bpf_link_events_total). */
  readonly linkEvents = { uplink_lost: 0, uplink_returned: 0, device_recreated: 0 };
  /** The peers' next hops kept resolved by the kernel (managed neighbour entries; null: not synced yet, or off). */
  nextHops: NextHopStatus | null = null;
  /** Pinned maps migrated at start (upgrade or --max-peers change). */
  readonly migrations: Array<{ map: string; copied: number; dropped: number; at: Date }> = [];
  /** Times the periodic check found required programs detached (and re-attached them): readiness and metrics. */
  readonly detachedFound: { count: number; lastAt: Date | null; hooks: string[] } = { count: 0, lastAt: null, hooks: [] };
  #sm: SubnetManager | null = null;
  readonly #ip: IpRunner;
  readonly #exec: Exec;
  readonly #ipAsync: AsyncIpRunner;
  readonly #execAsync: AsyncExec;
  readonly #log: Logger;
  #plan: AttachPlan | null = null;
  /** How the device was made (to recreate it the same way). */
  #deviceSpec: Parameters<typeof ensureDevice>[0] | null = null;
  /** The programs wait for the first lease snapshot (a map migration could not copy everything). */
  #attachPending = false;
  #stateTimer: NodeJS.Timeout | null = null;
  #pendingApply = false;
  #abortRun: (() => void) | null = null;
  #unreachableRoutes: Set<string> | null = null;
  /** Records the store could not parse, by lease key (cleared when the key becomes valid or goes away). */
  readonly #storeRejected = new Map<string, Rejection>();
  /** Set when the agent must exit with an error (e.g. our lease moved). */
  fatal: AgentError | null = null;

  constructor(readonly flags: AgentFlags, private readonly deps: AgentDeps) {
    this.#ip = deps.ip ?? defaultIpRunner;
    this.#exec = deps.exec ?? defaultExec;
    this.#ipAsync = deps.ipAsync ?? defaultAsyncIpRunner;
    this.#execAsync = deps.execAsync ?? defaultAsyncExec;
    this.#log = deps.log;
  }

  get nodeName(): string {
    return this.deps.nodeName ?? this.flags.nodeName ?? os.hostname();
  }

  get backend(): BackendType {
    if (!this.conf) throw new AgentError('no network config yet', 'wait for the agent to start');
    return this.conf.backend.type;
  }

  /** Programs attached where the engine needs them (readiness). */
  attached(): boolean {
    if (!this.#plan) return false;
    const want = hooksFor(this.#plan);
    return want.every((h) => this.hooks.find((s) => s.hook === h)?.ours);
  }

  /** Run until the signal aborts. Throws (with a remedy) when the node cannot be set up. */
  async run(outer: AbortSignal): Promise<void> {
    const inner = new AbortController();
    outer.addEventListener('abort', () => inner.abort(), { once: true });
    if (outer.aborted) inner.abort();
    this.#abortRun = () => inner.abort();
    const signal = inner.signal;
    /* libbpf repeats the kernel's extack text for expected outcomes (an empty TC slot, an existing qdisc): debug. */
    setLibbpfLogSink((level, line) => this.#log.log(level === 0 && !line.includes('Kernel error message') ? 'warn' : 'debug', line, { component: 'libbpf' }));
    const sm = await this.deps.makeSubnetManager(this.flags, this.#log);
    this.#sm = sm;
    sm.onStateChange((state, detail) => {
      if (state !== this.storeState.state) {
        this.#log.log(state === 'disconnected' ? 'warn' : 'info', `lease store ${state}`, { store: sm.kind, detail });
      }
      this.storeState = { state, since: new Date(), detail };
      this.#changed();
    });
    try {
      await this.#start(sm, signal);
      if (signal.aborted) return;
      const watch = sm.watchLeases((e) => this.#onEvent(e), signal);
      await sm.completeLease(signal).catch((err: unknown) => {
        this.#log.warn(`could not complete the lease: ${(err as Error).message}`, { store: sm.kind });
      });
      const periodic = this.#periodic(signal);
      await Promise.all([watch, periodic]);
      if (this.fatal) throw this.fatal;
    } finally {
      if (this.#stateTimer) clearTimeout(this.#stateTimer);
      this.#writeState();
      await sm.close().catch(() => undefined);
      /* Leave programs attached and maps pinned: a restart is hitless. */
      this.dp?.close();
      this.dp = null;
      setLibbpfLogSink(null);
    }
  }

  async #start(sm: SubnetManager, signal: AbortSignal): Promise<void> {
    const log = this.#log;
    /* 1. Network config, retried every second like flanneld. */
    let raw: string | null = null;
    while (!signal.aborted && raw === null) {
      try {
        raw = await sm.getNetworkConfig(signal);
      } catch (err) {
        if (err instanceof SubnetError && !err.retryable) throw err;
        log.warn(`failed to get the network config, retrying in 1 s: ${(err as Error).message}`, { store: sm.kind });
        await pause(1000, signal);
      }
    }
    if (raw === null) return;
    const parsed = parseNetConf(raw, { mode: sm.kind, document: sm.kind === 'kube' ? this.flags.netConfigPath : `${this.flags.etcdPrefix}/config` });
    const conf: NetConf = sm.kind === 'etcd' ? checkNetworkConfig(parsed) : parsed;
    this.conf = conf;
    for (const w of conf.warnings) { log.warn(w, { config: 'net-conf.json' }); this.warnings.push(w); }
    log.info(`found network config - backend type: ${conf.backend.type}`, { network: formatCidr(conf.network), backend: conf.backend });

    /* 2. Uplink (and the public IP the node publishes). */
    const published = await sm.nodeHints(signal);
    const publicIpFlag = published.publicIp !== null ? formatIPv4(published.publicIp) : this.flags.publicIp;
    const ifaces = readInterfaces(this.#ip);
    const uplink = chooseUplink(ifaces, { ...this.flags, publicIp: publicIpFlag }, readRoutes(this.flags, this.#ip));
    this.uplink = uplink;
    this.uplinkDriver = this.#driverOf(uplink.iface.name);
    log.info(`using interface with name ${uplink.iface.name} and address ${formatIPv4(uplink.publicIp)}`,
      { uplink: uplink.iface.name, reason: uplink.reason, driver: this.uplinkDriver });

    /* 3. Refuse to run over pinned state of another backend. */
    const pinned = this.#pinnedConfig();
    if (pinned && pinned.backend !== conf.backend.type) {
      throw new AgentError(`the pinned dataplane in ${this.flags.bpffsPinDir} was set up for the ${pinned.backend} backend, but net-conf.json says ${conf.backend.type}`,
        `the backend cannot change while nodes run (as in flannel); to switch, run "flannel-bpf reset --bpffs-pin-dir=${this.flags.bpffsPinDir}" on the node and start again`);
    }

    /* 4. VtepMAC: published one, else our device's, else derived from the node's identity. */
    const backend = conf.backend.type;
    let deviceMac: string | null = null;
    try { deviceMac = linkInfo(DEVICE_NAME, this.#ip).mac; } catch { deviceMac = null; }
    const vtep = chooseVtepMac({ published: published.vtepMac, device: deviceMac, identity: `${this.nodeName}/${formatIPv4(uplink.publicIp)}` });
    this.vtepMac = vtep.mac;

    /* 5. Own lease. */
    const attrs: OwnLeaseAttrs = { publicIp: uplink.publicIp, backendType: backend };
    if (conf.backend.type === 'vxlan') { attrs.vni = backendVni(conf.backend); attrs.vtepMac = vtep.mac; }
    const previous = readSubnetEnv(this.flags.subnetFile);
    const lease = await sm.acquireLease({ attrs, config: conf, previousSubnet: previous?.subnet ?? null }, signal);
    this.lease = lease;
    if (lease.vtepMac && lease.vtepMac !== vtep.mac) {
      /* The store had a VtepMAC for us already (our public IP's etcd lease): keep it, peers know it. */
      vtep.mac = lease.vtepMac;
      vtep.source = 'published';
      this.vtepMac = lease.vtepMac;
    }
    log.info(`acquired lease ${formatCidr(lease.subnet)}`, { lease: lease.key, vtepMac: vtep.mac, vtepMacSource: vtep.source });
    sm.onOwnLeaseChange((now, before) => {
      if (now.subnet.addr === before.subnet.addr && now.subnet.prefix === before.subnet.prefix) {
        log.warn('our lease was lost and re-acquired with the same subnet', { lease: now.key });
        this.lease = now;
        return;
      }
      log.error(`our lease moved from ${formatCidr(before.subnet)} to ${formatCidr(now.subnet)}; exiting so the node is set up again`, { lease: now.key });
      this.fatal = new AgentError(`own lease changed subnet (${formatCidr(before.subnet)} → ${formatCidr(now.subnet)})`, 'the agent restarts and re-programs the node (pods on the old subnet must be recreated)');
      this.#abortRun?.();
    });
    if (!cidrContains(conf.network, lease.subnet.addr)) {
      throw new AgentError(`our subnet ${formatCidr(lease.subnet)} is outside the network ${formatCidr(conf.network)}`,
        'fix the node\'s podCIDR (kube) or the lease (etcd) so it lies inside net-conf.json\'s Network');
    }

    /* 6. Node setup. */
    this.podMtu = backendPodMtu(conf.backend, uplink.iface.mtu);
    this.#deviceSpec = {
      kind: backend === 'vxlan' ? 'vxlan' : 'veth', mac: vtep.mac, mtu: this.podMtu, subnet: lease.subnet,
      network: conf.network, port: backendPort(conf.backend), vni: backendVni(conf.backend), uplink: uplink.iface.name,
    };
    this.device = ensureDevice(this.#deviceSpec, this.#ip);
    this.#sysctl('net/ipv4/ip_forward', '1');
    let dp: Dataplane;
    this.fastPath = this.flags.fastPath;
    try {
      dp = Dataplane.load({ pinDir: this.flags.bpffsPinDir, maxPeers: this.flags.maxPeers, withoutFastPath: !this.fastPath });
    } catch (err) {
      if (!this.fastPath) throw err;
      /* The fast path needs nf_conntrack's kfuncs; without them the compat path still works. */
      log.warn(`fast path unavailable, using the compat path: ${(err as Error).message.split('\n')[0]}`, { remedy: 'load nf_conntrack (modprobe nf_conntrack) or run with --fast-path=off' });
      this.warnings.push('fast path requested but unavailable (nf_conntrack kfuncs missing); running the compat path');
      this.fastPath = false;
      dp = Dataplane.load({ pinDir: this.flags.bpffsPinDir, maxPeers: this.flags.maxPeers, withoutFastPath: true });
    }
    this.dp = dp;
    this.engine = resolveEngine(this.flags.decap, backend, { driver: this.uplinkDriver }, this.fastPath);
    const cniIfindex = this.#cniIfindex();
    const directRouting = conf.backend.type === 'vxlan' && conf.backend.directRouting;
    dp.maps.config.set(0, {
      publicIp: uplink.publicIp, vni: backendVni(conf.backend), port: backendPort(conf.backend), backend, decap: this.engine,
      flags: (directRouting || backend === 'host-gw' ? CONFIG_FLAGS.steerDirect : 0) | (this.fastPath ? CONFIG_FLAGS.fastPath : 0)
        | (this.flags.checkSourceMac ? CONFIG_FLAGS.checkSourceMac : 0),
      uplinkIfindex: uplink.iface.ifindex, devIfindex: this.device.ifindex, subnet: lease.subnet, network: conf.network,
      mtu: this.podMtu, vtepMac: vtep.mac, devMac: this.device.mac, uplinkMac: uplink.iface.mac, cniIfindex,
    });
    const own: OwnNode = {
      subnet: lease.subnet, network: conf.network, publicIp: uplink.publicIp, backend,
      vni: backendVni(conf.backend), port: backendPort(conf.backend), directRouting, leaseKey: lease.key,
    };
    this.reconciler = new Reconciler(dp.maps, own, { onLinkSubnets: onLinkSubnets(uplink.iface.name, this.#ip) }, this.flags.maxPeers, log, {
      applied: (r) => {
        this.lastApply = r;
        this.applyHistory.push(r.seconds);
        if (this.applyHistory.length > 1000) this.applyHistory.shift();
        this.#syncUnreachableRoutes(r.unreachable.map((u) => formatCidr(u.subnet)));
        this.#changed();
      },
      rejected: (r) => { this.rejectedTotal.set(r.reason, (this.rejectedTotal.get(r.reason) ?? 0) + 1); },
    });
    this.#plan = { uplinkIfindex: uplink.iface.ifindex, devIfindex: this.device.ifindex, engine: this.engine, backend, fastPath: this.fastPath, cniIfindex };
    if (dp.migrations.some((m) => m.dropped > 0)) {
      /* A map could not be carried over: the programs attached now keep the old maps until the leases have refilled the new ones. */
      log.warn('a pinned map could not be fully migrated; attaching the new programs after the first lease snapshot', { maps: dp.migrations.filter((m) => m.dropped).map((m) => m.map) });
      this.#attachPending = true;
    } else {
      this.#attachDataplane();
    }

    if (this.flags.ipBlackholeRoute) this.#ensureBlackhole();
    if (this.flags.ipMasq) ensureRules(masqRules(conf.network, lease.subnet, !this.flags.ipMasqFullyRandomDisable), this.#exec);
    if (this.flags.iptablesForwardRules) ensureRules(forwardRules(conf.network), this.#exec);

    writeSubnetEnv(this.flags.subnetFile, { network: conf.network, subnet: lease.subnet, mtu: this.podMtu, ipMasq: this.flags.ipMasq });
    this.subnetEnvWritten = true;
    log.info(`wrote subnet file to ${this.flags.subnetFile}`, { previousSubnet: previous?.subnet ? formatCidr(previous.subnet) : null });
    this.#changed();
  }

  /** Attach (atomically replace) the programs, then finish any map migration. */
  #attachDataplane(): void {
    const dp = this.dp;
    if (!dp || !this.#plan) return;
    this.#attachPending = false;
    this.hooks = dp.attach(this.#plan);
    this.xdpMode = this.hooks.find((h) => h.hook === 'uplink-xdp')?.mode ?? null;
    this.#log.info('dataplane attached', { engine: this.engine, xdpMode: this.xdpMode, hooks: this.hooks.map((h) => `${h.hook}:${h.progId ?? '-'}`) });
    for (const m of dp.migrations) {
      const what = `max_entries ${m.from.maxEntries}→${m.to.maxEntries}, value ${m.from.valueSize}→${m.to.valueSize} B`;
      this.#log.log(m.dropped ? 'warn' : 'info', `migrated pinned map ${m.map} (${what}): ${m.copied} entries copied${m.dropped ? `, ${m.dropped} not carried over (${m.note ?? ''})` : ''}`,
        { map: m.map, copied: m.copied, dropped: m.dropped });
    }
    dp.finishMigrations();
    try {
      dp.pinPrograms();
    } catch (err) {
      this.#log.warn(`cannot pin the programs: ${(err as Error).message}`, { pinDir: this.flags.bpffsPinDir });
    }
    this.migrations.push(...dp.migrations.map((m) => ({ map: m.map, copied: m.copied, dropped: m.dropped, at: new Date() })));
    dp.migrations = [];
  }

  #onEvent(e: LeaseEvent): void {
    const r = this.reconciler;
    if (!r) return;
    this.leaseEvents[e.type === 'added' ? 'added' : e.type === 'updated' ? 'updated' : e.type === 'removed' ? 'removed' : e.type === 'snapshot' ? 'snapshot' : 'rejected']++;
    try {
      switch (e.type) {
        case 'snapshot':
          this.#storeRejected.clear();
          for (const rej of e.rejected) { this.#countRejected(rej); this.#storeRejected.set(rej.leaseKey, rej); }
          r.snapshot(e.leases);
          this.lastSync = new Date();
          if (this.#attachPending) this.#attachDataplane();
          this.#log.info(`lease snapshot applied: ${r.planned.length} peers programmed`, { leases: e.leases.length, rejected: e.rejected.length + (r.last?.rejected.length ?? 0) });
          break;
        case 'added':
        case 'updated':
          this.#storeRejected.delete(e.lease.key);
          r.stage(e.lease);
          this.#scheduleApply();
          break;
        case 'removed':
          this.#storeRejected.delete(e.key);
          r.stageRemove(e.key);
          this.#scheduleApply();
          break;
        case 'rejected':
          this.#storeRejected.set(e.rejection.leaseKey, e.rejection);
          this.#changed();
          this.#countRejected(e.rejection); /* the subnet manager has logged it */
          if (r.leases.has(e.rejection.leaseKey)) { r.stageRemove(e.rejection.leaseKey); this.#scheduleApply(); }
          break;
      }
    } catch (err) {
      this.#log.error(`applying lease changes failed: ${(err as Error).message}`, { event: e.type });
    }
  }

  /** Every lease not programmed with its reason: unparsable records and leases the reconciler refused. */
  rejectedLeases(): Rejection[] {
    const all = new Map(this.#storeRejected);
    for (const r of this.reconciler?.last?.rejected ?? []) all.set(r.leaseKey, r);
    return [...all.values()].sort((a, b) => (a.leaseKey < b.leaseKey ? -1 : a.leaseKey > b.leaseKey ? 1 : 0));
  }

  #countRejected(r: Rejection): void {
    this.rejectedTotal.set(r.reason, (this.rejectedTotal.get(r.reason) ?? 0) + 1);
  }

  /** Coalesce a burst of events into one apply (same tick): incremental, or a full recompute after an uplink change. */
  #scheduleApply(): void {
    if (this.#pendingApply) return;
    this.#pendingApply = true;
    queueMicrotask(() => {
      this.#pendingApply = false;
      try {
        this.reconciler?.flush();
        this.lastSync = new Date();
      } catch (err) {
        this.#log.error(`applying lease changes failed: ${(err as Error).message}`);
      }
    });
  }

  /** Every few seconds: programs still attached (re-attach if not), uplink facts, iptables rules. */
  async #periodic(signal: AbortSignal): Promise<void> {
    let ticks = 0;
    while (!signal.aborted) {
      await pause(1000, signal);
      if (signal.aborted) break;
      ticks++;
      try {
        /* Cheap checks inline; the ones that run commands are awaited so that lease events keep flowing meanwhile. */
        this.#checkAttach();
        this.#ensureNeighbourWatch();
        /* cni0's neighbour events drive the endpoints; the poll is their safety net (and notices a pod's veth gone). */
        if (ticks % (this.#neighWatch?.running() ? ENDPOINT_POLL_WATCHED : ENDPOINT_POLL) === 0) await this.#syncEndpoints();
        if (ticks % 5 === 0) await this.#refreshUplink();
        if (ticks % 5 === 1) await this.#syncNextHops();
        if (ticks % Math.max(1, this.flags.iptablesResync) === 0) await this.#resyncRules();
      } catch (err) {
        this.#log.warn(`periodic check failed: ${(err as Error).message}`);
      }
    }
    this.#neighWatch?.stop();
    this.#neighWatch = null;
    if (this.#endpointsKick) clearTimeout(this.#endpointsKick);
    this.#endpointsKick = null;
  }

  /** A neighbour monitor on cni0 while the fast path has one; another when cni0 is re-created, or 10 s after one died. */
  #ensureNeighbourWatch(): void {
    const cni = this.fastPath && this.dp ? this.#plan?.cniIfindex ?? 0 : 0;
    const w = this.#neighWatch;
    if (w?.running() && w.ifindex === cni) return;
    w?.stop();
    this.#neighWatch = null;
    const spawner = this.deps.neighbourMonitor;
    if (!cni || spawner === null || Date.now() < this.#neighWatchRetryAt) return;
    this.#neighWatch = watchNeighbours(CNI_BRIDGE, cni, (e) => this.#onNeighbourEvent(e), (reason) => {
      this.#neighWatchRetryAt = Date.now() + 10_000;
      this.#log.warn(`the neighbour monitor on ${CNI_BRIDGE} stopped: ${reason}; pod endpoints are polled every ${ENDPOINT_POLL} s until it restarts`, { bridge: CNI_BRIDGE });
    }, spawner);
  }
  #neighWatch: NeighbourWatch | null = null;
  #neighWatchRetryAt = 0;

  /** A pod's MAC learned or changed on cni0: sync the endpoints now (coalesced). */
  #onNeighbourEvent(e: NeighEvent): void {
    if (!this.dp || !this.lease) return;
    let current;
    try { current = this.dp.maps.endpoints.get(parseIPv4(e.ip)) ?? undefined; } catch { current = undefined; }
    if (!eventChangesEndpoint(e, this.lease.subnet, current)) return;
    if (this.#endpointsKick) return;
    this.#endpointsKick = setTimeout(() => {
      this.#endpointsKick = null;
      void this.#syncEndpoints();
    }, ENDPOINT_EVENT_DELAY_MS);
  }
  #endpointsDirty = false;
  #endpointsKick: NodeJS.Timeout | null = null;

  #checkAttach(): void {
    if (!this.#plan || !this.dp || this.#attachPending) return;
    let plan = this.#plan;
    /* The common case costs three if_nametoindex calls: same links, same ifindexes. */
    const index = (name: string): number => libbpf().if_nametoindex(name);
    if (this.uplinkUp && index(this.uplink?.iface.name ?? '') === plan.uplinkIfindex && index(this.device?.name ?? DEVICE_NAME) === plan.devIfindex
      && (plan.fastPath ? index(CNI_BRIDGE) : 0) === (plan.cniIfindex ?? 0)) {
      this.#checkHooks(plan);
      return;
    }
    /* The uplink may vanish (driver reload, moved away) and come back; the device may be deleted with it or by hand. */
    let up: ReturnType<typeof linkInfo>;
    try {
      up = linkInfo(this.uplink?.iface.name ?? '', this.#ip);
    } catch (err) {
      if (this.uplinkUp) {
        this.uplinkUp = false;
        this.linkEvents.uplink_lost++;
        this.#log.error(`uplink ${this.uplink?.iface.name ?? '?'} is gone: pod traffic to other nodes stops until it returns`, { uplink: this.uplink?.iface.name, detail: (err as Error).message });
      }
      this.hooks = hookStates(plan);
      this.#changed();
      return;
    }
    if (!this.uplinkUp) {
      this.uplinkUp = true;
      this.linkEvents.uplink_returned++;
      this.#log.info(`uplink ${this.uplink?.iface.name ?? '?'} is back (ifindex ${up.ifindex}); re-attaching`, { uplink: this.uplink?.iface.name, ifindex: up.ifindex });
    }
    let dev: ReturnType<typeof linkInfo>;
    try {
      dev = linkInfo(this.device?.name ?? DEVICE_NAME, this.#ip);
    } catch {
      if (!this.#deviceSpec) return;
      /* Same VtepMAC as before: peers keep their neighbour entries (stock flannel recreates it with a new MAC). */
      this.#log.warn(`device ${DEVICE_NAME} is gone; recreating it with VtepMAC ${this.#deviceSpec.mac}`, { device: DEVICE_NAME });
      try {
        this.device = ensureDevice(this.#deviceSpec, this.#ip);
      } catch (err) {
        this.#log.error(`cannot recreate ${DEVICE_NAME}: ${(err as Error).message}`, { device: DEVICE_NAME });
        return;
      }
      this.linkEvents.device_recreated++;
      dev = linkInfo(this.device.name, this.#ip);
    }
    const cni = plan.fastPath ? this.#cniIfindex() : 0;
    if (up.ifindex !== plan.uplinkIfindex || dev.ifindex !== plan.devIfindex || cni !== (plan.cniIfindex ?? 0)) {
      if (up.ifindex !== plan.uplinkIfindex || dev.ifindex !== plan.devIfindex) {
        this.#log.warn('uplink or device changed ifindex; re-attaching', { uplink: up.ifindex, device: dev.ifindex });
      } else {
        this.#log.info(cni ? 'cni0 appeared: attaching the fast path to it' : 'cni0 is gone', { cni0: cni });
      }
      plan = { ...plan, uplinkIfindex: up.ifindex, devIfindex: dev.ifindex, cniIfindex: cni };
      const cfg = this.dp.maps.readConfig();
      if (cfg) this.dp.maps.config.set(0, { ...cfg, uplinkIfindex: up.ifindex, devIfindex: dev.ifindex, uplinkMac: up.mac, devMac: dev.mac, cniIfindex: cni });
      this.#plan = plan;
      this.hooks = this.dp.attach(plan);
      this.#changed();
      return;
    }
    this.#checkHooks(plan);
  }

  /** Our programs still at every hook the plan needs? Re-attach (and count it) if not. */
  #checkHooks(plan: AttachPlan): void {
    if (!this.dp) return;
    this.hooks = hookStates(plan);
    if (!this.attached()) {
      this.#log.warn('programs found detached; re-attaching', { hooks: this.hooks.map((h) => `${h.hook}:${h.progId ?? '-'}`) });
      Object.assign(this.detachedFound, { count: this.detachedFound.count + 1, lastAt: new Date(), hooks: hooksFor(plan).filter((h) => !this.hooks.find((s) => s.hook === h)?.ours) });
      this.hooks = this.dp.attach(plan);
      this.#changed();
    }
  }

  /**
   * The fast path's pod endpoints (cni0 neighbours × bridge FDB), every couple
   * of seconds; with --managed-neighbours, their neighbour entries kept
   * resolved by the kernel (endpoints.ts).
   */
  async #syncEndpoints(): Promise<void> {
    if (!this.fastPath || !this.dp || !this.lease || !this.#plan?.cniIfindex) return;
    /* One sync at a time; an event during a sync asks for one more after it. */
    if (this.#endpointSync) {
      this.#endpointsDirty = true;
      return this.#endpointSync;
    }
    this.#endpointsDirty = false;
    this.#endpointSync = this.#syncEndpointsOnce().finally(() => {
      this.#endpointSync = null;
      if (this.#endpointsDirty && !this.#endpointsKick) void this.#syncEndpoints();
    });
    return this.#endpointSync;
  }
  #endpointSync: Promise<void> | null = null;

  async #syncEndpointsOnce(): Promise<void> {
    if (!this.dp || !this.lease) return;
    try {
      const previous = new Map(this.dp.maps.endpoints.entries());
      const io: EndpointIo = this.deps.endpointIo ?? { ip: this.#ipAsync, bridge: defaultAsyncBridgeRunner, batch: ipBatch, limit: () => managedLimit() };
      const r = await syncPodEndpointsAsync(CNI_BRIDGE, this.lease.subnet, previous, io, this.flags.managedNeighbours);
      if (!this.dp) return;
      const changes = syncEndpoints(this.dp.maps.endpoints, r.endpoints);
      if (changes) this.#log.debug('pod endpoints updated', { changes });
      if (r.marked.length || r.dropped.length) {
        this.#log.debug(`pods: ${r.marked.length} neighbour entr${r.marked.length === 1 ? 'y' : 'ies'} made managed, ${r.dropped.length} of pods gone deleted`, { bridge: CNI_BRIDGE, marked: r.marked.slice(0, 16), dropped: r.dropped.slice(0, 16) });
      }
      if (r.error && r.error !== this.#podNeighError) {
        this.#log.warn(`the kernel refused a managed neighbour entry for a pod on ${CNI_BRIDGE}: ${r.error}; the first flow to a pod idle for minutes may then stay on the compat path (--managed-neighbours=off silences this)`, { bridge: CNI_BRIDGE });
      }
      this.#podNeighError = r.error;
    } catch (err) {
      this.#log.debug(`cannot read pod endpoints: ${(err as Error).message}`);
    }
  }
  #podNeighError: string | null = null;

  /** Managed neighbour entries for the peers' next hops (src/control/nexthops.ts), every 5 s. */
  async #syncNextHops(): Promise<void> {
    if (!this.flags.managedNeighbours || !this.uplink || !this.reconciler || !this.uplinkUp) return;
    const uplink = this.uplink.iface.name;
    const io = this.deps.nextHopIo ?? { ip: this.#ipAsync, batch: ipBatch, limit: () => managedLimit() };
    try {
      const r = await syncNextHops(uplink, this.reconciler.planned.map((p) => p.publicIp), io);
      const before = this.nextHops;
      this.nextHops = { managed: r.managed, overLimit: r.overLimit, failed: r.failed, error: r.error, unrouted: r.unrouted };
      if (r.marked.length || r.dropped.length) {
        this.#log.info(`next hops: ${r.marked.length} neighbour entr${r.marked.length === 1 ? 'y' : 'ies'} made managed, ${r.dropped.length} no longer needed deleted`, { uplink, marked: r.marked.slice(0, 16), dropped: r.dropped.slice(0, 16), managed: r.managed });
      }
      if (r.error && r.error !== before?.error) {
        this.#log.warn(`the kernel refused ${r.failed} managed neighbour entr${r.failed === 1 ? 'y' : 'ies'} on ${uplink}: ${r.error}; a next hop whose MAC changes without a gratuitous ARP stays black-holed until its entry expires (managed entries need Linux >= 5.16; --managed-neighbours=off silences this)`, { uplink, failed: r.failed });
      }
      if (r.overLimit && r.overLimit !== before?.overLimit) {
        this.#log.warn(`${r.overLimit} next hops left unmanaged: the cap is half of net.ipv4.neigh.default.gc_thresh3 (raise it for more)`, { uplink, managed: r.managed, overLimit: r.overLimit });
      }
      if (before === null || before.managed !== r.managed || before.failed !== r.failed) this.#changed();
    } catch (err) {
      this.#log.warn(`cannot sync the next hops' neighbour entries: ${(err as Error).message}`, { uplink });
    }
  }

  async #refreshUplink(): Promise<void> {
    if (!this.uplink || !this.reconciler) return;
    const subnets = parseOnLinkRoutes(await this.#ipAsync(['-j', 'route', 'show', 'dev', this.uplink.iface.name]));
    if (!this.reconciler) return;
    const before = JSON.stringify(this.reconciler.uplinkFacts.onLinkSubnets);
    if (before === JSON.stringify(subnets)) return;
    this.#log.info('the uplink\'s on-link subnets changed; re-deciding DirectRouting / host-gw reachability', { onLink: subnets.map(formatCidr) });
    this.reconciler.setUplink({ onLinkSubnets: subnets });
    this.#scheduleApply();
  }

  /**
   * host-gw peers that are not on-link are not programmed; an `unreachable`
   * route for each makes the kernel answer senders with ICMP at once instead
   * of the packets vanishing (DESIGN.md §2: never silently black-holed).
   * The only per-peer netlink state we keep, and only for broken peers.
   */
  #syncUnreachableRoutes(want: string[]): void {
    if (!this.conf) return;
    const network = this.conf.network;
    try {
      if (this.#unreachableRoutes === null) {
        /* First call: adopt (or clean up) what a previous run left. */
        const rows = JSON.parse(this.#ip(['-j', 'route', 'show', 'type', 'unreachable'])) as Array<{ dst?: string }>;
        this.#unreachableRoutes = new Set(rows.map((r) => r.dst ?? '').filter((d) => d.includes('/') && cidrContains(network, parseCidr(d, false).addr)));
      }
      const wantSet = new Set(want);
      for (const dst of [...this.#unreachableRoutes]) {
        if (!wantSet.has(dst)) { this.#ip(['route', 'del', 'unreachable', dst]); this.#unreachableRoutes.delete(dst); }
      }
      for (const dst of want) {
        if (!this.#unreachableRoutes.has(dst)) { this.#ip(['route', 'replace', 'unreachable', dst]); this.#unreachableRoutes.add(dst); }
      }
    } catch (err) {
      this.#log.warn(`cannot update unreachable routes: ${(err as Error).message}`);
    }
  }

  /**
   * --ip-blackhole-route: a blackhole route for our own pod subnet, so traffic
   * to unassigned pod IPs is dropped here instead of following the default
   * route. Installed with a high metric so the bridge's own route wins.
   */
  #ensureBlackhole(): void {
    if (!this.lease) return;
    const dst = formatCidr(this.lease.subnet);
    const have = JSON.parse(this.#ip(['-j', 'route', 'show', 'type', 'blackhole', dst])) as unknown[];
    if (have.length === 0) this.#ip(['route', 'add', 'blackhole', dst, 'metric', String(BLACKHOLE_METRIC)]);
  }

  async #resyncRules(): Promise<void> {
    if (!this.conf || !this.lease) return;
    if (this.flags.ipBlackholeRoute) this.#ensureBlackhole();
    if (this.flags.ipMasq && await ensureRulesAsync(masqRules(this.conf.network, this.lease.subnet, !this.flags.ipMasqFullyRandomDisable), this.#execAsync)) {
      this.#log.warn('some iptables rules were missing; restored them', { chain: 'FLANNEL-POSTRTG' });
    }
    if (this.flags.iptablesForwardRules && this.conf && await ensureRulesAsync(forwardRules(this.conf.network), this.#execAsync)) {
      this.#log.warn('some iptables rules were missing; restored them', { chain: 'FLANNEL-FWD' });
    }
  }

  #pinnedConfig(): { backend: BackendType } | null {
    if (!fs.existsSync(path.join(this.flags.bpffsPinDir, 'fbpf_config'))) return null;
    let maps: NodeMaps | null = null;
    try {
      maps = NodeMaps.fromPinDir(this.flags.bpffsPinDir);
      const c = maps.readConfig();
      return c ? { backend: c.backend } : null;
    } catch {
      return null;
    } finally {
      maps?.close();
    }
  }

  /** ifindex of the cni0 bridge, 0 while no pod has created it. */
  #cniIfindex(): number {
    try {
      return linkInfo(CNI_BRIDGE, this.#ip).ifindex;
    } catch {
      return 0;
    }
  }

  #driverOf(dev: string): string {
    try {
      return interfaceDriver(dev) ?? 'unknown';
    } catch {
      return 'unknown';
    }
  }


  #sysctl(key: string, value: string): void {
    const file = `/proc/sys/${key}`;
    try {
      if (fs.readFileSync(file, 'utf8').trim() !== value) fs.writeFileSync(file, value);
    } catch (err) {
      throw new AgentError(`cannot set ${key.replace(/\//g, '.')}=${value}: ${(err as Error).message}`, 'run the agent with CAP_NET_ADMIN and a writable /proc/sys/net');
    }
  }

  /** Tell the watchers; write the state file 200 ms after a change, at most once a second (10k peers: 1.7 MB). */
  #changed(): void {
    this.deps.onChange?.(this);
    if (this.#stateTimer) return;
    const wait = Math.max(200, stateWrittenAt(this.flags.stateDir) + 1000 - Date.now());
    this.#stateTimer = setTimeout(() => { this.#stateTimer = null; this.#writeState(); }, wait);
    this.#stateTimer.unref();
  }

  /** The state file `status` reads when the agent is down. */
  snapshotState(): AgentStateFile {
    const conf = this.conf;
    return {
      version: 1,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      updatedAt: new Date().toISOString(),
      nodeName: this.nodeName,
      store: { kind: this.#sm?.kind ?? (this.flags.kubeSubnetMgr ? 'kube' : 'etcd'), state: this.storeState.state, since: this.storeState.since.toISOString(), detail: this.storeState.detail },
      lease: this.lease ? { key: this.lease.key, subnet: formatCidr(this.lease.subnet), publicIp: formatIPv4(this.lease.publicIp) } : null,
      network: conf ? formatCidr(conf.network) : '',
      backend: conf ? {
        type: conf.backend.type, vni: backendVni(conf.backend), port: backendPort(conf.backend),
        directRouting: conf.backend.type === 'vxlan' && conf.backend.directRouting, mtu: this.podMtu,
      } : { type: '', vni: 0, port: 0, directRouting: false, mtu: 0 },
      vtepMac: this.vtepMac,
      uplink: this.uplink ? { name: this.uplink.iface.name, ifindex: this.#plan?.uplinkIfindex ?? this.uplink.iface.ifindex, mtu: this.uplink.iface.mtu, mac: this.uplink.iface.mac, driver: this.uplinkDriver, reason: this.uplink.reason } : null,
      device: this.device ? { name: this.device.name, ifindex: this.#plan?.devIfindex ?? this.device.ifindex, mtu: this.device.mtu } : null,
      engine: this.engine ? { requested: this.flags.decap, resolved: this.engine, xdpMode: this.xdpMode } : null,
      pinDir: this.flags.bpffsPinDir,
      subnetFile: this.flags.subnetFile,
      lastSync: this.lastSync?.toISOString() ?? null,
      maxPeers: this.flags.maxPeers,
      peers: (this.reconciler?.planned ?? []).map(statePeerOf),
      rejected: this.rejectedLeases().map((r) => ({ leaseKey: r.leaseKey, reason: r.reason, message: r.message })),
      unreachable: (this.reconciler?.last?.unreachable ?? []).map((u) => ({ leaseKey: u.leaseKey, subnet: formatCidr(u.subnet), publicIp: formatIPv4(u.publicIp), message: u.message })),
      warnings: this.warnings,
    };
  }

  #writeState(): void {
    try {
      writeStateFile(this.flags.stateDir, this.snapshotState());
    } catch (err) {
      this.#log.warn(`cannot write the state file: ${(err as Error).message}`, { stateDir: this.flags.stateDir });
    }
  }
}

export type { Cidr };
