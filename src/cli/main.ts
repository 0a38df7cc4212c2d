/**
 * `flannel-bpf <command>`: agent, status, lab, reset, version. Each command's
 * module is loaded on demand, so `version` or `status` do not pay for the
 * Kubernetes and etcd clients.
 */
export const VERSION = '0.1.0';

const USAGE = `flannel-bpf ${VERSION} — a flannel-compatible pod network with an eBPF dataplane

usage: flannel-bpf <command> [flags]

commands:
  agent     run the node agent (flanneld's flags; see: flannel-bpf agent --help)
  status    show this node's dataplane, peers and counters (works while the agent is down)
  lab       a simulated cluster in network namespaces: lab up|check|status|down
  reset     remove everything flannel-bpf created on this node
  demo      a 3-node cluster in namespaces: connectivity, status, throughput (then removed)
  version   print the version
`;

type Command = (argv: string[]) => Promise<number>;

async function lazy(mod: string, fn: string, argv: string[]): Promise<number> {
  const m = (await import(mod)) as Record<string, Command>;
  const f = m[fn];
  if (!f) throw new Error(`${mod} has no ${fn}`);
  return f(argv);
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'agent': return lazy('./agent.js', 'runAgentCommand', rest);
    case 'reset': return lazy('./reset.js', 'runResetCommand', rest);
    case 'status': return lazy('./status.js', 'runStatusCommand', rest);
    case 'lab': return lazy('./lab.js', 'runLabCommand', rest);
    case 'demo': return lazy('./demo.js', 'runDemoCommand', rest);
    case 'version': case '--version': case '-version':
      process.stdout.write(`${VERSION}\n`);
      return 0;
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`flannel-bpf: unknown command ${JSON.stringify(cmd)}\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
  const e = err as Error & { remedy?: string };
  process.stderr.write(`flannel-bpf: ${e.message}\n`);
  process.exitCode = 1;
});
