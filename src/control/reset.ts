/**
 * `flannel-bpf reset`: remove everything flannel-bpf created on this node —
 * our TC filters and XDP program, the flannel-bpf device (with its address
 * and route), the managed neighbour entries of its next hops, the pinned maps, flannel's iptables chains, subnet.env and the
 * state file. Leases in the store (etcd key / Node annotations) are not
 * node-local and are left alone (they expire / are overwritten).
 */
import fs from 'node:fs';
import { detachAll } from '../loader/dataplane.js';
import { rememberPinnedPrograms } from '../loader/object.js';
import { NodeMaps } from '../maps/index.js';
import { removeDevice, linkInfo, defaultIpRunner, type IpRunner, DEVICE_NAME } from './device.js';
import { masqRules, forwardRules, removeRules, defaultExec, type Exec } from './masquerade.js';
import { readStateFile } from './state.js';
import { removeManagedNeighbours } from './nexthops.js';
import { CNI_BRIDGE } from './endpoints.js';
import { parseCidr } from '../maps/addr.js';

export interface ResetOptions {
  pinDir: string;
  stateDir: string;
  subnetFile: string;
  ip?: IpRunner;
  exec?: Exec;
}

export function resetNode(opts: ResetOptions): string[] {
  const ip = opts.ip ?? defaultIpRunner;
  const exec = opts.exec ?? defaultExec;
  const done: string[] = [];
  const state = readStateFile(opts.stateDir);
  let uplinkIfindex = 0;
  let devIfindex = 0;
  if (fs.existsSync(opts.pinDir)) {
    try {
      const maps = NodeMaps.fromPinDir(opts.pinDir);
      const cfg = maps.readConfig();
      maps.close();
      uplinkIfindex = cfg?.uplinkIfindex ?? 0;
      devIfindex = cfg?.devIfindex ?? 0;
    } catch { /* stale or foreign pins: still removed below */ }
  }
  if (state?.uplink) uplinkIfindex ||= state.uplink.ifindex;
  if (state?.uplink?.name) {
    try { uplinkIfindex = linkInfo(state.uplink.name, ip).ifindex; } catch { /* gone */ }
  }
  try { devIfindex = linkInfo(DEVICE_NAME, ip).ifindex; } catch { /* gone */ }
  let cniIfindex = 0;
  try { cniIfindex = linkInfo('cni0', ip).ifindex; } catch { /* no pods yet */ }
  if (uplinkIfindex || devIfindex) {
    rememberPinnedPrograms(opts.pinDir); /* recognise our XDP program without CAP_SYS_ADMIN */
    detachAll({ uplinkIfindex, devIfindex, cniIfindex });
    done.push('detached programs');
  }
  if (removeDevice(DEVICE_NAME, ip)) done.push(`deleted device ${DEVICE_NAME}`);
  /* Managed neighbour entries of ours: the peers' next hops on the uplink, the pods on cni0. */
  for (const dev of [state?.uplink?.name, CNI_BRIDGE]) {
    if (!dev) continue;
    try {
      const gone = removeManagedNeighbours(dev, ip);
      if (gone.length) done.push(`deleted ${gone.length} managed neighbour entr${gone.length === 1 ? 'y' : 'ies'} on ${dev}`);
    } catch { /* device gone */ }
  }
  if (fs.existsSync(opts.pinDir)) {
    fs.rmSync(opts.pinDir, { recursive: true, force: true });
    done.push(`removed pins ${opts.pinDir}`);
  }
  const any = parseCidr('0.0.0.0/0');
  for (const set of [masqRules(any, any, false), forwardRules(any)]) {
    try { if (removeRules(set, exec)) done.push(`removed iptables chain ${set.chain}`); } catch { /* iptables missing */ }
  }
  for (const f of [opts.subnetFile, `${opts.stateDir}/state.json`]) {
    if (fs.existsSync(f)) { fs.rmSync(f, { force: true }); done.push(`removed ${f}`); }
  }
  return done;
}
