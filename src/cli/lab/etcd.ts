/**
 * A private etcd for a lab: Debian's etcd-server binary started inside one
 * of the lab's namespaces, on the lab's addresses, with its data under the
 * lab directory. Stopped by pid.
 */
import fs from 'node:fs';
import path from 'node:path';
import { nsSpawn, nsRun, killPid, pidAlive } from './netns.js';

export interface EtcdProcess {
  pid: number;
  dataDir: string;
  /** Client URLs, one per listen address. */
  endpoints: string[];
  ns: string;
  /** Peer port and log file it was started with (restartEtcd reuses them). */
  peerPort?: number;
  logFile?: string;
}

export const ETCD_BIN = '/usr/bin/etcd';
export const ETCDCTL_BIN = '/usr/bin/etcdctl';

export function etcdInstalled(): boolean {
  return fs.existsSync(ETCD_BIN) && fs.existsSync(ETCDCTL_BIN);
}

/** Start etcd in `ns` listening on `ips`:`port`; resolves once it answers. */
export async function startEtcd(ns: string, ips: string[], dataDir: string, opts: { port?: number; peerPort?: number; logFile?: string } = {}): Promise<EtcdProcess> {
  if (!etcdInstalled()) throw new Error('etcd is not installed (apt-get install etcd-server etcd-client, or run scripts/setup.sh)');
  const port = opts.port ?? 2379;
  const peer = opts.peerPort ?? 2380;
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const proc: EtcdProcess = { pid: 0, dataDir, endpoints: ips.map((ip) => `http://${ip}:${port}`), ns, peerPort: peer, logFile: opts.logFile };
  proc.pid = spawnEtcd(proc);
  await untilHealthy(proc, () => stopEtcd(proc));
  return proc;
}

/**
 * Start a stopped (killed, crashed) etcd again on the same data dir,
 * addresses and ports, as a restarted member does: its keys, leases and
 * revision survive. One still running is killed first. Updates `e.pid` in
 * place (a lab's recorded etcd stays the process its teardown stops) and
 * resolves with `e` once it answers. The data dir is kept even on failure.
 */
export async function restartEtcd(e: EtcdProcess): Promise<EtcdProcess> {
  if (!etcdInstalled()) throw new Error('etcd is not installed (apt-get install etcd-server etcd-client, or run scripts/setup.sh)');
  if (isThisEtcd(e)) killPid(e.pid, 'SIGKILL');
  const deadline = Date.now() + 10_000;
  while (isThisEtcd(e)) {
    if (Date.now() > deadline) throw new Error(`etcd (pid ${e.pid}) did not exit after SIGKILL`);
    await new Promise((r) => setTimeout(r, 20));
  }
  e.pid = spawnEtcd(e);
  await untilHealthy(e, () => stopEtcd(e, false));
  return e;
}

/** Is e.pid still this etcd (alive, and not a recycled pid)? */
function isThisEtcd(e: EtcdProcess): boolean {
  try {
    return pidAlive(e.pid) && fs.readFileSync(`/proc/${e.pid}/cmdline`, 'utf8').split('\0').includes(e.dataDir);
  } catch {
    return false;
  }
}

function spawnEtcd(e: EtcdProcess): number {
  const peer = `http://127.0.0.1:${e.peerPort ?? 2380}`;
  const listen = e.endpoints.map((u) => new URL(u).origin);
  const out = e.logFile ? fs.openSync(e.logFile, 'a') : 'ignore';
  const child = nsSpawn(e.ns, [ETCD_BIN, '--name', 'lab', '--data-dir', e.dataDir,
    '--listen-client-urls', listen.join(','), '--advertise-client-urls', listen[0] ?? '',
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `lab=${peer}`, '--initial-cluster-state', 'new',
    '--auto-compaction-retention', '0', '--quota-backend-bytes', String(1 << 30)], { out, detached: true });
  if (typeof out === 'number') fs.closeSync(out);
  child.unref();
  if (!child.pid) throw new Error('etcd did not start');
  return child.pid;
}

async function untilHealthy(e: EtcdProcess, onTimeout: () => void): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      etcdctl(e, ['endpoint', 'health']);
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        onTimeout();
        throw new Error(`etcd did not become healthy within 20 s: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Run etcdctl (v3 API) against the lab etcd, from inside its namespace. */
export function etcdctl(e: Pick<EtcdProcess, 'ns' | 'endpoints'>, args: string[], input?: string): string {
  return nsRun(e.ns, [ETCDCTL_BIN, `--endpoints=${e.endpoints.join(',')}`, '--command-timeout=5s', ...args], {
    env: { ...process.env, ETCDCTL_API: '3' }, input, timeoutMs: 15_000,
  });
}

export function stopEtcd(e: Pick<EtcdProcess, 'pid' | 'dataDir'>, removeData = true): void {
  killPid(e.pid, 'SIGKILL');
  if (removeData) fs.rmSync(e.dataDir, { recursive: true, force: true });
}

export function etcdDataDir(labDir: string): string {
  return path.join(labDir, 'etcd');
}
