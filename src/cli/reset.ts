/** `flannel-bpf reset [--bpffs-pin-dir DIR] [--state-dir DIR] [--subnet-file FILE]` */
import { parseFlags, formatUsage } from '../control/config/flags.js';
import { ConfigError } from '../control/config/errors.js';
import { resetNode } from '../control/reset.js';

export async function runResetCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseFlags(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) { process.stderr.write(`flannel-bpf reset: ${err.message}\n`); return 2; }
    throw err;
  }
  if (parsed.help) { process.stdout.write(`usage: flannel-bpf reset [agent flags: --bpffs-pin-dir, --state-dir, --subnet-file]\n\n${formatUsage()}`); return 0; }
  const f = parsed.flags;
  const done = resetNode({ pinDir: f.bpffsPinDir, stateDir: f.stateDir, subnetFile: f.subnetFile });
  process.stdout.write(done.length ? `${done.map((d) => `  ${d}`).join('\n')}\n` : 'nothing of flannel-bpf found on this node\n');
  return 0;
}
