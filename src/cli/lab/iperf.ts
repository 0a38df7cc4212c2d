/**
 * iperf3 between two namespaces (single TCP stream by default): the server
 * runs once (-1) in the destination namespace, the client reports JSON.
 */
import { nsSpawn, nsRun } from './netns.js';

export interface IperfResult {
  gbps: number;
  retransmits: number;
  seconds: number;
}

export async function iperf3(fromNs: string, toNs: string, toIp: string, opts: { seconds?: number; streams?: number; port?: number; udpPacketBytes?: number } = {}): Promise<IperfResult> {
  const port = opts.port ?? 5201;
  const server = nsSpawn(toNs, ['iperf3', '-s', '-1', '-p', String(port)], { out: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 150));
    const args = ['iperf3', '-c', toIp, '-p', String(port), '-t', String(opts.seconds ?? 3), '-J', '-P', String(opts.streams ?? 1)];
    const out = nsRun(fromNs, args, { timeoutMs: ((opts.seconds ?? 3) + 15) * 1000 });
    const j = JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number; seconds?: number }; sum_sent?: { retransmits?: number } }; error?: string };
    if (j.error) throw new Error(`iperf3: ${j.error}`);
    return {
      gbps: (j.end?.sum_received?.bits_per_second ?? 0) / 1e9,
      retransmits: j.end?.sum_sent?.retransmits ?? 0,
      seconds: j.end?.sum_received?.seconds ?? 0,
    };
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
  }
}
