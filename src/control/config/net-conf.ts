/**
 * net-conf.json: flannel's network configuration (flannel-compat.md §1).
 *
 * parseNetConf follows flannel's ParseConfig (Go encoding/json semantics:
 * case-insensitive keys, EnableIPv4 defaulting to true, the backend type
 * defaulting to `udp` when the `Backend` key is absent) and additionally
 * checks every value flannel-bpf uses, so that a bad value fails at start
 * with the field, the value and what is accepted.
 *
 * checkNetworkConfig is flannel's CheckNetworkConfig (etcd mode only): the
 * SubnetLen / SubnetMin / SubnetMax defaulting and rules, with flannel's exact
 * error texts as the error's `problem`. Kube mode only parses.
 */
import { parseIPv4, parseCidr, formatIPv4, formatCidr, cidrContains, prefixMask, type Cidr, AddressError } from '../../maps/addr.js';
import type { BackendType } from '../../maps/config.js';
import { ConfigError } from './errors.js';
import { goField, isJsonObject, unknownKeys, type JsonObject, type JsonValue } from './gojson.js';

/** Backend types flannel-bpf implements (flannel's Backend.Type values). */
export const SUPPORTED_BACKENDS: readonly BackendType[] = ['vxlan', 'host-gw', 'udp'];
/** Backend types stock flannel registers but flannel-bpf does not implement. */
export const FLANNEL_ONLY_BACKENDS = ['wireguard', 'ipip', 'ipsec', 'alloc', 'extension', 'tencent-vpc'] as const;

export const DEFAULT_VXLAN_VNI = 1;
/** The kernel's VXLAN default, used by flannel when Port is 0 (flannel-compat.md §6). */
export const DEFAULT_VXLAN_PORT = 8472;
export const DEFAULT_UDP_PORT = 8285;
/** Outer Ethernet-in-UDP overhead of VXLAN: 14 inner Ethernet + 20 IPv4 + 8 UDP + 8 VXLAN. */
export const VXLAN_OVERHEAD = 50;
/** flannel's UDP backend: 20 IPv4 + 8 UDP. */
export const UDP_OVERHEAD = 28;

export interface VxlanBackendConfig {
  type: 'vxlan';
  /** VXLAN network identifier, 1..16777215 (default 1). */
  vni: number;
  /** Effective UDP port: `Port` from the config, or 8472 when it is 0 / absent (flannel's behaviour). */
  port: number;
  gbp: boolean;
  learning: boolean;
  directRouting: boolean;
  /** Underlay MTU budget; null = the uplink's MTU (flannel's default). */
  mtu: number | null;
}

export interface HostGwBackendConfig {
  type: 'host-gw';
}

export interface UdpBackendConfig {
  type: 'udp';
  /** UDP port, default 8285. */
  port: number;
}

export type BackendConfig = VxlanBackendConfig | HostGwBackendConfig | UdpBackendConfig;

export interface NetConf {
  /** The cluster network (host bits masked off, as Go's net.ParseCIDR does). */
  network: Cidr;
  enableIPv4: true;
  /** flannel-bpf is IPv4-only: EnableIPv6=true is refused. */
  enableIPv6: false;
  enableNFTables: boolean;
  /** SubnetLen as given (null when absent or 0: derived by checkNetworkConfig in etcd mode). */
  subnetLen: number | null;
  /** SubnetMin / SubnetMax as given (null when absent or 0.0.0.0). */
  subnetMin: number | null;
  subnetMax: number | null;
  backend: BackendConfig;
  /** True when the `Backend` key was absent and flannel's code default (udp) applied. */
  backendDefaulted: boolean;
  /** Things that are accepted but probably not what the operator meant. */
  warnings: string[];
}

/** NetConf after etcd-mode validation: SubnetLen/Min/Max are always set. */
export interface EtcdNetConf extends NetConf {
  subnetLen: number;
  subnetMin: number;
  subnetMax: number;
}

export interface ParseNetConfOptions {
  /** Label used in errors, e.g. the file path or "etcd key /coreos.com/network/config". */
  document?: string;
  /** `kube` adds warnings for keys flannel ignores in kube mode (SubnetLen/Min/Max). */
  mode?: 'kube' | 'etcd';
}

const TOP_LEVEL_KEYS = [
  'Network', 'EnableIPv4', 'EnableIPv6', 'EnableNFTables', 'IPv6Network', 'SubnetMin', 'SubnetMax',
  'IPv6SubnetMin', 'IPv6SubnetMax', 'SubnetLen', 'IPv6SubnetLen', 'Backend',
] as const;
const VXLAN_KEYS = ['Type', 'VNI', 'Port', 'GBP', 'Learning', 'DirectRouting', 'MTU'] as const;
const VXLAN_WINDOWS_KEYS = ['MacPrefix', 'Name'] as const;
const UDP_KEYS = ['Type', 'Port'] as const;
const HOSTGW_KEYS = ['Type'] as const;

const ACCEPTED_BACKENDS = SUPPORTED_BACKENDS.map((b) => `"${b}"`).join(', ');

class Reader {
  constructor(readonly document: string) {}

  error(field: string, value: unknown, problem: string, accepted: string, remedy?: string): ConfigError {
    return new ConfigError({ origin: 'net-conf', document: this.document, field, value, problem, accepted, remedy });
  }

  bool(obj: JsonObject, key: string, path: string, dflt: boolean): boolean {
    const v = goField(obj, key);
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') throw this.error(path, v, 'not a boolean', 'true or false (JSON booleans, without quotes)');
    return v;
  }

  /** Integer field; `null`/absent → undefined (Go leaves the default). */
  int(obj: JsonObject, key: string, path: string, accepted: string): number | undefined {
    const v = goField(obj, key);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      throw this.error(path, v, typeof v === 'number' ? 'not an integer' : 'not a number', accepted);
    }
    return v;
  }

  intRange(obj: JsonObject, key: string, path: string, min: number, max: number, dflt: number, extra = ''): number {
    const accepted = `an integer ${min}..${max}${extra}`;
    const v = this.int(obj, key, path, accepted);
    if (v === undefined) return dflt;
    if (v < min || v > max) throw this.error(path, v, 'out of range', accepted);
    return v;
  }

  /** An IPv4 address string (Go ip.IP4: null is an error, "0.0.0.0" means unset). */
  ipv4(obj: JsonObject, key: string, path: string): number | null {
    const v = goField(obj, key);
    if (v === undefined) return null;
    if (typeof v !== 'string') throw this.error(path, v, 'not a string', 'an IPv4 address in dotted-quad form, e.g. "10.244.1.0"');
    try {
      const ip = parseIPv4(v);
      return ip === 0 ? null : ip;
    } catch (err) {
      throw this.error(path, v, err instanceof AddressError ? err.message : String(err), 'an IPv4 address in dotted-quad form, e.g. "10.244.1.0"');
    }
  }
}

/** Parse a net-conf.json document (text, or an already-decoded JSON value). */
export function parseNetConf(input: string | JsonValue, opts: ParseNetConfOptions = {}): NetConf {
  const r = new Reader(opts.document ?? 'net-conf.json');
  const example = '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}';
  let doc: unknown = input;
  if (typeof input === 'string') {
    try {
      doc = JSON.parse(input) as unknown;
    } catch (err) {
      throw r.error('(document)', undefined, `not valid JSON: ${(err as Error).message}`, `a JSON object like ${example}`);
    }
  }
  if (!isJsonObject(doc)) {
    throw r.error('(document)', doc, 'not a JSON object', `a JSON object like ${example}`);
  }
  const warnings: string[] = [];

  for (const k of unknownKeys(doc, TOP_LEVEL_KEYS)) warnings.push(`unknown key "${k}" ignored (flannel ignores it too)`);

  const enableIPv4 = r.bool(doc, 'EnableIPv4', 'EnableIPv4', true);
  if (!enableIPv4) {
    throw r.error('EnableIPv4', false, 'flannel-bpf carries IPv4 pod traffic only and needs IPv4 enabled', 'true (or leave EnableIPv4 out)');
  }
  const enableIPv6 = r.bool(doc, 'EnableIPv6', 'EnableIPv6', false);
  if (enableIPv6) {
    throw r.error('EnableIPv6', true, 'flannel-bpf is IPv4-only for now; IPv6 and dual-stack pod networks are not supported',
      'false (or leave EnableIPv6 out)',
      'remove EnableIPv6 (and IPv6Network) from net-conf.json, or keep stock flannel for dual-stack clusters');
  }
  for (const k of ['IPv6Network', 'IPv6SubnetLen', 'IPv6SubnetMin', 'IPv6SubnetMax']) {
    if (goField(doc, k) !== undefined) warnings.push(`${k} ignored: IPv6 is disabled (flannel-bpf is IPv4-only)`);
  }
  const enableNFTables = r.bool(doc, 'EnableNFTables', 'EnableNFTables', false);
  if (enableNFTables) {
    warnings.push('EnableNFTables is true, but flannel-bpf programs its masquerade and forward rules with iptables only; a node migrated from flanneld in nftables mode must have flanneld\'s nftables tables (flannel, flannel-ipv6) deleted (docs/migrate-from-flannel.md)');
  }

  /* Network: required (flannel: "please define a correct Network parameter in the flannel config"). */
  const netRaw = goField(doc, 'Network');
  const netAccepted = 'an IPv4 CIDR such as "10.244.0.0/16"';
  if (netRaw === undefined) {
    throw r.error('Network', undefined, 'missing: the cluster pod network is required', netAccepted,
      'add "Network": "<cluster pod CIDR>" (the same value as kube-controller-manager --cluster-cidr / kubeadm --pod-network-cidr)');
  }
  if (typeof netRaw !== 'string') throw r.error('Network', netRaw, 'not a string', netAccepted);
  let network: Cidr;
  try {
    network = parseCidr(netRaw, false);
  } catch (err) {
    throw r.error('Network', netRaw, err instanceof AddressError ? err.message : String(err), netAccepted);
  }
  if (network.prefix === 0) {
    throw r.error('Network', netRaw, 'a /0 network is empty to flannel ("please define a correct Network parameter")', netAccepted);
  }
  try {
    parseCidr(netRaw, true);
  } catch {
    warnings.push(`Network "${netRaw}" has host bits set; using ${formatCidr(network)} (as flannel does)`);
  }

  /* SubnetLen / SubnetMin / SubnetMax: parsed here, checked by checkNetworkConfig (etcd mode). */
  const subnetLenRaw = r.int(doc, 'SubnetLen', 'SubnetLen', 'an integer (the per-node subnet prefix length, at most 30)');
  if (subnetLenRaw !== undefined && subnetLenRaw < 0) {
    throw r.error('SubnetLen', subnetLenRaw, 'negative', 'an integer (the per-node subnet prefix length, at most 30)');
  }
  const subnetLen = subnetLenRaw ? subnetLenRaw : null;
  const subnetMin = r.ipv4(doc, 'SubnetMin', 'SubnetMin');
  const subnetMax = r.ipv4(doc, 'SubnetMax', 'SubnetMax');
  if (opts.mode === 'kube') {
    for (const k of ['SubnetLen', 'SubnetMin', 'SubnetMax']) {
      if (goField(doc, k) !== undefined) {
        warnings.push(`${k} is ignored with --kube-subnet-mgr: each node's subnet is its spec.podCIDR (flannel issue #1328)`);
      }
    }
  }

  /* Backend. */
  const { backend, defaulted } = parseBackend(r, goField(doc, 'Backend'), warnings);
  if (defaulted) {
    warnings.push('no "Backend" key: flannel\'s code defaults to the udp backend (its documentation says vxlan); set Backend.Type explicitly');
  }

  return {
    network,
    enableIPv4: true,
    enableIPv6: false,
    enableNFTables,
    subnetLen,
    subnetMin,
    subnetMax,
    backend,
    backendDefaulted: defaulted,
    warnings,
  };
}

function parseBackend(r: Reader, raw: JsonValue | undefined, warnings: string[]): { backend: BackendConfig; defaulted: boolean } {
  if (raw === undefined) return { backend: { type: 'udp', port: DEFAULT_UDP_PORT }, defaulted: true };
  if (raw === null) {
    throw r.error('Backend.Type', undefined, 'Backend is null, so it has no Type (flannel fails with "unknown backend type")',
      ACCEPTED_BACKENDS, 'write "Backend": {"Type": "vxlan"} (or "host-gw" / "udp")');
  }
  if (!isJsonObject(raw)) {
    throw r.error('Backend', raw, 'not a JSON object', '{"Type": "vxlan"} (or "host-gw" / "udp", with that backend\'s options)');
  }
  const typeRaw = goField(raw, 'Type');
  if (typeRaw === undefined || typeRaw === null || typeRaw === '') {
    throw r.error('Backend.Type', typeRaw, 'Backend is present but has no Type (flannel fails with "unknown backend type")',
      ACCEPTED_BACKENDS, 'add "Type": "vxlan" (or "host-gw" / "udp") to Backend');
  }
  if (typeof typeRaw !== 'string') throw r.error('Backend.Type', typeRaw, 'not a string', ACCEPTED_BACKENDS);
  const type = typeRaw.toLowerCase(); /* flannel lower-cases the type when it looks the backend up */
  const ignoreUnknown = (keys: readonly string[], what: string): void => {
    for (const k of unknownKeys(raw, keys)) warnings.push(`Backend.${k} ignored: not an option of the ${what} backend`);
  };
  switch (type) {
    case 'vxlan': {
      ignoreUnknown([...VXLAN_KEYS, ...VXLAN_WINDOWS_KEYS], 'vxlan');
      for (const k of VXLAN_WINDOWS_KEYS) {
        if (goField(raw, k) !== undefined) warnings.push(`Backend.${k} ignored: a Windows-only vxlan option`);
      }
      const vni = r.intRange(raw, 'VNI', 'Backend.VNI', 1, 16777215, DEFAULT_VXLAN_VNI, ' (the VXLAN network identifier; flannel uses 1)');
      const port = r.intRange(raw, 'Port', 'Backend.Port', 0, 65535, 0, ' (0 = the kernel default 8472, as flannel)');
      const mtuV = r.int(raw, 'MTU', 'Backend.MTU', 'an integer 68..65535 (the underlay MTU; leave out to use the uplink MTU)');
      if (mtuV !== undefined && (mtuV < 68 || mtuV > 65535)) {
        throw r.error('Backend.MTU', mtuV, 'out of range', 'an integer 68..65535 (the underlay MTU; leave out to use the uplink MTU)');
      }
      const gbp = r.bool(raw, 'GBP', 'Backend.GBP', false);
      const learning = r.bool(raw, 'Learning', 'Backend.Learning', false);
      const directRouting = r.bool(raw, 'DirectRouting', 'Backend.DirectRouting', false);
      if (gbp) warnings.push('Backend.GBP has no effect: flannel-bpf neither sets nor reads VXLAN group policy IDs (stock flannel sets none either)');
      if (learning) warnings.push('Backend.Learning has no effect: peers are programmed from their leases, never learned');
      return {
        backend: { type: 'vxlan', vni, port: port === 0 ? DEFAULT_VXLAN_PORT : port, gbp, learning, directRouting, mtu: mtuV ?? null },
        defaulted: false,
      };
    }
    case 'host-gw':
      ignoreUnknown(HOSTGW_KEYS, 'host-gw');
      return { backend: { type: 'host-gw' }, defaulted: false };
    case 'udp': {
      ignoreUnknown(UDP_KEYS, 'udp');
      const port = r.intRange(raw, 'Port', 'Backend.Port', 1, 65535, DEFAULT_UDP_PORT, ' (flannel uses 8285)');
      return { backend: { type: 'udp', port }, defaulted: false };
    }
    default: {
      const flannelOnly = (FLANNEL_ONLY_BACKENDS as readonly string[]).includes(type);
      throw r.error('Backend.Type', typeRaw,
        flannelOnly
          ? `"${type}" is a stock flannel backend that flannel-bpf does not implement`
          : `unknown backend type "${typeRaw}"`,
        ACCEPTED_BACKENDS,
        flannelOnly
          ? `use Backend.Type "vxlan", "host-gw" or "udp", or keep stock flannel on clusters that need ${type}`
          : 'set Backend.Type to "vxlan" (the usual choice), "host-gw" or "udp"');
    }
  }
}

/**
 * flannel's CheckNetworkConfig for IPv4 (etcd mode only): derive SubnetLen,
 * SubnetMin and SubnetMax and check them. The error's `problem` is flannel's
 * exact error text. Pure: returns a new object.
 */
export function checkNetworkConfig(conf: NetConf, document = 'net-conf.json'): EtcdNetConf {
  const fail = (field: string, value: unknown, flannelText: string, accepted: string, remedy?: string): ConfigError =>
    new ConfigError({ origin: 'net-conf', document, field, value, problem: flannelText, accepted, remedy });
  const net = conf.network;
  if (net.prefix === 0 && net.addr === 0) {
    throw fail('Network', formatCidr(net), 'please define a correct Network parameter in the flannel config', 'an IPv4 CIDR such as "10.244.0.0/16"');
  }
  let subnetLen: number;
  if (conf.subnetLen !== null && conf.subnetLen > 0) {
    subnetLen = conf.subnetLen;
    if (subnetLen > 30) {
      throw fail('SubnetLen', subnetLen, 'SubnetLen must be less than /31', `an integer ${net.prefix + 2}..30`);
    }
    if (subnetLen < net.prefix + 2) {
      throw fail('SubnetLen', subnetLen, 'network must be able to accommodate at least four subnets',
        net.prefix + 2 <= 30 ? `an integer ${net.prefix + 2}..30 for Network ${formatCidr(net)}` : `a larger Network (at most /28)`);
    }
  } else if (net.prefix > 28) {
    throw fail('Network', formatCidr(net), 'network is too small. Minimum useful network prefix is /28', 'a Network prefix of /28 or shorter');
  } else if (net.prefix <= 22) {
    subnetLen = 24;
  } else {
    subnetLen = net.prefix + 2;
  }

  const subnetSize = 2 ** (32 - subnetLen);
  const netEnd = (net.addr + 2 ** (32 - net.prefix)) >>> 0; /* Network.Next().IP, wrapping like Go's uint32 */
  const range = `an address inside ${formatCidr(net)} on a /${subnetLen} boundary`;

  let subnetMin: number;
  if (conf.subnetMin === null) {
    subnetMin = (net.addr + subnetSize) >>> 0;
  } else if (!cidrContains(net, conf.subnetMin)) {
    throw fail('SubnetMin', formatIPv4(conf.subnetMin), 'SubnetMin is not in the range of the Network', range);
  } else {
    subnetMin = conf.subnetMin;
  }
  let subnetMax: number;
  if (conf.subnetMax === null) {
    subnetMax = (netEnd - subnetSize) >>> 0;
  } else if (!cidrContains(net, conf.subnetMax)) {
    throw fail('SubnetMax', formatIPv4(conf.subnetMax), 'SubnetMax is not in the range of the Network', range);
  } else {
    subnetMax = conf.subnetMax;
  }
  const mask = prefixMask(subnetLen);
  if (((subnetMin & mask) >>> 0) !== subnetMin) {
    throw fail('SubnetMin', formatIPv4(subnetMin), `SubnetMin is not on a SubnetLen boundary: ${formatIPv4(subnetMin)}`, range);
  }
  if (((subnetMax & mask) >>> 0) !== subnetMax) {
    throw fail('SubnetMax', formatIPv4(subnetMax), `SubnetMax is not on a SubnetLen boundary: ${formatIPv4(subnetMax)}`, range);
  }
  const warnings = [...conf.warnings];
  if (subnetMin > subnetMax) {
    warnings.push(`SubnetMin ${formatIPv4(subnetMin)} is above SubnetMax ${formatIPv4(subnetMax)}: no subnet can be allocated ("out of subnets")`);
  }
  return { ...conf, subnetLen, subnetMin, subnetMax, warnings };
}

/** Number of node subnets between SubnetMin and SubnetMax inclusive (0 when inverted). */
export function subnetCapacity(conf: EtcdNetConf): number {
  if (conf.subnetMin > conf.subnetMax) return 0;
  return Math.floor((conf.subnetMax - conf.subnetMin) / 2 ** (32 - conf.subnetLen)) + 1;
}

/**
 * The pod / device MTU of a backend given the uplink MTU, as flannel computes
 * FLANNEL_MTU: vxlan = (Backend.MTU or uplink) − 50, host-gw = uplink, udp = uplink − 28.
 */
export function backendPodMtu(backend: BackendConfig, uplinkMtu: number): number {
  switch (backend.type) {
    case 'vxlan': return (backend.mtu ?? uplinkMtu) - VXLAN_OVERHEAD;
    case 'host-gw': return uplinkMtu;
    case 'udp': return uplinkMtu - UDP_OVERHEAD;
  }
}

/** The tunnel UDP port of a backend (0 for host-gw, which has none). */
export function backendPort(backend: BackendConfig): number {
  return backend.type === 'host-gw' ? 0 : backend.port;
}

/** The VNI the dataplane uses (flannel's vxlan VNI; 0 for backends without one). */
export function backendVni(backend: BackendConfig): number {
  return backend.type === 'vxlan' ? backend.vni : 0;
}
