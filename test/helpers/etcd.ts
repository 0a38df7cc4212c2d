/**
 * A real etcd (Debian's /usr/bin/etcd, v3.4) for one test.
 *
 * It listens on 127.0.0.1 inside the test process's PRIVATE network
 * namespace: call privateNetns() (test/helpers/netns.ts) at the top of the
 * test file before starting one; startEtcd refuses to run in the machine's
 * root namespace. Each instance has its own data dir under /tmp and its own
 * ports; close() stops it by pid and removes the data dir (also on process
 * exit, as a last resort). stop()/start() simulate an outage with the same
 * data and ports; compact() runs `etcdctl compact`.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';

export const ETCD_BIN = '/usr/bin/etcd';
export const ETCDCTL_BIN = '/usr/bin/etcdctl';

export interface EtcdServer {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  readonly dataDir: string;
  /** pid of the running etcd, or null while stopped. */
  pid(): number | null;
  /** Run etcdctl against this server; returns stdout. */
  ctl(args: string[], input?: string): string;
  /** The store's current revision. */
  revision(): number;
  /** `etcdctl compact <rev>` (default: the current revision); returns the revision compacted at. */
  compact(rev?: number): number;
  /** Stop the server (SIGTERM, then SIGKILL after 5 s) and wait for it to exit. Data is kept. */
  stop(): Promise<void>;
  /** Start it again on the same ports and data dir; resolves when it serves requests. */
  start(): Promise<void>;
  /** Stop and remove the data dir. Idempotent. */
  close(): Promise<void>;
  /** The last lines etcd wrote to stderr (for failure messages). */
  stderrTail(): string;
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of live) {
      if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
        try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
    for (const d of dirs) {
      try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
    }
  });
}

/**
 * Throws unless this process's main thread is outside the network namespace
 * it started in (i.e. privateNetns() ran): compared with the parent process
 * (the test runner, which stays where it started), and, when that cannot be
 * read, by requiring that only `lo` exists here.
 */
export function assertPrivateNetns(): void {
  const why = 'startEtcd: this process is still in the network namespace it started in; call privateNetns() at the top of the test file first';
  try {
    const self = fs.statSync(`/proc/${process.pid}/ns/net`);
    const parent = fs.statSync(`/proc/${process.ppid}/ns/net`);
    if (self.ino === parent.ino && self.dev === parent.dev) throw new Error(why);
    return;
  } catch (err) {
    if ((err as Error).message === why) throw err;
  }
  const names = Object.keys(os.networkInterfaces());
  if (names.some((n) => n !== 'lo')) throw new Error(`${why} (interfaces here: ${names.join(', ')})`);
}

/** A free TCP port on 127.0.0.1 (in the current namespace). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface EtcdTls {
  /** Server certificate and key (the certificate must name IP 127.0.0.1). */
  certFile: string;
  keyFile: string;
  /** CA that signed the server and client certificates. */
  caFile: string;
  /** Require client certificates signed by caFile. */
  clientCertAuth?: boolean;
  /** The client certificate etcdctl presents. */
  clientCertFile?: string;
  clientKeyFile?: string;
}

export interface StartEtcdOptions {
  /** Name used in the data dir and member name. */
  name?: string;
  /** Max time to wait for the server to answer (default 20 s). */
  readyTimeoutMs?: number;
  /** Serve clients over TLS (https://127.0.0.1:<port>). */
  tls?: EtcdTls;
}

export interface TestCerts {
  dir: string;
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
}

/**
 * A throw-away CA with a server certificate for IP 127.0.0.1 and a client
 * certificate (CN root), made with openssl in a new dir under /tmp; the
 * caller removes `dir`.
 */
export function makeTestCerts(): TestCerts {
  installExitHook();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fbt-certs-'));
  dirs.add(dir);
  const f = (n: string): string => path.join(dir, n);
  const ossl = (args: string[]): void => {
    try {
      execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    } catch (err) {
      throw new Error(`openssl ${args.join(' ')} failed: ${(err as { stderr?: Buffer }).stderr?.toString() ?? (err as Error).message}`);
    }
  };
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ossl(['req', '-x509', ...key, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=fbt-test-ca']);
  for (const [name, cn, ext] of [
    ['server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth'],
    ['client', 'root', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    ossl(['req', ...key, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`]);
    fs.writeFileSync(f(`${name}.ext`), ext);
    ossl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-out', f(`${name}.crt`), '-days', '2', '-extfile', f(`${name}.ext`)]);
  }
  return {
    dir, caFile: f('ca.crt'), serverCertFile: f('server.crt'), serverKeyFile: f('server.key'),
    clientCertFile: f('client.crt'), clientKeyFile: f('client.key'),
  };
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  assertPrivateNetns();
  installExitHook();
  const name = (opts.name ?? 'fbt').replace(/[^a-z0-9-]/gi, '-');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `fbt-etcd-${name}-`));
  dirs.add(dataDir);
  const clientPort = await freePort();
  let peerPort = await freePort();
  while (peerPort === clientPort) peerPort = await freePort();
  const tls = opts.tls;
  const endpoint = `${tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;

  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let tail: string[] = [];
  let closed = false;

  const ctl = (args: string[], input?: string): string => {
    try {
      const tlsArgs = tls ? [`--cacert=${tls.caFile}`, ...(tls.clientCertFile ? [`--cert=${tls.clientCertFile}`, `--key=${tls.clientKeyFile ?? ''}`] : [])] : [];
      return execFileSync(ETCDCTL_BIN, [`--endpoints=${endpoint}`, '--dial-timeout=2s', '--command-timeout=5s', ...tlsArgs, ...args], {
        encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 15_000, env: { ...process.env, ETCDCTL_API: '3' },
      });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`etcdctl ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
    }
  };

  const launch = async (): Promise<void> => {
    const c = spawn(ETCD_BIN, [
      '--name', name,
      '--data-dir', dataDir,
      '--listen-client-urls', endpoint,
      '--advertise-client-urls', endpoint,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `${name}=${peer}`,
      '--initial-cluster-token', path.basename(dataDir),
      '--logger', 'zap',
      '--log-outputs', 'stderr',
      '--log-level', 'warn',
      ...(tls ? ['--cert-file', tls.certFile, '--key-file', tls.keyFile, '--trusted-ca-file', tls.caFile,
        ...(tls.clientCertAuth ? ['--client-cert-auth'] : [])] : []),
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    live.add(c);
    tail = [];
    c.stderr?.setEncoding('utf8');
    c.stderr?.on('data', (d: string) => {
      tail.push(...d.split('\n').filter(Boolean));
      if (tail.length > 40) tail = tail.slice(-40);
    });
    exited = new Promise((resolve) => c.once('exit', () => { live.delete(c); resolve(); }));
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`etcd exited during start (${c.exitCode ?? c.signalCode}): ${tail.slice(-10).join('\n')}`);
      }
      try {
        ctl(['endpoint', 'health']);
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`etcd did not become healthy in ${readyTimeoutMs} ms: ${(err as Error).message}\n${tail.slice(-10).join('\n')}`);
      }
      await sleep(100);
    }
  };

  const stop = async (): Promise<void> => {
    const c = child;
    if (!c || c.pid === undefined) return;
    child = null;
    if (c.exitCode === null && c.signalCode === null) {
      try { process.kill(c.pid, 'SIGTERM'); } catch { /* gone */ }
      const timer = setTimeout(() => {
        try { process.kill(c.pid as number, 'SIGKILL'); } catch { /* gone */ }
      }, 5_000);
      await exited;
      clearTimeout(timer);
    }
  };

  const server: EtcdServer = {
    endpoint,
    dataDir,
    pid: () => child?.pid ?? null,
    ctl,
    revision(): number {
      const out = JSON.parse(ctl(['endpoint', 'status', '-w', 'json'])) as Array<{ Status: { header: { revision: number } } }>;
      const rev = out[0]?.Status.header.revision;
      if (typeof rev !== 'number') throw new Error('etcdctl endpoint status: no revision');
      return rev;
    },
    compact(rev?: number): number {
      const r = rev ?? server.revision();
      ctl(['compact', String(r), '--physical']);
      return r;
    },
    stop,
    async start(): Promise<void> {
      if (closed) throw new Error('etcd server already closed');
      if (child) return;
      await launch();
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
      dirs.delete(dataDir);
    },
    stderrTail: () => tail.join('\n'),
  };

  try {
    await launch();
  } catch (err) {
    await server.close();
    throw err;
  }
  return server;
}
