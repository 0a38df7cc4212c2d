/**
 * Named network namespaces driven from outside: create, run commands inside
 * (nsenter --net only, so bpffs and /run stay visible), veth pairs between
 * them, and removal with every process still inside killed first. Nothing
 * here touches the caller's own (root) network namespace.
 */
import fs from 'node:fs';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

export class CommandError extends Error {
  constructor(readonly cmd: string, readonly stderr: string) {
    super(`${cmd} failed: ${stderr.trim()}`);
    this.name = 'CommandError';
  }
}

/** Run a command; throw CommandError with its stderr on failure. */
export function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input: opts.input, timeout: opts.timeoutMs ?? 60_000, env: opts.env,
    });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new CommandError(`${cmd} ${args.join(' ')}`, e.stderr || e.stdout || e.message);
  }
}

export function nsPath(ns: string): string {
  return `/run/netns/${ns}`;
}

/** Run a shell script inside a namespace. */
export function nsExec(ns: string, script: string, opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): string {
  return run('nsenter', [`--net=${nsPath(ns)}`, 'sh', '-ec', script], opts);
}

/** Run a program inside a namespace (argv, no shell). */
export function nsRun(ns: string, argv: string[], opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): string {
  return run('nsenter', [`--net=${nsPath(ns)}`, '--', ...argv], opts);
}

/** Start a long-running program inside a namespace; nsenter execs it, so the pid is the program's. */
export function nsSpawn(ns: string, argv: string[], opts: { out?: number | 'pipe' | 'ignore'; env?: NodeJS.ProcessEnv; detached?: boolean } = {}): ChildProcess {
  const out = opts.out ?? 'ignore';
  return spawn('nsenter', [`--net=${nsPath(ns)}`, '--', ...argv], {
    stdio: ['ignore', out, out], env: opts.env ?? process.env, detached: opts.detached ?? false,
  });
}

export function netnsExists(ns: string): boolean {
  return fs.existsSync(nsPath(ns));
}

export function addNetns(ns: string): void {
  run('ip', ['netns', 'add', ns]);
  nsExec(ns, 'ip link set lo up');
}

/** Pids of processes whose network namespace is `ns`. */
export function pidsInNetns(ns: string): number[] {
  let target: fs.Stats;
  try { target = fs.statSync(nsPath(ns)); } catch { return []; }
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const st = fs.statSync(`/proc/${entry}/ns/net`);
      if (st.ino === target.ino && st.dev === target.dev) pids.push(Number(entry));
    } catch { /* process exited */ }
  }
  return pids;
}

/** Is the process alive (and not a zombie)? */
export function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  try { process.kill(pid, signal); return true; } catch { return false; }
}

/** Kill what runs inside (never the caller itself), then delete the namespace. */
export function delNetns(ns: string): void {
  for (const pid of pidsInNetns(ns)) if (pid !== process.pid) killPid(pid);
  if (netnsExists(ns)) {
    try { run('ip', ['netns', 'del', ns]); } catch { /* raced */ }
  }
}

/** Namespaces whose name starts with `prefix`. */
export function listNetns(prefix = ''): string[] {
  let out = '';
  try { out = run('ip', ['netns', 'list']); } catch { return []; }
  return out.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n && n.startsWith(prefix));
}

let vethSeq = 0;
/** A veth pair between two namespaces, named devA in nsA and devB in nsB. */
export function vethBetween(nsA: string, devA: string, nsB: string, devB: string): void {
  const tmp = `fbv${process.pid % 10000}x${vethSeq++}`;
  nsExec(nsA, `ip link add ${tmp}a type veth peer name ${tmp}b netns ${nsB}; ip link set ${tmp}a name ${devA}`);
  nsExec(nsB, `ip link set ${tmp}b name ${devB}`);
}

/** ifindex of a device inside a namespace. */
export function ifindexIn(ns: string, dev: string): number {
  const m = /^(\d+):/.exec(nsRun(ns, ['ip', '-o', 'link', 'show', 'dev', dev]).trim());
  if (!m) throw new Error(`cannot read the ifindex of ${dev} in ${ns}`);
  return Number(m[1]);
}
