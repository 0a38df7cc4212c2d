/**
 * Mixed clusters: a node running stock flanneld's behaviour (the emulator in
 * test/fixtures/stock-flannel.ts: same etcd records, kernel flannel.1 with
 * per-peer route/neigh/FDB, or host-gw routes) next to flannel-bpf nodes in
 * one lab. Pods on every node reach pods on every other node, both ways.
 */
import test from 'ava';
import { Lab, type LabBackend } from '../../src/cli/lab/lab.js';
import { nsExec } from '../../src/cli/lab/netns.js';
import { NodeMaps } from '../../src/maps/index.js';
import { formatCidr } from '../../src/maps/addr.js';
import { stockNode } from '../helpers/stock-node.js';
import { requireRoot } from '../helpers/netns.js';
import { tcpTransfer, labRunner } from '../helpers/traffic.js';
import { waitFor } from '../helpers/wait.js';

requireRoot();

for (const [label, backend, directRouting, segment] of [
  ['vxlan, stock node behind the router', 'vxlan', false, 'b'],
  ['vxlan + DirectRouting, stock node on the same segment', 'vxlan', true, 'a'],
  ['host-gw', 'host-gw', false, 'a'],
] as const) {
  test.serial(`mixed cluster (${label}): flannel-bpf and stock flannel nodes exchange traffic both ways`, async (t) => {
    const lab = await Lab.up({ nodes: 2, backend: backend as LabBackend, directRouting, podsPerNode: 1, segments: backend === 'host-gw' ? 1 : 2 });
    t.teardown(() => lab.down());
    /* The stock node starts after ours are up: stock flanneld exits when it loses a subnet race. */
    const stock = lab.addNode(3, { external: stockNode, segment });
    await lab.waitReady([stock]);
    lab.addPod('n3');
    /* flanneld writes subnet.env before it has programmed its peers: wait for its routes. */
    await waitFor(() => {
      const routes = nsExec(stock.ns, 'ip route');
      return ['n1', 'n2'].every((n) => routes.includes(lab.node(n).subnet!));
    }, { what: 'the stock node to program its peers' });
    const m = await lab.check();
    t.deepEqual(m.failures, [], 'every pod reaches every pod');
    if (m.retried.length) t.log(`answered on the second ping only: ${m.retried.join(', ')}`);
    /* Our maps hold the stock node's lease as written by flanneld. */
    const maps = NodeMaps.fromPinDir(lab.node('n1').pinDir);
    t.teardown(() => maps.close());
    const entry = maps.peers.entries().find(([k]) => formatCidr(k) === stock.subnet);
    t.truthy(entry, 'the stock node is a peer in our map');
    const want = backend === 'host-gw' ? 'host-gw' : directRouting ? 'direct' : 'vxlan';
    t.is(entry?.[1].mode, want);
    if (backend === 'vxlan' && !directRouting) {
      t.regex(nsExec(stock.ns, 'bridge fdb show dev flannel.1'), new RegExp(`dst ${lab.node('n1').ip} self permanent`), 'the stock node programmed an FDB entry for us');
    }
    const ours = lab.state.pods.find((p) => p.node === 'n1')!;
    const theirs = lab.state.pods.find((p) => p.node === 'n3')!;
    const a = await tcpTransfer(labRunner, ours.ns, theirs.ns, theirs.ip, 20 * 1024 * 1024);
    t.is(a.sha256Received, a.sha256Sent, 'flannel-bpf → stock intact');
    const b = await tcpTransfer(labRunner, theirs.ns, ours.ns, ours.ip, 20 * 1024 * 1024, 5202);
    t.is(b.sha256Received, b.sha256Sent, 'stock → flannel-bpf intact');
  });
}
