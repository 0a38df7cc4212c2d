/**
 * Subnet managers: the lease store behind one interface (types.ts).
 * `makeSubnetManager` picks kube (--kube-subnet-mgr) or etcd from the flags,
 * as flanneld does.
 */
import type { AgentFlags } from '../config/flags.js';
import type { Logger } from '../log.js';
import { EtcdSubnetManager, etcdOptionsFromFlags, type EtcdSubnetManagerOptions } from './etcd.js';
import { KubeSubnetManager, kubeOptionsFromFlags, type KubeSubnetManagerOptions } from './kube.js';
import type { SubnetManager } from './types.js';

export * from './types.js';
export * from './etcd.js';
export * from './kube.js';

export interface MakeSubnetManagerExtra {
  etcd?: Partial<EtcdSubnetManagerOptions>;
  kube?: Partial<KubeSubnetManagerOptions>;
}

/**
 * The subnet manager the flags ask for. kube mode resolves the node name
 * from --node-name, NODE_NAME, or POD_NAMESPACE/POD_NAME; etcd mode reads
 * the net-conf from --etcd-config when given, else <etcd-prefix>/config.
 */
export function makeSubnetManager(
  flags: AgentFlags,
  logger: Logger,
  env: Readonly<Record<string, string | undefined>> = process.env,
  extra: MakeSubnetManagerExtra = {},
): SubnetManager {
  if (flags.kubeSubnetMgr) {
    return new KubeSubnetManager(kubeOptionsFromFlags(flags, env, { logger, ...extra.kube }));
  }
  return new EtcdSubnetManager(etcdOptionsFromFlags(flags, {
    logger,
    configFile: flags.etcdConfig,
    ...extra.etcd,
  }));
}
