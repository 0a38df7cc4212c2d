/**
 * The etcd subnet manager (flannel-compat.md §3), over etcd v3 with `etcd3`.
 *
 * Keys and values exactly as flanneld writes them:
 *   <prefix>/config                     the net-conf JSON
 *   <prefix>/subnets/<a.b.c.d>-<plen>   {"PublicIP":"…","PublicIPv6":null,"BackendType":"vxlan","BackendData":{…}}
 * Each create/update grants a fresh etcd lease (24 h) and puts the key with
 * it; there is no KeepAlive. The key is renewed `renewMarginMs` before it
 * expires. Subnet choice (flannel's tryAcquireLease): the lease that carries
 * our public IP (reused when still compatible, deleted otherwise) → the
 * previous subnet.env's subnet when free and compatible → a uniformly random
 * one of the first 100 free candidates from SubnetMin to SubnetMax. New keys
 * are created with a `version(key) == 0` transaction; a lost race is retried
 * with a fresh list (bounded), where flanneld exits.
 *
 * Differences from flanneld (deliberate):
 * - a lost create race is retried (flanneld's retry check never matches, so
 *   it exits with "subnet already exists");
 * - when our own key disappears (deleted, expired) it is re-acquired,
 *   preferring the same subnet, instead of exiting; renewal is a
 *   compare-and-put on our own value, so an expired key that another node has
 *   taken meanwhile is never overwritten;
 * - a reservation (key without etcd lease) reused for our public IP stays a
 *   reservation (flanneld's zero-expiration test never matches and turns it
 *   into a 24 h lease) and is not renewed;
 * - keys whose value does not parse still count as taken during allocation
 *   and for the previous subnet (flanneld skips them and loses the create);
 * - the VtepMAC of the lease found for our public IP is kept;
 * - the watch re-lists (fresh `snapshot`) after any watch failure or
 *   reconnect, not only after compaction; identical re-puts (peers' renewals)
 *   produce no event; peer leases carry no expiration (no TTL lookups).
 */
import fs from 'node:fs';
import {
  Etcd3, CompareResult, CompareTarget, isRecoverableError,
  type IOptions, type IKeyValue, type IWatchResponse, type Watcher,
} from 'etcd3';
import { cidrEquals, cidrOverlaps, formatCidr, formatIPv4, type Cidr } from '../../maps/addr.js';
import type { AgentFlags } from '../config/flags.js';
import { checkNetworkConfig, type EtcdNetConf } from '../config/net-conf.js';
import { createLogger, type Logger } from '../log.js';
import type { OwnLeaseAttrs } from '../lease/backend-data.js';
import {
  DEFAULT_ETCD_PREFIX, ETCD_LEASE_TTL_SECONDS, etcdConfigPath, etcdLeasePath, etcdLeaseValue, etcdSubnetsPath,
  parseEtcdLease, parseEtcdSubnetKey,
} from '../lease/etcd.js';
import type { Lease, LeaseParse, Rejection } from '../lease/types.js';
import {
  DEFAULT_BACKOFF, SubnetError,
  type AcquireRequest, type BackoffOptions, type LeaseEvent, type NodeHints, type StoreState, type SubnetManager,
} from './types.js';
import {
  Backoff, OwnLeaseListeners, StateTracker, abortable, anySignal, deliver, errorMessage, isAbort, sleep,
  throwIfAborted,
} from './util.js';

/** flannel's raceRetries. */
export const ETCD_RACE_RETRIES = 10;
/** flannel retries a failed renewal after one minute. */
export const ETCD_RENEW_RETRY_MS = 60_000;
/** flannel's allocator collects at most this many free candidates. */
export const ALLOCATION_CANDIDATES = 100;

/** Longest wait between two attempts to list the leases while etcd is away (a change made meanwhile is in the maps ≤ 2 s after it returns). */
export const LEASE_RETRY_MAX_MS = 1000;

/** Test seams: called at the points where races and compactions happen in real clusters. */
export interface EtcdTestHooks {
  /** After a candidate subnet is chosen, before the create-if-absent transaction. */
  beforeCreate?(subnet: Cidr, attempt: number): Promise<void> | void;
  /** After a list at `revision`, before the watch from revision + 1 is created. */
  beforeWatch?(revision: number): Promise<void> | void;
}

export interface EtcdSubnetManagerOptions {
  endpoints: string[];
  prefix?: string;
  /** TLS client key / cert (used only when both are given, as flannel), CA bundle. */
  keyFile?: string;
  certFile?: string;
  caFile?: string;
  /** etcd basic auth. */
  username?: string;
  password?: string;
  /** Lease TTL in seconds (default 86400, flannel's subnetTTL). */
  leaseTtlSeconds?: number;
  /** Renew this long before expiry (default 60 min, --subnet-lease-renew-margin). */
  renewMarginMs?: number;
  /** Retry a failed renewal after this long (default 60 s). */
  renewRetryMs?: number;
  /** Reconnect backoff (default 100 ms doubling to 5 s). */
  backoff?: BackoffOptions;
  /** Create races to lose before giving up (default 10). */
  raceRetries?: number;
  /** Deadline of each unary etcd call (default 10 s). */
  callTimeoutMs?: number;
  /** Random source in [0, 1) for the allocator (default Math.random). */
  random?: () => number;
  /** Clock in ms (default Date.now). */
  now?: () => number;
  /** Read the net-conf from this file instead of `<prefix>/config` (flannel-bpf's --etcd-config). */
  configFile?: string;
  logger?: Logger;
  hooks?: EtcdTestHooks;
}

/** Options from flanneld's flags (etcd-endpoints, etcd-prefix, TLS, auth, subnet-lease-renew-margin). */
export function etcdOptionsFromFlags(
  flags: Pick<AgentFlags, 'etcdEndpoints' | 'etcdPrefix' | 'etcdKeyfile' | 'etcdCertfile' | 'etcdCafile' | 'etcdUsername' | 'etcdPassword' | 'subnetLeaseRenewMargin'>,
  extra: Partial<EtcdSubnetManagerOptions> = {},
): EtcdSubnetManagerOptions {
  return {
    endpoints: flags.etcdEndpoints,
    prefix: flags.etcdPrefix,
    keyFile: flags.etcdKeyfile,
    certFile: flags.etcdCertfile,
    caFile: flags.etcdCafile,
    username: flags.etcdUsername,
    password: flags.etcdPassword,
    renewMarginMs: flags.subnetLeaseRenewMargin * 60_000,
    ...extra,
  };
}

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type Policy = FaultHandling['global'];
type WatchBackoff = FaultHandling['watchBackoff'];

/** A cockatiel-compatible policy that just runs the call: retries and reconnects are ours. */
function noopPolicy(): Policy {
  const never = new AbortController().signal;
  const noEvent = (): { dispose(): void } => ({ dispose: () => undefined });
  return {
    execute: <T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal) =>
      Promise.resolve().then(() => fn({ signal: signal ?? never })),
    onSuccess: noEvent,
    onFailure: noEvent,
  } as unknown as Policy;
}

function watchBackoff(opts: BackoffOptions, duration = opts.initialMs): WatchBackoff {
  return {
    duration,
    next: () => watchBackoff(opts, Math.min(duration * 2, opts.maxMs)),
  } as unknown as WatchBackoff;
}

/** The client options for flanneld's etcd flags. */
export function etcd3ClientOptions(o: EtcdSubnetManagerOptions, log: Logger): IOptions {
  const backoff = o.backoff ?? DEFAULT_BACKOFF;
  const callTimeoutMs = o.callTimeoutMs ?? 10_000;
  const opts: IOptions = {
    hosts: o.endpoints,
    dialTimeout: callTimeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    faultHandling: { host: () => noopPolicy() as NonNullable<Policy>, global: noopPolicy(), watchBackoff: watchBackoff(backoff) },
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': backoff.initialMs,
      'grpc.min_reconnect_backoff_ms': backoff.initialMs,
      'grpc.max_reconnect_backoff_ms': backoff.maxMs,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    },
  };
  const key = o.keyFile ?? '';
  const cert = o.certFile ?? '';
  const ca = o.caFile ?? '';
  if (key !== '' && cert !== '') {
    opts.credentials = {
      rootCertificate: ca !== '' ? fs.readFileSync(ca) : (undefined as unknown as Buffer),
      privateKey: fs.readFileSync(key),
      certChain: fs.readFileSync(cert),
    };
  } else if (ca !== '') {
    opts.credentials = { rootCertificate: fs.readFileSync(ca) };
  } else if (!o.endpoints.some((e) => e.startsWith('https://'))) {
    log.warn('no certificate provided: connecting to etcd with http. This is insecure');
  }
  if ((o.username ?? '') !== '') opts.auth = { username: o.username ?? '', password: o.password ?? '' };
  return opts;
}

/** One key under <prefix>/subnets/. */
interface SubnetRecord {
  /** Relative key (`10.244.1.0-24`). */
  key: string;
  path: string;
  value: string;
  /** etcd lease id; "0" = a reservation (no TTL). */
  leaseId: string;
  /** The key's subnet when the key parses (even if the value does not). */
  subnet: Cidr | null;
  ipv6: boolean;
  /** The value parsed (parseEtcdLease), on first use: see parsed(). */
  parse?: LeaseParse;
}

/** A record's value parsed, once. */
function parsed(r: SubnetRecord): LeaseParse {
  return (r.parse ??= parseEtcdLease(r.path, r.value));
}

/** A listing of the subnet keys tryAcquire made, kept for the watch's first snapshot. */
interface Listing {
  revision: number;
  records: SubnetRecord[];
  /** ms since the epoch (the manager's clock). */
  at: number;
}

/** The watch takes over acquireLease's listing when it starts within this long (else it lists again). */
export const LISTING_REUSE_MS = 30_000;

interface OwnState {
  lease: Lease;
  path: string;
  value: string;
  attrs: OwnLeaseAttrs;
  reservation: boolean;
  /** ms since the epoch; null for a reservation. */
  expiration: number | null;
}

type WatchEnd =
  | { kind: 'aborted' }
  | { kind: 'disconnected'; err: unknown }
  | { kind: 'canceled'; err: unknown };

function bufToString(b: Buffer | Uint8Array | string | undefined | null): string {
  if (b === undefined || b === null) return '';
  return typeof b === 'string' ? b : Buffer.from(b).toString('utf8');
}

/** Range end for a prefix (etcd's GetPrefixRangeEnd). */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] ?? 0) < 0xff) {
      end[i] = (end[i] ?? 0) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export class EtcdSubnetManager implements SubnetManager {
  readonly kind = 'etcd' as const;
  readonly prefix: string;
  readonly client: Etcd3;
  private readonly log: Logger;
  private readonly tracker: StateTracker;
  private readonly ownListeners: OwnLeaseListeners;
  private readonly ttlSeconds: number;
  private readonly renewMarginMs: number;
  private readonly renewRetryMs: number;
  private readonly backoffOpts: BackoffOptions;
  private readonly raceRetries: number;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly hooks: EtcdTestHooks;
  private readonly closing = new AbortController();
  private own: OwnState | null = null;
  private lastRequest: AcquireRequest | null = null;
  private readonly configFile: string;
  private renewTimer: NodeJS.Timeout | null = null;
  private completed = false;
  private ownLoop: Promise<void> | null = null;
  private reacquiring: Promise<void> | null = null;
  private closed = false;
  private readonly watchers = new Set<Watcher>();
  private listing: Listing | null = null;
  private watchStarted = false;

  constructor(opts: EtcdSubnetManagerOptions) {
    if (opts.endpoints.length === 0) {
      throw new SubnetError('no etcd endpoints given', 'set --etcd-endpoints (e.g. http://127.0.0.1:2379)');
    }
    this.prefix = opts.prefix ?? DEFAULT_ETCD_PREFIX;
    this.log = (opts.logger ?? createLogger()).child({ component: 'subnet-etcd' });
    this.tracker = new StateTracker(this.log, 'etcd');
    this.ownListeners = new OwnLeaseListeners(this.log);
    this.ttlSeconds = opts.leaseTtlSeconds ?? ETCD_LEASE_TTL_SECONDS;
    this.renewMarginMs = opts.renewMarginMs ?? 60 * 60_000;
    this.renewRetryMs = opts.renewRetryMs ?? ETCD_RENEW_RETRY_MS;
    this.backoffOpts = opts.backoff ?? DEFAULT_BACKOFF;
    this.raceRetries = opts.raceRetries ?? ETCD_RACE_RETRIES;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
    this.hooks = opts.hooks ?? {};
    this.configFile = opts.configFile ?? '';
    if (!(this.ttlSeconds >= 1)) throw new RangeError(`lease TTL ${this.ttlSeconds} s is below 1 s`);
    if (!(this.renewMarginMs > 0 && this.renewMarginMs < this.ttlSeconds * 1000)) {
      throw new SubnetError(`subnet lease renew margin ${this.renewMarginMs / 60_000} min is not below the lease TTL (${this.ttlSeconds / 60} min)`,
        'set --subnet-lease-renew-margin between 1 and 1439 minutes');
    }
    this.client = new Etcd3(etcd3ClientOptions(opts, this.log));
  }

  get state(): StoreState {
    return this.tracker.state;
  }

  onStateChange(cb: (s: StoreState, detail?: string) => void): () => void {
    return this.tracker.on(cb);
  }

  onOwnLeaseChange(cb: (lease: Lease, previous: Lease) => void): () => void {
    return this.ownListeners.on(cb);
  }

  /** Our current lease (null before acquireLease). */
  ownLease(): Lease | null {
    return this.own ? { ...this.own.lease } : null;
  }

  /* ------------------------------------------------------------ store calls */

  /** Run one etcd call: success → connected; a transport failure → disconnected. */
  private async call<T>(what: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    throwIfAborted(signal, what);
    try {
      const v = await abortable(fn(), signal, what);
      this.tracker.set('connected');
      return v;
    } catch (err) {
      if (!isAbort(err, signal) && ((err instanceof Error && isRecoverableError(err)) || /unavailable|deadline|connect|closed/i.test(errorMessage(err)))) {
        this.tracker.set('disconnected', `${what}: ${errorMessage(err)}`);
      }
      throw err;
    }
  }

  async getNetworkConfig(signal?: AbortSignal): Promise<string> {
    if (this.configFile !== '') return fs.promises.readFile(this.configFile, 'utf8');
    const key = etcdConfigPath(this.prefix);
    const res = await this.call('get config', () => this.client.kv.range({ key: Buffer.from(key) }), signal);
    const kv = res.kvs[0];
    if (!kv) {
      throw new SubnetError(`flannel config not found in etcd store at ${key}. Did you create your config using etcdv3 API?`,
        `write the net-conf JSON with the v3 API, e.g. ETCDCTL_API=3 etcdctl put ${key} '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}'`,
        { retryable: true });
    }
    return bufToString(kv.value);
  }

  async nodeHints(): Promise<NodeHints> {
    return { publicIp: null, vtepMac: null };
  }

  private subnetsPrefix(): string {
    return `${etcdSubnetsPath(this.prefix)}/`;
  }

  private async list(signal?: AbortSignal): Promise<{ revision: number; records: SubnetRecord[] }> {
    const key = Buffer.from(this.subnetsPrefix());
    const res = await this.call('list subnets', () => this.client.kv.range({ key, range_end: prefixEnd(key) }), signal);
    return { revision: Number(res.header.revision), records: res.kvs.map((kv) => this.record(kv)) };
  }

  private record(kv: IKeyValue): SubnetRecord {
    const path = bufToString(kv.key);
    const value = bufToString(kv.value);
    const k = parseEtcdSubnetKey(path);
    return {
      key: typeof k === 'string' ? path.slice(path.lastIndexOf('/') + 1) : k.key,
      path,
      value,
      leaseId: String(kv.lease ?? '0'),
      subnet: typeof k === 'string' ? null : k.subnet,
      ipv6: typeof k !== 'string' && k.ipv6 !== undefined,
    };
  }

  /** Create the key with a fresh lease if absent. Returns the expiration, or null when the key exists. */
  private async create(path: string, value: string, signal?: AbortSignal): Promise<{ expiration: number } | null> {
    const grant = await this.call('grant lease', () => this.client.leaseClient.leaseGrant({ TTL: this.ttlSeconds }), signal);
    const key = Buffer.from(path);
    let res;
    try {
      res = await this.call('create subnet', () => this.client.kv.txn({
        compare: [{ key, target: CompareTarget.Version, result: CompareResult.Equal, version: 0 }],
        success: [{ request_put: { key, value: Buffer.from(value), lease: grant.ID } }],
        failure: [],
      }), signal);
    } catch (err) {
      this.revoke(grant.ID);
      throw err;
    }
    if (!res.succeeded) {
      this.revoke(grant.ID);
      return null;
    }
    return { expiration: this.now() + Number(grant.TTL) * 1000 };
  }

  /**
   * Put our value on an existing key: with a fresh lease, or without one for
   * a reservation. With `ifValue`, only when the key still holds that value
   * (our renewal); returns null when it does not.
   */
  private async update(path: string, value: string, reservation: boolean, signal?: AbortSignal, ifValue?: string):
    Promise<{ expiration: number | null } | null> {
    let leaseId: string | number = 0;
    let ttl = 0;
    if (!reservation) {
      const grant = await this.call('grant lease', () => this.client.leaseClient.leaseGrant({ TTL: this.ttlSeconds }), signal);
      leaseId = grant.ID;
      ttl = Number(grant.TTL);
    }
    const key = Buffer.from(path);
    const put = { key, value: Buffer.from(value), lease: leaseId };
    try {
      if (ifValue === undefined) {
        await this.call('update subnet', () => this.client.kv.put(put), signal);
      } else {
        const res = await this.call('renew subnet', () => this.client.kv.txn({
          compare: [{ key, target: CompareTarget.Value, result: CompareResult.Equal, value: Buffer.from(ifValue) }],
          success: [{ request_put: put }],
          failure: [],
        }), signal);
        if (!res.succeeded) {
          if (!reservation) this.revoke(leaseId);
          return null;
        }
      }
    } catch (err) {
      if (!reservation) this.revoke(leaseId);
      throw err;
    }
    return { expiration: reservation ? null : this.now() + ttl * 1000 };
  }

  private revoke(id: string | number): void {
    this.client.leaseClient.leaseRevoke({ ID: id }).catch((err: unknown) => {
      this.log.debug('revoking an unused etcd lease failed', { leaseId: String(id), err: errorMessage(err) });
    });
  }

  /* ------------------------------------------------------------ acquisition */

  async acquireLease(req: AcquireRequest, signal?: AbortSignal): Promise<Lease> {
    const config = checkNetworkConfig(req.config, this.configFile !== '' ? this.configFile : `etcd key ${etcdConfigPath(this.prefix)}`);
    const sig = anySignal(signal, this.closing.signal);
    const backoff = new Backoff(this.backoffOpts);
    const prev = req.previousSubnet ?? null;
    for (;;) {
      throwIfAborted(sig, 'acquire lease');
      try {
        for (let attempt = 1; attempt <= this.raceRetries; attempt++) {
          const own = await this.tryAcquire(config, req.attrs, prev, attempt, sig);
          if (own) {
            this.own = own;
            this.lastRequest = req;
            if (this.completed) this.scheduleRenewal();
            return { ...own.lease };
          }
        }
        throw new SubnetError(`failed to acquire a subnet lease: lost the create race ${this.raceRetries} times in a row`,
          'many nodes are starting at once or the network is nearly full; restart the agent (or enlarge Network / SubnetMin..SubnetMax)');
      } catch (err) {
        if (err instanceof SubnetError || isAbort(err, sig)) throw err;
        const delay = backoff.next();
        this.log.warn('acquiring the subnet lease failed; retrying', { err: errorMessage(err), retryInMs: delay });
        await sleep(delay, sig);
      }
    }
  }

  private compatible(config: EtcdNetConf, sn: Cidr): boolean {
    return sn.addr >= config.subnetMin && sn.addr <= config.subnetMax && sn.prefix === config.subnetLen;
  }

  private async tryAcquire(config: EtcdNetConf, want: OwnLeaseAttrs, prev: Cidr | null, attempt: number, signal: AbortSignal): Promise<OwnState | null> {
    const ownIp = want.publicIp;
    const listed = await this.list(signal);
    const revision = listed.revision;
    let records = listed.records;

    /*
     * 1. a lease that carries our public IP. Only values that contain our IP's
     * text (or a JSON escape) can: the others are not parsed here.
     */
    const ipText = formatIPv4(ownIp);
    const mine = records.find((r) => {
      if (!r.value.includes(ipText) && !r.value.includes('\\')) return false;
      const p = parsed(r);
      return p.kind === 'lease' && p.lease.publicIp === ownIp;
    });
    const mineParse = mine ? parsed(mine) : null;
    if (mine && mine.subnet && mineParse?.kind === 'lease') {
      if (this.compatible(config, mine.subnet) && !mine.ipv6) {
        const reservation = mine.leaseId === '0';
        const attrs = this.keepStoredMac(want, mineParse.lease);
        const value = etcdLeaseValue(attrs);
        this.log.info(`Found lease (ip: ${formatCidr(mine.subnet)}) for current IP (${formatIPv4(ownIp)}), reusing`,
          { lease: mine.key, reservation });
        const res = await this.update(mine.path, value, reservation, signal);
        this.keepListing(revision, records);
        return this.ownState(mine.subnet, mine.path, value, attrs, reservation, res?.expiration ?? null);
      }
      this.log.info(`Found lease (${formatCidr(mine.subnet)}) for current IP (${formatIPv4(ownIp)}) but not compatible with current config, deleting`,
        { lease: mine.key });
      const key = Buffer.from(mine.path);
      await this.call('delete subnet', () => this.client.kv.deleteRange({ key }), signal);
      records = records.filter((r) => r !== mine);
    }

    /* 2. the previous subnet (subnet.env) */
    let sn: Cidr | null = null;
    if (prev) {
      const holder = records.find((r) => r.subnet && cidrOverlaps(r.subnet, prev));
      if (holder) {
        this.log.warn(`Found previously leased subnet (${formatCidr(prev)}) that is already in use by another lease, ignoring`, { lease: holder.key });
      } else if (!this.compatible(config, prev)) {
        this.log.error(`Found previously leased subnet (${formatCidr(prev)}) that is not compatible with the Etcd network config, ignoring`);
      } else {
        this.log.info(`Found previously leased subnet (${formatCidr(prev)}), reusing`);
        sn = prev;
      }
    }

    /* 3. a random free one */
    if (!sn) sn = this.allocate(config, records);

    await this.hooks.beforeCreate?.(sn, attempt);
    const path = etcdLeasePath(this.prefix, sn);
    const attrs = want;
    const value = etcdLeaseValue(attrs);
    const res = await this.create(path, value, signal);
    if (!res) {
      this.log.warn(`lost the race for subnet ${formatCidr(sn)} (another node created it first); trying again`, { attempt });
      return null;
    }
    this.log.info(`Allocated lease (ip: ${formatCidr(sn)}) to current node (${formatIPv4(ownIp)})`, { attempt });
    this.keepListing(revision, records);
    return this.ownState(sn, path, value, attrs, false, res.expiration);
  }

  /**
   * Keep the listing of a successful acquisition for the watch's first
   * snapshot (the watch then starts at its revision + 1 and replays what
   * happened since, our own writes included, which it skips): a start lists
   * the subnets once, not twice. Only before the watch has started.
   */
  private keepListing(revision: number, records: SubnetRecord[]): void {
    this.listing = this.watchStarted ? null : { revision, records, at: this.now() };
  }

  /** The kept listing when it is recent enough (taken once). */
  private takeListing(): Listing | null {
    const l = this.listing;
    this.listing = null;
    return l && this.now() - l.at <= LISTING_REUSE_MS ? l : null;
  }

  private ownState(sn: Cidr, path: string, value: string, attrs: OwnLeaseAttrs, reservation: boolean, expiration: number | null): OwnState {
    const parsed = parseEtcdLease(path, value, expiration === null ? {} : { expiration });
    if (parsed.kind !== 'lease') throw new Error(`internal: our own lease value does not parse: ${value}`);
    return { lease: { ...parsed.lease, subnet: sn }, path, value, attrs, reservation, expiration };
  }

  /** vxlan: keep the VtepMAC our previous lease published (peers' neighbour entries stay valid). */
  private keepStoredMac(attrs: OwnLeaseAttrs, stored: Lease): OwnLeaseAttrs {
    if (attrs.backendType !== 'vxlan' || stored.backendType !== 'vxlan' || !stored.vtepMac || stored.vtepMac === attrs.vtepMac) return attrs;
    this.log.info('keeping the VtepMAC of our existing lease', { vtepMac: stored.vtepMac, offered: attrs.vtepMac });
    return { ...attrs, vtepMac: stored.vtepMac };
  }

  /** flannel's allocateSubnet: a uniformly random one of the first 100 free candidates. */
  private allocate(config: EtcdNetConf, records: SubnetRecord[]): Cidr {
    this.log.info(`Picking subnet in range ${formatIPv4(config.subnetMin)} ... ${formatIPv4(config.subnetMax)}`);
    const sameLen = new Set<number>();
    const others: Cidr[] = [];
    for (const r of records) {
      if (!r.subnet) continue;
      if (r.subnet.prefix === config.subnetLen) sameLen.add(r.subnet.addr);
      else others.push(r.subnet);
    }
    const step = 2 ** (32 - config.subnetLen);
    const bag: number[] = [];
    for (let a = config.subnetMin; a <= config.subnetMax && bag.length < ALLOCATION_CANDIDATES; a += step) {
      if (sameLen.has(a)) continue;
      const c = { addr: a, prefix: config.subnetLen };
      if (others.some((o) => cidrOverlaps(o, c))) continue;
      bag.push(a);
    }
    if (bag.length === 0) {
      throw new SubnetError(`out of subnets: every /${config.subnetLen} between ${formatIPv4(config.subnetMin)} and ${formatIPv4(config.subnetMax)} is leased or reserved`,
        'delete stale leases under the subnets key, or enlarge Network / SubnetMin..SubnetMax in the network config');
    }
    const i = Math.min(bag.length - 1, Math.floor(this.random() * bag.length));
    return { addr: bag[i] as number, prefix: config.subnetLen };
  }

  /* ------------------------------------------------------------ our lease: renewal, loss */

  async completeLease(signal?: AbortSignal): Promise<void> {
    if (!this.own) throw new Error('completeLease before acquireLease');
    if (this.completed) return;
    this.completed = true;
    this.scheduleRenewal();
    const sig = anySignal(signal, this.closing.signal);
    this.ownLoop = this.monitorOwnKey(sig).catch((err: unknown) => {
      if (!isAbort(err, sig)) this.log.error('own lease monitor stopped', { err: errorMessage(err) });
    });
  }

  private scheduleRenewal(delayMs?: number): void {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewTimer = null;
    const own = this.own;
    if (!own || this.closed || own.expiration === null) return;
    const delay = delayMs ?? Math.max(0, own.expiration - this.renewMarginMs - this.now());
    this.log.debug('waiting to renew the lease', { lease: own.lease.key, inMs: delay });
    this.renewTimer = setTimeout(() => {
      this.renewTimer = null;
      void this.renew();
    }, delay);
  }

  private async renew(): Promise<void> {
    const own = this.own;
    if (!own || this.closed) return;
    try {
      const res = await this.update(own.path, own.value, own.reservation, this.closing.signal, own.value);
      if (!res) {
        /* the key is gone or holds another node's value: the monitor re-acquires */
        this.log.warn('lease renewal found our key gone or changed', { lease: own.lease.key });
        void this.reacquire('renewal found the key gone or changed');
        return;
      }
      own.expiration = res.expiration;
      if (res.expiration !== null) own.lease.expiration = res.expiration;
      this.log.info('Lease renewed', { lease: own.lease.key, expiration: res.expiration === null ? null : new Date(res.expiration).toISOString() });
      this.scheduleRenewal();
    } catch (err) {
      if (this.closed) return;
      this.log.error(`Error renewing lease (trying again in ${this.renewRetryMs / 1000} s)`, { lease: own.lease.key, err: errorMessage(err) });
      this.scheduleRenewal(this.renewRetryMs);
    }
  }

  /** Watch our own key; re-acquire when it disappears or another node's value replaces ours. */
  private async monitorOwnKey(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(this.backoffOpts);
    while (!signal.aborted) {
      if (this.reacquiring) {
        await this.reacquiring;
        continue;
      }
      const own = this.own;
      if (!own) return;
      try {
        const res = await this.call('get own lease', () => this.client.kv.range({ key: Buffer.from(own.path) }), signal);
        if (own !== this.own) continue;
        const kv = res.kvs[0];
        if (!kv) {
          await this.reacquire('our lease key disappeared (deleted, or expired without renewal)');
          /* still without a lease (e.g. out of subnets): do not spin */
          if (this.own === own) await sleep(backoff.next(), signal);
          else backoff.reset();
          continue;
        }
        const value = bufToString(kv.value);
        if (value !== own.value) {
          const p = parseEtcdLease(own.path, value);
          if (p.kind === 'lease' && p.lease.publicIp === own.attrs.publicIp) {
            /* same public IP: an edit of our record (or a second agent for this node: the backoff keeps that from spinning) */
            this.log.warn('our lease key was rewritten by someone else; restoring our attributes', { lease: own.lease.key });
            const r = await this.update(own.path, own.value, own.reservation, signal);
            if (r) own.expiration = r.expiration;
            this.scheduleRenewal();
            await sleep(backoff.next(), signal);
          } else {
            await this.reacquire('our subnet key now holds another node\'s lease');
            if (this.own === own) await sleep(backoff.next(), signal);
            else backoff.reset();
          }
          continue;
        }
        backoff.reset();
        const end = await this.watchOnce({ key: own.path }, Number(res.header.revision) + 1, () => 'stop', signal);
        if (end.kind === 'aborted') return;
        if (end.kind === 'disconnected' || end.kind === 'canceled') await sleep(backoff.next(), signal);
      } catch (err) {
        if (isAbort(err, signal)) return;
        const delay = backoff.next();
        this.log.warn('watching our own lease failed; retrying', { err: errorMessage(err), retryInMs: delay });
        await sleep(delay, signal);
      }
    }
  }

  /** Re-take our lease, preferring the same subnet. Concurrent callers share one attempt. */
  private reacquire(reason: string): Promise<void> {
    if (this.reacquiring) return this.reacquiring;
    const prev = this.own;
    const req = this.lastRequest;
    if (!prev || !req) return Promise.resolve();
    this.reacquiring = (async () => {
      this.log.warn('Lease has been revoked; re-acquiring it (flanneld would exit here)', { lease: prev.lease.key, reason });
      if (this.renewTimer) clearTimeout(this.renewTimer);
      this.renewTimer = null;
      try {
        const lease = await this.acquireLease({ ...req, previousSubnet: prev.lease.subnet }, this.closing.signal);
        const same = cidrEquals(lease.subnet, prev.lease.subnet);
        this.log.log(same ? 'info' : 'warn', same ? 'lease re-acquired with the same subnet' : 'lease re-acquired with a DIFFERENT subnet',
          { lease: lease.key, previous: prev.lease.key });
        this.scheduleRenewal();
        this.ownListeners.emit(lease, prev.lease);
      } catch (err) {
        if (!this.closed) this.log.error('re-acquiring our lease failed', { err: errorMessage(err) });
      } finally {
        this.reacquiring = null;
      }
    })();
    return this.reacquiring;
  }

  /* ------------------------------------------------------------ peer watch */

  /**
   * Wait before retrying the lease listing: at most LEASE_RETRY_MAX_MS, and
   * cut short as soon as any other etcd call or watch finds the store back, so
   * that changes made during an outage reach the maps right after it.
   */
  private async retryWait(ms: number, sig: AbortSignal): Promise<void> {
    let off: (() => void) | null = null;
    const back = new Promise<void>((resolve) => { off = this.tracker.on((s) => { if (s === 'connected') resolve(); }); });
    try {
      await Promise.race([sleep(ms, sig), back]);
    } finally {
      (off as (() => void) | null)?.();
    }
  }

  async watchLeases(onEvent: (e: LeaseEvent) => void, signal: AbortSignal): Promise<void> {
    const sig = anySignal(signal, this.closing.signal);
    const backoff = new Backoff({ ...this.backoffOpts, maxMs: Math.min(this.backoffOpts.maxMs, LEASE_RETRY_MAX_MS) });
    const known = new Map<string, { value: string; kind: 'lease' | 'rejected' }>();
    const emit = (e: LeaseEvent): void => deliver(this.log, onEvent, e);
    this.watchStarted = true;
    let reuse = this.takeListing();

    while (!sig.aborted) {
      let revision: number;
      try {
        const listed = reuse ?? await this.list(sig);
        reuse = null;
        revision = listed.revision;
        known.clear();
        const leases: Lease[] = [];
        const rejected: Rejection[] = [];
        const ownKey = this.own?.lease.key;
        for (const r of listed.records) {
          if (r.key === ownKey) continue;
          const p = parsed(r);
          if (p.kind === 'lease') {
            leases.push(p.lease);
            known.set(r.key, { value: r.value, kind: 'lease' });
          } else if (p.kind === 'rejected') {
            rejected.push(p.rejection);
            known.set(r.key, { value: r.value, kind: 'rejected' });
            this.logRejection(p.rejection);
          }
        }
        this.log.info('lease snapshot', { revision, leases: leases.length, rejected: rejected.length });
        emit({ type: 'snapshot', leases, rejected });
      } catch (err) {
        if (isAbort(err, sig)) break;
        const delay = backoff.next();
        this.log.warn('listing subnet leases failed; retrying', { err: errorMessage(err), retryInMs: delay });
        try {
          await this.retryWait(delay, sig);
        } catch {
          break;
        }
        continue;
      }

      try {
        await this.hooks.beforeWatch?.(revision);
      } catch (err) {
        this.log.warn('beforeWatch hook failed', { err: errorMessage(err) });
      }
      const end = await this.watchOnce({ prefix: this.subnetsPrefix() }, revision + 1, (res) => {
        for (const ev of res.events) this.handlePeerEvent(ev.type, ev.kv, known, emit);
        return 'continue';
      }, sig);
      if (end.kind === 'aborted' || end.kind === 'stopped') break;
      if (end.kind === 'canceled') {
        const compacted = await this.isCompacted(revision + 1);
        this.log.warn(compacted
          ? `etcd watch from revision ${revision + 1} fell behind compaction; re-listing`
          : 'etcd watch was canceled by the server; re-listing', { err: errorMessage(end.err) });
        backoff.reset();
      } else {
        this.log.warn('etcd watch disconnected; re-listing after reconnect', { err: errorMessage(end.err) });
        try {
          await this.retryWait(backoff.next(), sig);
        } catch {
          break;
        }
      }
    }
  }

  private logRejection(r: Rejection): void {
    this.log.warn('lease rejected', { lease: r.leaseKey, reason: r.reason, detail: r.message });
  }

  private handlePeerEvent(type: string, kv: IKeyValue, known: Map<string, { value: string; kind: 'lease' | 'rejected' }>, emit: (e: LeaseEvent) => void): void {
    const path = bufToString(kv.key);
    const k = parseEtcdSubnetKey(path);
    const key = typeof k === 'string' ? path.slice(path.lastIndexOf('/') + 1) : k.key;
    if (key === this.own?.lease.key) return;
    const prev = known.get(key);
    if (type === 'Delete') {
      if (prev) {
        known.delete(key);
        emit({ type: 'removed', key });
      }
      return;
    }
    const value = bufToString(kv.value);
    if (prev && prev.value === value) return; /* a renewal: same record, new etcd lease */
    const p = parseEtcdLease(path, value);
    if (p.kind === 'lease') {
      known.set(key, { value, kind: 'lease' });
      emit({ type: prev?.kind === 'lease' ? 'updated' : 'added', lease: p.lease });
    } else if (p.kind === 'rejected') {
      if (prev?.kind === 'lease') emit({ type: 'removed', key });
      known.set(key, { value, kind: 'rejected' });
      this.logRejection(p.rejection);
      emit({ type: 'rejected', rejection: p.rejection });
    }
  }

  private async isCompacted(revision: number): Promise<boolean> {
    try {
      await this.client.kv.range({ key: Buffer.from(this.subnetsPrefix()), revision, limit: 1 });
      return false;
    } catch (err) {
      return /compacted/i.test(errorMessage(err));
    }
  }

  /**
   * One etcd watch from `startRevision` until it fails, `onData` says stop,
   * or `signal` aborts.
   */
  private watchOnce(
    range: { prefix: string } | { key: string },
    startRevision: number,
    onData: (res: IWatchResponse) => 'continue' | 'stop',
    signal: AbortSignal,
  ): Promise<WatchEnd | { kind: 'stopped' }> {
    return new Promise((resolve) => {
      if (signal.aborted) {
        resolve({ kind: 'aborted' });
        return;
      }
      const builder = this.client.watch();
      if ('prefix' in range) builder.prefix(range.prefix);
      else builder.key(range.key);
      const watcher = builder.startRevision(String(startRevision)).watcher();
      this.watchers.add(watcher);
      let done = false;
      const finish = (end: WatchEnd | { kind: 'stopped' }, cancel: boolean): void => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        this.watchers.delete(watcher);
        if (cancel) watcher.cancel().catch(() => undefined);
        resolve(end);
      };
      const onAbort = (): void => finish({ kind: 'aborted' }, true);
      signal.addEventListener('abort', onAbort, { once: true });
      watcher.on('connected', () => this.tracker.set('connected'));
      watcher.on('data', (res) => {
        if (done) return;
        try {
          if (onData(res) === 'stop') finish({ kind: 'stopped' }, true);
        } catch (err) {
          this.log.error('handling an etcd watch response failed', { err: errorMessage(err) });
        }
      });
      watcher.on('disconnected', (err) => {
        this.tracker.set('disconnected', `watch: ${errorMessage(err)}`);
        finish({ kind: 'disconnected', err }, true);
      });
      /* a canceled watcher is already detached by etcd3: do not cancel it again */
      watcher.on('error', (err) => finish({ kind: 'canceled', err }, false));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listing = null;
    this.closing.abort();
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewTimer = null;
    await Promise.allSettled([...this.watchers].map((w) => Promise.race([w.cancel(), sleep(500)])));
    await this.ownLoop?.catch(() => undefined);
    this.client.close();
  }
}
