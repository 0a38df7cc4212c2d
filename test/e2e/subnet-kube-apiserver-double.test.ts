/**
 * The Kubernetes subnet manager against the API-SERVER DOUBLE
 * (test/fixtures/apiserver-double.ts), not a real Kubernetes API server:
 * @kubernetes/client-node's CoreV1Api and informer talk plain HTTP to it on
 * 127.0.0.1 inside this process's private network namespace, through a
 * kubeconfig file the test writes.
 */
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { privateNetns } from '../helpers/netns.js';
import { ApiServerDouble, type ApiServerDoubleOptions, type JsonObject } from '../fixtures/apiserver-double.js';
import { KubeSubnetManager, kubeOptionsFromFlags, type KubeSubnetManagerOptions } from '../../src/control/subnet/kube.js';
import { makeSubnetManager } from '../../src/control/subnet/index.js';
import { SubnetError, type LeaseEvent, type StoreState } from '../../src/control/subnet/types.js';
import { parseNetConf } from '../../src/control/config/net-conf.js';
import { defaultFlags } from '../../src/control/config/flags.js';
import { createLogger, createTestSink, type TestSink } from '../../src/control/log.js';
import type { OwnLeaseAttrs } from '../../src/control/lease/backend-data.js';
import type { Lease, Rejection } from '../../src/control/lease/types.js';
import { formatCidr, formatIPv4, parseIPv4 } from '../../src/maps/addr.js';

privateNetns();

const P = 'flannel.alpha.coreos.com/';
const CONF = '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}';
const vxlan = (ip: string, mac: string): OwnLeaseAttrs => ({ publicIp: parseIPv4(ip), backendType: 'vxlan', vni: 1, vtepMac: mac });
const flannelAnn = (ip: string, mac: string): Record<string, string> => ({
  [`${P}backend-type`]: 'vxlan', [`${P}backend-data`]: `{"VNI":1,"VtepMAC":"${mac}"}`, [`${P}public-ip`]: ip, [`${P}kube-subnet-manager`]: 'true',
});

function nodeObj(name: string, podCIDR: string | null, annotations: Record<string, string> = {}): JsonObject & { metadata: JsonObject & { name: string } } {
  return {
    metadata: { name, annotations, labels: { 'kubernetes.io/hostname': name } },
    spec: podCIDR === null ? {} : { podCIDR, podCIDRs: [podCIDR] },
    status: {
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: '2026-01-01T00:00:00Z', lastTransitionTime: '2026-01-01T00:00:00Z' }],
      addresses: [{ type: 'InternalIP', address: '192.168.50.1' }, { type: 'Hostname', address: name }],
    },
  };
}

interface Env {
  api: ApiServerDouble;
  dir: string;
  kubeconfig: string;
  netConfigPath: string;
}

async function setup(t: ExecutionContext, opts: ApiServerDoubleOptions = {}): Promise<Env> {
  const api = await ApiServerDouble.start(opts);
  t.teardown(() => api.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fbt-kube-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const netConfigPath = path.join(dir, 'net-conf.json');
  fs.writeFileSync(netConfigPath, CONF);
  return { api, dir, kubeconfig: api.writeKubeconfig(dir), netConfigPath };
}

function manager(t: ExecutionContext, env: Env, extra: Partial<KubeSubnetManagerOptions> = {}): { m: KubeSubnetManager; sink: TestSink } {
  const sink = createTestSink();
  const m = new KubeSubnetManager({
    kubeconfigFile: env.kubeconfig, node: { kind: 'name', name: 'n1', from: 'NODE_NAME' }, netConfigPath: env.netConfigPath,
    logger: createLogger({ level: 'debug', sink }), patchRetryMs: 100, patchTimeoutMs: 1_000, backoff: { initialMs: 50, maxMs: 400 },
    ...extra,
  });
  t.teardown(() => m.close());
  return { m, sink };
}

async function acquire(m: KubeSubnetManager, attrs: OwnLeaseAttrs): Promise<Lease> {
  const config = parseNetConf(await m.getNetworkConfig(), { mode: 'kube' });
  return m.acquireLease({ attrs, config });
}

async function until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
const settle = (ms = 300): Promise<void> => new Promise((r) => setTimeout(r, ms));

class Recorder {
  readonly events: LeaseEvent[] = [];
  readonly leases = new Map<string, Lease>();
  readonly rejected = new Map<string, Rejection>();
  on = (e: LeaseEvent): void => {
    this.events.push(e);
    switch (e.type) {
      case 'snapshot':
        this.leases.clear();
        this.rejected.clear();
        for (const l of e.leases) this.leases.set(l.key, l);
        for (const r of e.rejected) this.rejected.set(r.leaseKey, r);
        break;
      case 'added':
      case 'updated':
        this.rejected.delete(e.lease.key);
        this.leases.set(e.lease.key, e.lease);
        break;
      case 'removed':
        this.leases.delete(e.key);
        this.rejected.delete(e.key);
        break;
      case 'rejected':
        this.leases.delete(e.rejection.leaseKey);
        this.rejected.set(e.rejection.leaseKey, e.rejection);
        break;
    }
  };
  snapshots(): Array<Extract<LeaseEvent, { type: 'snapshot' }>> {
    return this.events.filter((e): e is Extract<LeaseEvent, { type: 'snapshot' }> => e.type === 'snapshot');
  }
  tail(): string[] {
    const i = this.events.map((e) => e.type).lastIndexOf('snapshot');
    return this.events.slice(i + 1).map((e) => (e.type === 'removed' ? `removed ${e.key}`
      : e.type === 'rejected' ? `rejected ${e.rejection.leaseKey} ${e.rejection.reason}`
        : e.type === 'snapshot' ? 'snapshot' : `${e.type} ${e.lease.key}`));
  }
}

function watch(t: ExecutionContext, m: KubeSubnetManager): Recorder {
  const rec = new Recorder();
  const ac = new AbortController();
  const done = m.watchLeases(rec.on, ac.signal);
  t.teardown(async () => { ac.abort(); await done; });
  return rec;
}

const annotationsOf = (api: ApiServerDouble, name: string): Record<string, string> =>
  ((api.getNode(name)?.metadata as JsonObject | undefined)?.annotations ?? {}) as Record<string, string>;
const patches = (api: ApiServerDouble) => api.requests.filter((r) => r.verb === 'patch');

test('kube (API-server double): acquireLease writes flanneld\'s annotations byte-exactly in one strategic-merge PATCH on nodes/status', async (t) => {
  const env = await setup(t);
  env.api.addNode(nodeObj('n1', '10.244.1.0/24'));
  env.api.addNode(nodeObj('n2', '10.244.2.0/24'));
  const { m } = manager(t, env);
  const lease = await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  t.deepEqual(annotationsOf(env.api, 'n1'), {
    'flannel.alpha.coreos.com/backend-type': 'vxlan',
    'flannel.alpha.coreos.com/backend-data': '{"VNI":1,"VtepMAC":"0e:fb:00:00:00:01"}',
    'flannel.alpha.coreos.com/public-ip': '192.168.50.1',
    'flannel.alpha.coreos.com/kube-subnet-manager': 'true',
  });
  const [p] = patches(env.api);
  t.is(patches(env.api).length, 1);
  t.is(p?.path, '/api/v1/nodes/n1/status');
  t.is(p?.subresource, 'status');
  t.is(p?.contentType, 'application/strategic-merge-patch+json');
  t.is(p?.body, '{"metadata":{"annotations":{"flannel.alpha.coreos.com/backend-type":"vxlan",'
    + '"flannel.alpha.coreos.com/backend-data":"{\\"VNI\\":1,\\"VtepMAC\\":\\"0e:fb:00:00:00:01\\"}",'
    + '"flannel.alpha.coreos.com/public-ip":"192.168.50.1","flannel.alpha.coreos.com/kube-subnet-manager":"true"}}}');
  t.is(p?.authorization, 'Bearer double-token', 'credentials from the kubeconfig file');
  t.deepEqual({ key: lease.key, subnet: formatCidr(lease.subnet), ip: formatIPv4(lease.publicIp), mac: lease.vtepMac, vni: lease.vni },
    { key: 'n1', subnet: '10.244.1.0/24', ip: '192.168.50.1', mac: '0e:fb:00:00:00:01', vni: 1 });
  t.deepEqual((env.api.getNode('n1')?.spec as JsonObject).podCIDRs, ['10.244.1.0/24'], 'spec untouched');

  const { m: hostgw } = manager(t, env, { node: { kind: 'name', name: 'n2', from: '--node-name' } });
  await acquire(hostgw, { publicIp: parseIPv4('192.168.50.2'), backendType: 'host-gw' });
  t.like(annotationsOf(env.api, 'n2'), {
    'flannel.alpha.coreos.com/backend-type': 'host-gw',
    'flannel.alpha.coreos.com/backend-data': 'null',
    'flannel.alpha.coreos.com/public-ip': '192.168.50.2',
  });
});

test('kube (API-server double): the node is patched only when needed, and only what differs', async (t) => {
  const env = await setup(t);
  env.api.addNode(nodeObj('n1', '10.244.1.0/24'));
  const { m: first } = manager(t, env);
  await acquire(first, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  t.is(patches(env.api).length, 1);
  const rv = env.api.resourceVersion;

  const { m: restarted, sink } = manager(t, env);
  await acquire(restarted, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  t.is(patches(env.api).length, 1, 'same attributes: no PATCH on restart');
  t.is(env.api.resourceVersion, rv);
  t.true(sink.records().some((r) => /no patch needed/.test(r.msg)));

  const { m: moved } = manager(t, env);
  await acquire(moved, vxlan('192.168.50.9', '0e:fb:00:00:00:01'));
  t.is(patches(env.api).length, 2);
  t.is(patches(env.api)[1]?.body, '{"metadata":{"annotations":{"flannel.alpha.coreos.com/public-ip":"192.168.50.9"}}}', 'only the changed annotation');
});

test('kube (API-server double): the VtepMAC and node-public-ip already on our node are reused', async (t) => {
  const env = await setup(t);
  env.api.addNode(nodeObj('n1', '10.244.1.0/24', { ...flannelAnn('192.168.50.1', '0e:fb:00:00:aa:aa'), [`${P}node-public-ip`]: '192.168.50.1' }));
  const { m } = manager(t, env);
  t.deepEqual(await m.nodeHints(), { publicIp: parseIPv4('192.168.50.1'), vtepMac: '0e:fb:00:00:aa:aa' });
  const lease = await acquire(m, vxlan('10.0.0.99', '0e:fb:00:00:00:01'));
  t.is(lease.vtepMac, '0e:fb:00:00:aa:aa', 'the stored VtepMAC wins over the offered one');
  t.is(formatIPv4(lease.publicIp), '192.168.50.1', 'node-public-ip wins over the offered IP');
  t.is(patches(env.api).length, 0, 'nothing to change');
  t.is(annotationsOf(env.api, 'n1')[`${P}backend-data`], '{"VNI":1,"VtepMAC":"0e:fb:00:00:aa:aa"}');
});

test('kube (API-server double): completeLease sets NetworkUnavailable=False (FlannelIsUp) via nodes/status, merged by type; can be disabled', async (t) => {
  const env = await setup(t);
  env.api.addNode(nodeObj('n1', '10.244.1.0/24'));
  env.api.addNode(nodeObj('n2', '10.244.2.0/24'));
  const { m } = manager(t, env, { now: () => Date.parse('2026-08-20T10:00:00.123Z') });
  await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  await m.completeLease();
  const p = patches(env.api)[1];
  t.is(p?.path, '/api/v1/nodes/n1/status');
  t.is(p?.contentType, 'application/strategic-merge-patch+json');
  t.is(p?.body, '{"status":{"conditions":[{"type":"NetworkUnavailable","status":"False","lastHeartbeatTime":"2026-08-20T10:00:00Z",'
    + '"lastTransitionTime":"2026-08-20T10:00:00Z","reason":"FlannelIsUp","message":"Flannel is running on this node"}]}}');
  const conds = (env.api.getNode('n1')?.status as JsonObject).conditions as JsonObject[];
  t.deepEqual(conds.map((c) => `${c.type}=${c.status}`), ['Ready=True', 'NetworkUnavailable=False'], 'Ready kept (merge by type)');
  t.like(conds[1], { reason: 'FlannelIsUp', message: 'Flannel is running on this node' });

  const { m: off } = manager(t, env, { node: { kind: 'name', name: 'n2', from: 'NODE_NAME' }, setNodeNetworkUnavailable: false });
  await acquire(off, vxlan('192.168.50.2', '0e:fb:00:00:00:02'));
  const before = patches(env.api).length;
  await off.completeLease();
  t.is(patches(env.api).length, before, '--set-node-network-unavailable=false: no condition patch');
  t.deepEqual(((env.api.getNode('n2')?.status as JsonObject).conditions as JsonObject[]).map((c) => c.type), ['Ready']);
});

test('kube (API-server double): public-ip-overwrite is published as public-ip and used for peers', async (t) => {
  const env = await setup(t);
  env.api.addNode(nodeObj('n1', '10.244.1.0/24', { [`${P}public-ip-overwrite`]: '203.0.113.7' }));
  env.api.addNode(nodeObj('p1', '10.244.2.0/24', { ...flannelAnn('192.168.50.2', '0e:fb:00:00:00:02'), [`${P}public-ip-overwrite`]: '203.0.113.8' }));
  const { m } = manager(t, env);
  const lease = await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  t.is(annotationsOf(env.api, 'n1')[`${P}public-ip`], '203.0.113.7');
  t.is(formatIPv4(lease.publicIp), '203.0.113.7', 'our lease says what peers will use');
  const { m: again } = manager(t, env);
  await acquire(again, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  t.is(patches(env.api).length, 1, 'already published: no second patch');
  const rec = watch(t, m);
  await until(() => rec.snapshots().length === 1, 'the snapshot');
  t.is(formatIPv4(rec.leases.get('p1')?.publicIp ?? 0), '203.0.113.8');
});

test('kube (API-server double): watch ignores nodes without the annotation and our own node; only lease changes are events; deletion is removed', async (t) => {
  const env = await setup(t);
  const { api } = env;
  api.addNode(nodeObj('n1', '10.244.1.0/24'));
  api.addNode(nodeObj('p1', '10.244.2.0/24', flannelAnn('192.168.50.2', '0e:fb:00:00:00:02')));
  api.addNode(nodeObj('p2', '10.244.3.0/24'));
  api.addNode(nodeObj('p3', '10.244.4.0/24', flannelAnn('192.168.50.4', 'not-a-mac')));
  const { m } = manager(t, env);
  await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  const rec = watch(t, m);
  await until(() => rec.snapshots().length === 1, 'the snapshot');
  t.deepEqual([...rec.leases.keys()], ['p1'], 'n1 is ours, p2 has no kube-subnet-manager annotation');
  t.is(rec.rejected.get('p3')?.reason, 'bad_vtep_mac');

  api.updateNode('p1', (n) => { ((n.status as JsonObject).conditions as JsonObject[])[0]!.lastHeartbeatTime = '2026-01-01T00:01:00Z'; });
  api.updateNode('p1', (n) => { (n.metadata as JsonObject).labels = { role: 'worker' }; });
  api.annotate('p1', { 'example.com/unrelated': 'x' });
  api.annotate('n1', { [`${P}backend-data`]: '{"VNI":1,"VtepMAC":"0e:fb:00:00:00:ff"}' });
  api.annotate('p2', flannelAnn('192.168.50.3', '0e:fb:00:00:00:03'));
  api.annotate('p1', { [`${P}backend-data`]: '{"VNI":1,"VtepMAC":"0e:fb:00:00:00:22"}' });
  api.annotate('p3', { [`${P}backend-data`]: '{"VNI":1,"VtepMAC":"0e:fb:00:00:00:04"}' });
  api.annotate('p2', { [`${P}kube-subnet-manager`]: null });
  api.deleteNode('p1');
  await until(() => rec.tail().length >= 5, 'five events');
  await settle();
  t.deepEqual(rec.tail(), ['added p2', 'updated p1', 'added p3', 'removed p2', 'removed p1']);
  t.deepEqual([...rec.leases.keys()], ['p3']);
  t.is(rec.snapshots().length, 1);
});

test('kube (API-server double): a watch from a compacted resourceVersion (ERROR 410 event, or HTTP 410) makes the informer re-list: a fresh snapshot', async (t) => {
  for (const tooOldAs of ['event', 'status'] as const) {
    const env = await setup(t, { tooOldAs });
    const { api } = env;
    api.addNode(nodeObj('n1', '10.244.1.0/24'));
    api.addNode(nodeObj('p1', '10.244.2.0/24', flannelAnn('192.168.50.2', '0e:fb:00:00:00:02')));
    api.addNode(nodeObj('p2', '10.244.3.0/24', flannelAnn('192.168.50.3', '0e:fb:00:00:00:03')));
    const { m, sink } = manager(t, env);
    await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
    const rec = watch(t, m);
    await until(() => rec.snapshots().length === 1 && api.openWatches() === 1, `${tooOldAs}: snapshot and watch`);
    /* a plain watch expiry: the informer watches again from its resourceVersion, nothing is lost, no re-list */
    api.closeWatches();
    api.annotate('p2', { [`${P}public-ip`]: '192.168.50.33' });
    await until(() => rec.tail().length === 1, `${tooOldAs}: the update made during the plain expiry`);
    t.deepEqual(rec.tail(), ['updated p2']);
    t.is(rec.snapshots().length, 1);
    await until(() => api.openWatches() === 1, `${tooOldAs}: watching again`);
    /* the watch expires; before the informer is back, history moves on and is compacted */
    api.closeWatches();
    api.deleteNode('p1');
    api.addNode(nodeObj('p4', '10.244.5.0/24', flannelAnn('192.168.50.5', '0e:fb:00:00:00:05')));
    api.compact();
    await until(() => rec.snapshots().length === 2, `${tooOldAs}: the re-list snapshot`);
    t.deepEqual(rec.snapshots()[1]?.leases.map((l) => l.key).sort(), ['p2', 'p4'], `${tooOldAs}: re-listed state`);
    t.true(sink.records().some((r) => r.msg === 'lease snapshot after re-list'));
    const verbs = api.requests.filter((r) => r.resource === 'nodes' && (r.verb === 'list' || r.verb === 'watch')).map((r) => `${r.verb}${r.status === 410 ? '(410)' : ''}`);
    t.deepEqual(verbs.slice(0, 5), ['list', 'watch', 'watch', tooOldAs === 'status' ? 'watch(410)' : 'watch', 'list'],
      `${tooOldAs}: list, watch, re-watch after expiry, refused watch, re-list`);
    api.annotate('p4', { [`${P}public-ip`]: '192.168.50.55' });
    await until(() => rec.tail().length === 1, `${tooOldAs}: an event after the re-list`);
    t.deepEqual(rec.tail(), ['updated p4']);
  }
});

test('kube (API-server double): missing or foreign podCIDR is a clear error and nothing is patched', async (t) => {
  const env = await setup(t);
  env.api.addNode(nodeObj('n1', null));
  env.api.addNode(nodeObj('n2', '10.96.0.0/24'));
  const { m } = manager(t, env);
  const err = await t.throwsAsync(acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01')), { instanceOf: SubnetError });
  t.regex(err?.message ?? '', /node "n1" pod cidr not assigned/);
  t.regex((err as SubnetError).remedy, /--allocate-node-cidrs=true --cluster-cidr/);
  const { m: m2 } = manager(t, env, { node: { kind: 'name', name: 'n2', from: 'NODE_NAME' } });
  const err2 = await t.throwsAsync(acquire(m2, vxlan('192.168.50.2', '0e:fb:00:00:00:02')), { instanceOf: SubnetError });
  t.regex(err2?.message ?? '', /subnet "10\.244\.0\.0\/16" specified in the flannel net config doesn't contain "10\.96\.0\.0\/24" PodCIDR of the "n2" node/);
  const { m: m3 } = manager(t, env, { node: { kind: 'name', name: 'ghost', from: 'NODE_NAME' } });
  await t.throwsAsync(acquire(m3, vxlan('192.168.50.3', '0e:fb:00:00:00:03')), { message: /node "ghost" not found/ });
  t.is(patches(env.api).length, 0);
});

test('kube (API-server double): node name from POD_NAMESPACE/POD_NAME; the calls made are exactly flannel\'s ClusterRole', async (t) => {
  const env = await setup(t);
  env.api.addNode(nodeObj('worker-7', '10.244.7.0/24'));
  env.api.addNode(nodeObj('p1', '10.244.2.0/24', flannelAnn('192.168.50.2', '0e:fb:00:00:00:02')));
  env.api.addPod('kube-flannel', 'kube-flannel-ds-abcde', 'worker-7');
  const flags = { ...defaultFlags(), kubeSubnetMgr: true, kubeconfigFile: env.kubeconfig, netConfigPath: env.netConfigPath };
  t.throws(() => kubeOptionsFromFlags(flags, {}), { message: /POD_NAME and POD_NAMESPACE must be set/ });
  const sink = createTestSink();
  const m = makeSubnetManager(flags, createLogger({ level: 'debug', sink }), { POD_NAME: 'kube-flannel-ds-abcde', POD_NAMESPACE: 'kube-flannel' });
  t.teardown(() => m.close());
  t.is(m.kind, 'kube');
  const hints = await m.nodeHints();
  t.deepEqual(hints, { publicIp: null, vtepMac: null });
  const lease = await m.acquireLease({ attrs: vxlan('192.168.50.7', '0e:fb:00:00:00:07'), config: parseNetConf(await m.getNetworkConfig(), { mode: 'kube' }) });
  t.is(lease.key, 'worker-7');
  t.is(formatCidr(lease.subnet), '10.244.7.0/24');
  await m.completeLease();
  const rec = new Recorder();
  const ac = new AbortController();
  const done = m.watchLeases(rec.on, ac.signal);
  await until(() => rec.snapshots().length === 1 && env.api.openWatches() === 1, 'snapshot and watch');
  ac.abort();
  await done;
  t.is(env.api.requests.filter((r) => r.resource === 'pods').length, 1, 'the pod is read once');
  t.deepEqual([...new Set(env.api.calls())].sort(), ['get nodes', 'get pods', 'list nodes', 'patch nodes/status', 'watch nodes'],
    'get pods; get, list, watch nodes; patch nodes/status — nothing else');
});

test('kube (API-server double): a failed patch is retried (every 3 s for 30 s, scaled down here); a forbidden one ends with the RBAC remedy', async (t) => {
  const env = await setup(t);
  env.api.addNode(nodeObj('n1', '10.244.1.0/24'));
  env.api.addNode(nodeObj('n2', '10.244.2.0/24'));
  env.api.failRequests((r) => r.verb === 'patch' && r.name === 'n1', 500, 2);
  const { m, sink } = manager(t, env, { patchRetryMs: 100, patchTimeoutMs: 2_000 });
  await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  t.deepEqual(patches(env.api).filter((p) => p.name === 'n1').map((p) => p.status), [500, 500, 200]);
  t.is(sink.records().filter((r) => /patching node annotations failed; retrying in 0.1 s/.test(r.msg)).length, 2);
  t.is(annotationsOf(env.api, 'n1')[`${P}kube-subnet-manager`], 'true');

  env.api.failRequests((r) => r.verb === 'patch' && r.name === 'n2', 403, 1000);
  const { m: m2 } = manager(t, env, { node: { kind: 'name', name: 'n2', from: 'NODE_NAME' }, patchRetryMs: 100, patchTimeoutMs: 500 });
  const t0 = Date.now();
  const err = await t.throwsAsync(acquire(m2, vxlan('192.168.50.2', '0e:fb:00:00:00:02')), { instanceOf: SubnetError });
  t.true(Date.now() - t0 >= 400, 'kept retrying until the deadline');
  t.regex((err as SubnetError).remedy, /patch" on nodes\/status/);
  const tries = patches(env.api).filter((p) => p.name === 'n2').length;
  t.true(tries >= 4 && tries <= 7, `${tries} attempts in 0.5 s at 0.1 s intervals`);
});

test('kube (API-server double): API server down → disconnected; back → connected, and a change made meanwhile arrives', async (t) => {
  const env = await setup(t);
  const { api } = env;
  api.addNode(nodeObj('n1', '10.244.1.0/24'));
  api.addNode(nodeObj('p1', '10.244.2.0/24', flannelAnn('192.168.50.2', '0e:fb:00:00:00:02')));
  const { m } = manager(t, env);
  await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  const states: StoreState[] = [];
  m.onStateChange((s) => states.push(s));
  const rec = watch(t, m);
  await until(() => rec.snapshots().length === 1 && api.openWatches() === 1, 'snapshot and watch');
  await api.stop();
  await until(() => m.state === 'disconnected', 'state disconnected');
  api.annotate('p1', { [`${P}backend-data`]: '{"VNI":1,"VtepMAC":"0e:fb:00:00:00:22"}' });
  await settle(500);
  await api.restart();
  await until(() => rec.leases.get('p1')?.vtepMac === '0e:fb:00:00:00:22', 'the change made while the API server was down');
  t.is(m.state, 'connected');
  t.deepEqual(states.slice(0, 2), ['disconnected', 'connected']);
  t.deepEqual(rec.tail(), ['updated p1'], 'resumed from its resourceVersion: an update, no re-list needed');
});

/** Read newline-delimited JSON events from a watch until the server ends the stream. */
function rawWatch(url: string): { events: JsonObject[]; ended: Promise<number> } {
  const events: JsonObject[] = [];
  const ended = new Promise<number>((resolve, reject) => {
    http.get(url, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          events.push(JSON.parse(buf.slice(0, i)) as JsonObject);
          buf = buf.slice(i + 1);
        }
      });
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
  return { events, ended };
}

test('kube (API-server double): the double itself — bookmarks, timeoutSeconds, 410 after compaction, patch semantics and errors', async (t) => {
  const env = await setup(t);
  const { api } = env;
  api.addNode(nodeObj('n1', '10.244.1.0/24', { keep: 'me', drop: 'me' }));
  const rv0 = api.resourceVersion;
  const w = rawWatch(`${api.url}/api/v1/nodes?watch=true&resourceVersion=${rv0}&allowWatchBookmarks=true&timeoutSeconds=1`);
  await until(() => api.openWatches() === 1, 'the raw watch');
  api.bookmark();
  const patch = async (sub: string, type: string, body: unknown): Promise<{ status: number; json: JsonObject }> => {
    const res = await fetch(`${api.url}/api/v1/nodes/n1${sub}`, { method: 'PATCH', headers: { 'Content-Type': type }, body: JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as JsonObject };
  };
  const smp = 'application/strategic-merge-patch+json';
  let r = await patch('/status', smp, { metadata: { annotations: { drop: null, add: 'x' } }, spec: { unschedulable: true }, status: { conditions: [{ type: 'Ready', status: 'False' }] } });
  t.is(r.status, 200);
  t.deepEqual((r.json.metadata as JsonObject).annotations, { keep: 'me', add: 'x' }, 'annotations merged, null deletes');
  t.is((r.json.spec as JsonObject).unschedulable, undefined, '/status keeps spec');
  t.deepEqual(((r.json.status as JsonObject).conditions as JsonObject[]).map((c) => `${c.type}=${c.status}:${c.reason}`), ['Ready=False:KubeletReady'], 'conditions merged by type');
  r = await patch('', 'application/merge-patch+json', { spec: { unschedulable: true }, status: { conditions: [] } });
  t.is((r.json.spec as JsonObject).unschedulable, true);
  t.is(((r.json.status as JsonObject).conditions as JsonObject[]).length, 1, 'the main resource keeps status');
  const rv = api.resourceVersion;
  r = await patch('', 'application/merge-patch+json', { spec: { unschedulable: true } });
  t.is(api.resourceVersion, rv, 'a no-op patch does not bump the resourceVersion');
  t.is((await patch('', smp, { metadata: { resourceVersion: '1' } })).status, 409);
  t.is((await patch('', 'application/json-patch+json', [])).status, 415);
  t.is((await fetch(`${api.url}/api/v1/nodes/ghost`)).status, 404);

  t.is(await w.ended, 200);
  t.deepEqual(w.events.map((e) => e.type), ['BOOKMARK', 'MODIFIED', 'MODIFIED'], 'bookmark, then the two real changes; closed after timeoutSeconds');
  t.is(((w.events[0]?.object as JsonObject).metadata as JsonObject).resourceVersion, String(rv0));

  api.compact();
  const old = rawWatch(`${api.url}/api/v1/nodes?watch=true&resourceVersion=${rv0}`);
  t.is(await old.ended, 200);
  t.like(old.events[0], { type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
  const fromNow = rawWatch(`${api.url}/api/v1/nodes?watch=true&resourceVersion=0&timeoutSeconds=1`);
  t.is(await fromNow.ended, 200);
  t.deepEqual(fromNow.events.map((e) => e.type), ['ADDED'], 'resourceVersion 0: the current state as ADDED');
  t.deepEqual(api.calls().filter((c) => c.startsWith('watch')).length, 3);
});
