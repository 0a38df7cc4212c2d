/**
 * The one interface both subnet managers (etcd, kube) implement: the network
 * config, our own lease, and every other node's lease as a stream of events.
 */
import type { Cidr } from '../../maps/addr.js';
import type { NetConf } from '../config/net-conf.js';
import type { OwnLeaseAttrs } from '../lease/backend-data.js';
import type { Lease, Rejection } from '../lease/types.js';
import { FlannelBpfError } from '../../loader/errors.js';

/**
 * Peer lease events. Our own lease is never emitted.
 *
 * - `snapshot`: the full set of peer records. The first event of every
 *   watchLeases, and again after every re-list (etcd: compaction, watch
 *   error, reconnect; kube: informer re-list after 410 Gone). A consumer
 *   replaces its whole view with it.
 * - `added` / `updated`: a valid lease appeared / changed (keyed by lease.key).
 * - `removed`: the record under `key` is gone (or no longer a flannel lease).
 * - `rejected`: the record under `rejection.leaseKey` does not parse (named
 *   reason). It replaces whatever was known under that key: when that was a
 *   valid lease, a `removed` for the key comes first.
 */
export type LeaseEvent =
  | { type: 'snapshot'; leases: Lease[]; rejected: Rejection[] }
  | { type: 'added' | 'updated'; lease: Lease }
  | { type: 'removed'; key: string }
  | { type: 'rejected'; rejection: Rejection };

/** Connection to the store: `connecting` until the first successful call. */
export type StoreState = 'connecting' | 'connected' | 'disconnected';

export interface AcquireRequest {
  /**
   * What we publish. For vxlan, `vtepMac` is the fallback: a VtepMAC already
   * published for this node wins (kube: our node's backend-data annotation;
   * etcd: the lease found for our public IP), so the device keeps its MAC
   * across restarts. The returned lease carries what was published (kube: and
   * the public IP peers use, i.e. public-ip-overwrite when set).
   */
  attrs: OwnLeaseAttrs;
  /** The parsed net-conf (etcd mode applies CheckNetworkConfig to it). */
  config: NetConf;
  /** etcd: the subnet of the previous subnet.env (FLANNEL_SUBNET's network), tried after our public IP's lease. */
  previousSubnet?: Cidr | null;
}

/** What the store remembers about this node, read before the uplink is chosen. */
export interface NodeHints {
  /** kube: the `node-public-ip` annotation (flannel uses it as --public-ip). */
  publicIp: number | null;
  /** kube: the VtepMAC in our node's backend-data annotation (kept across restarts). */
  vtepMac: string | null;
}

export interface SubnetManager {
  readonly kind: 'etcd' | 'kube';
  /** The current store state. */
  readonly state: StoreState;
  /** The raw net-conf JSON: etcd `<prefix>/config`, kube the file at --net-config-path. */
  getNetworkConfig(signal?: AbortSignal): Promise<string>;
  /** What the store already holds for this node (etcd: nothing). */
  nodeHints(signal?: AbortSignal): Promise<NodeHints>;
  /** Take (or re-take) our lease and publish our attributes in it. */
  acquireLease(req: AcquireRequest, signal?: AbortSignal): Promise<Lease>;
  /**
   * After the node is set up: etcd starts the renewal loop and the watch on
   * our own key (re-acquired when it disappears); kube sets
   * NetworkUnavailable=False (unless disabled). Returns once started / patched.
   */
  completeLease(signal?: AbortSignal): Promise<void>;
  /** Stream peer lease events (snapshot first) until `signal` aborts; then resolves. */
  watchLeases(onEvent: (e: LeaseEvent) => void, signal: AbortSignal): Promise<void>;
  /** Store state changes (only transitions). Returns an unsubscribe function. */
  onStateChange(cb: (s: StoreState, detail?: string) => void): () => void;
  /** Our lease was re-acquired or changed (etcd: key lost and re-taken, maybe another subnet). */
  onOwnLeaseChange(cb: (lease: Lease, previous: Lease) => void): () => void;
  /** Stop every loop and close the client. Idempotent. */
  close(): Promise<void>;
}

/**
 * A subnet manager failure an operator can act on (message + remedy).
 * `retryable`: flanneld keeps retrying this one (e.g. the etcd config key
 * not written yet: it polls every second) instead of exiting.
 */
export class SubnetError extends FlannelBpfError {
  readonly retryable: boolean;
  constructor(message: string, remedy: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, remedy, options);
    this.retryable = options?.retryable ?? false;
  }
}

/** Exponential backoff (flannel: 100 ms doubling up to 5 s). */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 5_000 };
