/**
 * flanneld's command-line flags (flannel-compat.md §2) plus flannel-bpf's own,
 * and the FLANNELD_* environment fallback.
 *
 * Syntax (Go's flag package): `-flag`, `--flag`, `-flag=value`, `--flag value`
 * (not for booleans), bare booleans `--ip-masq` and `--ip-masq=false`.
 * Repeatable flags (`--iface`, `--iface-regex`) collect every occurrence; for
 * other flags the last occurrence wins.
 *
 * Environment: a flag not given on the command line takes the value of
 * FLANNELD_<NAME> (upper case, `-` and `.` → `_`) when that is non-empty; a
 * repeatable flag gets exactly one value from its variable (as flannel's
 * flagutil.SetFlagsFromEnv). Our own flags follow the same rule
 * (FLANNELD_MAX_PEERS, FLANNELD_DECAP, …).
 *
 * Deliberate differences from Go's flag package, all in the direction of
 * refusing instead of silently misreading:
 * - a positional argument is an error (Go stops parsing there and flanneld
 *   ignores the rest, so `--ip-masq false --iface eth1` silently drops both);
 * - `--flag value` where value is itself one of our flags is an error
 *   ("needs a value") rather than taking the flag name as the value;
 * - an invalid FLANNELD_* value is an error (flannel only logs it);
 * - integers are decimal only.
 */
import { isAbsolute } from 'node:path';
import { isIPv4 } from '../../maps/addr.js';
import type { DecapEngine } from '../../maps/config.js';
import { normalizeAnnotationPrefix } from '../lease/kube.js';
import { ConfigError, type ConfigOrigin } from './errors.js';

export const ENV_PREFIX = 'FLANNELD_';

export type DecapChoice = 'auto' | DecapEngine;
export const DECAP_CHOICES: readonly DecapChoice[] = ['auto', 'xdp', 'kernel', 'tc'];

export interface HostPort {
  /** IPv4 address or "" (all addresses). */
  host: string;
  /** 0 disables the listener. */
  port: number;
}

/** Every flag's value after parsing (camelCase of the flag name). */
export interface AgentFlags {
  /* flannel: etcd */
  etcdEndpoints: string[];
  etcdPrefix: string;
  etcdKeyfile: string;
  etcdCertfile: string;
  etcdCafile: string;
  etcdUsername: string;
  etcdPassword: string;
  /* flannel: kube */
  kubeSubnetMgr: boolean;
  kubeApiUrl: string;
  kubeconfigFile: string;
  kubeAnnotationPrefix: string;
  netConfigPath: string;
  setNodeNetworkUnavailable: boolean;
  /* flannel: interface and addresses */
  iface: string[];
  ifaceRegex: string[];
  ifaceCanReach: string;
  publicIp: string;
  publicIpv6: string;
  /* flannel: node */
  subnetFile: string;
  subnetLeaseRenewMargin: number;
  ipMasq: boolean;
  ipMasqFullyRandomDisable: boolean;
  iptablesForwardRules: boolean;
  iptablesResync: number;
  ipBlackholeRoute: boolean;
  healthzIp: string;
  healthzPort: number;
  version: boolean;
  v: number;
  vmodule: string;
  logBacktraceAt: string;
  /* flannel-bpf */
  bpffsPinDir: string;
  metricsAddr: HostPort;
  maxPeers: number;
  decap: DecapChoice;
  fastPath: boolean;
  managedNeighbours: boolean;
  checkSourceMac: boolean;
  nodeName: string;
  etcdConfig: string;
  stateDir: string;
}

export type FlagKind = 'string' | 'bool' | 'int' | 'list' | 'enum';
export type FlagDefault = string | number | boolean | readonly string[];

/** Description of one flag, for docs, --help and tests. */
export interface FlagSpec {
  /** Name without dashes, e.g. "iface-regex". */
  readonly name: string;
  /** Property of AgentFlags it fills. */
  readonly key: keyof AgentFlags;
  readonly kind: FlagKind;
  /** Default as written on the command line (lists: []). */
  readonly default: FlagDefault;
  readonly help: string;
  /** FLANNELD_* variable, or null when the flag has none. */
  readonly env: string | null;
  /** Whether stock flanneld has the flag. */
  readonly origin: 'flannel' | 'flannel-bpf';
  /** Human description of the accepted values. */
  readonly accepted: string;
  /** Accepted for compatibility with flanneld's command line, without effect. */
  readonly ignored?: boolean;
  /** enum flags: the accepted values. */
  readonly values?: readonly string[];
}

export type FlagSource = 'default' | 'command line' | 'environment';

export interface ParsedFlags {
  flags: AgentFlags;
  /** Where each flag's value came from, by flag name. */
  sources: Record<string, FlagSource>;
  /** Accepted, but worth telling the operator. */
  warnings: string[];
  /** -h / --help was given: print usage and exit. Nothing else is parsed. */
  help: boolean;
}

/** `iface-regex` → `FLANNELD_IFACE_REGEX`. */
export function envVarName(flagName: string): string {
  return ENV_PREFIX + flagName.toUpperCase().replace(/[-.]/g, '_');
}

/* ---------------------------------------------------------------- values */

/** A problem with one raw value; turned into a ConfigError naming the flag or variable. */
class BadValue extends Error {
  constructor(readonly problem: string) { super(problem); }
}

const GO_TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const GO_FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

function toBool(s: string): boolean {
  if (GO_TRUE.has(s)) return true;
  if (GO_FALSE.has(s)) return false;
  throw new BadValue('not a boolean');
}

function toInt(min: number, max: number) {
  return (s: string): number => {
    if (!/^[+-]?\d+$/.test(s)) throw new BadValue('not a decimal integer');
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new BadValue('out of range');
    return n;
  };
}

const asString = (s: string): string => s;
const nonEmpty = (s: string): string => {
  if (s === '') throw new BadValue('empty');
  return s;
};
const optionalIPv4 = (s: string): string => {
  if (s !== '' && !isIPv4(s)) throw new BadValue('not an IPv4 address');
  return s;
};
const absolutePath = (s: string): string => {
  if (!isAbsolute(s)) throw new BadValue('not an absolute path');
  return s;
};

function etcdEndpoints(s: string): string[] {
  const list = s.split(',').map((e) => e.trim());
  for (const e of list) {
    if (e === '') throw new BadValue('empty endpoint in the list');
    const m = /^([a-z][a-z0-9+.-]*):\/\/(.+)$/i.exec(e);
    if (m && !['http', 'https', 'unix', 'unixs'].includes((m[1] ?? '').toLowerCase())) {
      throw new BadValue(`endpoint ${JSON.stringify(e)} has scheme ${m[1]}`);
    }
    if (!m && !/^[^\s/]+:\d+$/.test(e)) throw new BadValue(`endpoint ${JSON.stringify(e)} is neither a URL nor host:port`);
  }
  return list;
}

function httpUrl(s: string): string {
  if (s === '') return s;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new BadValue('not a URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new BadValue(`scheme ${u.protocol} is not http or https`);
  return s;
}

function regex(s: string): string {
  if (s === '') throw new BadValue('empty');
  try {
    new RegExp(s);
  } catch (err) {
    throw new BadValue(`not a valid regular expression: ${(err as Error).message}`);
  }
  return s;
}

function listenIp(s: string): string {
  if (s === '' || isIPv4(s as unknown)) return s;
  if (/^[0-9a-fA-F:]+$/.test(s) && s.includes(':')) return s;
  throw new BadValue('not an IP address');
}

function hostPort(s: string): HostPort {
  const i = s.lastIndexOf(':');
  if (i < 0) throw new BadValue('missing :port');
  const host = s.slice(0, i);
  if (host !== '' && !isIPv4(host)) throw new BadValue(`host ${JSON.stringify(host)} is not an IPv4 address`);
  const port = toInt(0, 65535)(s.slice(i + 1));
  return { host, port };
}

function annotationPrefix(s: string): string {
  try {
    normalizeAnnotationPrefix(s);
  } catch (err) {
    throw new BadValue(err instanceof ConfigError ? err.problem : String(err));
  }
  return s;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
function nodeName(s: string): string {
  if (s === '') return s;
  if (s.length > 253 || !DNS_SUBDOMAIN.test(s)) throw new BadValue('not a Kubernetes node name (a lower-case DNS subdomain)');
  return s;
}

function enumOf<T extends string>(values: readonly T[]) {
  return (s: string): T => {
    const hit = values.find((v) => v === s);
    if (hit === undefined) throw new BadValue('not one of the accepted values');
    return hit;
  };
}

function onOff(s: string): boolean {
  if (s === 'on') return true;
  if (s === 'off') return false;
  throw new BadValue('not on or off');
}

function publicIpv6(s: string): string {
  if (s !== '') throw new BadValue('flannel-bpf is IPv4-only for now; IPv6 endpoints are not supported');
  return s;
}

/* ---------------------------------------------------------------- table */

interface FlagDef extends FlagSpec {
  readonly convert: (raw: string) => unknown;
  /** Parsed default value. */
  readonly initial: () => unknown;
}

type DefInit = Omit<FlagSpec, 'env' | 'origin' | 'default' | 'kind'> & {
  kind?: FlagKind;
  default: FlagDefault;
  convert: (raw: string) => unknown;
  env?: false;
  initial?: () => unknown;
};

function def(origin: FlagSpec['origin'], d: DefInit): FlagDef {
  const kind: FlagKind = d.kind ?? (typeof d.default === 'boolean' ? 'bool' : typeof d.default === 'number' ? 'int' : 'string');
  const dflt = d.default;
  const initial = d.initial ?? (() => (Array.isArray(dflt) ? [...dflt] : kind === 'string' || kind === 'enum' ? d.convert(String(dflt)) : dflt));
  return {
    name: d.name,
    key: d.key,
    kind,
    default: dflt,
    help: d.help,
    env: d.env === false ? null : envVarName(d.name),
    origin,
    accepted: d.accepted,
    ...(d.ignored ? { ignored: true } : {}),
    ...(d.values ? { values: d.values } : {}),
    convert: d.convert,
    initial,
  };
}

const flannel = (d: DefInit): FlagDef => def('flannel', d);
const ours = (d: DefInit): FlagDef => def('flannel-bpf', d);

const BOOL = 'true or false (bare --flag means true; also 1/0, t/f)';

const DEFS: readonly FlagDef[] = [
  flannel({ name: 'etcd-endpoints', key: 'etcdEndpoints', default: 'http://127.0.0.1:4001,http://127.0.0.1:2379',
    help: 'a comma-delimited list of etcd endpoints', accepted: 'comma-separated etcd URLs, e.g. https://10.0.0.1:2379,https://10.0.0.2:2379',
    convert: etcdEndpoints, initial: () => ['http://127.0.0.1:4001', 'http://127.0.0.1:2379'] }),
  flannel({ name: 'etcd-prefix', key: 'etcdPrefix', default: '/coreos.com/network', help: 'etcd prefix',
    accepted: 'a non-empty etcd key prefix, e.g. /coreos.com/network', convert: nonEmpty }),
  flannel({ name: 'etcd-keyfile', key: 'etcdKeyfile', default: '', help: 'SSL key file used to secure etcd communication', accepted: 'a file path', convert: asString }),
  flannel({ name: 'etcd-certfile', key: 'etcdCertfile', default: '', help: 'SSL certification file used to secure etcd communication', accepted: 'a file path', convert: asString }),
  flannel({ name: 'etcd-cafile', key: 'etcdCafile', default: '', help: 'SSL Certificate Authority file used to secure etcd communication', accepted: 'a file path', convert: asString }),
  flannel({ name: 'etcd-username', key: 'etcdUsername', default: '', help: 'username for BasicAuth to etcd', accepted: 'a string', convert: asString }),
  flannel({ name: 'etcd-password', key: 'etcdPassword', default: '', help: 'password for BasicAuth to etcd', accepted: 'a string', convert: asString }),
  flannel({ name: 'kube-subnet-mgr', key: 'kubeSubnetMgr', default: false, help: 'contact the Kubernetes API for subnet assignment instead of etcd.', accepted: BOOL, convert: toBool }),
  flannel({ name: 'kube-api-url', key: 'kubeApiUrl', default: '', help: 'Kubernetes API server URL. Does not need to be specified if flannel is running in a pod.',
    accepted: 'an http(s) URL, or empty for the in-cluster config', convert: httpUrl }),
  flannel({ name: 'kubeconfig-file', key: 'kubeconfigFile', default: '', help: 'kubeconfig file location. Does not need to be specified if flannel is running in a pod.', accepted: 'a file path', convert: asString }),
  flannel({ name: 'kube-annotation-prefix', key: 'kubeAnnotationPrefix', default: 'flannel.alpha.coreos.com',
    help: 'Kubernetes annotation prefix. Can contain single slash "/", otherwise it will be appended at the end.',
    accepted: 'fqdn or fqdn/name with lower-case letters, digits, "-", "_" and "." (e.g. flannel.alpha.coreos.com)', convert: annotationPrefix }),
  flannel({ name: 'net-config-path', key: 'netConfigPath', default: '/etc/kube-flannel/net-conf.json', help: 'path to the network configuration file', accepted: 'a file path', convert: nonEmpty }),
  flannel({ name: 'set-node-network-unavailable', key: 'setNodeNetworkUnavailable', default: true, help: 'set NodeNetworkUnavailable after ready', accepted: BOOL, convert: toBool }),
  flannel({ name: 'iface', key: 'iface', kind: 'list', default: [],
    help: 'interface to use (IP or name) for inter-host communication. Can be specified multiple times to check each option in order. Returns the first match found.',
    accepted: 'an interface name or IPv4 address (repeatable)', convert: nonEmpty }),
  flannel({ name: 'iface-regex', key: 'ifaceRegex', kind: 'list', default: [],
    help: 'regex expression to match the first interface to use (IP or name) for inter-host communication. Can be specified multiple times to check each regex in order. Returns the first match found. Regexes are checked after specific interfaces specified by the iface option have already been checked.',
    accepted: 'a regular expression (repeatable)', convert: regex }),
  flannel({ name: 'iface-can-reach', key: 'ifaceCanReach', default: '',
    help: "detect interface to use (IP or name) for inter-host communication based on which will be used for provided IP. This is exactly the interface to use of command 'ip route get <ip-address>'",
    accepted: 'an IPv4 address', convert: optionalIPv4 }),
  flannel({ name: 'public-ip', key: 'publicIp', default: '', help: 'IP accessible by other nodes for inter-host communication', accepted: 'an IPv4 address', convert: optionalIPv4 }),
  flannel({ name: 'public-ipv6', key: 'publicIpv6', default: '', help: 'IPv6 accessible by other nodes for inter-host communication (not supported: flannel-bpf is IPv4-only)',
    accepted: 'empty (flannel-bpf is IPv4-only)', convert: publicIpv6 }),
  flannel({ name: 'subnet-file', key: 'subnetFile', default: '/run/flannel/subnet.env', help: 'filename where env variables (subnet, MTU, ... ) will be written to', accepted: 'a file path', convert: nonEmpty }),
  flannel({ name: 'subnet-lease-renew-margin', key: 'subnetLeaseRenewMargin', default: 60, help: 'subnet lease renewal margin, in minutes, ranging from 1 to 1439',
    accepted: 'an integer 1..1439 (minutes)', convert: toInt(1, 1439) }),
  flannel({ name: 'ip-masq', key: 'ipMasq', default: false, help: 'setup IP masquerade rule for traffic destined outside of overlay network', accepted: BOOL, convert: toBool }),
  flannel({ name: 'ip-masq-fully-random-disable', key: 'ipMasqFullyRandomDisable', default: false, help: 'disable fully-random mode for MASQUERADE', accepted: BOOL, convert: toBool }),
  flannel({ name: 'iptables-forward-rules', key: 'iptablesForwardRules', default: true, help: 'add default accept rules to FORWARD chain in iptables', accepted: BOOL, convert: toBool }),
  flannel({ name: 'iptables-resync', key: 'iptablesResync', default: 5, help: 'resync period for iptables rules, in seconds', accepted: 'an integer 1..86400 (seconds)', convert: toInt(1, 86400) }),
  flannel({ name: 'ip-blackhole-route', key: 'ipBlackholeRoute', default: false, help: 'add a blackhole route for this node\'s own pod subnet (metric 4096, below the bridge route)', accepted: BOOL, convert: toBool }),
  flannel({ name: 'healthz-ip', key: 'healthzIp', default: '0.0.0.0', help: 'the IP address for healthz server to listen', accepted: 'an IP address', convert: listenIp }),
  flannel({ name: 'healthz-port', key: 'healthzPort', default: 0, help: 'the port for healthz server to listen(0 to disable)', accepted: 'an integer 0..65535 (0 disables)', convert: toInt(0, 65535) }),
  flannel({ name: 'version', key: 'version', default: false, help: 'print version and exit', accepted: BOOL, convert: toBool, env: false }),
  flannel({ name: 'v', key: 'v', default: 0, help: 'number for the log level verbosity (0: info; 1 or more: debug)', accepted: 'an integer 0..2147483647', convert: toInt(0, 2147483647) }),
  flannel({ name: 'vmodule', key: 'vmodule', default: '', help: 'comma-separated list of pattern=N settings for file-filtered logging (accepted for flanneld compatibility; ignored)',
    accepted: 'a string (ignored)', convert: asString, ignored: true }),
  flannel({ name: 'log_backtrace_at', key: 'logBacktraceAt', default: '', help: 'when logging hits line file:N, emit a stack trace (accepted for flanneld compatibility; ignored)',
    accepted: 'a string (ignored)', convert: asString, ignored: true }),
  ours({ name: 'bpffs-pin-dir', key: 'bpffsPinDir', default: '/sys/fs/bpf/flannel-bpf', help: 'directory in bpffs where this node\'s maps and programs are pinned',
    accepted: 'an absolute path on a bpffs mount', convert: absolutePath }),
  ours({ name: 'metrics-addr', key: 'metricsAddr', default: '0.0.0.0:9472', help: 'address of the Prometheus metrics endpoint (port 0 disables it)',
    accepted: '<IPv4>:<port> or :<port>, port 0..65535 (0 disables)', convert: hostPort }),
  ours({ name: 'max-peers', key: 'maxPeers', default: 65536, help: 'capacity of the peer maps; peer ids are 1..max-peers-1, so at most max-peers-1 peers',
    accepted: 'an integer 1..1048576', convert: toInt(1, 1048576) }),
  ours({ name: 'decap', key: 'decap', kind: 'enum', default: 'auto', values: DECAP_CHOICES, help: 'receive-side decapsulation engine: auto, xdp, kernel or tc',
    accepted: DECAP_CHOICES.join(', '), convert: enumOf(DECAP_CHOICES) }),
  ours({ name: 'fast-path', key: 'fastPath', kind: 'enum', default: 'on', values: ['on', 'off'], help: 'deliver straight into pods, bypassing kernel forwarding for flows netfilter does not touch',
    accepted: 'on, off', convert: onOff }),
  ours({ name: 'managed-neighbours', key: 'managedNeighbours', kind: 'enum', default: 'on', values: ['on', 'off'], help: 'have the kernel keep the neighbour entries the programs read resolved (managed entries): the peers\' next hops on the uplink, so the programs follow a next hop\'s MAC change, and the pods on cni0 (fast path), so the neighbour GC never takes an idle pod off the fast path',
    accepted: 'on, off', convert: onOff }),
  ours({ name: 'check-source-mac', key: 'checkSourceMac', kind: 'enum', default: 'off', values: ['on', 'off'], help: 'accept tunnel packets from a peer only from our next hop\'s MAC towards it (drops a peer IP forged on the segment; breaks senders whose MAC differs, e.g. VRRP routers, balance-alb bonds)',
    accepted: 'on, off', convert: onOff }),
  ours({ name: 'node-name', key: 'nodeName', default: '', help: 'this node\'s name (kube mode; default: NODE_NAME, else the pod\'s spec.nodeName)',
    accepted: 'a Kubernetes node name', convert: nodeName }),
  ours({ name: 'etcd-config', key: 'etcdConfig', default: '', help: 'etcd mode: read the network config from this net-conf.json file instead of <etcd-prefix>/config',
    accepted: 'a file path', convert: asString }),
  ours({ name: 'state-dir', key: 'stateDir', default: '/run/flannel-bpf', help: 'directory for the agent\'s local state', accepted: 'an absolute path', convert: absolutePath }),
];

const BY_NAME = new Map(DEFS.map((d) => [d.name, d]));

/** Every flag flannel-bpf accepts, in --help order. */
export const FLAG_SPECS: readonly FlagSpec[] = DEFS.map(({ convert: _c, initial: _i, ...spec }) => spec);

/* ---------------------------------------------------------------- parsing */

function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] ?? 0;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j] ?? 0;
      prev[j] = Math.min((prev[j] ?? 0) + 1, (prev[j - 1] ?? 0) + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length] ?? 0;
}

function suggest(name: string): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const d of DEFS) {
    const dist = levenshtein(name, d.name);
    if (dist < bestD) { best = d.name; bestD = dist; }
  }
  return best;
}

function flagError(origin: ConfigOrigin, field: string, value: unknown, problem: string, accepted: string, remedy?: string): ConfigError {
  return new ConfigError({ origin, field, value, problem, accepted, remedy });
}

/**
 * Parse flanneld-style flags, then fill the flags not given from FLANNELD_*
 * variables. Pure: reads only its arguments. Throws ConfigError.
 */
export function parseFlags(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ParsedFlags {
  const values = new Map<string, unknown>();
  const sources: Record<string, FlagSource> = {};
  for (const d of DEFS) {
    values.set(d.name, d.initial());
    sources[d.name] = 'default';
  }
  const warnings: string[] = [];

  const convert = (d: FlagDef, raw: string, origin: ConfigOrigin, field: string): unknown => {
    try {
      return d.convert(raw);
    } catch (err) {
      if (err instanceof BadValue) throw flagError(origin, field, raw, err.problem, d.accepted);
      throw err;
    }
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      const rest = argv.slice(i + 1);
      if (rest.length > 0) {
        throw flagError('command line', rest[0] ?? '', rest[0], 'unexpected positional argument after "--"', 'flags only (flannel-bpf agent takes no positional arguments)');
      }
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      const prev = argv[i - 1] ?? '';
      const prevDef = BY_NAME.get(prev.replace(/^--?/, ''));
      const remedy = prevDef?.kind === 'bool'
        ? `boolean flags take their value after "=": write ${prev}=${arg}`
        : 'remove the argument, or give it as the value of a flag (--flag=value)';
      throw flagError('command line', arg, arg, 'unexpected positional argument', 'flags only (flannel-bpf agent takes no positional arguments)', remedy);
    }
    const body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    if (body === '' || body.startsWith('-') || body.startsWith('=')) {
      throw flagError('command line', arg, arg, 'bad flag syntax', '-flag, --flag, -flag=value or --flag value');
    }
    const eq = body.indexOf('=');
    const name = eq < 0 ? body : body.slice(0, eq);
    let raw: string | undefined = eq < 0 ? undefined : body.slice(eq + 1);
    if (name === 'h' || name === 'help') {
      return { flags: materialise(valuesFromDefaults()), sources: Object.fromEntries(DEFS.map((d) => [d.name, 'default' as FlagSource])), warnings: [], help: true };
    }
    const d = BY_NAME.get(name);
    const field = `--${name}`;
    if (!d) {
      const hint = suggest(name);
      throw flagError('command line', field, undefined, 'unknown flag' + (hint ? ` (did you mean --${hint}?)` : ''),
        'one of the flags listed by --help', hint ? `use --${hint}` : 'run with --help for the list of flags');
    }
    if (d.kind === 'bool') {
      raw ??= 'true';
    } else if (raw === undefined) {
      const next = argv[i + 1];
      const nextName = next?.startsWith('-') ? next.replace(/^--?/, '').split('=')[0] ?? '' : '';
      if (next === undefined || (next.startsWith('-') && (BY_NAME.has(nextName) || nextName === 'h' || nextName === 'help'))) {
        throw flagError('command line', field, undefined, 'needs a value', d.accepted, `write ${field}=<value>`);
      }
      raw = next;
      i++;
    }
    const v = convert(d, raw, 'command line', field);
    if (d.kind === 'list') {
      const list = sources[d.name] === 'command line' ? (values.get(d.name) as string[]) : [];
      list.push(v as string);
      values.set(d.name, list);
    } else {
      values.set(d.name, v);
    }
    sources[d.name] = 'command line';
  }

  /* FLANNELD_* for the flags not given on the command line. */
  const envNames = new Set<string>();
  for (const d of DEFS) {
    if (!d.env) continue;
    envNames.add(d.env);
    if (sources[d.name] === 'command line') continue;
    const raw = env[d.env];
    if (raw === undefined || raw === '') continue;
    const v = convert(d, raw, 'environment', d.env);
    values.set(d.name, d.kind === 'list' ? [v] : v);
    sources[d.name] = 'environment';
  }
  for (const k of Object.keys(env).sort()) {
    if (k.startsWith(ENV_PREFIX) && !envNames.has(k) && env[k] !== undefined) {
      const hint = suggest(k.slice(ENV_PREFIX.length).toLowerCase().replace(/_/g, '-'));
      warnings.push(`environment variable ${k} matches no flag and is ignored${hint ? ` (did you mean ${envVarName(hint)}?)` : ''}`);
    }
  }

  const flags = materialise(values);

  /* Cross-flag checks. */
  if ((flags.etcdKeyfile === '') !== (flags.etcdCertfile === '') && !flags.kubeSubnetMgr) {
    warnings.push('only one of --etcd-keyfile / --etcd-certfile is set: TLS is used only when both are given, so etcd is contacted over plain http (as flannel does)');
  }
  if (flags.kubeSubnetMgr && flags.etcdConfig !== '') {
    warnings.push('--etcd-config is ignored with --kube-subnet-mgr (the network config comes from --net-config-path)');
  }
  if (!flags.etcdPrefix.startsWith('/')) {
    warnings.push(`--etcd-prefix ${JSON.stringify(flags.etcdPrefix)} does not start with "/": keys will not match a stock flannel using /coreos.com/network`);
  }
  for (const d of DEFS) {
    if (d.ignored && sources[d.name] !== 'default') warnings.push(`--${d.name} is accepted for flanneld compatibility and has no effect`);
  }
  return { flags, sources, warnings, help: false };
}

function valuesFromDefaults(): Map<string, unknown> {
  return new Map(DEFS.map((d) => [d.name, d.initial()]));
}

function materialise(values: Map<string, unknown>): AgentFlags {
  const out: Record<string, unknown> = {};
  for (const d of DEFS) out[d.key] = values.get(d.name);
  return out as unknown as AgentFlags;
}

/** The default value of every flag. */
export function defaultFlags(): AgentFlags {
  return materialise(valuesFromDefaults());
}

/** --help text. */
export function formatUsage(program = 'flannel-bpf agent'): string {
  const lines = [`Usage: ${program} [OPTION]...`, ''];
  for (const s of FLAG_SPECS) {
    const dflt = Array.isArray(s.default) ? '' : s.default === '' ? '' : ` (default ${JSON.stringify(s.default)})`;
    const arg = s.kind === 'bool' ? '' : s.kind === 'int' ? ' int' : s.kind === 'enum' ? ` ${(s.values ?? []).join('|')}` : ' string';
    lines.push(`  --${s.name}${arg}`);
    lines.push(`        ${s.help}${dflt}${s.env ? ` [$${s.env}]` : ''}`);
  }
  return lines.join('\n') + '\n';
}

/** How the agent learns its node name in kube mode (flannel: NODE_NAME, else the pod's spec.nodeName). */
export type NodeNameSource =
  | { kind: 'name'; name: string; from: '--node-name' | 'NODE_NAME' }
  | { kind: 'pod'; namespace: string; pod: string };

export function resolveNodeName(flags: Pick<AgentFlags, 'nodeName'>, env: Readonly<Record<string, string | undefined>>): NodeNameSource {
  if (flags.nodeName !== '') return { kind: 'name', name: flags.nodeName, from: '--node-name' };
  const nn = env.NODE_NAME ?? '';
  if (nn !== '') return { kind: 'name', name: nn, from: 'NODE_NAME' };
  const pod = env.POD_NAME ?? '';
  const ns = env.POD_NAMESPACE ?? '';
  if (pod !== '' && ns !== '') return { kind: 'pod', namespace: ns, pod };
  throw new ConfigError({
    origin: 'environment', field: 'NODE_NAME', problem: 'the node name is unknown (flannel: "env variables POD_NAME and POD_NAMESPACE must be set")',
    accepted: '--node-name, NODE_NAME, or POD_NAME and POD_NAMESPACE',
    remedy: 'in the DaemonSet set env NODE_NAME from fieldRef spec.nodeName (or POD_NAME/POD_NAMESPACE from metadata.name/metadata.namespace)',
  });
}
