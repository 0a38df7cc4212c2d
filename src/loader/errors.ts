/**
 * Typed errors of the loader. Every error names what failed and carries a
 * `remedy`: the thing an operator can do about it.
 */
import fs from 'node:fs';
import os from 'node:os';

const errnoNames: Record<number, string> = Object.fromEntries(
  Object.entries(os.constants.errno).map(([name, value]) => [value, name]),
);

/** "EPERM" for 1, "errno 4003" for codes the OS does not name (libbpf's own). */
export function errnoName(errno: number): string {
  return errnoNames[Math.abs(errno)] ?? `errno ${Math.abs(errno)}`;
}

export class FlannelBpfError extends Error {
  readonly remedy: string;
  constructor(message: string, remedy: string, options?: { cause?: unknown }) {
    super(`${message} — ${remedy}`, options);
    this.name = new.target.name;
    this.remedy = remedy;
  }
}

/** A system library (libbpf.so.1, libc) could not be loaded. */
export class LibraryMissingError extends FlannelBpfError {
  constructor(readonly library: string, remedy: string, cause: unknown) {
    super(`cannot load ${library}: ${cause instanceof Error ? cause.message : String(cause)}`, remedy, { cause });
  }
}

/** A bpf()/netlink operation failed with an errno. */
export class BpfSyscallError extends FlannelBpfError {
  readonly errno: number;
  readonly op: string;
  constructor(op: string, errno: number, detail = '', remedy?: string) {
    const code = Math.abs(errno);
    super(`${op} failed: ${errnoName(code)}${detail ? ` (${detail})` : ''}`, remedy ?? remedyFor(code));
    this.op = op;
    this.errno = code;
  }
}

/** EPERM/EACCES: not enough privilege for BPF or netlink. */
export class BpfPermissionError extends BpfSyscallError {
  constructor(op: string, errno: number, detail = '') {
    super(op, errno, detail,
      'run as root, or grant CAP_BPF + CAP_NET_ADMIN (+ CAP_PERFMON for tracing helpers); in a container also mount /sys/fs/bpf');
  }
}

const CAP_SYS_ADMIN = 21;
const CAP_PERFMON = 38;

/** Effective capabilities of this process (from /proc/self/status), null when unreadable. */
export function effectiveCaps(status?: string): bigint | null {
  let text = status;
  try { text ??= fs.readFileSync('/proc/self/status', 'utf8'); } catch { return null; }
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(text);
  return m ? BigInt(`0x${m[1]}`) : null;
}

/**
 * Why a verifier rejection happened, as far as the process can tell: without
 * CAP_PERFMON (or CAP_SYS_ADMIN) the verifier refuses the pointer arithmetic
 * and speculative-execution-sensitive code our programs contain, which reads
 * like a bad build but is a missing capability.
 */
export function verifierRemedy(caps: bigint | null = effectiveCaps()): string {
  const has = (bit: number) => caps !== null && (caps & (1n << BigInt(bit))) !== 0n;
  if (caps !== null && !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN)) {
    return 'the agent lacks CAP_PERFMON (and CAP_SYS_ADMIN), without which the verifier refuses these programs: grant CAP_PERFMON (deploy/kube-flannel-bpf.yml lists the capabilities)';
  }
  return 'this build of the BPF programs does not load on this kernel; rebuild with scripts/build-bpf.sh, check the kernel version (≥ 5.15 with BTF), and report the log above';
}

/** The kernel verifier rejected a program; `log` holds the last lines of the verifier log. */
export class VerifierError extends FlannelBpfError {
  constructor(readonly object: string, readonly program: string, readonly log: string[], errno: number) {
    super(
      `the kernel verifier rejected ${program} in ${object} (${errnoName(errno)}):\n  ${log.join('\n  ')}\n`,
      verifierRemedy(),
    );
  }
}

/** A pinned map exists but is not compatible with the object being loaded. */
export class PinnedMapMismatchError extends FlannelBpfError {
  constructor(readonly path: string, detail: string) {
    super(`pinned map ${path} does not match the program's map (${detail})`,
      `remove the stale pins with "flannel-bpf reset" (or rm ${path}) and restart the agent`);
  }
}

export function remedyFor(errno: number): string {
  switch (errno) {
    case os.constants.errno.EPERM:
    case os.constants.errno.EACCES:
      return 'run as root, or grant CAP_BPF + CAP_NET_ADMIN';
    case os.constants.errno.ENOENT:
      return 'the object does not exist (interface, pin or map entry); check the name and that bpffs is mounted';
    case os.constants.errno.ENODEV:
      return 'the network interface does not exist in this network namespace';
    case os.constants.errno.EEXIST:
      return 'something is already attached there; detach it or use replace';
    case os.constants.errno.E2BIG:
      return 'the map is full; raise --max-peers';
    case os.constants.errno.EOPNOTSUPP:
      return 'the kernel or driver does not support this operation';
    case os.constants.errno.EINVAL:
      return 'the kernel rejected the arguments; check the kernel version and that the object matches this agent';
    default:
      return 'see the kernel log (dmesg) and the agent log for details';
  }
}

/** Turn a negative errno into the right typed error. */
export function syscallError(op: string, errno: number, detail = ''): BpfSyscallError {
  const code = Math.abs(errno);
  if (code === os.constants.errno.EPERM || code === os.constants.errno.EACCES) {
    return new BpfPermissionError(op, code, detail);
  }
  return new BpfSyscallError(op, code, detail);
}
