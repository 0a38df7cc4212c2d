/**
 * flannel-cleanup: remove what a stopped stock flanneld leaves on a node, so
 * that flannel-bpf can take the node over (docs/migrate-from-flannel.md). The
 * `remove-flannel` init container of the DaemonSet runs it before the agent
 * starts:
 *
 *   node dist/deploy/flannel-cleanup.js [--dry-run] [--force] [--node-name N] [--kubeconfig F] [net-conf.json]
 *
 * Removed:
 *  - flannel.1, flanneld's VXLAN device (vxlan backend). It holds VNI 1 on
 *    UDP 8472; the kernel refuses a second device with that VNI and port
 *    ("A VXLAN device with the specified VNI already exists"), so our agent
 *    cannot create its own while flannel.1 exists. Its per-peer routes,
 *    neighbours and FDB entries go with it.
 *  - flanneld's per-peer routes on the uplink: a route to a subnet inside the
 *    cluster Network through a gateway (host-gw, and vxlan DirectRouting
 *    peers). They are more specific than flannel-bpf's one cluster route and
 *    would carry traffic past our programs.
 *
 * Only on a node handed over on purpose: when there is something to remove,
 * the node must carry the label flannel-bpf/dataplane=bpf (set by the operator
 * once flannel's pod has left the node), otherwise nothing is touched and the
 * exit status is 1 with the reason, so that a flannel-bpf pod started next to
 * a running flanneld (say, the manifest applied to a flannel cluster without
 * the migration steps) never pulls flannel.1 from under it. --force skips the
 * check (by hand, outside Kubernetes). On a node without flannel's leftovers
 * (every fresh install) nothing is read from the API and nothing is done.
 *
 * Left alone: cni0 and the pods (same subnet, same bridge), subnet.env
 * (rewritten with the same content), flannel's iptables chains (FLANNEL-POSTRTG
 * and FLANNEL-FWD are rewritten with the same rules), the routes of the node's
 * own subnet (cni0) and of flannel-bpf, and flannel0 (udp backend: a tun
 * device that disappears with flanneld).
 */
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseNetConf } from '../src/control/config/net-conf.js';
import { defaultIpRunner, DEVICE_NAME, type IpRunner } from '../src/control/device.js';
import { cidrContains, formatCidr, parseCidr, type Cidr } from '../src/maps/addr.js';

/** flanneld's VXLAN device (IPv4). */
export const FLANNEL_VXLAN_DEVICE = 'flannel.1';
export const DEFAULT_NET_CONF = '/etc/kube-flannel/net-conf.json';
/** The node label that hands a node over to flannel-bpf (docs/migrate-from-flannel.md). */
export const DATAPLANE_LABEL = 'flannel-bpf/dataplane';
export const HANDED_OVER = 'bpf';
/** The command line's flags (docs are checked against this list). */
export const CLEANUP_FLAGS = ['--dry-run', '--force', '--node-name', '--kubeconfig'] as const;

/** The fields of `ip -d -j link show` used here. */
export interface LinkJson {
  ifname: string;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; port?: number } };
}

/** The fields of `ip -j -4 route show table main` used here. */
export interface RouteJson {
  dst: string;
  gateway?: string;
  dev?: string;
  type?: string;
}

export class CleanupRefused extends Error {
  constructor(message: string, readonly remedy: string) { super(message); }
}

/** A route's destination as a CIDR (host routes included), or null ("default", unparsable). */
function routeDst(dst: string): Cidr | null {
  if (dst === 'default') return null;
  try {
    return parseCidr(dst.includes('/') ? dst : `${dst}/32`, false);
  } catch {
    return null;
  }
}

/** Inside the network and more specific than it (the network's own route is not a per-peer route). */
function insideNetwork(network: Cidr, dst: Cidr): boolean {
  return dst.prefix > network.prefix && cidrContains(network, dst.addr);
}

/** The `ip` commands that remove flanneld's leftovers, in order. Pure. */
export function planCleanup(network: Cidr, links: readonly LinkJson[], routes: readonly RouteJson[]): string[][] {
  const cmds: string[][] = [];
  if (links.some((l) => l.ifname === FLANNEL_VXLAN_DEVICE && l.linkinfo?.info_kind === 'vxlan')) {
    cmds.push(['link', 'delete', 'dev', FLANNEL_VXLAN_DEVICE]);
  }
  for (const r of routes) {
    if ((r.type ?? 'unicast') !== 'unicast' || r.gateway === undefined || r.dev === undefined) continue;
    if (r.dev === FLANNEL_VXLAN_DEVICE || r.dev === DEVICE_NAME) continue; /* gone with flannel.1 / ours */
    const dst = routeDst(r.dst);
    if (!dst || !insideNetwork(network, dst)) continue;
    cmds.push(['route', 'delete', formatCidr(dst), 'via', r.gateway, 'dev', r.dev]);
  }
  return cmds;
}

export interface CleanupOptions {
  /** net-conf.json text (the ConfigMap's). */
  netConf: string;
  /** The node's labels (asked only when there is something to remove); null: unknown. */
  nodeLabels: () => Promise<Record<string, string> | null>;
  ip?: IpRunner;
  /** Print what would be removed, remove nothing. */
  dryRun?: boolean;
  /** Skip the label check. */
  force?: boolean;
  document?: string;
}

/** Read the node's links and routes and remove flanneld's leftovers; one line per action. Throws CleanupRefused. */
export async function cleanup(opts: CleanupOptions): Promise<string[]> {
  const ip = opts.ip ?? defaultIpRunner;
  const conf = parseNetConf(opts.netConf, { mode: 'kube', document: opts.document ?? DEFAULT_NET_CONF });
  const links = JSON.parse(ip(['-d', '-j', 'link', 'show'])) as LinkJson[];
  const routes = JSON.parse(ip(['-j', '-4', 'route', 'show', 'table', 'main'])) as RouteJson[];
  const cmds = planCleanup(conf.network, links, routes);
  if (cmds.length === 0) {
    return [`nothing of stock flannel on this node (no ${FLANNEL_VXLAN_DEVICE}, no per-peer routes in ${formatCidr(conf.network)})`];
  }
  const what = cmds.map((c) => `ip ${c.join(' ')}`).join('; ');
  if (!opts.force) {
    const labels = await opts.nodeLabels();
    const value = labels?.[DATAPLANE_LABEL];
    if (value !== HANDED_OVER) {
      throw new CleanupRefused(
        `stock flannel's state is on this node (${what}) but the node is not handed over to flannel-bpf `
        + `(label ${DATAPLANE_LABEL}=${value ?? '<none>'}, want ${HANDED_OVER}); nothing was changed`,
        `if flannel runs here, migrate the node as docs/migrate-from-flannel.md says (label it ${DATAPLANE_LABEL}=migrating, `
        + `wait for flannel's pod to leave, then label it ${DATAPLANE_LABEL}=${HANDED_OVER}); if flannel is gone and left this behind, `
        + `label the node ${DATAPLANE_LABEL}=${HANDED_OVER}`);
    }
  }
  const out: string[] = [];
  for (const c of cmds) {
    if (!opts.dryRun) ip(c);
    out.push(`${opts.dryRun ? 'would run' : 'ran'}: ip ${c.join(' ')}`);
  }
  return out;
}

/** The labels of a Node through the Kubernetes API (one GET nodes/<name>, allowed by flannel's ClusterRole). */
export async function kubeNodeLabels(nodeName: string, kube: { kubeconfigFile?: string; kubeApiUrl?: string } = {}): Promise<Record<string, string> | null> {
  const [{ CoreV1Api }, { buildKubeConfig }] = await Promise.all([import('@kubernetes/client-node'), import('../src/control/subnet/kube.js')]);
  const api = buildKubeConfig(kube).makeApiClient(CoreV1Api);
  const node = await api.readNode({ name: nodeName });
  return node.metadata?.labels ?? {};
}

interface Args { dryRun: boolean; force: boolean; nodeName: string; kubeconfig: string; file: string }

function parseArgs(argv: string[], env: NodeJS.ProcessEnv): Args | null {
  const a: Args = { dryRun: false, force: false, nodeName: env.NODE_NAME ?? '', kubeconfig: '', file: DEFAULT_NET_CONF };
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const [name, inline] = arg.startsWith('--') ? [arg.split('=')[0], arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : undefined] : [arg, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    if (name === '--dry-run') a.dryRun = true;
    else if (name === '--force') a.force = true;
    else if (name === '--node-name') a.nodeName = value() ?? '';
    else if (name === '--kubeconfig') a.kubeconfig = value() ?? '';
    else if (!arg.startsWith('-')) files.push(arg);
    else return null;
  }
  if (files.length > 1) return null;
  a.file = files[0] ?? DEFAULT_NET_CONF;
  return a;
}

async function main(argv: string[]): Promise<number> {
  const a = parseArgs(argv, process.env);
  if (!a) {
    process.stderr.write('usage: flannel-cleanup [--dry-run] [--force] [--node-name NAME] [--kubeconfig FILE] [net-conf.json]\n');
    return 2;
  }
  try {
    const lines = await cleanup({
      netConf: fs.readFileSync(a.file, 'utf8'), document: a.file, dryRun: a.dryRun, force: a.force,
      nodeLabels: async () => {
        if (a.nodeName === '') throw new CleanupRefused('the node name is unknown', 'set NODE_NAME (fieldRef spec.nodeName) or --node-name, or use --force');
        try {
          return await kubeNodeLabels(a.nodeName, { kubeconfigFile: a.kubeconfig });
        } catch (err) {
          throw new CleanupRefused(`cannot read the labels of node ${a.nodeName} from the Kubernetes API: ${(err as Error).message}; nothing was changed`,
            'the pod needs its service account token and "get" on nodes (flannel\'s ClusterRole); by hand: --kubeconfig FILE, or --force');
        }
      },
    });
    for (const line of lines) process.stdout.write(`flannel-cleanup: ${line}\n`);
    return 0;
  } catch (err) {
    const e = err as Error & { remedy?: string };
    process.stderr.write(`flannel-cleanup: ${e.message}${e.remedy ? `\n  remedy: ${e.remedy}` : ''}\n`);
    return 1;
  }
}

const entry = process.argv[1];
if (entry && import.meta.url === pathToFileURL(fs.realpathSync(entry)).href) {
  void main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
