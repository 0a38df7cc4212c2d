/**
 * flannel's Kubernetes leases (flannel-compat.md §4): a Node's spec.podCIDR(s)
 * plus annotations under a configurable prefix.
 *
 * Reading: nodes without `<prefix>kube-subnet-manager: "true"` are ignored;
 * the subnet is the first IPv4 entry of spec.podCIDRs, else spec.podCIDR.
 * The public IP is `public-ip-overwrite` when set, else `public-ip`: stock
 * flanneld copies the overwrite into public-ip when it (re)starts, we honour
 * it as soon as it is set (a deliberate difference; same result once the
 * peer's agent has restarted).
 *
 * Writing: the annotations flannel writes and the same "is a patch needed"
 * rule as flannel's AcquireLease.
 */
import { parseIPv4, parseCidr, formatIPv4, type Cidr } from '../../maps/addr.js';
import { ConfigError } from '../config/errors.js';
import { decodeVxlanData, isRejection, leaseBackendType, ownBackendData, storedBackendType, type OwnLeaseAttrs } from './backend-data.js';
import { reject, type Lease, type LeaseParse } from './types.js';
import type { JsonValue } from '../config/gojson.js';

export const DEFAULT_ANNOTATION_PREFIX = 'flannel.alpha.coreos.com';

/** Full annotation names for one prefix. */
export interface AnnotationNames {
  /** The normalised prefix (ends in "/" or "-"). */
  prefix: string;
  kubeSubnetManager: string;
  backendData: string;
  backendV6Data: string;
  backendType: string;
  publicIp: string;
  publicIpv6: string;
  nodePublicIp: string;
  nodePublicIpv6: string;
  publicIpOverwrite: string;
  publicIpv6Overwrite: string;
}

const PREFIX_RE = /(?:[a-z0-9_-]+\.)+[a-z0-9_-]+\/(?:[a-z0-9_-]+-)?$/;

/**
 * flannel's newAnnotations normalisation: at most one "/"; none → append "/";
 * then if it ends in neither "/" nor "-", append "-". The result must match
 * flannel's (start-unanchored) regex `(?:[a-z0-9_-]+\.)+[a-z0-9_-]+/(?:[a-z0-9_-]+-)?$`.
 */
export function normalizeAnnotationPrefix(prefix: string): string {
  const slashes = prefix.split('/').length - 1;
  const fail = (problem: string): ConfigError => new ConfigError({
    origin: 'annotation prefix', field: '--kube-annotation-prefix', value: prefix, problem,
    accepted: 'fqdn or fqdn/name, lower-case letters, digits, "-", "_" (e.g. flannel.alpha.coreos.com)',
  });
  if (slashes > 1) throw fail('subnet/kube: prefix can contain at most single slash');
  let p = slashes === 0 ? `${prefix}/` : prefix;
  if (!p.endsWith('/') && !p.endsWith('-')) p += '-';
  if (!PREFIX_RE.test(p)) throw fail('subnet/kube: prefix must be in a format: fqdn/[0-9a-z-_]*');
  return p;
}

export function annotationNames(prefix: string = DEFAULT_ANNOTATION_PREFIX): AnnotationNames {
  const p = normalizeAnnotationPrefix(prefix);
  return {
    prefix: p,
    kubeSubnetManager: `${p}kube-subnet-manager`,
    backendData: `${p}backend-data`,
    backendV6Data: `${p}backend-v6-data`,
    backendType: `${p}backend-type`,
    publicIp: `${p}public-ip`,
    publicIpv6: `${p}public-ipv6`,
    nodePublicIp: `${p}node-public-ip`,
    nodePublicIpv6: `${p}node-public-ipv6`,
    publicIpOverwrite: `${p}public-ip-overwrite`,
    publicIpv6Overwrite: `${p}public-ipv6-overwrite`,
  };
}

export type Annotations = Readonly<Record<string, string>>;

/** The parts of a v1.Node the lease logic reads. */
export interface NodeLike {
  metadata: { name: string; annotations?: Annotations | null };
  spec?: { podCIDR?: string | null; podCIDRs?: readonly string[] | null } | null;
}

/** Is the node taking part in flannel (kube-subnet-manager annotation "true")? */
export function isFlannelNode(node: NodeLike, names: AnnotationNames): boolean {
  return node.metadata.annotations?.[names.kubeSubnetManager] === 'true';
}

/**
 * The node's IPv4 pod subnet, flannel's way: spec.podCIDRs (at most two
 * entries) → the first IPv4 one; if podCIDRs is empty, spec.podCIDR. Host
 * bits are masked (Go's net.ParseCIDR). Returns the problem as a string.
 */
export function nodePodSubnet(node: NodeLike): Cidr | string {
  const name = node.metadata.name;
  const list = node.spec?.podCIDRs ?? [];
  const candidates = list.length > 0 ? list : [node.spec?.podCIDR ?? ''];
  if (list.length >= 3) return `node "${name}" pod cidrs should be IPv4/IPv6 only or dualstack`;
  if (list.length === 0 && (node.spec?.podCIDR ?? '') === '') return `node "${name}" pod cidr not assigned`;
  for (const c of candidates) {
    if (c.includes(':')) {
      if (!/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(c)) return `node "${name}": podCIDR ${JSON.stringify(c)} is not a CIDR`;
      continue; /* IPv6 entry: not routed by flannel-bpf */
    }
    try {
      return parseCidr(c, false);
    } catch (err) {
      return `node "${name}": ${(err as Error).message}`;
    }
  }
  return `node "${name}": missing IPv4 address on spec.podCIDRs`;
}

/** Read a Node into a lease. Nodes not managed by flannel are `ignored`. */
export function nodeToLease(node: NodeLike, names: AnnotationNames): LeaseParse {
  const key = node.metadata.name;
  const ann = node.metadata.annotations ?? {};
  if (ann[names.kubeSubnetManager] !== 'true') {
    return { kind: 'ignored', why: `node "${key}" has no ${names.kubeSubnetManager}="true" annotation` };
  }
  const what = `node ${JSON.stringify(key)}`;
  const subnet = nodePodSubnet(node);
  if (typeof subnet === 'string') return { kind: 'rejected', rejection: reject(key, 'bad_subnet', subnet) };

  const overwrite = ann[names.publicIpOverwrite] ?? '';
  const ipField = overwrite !== '' ? names.publicIpOverwrite : names.publicIp;
  const ipRaw = ann[ipField];
  if (ipRaw === undefined || ipRaw === '') {
    return { kind: 'rejected', rejection: reject(key, 'bad_public_ip', `${what}: annotation ${names.publicIp} is missing`) };
  }
  let publicIp: number;
  try {
    publicIp = parseIPv4(ipRaw);
  } catch (err) {
    return { kind: 'rejected', rejection: reject(key, 'bad_public_ip', `${what}: annotation ${ipField}: ${(err as Error).message}`) };
  }
  const backendType = leaseBackendType(ann[names.backendType] ?? '');
  const lease: Lease = { key, subnet, publicIp, backendType };
  if (backendType === 'vxlan') {
    const text = ann[names.backendData] ?? '';
    let data: JsonValue | undefined;
    try {
      data = text === '' ? undefined : (JSON.parse(text) as JsonValue);
    } catch (err) {
      return { kind: 'rejected', rejection: reject(key, 'malformed_json', `${what}: annotation ${names.backendData} is not JSON (${(err as Error).message})`) };
    }
    const vx = decodeVxlanData(key, what, data);
    if (isRejection(vx)) return { kind: 'rejected', rejection: vx };
    lease.vtepMac = vx.vtepMac;
    if (vx.vni !== undefined) lease.vni = vx.vni;
  }
  return { kind: 'lease', lease };
}

/** The backend-data annotation value: vxlan `{"VNI":n,"VtepMAC":"…"}`, otherwise the literal `null`. */
export function backendDataAnnotation(attrs: OwnLeaseAttrs): string {
  return ownBackendData(attrs) ?? 'null';
}

/**
 * flannel's AcquireLease rule (IPv4): patch when backend-data, backend-type,
 * public-ip or the kube-subnet-manager marker differ from what we publish, or
 * when public-ip-overwrite is set and differs from our public IP (flannel then
 * patches on every start).
 */
export function needsAnnotationPatch(current: Annotations | null | undefined, attrs: OwnLeaseAttrs, names: AnnotationNames): boolean {
  const ann = current ?? {};
  const ip = formatIPv4(attrs.publicIp);
  const overwrite = ann[names.publicIpOverwrite] ?? '';
  return (ann[names.backendData] ?? '') !== backendDataAnnotation(attrs)
    || (ann[names.backendType] ?? '') !== storedBackendType(attrs.backendType)
    || (ann[names.publicIp] ?? '') !== ip
    || (ann[names.kubeSubnetManager] ?? '') !== 'true'
    || (overwrite !== '' && overwrite !== ip);
}

/**
 * The annotations flannel writes for our lease: backend-type, backend-data,
 * public-ip (the value of public-ip-overwrite when that is set), and
 * kube-subnet-manager "true".
 */
export function ownAnnotations(current: Annotations | null | undefined, attrs: OwnLeaseAttrs, names: AnnotationNames): Record<string, string> {
  const ann = current ?? {};
  const overwrite = ann[names.publicIpOverwrite] ?? '';
  return {
    [names.backendType]: storedBackendType(attrs.backendType),
    [names.backendData]: backendDataAnnotation(attrs),
    [names.publicIp]: overwrite !== '' ? overwrite : formatIPv4(attrs.publicIp),
    [names.kubeSubnetManager]: 'true',
  };
}

/** Strategic-merge patch body for `nodes/status` (only the keys that change), or null when none is needed. */
export function annotationPatch(current: Annotations | null | undefined, attrs: OwnLeaseAttrs, names: AnnotationNames):
  { metadata: { annotations: Record<string, string> } } | null {
  if (!needsAnnotationPatch(current, attrs, names)) return null;
  const ann = current ?? {};
  const want = ownAnnotations(current, attrs, names);
  const changed: Record<string, string> = {};
  for (const [k, v] of Object.entries(want)) if (ann[k] !== v) changed[k] = v;
  if (Object.keys(changed).length === 0) return null; /* only the overwrite rule fired: the values already match */
  return { metadata: { annotations: changed } };
}

/**
 * Did anything that makes up the lease change between two versions of a node?
 * flannel compares backend-data, backend-type and public-ip; we also compare
 * public-ip-overwrite (we read it), the marker and the pod CIDRs.
 */
export function nodeLeaseChanged(before: NodeLike, after: NodeLike, names: AnnotationNames): boolean {
  const a = before.metadata.annotations ?? {};
  const b = after.metadata.annotations ?? {};
  for (const k of [names.backendData, names.backendType, names.publicIp, names.publicIpOverwrite, names.kubeSubnetManager]) {
    if ((a[k] ?? '') !== (b[k] ?? '')) return true;
  }
  const cidrs = (n: NodeLike): string => JSON.stringify([n.spec?.podCIDR ?? '', ...(n.spec?.podCIDRs ?? [])]);
  return cidrs(before) !== cidrs(after);
}

/** Our VtepMAC as stored in our own node's backend-data (to keep it across restarts), or null. */
export function storedVtepMac(current: Annotations | null | undefined, names: AnnotationNames): string | null {
  const text = current?.[names.backendData];
  if (!text) return null;
  let data: JsonValue;
  try {
    data = JSON.parse(text) as JsonValue;
  } catch {
    return null;
  }
  const vx = decodeVxlanData('self', 'own node', data);
  return isRejection(vx) ? null : vx.vtepMac;
}

/** The `node-public-ip` annotation (read at start as --public-ip), or null when absent/empty. */
export function storedNodePublicIp(current: Annotations | null | undefined, names: AnnotationNames): string | null {
  const v = current?.[names.nodePublicIp] ?? '';
  return v === '' ? null : v;
}
