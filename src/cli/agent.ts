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
import { AgentMetrics, readinessChecks, startMetricsServer } from '../metrics/server.js';
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
  let metrics: AgentMetrics | null = null;
  const agent = new Agent(flags, { log: log.child({ node: nodeName || undefined }), env, nodeName: nodeName || undefined, makeSubnetManager: (f, l) => loadSubnetManager(f, l, env), onChange: () => metrics?.onAgentChange() });
  const servers: Array<{ close(): void }> = [];
  /* Readiness: programs attached (checked live), maps synced at least once, subnet.env written. */
  const checks = readinessChecks(agent);
  try {
    if (flags.healthzPort > 0) {
      const { server, loop } = await startHealthServer({ host: flags.healthzIp, port: flags.healthzPort, checks });
      servers.push({ close: () => { server.close(); loop.stop(); } });
    }
    if (flags.metricsAddr.port > 0) {
      metrics = new AgentMetrics(agent, { checks, onError: (err) => log.warn(`metrics: reading the maps failed: ${err.message}`, { component: 'metrics' }) });
      servers.push(await startMetricsServer({ host: flags.metricsAddr.host, port: flags.metricsAddr.port, metrics }));
    }
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
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
