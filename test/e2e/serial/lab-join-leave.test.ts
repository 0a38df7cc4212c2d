/**
 * Nodes join and leave while traffic runs: a new node becomes reachable, a
 * removed node's entries disappear from every map, and the traffic between
 * the remaining pods loses nothing.
 */
import test from 'ava';
import { Lab } from '../../../src/cli/lab/lab.js';
import { nsSpawn } from '../../../src/cli/lab/netns.js';
import { NodeMaps } from '../../../src/maps/index.js';
import { formatCidr, formatIPv4 } from '../../../src/maps/addr.js';
import { ping, labRunner } from '../../helpers/traffic.js';
import { requireRoot } from '../../helpers/netns.js';
import { waitFor } from '../../helpers/wait.js';

requireRoot();
let lab: Lab;
test.before(async () => {
  lab = await Lab.up({ nodes: 3, backend: 'vxlan', directRouting: true, podsPerNode: 1, segments: 2 });
});
test.after.always(() => { lab?.down(); });

function mapState(node: string): { subnets: string[]; sources: string[] } {
  const maps = NodeMaps.fromPinDir(lab.node(node).pinDir);
  try {
    return { subnets: maps.peers.entries().map(([k]) => formatCidr(k)).sort(), sources: maps.sources.entries().map(([ip]) => formatIPv4(ip)).sort() };
  } finally {
    maps.close();
  }
}

test.serial('a node joins and another leaves while traffic runs: no loss between the others', async (t) => {
  const p1 = lab.state.pods.find((p) => p.node === 'n1')!;
  const p2 = lab.state.pods.find((p) => p.node === 'n2')!;
  /* ~1000 pings at 10 ms between n1 and n2 for the whole join/leave. */
  const flood = nsSpawn(p1.ns, ['ping', '-c', '1000', '-i', '0.01', '-W', '1', '-q', p2.ip], { out: 'pipe' });
  let out = '';
  flood.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  const done = new Promise<number | null>((resolve) => flood.on('exit', resolve));

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

  const code = await done;
  t.is(code, 0, out);
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  t.is(m?.[1], '1000');
  t.is(m?.[2], '1000', 'zero loss between n1 and n2 while nodes came and went');
  t.log(`ping n1→n2 during join/leave: ${m?.[2]}/${m?.[1]}`);
});
