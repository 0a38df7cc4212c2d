/**
 * What our BPF programs themselves cost during a workload, from the kernel's
 * run-time stats (on while a process holds a BPF_ENABLE_STATS fd): run count
 * and summed run time per program, read before and after a window.
 */
import { execFileSync } from 'node:child_process';

export interface ProgramRun { name: string; runTimeNs: number; runCnt: number }

/** Pure: `bpftool -j prog show` rows → run stats by program id (the fields exist only while stats are on). */
export function parseProgramRuns(json: string): Map<number, ProgramRun> {
  const rows = JSON.parse(json) as Array<{ id: number; name?: string; run_time_ns?: number; run_cnt?: number }>;
  return new Map(rows.map((r) => [r.id, { name: r.name ?? `#${r.id}`, runTimeNs: r.run_time_ns ?? 0, runCnt: r.run_cnt ?? 0 }]));
}

/** Every loaded program's run stats now. */
export function programRunStats(): Map<number, ProgramRun> {
  return parseProgramRuns(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8', maxBuffer: 64 << 20 }));
}

export interface ProgramCost { program: string; runsPerSec: number; nsPerRun: number; cpuPct: number }

/**
 * Pure: what ran between two snapshots `windowNs` apart, summed by program
 * name (in a bench only the measured topology carries traffic, so its nodes'
 * copies of a program add up), most expensive first. cpuPct is the share of
 * one CPU.
 */
export function programCosts(a: ReadonlyMap<number, ProgramRun>, b: ReadonlyMap<number, ProgramRun>, windowNs: number): ProgramCost[] {
  const byName = new Map<string, { ns: number; runs: number }>();
  for (const [id, after] of b) {
    const before = a.get(id);
    const runs = after.runCnt - (before?.runCnt ?? 0);
    if (runs <= 0) continue;
    const acc = byName.get(after.name) ?? { ns: 0, runs: 0 };
    acc.ns += after.runTimeNs - (before?.runTimeNs ?? 0);
    acc.runs += runs;
    byName.set(after.name, acc);
  }
  return [...byName].map(([program, x]) => ({ program, runsPerSec: (x.runs / windowNs) * 1e9, nsPerRun: x.ns / x.runs, cpuPct: (x.ns / windowNs) * 100 }))
    .sort((x, y) => y.cpuPct - x.cpuPct);
}
