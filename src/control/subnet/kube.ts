/**
 * The Kubernetes subnet manager (flannel-compat.md §4), with
 * @kubernetes/client-node.
 *
 * - Our node: --node-name / NODE_NAME, else GET pod POD_NAMESPACE/POD_NAME →
 *   spec.nodeName. Our subnet: spec.podCIDRs' first IPv4 entry, else
 *   spec.podCIDR; it must lie inside net-conf's Network.
 * - Our lease is published as flanneld does: backend-type, backend-data
 *   (compact `{"VNI":n,"VtepMAC":"…"}`, host-gw `null`), public-ip (the
 *   value of public-ip-overwrite when set) and kube-subnet-manager "true",
 *   in ONE strategic-merge PATCH on the `nodes/status` subresource, sent only
 *   when something differs, retried every 3 s for up to 30 s.
 * - completeLease patches the NetworkUnavailable=False condition (reason
 *   FlannelIsUp) through nodes/status, unless disabled.
 * - Peers: an informer (list + watch) over all Nodes. Nodes without the
 *   kube-subnet-manager annotation are ignored; an update becomes an event
 *   only when the lease-relevant fields change; a delete is `removed`; every
 *   (re-)list, e.g. after 410 Gone, is a `snapshot`.
 * - The API calls made are exactly those of flannel's ClusterRole: get pods,
 *   get/list/watch nodes, patch nodes/status.
 *
 * Differences from flanneld: the node is read with a GET rather than from
 * the informer cache (same RBAC); the podCIDR-inside-Network check happens
 * before the patch, so a node with a wrong podCIDR is never annotated; a
 * VtepMAC already in our backend-data wins over the offered one (flanneld
 * reads it before creating its device; so does our agent, see
 * nodeHints); the NetworkUnavailable patch is retried like the
 * annotation patch.
 */
import fs from 'node:fs';
import {
  CoreV1Api, KubeConfig, PatchStrategy, makeInformer, setHeaderOptions,
  type Informer, type V1Node, type ObjectCache,
} from '@kubernetes/client-node';
import { cidrCovers, formatCidr, formatIPv4, parseIPv4, type Cidr } from '../../maps/addr.js';
import type { AgentFlags, NodeNameSource } from '../config/flags.js';
import { resolveNodeName } from '../config/flags.js';
import type { NetConf } from '../config/net-conf.js';
import { createLogger, type Logger } from '../log.js';
import type { OwnLeaseAttrs } from '../lease/backend-data.js';
import {
  annotationNames, annotationPatch, nodeLeaseChanged, nodePodSubnet, nodeToLease, storedNodePublicIp, storedVtepMac,
  type AnnotationNames, type NodeLike,
} from '../lease/kube.js';
import type { Lease, Rejection } from '../lease/types.js';
import {
  DEFAULT_BACKOFF, SubnetError,
  type AcquireRequest, type BackoffOptions, type LeaseEvent, type NodeHints, type StoreState, type SubnetManager,
} from './types.js';
import { Backoff, OwnLeaseListeners, StateTracker, abortable, anySignal, deliver, errorMessage, isAbort, sleep, throwIfAborted } from './util.js';

/** flannel retries the node patch every 3 s … */
export const KUBE_PATCH_RETRY_MS = 3_000;
/** … for up to 30 s. */
export const KUBE_PATCH_TIMEOUT_MS = 30_000;

export interface KubeSubnetManagerOptions {
  /** A ready client config (tests); otherwise built from kubeconfigFile / kubeApiUrl / in-cluster. */
  kubeConfig?: KubeConfig;
  kubeconfigFile?: string;
  kubeApiUrl?: string;
  /** How to learn our node name (flags.resolveNodeName). */
  node: NodeNameSource;
  /** --net-config-path */
  netConfigPath: string;
  /** --kube-annotation-prefix (default flannel.alpha.coreos.com). */
  annotationPrefix?: string;
  /** --set-node-network-unavailable (default true). */
  setNodeNetworkUnavailable?: boolean;
  patchRetryMs?: number;
  patchTimeoutMs?: number;
  /** Informer restart backoff after an error (default 100 ms doubling to 5 s). */
  backoff?: BackoffOptions;
  /** Clock in ms, for the condition timestamps (default Date.now). */
  now?: () => number;
  logger?: Logger;
}

/** Options from flanneld's flags and environment (NODE_NAME, POD_NAME, POD_NAMESPACE). */
export function kubeOptionsFromFlags(
  flags: Pick<AgentFlags, 'kubeApiUrl' | 'kubeconfigFile' | 'kubeAnnotationPrefix' | 'netConfigPath' | 'setNodeNetworkUnavailable' | 'nodeName'>,
  env: Readonly<Record<string, string | undefined>>,
  extra: Partial<KubeSubnetManagerOptions> = {},
): KubeSubnetManagerOptions {
  return {
    kubeconfigFile: flags.kubeconfigFile,
    kubeApiUrl: flags.kubeApiUrl,
    node: resolveNodeName(flags, env),
    netConfigPath: flags.netConfigPath,
    annotationPrefix: flags.kubeAnnotationPrefix,
    setNodeNetworkUnavailable: flags.setNodeNetworkUnavailable,
    ...extra,
  };
}

/**
 * flannel's clientcmd.BuildConfigFromFlags(apiUrl, kubeconfig): the
 * kubeconfig file (its server replaced by apiUrl when given), else apiUrl
 * alone (no credentials), else the in-cluster service account.
 */
export function buildKubeConfig(opts: { kubeconfigFile?: string; kubeApiUrl?: string }): KubeConfig {
  const kc = new KubeConfig();
  const file = opts.kubeconfigFile ?? '';
  const url = opts.kubeApiUrl ?? '';
  if (file !== '') {
    kc.loadFromFile(file);
    if (url !== '') {
      const current = kc.getCurrentCluster();
      kc.clusters = kc.clusters.map((c) => (c.name === current?.name ? { ...c, server: url, skipTLSVerify: c.skipTLSVerify || url.startsWith('http:') } : c));
    }
  } else if (url !== '') {
    /* plain http has no TLS to verify (client-node refuses http: unless this is set) */
    kc.loadFromClusterAndUser({ name: 'kube-api-url', server: url, skipTLSVerify: url.startsWith('http:') }, { name: 'kube-api-url' });
  } else {
    kc.loadFromCluster();
  }
  return kc;
}

/** HTTP status of a client-node error, if the server answered. */
function httpStatus(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

/** Keep only what the lease logic reads (the informer keeps the full objects anyway). */
function slim(n: NodeLike): NodeLike {
  return {
    metadata: { name: n.metadata.name, annotations: n.metadata.annotations ? { ...n.metadata.annotations } : null },
    spec: { podCIDR: n.spec?.podCIDR ?? null, podCIDRs: n.spec?.podCIDRs ? [...n.spec.podCIDRs] : null },
  };
}

/** RFC 3339 with seconds, as metav1.Time marshals. */
function metaTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const PODCIDR_REMEDY = 'give the node a pod CIDR: run kube-controller-manager with --allocate-node-cidrs=true --cluster-cidr=<net-conf Network> '
  + '(kubeadm init --pod-network-cidr=<Network>), or set the kubelet\'s --pod-cidr';

export class KubeSubnetManager implements SubnetManager {
  readonly kind = 'kube' as const;
  readonly kubeConfig: KubeConfig;
  readonly names: AnnotationNames;
  private readonly api: CoreV1Api;
  private readonly log: Logger;
  private readonly tracker: StateTracker;
  private readonly ownListeners: OwnLeaseListeners;
  private readonly opts: KubeSubnetManagerOptions;
  private readonly now: () => number;
  private readonly closing = new AbortController();
  private readonly informers = new Set<Informer<V1Node> & ObjectCache<V1Node>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private nodeNamePromise: Promise<string> | null = null;
  private netConfText: string | null = null;
  private own: Lease | null = null;
  private closed = false;

  constructor(opts: KubeSubnetManagerOptions) {
    this.opts = opts;
    this.log = (opts.logger ?? createLogger()).child({ component: 'subnet-kube' });
    this.tracker = new StateTracker(this.log, 'kubernetes API');
    this.ownListeners = new OwnLeaseListeners(this.log);
    this.names = annotationNames(opts.annotationPrefix);
    this.now = opts.now ?? Date.now;
    this.kubeConfig = opts.kubeConfig ?? buildKubeConfig(opts);
    this.api = this.kubeConfig.makeApiClient(CoreV1Api);
  }

  get state(): StoreState {
    return this.tracker.state;
  }

  onStateChange(cb: (s: StoreState, detail?: string) => void): () => void {
    return this.tracker.on(cb);
  }

  onOwnLeaseChange(cb: (lease: Lease, previous: Lease) => void): () => void {
    return this.ownListeners.on(cb); /* a node's podCIDR does not change: never called in kube mode */
  }

  /** One API call: any HTTP answer → connected; no answer → disconnected. */
  private async call<T>(what: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    throwIfAborted(signal, what);
    try {
      const v = await abortable(fn(), signal, what);
      this.tracker.set('connected');
      return v;
    } catch (err) {
      if (!isAbort(err, signal)) {
        if (httpStatus(err) === undefined) this.tracker.set('disconnected', `${what}: ${errorMessage(err)}`);
        else this.tracker.set('connected');
      }
      throw err;
    }
  }

  /** Our node's name (resolved once). */
  nodeName(signal?: AbortSignal): Promise<string> {
    if (!this.nodeNamePromise) {
      const src = this.opts.node;
      this.nodeNamePromise = src.kind === 'name' ? Promise.resolve(src.name) : this.nodeNameFromPod(src.namespace, src.pod, signal);
      this.nodeNamePromise.catch(() => { this.nodeNamePromise = null; });
    }
    return this.nodeNamePromise;
  }

  private async nodeNameFromPod(namespace: string, pod: string, signal?: AbortSignal): Promise<string> {
    let p;
    try {
      p = await this.call('get pod', () => this.api.readNamespacedPod({ name: pod, namespace }), signal);
    } catch (err) {
      throw new SubnetError(`error retrieving pod spec for '${namespace}/${pod}': ${errorMessage(err)}`,
        'set NODE_NAME (fieldRef spec.nodeName) in the DaemonSet, or allow "get" on pods for the agent\'s service account', { cause: err });
    }
    const name = p.spec?.nodeName ?? '';
    if (name === '') {
      throw new SubnetError(`node name not present in pod spec '${namespace}/${pod}'`, 'set NODE_NAME from fieldRef spec.nodeName in the DaemonSet');
    }
    this.log.info('node name from our pod', { pod: `${namespace}/${pod}`, node: name });
    return name;
  }

  private async getNode(name: string, signal?: AbortSignal): Promise<V1Node> {
    try {
      return await this.call('get node', () => this.api.readNode({ name }), signal);
    } catch (err) {
      if (httpStatus(err) === 404) {
        throw new SubnetError(`node "${name}" not found`, 'check --node-name / NODE_NAME: it must be this node\'s Kubernetes name', { cause: err });
      }
      throw err;
    }
  }

  async getNetworkConfig(): Promise<string> {
    if (this.netConfText !== null) return this.netConfText;
    try {
      this.netConfText = await fs.promises.readFile(this.opts.netConfigPath, 'utf8');
    } catch (err) {
      throw new SubnetError(`failed to read net conf: ${errorMessage(err)}`,
        `mount the kube-flannel-cfg ConfigMap's net-conf.json at ${this.opts.netConfigPath}, or point --net-config-path at it`, { cause: err });
    }
    return this.netConfText;
  }

  async nodeHints(signal?: AbortSignal): Promise<NodeHints> {
    const node = await this.getNode(await this.nodeName(signal), signal);
    const ann = node.metadata?.annotations ?? null;
    const raw = storedNodePublicIp(ann, this.names);
    let publicIp: number | null = null;
    if (raw !== null) {
      try {
        publicIp = parseIPv4(raw);
      } catch (err) {
        this.log.warn(`ignoring the node annotation ${this.names.nodePublicIp}`, { value: raw, err: errorMessage(err) });
      }
    }
    return { publicIp, vtepMac: storedVtepMac(ann, this.names) };
  }

  async acquireLease(req: AcquireRequest, signal?: AbortSignal): Promise<Lease> {
    const sig = anySignal(signal, this.closing.signal);
    const conf = req.config;
    const attrs = req.attrs;
    const name = await this.nodeName(sig);
    const node = await this.getNode(name, sig);
    const like = node as unknown as NodeLike;
    const ann = node.metadata?.annotations ?? {};

    const subnet = nodePodSubnet(like);
    if (typeof subnet === 'string') throw new SubnetError(subnet, PODCIDR_REMEDY);
    this.checkInside(conf, subnet, name);

    const eff: OwnLeaseAttrs = { ...attrs };
    const nodeIp = storedNodePublicIp(ann, this.names);
    if (nodeIp !== null) {
      try {
        const ip = parseIPv4(nodeIp);
        if (ip !== eff.publicIp) {
          this.log.info(`using the public IP ${nodeIp} from the node annotation ${this.names.nodePublicIp}`, { offered: formatIPv4(eff.publicIp) });
          eff.publicIp = ip;
        }
      } catch (err) {
        this.log.warn(`ignoring the node annotation ${this.names.nodePublicIp}`, { value: nodeIp, err: errorMessage(err) });
      }
    }
    if (eff.backendType === 'vxlan') {
      const stored = storedVtepMac(ann, this.names);
      if (stored && stored !== eff.vtepMac) {
        this.log.info('keeping the VtepMAC stored in our node\'s backend-data', { vtepMac: stored, offered: eff.vtepMac });
        eff.vtepMac = stored;
      }
    }

    const patch = annotationPatch(ann, eff, this.names);
    if (patch) {
      await this.patchStatus(name, patch, 'annotations', sig);
      this.log.info('published our lease in the node annotations', { node: name, annotations: Object.keys(patch.metadata.annotations) });
    } else {
      this.log.info('node annotations already up to date; no patch needed', { node: name });
    }

    const overwrite = ann[this.names.publicIpOverwrite] ?? '';
    let publicIp = eff.publicIp;
    if (overwrite !== '') {
      try {
        publicIp = parseIPv4(overwrite);
        if (publicIp !== eff.publicIp) this.log.info(`Overriding public ip with '${overwrite}' from node annotation '${this.names.publicIpOverwrite}'`);
      } catch (err) {
        this.log.warn(`invalid ${this.names.publicIpOverwrite} annotation`, { value: overwrite, err: errorMessage(err) });
      }
    }
    const lease: Lease = { key: name, subnet, publicIp, backendType: eff.backendType };
    if (eff.backendType === 'vxlan') {
      if (eff.vtepMac !== undefined) lease.vtepMac = eff.vtepMac;
      if (eff.vni !== undefined) lease.vni = eff.vni;
    }
    this.own = lease;
    return { ...lease };
  }

  private checkInside(conf: NetConf, subnet: Cidr, name: string): void {
    if (!cidrCovers(conf.network, subnet)) {
      throw new SubnetError(`subnet "${formatCidr(conf.network)}" specified in the flannel net config doesn't contain "${formatCidr(subnet)}" PodCIDR of the "${name}" node`,
        'make net-conf.json\'s Network the cluster CIDR (kube-controller-manager --cluster-cidr / kubeadm --pod-network-cidr)');
    }
  }

  /** PATCH nodes/status (strategic merge), retried every patchRetryMs for up to patchTimeoutMs. */
  private async patchStatus(name: string, body: object, what: string, signal: AbortSignal): Promise<void> {
    const retryMs = this.opts.patchRetryMs ?? KUBE_PATCH_RETRY_MS;
    const deadline = Date.now() + (this.opts.patchTimeoutMs ?? KUBE_PATCH_TIMEOUT_MS);
    const options = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.call(`patch node status (${what})`, () => this.api.patchNodeStatus({ name, body }, options), signal);
        return;
      } catch (err) {
        if (isAbort(err, signal)) throw err;
        const status = httpStatus(err);
        if (Date.now() + retryMs > deadline) {
          throw new SubnetError(`failed to patch node "${name}" (${what}) via nodes/status after ${attempt} attempts: ${errorMessage(err)}`,
            status === 403
              ? 'grant the agent\'s service account "patch" on nodes/status (flannel\'s ClusterRole)'
              : 'check that the API server is reachable and the node exists', { cause: err });
        }
        this.log.warn(`patching node ${what} failed; retrying in ${retryMs / 1000} s`, { node: name, attempt, status, err: errorMessage(err) });
        await sleep(retryMs, signal);
      }
    }
  }

  async completeLease(signal?: AbortSignal): Promise<void> {
    if (!this.own) throw new Error('completeLease before acquireLease');
    if (this.opts.setNodeNetworkUnavailable === false) {
      this.log.info('not setting NetworkUnavailable=False (--set-node-network-unavailable=false)');
      return;
    }
    const sig = anySignal(signal, this.closing.signal);
    const t = metaTime(this.now());
    const body = {
      status: {
        conditions: [{
          type: 'NetworkUnavailable', status: 'False', lastHeartbeatTime: t, lastTransitionTime: t,
          reason: 'FlannelIsUp', message: 'Flannel is running on this node',
        }],
      },
    };
    const name = await this.nodeName(sig);
    await this.patchStatus(name, body, 'NetworkUnavailable condition', sig);
    this.log.info('set NetworkUnavailable=False on our node', { node: name });
  }

  async watchLeases(onEvent: (e: LeaseEvent) => void, signal: AbortSignal): Promise<void> {
    const sig = anySignal(signal, this.closing.signal);
    const own = await this.nodeName(sig);
    const names = this.names;
    const emit = (e: LeaseEvent): void => deliver(this.log, onEvent, e);
    const known = new Map<string, { node: NodeLike; kind: 'lease' | 'rejected' | 'ignored' }>();
    const backoff = new Backoff(this.opts.backoff ?? DEFAULT_BACKOFF);
    let stopped = false;
    let lists = 0;

    const logRejection = (r: Rejection): void => this.log.warn('lease rejected', { lease: r.leaseKey, reason: r.reason, detail: r.message });

    const listFn = async () => {
      const list = await this.call('list nodes', () => this.api.listNode());
      if (stopped) return list;
      lists++;
      backoff.reset();
      known.clear();
      const leases: Lease[] = [];
      const rejected: Rejection[] = [];
      for (const n of list.items) {
        const node = n as unknown as NodeLike;
        const name = node.metadata?.name;
        if (!name || name === own) continue;
        const p = nodeToLease(node, names);
        known.set(name, { node: slim(node), kind: p.kind });
        if (p.kind === 'lease') leases.push(p.lease);
        else if (p.kind === 'rejected') {
          rejected.push(p.rejection);
          logRejection(p.rejection);
        }
      }
      this.log.info(lists === 1 ? 'lease snapshot' : 'lease snapshot after re-list', {
        resourceVersion: list.metadata?.resourceVersion, nodes: list.items.length, leases: leases.length, rejected: rejected.length,
      });
      emit({ type: 'snapshot', leases, rejected });
      return list;
    };

    const onUpsert = (n: V1Node): void => {
      if (stopped) return;
      this.tracker.set('connected');
      const node = n as unknown as NodeLike;
      const name = node.metadata?.name;
      if (!name || name === own) return;
      const prev = known.get(name);
      if (prev && !nodeLeaseChanged(prev.node, node, names)) {
        prev.node = slim(node);
        return;
      }
      const p = nodeToLease(node, names);
      known.set(name, { node: slim(node), kind: p.kind });
      if (p.kind === 'lease') {
        emit({ type: prev?.kind === 'lease' ? 'updated' : 'added', lease: p.lease });
      } else if (p.kind === 'rejected') {
        if (prev?.kind === 'lease') emit({ type: 'removed', key: name });
        logRejection(p.rejection);
        emit({ type: 'rejected', rejection: p.rejection });
      } else if (prev && prev.kind !== 'ignored') {
        emit({ type: 'removed', key: name });
      }
    };

    const onDelete = (n: V1Node): void => {
      if (stopped) return;
      const name = n.metadata?.name;
      if (!name || name === own) return;
      const prev = known.get(name);
      known.delete(name);
      if (prev && prev.kind !== 'ignored') emit({ type: 'removed', key: name });
    };

    const informer = makeInformer<V1Node>(this.kubeConfig, '/api/v1/nodes', listFn);
    this.informers.add(informer);
    informer.on('add', onUpsert);
    informer.on('update', onUpsert);
    informer.on('delete', onDelete);

    const restart = (): void => {
      if (stopped) return;
      const delay = backoff.next();
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (stopped) return;
        /* probe first, so the state says "connected" only when the API answers */
        const resume = (): void => { if (!stopped) void informer.start().catch(onError); };
        this.call('get node', () => this.api.readNode({ name: own })).then(resume,
          (err: unknown) => (httpStatus(err) !== undefined ? resume() : onError(err)));
      }, delay);
      this.timers.add(timer);
    };
    const onError = (err: unknown): void => {
      if (stopped) return;
      const status = httpStatus(err);
      if (status === undefined) this.tracker.set('disconnected', `node watch: ${errorMessage(err)}`);
      this.log.warn('node informer failed; restarting', { err: errorMessage(err), status });
      restart();
    };
    informer.on('error', onError);

    try {
      await informer.start().catch(onError);
      if (!sig.aborted) {
        await new Promise<void>((resolve) => sig.addEventListener('abort', () => resolve(), { once: true }));
      }
    } finally {
      stopped = true;
      this.informers.delete(informer);
      await informer.stop().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.informers].map((i) => i.stop()));
  }
}
