/**
 * kube-proxy compatibility on the compat path (DESIGN.md §2): with a
 * conntrack INVALID-drop rule like kube-proxy's on every node,
 *  - a ClusterIP emulated by a DNAT rule on the client's node, backend pod on
 *    another node (across the router);
 *  - a NodePort emulated by DNAT + SNAT (MASQUERADE) on a third node, client
 *    outside the cluster, backend pod on the first node.
 * Both directions of each flow pass the stack on both nodes, so conntrack
 * sees a symmetric flow and reverse NAT works.
 */
import test from 'ava';
import { Lab } from '../../src/cli/lab/lab.js';
import { addNetns, nsExec, vethBetween } from '../../src/cli/lab/netns.js';
import { tcpTransfer, labRunner } from '../helpers/traffic.js';
import { requireRoot } from '../helpers/netns.js';

requireRoot();
let lab: Lab;
let ext: string;

test.before(async () => {
  lab = await Lab.up({ nodes: 3, backend: 'vxlan', podsPerNode: 1, segments: 2 });
  for (const n of lab.state.nodes) nsExec(n.ns, 'iptables -I FORWARD 1 -m conntrack --ctstate INVALID -j DROP');
  /* A client outside the cluster, on segment b. */
  ext = `${lab.state.prefix}-ext`;
  addNetns(ext);
  vethBetween(ext, 'eth0', lab.state.router, `${lab.state.prefix.slice(0, 6)}ext`);
  nsExec(lab.state.router, `ip link set ${lab.state.prefix.slice(0, 6)}ext master br-b up`);
  nsExec(ext, 'ip addr add 192.168.20.100/24 dev eth0; ip link set eth0 up; ip route add default via 192.168.20.1');
});
test.after.always(() => { lab?.down(); });

const pod = (node: string) => lab.state.pods.find((p) => p.node === node)!;

test.serial('ClusterIP: DNAT on the client\'s node to a pod behind the router; data intact, no INVALID drops', async (t) => {
  const n1 = lab.node('n1');
  nsExec(n1.ns, `iptables -t nat -A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination ${pod('n3').ip}:5301`);
  const r = await tcpTransfer(labRunner, pod('n1').ns, pod('n3').ns, '10.96.0.10', 20 * 1024 * 1024, 5301, 80);
  t.is(r.sha256Received, r.sha256Sent);
  t.is(r.bytes, 20 * 1024 * 1024);
  const invalid = nsExec(n1.ns, 'iptables -L FORWARD -v -x -n | grep INVALID');
  t.regex(invalid, /^\s*0\s+0\s+DROP/m, 'the INVALID rule dropped nothing on the client node');
});

test.serial('NodePort: DNAT + SNAT on a third node from an outside client to a pod on the first node', async (t) => {
  const n3 = lab.node('n3');
  nsExec(n3.ns, `iptables -t nat -A PREROUTING -d ${n3.ip}/32 -p tcp --dport 30080 -j DNAT --to-destination ${pod('n1').ip}:5302
    iptables -t nat -A POSTROUTING -d ${pod('n1').ip}/32 -p tcp --dport 5302 -j MASQUERADE`);
  const r = await tcpTransfer(labRunner, ext, pod('n1').ns, n3.ip, 20 * 1024 * 1024, 5302, 30080);
  t.is(r.sha256Received, r.sha256Sent);
  for (const n of ['n1', 'n3']) {
    t.regex(nsExec(lab.node(n).ns, 'iptables -L FORWARD -v -x -n | grep INVALID'), /^\s*0\s+0\s+DROP/m, `no INVALID drops on ${n}`);
  }
});
