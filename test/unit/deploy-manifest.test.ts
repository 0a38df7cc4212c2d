/**
 * deploy/kube-flannel-bpf.yml, offline (no API server, no root): every object against the Kubernetes
 * OpenAPI schemas (kubernetes-models) and without unknown fields, the API server's own rules that schemas
 * cannot express, flannel's names and keys, the agent's flags against FLAG_SPECS, the ConfigMap's
 * net-conf.json against the agent's own parser, the conflist flannel's CNI plugin expects, and the
 * kustomize base and the migration patch.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseFlags, FLAG_SPECS, resolveNodeName } from '../../src/control/config/flags.js';
import { parseNetConf, checkNetworkConfig } from '../../src/control/config/net-conf.js';
import {
  ROOT, MANIFEST, at, isObj, loadManifest, yamlDocs, yamlDoc, readText, containerEnv, schemaErrors, unknownFields,
  clientModelName, strategicMerge, isAgent, type Obj, type Json, type Container,
} from './deploy-support.js';

const m = loadManifest();
const raw = fs.readFileSync(MANIFEST, 'utf8');
const pkg = JSON.parse(readText('package.json')) as { version: string };
const OUR_IMAGE = `ghcr.io/flannel-bpf/flannel-bpf:v${pkg.version}`;
const FLANNEL_CNI_PLUGIN_IMAGE = 'ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3';
const allContainers = (): Container[] => [...m.initContainers, ...m.containers];
const name = (o: Obj): string => String(at(o, 'metadata.name'));
const str = (v: Json | undefined): string => (typeof v === 'string' ? v : JSON.stringify(v));
const cmData = (key: string): string => String(((m.one('ConfigMap', 'kube-flannel-cfg').data ?? {}) as Obj)[key]);

test('the manifest holds exactly flannel\'s objects (same names) plus our DaemonSet', (t) => {
  t.deepEqual(m.docs.map((d) => `${d.kind}/${at(d, 'metadata.namespace') ? `${str(at(d, 'metadata.namespace'))}/` : ''}${name(d)}`), [
    'Namespace/kube-flannel',
    'ServiceAccount/kube-flannel/flannel',
    'ClusterRole/flannel',
    'ClusterRoleBinding/flannel',
    'ConfigMap/kube-flannel/kube-flannel-cfg',
    'DaemonSet/kube-flannel/kube-flannel-bpf-ds',
  ]);
});

for (const doc of m.docs) {
  test(`${doc.kind} ${name(doc)} validates against the Kubernetes OpenAPI schema (kubernetes-models)`, async (t) => {
    t.is(await schemaErrors(doc), null);
  });
  test(`${doc.kind} ${name(doc)} has no field its Kubernetes type does not define (kubectl --validate=strict)`, (t) => {
    t.deepEqual(unknownFields(doc, clientModelName(String(doc.apiVersion), String(doc.kind)), String(doc.kind)), []);
  });
}

test('the schema check catches errors (a bad port type, a missing required field)', async (t) => {
  const bad = JSON.parse(JSON.stringify(m.daemonSet)) as Obj;
  ((at(bad, 'spec.template.spec.containers.0.ports') as Obj[])[0] as Obj).containerPort = 'eighty';
  t.regex((await schemaErrors(bad)) ?? '', /containerPort/);
  const noSelector = JSON.parse(JSON.stringify(m.daemonSet)) as Obj;
  delete (noSelector.spec as Obj).selector;
  t.regex((await schemaErrors(noSelector)) ?? '', /selector/);
  t.deepEqual(unknownFields({ ...m.agent, mountPropogation: 'x' } as unknown as Json, 'V1Container', 'c'), ['c.mountPropogation: unknown field of V1Container']);
});

test('API-server rules the schemas cannot express: selector, names, volumes, probe ports, hostNetwork ports, Bidirectional only when privileged', (t) => {
  const tpl = at(m.daemonSet, 'spec.template') as Obj;
  const labels = (at(tpl, 'metadata.labels') ?? {}) as Obj;
  for (const [k, v] of Object.entries((at(m.daemonSet, 'spec.selector.matchLabels') ?? {}) as Obj)) t.is(labels[k], v, `selector ${k}=${str(v)} matches the pod template`);
  const names = allContainers().map((c) => c.name);
  t.is(new Set(names).size, names.length, 'container names are unique across init and regular containers');
  const volumes = new Set(((m.podSpec.volumes ?? []) as Obj[]).map((v) => String(v.name)));
  const used = new Set<string>();
  for (const c of allContainers()) {
    for (const vm of (c.volumeMounts ?? []) as Obj[]) {
      t.true(volumes.has(String(vm.name)), `${c.name}: volume ${str(vm.name)} exists`);
      used.add(String(vm.name));
      if (vm.mountPropagation === 'Bidirectional') t.is(at(c, 'securityContext.privileged'), true, `${c.name}: Bidirectional propagation is allowed only in privileged containers`);
    }
    const ports = (c.ports ?? []) as Obj[];
    for (const p of ports) {
      t.true(String(p.name).length <= 15, `port name ${str(p.name)} is an IANA_SVC_NAME (≤ 15 characters)`);
      if (m.podSpec.hostNetwork === true && p.hostPort !== undefined) t.is(p.hostPort, p.containerPort as Json, 'hostNetwork: hostPort = containerPort');
    }
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
      const port = at(c, `${probe}.httpGet.port`);
      if (typeof port === 'string') t.true(ports.some((p) => p.name === port), `${c.name}.${probe}: port ${port} is a named container port`);
    }
  }
  t.deepEqual([...volumes].filter((v) => !used.has(v)), [], 'every volume is mounted somewhere');
});

test('YAML 1.1 booleans are quoted (Kubernetes reads YAML 1.1: a plain "on" or "yes" would become true)', (t) => {
  const leaves: string[] = [];
  const walk = (v: Json | undefined): void => {
    if (typeof v === 'string') leaves.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (isObj(v)) Object.values(v).forEach(walk);
  };
  m.docs.forEach(walk);
  for (const s of leaves.filter((l) => /^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/.test(l))) {
    t.true(raw.includes(`"${s}"`) || raw.includes(`'${s}'`), `"${s}" is quoted in the manifest`);
  }
  t.pass();
});

test('Namespace, ServiceAccount, ClusterRoleBinding: flannel\'s names and labels, PSA privileged', (t) => {
  const ns = m.one('Namespace', 'kube-flannel');
  t.is(((at(ns, 'metadata.labels') ?? {}) as Obj)['pod-security.kubernetes.io/enforce'], 'privileged');
  t.is(at(ns, 'metadata.labels.k8s-app'), 'flannel');
  m.one('ServiceAccount', 'flannel');
  const crb = m.one('ClusterRoleBinding', 'flannel');
  t.deepEqual(at(crb, 'roleRef'), { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'flannel' });
  t.deepEqual(at(crb, 'subjects'), [{ kind: 'ServiceAccount', name: 'flannel', namespace: 'kube-flannel' }]);
  t.is(m.podSpec.serviceAccountName, 'flannel');
  t.is(at(m.daemonSet, 'metadata.namespace'), 'kube-flannel');
});

test('ConfigMap kube-flannel-cfg: flannel\'s name, labels and exactly its two keys', (t) => {
  const cm = m.one('ConfigMap', 'kube-flannel-cfg');
  t.is(at(cm, 'metadata.namespace'), 'kube-flannel');
  t.deepEqual(at(cm, 'metadata.labels'), { tier: 'node', 'k8s-app': 'flannel', app: 'flannel' });
  t.deepEqual(Object.keys((cm.data ?? {}) as Obj).sort(), ['cni-conf.json', 'net-conf.json']);
});

test('the ConfigMap\'s net-conf.json passes the agent\'s own validation (kube mode, and etcd mode\'s rules too), without warnings', (t) => {
  const text = cmData('net-conf.json');
  const conf = parseNetConf(text, { mode: 'kube', document: 'kube-flannel-cfg/net-conf.json' });
  t.deepEqual(conf.warnings, []);
  t.is(conf.backend.type, 'vxlan');
  t.deepEqual(JSON.parse(text), { Network: '10.244.0.0/16', EnableNFTables: false, Backend: { Type: 'vxlan' } }, 'flannel\'s default net-conf.json');
  const etcd = checkNetworkConfig(parseNetConf(text, { mode: 'etcd' }));
  t.is(etcd.subnetLen, 24);
});

test('the ConfigMap\'s cni-conf.json is the conflist flannel\'s CNI plugin expects', (t) => {
  const conf = JSON.parse(cmData('cni-conf.json')) as Obj;
  /* flannel-compat.md §9: name cbr0, cniVersion 0.3.1, flannel delegating to bridge, chained with portmap */
  t.deepEqual(conf, {
    name: 'cbr0',
    cniVersion: '0.3.1',
    plugins: [
      { type: 'flannel', delegate: { hairpinMode: true, isDefaultGateway: true } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  });
  /* the plugin refuses a delegate with name or ipam, and a non-string type */
  const delegate = at(conf, 'plugins.0.delegate') as Obj;
  t.false('name' in delegate);
  t.false('ipam' in delegate);
});

test('DaemonSet: hostNetwork, system-node-critical, tolerates every NoSchedule/NoExecute taint, Linux nodes, rolling one node at a time', (t) => {
  t.is(name(m.daemonSet), 'kube-flannel-bpf-ds', 'flannel\'s name pattern (kube-flannel-ds), distinct so both run during a migration');
  t.is(m.podSpec.hostNetwork, true);
  t.is(m.podSpec.priorityClassName, 'system-node-critical');
  const tol = (m.podSpec.tolerations ?? []) as Obj[];
  for (const effect of ['NoSchedule', 'NoExecute']) t.true(tol.some((x) => x.operator === 'Exists' && x.effect === effect && x.key === undefined), effect);
  const terms = at(m.podSpec, 'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms') as Obj[];
  t.is(terms.length, 1);
  const exprs = (terms[0]?.matchExpressions ?? []) as Obj[];
  t.deepEqual(exprs.find((e) => e.key === 'kubernetes.io/os'), { key: 'kubernetes.io/os', operator: 'In', values: ['linux'] });
  t.deepEqual(exprs.find((e) => e.key === 'flannel-bpf/dataplane'), { key: 'flannel-bpf/dataplane', operator: 'NotIn', values: ['flannel', 'migrating'] },
    'nodes still on flannel, or being handed over, are not ours (docs/migrate-from-flannel.md)');
  t.deepEqual(at(m.daemonSet, 'spec.updateStrategy'), { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
  t.not(at(m.daemonSet, 'spec.selector.matchLabels.app'), 'flannel', 'a selector of our own (flannel\'s DaemonSet selects app=flannel)');
});

test('images: ours at the package version everywhere, flannel\'s CNI plugin image for the plugin binary', (t) => {
  for (const c of allContainers()) {
    t.is(c.image, c.name === 'install-cni-plugin' ? FLANNEL_CNI_PLUGIN_IMAGE : OUR_IMAGE, c.name);
  }
});

test('init containers: flanneld\'s leftovers removed first, then flannel\'s CNI plugin binary and the conflist (atomically), bpffs mounted', (t) => {
  t.deepEqual(m.initContainers.map((c) => c.name), ['remove-flannel', 'install-cni-plugin', 'install-cni', 'mount-bpffs']);
  const byName = new Map(m.initContainers.map((c) => [c.name, c]));
  const mountsOf = (c: Container | undefined): Record<string, string> =>
    Object.fromEntries(((c?.volumeMounts ?? []) as Obj[]).map((v) => [String(v.mountPath).replace(/\/$/, ''), String(v.name)]));
  const hostPathOf = (vol: string): string | undefined => {
    const v = ((m.podSpec.volumes ?? []) as Obj[]).find((x) => x.name === vol);
    return v ? (at(v, 'hostPath.path') as string | undefined) : undefined;
  };

  const rm = byName.get('remove-flannel');
  t.deepEqual(rm?.command, ['node', '/app/dist/deploy/flannel-cleanup.js']);
  t.deepEqual(rm?.args, ['/etc/kube-flannel/net-conf.json']);
  t.deepEqual(at(rm as Json, 'securityContext.capabilities.add'), ['NET_ADMIN']);
  t.is(mountsOf(rm)['/etc/kube-flannel'], 'flannel-cfg');
  t.deepEqual(containerEnv(rm as Obj, { 'spec.nodeName': 'n1' }), { NODE_NAME: 'n1' });

  const plugin = byName.get('install-cni-plugin');
  t.deepEqual([...((plugin?.command ?? []) as string[]), ...((plugin?.args ?? []) as string[])], ['cp', '-f', '/flannel', '/opt/cni/bin/flannel'], 'as flannel\'s manifest');
  t.is(hostPathOf(mountsOf(plugin)['/opt/cni/bin'] ?? ''), '/opt/cni/bin');

  const cni = byName.get('install-cni');
  const script = ((cni?.args ?? []) as string[]).join(' ');
  t.regex(script, /cp -f \/etc\/kube-flannel\/cni-conf\.json (\S+) && mv -f \1 \/etc\/cni\/net\.d\/10-flannel\.conflist/, 'copy next to it, then rename');
  t.regex(script, /\/etc\/cni\/net\.d\/\.[^ ]*\.tmp/, 'the temporary file is not read as a CNI config (hidden, .tmp)');
  t.is(hostPathOf(mountsOf(cni)['/etc/cni/net.d'] ?? ''), '/etc/cni/net.d');
  t.is(mountsOf(cni)['/etc/kube-flannel'], 'flannel-cfg');

  const bpffs = byName.get('mount-bpffs');
  t.is(at(bpffs as Json, 'securityContext.privileged'), true);
  const vm = ((bpffs?.volumeMounts ?? []) as Obj[]).find((v) => v.mountPath === '/sys/fs/bpf');
  t.is(vm?.mountPropagation, 'Bidirectional', 'its mount becomes the host\'s');
  t.regex(((bpffs?.args ?? []) as string[]).join(' '), /mount -t bpf bpf \/sys\/fs\/bpf/);
});

test('agent container: flannel-bpf agent with flannel\'s arguments, every flag exists in FLAG_SPECS and parses without warnings', (t) => {
  t.true(isAgent(m.agent));
  t.is(m.agent.name, 'kube-flannel-bpf');
  const args = (m.agent.args ?? []) as string[];
  for (const a of args) {
    const flag = /^--?([^=]+)/.exec(a)?.[1];
    t.truthy(FLAG_SPECS.find((s) => s.name === flag), `${a}: a flag of flannel-bpf agent`);
  }
  const env = containerEnv(m.agent, { 'spec.nodeName': 'n1', 'metadata.name': 'kube-flannel-bpf-ds-abcde', 'metadata.namespace': 'kube-flannel' });
  for (const k of Object.keys(env).filter((k) => k.startsWith('FLANNELD_'))) t.truthy(FLAG_SPECS.find((s) => s.env === k), `${k} is a flag's variable`);
  const parsed = parseFlags(args, env);
  t.deepEqual(parsed.warnings, []);
  t.true(parsed.flags.kubeSubnetMgr);
  t.true(parsed.flags.ipMasq, '--ip-masq, as flannel\'s manifest');
  for (const a of ['--ip-masq', '--kube-subnet-mgr']) t.true(args.includes(a), a);
  t.deepEqual(resolveNodeName(parsed.flags, env), { kind: 'name', name: 'n1', from: 'NODE_NAME' }, 'NODE_NAME from spec.nodeName');
});

test('agent container: probes on --healthz-port (/healthz, /readyz), metrics port = --metrics-addr = scrape annotation', (t) => {
  const parsed = parseFlags((m.agent.args ?? []) as string[], {});
  const ports = Object.fromEntries(((m.agent.ports ?? []) as Obj[]).map((p) => [String(p.name), p]));
  t.is(at(ports.healthz as Json, 'containerPort'), parsed.flags.healthzPort);
  t.not(parsed.flags.healthzPort, 0);
  t.is(at(ports.metrics as Json, 'containerPort'), parsed.flags.metricsAddr.port);
  t.is(parsed.flags.metricsAddr.port, 9472);
  t.deepEqual(at(m.agent, 'livenessProbe.httpGet'), { path: '/healthz', port: 'healthz' });
  t.deepEqual(at(m.agent, 'readinessProbe.httpGet'), { path: '/readyz', port: 'healthz' });
  const ann = (at(m.daemonSet, 'spec.template.metadata.annotations') ?? {}) as Obj;
  t.is(ann['prometheus.io/scrape'], 'true');
  t.is(ann['prometheus.io/port'], String(parsed.flags.metricsAddr.port));
  t.is(ann['prometheus.io/path'], '/metrics');
  t.truthy(at(m.agent, 'resources.requests.cpu'));
  t.truthy(at(m.agent, 'resources.requests.memory'));
});

test('agent container: every path the agent uses is a mount of the right host directory', (t) => {
  const flags = parseFlags((m.agent.args ?? []) as string[], {}).flags;
  const vols = new Map(((m.podSpec.volumes ?? []) as Obj[]).map((v) => [String(v.name), v]));
  const mounts = ((m.agent.volumeMounts ?? []) as Obj[]).map((v) => ({ path: String(v.mountPath).replace(/\/$/, ''), vol: vols.get(String(v.name)), mount: v }));
  const mountFor = (p: string) => mounts.filter((x) => p === x.path || p.startsWith(`${x.path}/`)).sort((a, b) => b.path.length - a.path.length)[0];
  const hostPathFor = (p: string): string | undefined => {
    const x = mountFor(p);
    const hp = x ? at(x.vol as Json, 'hostPath.path') : undefined;
    return typeof hp === 'string' && x ? `${hp}${p.slice(x.path.length)}` : undefined;
  };
  t.is(hostPathFor(flags.subnetFile), '/run/flannel/subnet.env', '--subnet-file on the host, for flannel\'s CNI plugin');
  t.is(hostPathFor(flags.bpffsPinDir), '/sys/fs/bpf/flannel-bpf', '--bpffs-pin-dir on the host\'s bpffs (pins outlive the container)');
  t.is(mountFor(flags.bpffsPinDir)?.mount.mountPropagation, 'HostToContainer');
  t.is(hostPathFor(`${flags.stateDir}/state.json`), '/run/flannel-bpf/state.json', '--state-dir on the host (status works while the agent is down)');
  t.is(hostPathFor('/run/xtables.lock'), '/run/xtables.lock');
  t.is(at(vols.get('xtables-lock') as Json, 'hostPath.type'), 'FileOrCreate');
  const cfg = mountFor(flags.netConfigPath);
  t.is(at(cfg?.vol as Json, 'configMap.name'), 'kube-flannel-cfg', '--net-config-path is the ConfigMap');
  t.is(path.basename(flags.netConfigPath), 'net-conf.json');
});

test('agent container: not privileged; CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_NET_RAW (no CAP_SYS_ADMIN), each with its reason in a comment', (t) => {
  t.is(at(m.agent, 'securityContext.privileged'), false);
  const caps = (at(m.agent, 'securityContext.capabilities.add') ?? []) as string[];
  t.deepEqual([...caps].sort(), ['BPF', 'NET_ADMIN', 'NET_RAW', 'PERFMON']);
  for (const cap of caps) t.regex(raw, new RegExp(`#\\s*${cap}:\\s*\\S`), `a comment says why ${cap}`);
  t.is(m.initContainers.filter((c) => at(c, 'securityContext.privileged') === true).map((c) => c.name).join(), 'mount-bpffs', 'only the bpffs mount is privileged');
});

test('kustomize base: deploy/kustomization.yaml holds the single manifest and nothing else', (t) => {
  const k = yamlDoc(readText('deploy/kustomization.yaml'));
  t.is(k.kind, 'Kustomization');
  t.deepEqual(k.resources, ['kube-flannel-bpf.yml']);
  t.deepEqual(Object.keys(k).sort(), ['apiVersion', 'kind', 'resources']);
  let kubectl = true;
  try { execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' }); } catch { kubectl = false; }
  if (!kubectl) {
    t.log('kubectl not found: the cross-check with "kubectl kustomize deploy/" was not run');
    return;
  }
  const built = yamlDocs(execFileSync('kubectl', ['kustomize', path.join(ROOT, 'deploy')], { encoding: 'utf8' }));
  const key = (d: Obj): string => `${String(d.kind)}/${name(d)}`;
  t.deepEqual(new Map(built.map((d) => [key(d), d])), new Map(m.docs.map((d) => [key(d), d])), 'kubectl kustomize deploy/ = the manifest');
});

test('migration: "kubectl apply -l app!=flannel" leaves out exactly the shared ConfigMap', (t) => {
  const selected = m.docs.filter((d) => ((at(d, 'metadata.labels') ?? {}) as Obj).app !== 'flannel');
  t.deepEqual(m.docs.filter((d) => !selected.includes(d)).map((d) => `${String(d.kind)}/${name(d)}`), ['ConfigMap/kube-flannel-cfg']);
});

test('migration: the patch for flannel\'s DaemonSet keeps flannel on nodes labelled flannel-bpf/dataplane=flannel, and validates', async (t) => {
  const patch = yamlDoc(readText('deploy/flannel-daemonset-patch.yaml'));
  /* flannel's DaemonSet (kube-flannel.yml v0.28.9, the fields that matter here) */
  const flannelDs: Obj = {
    apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'kube-flannel-ds', namespace: 'kube-flannel', labels: { tier: 'node', app: 'flannel', 'k8s-app': 'flannel' } },
    spec: {
      selector: { matchLabels: { app: 'flannel' } },
      template: {
        metadata: { labels: { tier: 'node', app: 'flannel' } },
        spec: {
          affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['linux'] }] }] } } },
          hostNetwork: true, priorityClassName: 'system-node-critical', serviceAccountName: 'flannel',
          tolerations: [{ operator: 'Exists', effect: 'NoSchedule' }],
          containers: [{ name: 'kube-flannel', image: 'ghcr.io/flannel-io/flannel:v0.28.9', command: ['/opt/bin/flanneld'], args: ['--ip-masq', '--kube-subnet-mgr', '--healthz-port=8081'] }],
        },
      },
    },
  };
  const patched = strategicMerge(flannelDs, patch) as Obj;
  t.is(await schemaErrors(patched), null);
  t.deepEqual(unknownFields(patched, 'V1DaemonSet'), []);
  const exprs = at(patched, 'spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.0.matchExpressions') as Obj[];
  t.deepEqual(exprs, [
    { key: 'kubernetes.io/os', operator: 'In', values: ['linux'] },
    { key: 'flannel-bpf/dataplane', operator: 'In', values: ['flannel'] },
  ]);
  t.deepEqual(at(patched, 'spec.template.spec.containers'), at(flannelDs, 'spec.template.spec.containers'), 'nothing else of flannel\'s pod changes');

  /* Which DaemonSet runs on a node, per label value: never both, and flannel-bpf on fresh nodes. */
  const ours = (at(m.podSpec, 'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.0.matchExpressions') ?? []) as Obj[];
  const matches = (list: Obj[], value: string | undefined): boolean => list.every((e) => {
    if (e.key === 'kubernetes.io/os') return true;
    const values = (e.values ?? []) as string[];
    return e.operator === 'In' ? value !== undefined && values.includes(value) : value === undefined || !values.includes(value);
  });
  const table = [undefined, 'flannel', 'migrating', 'bpf'].map((v) => `${v ?? '(none)'}: ${matches(exprs, v) ? 'flannel' : '-'} ${matches(ours, v) ? 'flannel-bpf' : '-'}`);
  t.deepEqual(table, ['(none): - flannel-bpf', 'flannel: flannel -', 'migrating: - -', 'bpf: - flannel-bpf']);
});
