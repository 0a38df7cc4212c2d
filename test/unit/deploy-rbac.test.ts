/**
 * The manifest's ClusterRole against the API calls flannel-bpf really makes: the agent's Kubernetes subnet
 * manager, built from the DaemonSet's own arguments and environment through the same loader the agent uses
 * (src/control/subnet/load.ts), driven in the agent's order (network config, node hints, lease, watch,
 * NetworkUnavailable, a peer change) against the Kubernetes API-SERVER DOUBLE (test/fixtures/apiserver-double.ts,
 * an in-process HTTP server on 127.0.0.1, not a real API server); plus the remove-flannel init container's
 * node lookup. The "verb resource[/subresource]" set of the double's request log must equal the rules.
 */
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApiServerDouble, type JsonObject } from '../fixtures/apiserver-double.js';
import { parseFlags } from '../../src/control/config/flags.js';
import { parseNetConf } from '../../src/control/config/net-conf.js';
import { loadSubnetManager } from '../../src/control/subnet/load.js';
import type { LeaseEvent } from '../../src/control/subnet/types.js';
import { createLogger, createTestSink } from '../../src/control/log.js';
import { parseIPv4 } from '../../src/maps/addr.js';
import { kubeNodeLabels } from '../../deploy/flannel-cleanup.js';
import { ROOT, at, loadManifest, containerEnv, runtimeSources, type Obj } from './deploy-support.js';

const m = loadManifest();
const P = 'flannel.alpha.coreos.com/';

/** "verb resource" for every verb × resource of the ClusterRole (core group only, no names, no wildcards). */
function ruleCalls(): Set<string> {
  const role = m.one('ClusterRole', 'flannel');
  const out = new Set<string>();
  for (const r of (role.rules ?? []) as Obj[]) {
    if (JSON.stringify(r.apiGroups) !== '[""]') throw new Error(`rule outside the core API group: ${JSON.stringify(r)}`);
    if (r.resourceNames !== undefined || r.nonResourceURLs !== undefined) throw new Error(`unexpected rule shape: ${JSON.stringify(r)}`);
    for (const res of r.resources as string[]) for (const verb of r.verbs as string[]) out.add(`${verb} ${res}`);
  }
  return out;
}

function node(name: string, cidr: string, annotations: Record<string, string> = {}): JsonObject & { metadata: JsonObject & { name: string } } {
  return { metadata: { name, annotations, labels: { 'kubernetes.io/hostname': name } }, spec: { podCIDR: cidr, podCIDRs: [cidr] }, status: {} };
}

interface Cluster { api: ApiServerDouble; kubeconfig: string; netConfigPath: string }

async function cluster(t: ExecutionContext): Promise<Cluster> {
  const api = await ApiServerDouble.start();
  t.teardown(() => api.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fbt-rbac-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  /* the ConfigMap's net-conf.json, where the DaemonSet mounts it (here: a temp file) */
  const netConfigPath = path.join(dir, 'net-conf.json');
  fs.writeFileSync(netConfigPath, String(((m.one('ConfigMap', 'kube-flannel-cfg').data ?? {}) as Obj)['net-conf.json']));
  api.addNode(node('n1', '10.244.1.0/24'));
  api.addNode(node('n2', '10.244.2.0/24', {
    [`${P}backend-type`]: 'vxlan', [`${P}backend-data`]: '{"VNI":1,"VtepMAC":"0e:fb:00:00:00:02"}', [`${P}public-ip`]: '192.168.50.2', [`${P}kube-subnet-manager`]: 'true',
  }));
  api.addPod('kube-flannel', 'kube-flannel-bpf-ds-abcde', 'n1');
  return { api, kubeconfig: api.writeKubeconfig(dir), netConfigPath };
}

async function until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * One agent lifetime in kube mode, with the DaemonSet's args and env (+ where to find the double and the
 * net-conf file, which in the cluster are the in-cluster config and the ConfigMap mount).
 */
let runs = 0;
async function runAgentSubnetManager(t: ExecutionContext, c: Cluster, env: Record<string, string>): Promise<void> {
  runs++;
  const args = [...((m.agent.args ?? []) as string[]), `--kubeconfig-file=${c.kubeconfig}`, `--net-config-path=${c.netConfigPath}`];
  const { flags } = parseFlags(args, env);
  const sm = await loadSubnetManager(flags, createLogger({ level: 'error', sink: createTestSink() }), env);
  t.teardown(() => sm.close());
  t.is(sm.kind, 'kube');
  /* Agent.#start: network config, node hints, own lease; Agent.run: watch, then completeLease. */
  const conf = parseNetConf(await sm.getNetworkConfig(), { mode: 'kube' });
  const hints = await sm.nodeHints();
  const lease = await sm.acquireLease({ attrs: { publicIp: parseIPv4('192.168.50.1'), backendType: 'vxlan', vni: 1, vtepMac: hints.vtepMac ?? '0e:fb:00:00:00:01' }, config: conf });
  t.is(lease.key, 'n1');
  const events: LeaseEvent[] = [];
  const ac = new AbortController();
  const watching = sm.watchLeases((e) => events.push(e), ac.signal);
  await sm.completeLease();
  await until(() => events.some((e) => e.type === 'snapshot') && c.api.openWatches() > 0, 'the lease snapshot and the node watch');
  /* a peer's lease changes */
  c.api.annotate('n2', { [`${P}public-ip`]: `192.168.50.${100 + runs}` });
  await until(() => events.some((e) => e.type === 'updated'), 'the peer update');
  ac.abort();
  await watching;
  await sm.close();
}

test('RBAC: the ClusterRole is exactly the API calls of the agent (with and without NODE_NAME) and of remove-flannel', async (t) => {
  const c = await cluster(t);
  const fields = { 'spec.nodeName': 'n1', 'metadata.name': 'kube-flannel-bpf-ds-abcde', 'metadata.namespace': 'kube-flannel' };
  const env = containerEnv(m.agent, fields);
  t.is(env.NODE_NAME, 'n1', 'the DaemonSet gives the agent NODE_NAME');

  /* 1. as deployed: NODE_NAME set */
  await runAgentSubnetManager(t, c, env);
  const deployed = new Set(c.api.calls());
  t.false(deployed.has('get pods'), 'with NODE_NAME the agent does not read its pod');

  /* 2. flannel's fallback: no NODE_NAME, the pod's spec.nodeName (POD_NAME / POD_NAMESPACE from the manifest) */
  const { NODE_NAME: _drop, ...podEnv } = env;
  await runAgentSubnetManager(t, c, podEnv);

  /* 3. the remove-flannel init container checks its Node's labels */
  const rm = m.initContainers.find((x) => x.name === 'remove-flannel');
  t.truthy(rm);
  const labels = await kubeNodeLabels(containerEnv(rm as Obj, fields).NODE_NAME ?? '', { kubeconfigFile: c.kubeconfig });
  t.deepEqual(labels, { 'kubernetes.io/hostname': 'n1' });

  const failed = c.api.requests.filter((r) => r.status >= 400).map((r) => `${r.verb} ${r.path} → ${r.status}`);
  t.deepEqual(failed, [], 'every call succeeded');
  t.deepEqual([...new Set(c.api.calls())].sort(), [...ruleCalls()].sort(), 'the calls made are the ClusterRole rules');
  t.deepEqual([...ruleCalls()].sort(), ['get nodes', 'get pods', 'list nodes', 'patch nodes/status', 'watch nodes'], 'flannel\'s ClusterRole');
  /* the annotations and the condition went through nodes/status */
  const ann = ((c.api.getNode('n1')?.metadata as JsonObject).annotations ?? {}) as Record<string, string>;
  t.is(ann[`${P}kube-subnet-manager`], 'true');
  const cond = ((c.api.getNode('n1')?.status as JsonObject).conditions as JsonObject[]).find((x) => x.type === 'NetworkUnavailable');
  t.is(cond?.status, 'False');
});

test('RBAC: the ClusterRole is bound to the DaemonSet\'s ServiceAccount', (t) => {
  const crb = m.one('ClusterRoleBinding', 'flannel');
  t.is(at(crb, 'roleRef.name'), at(m.one('ClusterRole'), 'metadata.name'));
  t.deepEqual(crb.subjects, [{ kind: 'ServiceAccount', name: m.podSpec.serviceAccountName, namespace: at(m.daemonSet, 'metadata.namespace') }]);
  t.is(at(m.one('ServiceAccount'), 'metadata.name'), m.podSpec.serviceAccountName);
});

test('RBAC: only the Kubernetes subnet manager (and the migration helper) talk to the API server', (t) => {
  const files = runtimeSources();
  const clients = files.filter((f) => /from '@kubernetes\/client-node'|import\('@kubernetes\/client-node'\)/.test(fs.readFileSync(f, 'utf8')))
    .map((f) => path.relative(ROOT, f)).sort();
  t.deepEqual(clients, ['deploy/flannel-cleanup.ts', 'src/control/subnet/kube.ts']);
});
