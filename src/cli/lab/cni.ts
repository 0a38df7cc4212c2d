/**
 * Pods the way Kubernetes + flannel's CNI plugin make them: flannel's plugin
 * reads subnet.env and delegates to the real `bridge` plugin with
 * `host-local` IPAM (flannel-compat.md §9). flannelDelegateConfig() is that
 * derivation (pure); cniAdd/cniDel run the real plugins inside a node.
 */
import fs from 'node:fs';
import type { SubnetEnv } from '../../control/subnet-env.js';
import { formatCidr } from '../../maps/addr.js';
import { nsRun } from './netns.js';

export const CNI_BIN_DIRS = ['/usr/lib/cni', '/opt/cni/bin'];

export function cniBinDir(): string {
  for (const d of CNI_BIN_DIRS) if (fs.existsSync(`${d}/bridge`) && fs.existsSync(`${d}/host-local`)) return d;
  throw new Error('the CNI bridge and host-local plugins are not installed (apt-get install containernetworking-plugins)');
}

/** The network config of the standard kube-flannel conflist's flannel entry. */
export interface FlannelNetConf {
  name: string;
  cniVersion: string;
  delegate?: Record<string, unknown>;
}

export const STANDARD_FLANNEL_NETCONF: FlannelNetConf = {
  name: 'cbr0',
  cniVersion: '0.3.1',
  delegate: { hairpinMode: true, isDefaultGateway: true },
};

/** flannel CNI's ADD: the delegate config built from the netconf and subnet.env. */
export function flannelDelegateConfig(netconf: FlannelNetConf, env: SubnetEnv, ipamDataDir?: string): Record<string, unknown> {
  const d: Record<string, unknown> = { ...(netconf.delegate ?? {}) };
  d.name = netconf.name;
  if (!('type' in d)) d.type = 'bridge';
  if (!('ipMasq' in d)) d.ipMasq = !env.ipMasq;
  if (!('mtu' in d)) d.mtu = env.mtu;
  if (d.type === 'bridge' && !('isGateway' in d)) d.isGateway = true;
  d.cniVersion = netconf.cniVersion;
  const ipam: Record<string, unknown> = {
    type: 'host-local',
    ranges: [[{ subnet: formatCidr(env.subnet) }]],
    routes: [{ dst: formatCidr(env.network) }],
  };
  if (ipamDataDir) ipam.dataDir = ipamDataDir;
  d.ipam = ipam;
  return d;
}

function pluginEnv(command: 'ADD' | 'DEL', containerId: string, podNsPath: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: podNsPath,
    CNI_IFNAME: 'eth0',
    CNI_PATH: cniBinDir(),
  };
}

export interface CniResult {
  ip: string;
  gateway: string;
  mac: string;
}

/** Run the delegate's ADD inside the node namespace for the pod namespace. */
export function cniAdd(nodeNs: string, podNs: string, containerId: string, conf: Record<string, unknown>): CniResult {
  const type = String(conf.type ?? 'bridge');
  const out = nsRun(nodeNs, [`${cniBinDir()}/${type}`], {
    input: JSON.stringify(conf), env: pluginEnv('ADD', containerId, `/run/netns/${podNs}`),
  });
  const res = JSON.parse(out) as { ips?: Array<{ address: string; gateway?: string; interface?: number }>; interfaces?: Array<{ mac?: string; sandbox?: string }> };
  const ip = res.ips?.[0];
  if (!ip) throw new Error(`CNI ADD for ${podNs} returned no IP: ${out}`);
  const podIf = res.interfaces?.find((i) => i.sandbox);
  return { ip: ip.address.split('/')[0] ?? '', gateway: ip.gateway ?? '', mac: podIf?.mac ?? '' };
}

export function cniDel(nodeNs: string, podNs: string, containerId: string, conf: Record<string, unknown>): void {
  const type = String(conf.type ?? 'bridge');
  nsRun(nodeNs, [`${cniBinDir()}/${type}`], { input: JSON.stringify(conf), env: pluginEnv('DEL', containerId, `/run/netns/${podNs}`) });
}
