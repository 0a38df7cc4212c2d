/**
 * The node's VtepMAC must be stable across restarts and reboots: peers hold
 * it in their maps (and stock flannel peers in their neighbour/FDB tables).
 * Preference: the MAC already published for this node (kube annotation:
 * keeps a migrating flannel node's MAC), else the MAC of our existing device
 * (agent restart), else one derived from the node's identity — never a new
 * random one per start.
 */
import crypto from 'node:crypto';
import { formatMac, parseMac } from '../maps/addr.js';

/** A locally administered unicast MAC derived from `identity` (deterministic). */
export function deriveVtepMac(identity: string): string {
  const h = crypto.createHash('sha256').update(`flannel-bpf/vtep/${identity}`).digest();
  const b = Buffer.from(h.subarray(0, 6));
  b[0] = ((b[0] ?? 0) & 0xfc) | 0x02;
  return formatMac(b);
}

function usable(mac: string | null | undefined): string | null {
  if (!mac) return null;
  try {
    return formatMac(parseMac(mac));
  } catch {
    return null;
  }
}

export function chooseVtepMac(sources: { published?: string | null; device?: string | null; identity: string }): { mac: string; source: 'published' | 'device' | 'derived' } {
  const published = usable(sources.published);
  if (published) return { mac: published, source: 'published' };
  const device = usable(sources.device);
  if (device) return { mac: device, source: 'device' };
  return { mac: deriveVtepMac(sources.identity), source: 'derived' };
}
