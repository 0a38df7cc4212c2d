/**
 * A private etcd for a lab: Debian's etcd-server binary started inside one
 * of the lab's namespaces, on the lab's addresses, with its data under the
 * lab directory. Stopped by pid.
 */
import fs from 'node:fs';
import path from 'node:path';
import { nsSpawn, nsRun, killPid } from './netns.js';

export interface EtcdProcess {
  pid: number;
  dataDir: string;
  /** Client URLs, one per listen address. */
  endpoints: string[];
  ns: string;
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
  const endpoints = ips.map((ip) => `http://${ip}:${port}`);
  const out = opts.logFile ? fs.openSync(opts.logFile, 'a') : 'ignore';
  const child = nsSpawn(ns, [ETCD_BIN, '--name', 'lab', '--data-dir', dataDir,
    '--listen-client-urls', endpoints.join(','), '--advertise-client-urls', endpoints[0] ?? '',
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `lab=http://127.0.0.1:${peer}`, '--initial-cluster-state', 'new',
    '--auto-compaction-retention', '0', '--quota-backend-bytes', String(1 << 30)], { out, detached: true });
  if (typeof out === 'number') fs.closeSync(out);
  child.unref();
  const pid = child.pid;
  if (!pid) throw new Error('etcd did not start');
  const proc: EtcdProcess = { pid, dataDir, endpoints, ns };
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      etcdctl(proc, ['endpoint', 'health']);
      return proc;
    } catch (err) {
      if (Date.now() > deadline) {
        stopEtcd(proc);
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
