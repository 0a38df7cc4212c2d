/**
 * flannel's etcd lease records (flannel-compat.md §3):
 *
 *   key   <prefix>/subnets/<a.b.c.d>-<plen>[&<v6>-<plen6>]
 *   value {"PublicIP":"…","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"…"}}
 *
 * Field order is LeaseAttrs' order; BackendType is omitted when empty (the
 * udp backend leaves it empty) and BackendData when the backend has none.
 * The optional IPv6 part of a key is kept in the lease key but not routed.
 */
import { posix } from 'node:path';
import { parseIPv4, formatIPv4, prefixMask, type Cidr, AddressError } from '../../maps/addr.js';
import { goField, isJsonObject, type JsonValue } from '../config/gojson.js';
import { SUPPORTED_BACKENDS } from '../config/net-conf.js';
import { decodeVxlanData, isRejection, leaseBackendType, ownBackendData, storedBackendType, type OwnLeaseAttrs } from './backend-data.js';
import { reject, type Lease, type LeaseParse } from './types.js';

export const DEFAULT_ETCD_PREFIX = '/coreos.com/network';
/** flannel's lease TTL (subnetTTL): 24 h. */
export const ETCD_LEASE_TTL_SECONDS = 24 * 60 * 60;

/** `10.244.1.0/24` → `10.244.1.0-24` (flannel's MakeSubnetKey, IPv4-only). */
export function etcdSubnetKey(subnet: Cidr): string {
  return `${formatIPv4(subnet.addr)}-${subnet.prefix}`;
}

export interface EtcdSubnetKey {
  /** The key relative to `<prefix>/subnets/`, e.g. `10.244.1.0-24&fd00::-64`. */
  key: string;
  subnet: Cidr;
  /** The IPv6 part as written (`fd00::-64`), not routed by flannel-bpf. */
  ipv6?: string;
}

const KEY_RE = /^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})-(\d{1,2})(?:&([a-f\d:]+)-(\d{1,3}))?$/;

/**
 * Parse a subnet key, either relative (`10.244.1.0-24`) or the full etcd path
 * (`/coreos.com/network/subnets/10.244.1.0-24`). Stricter than flannel's
 * regex: the dotted quad must be valid, the prefix 1..32, host bits zero.
 * Returns the problem as a string when the key is not a valid subnet key.
 */
export function parseEtcdSubnetKey(keyOrPath: string): EtcdSubnetKey | string {
  const key = keyOrPath.slice(keyOrPath.lastIndexOf('/') + 1);
  const m = KEY_RE.exec(key);
  if (!m) return `key ${JSON.stringify(key)} is not a subnet key like 10.244.1.0-24`;
  let addr: number;
  try {
    addr = parseIPv4(m[1]);
  } catch (err) {
    return `key ${JSON.stringify(key)}: ${err instanceof AddressError ? err.message : String(err)}`;
  }
  const prefix = Number(m[2]);
  if (prefix < 1 || prefix > 32) return `key ${JSON.stringify(key)}: prefix length ${prefix} is not 1..32`;
  if (((addr & prefixMask(prefix)) >>> 0) !== addr) {
    return `key ${JSON.stringify(key)}: host bits set (the network of ${m[1]}/${prefix} is ${formatIPv4((addr & prefixMask(prefix)) >>> 0)})`;
  }
  const out: EtcdSubnetKey = { key, subnet: { addr, prefix } };
  if (m[3] !== undefined) out.ipv6 = `${m[3]}-${m[4]}`;
  return out;
}

function join(...parts: string[]): string {
  /* Go's path.Join: cleaned, no trailing slash. */
  const j = posix.join(...parts);
  return j.length > 1 && j.endsWith('/') ? j.slice(0, -1) : j;
}

/** `<prefix>/config` */
export function etcdConfigPath(prefix: string = DEFAULT_ETCD_PREFIX): string {
  return join(prefix, 'config');
}

/** `<prefix>/subnets` (list/watch this with a trailing "/" to avoid matching `subnetsX`). */
export function etcdSubnetsPath(prefix: string = DEFAULT_ETCD_PREFIX): string {
  return join(prefix, 'subnets');
}

/** `<prefix>/subnets/<key>` */
export function etcdLeasePath(prefix: string, subnet: Cidr): string {
  return join(prefix, 'subnets', etcdSubnetKey(subnet));
}

/** The value flannel writes for a lease (json.Marshal of LeaseAttrs), byte for byte. */
export function etcdLeaseValue(attrs: OwnLeaseAttrs): string {
  let s = `{"PublicIP":"${formatIPv4(attrs.publicIp)}","PublicIPv6":null`;
  const bt = storedBackendType(attrs.backendType);
  if (bt !== '') s += `,"BackendType":${JSON.stringify(bt)}`;
  const bd = ownBackendData(attrs);
  if (bd !== null) s += `,"BackendData":${bd}`;
  return s + '}';
}

export interface EtcdLeaseOptions {
  /** Expiry in ms since the epoch (from the key's etcd lease TTL). */
  expiration?: number;
}

/** Parse one etcd key/value into a lease, or a rejection naming the key. */
export function parseEtcdLease(keyOrPath: string, value: string | Uint8Array, opts: EtcdLeaseOptions = {}): LeaseParse {
  const parsedKey = parseEtcdSubnetKey(keyOrPath);
  const shortKey = keyOrPath.slice(keyOrPath.lastIndexOf('/') + 1);
  if (typeof parsedKey === 'string') {
    return { kind: 'rejected', rejection: reject(shortKey, 'bad_subnet', `etcd lease ${JSON.stringify(keyOrPath)}: ${parsedKey}`) };
  }
  const { key, subnet } = parsedKey;
  const what = `etcd lease ${JSON.stringify(key)}`;
  const text = typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
  let doc: JsonValue;
  try {
    doc = JSON.parse(text) as JsonValue;
  } catch (err) {
    return { kind: 'rejected', rejection: reject(key, 'malformed_json', `${what}: value is not JSON (${(err as Error).message})`) };
  }
  if (!isJsonObject(doc)) {
    return { kind: 'rejected', rejection: reject(key, 'malformed_json', `${what}: value is not a JSON object`) };
  }
  const ipRaw = goField(doc, 'PublicIP');
  if (typeof ipRaw !== 'string') {
    return { kind: 'rejected', rejection: reject(key, 'bad_public_ip', `${what}: PublicIP ${ipRaw === undefined ? 'is missing' : `${JSON.stringify(ipRaw)} is not a string`}`) };
  }
  let publicIp: number;
  try {
    publicIp = parseIPv4(ipRaw);
  } catch (err) {
    return { kind: 'rejected', rejection: reject(key, 'bad_public_ip', `${what}: PublicIP: ${(err as Error).message}`) };
  }
  const btRaw = goField(doc, 'BackendType');
  if (btRaw !== undefined && btRaw !== null && typeof btRaw !== 'string') {
    return { kind: 'rejected', rejection: reject(key, 'malformed_json', `${what}: BackendType ${JSON.stringify(btRaw)} is not a string`) };
  }
  const backendType = leaseBackendType(btRaw ?? '');
  const lease: Lease = { key, subnet, publicIp, backendType };
  if (backendType === 'vxlan') {
    const vx = decodeVxlanData(key, what, goField(doc, 'BackendData'));
    if (isRejection(vx)) return { kind: 'rejected', rejection: vx };
    lease.vtepMac = vx.vtepMac;
    if (vx.vni !== undefined) lease.vni = vx.vni;
  }
  if (opts.expiration !== undefined) lease.expiration = opts.expiration;
  return { kind: 'lease', lease };
}

/** The value for an existing lease record (e.g. to re-put a peer's lease unchanged in tests). */
export function etcdValueOfLease(lease: Lease): string {
  const bt = SUPPORTED_BACKENDS.find((b) => b === lease.backendType);
  if (bt === undefined) throw new TypeError(`cannot serialise backend type ${JSON.stringify(lease.backendType)}`);
  return etcdLeaseValue({ publicIp: lease.publicIp, backendType: bt, vni: lease.vni, vtepMac: lease.vtepMac });
}
