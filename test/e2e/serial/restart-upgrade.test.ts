/**
 * Hitless agent restart and upgrade in place, measured with traffic running:
 *
 * - kill -9 of the agents at both ends of a ping flood (5 ms, 3,000 packets)
 *   and a paced TCP stream; a node joins and another leaves while they are
 *   down; the restarted agents reuse the pinned maps and reconcile both
 *   changes. Zero loss, sha256 equal.
 * - upgrade: the agents restart on a newly built set of objects (-mcpu=v3:
 *   every program's code differs) and a new --max-peers (the peer-sized maps
 *   change definition): TC and XDP programs are replaced in place, the maps
 *   migrated, zero loss.
 * - the same crash/restart on a stock flanneld node (the emulator), for the
 *   comparison in docs/reliability.md.
 */
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Lab, repoRoot, type LabNode, type LabPod } from '../../../src/cli/lab/lab.js';
import { ping, pingFlood, tcpTransfer, labRunner } from '../../helpers/traffic.js';
import { hookPrograms, mapState, type HookProgram } from '../../helpers/lab-inspect.js';
import { requireRoot } from '../../helpers/netns.js';
import { stockNode } from '../../helpers/stock-node.js';
import { waitFor } from '../../helpers/wait.js';

requireRoot();

const FLOOD_COUNT = 3000;
const FLOOD_INTERVAL_MS = 5;
/** A TCP stream paced to outlast the event (~12 s). */
const STREAM_BYTES = 48 * 1024 * 1024;
const STREAM_RATE = 4 * 1024 * 1024;

let lab: Lab;
let newObjects: string;

test.before(async () => {
  /* The "new release": the same sources built for BPF ISA v3, so every program's instructions (and tag) change. */
  newObjects = fs.mkdtempSync(path.join(os.tmpdir(), 'fbpf-upgrade-'));
  execFileSync('bash', [path.join(repoRoot(), 'scripts/build-bpf.sh')], {
    cwd: repoRoot(), env: { ...process.env, BPF_OUT_DIR: newObjects, BPF_CFLAGS_EXTRA: '-mcpu=v3' }, stdio: 'pipe',
  });
  lab = await Lab.up({ nodes: 0, backend: 'vxlan', podsPerNode: 0, segments: 2 });
  /* n1 on segment a, n2 and n3 on b (encapsulated through the router); n3 decapsulates with XDP. */
  const nodes = [lab.addNode(1, { segment: 'a' }), lab.addNode(2, { segment: 'b' }), lab.addNode(3, { segment: 'b', agentArgs: ['--decap=xdp'] })];
  await lab.waitReady(nodes);
  for (const n of nodes) lab.addPod(n.name);
  await lab.settle();
});
test.after.always(() => {
  lab?.down();
  if (newObjects) fs.rmSync(newObjects, { recursive: true, force: true });
});

function pod(node: string): LabPod {
  const p = lab.state.pods.find((x) => x.node === node);
  if (!p) throw new Error(`no pod on ${node}`);
  return p;
}

/** Start a flood and a paced stream from a to b; resolve both results. */
function traffic(a: LabPod, b: LabPod, port: number) {
  const flood = pingFlood(labRunner, a.ns, b.ip, FLOOD_COUNT, FLOOD_INTERVAL_MS);
  const stream = tcpTransfer(labRunner, a.ns, b.ns, b.ip, STREAM_BYTES, port, port, { rate: STREAM_RATE, timeoutMs: 90_000 });
  return { flood, stream };
}

async function assertNoLoss(t: ExecutionContext, what: string, tr: ReturnType<typeof traffic>): Promise<void> {
  const [f, s] = await Promise.all([tr.flood.done, tr.stream]);
  t.is(f.sent, FLOOD_COUNT, `${what}: ping ran to the end`);
  t.is(f.received, f.sent, `${what}: zero ping loss (${f.summary})`);
  t.is(s.bytes, STREAM_BYTES, `${what}: the stream delivered every byte`);
  t.is(s.sha256Received, s.sha256Sent, `${what}: sha256 matches`);
  t.log(`${what}: ping ${f.received}/${f.sent} at ${FLOOD_INTERVAL_MS} ms; TCP ${(s.bytes / 2 ** 20).toFixed(0)} MiB over ${(s.ms / 1000).toFixed(1)} s, sha256 equal`);
}

function tagsOf(n: LabNode): Record<string, HookProgram | null> {
  return hookPrograms(n.ns);
}

test.serial('kill -9 of both agents during a ping flood and a TCP stream: zero loss; on restart the pinned maps are reused and a join and a leave that happened meanwhile are reconciled', async (t) => {
  const n1 = lab.node('n1');
  const n3 = lab.node('n3');
  const before = { n1: mapState(n1.pinDir), n3: mapState(n3.pinDir) };
  const hooksBefore = { n1: tagsOf(n1), n3: tagsOf(n3) };
  const tr = traffic(pod('n1'), pod('n3'), 5301);
  await new Promise((r) => setTimeout(r, 1500));

  const t0 = Date.now();
  await Promise.all([lab.stopNodeAndWait('n1', 'SIGKILL'), lab.stopNodeAndWait('n3', 'SIGKILL')]);
  t.false(lab.running('n1') || lab.running('n3'), 'both agents are dead');
  /* While they are down: n4 joins, n2 leaves. */
  const n4 = lab.addNode(4, { segment: 'b' });
  await lab.waitReady([n4]);
  const p4 = lab.addPod('n4');
  const n2 = lab.node('n2');
  const gone = { subnet: n2.subnet!, ip: n2.ip };
  lab.removeNode('n2');
  const downMs = Date.now() - t0;

  lab.startNode(n1);
  lab.startNode(n3);
  await lab.waitReady([n1, n3]);
  const restartMs = Date.now() - t0;
  t.true(tr.flood.running(), 'the agents were back while the flood still ran (the restart happened under traffic)');

  for (const [name, node] of [['n1', n1], ['n3', n3]] as const) {
    const st = await waitFor(() => {
      const s = mapState(node.pinDir);
      return s.subnets.includes(n4.subnet!) && !s.subnets.includes(gone.subnet) ? s : null;
    }, { what: `${name}'s maps reconciled`, timeoutMs: 10_000 });
    t.is(st.peersMapId, before[name].peersMapId, `${name}: the restarted agent reuses the pinned peers map (same map id)`);
    t.false(st.sources.includes(gone.ip), `${name}: the departed node's tunnel source is gone`);
    const hooks = tagsOf(node);
    t.truthy(hooks.uplinkIngress && hooks.devEgress, `${name}: programs attached`);
    t.not(hooks.devEgress?.id, hooksBefore[name].devEgress?.id, `${name}: the restarted agent attached its own programs`);
  }
  t.deepEqual(ping(labRunner, pod('n1').ns, p4.ip), { sent: 3, received: 3 }, 'the node that joined while the agents were down is reachable');
  await assertNoLoss(t, 'kill -9 + restart', tr);
  t.log(`agents down ${(downMs / 1000).toFixed(1)} s (n4 joined, n2 left meanwhile); back and synced after ${(restartMs / 1000).toFixed(1)} s`);
});

test.serial('upgrade in place: agents restarted on newly built objects and a new --max-peers; TC and XDP programs replaced, maps migrated, zero loss', async (t) => {
  const n1 = lab.node('n1');
  const n3 = lab.node('n3');
  const peer = lab.state.nodes.find((n) => n.name !== 'n1' && n.name !== 'n3')!;
  const before = { n1: tagsOf(n1), n3: tagsOf(n3) };
  const mapsBefore = { n1: mapState(n1.pinDir), n3: mapState(n3.pinDir) };
  t.truthy(before.n3.xdp, 'n3 decapsulates with XDP before the upgrade');
  const tr = traffic(pod('n3'), pod('n1'), 5302);
  await new Promise((r) => setTimeout(r, 1500));

  const t0 = Date.now();
  for (const n of [n1, n3]) {
    await lab.stopNodeAndWait(n.name, 'SIGTERM');
    n.extraEnv = { FLANNEL_BPF_OBJ_DIR: newObjects };
    n.extraArgs = [...(n.extraArgs ?? []), '--max-peers=4096'];
    lab.startNode(n);
  }
  await lab.waitReady([n1, n3]);
  const upgradeMs = Date.now() - t0;
  t.true(tr.flood.running(), 'the upgrade finished while the flood still ran');

  for (const [name, node] of [['n1', n1], ['n3', n3]] as const) {
    const after = tagsOf(node);
    for (const hook of ['uplinkIngress', 'devEgress', 'devIngress', ...(name === 'n3' ? ['xdp'] : [])] as const) {
      t.truthy(after[hook], `${name} ${hook}: attached after the upgrade`);
      t.not(after[hook]?.tag, before[name][hook]?.tag, `${name} ${hook}: the new build's program runs (tag ${before[name][hook]?.tag} → ${after[hook]?.tag})`);
    }
    const st = mapState(node.pinDir);
    t.is(st.maxPeers, 4096, `${name}: the peers map has the new size`);
    t.not(st.peersMapId, mapsBefore[name].peersMapId, `${name}: a new peers map`);
    t.deepEqual(st.subnets, mapsBefore[name].subnets, `${name}: every peer carried over`);
    t.deepEqual(fs.readdirSync(node.pinDir).filter((f) => f.includes('__')), [], `${name}: no old pins left`);
    const log = fs.readFileSync(node.logFile, 'utf8');
    t.regex(log, /migrated pinned map fbpf_peers \(max_entries 65536→4096, value 16→16 B\): \d+ entries copied/, `${name}: the migration is logged`);
  }
  t.deepEqual(ping(labRunner, pod('n1').ns, lab.state.pods.find((p) => p.node === peer.name)!.ip), { sent: 3, received: 3 });
  await assertNoLoss(t, 'upgrade in place', tr);
  t.log(`upgrade (2 agents, one after the other) done in ${(upgradeMs / 1000).toFixed(1)} s; XDP ${before.n3.xdp?.tag} → ${tagsOf(n3).xdp?.tag}`);
});

test.serial('the same kill -9 and restart on a stock flanneld node (emulator): figures for the comparison', async (t) => {
  const stock = lab.addNode(5, { external: stockNode, segment: 'a' });
  await lab.waitReady([stock]);
  const p5 = lab.addPod('n5');
  await waitFor(() => ping(labRunner, p5.ns, pod('n3').ip, { count: 1 }).received === 1, { what: 'stock node → n3', timeoutMs: 15_000 });
  const tr = traffic(p5, pod('n3'), 5303);
  await new Promise((r) => setTimeout(r, 1500));
  const readyLines = () => (fs.readFileSync(stock.logFile, 'utf8').match(/"ready":true/g) ?? []).length;
  const readyBefore = readyLines();
  const t0 = Date.now();
  await lab.stopNodeAndWait('n5', 'SIGKILL');
  lab.startNode(stock, stockNode);
  await waitFor(() => readyLines() > readyBefore, { what: 'the restarted stock node to report ready', timeoutMs: 30_000 });
  const restartMs = Date.now() - t0;
  const [f, s] = await Promise.all([tr.flood.done, tr.stream.catch((err: Error) => err)]);
  t.is(f.sent, FLOOD_COUNT, 'the measurement ran to the end');
  const lost = f.sent - f.received;
  const streamOk = !(s instanceof Error) && s.sha256Received === s.sha256Sent;
  t.log(`stock flanneld kill -9 + restart: ping ${f.received}/${f.sent} (${lost} lost), TCP stream ${streamOk ? 'intact' : `broken (${s instanceof Error ? s.message : 'sha mismatch'})`}, back after ${(restartMs / 1000).toFixed(1)} s`);
  t.true(lab.running('n5'), 'the stock node came back');
});
