/**
 * Choosing the uplink (flannel's --iface / --iface-regex / --iface-can-reach /
 * --public-ip / default route) and reading the facts the reconciler needs
 * (the uplink's on-link subnets). The choice is a pure function of interface
 * facts; reading the facts runs `ip -j` (iproute2) in the agent's namespace.
 */
import { type Cidr, parseIPv4, formatIPv4, prefixMask, isIPv4 } from '../maps/addr.js';
import { FlannelBpfError } from '../loader/errors.js';
import { defaultIpRunner, type IpRunner } from './device.js';

export interface InterfaceFacts {
  name: string;
  ifindex: number;
  mtu: number;
  mac: string;
  up: boolean;
  /** IPv4 addresses in the order the kernel lists them. */
  addrs: Array<{ ip: number; prefix: number }>;
}

export interface UplinkChoice {
  iface: InterfaceFacts;
  /** The external address: --public-ip, else the interface's first IPv4 address. */
  publicIp: number;
  /** Why this interface (for the log and status). */
  reason: string;
}

export interface UplinkOptions {
  iface: readonly string[];
  ifaceRegex: readonly string[];
  ifaceCanReach: string;
  publicIp: string;
}

export class UplinkError extends FlannelBpfError {}

/** Interfaces that never carry the overlay. */
const IGNORED = (name: string) => name === 'lo' || name.startsWith('flannel') || name === 'cni0';

/**
 * flannel's interface selection (pkg/ipmatch LookupExtIface): --iface entries
 * (name or IP) in order, then --iface-regex (IPs first, then names), then
 * --iface-can-reach (the interface the kernel routes that IP through), else
 * the interface owning --public-ip, else the default-route interface.
 */
export function chooseUplink(ifaces: readonly InterfaceFacts[], opts: UplinkOptions,
  routes: { defaultIface: string | null; canReachIface: string | null }): UplinkChoice {
  const withV4 = ifaces.filter((i) => !IGNORED(i.name) && i.addrs.length > 0);
  const pick = (iface: InterfaceFacts, reason: string, ip?: number): UplinkChoice => {
    let publicIp = ip ?? iface.addrs[0]?.ip;
    if (opts.publicIp) publicIp = parseIPv4(opts.publicIp);
    if (publicIp === undefined) throw new UplinkError(`interface ${iface.name} has no IPv4 address`, 'give it an address or choose another with --iface');
    return { iface, publicIp, reason };
  };

  for (const want of opts.iface) {
    if (isIPv4(want)) {
      const ip = parseIPv4(want);
      const hit = withV4.find((i) => i.addrs.some((a) => a.ip === ip));
      if (hit) return pick(hit, `--iface ${want}`, ip);
    } else {
      const hit = ifaces.find((i) => i.name === want);
      if (hit) return pick(hit, `--iface ${want}`);
    }
  }
  if (opts.iface.length) {
    throw new UplinkError(`none of --iface ${opts.iface.join(', ')} exists with an IPv4 address`,
      `choose among: ${withV4.map((i) => i.name).join(', ') || '(no interface with IPv4)'}`);
  }
  for (const pattern of opts.ifaceRegex) {
    let re: RegExp;
    try { re = new RegExp(pattern); } catch (err) {
      throw new UplinkError(`--iface-regex ${JSON.stringify(pattern)} is not a valid regular expression: ${(err as Error).message}`, 'fix the pattern');
    }
    for (const i of withV4) {
      const a = i.addrs.find((x) => re.test(formatIPv4(x.ip)));
      if (a) return pick(i, `--iface-regex ${pattern} (address)`, a.ip);
    }
    const byName = withV4.find((i) => re.test(i.name));
    if (byName) return pick(byName, `--iface-regex ${pattern} (name)`);
  }
  if (opts.ifaceRegex.length) {
    throw new UplinkError(`no interface matches --iface-regex ${opts.ifaceRegex.join(', ')}`, `interfaces: ${withV4.map((i) => i.name).join(', ')}`);
  }
  if (opts.ifaceCanReach) {
    const hit = routes.canReachIface ? ifaces.find((i) => i.name === routes.canReachIface) : undefined;
    if (!hit) throw new UplinkError(`no route to --iface-can-reach ${opts.ifaceCanReach}`, 'check the routing table or use --iface');
    return pick(hit, `--iface-can-reach ${opts.ifaceCanReach}`);
  }
  if (opts.publicIp) {
    const ip = parseIPv4(opts.publicIp);
    const hit = withV4.find((i) => i.addrs.some((a) => a.ip === ip));
    if (hit) return pick(hit, `owns --public-ip ${opts.publicIp}`, ip);
  }
  const def = routes.defaultIface ? ifaces.find((i) => i.name === routes.defaultIface) : undefined;
  if (def) return pick(def, 'default route');
  throw new UplinkError('no default route and no --iface/--iface-regex/--iface-can-reach given, so no uplink can be chosen',
    'pass --iface=<interface or IP> (or add a default route)');
}

interface IpAddrJson {
  ifindex: number; ifname: string; mtu: number; address?: string; operstate?: string; flags?: string[];
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

/** Interfaces of this namespace with their IPv4 addresses. */
export function readInterfaces(ip: IpRunner = defaultIpRunner): InterfaceFacts[] {
  const rows = JSON.parse(ip(['-j', 'addr', 'show'])) as IpAddrJson[];
  return rows.map((r) => ({
    name: r.ifname,
    ifindex: r.ifindex,
    mtu: r.mtu,
    mac: r.address ?? '00:00:00:00:00:00',
    up: (r.flags ?? []).includes('UP'),
    addrs: (r.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => ({ ip: parseIPv4(a.local), prefix: a.prefixlen })),
  }));
}

export function readRoutes(opts: { ifaceCanReach?: string }, ip: IpRunner = defaultIpRunner): { defaultIface: string | null; canReachIface: string | null } {
  const def = JSON.parse(ip(['-j', 'route', 'show', 'default'])) as Array<{ dev?: string }>;
  let canReachIface: string | null = null;
  if (opts.ifaceCanReach) {
    try {
      const r = JSON.parse(ip(['-j', 'route', 'get', opts.ifaceCanReach])) as Array<{ dev?: string }>;
      canReachIface = r[0]?.dev ?? null;
    } catch { canReachIface = null; }
  }
  return { defaultIface: def[0]?.dev ?? null, canReachIface };
}

/**
 * Subnets directly on the uplink's link (connected routes without a
 * gateway): peers inside them are adjacent, so DirectRouting / host-gw can
 * reach them without a router (flannel's ip.DirectRouting rule).
 */
export function onLinkSubnets(uplink: string, ip: IpRunner = defaultIpRunner): Cidr[] {
  return parseOnLinkRoutes(ip(['-j', 'route', 'show', 'dev', uplink]));
}

/** The on-link subnets in `ip -j route show dev <uplink>` output (routes without a gateway). */
export function parseOnLinkRoutes(json: string): Cidr[] {
  const rows = JSON.parse(json || '[]') as Array<{ dst?: string; gateway?: string; scope?: string }>;
  const out: Cidr[] = [];
  for (const r of rows) {
    if (r.gateway || !r.dst || r.dst === 'default') continue;
    const [addr, plen] = r.dst.includes('/') ? r.dst.split('/') : [r.dst, '32'];
    if (!addr || !isIPv4(addr)) continue;
    const prefix = Number(plen);
    out.push({ addr: (parseIPv4(addr) & prefixMask(prefix)) >>> 0, prefix });
  }
  return out;
}
