/**
 * The agent in kube mode against the Kubernetes API-server double
 * (test/fixtures/apiserver-double.ts: list/watch/patch of Nodes with
 * resourceVersions; no real API server can run here). Real agents in lab
 * node namespaces: flannel's annotations written on the nodes/status
 * subresource, peers programmed from Node annotations, pods talk, a deleted
 * Node leaves the maps, a Node with a bad annotation is rejected by name.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { Lab } from '../../src/cli/lab/lab.js';
import { NodeMaps } from '../../src/maps/index.js';
import { formatCidr, formatIPv4 } from '../../src/maps/addr.js';
import { readStateFile } from '../../src/control/state.js';
import { ApiServerDouble } from '../fixtures/apiserver-double.js';
import { enterNetns, requireRoot } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

requireRoot();

const A = 'flannel.alpha.coreos.com';
let lab: Lab;
let api: ApiServerDouble;

test.before(async () => {
  lab = await Lab.up({ nodes: 0, backend: 'vxlan', segments: 1 });
  /* The double runs in this process, which moves into the lab's router namespace so the nodes can reach it. */
  enterNetns(lab.state.router);
  api = await ApiServerDouble.start({ host: '0.0.0.0', advertise: '192.168.10.1' });
  const netConf = path.join(lab.state.dir, 'net-conf.json');
  fs.writeFileSync(netConf, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }));
  for (const [name, cidr] of [['n1', '10.244.1.0/24'], ['n2', '10.244.2.0/24']] as const) {
    api.addNode({ metadata: { name }, spec: { podCIDR: cidr, podCIDRs: [cidr] } });
  }
  const args = ['--kube-subnet-mgr', `--kube-api-url=${api.url}`, `--net-config-path=${netConf}`];
  const nodes = [lab.addNode(1, { agentArgs: args }), lab.addNode(2, { agentArgs: args })];
  await lab.waitReady(nodes);
  lab.addPod('n1');
  lab.addPod('n2');
});
test.after.always(async () => {
  lab?.down();
  await api?.close();
});

function peersOf(node: string): Map<string, { publicIp: string; vtepMac: string; mode: string }> {
  const maps = NodeMaps.fromPinDir(lab.node(node).pinDir);
  try {
    return new Map(maps.peers.entries().map(([k, v]) => [formatCidr(k), { publicIp: formatIPv4(v.publicIp), vtepMac: v.vtepMac, mode: v.mode }]));
  } finally {
    maps.close();
  }
}

test.serial('annotations are written exactly as flanneld writes them, through nodes/status, and NetworkUnavailable=False', (t) => {
  for (const name of ['n1', 'n2']) {
    const node = api.getNode(name) as { metadata: { annotations: Record<string, string> }; status: { conditions?: Array<Record<string, string>> } };
    const ann = node.metadata.annotations;
    const st = readStateFile(lab.node(name).stateDir)!;
    t.is(ann[`${A}/backend-data`], `{"VNI":1,"VtepMAC":"${st.vtepMac}"}`, 'compact, VtepMAC last');
    t.is(ann[`${A}/backend-type`], 'vxlan');
    t.is(ann[`${A}/public-ip`], lab.node(name).ip);
    t.is(ann[`${A}/kube-subnet-manager`], 'true');
    const cond = node.status.conditions?.find((c) => c.type === 'NetworkUnavailable');
    t.is(cond?.status, 'False');
    t.is(cond?.reason, 'FlannelIsUp');
    t.is(cond?.message, 'Flannel is running on this node');
  }
  const patches = api.calls().filter((c) => c.startsWith('patch '));
  t.true(patches.length > 0);
  t.true(patches.every((c) => c.includes('/status')), `every patch goes to the status subresource: ${patches.join(', ')}`);
});

test.serial('peers are programmed from the Node objects and pods talk', async (t) => {
  const p = peersOf('n1');
  t.deepEqual(p.get('10.244.2.0/24'), { publicIp: lab.node('n2').ip, vtepMac: readStateFile(lab.node('n2').stateDir)!.vtepMac, mode: 'vxlan' });
  t.is(p.size, 1);
  t.deepEqual((await lab.check()).failures, []);
});

test.serial('a Node with a bad annotation is rejected by name; nodes without the flannel annotation are ignored', async (t) => {
  api.addNode({ metadata: { name: 'n9', annotations: { [`${A}/kube-subnet-manager`]: 'true', [`${A}/backend-type`]: 'vxlan', [`${A}/public-ip`]: '999.1.1.1', [`${A}/backend-data`]: '{"VNI":1,"VtepMAC":"0e:00:00:00:09:09"}' } }, spec: { podCIDR: '10.244.9.0/24' } });
  api.addNode({ metadata: { name: 'plain' }, spec: { podCIDR: '10.244.10.0/24' } });
  const st = await waitFor(() => readStateFile(lab.node('n1').stateDir)?.rejected.find((r) => r.leaseKey === 'n9'), { what: 'n9 rejected' });
  t.is(st.reason, 'bad_public_ip');
  t.false(peersOf('n1').has('10.244.10.0/24'), 'a node without kube-subnet-manager annotation is not a peer');
  t.true(peersOf('n1').has('10.244.2.0/24'));
  t.deepEqual((await lab.check()).failures, []);
});

test.serial('a deleted Node leaves the maps', async (t) => {
  api.deleteNode('n2');
  await waitFor(() => !peersOf('n1').has('10.244.2.0/24'), { what: 'n2 to leave n1\'s map' });
  const maps = NodeMaps.fromPinDir(lab.node('n1').pinDir);
  t.teardown(() => maps.close());
  t.deepEqual(maps.sources.entries().map(([ip]) => formatIPv4(ip)), [], 'its tunnel source is gone too');
});
