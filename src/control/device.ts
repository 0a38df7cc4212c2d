/**
 * The flannel-bpf device: the one per-node netlink object (DESIGN.md §2).
 *
 *  - vxlan backend: a VXLAN device bound to our VNI on the tunnel port, as
 *    flannel.1 is. It is both where the kernel routes the cluster network (our
 *    TC egress program sends from there) and the kernel decap engine. Not
 *    external (collect_md) mode: that allocates a metadata dst for every
 *    received packet, which cost 20 % of single-stream TCP against stock
 *    flannel on the lab (the peer/VNI checks run on the uplink instead, before
 *    the kernel's socket sees the packet).
 *  - host-gw / udp backends: one end of a veth pair (kernels without the dummy
 *    driver exist); the other end stays down, so anything our program leaves
 *    alone is discarded instead of looping.
 *
 * Either way: MAC = the node's VtepMAC, ARP off (neighbours are never
 * resolved over it), address = <lease subnet network address>/32, MTU = the
 * backend's pod MTU, and ONE route: the whole cluster network → the device.
 * Runs `ip` (iproute2) through an injectable runner so tests can aim it at a
 * namespace.
 */
import { execFile, execFileSync } from 'node:child_process';
import { type Cidr, formatCidr, formatIPv4 } from '../maps/addr.js';
import { FlannelBpfError } from '../loader/errors.js';

export type IpRunner = (args: string[]) => string;

export const defaultIpRunner: IpRunner = (args) => {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new DeviceError(`ip ${args.join(' ')} failed: ${(e.stderr ?? e.message).trim()}`);
  }
};

export type AsyncIpRunner = (args: string[]) => Promise<string>;

/** `ip` without blocking the event loop (periodic checks on a busy agent). */
export const defaultAsyncIpRunner: AsyncIpRunner = (args) => new Promise((resolve, reject) => {
  execFile('ip', args, { encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
    if (err) reject(new DeviceError(`ip ${args.join(' ')} failed: ${(stderr || err.message).trim()}`));
    else resolve(stdout);
  });
});

export class DeviceError extends FlannelBpfError {
  constructor(message: string, remedy = 'check that iproute2 is installed and the agent has CAP_NET_ADMIN in the node\'s network namespace') {
    super(message, remedy);
  }
}

/** The VXLAN device that already holds our VNI and port (stock flannel's flannel.1 on a node being migrated). */
function vniHolder(ip: IpRunner, vni: number, port: number): string | null {
  try {
    const all = JSON.parse(ip(['-d', '-j', 'link', 'show', 'type', 'vxlan'])) as IpLink[];
    return all.find((l) => l.linkinfo?.info_data?.id === vni && (l.linkinfo.info_data.port ?? 8472) === port)?.ifname ?? null;
  } catch {
    return null;
  }
}

export const DEVICE_NAME = 'flannel-bpf';
/** The veth peer of a non-VXLAN device; kept down. */
export const PEER_SUFFIX = '-p';

export interface DeviceSpec {
  name?: string;
  kind: 'vxlan' | 'veth';
  /** VtepMAC. */
  mac: string;
  mtu: number;
  /** The node's lease subnet: the device gets its network address as /32. */
  subnet: Cidr;
  /** The whole cluster network, routed to the device. */
  network: Cidr;
  /** VXLAN port and VNI (vxlan kind). */
  port?: number;
  vni?: number;
  /** The uplink, for the VXLAN device's `dev` (keeps the socket's source selection on it). */
  uplink?: string;
}

export interface DeviceState {
  name: string;
  ifindex: number;
  mac: string;
  mtu: number;
  created: boolean;
}

interface IpLink {
  ifindex: number;
  ifname: string;
  address?: string;
  mtu: number;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: { external?: boolean; id?: number; port?: number; learning?: boolean } };
}

function links(ip: IpRunner, name: string): IpLink[] {
  try {
    return JSON.parse(ip(['-d', '-j', 'link', 'show', 'dev', name])) as IpLink[];
  } catch {
    return [];
  }
}

/** Is the existing device the one we would create? Otherwise it is recreated. */
function compatible(l: IpLink, spec: DeviceSpec): boolean {
  const kind = l.linkinfo?.info_kind;
  if (spec.kind === 'vxlan') {
    const d = l.linkinfo?.info_data;
    return kind === 'vxlan' && d?.external !== true && d?.id === (spec.vni ?? 1) && d?.port === (spec.port ?? 8472) && d?.learning !== true;
  }
  return kind === 'veth';
}

/**
 * Create the device or reuse a compatible one (a restart keeps it, so
 * traffic through it never stops), then converge MAC, MTU, ARP, address and
 * the cluster route. Idempotent.
 */
export function ensureDevice(spec: DeviceSpec, ip: IpRunner = defaultIpRunner): DeviceState {
  const name = spec.name ?? DEVICE_NAME;
  let existing = links(ip, name)[0];
  let created = false;
  if (existing && !compatible(existing, spec)) {
    ip(['link', 'del', 'dev', name]);
    existing = undefined;
  }
  if (!existing) {
    if (spec.kind === 'vxlan') {
      const args = ['link', 'add', name, 'address', spec.mac, 'type', 'vxlan', 'id', String(spec.vni ?? 1), 'dstport', String(spec.port ?? 8472), 'nolearning'];
      if (spec.uplink) args.push('dev', spec.uplink);
      try {
        ip(args);
      } catch (err) {
        const holder = /VNI already exists/i.test((err as Error).message) ? vniHolder(ip, spec.vni ?? 1, spec.port ?? 8472) : null;
        if (!holder) throw err;
        throw new DeviceError(`cannot create ${name}: ${holder} already uses VNI ${spec.vni ?? 1} on port ${spec.port ?? 8472}${holder.startsWith('flannel.') ? ' (stock flanneld\'s device)' : ''}`,
          `stop flanneld on this node and delete its device (ip link del ${holder}), or let the flannel-cleanup init container do it; see docs/migrate-from-flannel.md`);
      }
    } else {
      ip(['link', 'add', name, 'address', spec.mac, 'type', 'veth', 'peer', 'name', `${name}${PEER_SUFFIX}`]);
    }
    created = true;
  }
  ip(['link', 'set', 'dev', name, 'address', spec.mac, 'mtu', String(spec.mtu), 'arp', 'off']);
  ip(['link', 'set', 'dev', name, 'up']);
  if (spec.kind === 'veth') ip(['link', 'set', 'dev', `${name}${PEER_SUFFIX}`, 'down']);

  /* Exactly one address: the subnet's network address as /32 (flannel's flannel.1 convention). */
  const want = `${formatIPv4(spec.subnet.addr)}/32`;
  const addrs = JSON.parse(ip(['-j', 'addr', 'show', 'dev', name])) as Array<{ addr_info?: Array<{ family: string; local: string; prefixlen: number }> }>;
  for (const a of addrs[0]?.addr_info ?? []) {
    if (a.family === 'inet' && `${a.local}/${a.prefixlen}` !== want) ip(['addr', 'del', `${a.local}/${a.prefixlen}`, 'dev', name]);
  }
  ip(['addr', 'replace', want, 'dev', name]);
  ip(['route', 'replace', formatCidr(spec.network), 'dev', name, 'src', formatIPv4(spec.subnet.addr)]);

  const now = links(ip, name)[0];
  if (!now) throw new DeviceError(`device ${name} vanished right after it was configured`);
  if ((now.address ?? '').toLowerCase() !== spec.mac.toLowerCase()) {
    throw new DeviceError(`device ${name} has MAC ${now.address} instead of the VtepMAC ${spec.mac} (udev MACAddressPolicy?)`);
  }
  return { name, ifindex: now.ifindex, mac: now.address ?? spec.mac, mtu: now.mtu, created };
}

/** Remove the device (and with it its route, address and TC filters). */
export function removeDevice(name = DEVICE_NAME, ip: IpRunner = defaultIpRunner): boolean {
  if (links(ip, name).length === 0) return false;
  ip(['link', 'del', 'dev', name]);
  return true;
}

/** ifindex, MAC and MTU of an interface. */
export function linkInfo(name: string, ip: IpRunner = defaultIpRunner): { ifindex: number; mac: string; mtu: number } {
  const l = links(ip, name)[0];
  if (!l) throw new DeviceError(`interface ${name} not found`);
  return { ifindex: l.ifindex, mac: l.address ?? '00:00:00:00:00:00', mtu: l.mtu };
}
