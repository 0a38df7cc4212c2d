/**
 * XDP attachment: native (driver) mode when the driver supports it, generic
 * (skb) mode otherwise; atomic replacement of our own program; detach.
 */
import os from 'node:os';
import {
  libbpf, structSizes, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, XDP_FLAGS_REPLACE, XDP_FLAGS_UPDATE_IF_NOEXIST,
} from './libbpf.js';
import { syscallError } from './errors.js';

export type XdpMode = 'native' | 'generic';
export type XdpModeRequest = XdpMode | 'auto';

/* enum bpf_xdp_attach_mode / XDP_ATTACHED_* */
const XDP_ATTACHED_DRV = 1;
const XDP_ATTACHED_SKB = 2;
const XDP_ATTACHED_MULTI = 4;

const EOPNOTSUPP = os.constants.errno.EOPNOTSUPP;
const EINVAL = os.constants.errno.EINVAL;

function modeFlag(mode: XdpMode): number {
  return mode === 'native' ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
}

export interface XdpState {
  progId: number;
  mode: XdpMode | null;
}

/** What is attached to the interface (progId 0 when nothing). */
export function queryXdp(ifindex: number): XdpState {
  const o = { sz: structSizes.xdpQueryOpts, prog_id: 0, drv_prog_id: 0, hw_prog_id: 0, skb_prog_id: 0, attach_mode: 0 };
  const rc = libbpf().bpf_xdp_query(ifindex, 0, o);
  if (rc < 0) throw syscallError(`query XDP on ifindex ${ifindex}`, rc);
  if (o.attach_mode === XDP_ATTACHED_DRV) return { progId: o.drv_prog_id || o.prog_id, mode: 'native' };
  if (o.attach_mode === XDP_ATTACHED_SKB) return { progId: o.skb_prog_id || o.prog_id, mode: 'generic' };
  if (o.attach_mode === XDP_ATTACHED_MULTI) {
    return o.drv_prog_id ? { progId: o.drv_prog_id, mode: 'native' } : { progId: o.skb_prog_id, mode: 'generic' };
  }
  return { progId: 0, mode: null };
}

/**
 * Attach progFd. `auto` tries native first and falls back to generic when the
 * driver has no XDP support. When `replaceFd` is given the attach swaps that
 * program atomically (and fails if something else is attached).
 * Returns the mode used.
 */
export function attachXdp(ifindex: number, progFd: number,
  opts: { mode?: XdpModeRequest; replaceFd?: number } = {}): XdpMode {
  const lib = libbpf();
  const request = opts.mode ?? 'auto';
  const tries: XdpMode[] = request === 'auto' ? ['native', 'generic'] : [request];
  let last = 0;
  for (const mode of tries) {
    let flags = modeFlag(mode);
    let attachOpts: { sz: number; old_prog_fd: number } | null = null;
    if (opts.replaceFd !== undefined) {
      flags |= XDP_FLAGS_REPLACE;
      attachOpts = { sz: structSizes.xdpAttachOpts, old_prog_fd: opts.replaceFd };
    }
    const rc = lib.bpf_xdp_attach(ifindex, progFd, flags, attachOpts);
    if (rc === 0) return mode;
    last = rc;
    if (rc !== -EOPNOTSUPP && rc !== -EINVAL) break;
  }
  throw syscallError(`attach XDP (${request}) on ifindex ${ifindex}`, last);
}

/** Attach only if nothing is attached yet (never clobbers another tool's program). */
export function attachXdpIfFree(ifindex: number, progFd: number, mode: XdpModeRequest = 'auto'): XdpMode {
  const lib = libbpf();
  const tries: XdpMode[] = mode === 'auto' ? ['native', 'generic'] : [mode];
  let last = 0;
  for (const m of tries) {
    const rc = lib.bpf_xdp_attach(ifindex, progFd, modeFlag(m) | XDP_FLAGS_UPDATE_IF_NOEXIST, null);
    if (rc === 0) return m;
    last = rc;
    if (rc !== -EOPNOTSUPP && rc !== -EINVAL) break;
  }
  throw syscallError(`attach XDP (${mode}) on ifindex ${ifindex}`, last);
}

/** Detach whatever XDP program is attached in `mode` (both modes when omitted). */
export function detachXdp(ifindex: number, mode?: XdpMode): void {
  const lib = libbpf();
  for (const m of mode ? [mode] : (['native', 'generic'] as XdpMode[])) {
    const rc = lib.bpf_xdp_detach(ifindex, modeFlag(m), null);
    if (rc < 0 && rc !== -EOPNOTSUPP && rc !== -EINVAL) throw syscallError(`detach XDP on ifindex ${ifindex}`, rc);
  }
}
