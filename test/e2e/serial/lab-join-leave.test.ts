/**
 * Nodes join and leave while traffic runs: a new node becomes reachable, a
 * removed node's entries disappear from every map, and the traffic between
 * the remaining pods loses nothing.
 */
import test from 'ava';
import { Lab } from '../../../src/cli/lab/lab.js';
import { ping, pingFlood, labRunner } from '../../helpers/traffic.js';
import { mapState as pinnedState } from '../../helpers/lab-inspect.js';
import { requireRoot } from '../../helpers/netns.js';
import { waitFor } from '../../helpers/wait.js';

requireRoot();
let lab: Lab;
test.before(async () => {
  lab = await Lab.up({ nodes: 3, backend: 'vxlan', directRouting: true, podsPerNode: 1, segments: 2 });
});
test.after.always(() => { lab?.down(); });

const mapState = (node: string) => pinnedState(lab.node(node).pinDir);

test.serial('a node joins and another leaves while traffic runs: no loss between the others', async (t) => {
  const p1 = lab.state.pods.find((p) => p.node === 'n1')!;
  const p2 = lab.state.pods.find((p) => p.node === 'n2')!;
  /* ~1000 pings at 10 ms between n1 and n2 for the whole join/leave. */
  const flood = pingFlood(labRunner, p1.ns, p2.ip, 1000, 10);

  const n4 = lab.addNode(4, { segment: 'b' });
  await lab.waitReady([n4]);
  const p4 = lab.addPod('n4');
  for (const n of ['n1', 'n2', 'n3']) {
    await waitFor(() => mapState(n).subnets.includes(n4.subnet!), { what: `n4 in ${n}'s map` });
  }
  t.deepEqual(ping(labRunner, p1.ns, p4.ip), { sent: 3, received: 3 }, 'the new node\'s pod is reachable');

  const n3 = lab.node('n3');
  const gone = { subnet: n3.subnet!, ip: n3.ip };
  lab.removeNode('n3');
  for (const n of ['n1', 'n2', 'n4']) {
    const st = await waitFor(() => {
      const s = mapState(n);
      return !s.subnets.includes(gone.subnet) && !s.sources.includes(gone.ip) ? s : null;
    }, { what: `n3 gone from ${n}'s maps` });
    t.false(st.subnets.includes(gone.subnet));
  }

  const r = await flood.done;
  t.is(r.sent, 1000);
  t.is(r.received, 1000, 'zero loss between n1 and n2 while nodes came and went');
  t.log(`ping n1→n2 during join/leave: ${r.received}/${r.sent}`);
});
