/**
 * The `flannel-bpf status --json` schema (docs/status.schema.json, described
 * in docs/status-schema.md): every report the builder can make validates,
 * and the schema is strict enough to catch drift (extra or missing fields,
 * wrong types). The validator below covers the JSON Schema keywords the
 * schema uses; it is tested here too.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildReport, reportToJson, type StatusReport } from '../../src/cli/status-format.js';
import { facts, stateFile, zeroDrops, NOW } from './status-fixtures.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
type Schema = Record<string, unknown>;
const schema = JSON.parse(fs.readFileSync(path.join(root, 'docs/status.schema.json'), 'utf8')) as Schema;

/** Errors of `value` against `s` (subset of JSON Schema 2020-12: the keywords docs/status.schema.json uses). */
function validate(s: Schema, value: unknown, at = '$', rootSchema: Schema = s): string[] {
  const KNOWN = new Set(['$schema', '$id', '$defs', 'title', 'description', '$ref', 'const', 'enum', 'type', 'properties', 'required',
    'additionalProperties', 'items', 'minimum', 'maximum', 'pattern', 'oneOf']);
  for (const k of Object.keys(s)) if (!KNOWN.has(k)) return [`${at}: schema keyword ${k} is not supported by this validator`];
  if (typeof s.$ref === 'string') {
    const m = /^#\/\$defs\/(.+)$/.exec(s.$ref);
    const target = m ? (rootSchema.$defs as Record<string, Schema>)[m[1]!] : undefined;
    if (!target) return [`${at}: unresolvable $ref ${s.$ref}`];
    return validate(target, value, at, rootSchema);
  }
  const errs: string[] = [];
  if ('const' in s && value !== s.const) errs.push(`${at}: expected ${JSON.stringify(s.const)}`);
  if (Array.isArray(s.enum) && !s.enum.includes(value as never)) errs.push(`${at}: ${JSON.stringify(value)} not in ${JSON.stringify(s.enum)}`);
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    const ok = types.some((t) => (t === 'null' ? value === null
      : t === 'integer' ? Number.isInteger(value)
        : t === 'number' ? typeof value === 'number' && Number.isFinite(value)
          : t === 'array' ? Array.isArray(value)
            : t === 'object' ? typeof value === 'object' && value !== null && !Array.isArray(value)
              : typeof value === t));
    if (!ok) return [...errs, `${at}: ${JSON.stringify(value)?.slice(0, 60)} is not ${types.join('|')}`];
  }
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) errs.push(`${at}: ${value} < ${s.minimum}`);
    if (typeof s.maximum === 'number' && value > s.maximum) errs.push(`${at}: ${value} > ${s.maximum}`);
  }
  if (typeof value === 'string' && typeof s.pattern === 'string' && !new RegExp(s.pattern).test(value)) errs.push(`${at}: ${JSON.stringify(value)} does not match ${s.pattern}`);
  if (Array.isArray(s.oneOf)) {
    const matching = (s.oneOf as Schema[]).filter((alt) => validate(alt, value, at, rootSchema).length === 0).length;
    if (matching !== 1) errs.push(`${at}: matches ${matching} of the oneOf alternatives (needs exactly 1)`);
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, Schema>;
    for (const r of (s.required ?? []) as string[]) if (!(r in obj)) errs.push(`${at}: missing ${r}`);
    for (const [k, v] of Object.entries(obj)) {
      if (props[k]) errs.push(...validate(props[k], v, `${at}.${k}`, rootSchema));
      else if (s.additionalProperties === false) errs.push(`${at}: unexpected property ${k}`);
    }
  }
  if (Array.isArray(value) && s.items) value.forEach((v, i) => errs.push(...validate(s.items as Schema, v, `${at}[${i}]`, rootSchema)));
  return errs;
}

function asJson(r: StatusReport): unknown {
  return JSON.parse(reportToJson(r));
}

test('the validator itself: types, enums, required, additionalProperties, patterns, oneOf, $ref', (t) => {
  const s: Schema = {
    type: 'object', additionalProperties: false, required: ['a', 'b'],
    properties: { a: { type: ['integer', 'null'], minimum: 0 }, b: { $ref: '#/$defs/mac' }, c: { oneOf: [{ type: 'null' }, { enum: ['x'] }] }, d: { type: 'array', items: { const: 1 } } },
    $defs: { mac: { type: 'string', pattern: '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$' } },
  };
  t.deepEqual(validate(s, { a: 1, b: '0e:00:00:00:00:01', c: null, d: [1, 1] }), []);
  t.deepEqual(validate(s, { a: null, b: '0e:00:00:00:00:01', c: 'x' }), []);
  t.true(validate(s, { a: -1, b: '0e:00:00:00:00:01' }).some((e) => e.includes('< 0')));
  t.true(validate(s, { a: 1.5, b: '0e:00:00:00:00:01' }).some((e) => e.includes('is not integer|null')));
  t.true(validate(s, { a: 1 }).some((e) => e.includes('missing b')));
  t.true(validate(s, { a: 1, b: 'zz' }).some((e) => e.includes('does not match')));
  t.true(validate(s, { a: 1, b: '0e:00:00:00:00:01', e: 1 }).some((e) => e.includes('unexpected property e')));
  t.true(validate(s, { a: 1, b: '0e:00:00:00:00:01', c: 'y' }).some((e) => e.includes('oneOf')));
  t.true(validate(s, { a: 1, b: '0e:00:00:00:00:01', d: [1, 2] }).some((e) => e.includes('$.d[1]')));
});

test('every report shape validates: healthy, agent down without a state file, --watch with rates, warnings of every kind', (t) => {
  const healthy = buildReport(facts());
  const down = buildReport(facts({ state: null, agentRunning: false, agentSameNetns: null, subnetEnvMtu: null, subnetEnvExists: null }));
  const drops = zeroDrops();
  drops.wrong_vni = { packets: 3n, bytes: 276n };
  const watched = buildReport(facts({ now: new Date(NOW.getTime() + 2000), drops }), { report: healthy, at: NOW });
  const hooks = facts().hooks.map((h) => (h.hook === 'dev-tc-egress' ? { ...h, progId: null, ours: false } : h));
  const noisy = buildReport(facts({
    hooks, rpFilter: { all: 1, uplink: 1 }, subnetEnvMtu: 1500, capacity: { fbpf_peers: 2, fbpf_sources: 2, fbpf_peer_stats: 2 },
    state: stateFile({
      lastSync: null, store: { kind: 'kube', state: 'disconnected', since: NOW.toISOString(), detail: 'timeout' },
      unreachable: [{ leaseKey: 'n3', subnet: '10.244.3.0/24', publicIp: '192.168.20.13', message: 'not on link' }],
      rejected: [{ leaseKey: 'n9', reason: 'bad_vtep_mac', message: 'bad VtepMAC' }],
    }),
  }));
  const xdp = facts();
  xdp.config = { ...xdp.config, decap: 'xdp' };
  const xdpReport = buildReport({ ...xdp, hooks: xdp.hooks.map((h) => (h.hook === 'uplink-xdp' ? { ...h, progId: 105, mode: 'generic', ours: true } : h)) });
  t.is(xdpReport.decap.xdpMode, 'generic');
  const big = buildReport(facts({ counters: new Map([[1, { txPackets: 2n ** 63n, txBytes: 2n ** 64n - 1n, rxPackets: 0n, rxBytes: 0n }]]) }));
  const all = { healthy, down, watched, noisy, xdpReport, big };
  for (const [name, r] of Object.entries(all)) t.deepEqual(validate(schema, asJson(r)), [], name);
  const seen = new Set(noisy.warnings.map((w) => w.code));
  t.true(['rp_filter_strict', 'mtu_mismatch', 'unreachable_peer', 'rejected_lease', 'program_detached', 'map_nearly_full', 'store_not_connected', 'not_synced'].every((c) => seen.has(c as never)));
});

test('the schema catches drift: an unknown field, a missing field, a wrong type or enum value', (t) => {
  const doc = asJson(buildReport(facts())) as Record<string, Record<string, unknown> & { list?: unknown[] }>;
  const mutate = (f: (d: typeof doc) => void): string[] => {
    const d = structuredClone(doc);
    f(d);
    return validate(schema, d);
  };
  t.true(mutate((d) => { d.node!.extra = 1; }).some((e) => e.includes('unexpected property extra')));
  t.true(mutate((d) => { delete d.agent!.ready; }).some((e) => e.includes('missing ready')));
  t.true(mutate((d) => { (d.peers!.list![0] as Record<string, unknown>).txPackets = '7'; }).some((e) => e.includes('txPackets')));
  t.true(mutate((d) => { (d.peers!.list![0] as Record<string, unknown>).txPackets = -1; }).some((e) => e.includes('< 0')));
  t.true(mutate((d) => { d.decap!.engine = 'ebpf'; }).some((e) => e.includes('not in')));
  t.true(mutate((d) => { d.node!.publicIp = 'host'; }).some((e) => e.includes('does not match')));
  t.true(mutate((d) => { (d as Record<string, unknown>).schema = 'flannel-bpf/status/v2'; }).some((e) => e.includes('expected')));
});

test('docs/status-schema.md documents every field of the schema and points at the schema file', (t) => {
  const doc = fs.readFileSync(path.join(root, 'docs/status-schema.md'), 'utf8');
  t.true(doc.includes('status.schema.json'));
  const missing: string[] = [];
  const walk = (s: Schema, at: string): void => {
    if (typeof s.$ref === 'string') return;
    const props = s.properties as Record<string, Schema> | undefined;
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        const p = at ? `${at}.${k}` : k;
        if (!doc.includes(`\`${p}\``)) missing.push(p);
        walk(v, p);
      }
    }
    if (s.items) walk(s.items as Schema, `${at}[]`);
    if (Array.isArray(s.oneOf)) for (const alt of s.oneOf as Schema[]) walk(alt, at);
  };
  walk(schema, '');
  t.deepEqual(missing, [], 'every field path appears in backquotes in docs/status-schema.md');
});
