/**
 * kube-proxy compatibility (DESIGN.md §2), registered for the compat path and
 * for the fast path. With a conntrack INVALID-drop rule like kube-proxy's on
 * every node:
 *  - a ClusterIP emulated by a DNAT rule on the client's node, backend pod on
 *    another node (across the router);
 *  - a NodePort emulated by DNAT + SNAT (MASQUERADE) on a third node, client
 *    outside the cluster, backend pod on the first node.
 * On the compat path every packet passes the stack on both nodes. With the
 * fast path, flows conntrack tracks stay on the compat path in both
 * directions and the others bypass it in both directions, so conntrack never
 * sees half a flow.
 */
import test from 'ava';
import { Lab } from '../../src/cli/lab/lab.js';
import { NodeMaps } from '../../src/maps/index.js';
import { addNetns, nsExec, vethBetween } from '../../src/cli/lab/netns.js';
import { tcpTransfer, labRunner } from './traffic.js';
import { requireRoot } from './netns.js';

export function registerKubeProxy(label: string, fastPath: boolean): void {
  requireRoot();
  let lab: Lab;
  let ext: string;

  test.before(async () => {
    lab = await Lab.up({ nodes: 3, backend: 'vxlan', podsPerNode: 1, segments: 2, agentArgs: [`--fast-path=${fastPath ? 'on' : 'off'}`] });
    for (const n of lab.state.nodes) nsExec(n.ns, 'iptables -w 5 -I FORWARD 1 -m conntrack --ctstate INVALID -j DROP');
    /* A client outside the cluster, on segment b. */
    ext = `${lab.state.prefix}-ext`;
    addNetns(ext);
    vethBetween(ext, 'eth0', lab.state.router, `${lab.state.prefix.slice(0, 6)}ext`);
    nsExec(lab.state.router, `ip link set ${lab.state.prefix.slice(0, 6)}ext master br-b up`);
    nsExec(ext, 'ip addr add 192.168.20.100/24 dev eth0; ip link set eth0 up; ip route add default via 192.168.20.1');
    if (fastPath) {
      /* cni0 is created with the first pod; the agent attaches the fast path to it within a second or two. */
      for (const n of lab.state.nodes) {
        for (let i = 0; i < 100 && !/fbpf_cni_ingres/.test(nsExec(n.ns, 'tc filter show dev cni0 ingress')); i++) {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
  });
  test.after.always(() => { lab?.down(); });

  const pod = (node: string) => lab.state.pods.find((p) => p.node === node)!;
  const invalidDrops = (n: string) => nsExec(lab.node(n).ns, 'iptables -L FORWARD -v -x -n | grep INVALID');

  test.serial(`${label} ClusterIP: DNAT on the client's node to a pod behind the router; data intact, no INVALID drops`, async (t) => {
    const n1 = lab.node('n1');
    nsExec(n1.ns, `iptables -t nat -A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination ${pod('n3').ip}:5301`);
    const r = await tcpTransfer(labRunner, pod('n1').ns, pod('n3').ns, '10.96.0.10', 20 * 1024 * 1024, 5301, 80);
    t.is(r.sha256Received, r.sha256Sent);
    t.is(r.bytes, 20 * 1024 * 1024);
    for (const n of ['n1', 'n3']) t.regex(invalidDrops(n), /^\s*0\s+0\s+DROP/m, `the INVALID rule dropped nothing on ${n}`);
  });

  test.serial(`${label} NodePort: DNAT + SNAT on a third node from an outside client to a pod on the first node`, async (t) => {
    const n3 = lab.node('n3');
    nsExec(n3.ns, `iptables -t nat -A PREROUTING -d ${n3.ip}/32 -p tcp --dport 30080 -j DNAT --to-destination ${pod('n1').ip}:5302
      iptables -t nat -A POSTROUTING -d ${pod('n1').ip}/32 -p tcp --dport 5302 -j MASQUERADE`);
    const r = await tcpTransfer(labRunner, ext, pod('n1').ns, n3.ip, 20 * 1024 * 1024, 5302, 30080);
    t.is(r.sha256Received, r.sha256Sent);
    for (const n of ['n1', 'n3']) t.regex(invalidDrops(n), /^\s*0\s+0\s+DROP/m, `no INVALID drops on ${n}`);
  });

  if (!fastPath) {
    test.serial(`${label} with --fast-path=off nothing bypasses the stack`, async (t) => {
      t.deepEqual((await lab.check()).failures, []);
      for (const n of ['n1', 'n2', 'n3']) {
        const maps = NodeMaps.fromPinDir(lab.node(n).pinDir);
        try {
          const f = maps.readFastStats();
          t.is(f.fast_tx.packets + f.fast_rx.packets, 0n, `no fast-path packet on ${n}`);
        } finally { maps.close(); }
        t.false(/fbpf_cni_ingres/.test(nsExec(lab.node(n).ns, 'tc filter show dev cni0 ingress')), `no program on ${n}'s cni0`);
      }
    });
  }

  if (fastPath) {
    test.serial(`${label} plain pod-to-pod flows took the fast path; the NATed ones stayed with conntrack`, async (t) => {
      const m = await lab.check();
      t.deepEqual(m.failures, []);
      const r = await tcpTransfer(labRunner, pod('n1').ns, pod('n2').ns, pod('n2').ip, 8 * 1024 * 1024, 5303);
      t.is(r.sha256Received, r.sha256Sent);
      const stats = (n: string) => {
        const maps = NodeMaps.fromPinDir(lab.node(n).pinDir);
        try { return maps.readFastStats(); } finally { maps.close(); }
      };
      const n1 = stats('n1');
      const n2 = stats('n2');
      /* Bytes, not packets: a GSO super-packet delivered whole counts once. */
      t.true(n1.fast_tx.bytes >= 8n * 1024n * 1024n, `n1 sent the transfer on the fast path (${n1.fast_tx.bytes} bytes)`);
      t.true(n2.fast_rx.bytes >= 8n * 1024n * 1024n, `n2 delivered it on the fast path (${n2.fast_rx.bytes} bytes)`);
      t.true(n1.ct_tracked.packets > 0n, `the ClusterIP flow's replies stayed with conntrack on n1 (${n1.ct_tracked.packets})`);
      for (const n of ['n1', 'n2', 'n3']) t.regex(invalidDrops(n), /^\s*0\s+0\s+DROP/m, `no INVALID drops on ${n}`);
    });
  }
}
