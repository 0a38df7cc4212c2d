/**
 * `flannel-bpf agent [flags]`: parse flanneld-compatible flags (and FLANNELD_*
 * variables), start the agent, serve health (and metrics), and leave the
 * dataplane running on SIGTERM/SIGINT.
 */
import { parseFlags, formatUsage, resolveNodeName, type AgentFlags } from '../control/config/flags.js';
import { ConfigError } from '../control/config/errors.js';
import { createLogger, levelFromVerbosity, type Logger } from '../control/log.js';
import { Agent } from '../control/agent.js';
import { loadSubnetManager } from '../control/subnet/load.js';
import { startHealthServer } from '../metrics/health.js';
import { FlannelBpfError } from '../loader/errors.js';
import os from 'node:os';

export interface StartedAgent {
  agent: Agent;
  done: Promise<void>;
  stop(): void;
}

/** Start an agent in this process (the CLI and in-process tests use it). */
export async function startAgent(flags: AgentFlags, log: Logger, env: Readonly<Record<string, string | undefined>> = process.env): Promise<StartedAgent> {
  let nodeName = flags.nodeName;
  if (!nodeName) {
    try {
      const n = resolveNodeName(flags, env);
      nodeName = n.kind === 'name' ? n.name : '';
    } catch {
      nodeName = '';
    }
  }
  if (!nodeName && !flags.kubeSubnetMgr) nodeName = os.hostname();
  const abort = new AbortController();
  const agent = new Agent(flags, { log: log.child({ node: nodeName || undefined }), env, nodeName: nodeName || undefined, makeSubnetManager: (f, l) => loadSubnetManager(f, l, env) });
  const servers: Array<{ close(): void }> = [];
  if (flags.healthzPort > 0) {
    const { server, loop } = await startHealthServer({
      host: flags.healthzIp, port: flags.healthzPort,
      checks: [
        { name: 'programs attached', ok: () => agent.attached(), detail: () => agent.hooks.filter((h) => !h.ours).map((h) => h.hook).join(', ') || 'not yet' },
        { name: 'maps synced with the lease store', ok: () => agent.reconciler?.synced === true },
        { name: 'subnet.env written', ok: () => agent.subnetEnvWritten },
      ],
    });
    servers.push({ close: () => { server.close(); loop.stop(); } });
  }
  const done = agent.run(abort.signal).finally(() => { for (const s of servers) s.close(); });
  return { agent, done, stop: () => abort.abort() };
}

export async function runAgentCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseFlags(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`flannel-bpf agent: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (parsed.help) {
    process.stdout.write(formatUsage());
    return 0;
  }
  if (parsed.flags.version) {
    process.stdout.write('0.1.0\n');
    return 0;
  }
  const log = createLogger({ level: levelFromVerbosity(parsed.flags.v) });
  for (const w of parsed.warnings) log.warn(w, { component: 'flags' });
  let started: StartedAgent;
  try {
    started = await startAgent(parsed.flags, log);
  } catch (err) {
    log.error((err as Error).message, { remedy: (err as FlannelBpfError).remedy });
    return 1;
  }
  const onSignal = (sig: string) => {
    log.info(`received ${sig}: stopping; the dataplane keeps forwarding`, {});
    started.stop();
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  try {
    await started.done;
    log.info('agent stopped', {});
    return 0;
  } catch (err) {
    log.error((err as Error).message, { remedy: (err as FlannelBpfError).remedy });
    return 1;
  }
}
