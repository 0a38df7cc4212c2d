/**
 * The dataplane of one node: the four BPF objects (one per attach point)
 * loaded so that they share one set of maps (pinned under the node's pin
 * directory, or shared by fd when no pin directory is given), and their
 * attachment to the uplink and the flannel-bpf device per decap engine.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject, type BpfProgram, programNameById, rememberPinnedPrograms, pinnedProgramFd, PROGRAM_PIN_PREFIX } from './object.js';
import type { BpfMap } from './map.js';
import { attachTc, detachTc, queryTc, type TcSlot } from './tc.js';
import { attachXdp, detachXdp, queryXdp, type XdpMode, type XdpModeRequest } from './xdp.js';
import { FlannelBpfError, PinnedMapMismatchError } from './errors.js';
import { moveAside, leftoverMigrations, migrateInto, finishMigrations, type MapMigration } from './migrate.js';
import { libbpf } from './libbpf.js';
import { NodeMaps, PEER_SIZED_MAPS } from '../maps/index.js';
import type { BackendType } from '../maps/config.js';

export const PROGRAMS = {
  devEgress: { object: 'dev_egress.o', program: 'fbpf_dev_egress' },
  uplinkIngress: { object: 'uplink_ingress.o', program: 'fbpf_uplink_ingress' },
  uplinkXdp: { object: 'uplink_xdp.o', program: 'fbpf_uplink_xdp' },
  uplinkEgress: { object: 'uplink_egress.o', program: 'fbpf_uplink_egress' },
  /* Fast path (conntrack kfuncs: needs nf_conntrack). */
  cniIngress: { object: 'cni_ingress.o', program: 'fbpf_cni_ingress' },
  devIngress: { object: 'dev_ingress.o', program: 'fbpf_dev_ingress' },
  uplinkIngressFast: { object: 'uplink_ingress_fast.o', program: 'fbpf_uplink_ingress_fast' },
} as const;
export type ProgramKeyAll = keyof typeof PROGRAMS;
/** The programs of the conntrack-gated fast path. */
export const FAST_PATH_PROGRAMS: readonly ProgramKeyAll[] = ['cniIngress', 'devIngress', 'uplinkIngressFast'];
/** The programs every node needs. */
export const BASE_PROGRAMS: readonly ProgramKeyAll[] = ['devEgress', 'uplinkIngress', 'uplinkXdp', 'uplinkEgress'];
export type ProgramKey = keyof typeof PROGRAMS;

/** Our TC filters' slot: a fixed handle and priority, so that we find and replace exactly ours. */
export const TC_HANDLE = 0xfb;
export const TC_PRIORITY = 0xfb;

export type { Engine } from './engine.js';
import type { Engine } from './engine.js';

/** Where the BPF objects are: $FLANNEL_BPF_OBJ_DIR, else build/bpf of this checkout. */
export function defaultObjectDir(): string {
  const env = process.env.FLANNEL_BPF_OBJ_DIR;
  if (env) return env;
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const rel of ['../../build/bpf', '../../../build/bpf']) {
    const dir = path.resolve(here, rel);
    if (fs.existsSync(path.join(dir, PROGRAMS.devEgress.object))) return dir;
  }
  return path.resolve(here, '../../build/bpf');
}

export interface DataplaneOptions {
  objectDir?: string;
  /** Node pin directory under bpffs; omit for an unpinned (test) dataplane. */
  pinDir?: string;
  /** Capacity of the peer-sized maps (default: the objects' 65536). */
  maxPeers?: number;
  /** Load only these programs (default: all). */
  only?: readonly ProgramKey[];
  /** Leave out the fast-path programs (when nf_conntrack's kfuncs are missing, or the fast path is off). */
  withoutFastPath?: boolean;
  /** Refuse (PinnedMapMismatchError) instead of migrating pinned maps of another definition. */
  noMigrate?: boolean;
}

export interface AttachPlan {
  uplinkIfindex: number;
  devIfindex: number;
  engine: Engine;
  /** host-gw adds the uplink egress fix-up. */
  backend: BackendType;
  xdpMode?: XdpModeRequest;
  /** Attach the fast-path programs (device ingress; cni0 ingress once cni0 exists). */
  fastPath?: boolean;
  /** The cni0 bridge (0 while it does not exist yet). */
  cniIfindex?: number;
}

/** Our hooks; dev-tc-ingress and cni-tc-ingress belong to the fast path. */
export type HookName = 'uplink-xdp' | 'uplink-tc-ingress' | 'uplink-tc-egress' | 'dev-tc-egress' | 'dev-tc-ingress' | 'cni-tc-ingress';

/** The hooks a backend/engine combination uses. */
export function hooksFor(plan: Pick<AttachPlan, 'engine' | 'backend' | 'fastPath' | 'cniIfindex'>): HookName[] {
  const hooks: HookName[] = ['uplink-tc-ingress', 'dev-tc-egress'];
  if (plan.engine === 'xdp') hooks.unshift('uplink-xdp');
  if (plan.backend === 'host-gw') hooks.push('uplink-tc-egress');
  if (plan.fastPath) {
    hooks.push('dev-tc-ingress');
    if (plan.cniIfindex) hooks.push('cni-tc-ingress');
  }
  return hooks;
}

export interface HookState {
  hook: HookName;
  ifindex: number;
  progId: number | null;
  /** XDP only: the mode it runs in. */
  mode?: XdpMode | null;
  ours: boolean;
}

export class Dataplane {
  readonly objects = new Map<ProgramKey, BpfObject>();
  readonly programs = new Map<ProgramKey, BpfProgram>();
  readonly maps: NodeMaps;
  /** Pinned maps whose definition changed, migrated at load (old pins unlinked by finishMigrations()). */
  migrations: MapMigration[] = [];

  private constructor(objects: Map<ProgramKey, BpfObject>, readonly pinDir?: string) {
    for (const [k, o] of objects) {
      this.objects.set(k, o);
      this.programs.set(k, o.program(PROGRAMS[k].program));
    }
    const first = objects.values().next().value;
    if (!first) throw new Error('no BPF object loaded');
    this.maps = NodeMaps.fromObject(first);
  }

  /** Load the objects; all of them end up on the same maps. */
  static load(opts: DataplaneOptions = {}): Dataplane {
    const dir = opts.objectDir ?? defaultObjectDir();
    /* The programs a previous agent left attached are recognised by their pins (no CAP_SYS_ADMIN needed). */
    if (opts.pinDir) rememberPinnedPrograms(opts.pinDir);
    const keys = opts.only ?? (opts.withoutFastPath ? BASE_PROGRAMS : (Object.keys(PROGRAMS) as ProgramKey[]));
    const maxEntries = opts.maxPeers ? Object.fromEntries(PEER_SIZED_MAPS.map((m) => [m, opts.maxPeers!])) : undefined;
    const objects = new Map<ProgramKey, BpfObject>();
    let shared: ReadonlyMap<string, BpfMap> | undefined;
    const moved = new Set<string>();
    try {
      for (const key of keys) {
        for (;;) {
          try {
            const obj = BpfObject.load(path.join(dir, PROGRAMS[key].object), {
              pinDir: opts.pinDir,
              maxEntries,
              reuseMaps: opts.pinDir ? undefined : shared,
            });
            objects.set(key, obj);
            shared ??= obj.maps;
            break;
          } catch (err) {
            /* A pinned map of another definition (upgrade, --max-peers change): move it aside and load again. */
            if (!(err instanceof PinnedMapMismatchError) || !opts.pinDir || moved.has(err.path) || opts.noMigrate) throw err;
            moveAside(err.path);
            moved.add(err.path);
          }
        }
      }
    } catch (err) {
      for (const o of objects.values()) o.close();
      throw err;
    }
    const dp = new Dataplane(objects, opts.pinDir);
    if (opts.pinDir) {
      try {
        /* Copy what the old maps held (this run's moves, and any an interrupted run left). */
        for (const { map, oldPin } of leftoverMigrations(opts.pinDir)) {
          const to = [...objects.values()][0]?.maps.get(map);
          if (to) dp.migrations.push(migrateInto(map, oldPin, to));
        }
      } catch (err) {
        dp.close();
        throw err;
      }
    }
    return dp;
  }

  /**
   * Pin the loaded programs in the node's pin directory (`prog_<name>`), so
   * that a later agent, `status` and `reset` recognise them as ours without
   * CAP_SYS_ADMIN. Pins of programs no longer loaded are removed.
   */
  pinPrograms(): void {
    if (!this.pinDir) return;
    const want = new Set<string>();
    for (const [key, prog] of this.programs) {
      const file = path.join(this.pinDir, `${PROGRAM_PIN_PREFIX}${PROGRAMS[key].program}`);
      want.add(path.basename(file));
      fs.rmSync(file, { force: true });
      const rc = libbpf().bpf_obj_pin(prog.fd, file);
      if (rc < 0) throw new FlannelBpfError(`cannot pin program ${PROGRAMS[key].program} at ${file} (errno ${-rc})`, 'check that the pin directory is on a writable bpffs');
    }
    for (const name of fs.readdirSync(this.pinDir)) {
      if (name.startsWith(PROGRAM_PIN_PREFIX) && !want.has(name)) fs.rmSync(path.join(this.pinDir, name), { force: true });
    }
  }

  /** After the new programs are attached: drop the old maps' pins (the old programs are gone). */
  finishMigrations(): void {
    finishMigrations(this.migrations);
  }

  program(key: ProgramKey): BpfProgram {
    const p = this.programs.get(key);
    if (!p) throw new FlannelBpfError(`program ${key} was not loaded`, 'load the dataplane with that program');
    return p;
  }

  /**
   * Attach (or atomically replace) every program the engine needs, and
   * detach the ones it does not (an engine switch). Safe to repeat.
   */
  attach(plan: AttachPlan): HookState[] {
    const slot = (ifindex: number, direction: 'ingress' | 'egress'): TcSlot =>
      ({ ifindex, direction, handle: TC_HANDLE, priority: TC_PRIORITY });
    const want = hooksFor(plan);
    attachTc(slot(plan.devIfindex, 'egress'), this.program('devEgress').fd);
    attachTc(slot(plan.uplinkIfindex, 'ingress'), this.program(plan.fastPath ? 'uplinkIngressFast' : 'uplinkIngress').fd);
    if (want.includes('dev-tc-ingress')) attachTc(slot(plan.devIfindex, 'ingress'), this.program('devIngress').fd);
    else detachTc(slot(plan.devIfindex, 'ingress'));
    if (plan.cniIfindex) {
      if (want.includes('cni-tc-ingress')) attachTc(slot(plan.cniIfindex, 'ingress'), this.program('cniIngress').fd);
      else detachTc(slot(plan.cniIfindex, 'ingress'));
    }
    if (want.includes('uplink-tc-egress')) attachTc(slot(plan.uplinkIfindex, 'egress'), this.program('uplinkEgress').fd);
    else detachTc(slot(plan.uplinkIfindex, 'egress'));
    if (plan.engine === 'xdp') {
      this.#attachXdp(plan.uplinkIfindex, plan.xdpMode ?? 'auto');
    } else if (isOurXdp(plan.uplinkIfindex)) {
      detachXdp(plan.uplinkIfindex);
    }
    return hookStates(plan);
  }

  #attachXdp(ifindex: number, mode: XdpModeRequest): XdpMode {
    const fd = this.program('uplinkXdp').fd;
    const current = queryXdp(ifindex);
    if (current.progId === 0) return attachXdp(ifindex, fd, { mode });
    const name = programNameById(current.progId);
    if (!name?.startsWith('fbpf_')) {
      throw new FlannelBpfError(`another XDP program (id ${current.progId}, ${name ?? 'not one of ours'}) is attached to ifindex ${ifindex}`,
        'detach it (ip link set dev <uplink> xdp off) or choose --decap=kernel|tc');
    }
    const want: XdpMode = mode === 'auto' ? (current.mode ?? 'native') : mode;
    if (want !== current.mode) {
      detachXdp(ifindex, current.mode ?? undefined);
      return attachXdp(ifindex, fd, { mode });
    }
    /* Replace only what we expect to be there; without an fd for it (no pin, no CAP_SYS_ADMIN) a plain replace is still atomic. */
    let oldFd = libbpf().bpf_prog_get_fd_by_id(current.progId);
    if (oldFd < 0 && this.pinDir) oldFd = pinnedProgramFd(this.pinDir, current.progId);
    try {
      return attachXdp(ifindex, fd, oldFd >= 0 ? { mode: want, replaceFd: oldFd } : { mode: want });
    } finally {
      if (oldFd >= 0) libbpf().close(oldFd);
    }
  }

  /** Close the objects (attached programs and pinned maps stay). */
  close(): void {
    for (const o of this.objects.values()) o.close();
    this.objects.clear();
    this.programs.clear();
  }
}

function isOurXdp(ifindex: number): boolean {
  try {
    const q = queryXdp(ifindex);
    return ours(q.progId);
  } catch {
    return false;
  }
}

function ours(progId: number | null): boolean {
  return progId !== null && progId !== 0 && (programNameById(progId)?.startsWith('fbpf_') ?? false);
}

/** What is attached at each of our hooks right now. */
export function hookStates(plan: Pick<AttachPlan, 'uplinkIfindex' | 'devIfindex' | 'cniIfindex'>): HookState[] {
  const slot = (ifindex: number, direction: 'ingress' | 'egress'): TcSlot =>
    ({ ifindex, direction, handle: TC_HANDLE, priority: TC_PRIORITY });
  const tc = (hook: HookState['hook'], ifindex: number, direction: 'ingress' | 'egress'): HookState => {
    let progId: number | null = null;
    try { progId = queryTc(slot(ifindex, direction)); } catch { progId = null; }
    return { hook, ifindex, progId, ours: ours(progId) };
  };
  let xdp: HookState;
  try {
    const q = queryXdp(plan.uplinkIfindex);
    xdp = { hook: 'uplink-xdp', ifindex: plan.uplinkIfindex, progId: q.progId || null, mode: q.mode, ours: ours(q.progId) };
  } catch {
    xdp = { hook: 'uplink-xdp', ifindex: plan.uplinkIfindex, progId: null, mode: null, ours: false };
  }
  return [
    xdp,
    tc('uplink-tc-ingress', plan.uplinkIfindex, 'ingress'),
    tc('uplink-tc-egress', plan.uplinkIfindex, 'egress'),
    tc('dev-tc-egress', plan.devIfindex, 'egress'),
    tc('dev-tc-ingress', plan.devIfindex, 'ingress'),
    ...(plan.cniIfindex ? [tc('cni-tc-ingress', plan.cniIfindex, 'ingress')] : []),
  ];
}

/** Remove every program of ours from the uplink and the device. */
export function detachAll(plan: Pick<AttachPlan, 'uplinkIfindex' | 'devIfindex' | 'cniIfindex'>): void {
  const slot = (ifindex: number, direction: 'ingress' | 'egress'): TcSlot =>
    ({ ifindex, direction, handle: TC_HANDLE, priority: TC_PRIORITY });
  detachTc(slot(plan.devIfindex, 'egress'));
  detachTc(slot(plan.devIfindex, 'ingress'));
  detachTc(slot(plan.uplinkIfindex, 'ingress'));
  detachTc(slot(plan.uplinkIfindex, 'egress'));
  if (plan.cniIfindex) detachTc(slot(plan.cniIfindex, 'ingress'));
  if (isOurXdp(plan.uplinkIfindex)) detachXdp(plan.uplinkIfindex);
}
