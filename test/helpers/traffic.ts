/**
 * Traffic between namespaces for end-to-end tests: ping, and a TCP transfer
 * whose sha256 is compared on both ends (test/helpers/transfer.mjs).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { nsSpawn, nsExec } from '../../src/cli/lab/netns.js';

/** What the traffic helpers need: run a command in a namespace (NetnsSet, or a lab via labRunner). */
export interface NsRunner {
  spawn(ns: string, script: string): ChildProcess;
  exec(ns: string, script: string, opts?: { timeoutMs?: number }): string;
}

/** Run traffic in a lab's namespaces (children are killed when the transfer ends or times out). */
export const labRunner: NsRunner = {
  spawn: (ns, script) => nsSpawn(ns, ['sh', '-ec', `exec ${script}`], { out: 'pipe' }),
  exec: (ns, script, opts) => nsExec(ns, script, opts),
};

const TRANSFER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'transfer.mjs');

export interface TransferResult { bytes: number; sha256Sent: string; sha256Received: string; gbps: number; ms: number }

function lines(stream: NodeJS.ReadableStream): AsyncGenerator<string> {
  let buf = '';
  const queue: string[] = [];
  let done = false;
  let wake: (() => void) | null = null;
  stream.setEncoding?.('utf8');
  stream.on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) { queue.push(buf.slice(0, i)); buf = buf.slice(i + 1); }
    wake?.();
  });
  stream.on('end', () => { done = true; wake?.(); });
  return (async function* gen() {
    for (;;) {
      if (queue.length) { yield queue.shift()!; continue; }
      if (done) return;
      await new Promise<void>((r) => { wake = r; });
      wake = null;
    }
  })();
}

/**
 * Send `bytes` random bytes over TCP from one namespace to a server in
 * another; both ends hash. `rate` (bytes/s) paces the sender so the stream
 * spans an event under test.
 */
export async function tcpTransfer(set: NsRunner, from: string, to: string, toIp: string, bytes: number, port = 5201,
  connectPort = port, opts: { rate?: number; timeoutMs?: number } = {}): Promise<TransferResult> {
  const server = set.spawn(to, `${process.execPath} ${TRANSFER} server ${port}`);
  const out = lines(server.stdout!);
  const first = await Promise.race([out.next(), new Promise<never>((_, rej) => setTimeout(() => rej(new Error('server did not start')), 10_000))]);
  if (first.value !== 'listening') throw new Error(`transfer server: unexpected ${String(first.value)}`);
  const client = set.spawn(from, `${process.execPath} ${TRANSFER} client ${toIp} ${connectPort} ${bytes}${opts.rate ? ` ${Math.round(opts.rate)}` : ''}`);
  let clientOut = '';
  let clientErr = '';
  client.stdout!.on('data', (d: Buffer) => { clientOut += d.toString(); });
  client.stderr!.on('data', (d: Buffer) => { clientErr += d.toString(); });
  let serverErr = '';
  server.stderr!.on('data', (d: Buffer) => { serverErr += d.toString(); });
  const timer = setTimeout(() => { client.kill('SIGKILL'); server.kill('SIGKILL'); }, opts.timeoutMs ?? 120_000);
  const [[code]] = await Promise.all([once(client, 'exit'), once(server, 'exit')]);
  clearTimeout(timer);
  const recv = (await out.next()).value;
  if (code !== 0 || !recv) throw new Error(`transfer failed (client exit ${String(code)}): ${clientErr} ${serverErr}`);
  const c = JSON.parse(clientOut.trim()) as { bytes: number; sha256: string; ms: number };
  const s = JSON.parse(recv) as { bytes: number; sha256: string; ms: number };
  return { bytes: s.bytes, sha256Sent: c.sha256, sha256Received: s.sha256, ms: c.ms, gbps: (c.bytes * 8) / (c.ms * 1e6) };
}

/** ping from a namespace; returns packets received. */
export function ping(set: NsRunner, from: string, ip: string, opts: { count?: number; size?: number; df?: boolean } = {}): { sent: number; received: number } {
  const args = [`-c ${opts.count ?? 3}`, '-i 0.05', '-W 2', opts.size !== undefined ? `-s ${opts.size}` : '', opts.df ? '-M do' : ''].join(' ');
  let out: string;
  try {
    out = set.exec(from, `ping ${args} ${ip}`);
  } catch (err) {
    out = (err as Error).message;
  }
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
}

/** A ping flood running in the background (for loss measurements across an event). */
export interface PingFlood {
  /** Resolves when ping exits: packets sent and received, and the ping's own summary line. */
  readonly done: Promise<{ sent: number; received: number; summary: string }>;
  /** ping has not exited yet. */
  running(): boolean;
  stop(): void;
}

/**
 * `count` echo requests every `intervalMs` (≥ 2 ms, root) from one namespace.
 * A deadline (-w) makes ping wait for every reply: without one, ping stops
 * 2 × the largest RTT seen after its last request, and a last reply delayed
 * by a busy CPU would count as lost. With it, ping sends until it has `count`
 * replies (a loss shows as sent > count) or the deadline passes; the deadline
 * is 3 × the flood's nominal length + 10 s, as ping's interval stretches on a
 * loaded machine.
 */
export function pingFlood(set: NsRunner, from: string, ip: string, count: number, intervalMs = 5): PingFlood {
  const deadline = Math.ceil((3 * count * intervalMs) / 1000) + 10;
  const child = set.spawn(from, `ping -q -n -c ${count} -i ${(intervalMs / 1000).toFixed(3)} -W 1 -w ${deadline} ${ip}`);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  let exited = false;
  const done = once(child, 'exit').then(() => {
    exited = true;
    const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
    if (!m) throw new Error(`ping ${ip} from ${from} gave no summary: ${out.trim()}`);
    return { sent: Number(m[1]), received: Number(m[2]), summary: m[0] };
  });
  return { done, running: () => !exited, stop: () => { child.kill('SIGINT'); } };
}
