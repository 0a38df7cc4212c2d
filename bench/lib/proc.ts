/**
 * Process figures from /proc: resident memory (VmRSS, VmHWM) and CPU time
 * (utime/stime of the process, cutime/cstime of its waited-for children,
 * e.g. the `ip`/`iptables` commands an agent runs), plus an idle sampler.
 */
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';

export interface MemInfo {
  /** VmRSS, bytes. */
  rss: number;
  /** VmHWM (peak RSS), bytes. */
  hwm: number;
}

export function readMem(pid: number): MemInfo {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(m[1]) * 1024;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

export interface CpuTicks {
  utime: number;
  stime: number;
  cutime: number;
  cstime: number;
}

export function readCpuTicks(pid: number): CpuTicks {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  /* Fields after the command name (which may contain spaces) start at field 3 (state). */
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const n = (field: number): number => Number(f[field - 3]);
  return { utime: n(14), stime: n(15), cutime: n(16), cstime: n(17) };
}

let hz: number | undefined;
/** USER_HZ (clock ticks per second of /proc/<pid>/stat). */
export function clockTicks(): number {
  if (hz === undefined) {
    try {
      hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      hz = 100;
    }
  }
  return hz;
}

export interface IdleSample {
  seconds: number;
  /** VmRSS samples, bytes. */
  rss: number[];
  /** VmHWM at the end, bytes. */
  hwm: number;
  /** CPU of the process itself, percent of one CPU over the window. */
  cpuPct: number;
  /** CPU of its exited children (commands it ran) over the window, percent of one CPU. */
  childCpuPct: number;
  ticks: { self: number; children: number; hz: number };
}

/** Sample a process for `seconds`: RSS every `everyMs`, CPU time at both ends. */
export async function sampleIdle(pid: number, seconds: number, everyMs = 250): Promise<IdleSample> {
  const t0 = performance.now();
  const c0 = readCpuTicks(pid);
  const rss: number[] = [];
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    rss.push(readMem(pid).rss);
    await new Promise((r) => setTimeout(r, Math.min(everyMs, Math.max(1, end - performance.now()))));
  }
  const c1 = readCpuTicks(pid);
  const mem = readMem(pid);
  rss.push(mem.rss);
  const dt = (performance.now() - t0) / 1000;
  const self = c1.utime + c1.stime - c0.utime - c0.stime;
  const children = c1.cutime + c1.cstime - c0.cutime - c0.cstime;
  const hzv = clockTicks();
  return {
    seconds: dt, rss, hwm: mem.hwm,
    cpuPct: (self / hzv / dt) * 100,
    childCpuPct: (children / hzv / dt) * 100,
    ticks: { self, children, hz: hzv },
  };
}

export interface MemBreakdown {
  /** Rss of smaps_rollup, bytes. */
  rss: number;
  /** Anonymous memory (heap, JIT code, malloc), bytes. */
  anon: number;
  /** File-backed resident pages (the node binary, shared libraries), bytes: rss − anon − shmem. */
  file: number;
}

/** /proc/<pid>/smaps_rollup: how much of the RSS is anonymous vs file-backed (code pages of node and its libraries). */
export function readMemBreakdown(pid: number): MemBreakdown {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  const rss = kb('Rss');
  const anon = kb('Anonymous');
  const shmem = kb('Pss_Shmem');
  return { rss, anon, file: rss - anon - (Number.isFinite(shmem) ? shmem : 0) };
}

export interface MachineCpuSample { idleSec: number; wallSec: number }

/**
 * Idle CPU-seconds of the whole machine (idle + iowait of /proc/stat, which
 * NO_HZ kernels account exactly, from ktime, at every idle entry and exit) and
 * the wall clock. Busy = CPUs × wall − idle.
 *
 * Not the busy fields of /proc/stat: on a kernel with tick-based accounting
 * (CONFIG_TICK_CPU_ACCOUNTING, no IRQ_TIME_ACCOUNTING, as this VM's) each tick
 * charges its whole period to what it interrupts, and a workload paced by a
 * timer (iperf3 -b) aliases with the tick: the same run read 4 % or 27 % busy,
 * and the ticks summed to 86 %–152 % of the wall time. Wall time minus exact
 * idle read 17–20 % for those same runs.
 */
export function machineCpuSample(): MachineCpuSample {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { idleSec: ((f[3] ?? 0) + (f[4] ?? 0)) / clockTicks(), wallSec: performance.now() / 1000 };
}

/** CPUs counted in /proc/stat (all online CPUs, whatever this process's affinity). */
function onlineCpus(): number {
  return fs.readFileSync('/proc/stat', 'utf8').split('\n').filter((l) => /^cpu\d+ /.test(l)).length;
}

/** Busy % of the machine (`cpus` CPUs) between two samples. */
export function machineBusyPct(a: MachineCpuSample, b: MachineCpuSample, cpus = onlineCpus()): number {
  const capacity = (b.wallSec - a.wallSec) * cpus;
  return capacity > 0 ? Math.min(100, Math.max(0, 100 * (1 - (b.idleSec - a.idleSec) / capacity))) : NaN;
}
