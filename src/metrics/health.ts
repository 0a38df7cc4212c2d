/**
 * /healthz and /readyz on --healthz-ip:--healthz-port, as flanneld serves them,
 * but with a readiness that means something and can drop again:
 *   /healthz  200 while the process runs and its event loop answers
 *             (503 when the loop lagged more than `maxLagMs` recently);
 *   /readyz   200 only when every readiness check passes (programs attached,
 *             maps synced with the lease store at least once, subnet.env
 *             written), else 503 listing what is missing.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReadinessCheck {
  name: string;
  ok: () => boolean;
  /** Shown when not ok. */
  detail?: () => string;
}

export interface HealthServerOptions {
  host: string;
  port: number;
  checks: readonly ReadinessCheck[];
  maxLagMs?: number;
}

export class EventLoopWatch {
  #last = performance.now();
  #worst = 0;
  readonly #timer: NodeJS.Timeout;
  constructor(private readonly intervalMs = 200) {
    this.#timer = setInterval(() => {
      const now = performance.now();
      const lag = now - this.#last - this.intervalMs;
      this.#worst = Math.max(this.#worst * 0.9, lag);
      this.#last = now;
    }, intervalMs);
    this.#timer.unref();
  }
  /** Recent worst lag, decaying (ms). */
  get lagMs(): number {
    return Math.max(this.#worst, performance.now() - this.#last - this.intervalMs);
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}

export function readinessReport(checks: readonly ReadinessCheck[]): { ready: boolean; failing: string[] } {
  const failing = checks.filter((c) => !c.ok()).map((c) => (c.detail ? `${c.name}: ${c.detail()}` : c.name));
  return { ready: failing.length === 0, failing };
}

/**
 * Answer /healthz or /readyz (the health server and the metrics port serve
 * the same); false for any other path.
 */
export function serveHealth(url: string | undefined, res: http.ServerResponse, loop: EventLoopWatch, maxLagMs: number, checks: readonly ReadinessCheck[]): boolean {
  if (url === '/healthz') {
    const lag = loop.lagMs;
    const ok = lag < maxLagMs;
    res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(ok ? 'flannel-bpf is running\n' : `flannel-bpf event loop is stalled (${Math.round(lag)} ms)\n`);
    return true;
  }
  if (url === '/readyz') {
    const r = readinessReport(checks);
    res.writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(r.ready ? 'flannel-bpf is ready\n' : `flannel-bpf is not ready yet:\n${r.failing.map((f) => `  - ${f}`).join('\n')}\n`);
    return true;
  }
  return false;
}

export async function startHealthServer(opts: HealthServerOptions): Promise<{ server: http.Server; port: number; loop: EventLoopWatch }> {
  const loop = new EventLoopWatch();
  const maxLag = opts.maxLagMs ?? 5000;
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (serveHealth(url, res, loop, maxLag, opts.checks)) return;
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: try /healthz or /readyz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host || '0.0.0.0', () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port, loop };
}
