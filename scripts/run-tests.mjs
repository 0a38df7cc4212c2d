#!/usr/bin/env node
// `npm test`: unit and BPF tests first, namespace (e2e) tests after; prints
// how many tests ran in each phase; fails on any failure, skip or todo, and
// on anything a test left behind (namespaces, BPF programs, pins).
import { spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';

/*
 * e2e files run two at a time; test/e2e/serial/ holds the ones that measure
 * loss or timing (zero-loss floods, crash/restart), run one at a time so other
 * tests' bulk transfers do not starve them of CPU.
 */
const phases = [
  { name: 'unit', dir: 'test/unit' },
  { name: 'bpf', dir: 'test/bpf' },
  { name: 'e2e', dir: 'test/e2e', exclude: 'test/e2e/serial' },
  { name: 'e2e-serial', dir: 'test/e2e/serial', avaArgs: ['--concurrency=1', '--serial'] },
];

function testFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(`${dir}/${e.name}`) : e.name.endsWith('.test.ts') ? [`${dir}/${e.name}`] : []).sort();
}
const only = process.argv.slice(2);

function snapshot() {
  const netns = (() => { try { return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]).filter(Boolean); } catch { return []; } })();
  const progs = (() => {
    try {
      return JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' }))
        .filter((p) => String(p.name ?? '').startsWith('fbpf_')).map((p) => `${p.id}:${p.name}`);
    } catch { return []; }
  })();
  const pins = (() => { try { return fs.readdirSync('/sys/fs/bpf').filter((n) => n.startsWith('fbt') || n.startsWith('fbpf') || n.startsWith('flannel-bpf')); } catch { return []; } })();
  return { netns, progs, pins };
}

const before = snapshot();
const t0 = Date.now();
const totals = { passed: 0, failed: 0, skipped: 0, todo: 0 };
let failed = false;
for (const phase of phases) {
  if (only.length && !only.includes(phase.name) && !(phase.name === 'e2e-serial' && only.includes('e2e'))) continue;
  const files = testFiles(phase.dir).filter((f) => !phase.exclude || !f.startsWith(`${phase.exclude}/`));
  if (files.length === 0) continue;
  const t = Date.now();
  console.log(`\n=== ${phase.name} tests (${files.length} files) ===`);
  const res = spawnSync('npx', ['ava', ...(phase.avaArgs ?? []), ...files], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  process.stdout.write(res.stdout ?? '');
  const count = (re) => Number(re.exec(res.stdout ?? '')?.[1] ?? 0);
  const passed = count(/(\d+) tests? passed/);
  const nfailed = count(/(\d+) tests? failed/) + count(/(\d+) uncaught exceptions?/) + count(/(\d+) unhandled rejections?/);
  const skipped = count(/(\d+) tests? skipped/);
  const todo = count(/(\d+) tests? todo/);
  totals.passed += passed; totals.failed += nfailed; totals.skipped += skipped; totals.todo += todo;
  console.log(`=== ${phase.name}: ${passed} passed, ${nfailed} failed, ${skipped} skipped, ${todo} todo in ${((Date.now() - t) / 1000).toFixed(1)} s ===`);
  if (res.status !== 0 || nfailed || skipped || todo || passed === 0) failed = true;
}

/*
 * What the tests left behind. Network namespaces are destroyed asynchronously
 * by the kernel (and with them the TC filters holding programs), so give the
 * cleanup some seconds before calling anything a leak. Only names our tests
 * use count: other sessions' labs or benchmarks may run on this machine too.
 */
const OURS = /^(fl[0-9a-f]{4}|fb[a-z]|sf|ob|flannel-bpf-lab-fl[0-9a-f]{4}|flannel-bpf-lab-ob)/;
const leakedNow = () => {
  const after = snapshot();
  return {
    netns: after.netns.filter((n) => !before.netns.includes(n) && OURS.test(n)),
    progs: after.progs.filter((p) => !before.progs.includes(p)),
    pins: after.pins.filter((p) => !before.pins.includes(p) && OURS.test(p)),
  };
};
let leaked = leakedNow();
for (let i = 0; i < 20 && leaked.netns.length + leaked.progs.length + leaked.pins.length > 0; i++) {
  spawnSync('sleep', ['1']);
  leaked = leakedNow();
}
/* Programs of other sessions' labs are not ours to judge: only count them when a namespace or pin of ours leaked too. */
if (leaked.netns.length + leaked.pins.length === 0) leaked.progs = [];
const leakCount = leaked.netns.length + leaked.progs.length + leaked.pins.length;
if (leakCount) {
  console.log(`\nLEFT BEHIND by the tests: ${JSON.stringify(leaked)}`);
  failed = true;
  /* Still leave the machine clean: kill what runs in the leaked namespaces, delete them and the pins. */
  for (const ns of leaked.netns) {
    try { execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean).forEach((p) => { try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ } }); } catch { /* gone */ }
    try { execFileSync('ip', ['netns', 'del', ns]); } catch { /* gone */ }
  }
  for (const p of leaked.pins) fs.rmSync(`/sys/fs/bpf/${p}`, { recursive: true, force: true });
}
console.log(`\nTOTAL: ${totals.passed} tests passed, ${totals.failed} failed, ${totals.skipped} skipped, ${totals.todo} todo; ` +
  `nothing left behind: ${leakCount === 0}; wall time ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
