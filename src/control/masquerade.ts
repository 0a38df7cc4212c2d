/**
 * flannel's masquerade and forward rules (flannel-compat.md §8, iptables
 * mode), byte-for-byte: chains FLANNEL-POSTRTG (nat) and FLANNEL-FWD
 * (filter), comments "flanneld masq" / "flanneld forward".
 *
 * Unlike flanneld (which flushes the chain and then re-adds rules, leaving a
 * window without masquerade on every restart — flannel issue #2237), the
 * whole chain is replaced in one iptables-restore transaction.
 */
import { execFileSync } from 'node:child_process';
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

/** The rules of a chain as iptables-save prints them ("-A CHAIN " stripped), or null if the chain does not exist. */
export function currentRules(set: Pick<RuleSet, 'table' | 'chain'>, exec: Exec = defaultExec): string[] | null {
  const dump = exec('iptables-save', ['-t', set.table]);
  if (!dump.split('\n').some((l) => l.startsWith(`:${set.chain} `))) return null;
  const prefix = `-A ${set.chain} `;
  return dump.split('\n').filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
}

function hasJump(set: RuleSet, exec: Exec): boolean {
  const dump = exec('iptables-save', ['-t', set.table]);
  return dump.split('\n').includes(`-A ${set.jump.chain} ${set.jump.rule}`);
}

/** Is the chain exactly as wanted (rules in order) and jumped to? */
export function inSync(set: RuleSet, exec: Exec = defaultExec): boolean {
  const cur = currentRules(set, exec);
  return cur !== null && cur.length === set.rules.length && cur.every((r, i) => r === set.rules[i]) && hasJump(set, exec);
}

/** Replace the chain's contents atomically and make sure the jump exists. Returns true if anything changed. */
export function ensureRules(set: RuleSet, exec: Exec = defaultExec): boolean {
  if (inSync(set, exec)) return false;
  const lines = [`*${set.table}`, `:${set.chain} - [0:0]`, ...set.rules.map((r) => `-A ${set.chain} ${r}`)];
  if (!hasJump(set, exec)) lines.push(`-A ${set.jump.chain} ${set.jump.rule}`);
  lines.push('COMMIT', '');
  exec('iptables-restore', ['--noflush', '-w', '5'], lines.join('\n'));
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
