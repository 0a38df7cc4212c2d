/**
 * TC (clsact) attachment: direct-action filters with an explicit handle and
 * priority, so that a new program atomically replaces the old one in the same
 * slot (hitless upgrade) and a later run can find and detach exactly ours.
 * Filters stay attached after the process exits.
 */
import os from 'node:os';
import {
  libbpf, structSizes, BPF_TC_INGRESS, BPF_TC_EGRESS, BPF_TC_F_REPLACE, type TcHookArg, type TcOptsArg,
} from './libbpf.js';
import { syscallError } from './errors.js';

export type TcDirection = 'ingress' | 'egress';

export interface TcSlot {
  ifindex: number;
  direction: TcDirection;
  /** Filter handle (default 1). */
  handle?: number;
  /** Filter priority (default 1). */
  priority?: number;
}

const EEXIST = os.constants.errno.EEXIST;
const ENOENT = os.constants.errno.ENOENT;
const EINVAL = os.constants.errno.EINVAL;

function hook(slot: TcSlot): TcHookArg {
  return {
    sz: structSizes.tcHook,
    ifindex: slot.ifindex,
    attach_point: slot.direction === 'ingress' ? BPF_TC_INGRESS : BPF_TC_EGRESS,
    parent: 0,
  };
}

function opts(slot: TcSlot, progFd = 0, flags = 0): TcOptsArg {
  return {
    sz: structSizes.tcOpts,
    prog_fd: progFd,
    flags,
    prog_id: 0,
    handle: slot.handle ?? 1,
    priority: slot.priority ?? 1,
  };
}

function where(slot: TcSlot): string {
  return `tc ${slot.direction} of ifindex ${slot.ifindex} (handle ${slot.handle ?? 1}, prio ${slot.priority ?? 1})`;
}

/** Create the clsact qdisc if it is not there. */
export function ensureClsact(ifindex: number): void {
  const rc = libbpf().bpf_tc_hook_create(hook({ ifindex, direction: 'ingress' }));
  if (rc < 0 && rc !== -EEXIST) throw syscallError(`create clsact qdisc on ifindex ${ifindex}`, rc);
}

/**
 * Attach progFd in the slot. With replace (the default) an existing filter in
 * the same slot is swapped atomically; without it an occupied slot is an error.
 * Returns the attached program id.
 */
export function attachTc(slot: TcSlot, progFd: number, replace = true): number {
  ensureClsact(slot.ifindex);
  const o = opts(slot, progFd, replace ? BPF_TC_F_REPLACE : 0);
  const rc = libbpf().bpf_tc_attach(hook(slot), o);
  if (rc < 0) throw syscallError(`attach to ${where(slot)}`, rc);
  return o.prog_id;
}

/** Program id attached in the slot, or null. */
export function queryTc(slot: TcSlot): number | null {
  const o = opts(slot);
  const rc = libbpf().bpf_tc_query(hook(slot), o);
  if (rc === -ENOENT || rc === -EINVAL) return null;
  if (rc < 0) throw syscallError(`query ${where(slot)}`, rc);
  return o.prog_id;
}

/** Detach the filter in the slot; false when there was none. */
export function detachTc(slot: TcSlot): boolean {
  const rc = libbpf().bpf_tc_detach(hook(slot), opts(slot));
  if (rc === -ENOENT || rc === -EINVAL) return false;
  if (rc < 0) throw syscallError(`detach from ${where(slot)}`, rc);
  return true;
}
