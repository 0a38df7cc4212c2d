/**
 * flannel's masquerade and forward rules (flannel-compat.md §8, iptables
 * mode), byte-for-byte: chains FLANNEL-POSTRTG (nat) and FLANNEL-FWD
 * (filter), comments "flanneld masq" / "flanneld forward".
 *
 * Unlike flanneld (which flushes the chain and then re-adds rules, leaving a
 * window without masquerade on every restart — flannel issue #2237), the
 * whole chain is replaced in one iptables-restore transaction.
 */
import { execFile, execFileSync } from 'node:child_process';
import { type Cidr, formatCidr } from '../maps/addr.js';
import { FlannelBpfError } from '../loader/errors.js';

export const MASQ_CHAIN = 'FLANNEL-POSTRTG';
export const FWD_CHAIN = 'FLANNEL-FWD';
const MASQ_COMMENT = '-m comment --comment "flanneld masq"';
const FWD_COMMENT = '-m comment --comment "flanneld forward"';

export interface RuleSet {
  table: 'nat' | 'filter';
  chain: string;
  /** The jump from the built-in chain. */
  jump: { chain: 'POSTROUTING' | 'FORWARD'; rule: string };
  /** Rule bodies as iptables-save prints them (without "-A <chain> "). */
  rules: string[];
}

export function masqRules(network: Cidr, subnet: Cidr, fullyRandom: boolean): RuleSet {
  const N = formatCidr(network);
  const P = formatCidr(subnet);
  const masq = `-j MASQUERADE${fullyRandom ? ' --random-fully' : ''}`;
  return {
    table: 'nat',
    chain: MASQ_CHAIN,
    jump: { chain: 'POSTROUTING', rule: `${MASQ_COMMENT} -j ${MASQ_CHAIN}` },
    rules: [
      `-m mark --mark 0x4000/0x4000 ${MASQ_COMMENT} -j RETURN`,
      `-s ${P} -d ${N} ${MASQ_COMMENT} -j RETURN`,
      `-s ${N} -d ${P} ${MASQ_COMMENT} -j RETURN`,
      `! -s ${N} -d ${P} ${MASQ_COMMENT} -j RETURN`,
      `-s ${N} ! -d 224.0.0.0/4 ${MASQ_COMMENT} ${masq}`,
      `! -s ${N} -d ${N} ${MASQ_COMMENT} ${masq}`,
    ],
  };
}

export function forwardRules(network: Cidr): RuleSet {
  const N = formatCidr(network);
  return {
    table: 'filter',
    chain: FWD_CHAIN,
    jump: { chain: 'FORWARD', rule: `${FWD_COMMENT} -j ${FWD_CHAIN}` },
    rules: [`-s ${N} ${FWD_COMMENT} -j ACCEPT`, `-d ${N} ${FWD_COMMENT} -j ACCEPT`],
  };
}

export class IptablesError extends FlannelBpfError {
  constructor(message: string) {
    super(message, 'check that iptables is installed (apt-get install iptables) and the agent has CAP_NET_ADMIN; ' +
      'mount /run/xtables.lock so flannel-bpf and kube-proxy share the lock');
  }
}

export type Exec = (cmd: string, args: string[], input?: string) => string;
export const defaultExec: Exec = (cmd, args, input) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new IptablesError(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? e.message).trim()}`);
  }
};

/** The rules of a chain in an iptables-save dump ("-A CHAIN " stripped), or null if the chain does not exist. */
export function chainRules(dump: string, chain: string): string[] | null {
  const lines = dump.split('\n');
  if (!lines.some((l) => l.startsWith(`:${chain} `))) return null;
  const prefix = `-A ${chain} `;
  return lines.filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
}

/** The rules of a chain as iptables-save prints them, or null if the chain does not exist. */
export function currentRules(set: Pick<RuleSet, 'table' | 'chain'>, exec: Exec = defaultExec): string[] | null {
  return chainRules(exec('iptables-save', ['-t', set.table]), set.chain);
}

/**
 * The iptables-restore input that brings a table's dump in line with `set`
 * (the chain replaced as a whole, the jump added if missing), or null when
 * the dump already matches: the chain exactly as wanted, rules in order, and
 * jumped to.
 */
export function rulesPatch(set: RuleSet, dump: string): string | null {
  const cur = chainRules(dump, set.chain);
  const jumped = dump.split('\n').includes(`-A ${set.jump.chain} ${set.jump.rule}`);
  if (cur !== null && jumped && cur.length === set.rules.length && cur.every((r, i) => r === set.rules[i])) return null;
  const lines = [`*${set.table}`, `:${set.chain} - [0:0]`, ...set.rules.map((r) => `-A ${set.chain} ${r}`)];
  if (!jumped) lines.push(`-A ${set.jump.chain} ${set.jump.rule}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Is the chain exactly as wanted (rules in order) and jumped to? */
export function inSync(set: RuleSet, exec: Exec = defaultExec): boolean {
  return rulesPatch(set, exec('iptables-save', ['-t', set.table])) === null;
}

/** Replace the chain's contents atomically and make sure the jump exists. Returns true if anything changed. */
export function ensureRules(set: RuleSet, exec: Exec = defaultExec): boolean {
  const patch = rulesPatch(set, exec('iptables-save', ['-t', set.table]));
  if (patch === null) return false;
  exec('iptables-restore', ['--noflush', '-w', '5'], patch);
  return true;
}

export type AsyncExec = (cmd: string, args: string[], input?: string) => Promise<string>;

export const defaultAsyncExec: AsyncExec = (cmd, args, input) => new Promise((resolve, reject) => {
  const child = execFile(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
    if (err) reject(new IptablesError(`${cmd} ${args.join(' ')} failed: ${(stderr || err.message).trim()}`));
    else resolve(stdout);
  });
  /* A command that exits without reading its input (iptables-save) closes the
   * pipe first: that EPIPE is not an error of ours, and unhandled it would
   * crash the agent. The command's own failure arrives through the callback. */
  child.stdin?.on('error', () => undefined);
  if (input === undefined) child.stdin?.end();
  else child.stdin?.end(input);
});

/** ensureRules without blocking the event loop (the periodic resync on a busy node). */
export async function ensureRulesAsync(set: RuleSet, exec: AsyncExec = defaultAsyncExec): Promise<boolean> {
  const patch = rulesPatch(set, await exec('iptables-save', ['-t', set.table]));
  if (patch === null) return false;
  await exec('iptables-restore', ['--noflush', '-w', '5'], patch);
  return true;
}

/** Remove the jump and the chain (reset). Returns false when there was nothing to remove. */
export function removeRules(set: Pick<RuleSet, 'table' | 'chain' | 'jump'>, exec: Exec = defaultExec): boolean {
  const dump = exec('iptables-save', ['-t', set.table]);
  const lines = [`*${set.table}`];
  for (const l of dump.split('\n')) {
    if (l.startsWith(`-A ${set.jump.chain} `) && l.endsWith(`-j ${set.chain}`)) lines.push(l.replace(/^-A /, '-D '));
  }
  if (dump.split('\n').some((l) => l.startsWith(`:${set.chain} `))) lines.push(`-F ${set.chain}`, `-X ${set.chain}`);
  if (lines.length === 1) return false;
  lines.push('COMMIT', '');
  exec('iptables-restore', ['--noflush', '-w', '5'], lines.join('\n'));
  return true;
}
