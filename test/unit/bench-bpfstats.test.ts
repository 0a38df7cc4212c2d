/** bench/lib/bpfstats.ts: the BPF programs' own cost from run-time stats (pure parts). */
import test from 'ava';
import { parseProgramRuns, programCosts } from '../../bench/lib/bpfstats.js';

test('program costs: deltas summed by name over the window, idle and new-but-idle programs left out', (t) => {
  const a = parseProgramRuns(JSON.stringify([
    { id: 1, name: 'fbpf_cni_ingres', run_time_ns: 1000, run_cnt: 10 },
    { id: 2, name: 'fbpf_cni_ingres', run_time_ns: 0, run_cnt: 0 },
    { id: 3, name: 'fbpf_uplink_ing', run_time_ns: 500, run_cnt: 5 },
    { id: 4, name: 'other' },
  ]));
  const b = parseProgramRuns(JSON.stringify([
    { id: 1, name: 'fbpf_cni_ingres', run_time_ns: 201000, run_cnt: 1010 },
    { id: 2, name: 'fbpf_cni_ingres', run_time_ns: 100000, run_cnt: 500 },
    { id: 3, name: 'fbpf_uplink_ing', run_time_ns: 500, run_cnt: 5 },
    { id: 4, name: 'other' },
    { id: 5, name: 'fbpf_dev_ingres', run_time_ns: 0, run_cnt: 0 },
  ]));
  const c = programCosts(a, b, 1e9);
  t.is(c.length, 1);
  t.is(c[0]!.program, 'fbpf_cni_ingres');
  t.is(c[0]!.runsPerSec, 1500);
  t.is(c[0]!.nsPerRun, 200);
  t.is(Math.round(c[0]!.cpuPct * 1e6) / 1e6, 0.03);
});

test('program costs: the most expensive first, shares of one CPU over the window', (t) => {
  const a = parseProgramRuns(JSON.stringify([{ id: 1, name: 'x', run_time_ns: 0, run_cnt: 0 }, { id: 2, name: 'y', run_time_ns: 0, run_cnt: 0 }]));
  const b = parseProgramRuns(JSON.stringify([{ id: 1, name: 'x', run_time_ns: 1e6, run_cnt: 100 }, { id: 2, name: 'y', run_time_ns: 5e6, run_cnt: 100 }]));
  t.deepEqual(programCosts(a, b, 0.5e9).map((c) => [c.program, Math.round(c.cpuPct * 1e6) / 1e6]), [['y', 1], ['x', 0.2]]);
});
