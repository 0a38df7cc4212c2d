/**
 * The metrics endpoint without BPF: the per-peer text renderer, the
 * exposition of the agent-derived families from a fake agent, the reconcile
 * histogram, readiness (including the hold-down after a re-attach), and that
 * docs/metrics.md and the Grafana dashboard match the metrics that exist.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AgentMetrics, METRICS, REATTACH_HOLD_MS, EXPORTED_DROP_REASONS, readinessChecks, renderPeerFamilies, peerLabelString, escapeLabelValue,
  type MetricsAgentView,
} from '../../src/metrics/server.js';
import { readinessReport } from '../../src/metrics/health.js';
import { parseCidr, parseIPv4 } from '../../src/maps/addr.js';
import { DROP_REASONS } from '../../src/maps/reasons.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Sample { name: string; labels: Record<string, string>; value: number }

/** Parse Prometheus text format 0.0.4 strictly enough to catch malformed lines. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string>; helps: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helps = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) { helps.set(m[1]!, m[2]!); continue; }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) { types.set(m[1]!, m[2]!); continue; }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.]+(?:e[+-]?[0-9]+)?|[Nn]a[Nn]|[+-]Inf)$/.exec(line);
    if (!m) throw new Error(`malformed exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    let lm: RegExpExecArray | null;
    let consumed = 0;
    while ((lm = re.exec(m[2] ?? '')) !== null) {
      labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      consumed += lm[0].length;
    }
    if (consumed !== (m[2] ?? '').length) throw new Error(`malformed labels: ${line}`);
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types, helps };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function fakeAgent(over: Partial<MetricsAgentView> = {}): Mutable<MetricsAgentView> {
  return {
    nodeName: 'n1', flags: { maxPeers: 65536, kubeSubnetMgr: false },
    storeState: { state: 'connected', since: new Date() }, conf: { backend: { type: 'vxlan' } },
    lease: { key: '10.244.1.0-24', subnet: parseCidr('10.244.1.0/24'), publicIp: parseIPv4('192.168.10.11') }, uplink: { iface: { name: 'eth0' } },
    engine: 'kernel', xdpMode: null, vtepMac: '0e:fb:00:00:00:01', dp: null,
    reconciler: {
      planned: [{ leaseKey: '10.244.2.0-24', subnet: parseCidr('10.244.2.0/24'), mode: 'vxlan', publicIp: parseIPv4('192.168.10.12'), vtepMac: '0e:fb:00:00:00:02', peerId: 1 }],
      last: { rejected: [{ leaseKey: 'x', reason: 'bad_vtep_mac', message: 'm' }], unreachable: [] }, synced: true,
    },
    hooks: [], attached: () => true, subnetEnvWritten: true, lastSync: new Date(1_700_000_000_000),
    leaseEvents: { added: 3, updated: 2, removed: 1, snapshot: 1, rejected: 4 }, rejectedTotal: new Map([['bad_vtep_mac', 2], ['overlaps_peer', 1]]),
    lastApply: null, detachedFound: { count: 0, lastAt: null, hooks: [] },
    ...over,
  };
}

const value = (s: Sample[], name: string, labels: Record<string, string> = {}) =>
  s.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;

test('per-peer families: HELP/TYPE once per family, one series per peer, labels escaped, exact integers', (t) => {
  const peers = [
    { leaseKey: 'node-a', subnet: parseCidr('10.244.2.0/24'), mode: 'vxlan' as const, publicIp: parseIPv4('192.168.10.12') },
    { leaseKey: 'we"ird\\name\n', subnet: parseCidr('10.244.3.0/24'), mode: 'direct' as const, publicIp: parseIPv4('192.168.10.13') },
  ];
  const labels = peers.map(peerLabelString);
  t.is(labels[0], 'peer="node-a",peer_ip="192.168.10.12",subnet="10.244.2.0/24",mode="vxlan"');
  const counters = new Float64Array([7, 588, 6, 504, 2 ** 53, 1, 0, 0]);
  const text = renderPeerFamilies(labels, counters);
  const { samples, types, helps } = parseExposition(text);
  t.is(samples.length, 8);
  for (const n of ['flannel_bpf_peer_tx_packets_total', 'flannel_bpf_peer_tx_bytes_total', 'flannel_bpf_peer_rx_packets_total', 'flannel_bpf_peer_rx_bytes_total']) {
    t.is(types.get(n), 'counter');
    t.true((helps.get(n) ?? '').length > 20);
  }
  t.is(value(samples, 'flannel_bpf_peer_tx_packets_total', { peer: 'node-a' }), 7);
  t.is(value(samples, 'flannel_bpf_peer_tx_bytes_total', { peer: 'node-a' }), 588);
  t.is(value(samples, 'flannel_bpf_peer_rx_packets_total', { peer: 'node-a' }), 6);
  t.is(value(samples, 'flannel_bpf_peer_rx_bytes_total', { peer: 'node-a' }), 504);
  t.is(value(samples, 'flannel_bpf_peer_tx_packets_total', { peer: 'we"ird\\name\n', mode: 'direct' }), 2 ** 53);
  t.true(text.includes('flannel_bpf_peer_tx_packets_total{peer="we\\"ird\\\\name\\n",peer_ip="192.168.10.13",subnet="10.244.3.0/24",mode="direct"} 9007199254740992\n'));
  t.is(escapeLabelValue('a"b'), 'a\\"b');
});

test('a scrape without maps: the agent-derived families with their values; the map-derived ones absent', async (t) => {
  const agent = fakeAgent();
  const m = new AgentMetrics(agent, { defaultMetrics: false });
  const text = await m.scrape();
  const { samples, types } = parseExposition(text);
  t.is(value(samples, 'flannel_bpf_peers', { state: 'programmed' }), 1);
  t.is(value(samples, 'flannel_bpf_peers', { state: 'rejected' }), 1);
  t.is(value(samples, 'flannel_bpf_peers', { state: 'unreachable' }), 0);
  for (const [type, n] of Object.entries({ added: 3, updated: 2, removed: 1, snapshot: 1, rejected: 4 })) t.is(value(samples, 'flannel_bpf_lease_events_total', { type }), n);
  t.is(value(samples, 'flannel_bpf_lease_rejections_total', { reason: 'bad_vtep_mac' }), 2);
  t.is(value(samples, 'flannel_bpf_lease_store_state', { store: 'etcd', state: 'connected' }), 1);
  t.is(value(samples, 'flannel_bpf_lease_store_state', { store: 'etcd', state: 'disconnected' }), 0);
  t.is(value(samples, 'flannel_bpf_last_sync_timestamp_seconds'), 1_700_000_000);
  t.is(value(samples, 'flannel_bpf_ready'), 1);
  t.is(value(samples, 'flannel_bpf_info', { node: 'n1', backend: 'vxlan', decap: 'kernel', subnet: '10.244.1.0/24', public_ip: '192.168.10.11' }), 1);
  t.is(value(samples, 'flannel_bpf_scrape_errors_total'), 0);
  t.is(types.get('flannel_bpf_reconcile_duration_seconds'), 'histogram');
  t.is(samples.filter((s) => s.name.startsWith('flannel_bpf_peer_')).length, 0, 'no per-peer series without maps');
  t.is(samples.filter((s) => s.name === 'flannel_bpf_drops_total').length, 0);
  t.is(samples.filter((s) => s.name.startsWith('process_')).length, 0, 'defaultMetrics: false');

  agent.rejectedLeases = () => [{ leaseKey: 'x' }, { leaseKey: 'unparsable' }];
  agent.storeState = { state: 'disconnected', since: new Date() };
  const again = parseExposition(await m.scrape()).samples;
  t.is(value(again, 'flannel_bpf_lease_store_state', { store: 'etcd', state: 'disconnected' }), 1, 'read at scrape time');
  t.is(value(again, 'flannel_bpf_lease_store_state', { store: 'etcd', state: 'connected' }), 0);
  t.is(value(again, 'flannel_bpf_peers', { state: 'rejected' }), 2, 'store-level rejections count too (Agent.rejectedLeases)');
});

test('process metrics from prom-client are in the scrape', async (t) => {
  const m = new AgentMetrics(fakeAgent());
  const { samples } = parseExposition(await m.scrape());
  t.true(samples.some((s) => s.name === 'process_cpu_seconds_total'));
  t.true(samples.some((s) => s.name === 'process_resident_memory_bytes' && s.value > 0));
});

test('reconcile histogram: one observation per apply, however often the agent reports a change', async (t) => {
  const agent = fakeAgent();
  const m = new AgentMetrics(agent, { defaultMetrics: false });
  agent.lastApply = { seconds: 0.003 };
  m.onAgentChange(agent);
  m.onAgentChange(agent);
  m.onAgentChange(agent);
  agent.lastApply = { seconds: 0.2 };
  m.onAgentChange(agent);
  const { samples } = parseExposition(await m.scrape());
  t.is(value(samples, 'flannel_bpf_reconcile_duration_seconds_count'), 2);
  t.is(value(samples, 'flannel_bpf_reconcile_duration_seconds_bucket', { le: '0.0025' }), 0);
  t.is(value(samples, 'flannel_bpf_reconcile_duration_seconds_bucket', { le: '0.005' }), 1);
  t.is(value(samples, 'flannel_bpf_reconcile_duration_seconds_bucket', { le: '0.25' }), 2);
  t.true(Math.abs((value(samples, 'flannel_bpf_reconcile_duration_seconds_sum') ?? 0) - 0.203) < 1e-9);
});

test('readiness: each check fails on its own fact; a found-detached program holds readiness down for the hold time', (t) => {
  let now = 1_000_000;
  const agent = fakeAgent();
  const checks = readinessChecks(agent, () => now);
  t.deepEqual(readinessReport(checks), { ready: true, failing: [] });
  const notSynced = readinessChecks(fakeAgent({ reconciler: { planned: [], last: null, synced: false } }), () => now);
  t.deepEqual(readinessReport(notSynced).failing, ['maps synced with the lease store: no lease snapshot applied yet']);
  t.deepEqual(readinessReport(readinessChecks(fakeAgent({ subnetEnvWritten: false }))).failing, ['subnet.env written: not yet']);
  t.deepEqual(readinessReport(readinessChecks(fakeAgent({ attached: () => false }))).failing, ['programs attached: not yet']);
  t.deepEqual(readinessReport(readinessChecks(fakeAgent({ uplinkUp: false }))).failing.slice(0, 1), ['uplink present: eth0 is gone']);

  const found = { count: 1, lastAt: new Date(now), hooks: ['uplink-tc-ingress'] };
  const held = fakeAgent({ detachedFound: found });
  const heldChecks = readinessChecks(held, () => now);
  now += 100;
  const r = readinessReport(heldChecks);
  t.false(r.ready);
  t.regex(r.failing[0]!, /^programs attached: found detached 0\.1 s ago \(uplink-tc-ingress\) and re-attached; ready again in 4\.9 s$/);
  now += REATTACH_HOLD_MS - 200;
  t.false(readinessReport(heldChecks).ready);
  now += 200;
  t.true(readinessReport(heldChecks).ready, 'ready again after the hold time');
});

test('the scrape reports readiness as /readyz does', async (t) => {
  const m = new AgentMetrics(fakeAgent({ subnetEnvWritten: false }), { defaultMetrics: false });
  t.is(value(parseExposition(await m.scrape()).samples, 'flannel_bpf_ready'), 0);
});

test('docs/metrics.md lists every metric with its type and labels, and every drop reason', (t) => {
  const doc = fs.readFileSync(path.join(root, 'docs/metrics.md'), 'utf8');
  for (const m of METRICS) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${m.name}\` |`));
    t.truthy(row, `${m.name} has a row`);
    const cells = (row ?? '').split('|').map((c) => c.trim());
    t.is(cells[2], m.type, `${m.name} type`);
    const labels = m.labels.length ? m.labels.map((l) => `\`${l}\``).join(', ') : '(none)';
    t.is(cells[3], labels, `${m.name} labels`);
    t.is(cells[4], m.help, `${m.name} help text matches the endpoint's HELP`);
  }
  for (const r of EXPORTED_DROP_REASONS) t.true(doc.includes(`| \`${r}\` |`), `drop reason ${r}`);
  t.is(EXPORTED_DROP_REASONS.length, DROP_REASONS.length - 1);
  t.true(doc.includes('0.0.0.0:9472'));
});

test('the Grafana dashboard: valid, has the required panels, and queries only metrics that exist', (t) => {
  const dash = JSON.parse(fs.readFileSync(path.join(root, 'deploy/grafana-dashboard.json'), 'utf8')) as {
    title: string; uid: string; panels: Array<{ type: string; title: string; id: number; targets?: Array<{ expr: string }> }>;
    templating: { list: Array<{ name: string }> };
  };
  t.is(dash.uid, 'flannel-bpf');
  const titles = dash.panels.map((p) => p.title);
  for (const want of [/per-peer throughput sent/i, /per-peer throughput received/i, /drops by reason/i, /reconcile latency/i, /lease store/i, /map fill/i]) {
    t.true(titles.some((x) => want.test(x)), `a panel matching ${want}`);
  }
  t.is(new Set(dash.panels.map((p) => p.id)).size, dash.panels.length, 'unique panel ids');
  t.deepEqual(dash.templating.list.map((v) => v.name), ['datasource', 'job', 'instance']);
  const known = new Set(METRICS.flatMap((m) => (m.type === 'histogram' ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name])));
  const exprs = dash.panels.flatMap((p) => p.targets ?? []).map((x) => x.expr);
  t.true(exprs.length >= 20);
  const used = new Set(exprs.flatMap((e) => e.match(/\b(flannel_bpf_[a-z_]+|process_[a-z_]+)\b/g) ?? []));
  const unknown = [...used].filter((n) => !known.has(n) && !['process_cpu_seconds_total', 'process_resident_memory_bytes'].includes(n));
  t.deepEqual(unknown, []);
  for (const n of ['flannel_bpf_peer_tx_bytes_total', 'flannel_bpf_peer_rx_bytes_total', 'flannel_bpf_drops_total', 'flannel_bpf_reconcile_duration_seconds_bucket', 'flannel_bpf_lease_store_state']) {
    t.true(used.has(n), `dashboard uses ${n}`);
  }
  for (const e of exprs) t.true(e.includes('instance=~"$instance"'), `filtered by the node variable: ${e}`);
});
