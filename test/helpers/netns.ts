/**
 * Network namespaces for tests. Nothing here touches the machine's root
 * network namespace: either the test process moves its own main thread into
 * a fresh, anonymous namespace (privateNetns), or named namespaces are created
 * with a unique per-run prefix and removed in teardown (NetnsSet).
 */
import fs from 'node:fs';
import crypto from 'node:crypto';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { libbpf } from '../../src/loader/libbpf.js';

const CLONE_NEWNET = 0x40000000;

/** Run a command; throw with its stderr on failure. */
export function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input: opts.input, timeout: opts.timeoutMs ?? 60_000 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('this test needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN): run npm test as root');
  }
}

let privateNs: { sh: (script: string) => string } | undefined;

/**
 * Move this process's main thread into a new, empty network namespace (only
 * `lo`, brought up). BPF_PROG_TEST_RUN and FIB lookups then see only what the
 * test sets up there. The namespace disappears with the process.
 */
export function privateNetns(): { sh: (script: string) => string } {
  if (privateNs) return privateNs;
  requireRoot();
  const rc = libbpf().unshare(CLONE_NEWNET);
  if (rc !== 0) throw new Error(`unshare(CLONE_NEWNET) failed: errno ${libbpf().errno()}`);
  const nsPath = `/proc/${process.pid}/ns/net`;
  const sh = (script: string): string => run('nsenter', [`--net=${nsPath}`, 'sh', '-ec', script]);
  sh('ip link set lo up');
  privateNs = { sh };
  return privateNs;
}

/** A unique, short prefix for names of this run (netns, devices, pins). */
export function uniquePrefix(tag: string): string {
  return `${tag}${crypto.randomBytes(3).toString('hex')}`;
}

/** Named network namespaces with a per-run prefix, all removed by cleanup(). */
export class NetnsSet {
  readonly names: string[] = [];
  readonly children: ChildProcess[] = [];
  readonly prefix: string;

  constructor(tag = 'fbt') {
    requireRoot();
    this.prefix = uniquePrefix(tag);
  }

  add(suffix: string): string {
    const name = `${this.prefix}-${suffix}`;
    run('ip', ['netns', 'add', name]);
    this.names.push(name);
    this.exec(name, 'ip link set lo up');
    return name;
  }

  /** Run a shell script inside a namespace (keeps bpffs visible: nsenter, not ip netns exec). */
  exec(ns: string, script: string, opts: { timeoutMs?: number } = {}): string {
    return run('nsenter', [`--net=/run/netns/${ns}`, 'sh', '-ec', script], opts);
  }

  /** Start a long-running command in a namespace; killed (by pid) in cleanup. */
  spawn(ns: string, script: string): ChildProcess {
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, 'sh', '-ec', `exec ${script}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  /** A veth pair between two namespaces with the given names inside each. */
  veth(nsA: string, devA: string, nsB: string, devB: string): void {
    const tmpA = `${this.prefix.slice(0, 6)}a${this.names.length}${Math.floor(Math.random() * 1e4)}`.slice(0, 15);
    const tmpB = `${this.prefix.slice(0, 6)}b${this.names.length}${Math.floor(Math.random() * 1e4)}`.slice(0, 15);
    this.exec(nsA, `ip link add ${tmpA} type veth peer name ${tmpB} netns ${nsB}; ip link set ${tmpA} name ${devA}`);
    this.exec(nsB, `ip link set ${tmpB} name ${devB}`);
  }

  cleanup(): void {
    for (const c of this.children) {
      if (c.pid && c.exitCode === null) {
        try { process.kill(c.pid, 'SIGKILL'); } catch { /* already gone */ }
      }
    }
    for (const name of this.names.reverse()) {
      for (const pid of pidsInNetns(name)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      try { run('ip', ['netns', 'del', name]); } catch { /* already gone */ }
    }
    this.names.length = 0;
  }
}

/** Pids of processes whose network namespace is the named one. */
export function pidsInNetns(name: string): number[] {
  let target: fs.Stats;
  try {
    target = fs.statSync(`/run/netns/${name}`);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const st = fs.statSync(`/proc/${entry}/ns/net`);
      if (st.ino === target.ino && st.dev === target.dev) pids.push(Number(entry));
    } catch { /* raced */ }
  }
  return pids;
}

/** Run fn with this thread inside the named namespace (koffi/libbpf calls then act there). */
export function inNetns<T>(name: string, fn: () => T): T {
  const lib = libbpf();
  const self = fs.openSync(`/proc/${process.pid}/task/${process.pid}/ns/net`, 'r');
  const target = fs.openSync(`/run/netns/${name}`, 'r');
  try {
    if (lib.setns(target, CLONE_NEWNET) !== 0) throw new Error(`setns(${name}) failed: errno ${lib.errno()}`);
    try {
      return fn();
    } finally {
      if (lib.setns(self, CLONE_NEWNET) !== 0) throw new Error(`setns back failed: errno ${lib.errno()}`);
    }
  } finally {
    fs.closeSync(self);
    fs.closeSync(target);
  }
}

/** ifindex of a device inside a namespace (via `ip`, since /sys shows the root namespace's devices). */
export function ifindexIn(ns: string, dev: string): number {
  return parseIfindex(run('nsenter', [`--net=/run/netns/${ns}`, 'ip', '-o', 'link', 'show', 'dev', dev]));
}

export function parseIfindex(ipLinkOutput: string): number {
  const m = /^(\d+):/.exec(ipLinkOutput.trim());
  if (!m) throw new Error(`cannot parse ifindex from: ${ipLinkOutput}`);
  return Number(m[1]);
}

/**
 * Move this process's main thread into the named namespace for good (no way
 * back): sockets the process opens afterwards — an in-process server that
 * lab nodes must reach — live there. Node's listen() binds asynchronously, so
 * a temporary switch (inNetns) is not enough for servers.
 */
export function enterNetns(name: string): void {
  const fd = fs.openSync(`/run/netns/${name}`, 'r');
  try {
    if (libbpf().setns(fd, CLONE_NEWNET) !== 0) throw new Error(`setns(${name}) failed: errno ${libbpf().errno()}`);
  } finally {
    fs.closeSync(fd);
  }
}
