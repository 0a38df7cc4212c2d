/**
 * bpffs: pins live on a BPF filesystem. The standard mount point is
 * /sys/fs/bpf; when it is not mounted yet (a fresh VM) we mount it, as every
 * BPF-based CNI does.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { FlannelBpfError } from './errors.js';

export const BPF_FS_MAGIC = 0xcafe4a11;
export const DEFAULT_BPFFS = '/sys/fs/bpf';

/** Is `dir` (which must exist) on a bpffs mount? */
export function isBpffs(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** Make sure `dir` can hold pins: mount /sys/fs/bpf if needed, then create `dir`. */
export function ensureBpffs(dir: string): void {
  const abs = path.resolve(dir);
  const underDefault = abs === DEFAULT_BPFFS || abs.startsWith(`${DEFAULT_BPFFS}/`);
  if (underDefault && !isBpffs(DEFAULT_BPFFS)) {
    try {
      fs.mkdirSync(DEFAULT_BPFFS, { recursive: true });
      execFileSync('mount', ['-t', 'bpf', 'bpf', DEFAULT_BPFFS], { stdio: 'pipe' });
    } catch (err) {
      throw new FlannelBpfError(`bpffs is not mounted at ${DEFAULT_BPFFS} and mounting it failed: ${String(err)}`,
        `mount it with "mount -t bpf bpf ${DEFAULT_BPFFS}" (in a container: mount the host's /sys/fs/bpf with bidirectional propagation)`);
    }
  }
  fs.mkdirSync(abs, { recursive: true, mode: 0o700 });
  if (!isBpffs(abs)) {
    throw new FlannelBpfError(`${abs} is not on a bpffs mount, so maps cannot be pinned there`,
      `choose a pin directory under ${DEFAULT_BPFFS}, or mount bpffs there (mount -t bpf bpf ${abs})`);
  }
}
