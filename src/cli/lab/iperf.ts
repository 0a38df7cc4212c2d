/**
 * iperf3 between two namespaces (single TCP stream by default): the server
 * runs once (-1) in the destination namespace, the client reports JSON.
 *
 * The client starts only once the server listens, gives up on a control
 * connection that does not open in 3 s (and on a run that outlasts its time
 * by 15 s), and a failed run is tried once more on another port (`retried`
 * says so): a demo on a loaded 2-CPU machine should report a figure, or a
 * clear error, and never hang.
 */
import { nsSpawn, nsRun, nsExec } from './netns.js';

export interface IperfResult {
  gbps: number;
  retransmits: number;
  seconds: number;
  /** The first run failed (its error) and this is the second. */
  retried: string | null;
}

export interface IperfOptions { seconds?: number; streams?: number; port?: number }

export async function iperf3(fromNs: string, toNs: string, toIp: string, opts: IperfOptions = {}): Promise<IperfResult> {
  const port = opts.port ?? 5201;
  try {
    return { ...(await iperf3Once(fromNs, toNs, toIp, port, opts)), retried: null };
  } catch (err) {
    const first = (err as Error).message.split('\n')[0] ?? String(err);
    return { ...(await iperf3Once(fromNs, toNs, toIp, port + 1, opts)), retried: first };
  }
}

async function iperf3Once(fromNs: string, toNs: string, toIp: string, port: number, opts: IperfOptions): Promise<Omit<IperfResult, 'retried'>> {
  const seconds = opts.seconds ?? 3;
  const server = nsSpawn(toNs, ['iperf3', '-s', '-1', '-p', String(port)], { out: 'ignore' });
  try {
    await untilListening(toNs, port, 3000);
    const args = ['iperf3', '-c', toIp, '-p', String(port), '-t', String(seconds), '-J', '-P', String(opts.streams ?? 1),
      '--connect-timeout', '3000'];
    const out = nsRun(fromNs, args, { timeoutMs: (seconds + 15) * 1000 });
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

/** Wait until something listens on TCP `port` in `ns` (at most `timeoutMs`). */
async function untilListening(ns: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (nsExec(ns, `ss -Hltn sport = :${port}`).trim() !== '') return;
    await new Promise((r) => setTimeout(r, 30));
  }
}
