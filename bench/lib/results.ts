/**
 * Where benchmark results go and what they record about the machine:
 * bench/results/<name>-<YYYY-MM-DD>-<hostname>.json, with the environment
 * (kernel, Node, CPUs, load, git commit and whether the tree was dirty), so a
 * figure can always be traced to the code and the conditions it came from.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = path.resolve(BENCH_DIR, '..');
export const RESULTS_DIR = path.join(BENCH_DIR, 'results');

/** Local date as YYYY-MM-DD. */
export function isoDate(d = new Date()): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

export function resultsFile(name: string, d = new Date(), host = os.hostname()): string {
  const safeHost = host.replace(/[^A-Za-z0-9._-]/g, '_');
  return path.join(RESULTS_DIR, `${name}-${isoDate(d)}-${safeHost}.json`);
}

/** Write results as pretty JSON (atomically); returns the path. */
export function writeResults(name: string, data: unknown, file = resultsFile(name)): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(data, null, 1)}\n`);
  fs.renameSync(`${file}.tmp`, file);
  return file;
}

function git(args: string[]): string | null {
  try {
    return execFileSync('git', ['-C', REPO_ROOT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

export interface Environment {
  host: string;
  kernel: string;
  node: string;
  cpus: number;
  cpuModel: string;
  memTotalMb: number;
  loadavgAtStart: number[];
  git: { commit: string | null; dirty: boolean | null; dirtyFiles: number | null };
}

export function environment(): Environment {
  const status = git(['status', '--porcelain']);
  return {
    host: os.hostname(),
    kernel: os.release(),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memTotalMb: Math.round(os.totalmem() / 2 ** 20),
    loadavgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    git: {
      commit: git(['rev-parse', 'HEAD']),
      dirty: status === null ? null : status.length > 0,
      dirtyFiles: status === null ? null : status.split('\n').filter(Boolean).length,
    },
  };
}
