/**
 * `flannel-bpf demo` (npm run demo): a 3-node flannel-bpf cluster in network
 * namespaces — vxlan with DirectRouting, 2 pods per node made by the real CNI
 * plugins, real agents and etcd — then: the pod connectivity matrix, one
 * node's status, and single-stream TCP through flannel-bpf next to the same
 * path through stock flannel's kernel VXLAN device. Everything is removed at
 * the end (also on Ctrl-C or failure).
 */
import path from 'node:path';
import { Lab, repoRoot } from './lab/lab.js';
import { formatMatrix } from './lab.js';
import { nsRun } from './lab/netns.js';
import { iperf3 } from './lab/iperf.js';

export async function runDemoCommand(_argv: string[]): Promise<number> {
  const t0 = Date.now();
  const say = (s = '') => process.stdout.write(`${s}\n`);
  const step = (s: string) => say(`\n▶ ${s}  [${((Date.now() - t0) / 1000).toFixed(1)} s]`);
  let lab: Lab | null = null;
  const cleanup = () => { if (lab) { lab.down(); lab = null; } };
  const onSignal = () => { say('\ninterrupted: tearing down'); cleanup(); process.exit(130); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    step('building a 3-node cluster: vxlan + DirectRouting, 2 pods per node (router, 2 L2 segments, etcd, agents, CNI)');
    lab = await Lab.up({ nodes: 3, backend: 'vxlan', directRouting: true, podsPerNode: 2, segments: 2, log: (l) => say(`  ${l}`) });
    for (const n of lab.state.nodes) say(`  ${n.name}: ${n.ip.padEnd(14)} segment ${n.segment}  pod subnet ${n.subnet}`);
    say('  n1 ↔ n2 share a segment (DirectRouting: plain IP); n3 is behind the router (VXLAN)');

    step('connectivity: every pod pings every pod');
    const m = await lab.check();
    say(formatMatrix(m));

    step('flannel-bpf status on n1');
    const n1 = lab.node('n1');
    try {
      say(nsRun(n1.ns, [path.join(repoRoot(), 'bin/flannel-bpf'), 'status', `--bpffs-pin-dir=${n1.pinDir}`, `--state-dir=${n1.stateDir}`], { timeoutMs: 30_000 }).trimEnd());
    } catch (err) {
      say(`  (status unavailable: ${(err as Error).message.split('\n')[0]})`);
    }

    step('throughput: single TCP stream pod → pod across the router (n1 → n3), flannel-bpf vs stock flannel\'s kernel VXLAN');
    const { kp1, kp2 } = lab.addStockPair('vxlan', ['a', 'b']);
    const ours = lab.state.pods.find((p) => p.node === 'n1')!;
    const theirs = lab.state.pods.find((p) => p.node === 'n3')!;
    const rows: Array<[string, number]> = [];
    for (let round = 1; round <= 2; round++) {
      const a = await iperf3(ours.ns, theirs.ns, theirs.ip, { seconds: 3 });
      const b = await iperf3(kp1.ns, kp2.ns, kp2.ip, { seconds: 3 });
      rows.push([`flannel-bpf vxlan (round ${round})`, a.gbps], [`stock kernel VXLAN (round ${round})`, b.gbps]);
      say(`  round ${round}: flannel-bpf ${a.gbps.toFixed(2)} Gbit/s   stock ${b.gbps.toFixed(2)} Gbit/s`);
      for (const [who, r] of [['flannel-bpf', a], ['stock', b]] as const) if (r.retried) say(`    (${who}: the first try failed — ${r.retried} — and was run again)`);
    }
    const med = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? 0;
    const ourMed = med(rows.filter(([k]) => k.startsWith('flannel')).map(([, v]) => v));
    const stockMed = med(rows.filter(([k]) => k.startsWith('stock')).map(([, v]) => v));
    say(`  ${'path'.padEnd(28)} ${'Gbit/s'.padStart(8)}`);
    say(`  ${'flannel-bpf (BPF encap)'.padEnd(28)} ${ourMed.toFixed(2).padStart(8)}`);
    say(`  ${'stock flannel (kernel)'.padEnd(28)} ${stockMed.toFixed(2).padStart(8)}`);
    say(`  ratio flannel-bpf / stock: ${(ourMed / (stockMed || 1)).toFixed(2)}× (one shared 2-core VM; across this router the tunnel packets are segmented in software, see docs/performance.md; npm run bench for the careful comparison)`);

    step('tearing down');
    cleanup();
    say(`\ndone in ${((Date.now() - t0) / 1000).toFixed(1)} s; nothing left behind (namespaces, programs, pins, processes)`);
    return m.failures.length ? 1 : 0;
  } catch (err) {
    say(`demo failed: ${(err as Error).message}`);
    cleanup();
    return 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
