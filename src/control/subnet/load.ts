/**
 * Lazy construction of the subnet manager the flags ask for: only the client
 * library that is needed (etcd3 or @kubernetes/client-node) is loaded, which
 * keeps the agent's start short (DESIGN.md §7: restart to ready ≤ 1 s).
 */
import type { AgentFlags } from '../config/flags.js';
import type { Logger } from '../log.js';
import type { SubnetManager } from './types.js';

export async function loadSubnetManager(
  flags: AgentFlags,
  logger: Logger,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<SubnetManager> {
  if (flags.kubeSubnetMgr) {
    const { KubeSubnetManager, kubeOptionsFromFlags } = await import('./kube.js');
    return new KubeSubnetManager(kubeOptionsFromFlags(flags, env, { logger }));
  }
  const { EtcdSubnetManager, etcdOptionsFromFlags } = await import('./etcd.js');
  return new EtcdSubnetManager(etcdOptionsFromFlags(flags, { logger, configFile: flags.etcdConfig }));
}
