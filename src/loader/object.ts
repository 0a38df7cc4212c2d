/**
 * BPF object lifecycle: open an ELF object, size its maps, point its pinned
 * maps at a node's pin directory (reusing pins that exist), load it through
 * the verifier, and hand out its programs and maps.
 */
import fs from 'node:fs';
import path from 'node:path';
import { libbpf, structSizes, type Pointer } from './libbpf.js';
import { syscallError, VerifierError, PinnedMapMismatchError, FlannelBpfError } from './errors.js';
import { withLibbpfLog, extractVerifierLog } from './log.js';
import { BpfMap } from './map.js';
import { ensureBpffs } from './bpffs.js';

export interface ProgramInfo {
  id: number;
  name: string;
  type: number;
  tag: string;
  xlatedInsns: number;
  jitedBytes: number;
  verifiedInsns: number;
  runTimeNs: bigint;
  runCount: bigint;
}

const PROG_INFO_LEN = 256;

/** bpf_obj_get_info_by_fd for a program fd. */
export function programInfo(fd: number): ProgramInfo {
  const buf = Buffer.alloc(PROG_INFO_LEN);
  const len = new Uint32Array([PROG_INFO_LEN]);
  const rc = libbpf().bpf_obj_get_info_by_fd(fd, buf, len);
  if (rc < 0) throw syscallError('bpf_obj_get_info_by_fd(prog)', rc);
  const nameEnd = buf.indexOf(0, 64);
  return {
    type: buf.readUInt32LE(0),
    id: buf.readUInt32LE(4),
    tag: buf.toString('hex', 8, 16),
    jitedBytes: buf.readUInt32LE(16),
    xlatedInsns: buf.readUInt32LE(20) / 8,
    name: buf.toString('utf8', 64, nameEnd > 0 && nameEnd < 80 ? nameEnd : 80),
    runTimeNs: buf.readBigUInt64LE(192),
    runCount: buf.readBigUInt64LE(200),
    verifiedInsns: buf.readUInt32LE(216),
  };
}

/** Every loaded BPF program id on the machine (for leak checks and status). */
export function listProgramIds(): number[] {
  const lib = libbpf();
  const ids: number[] = [];
  const next = new Uint32Array(1);
  let start = 0;
  while (lib.bpf_prog_get_next_id(start, next) === 0) {
    const id = next[0] ?? 0;
    ids.push(id);
    start = id;
  }
  return ids;
}

/** Info of a program by id, or null when it no longer exists (or without CAP_SYS_ADMIN, which BPF_PROG_GET_FD_BY_ID needs). */
export function programInfoById(id: number): ProgramInfo | null {
  const fd = libbpf().bpf_prog_get_fd_by_id(id);
  if (fd < 0) return null;
  try {
    return programInfo(fd);
  } finally {
    libbpf().close(fd);
  }
}

/*
 * Which attached programs are ours. Asking the kernel for a program's name by
 * id needs CAP_SYS_ADMIN, which the agent should not need, so ids are known
 * first from what this process loaded and from the program pins an agent
 * leaves in its node's pin directory (pinPrograms): those are opened by path
 * and read through their fd. The kernel lookup by id is the last resort.
 */
const ownPrograms = new Map<number, string>();

/** Pin-file prefix of the programs an agent pins in its node directory (bpffs names cannot hold dots). */
export const PROGRAM_PIN_PREFIX = 'prog_';

export function rememberOwnProgram(id: number, name: string): void {
  ownPrograms.set(id, name);
}

/** Forget what this process knows (tests that stand in for another process). */
export function forgetOwnPrograms(): void {
  ownPrograms.clear();
}

/** Read the program pins of a node's pin directory into the known set; returns how many. */
export function rememberPinnedPrograms(pinDir: string): number {
  let names: string[];
  try { names = fs.readdirSync(pinDir).filter((n) => n.startsWith(PROGRAM_PIN_PREFIX)); } catch { return 0; }
  let n = 0;
  for (const name of names) {
    const fd = libbpf().bpf_obj_get(path.join(pinDir, name));
    if (fd < 0) continue;
    try {
      /* The pin carries the full name; the kernel keeps 15 characters (fbpf_uplink_ing… is two programs). */
      const info = programInfo(fd);
      rememberOwnProgram(info.id, name.slice(PROGRAM_PIN_PREFIX.length));
      n++;
    } catch {
      /* not a program pin */
    } finally {
      libbpf().close(fd);
    }
  }
  return n;
}

/** A program's name if it is one of ours (known or pinned), else the kernel's answer (CAP_SYS_ADMIN), else null. */
export function programNameById(id: number): string | null {
  return ownPrograms.get(id) ?? programInfoById(id)?.name ?? null;
}

/** Open a pinned program of ours with this id (for an atomic XDP replace without CAP_SYS_ADMIN); -1 when none. */
export function pinnedProgramFd(pinDir: string, id: number): number {
  let names: string[];
  try { names = fs.readdirSync(pinDir).filter((n) => n.startsWith(PROGRAM_PIN_PREFIX)); } catch { return -1; }
  for (const name of names) {
    const fd = libbpf().bpf_obj_get(path.join(pinDir, name));
    if (fd < 0) continue;
    try {
      if (programInfo(fd).id === id) return fd;
    } catch { /* not a program */ }
    libbpf().close(fd);
  }
  return -1;
}

export class BpfProgram {
  constructor(readonly name: string, readonly section: string, readonly fd: number, readonly elfInsns: number) {}
  info(): ProgramInfo {
    return programInfo(this.fd);
  }
}

export interface OpenOptions {
  /** Pin directory for maps declared with LIBBPF_PIN_BY_NAME (created if missing; must be on bpffs). */
  pinDir?: string;
  /** max_entries overrides by map name. */
  maxEntries?: Record<string, number>;
  /** Object name shown by bpftool (defaults to the file name). */
  name?: string;
  /** Share maps with another loaded object (by map name) instead of creating new ones. */
  reuseMaps?: ReadonlyMap<string, BpfMap>;
}

export class BpfObject {
  readonly programs = new Map<string, BpfProgram>();
  readonly maps = new Map<string, BpfMap>();
  /** How long open + load took (the verifier dominates), in milliseconds. */
  readonly loadMs: number;
  #obj: Pointer | null;

  private constructor(readonly file: string, obj: Pointer, loadMs: number) {
    this.#obj = obj;
    this.loadMs = loadMs;
  }

  /** Open and load an object; throws VerifierError with the log's last lines on rejection. */
  static load(file: string, opts: OpenOptions = {}): BpfObject {
    const lib = libbpf();
    if (!fs.existsSync(file)) {
      throw new FlannelBpfError(`BPF object ${file} not found`, 'build the programs with: bash scripts/build-bpf.sh');
    }
    if (opts.pinDir) {
      ensureBpffs(path.dirname(opts.pinDir));
      fs.mkdirSync(opts.pinDir, { recursive: true, mode: 0o700 });
    }
    const t0 = performance.now();
    const obj = lib.bpf_object__open_file(file, {
      sz: structSizes.objectOpenOpts,
      object_name: opts.name ?? null,
      relaxed_maps: false,
      pin_root_path: opts.pinDir ?? null,
      attach_prog_fd_stub: 0,
      kconfig: null,
      btf_custom_path: null,
      kernel_log_buf: null,
      kernel_log_size: 0,
      kernel_log_level: 0,
    });
    if (!obj) throw syscallError(`bpf_object__open_file(${file})`, lib.errno());

    try {
      if (!opts.pinDir) {
        /* No pin directory: libbpf would otherwise pin LIBBPF_PIN_BY_NAME maps under /sys/fs/bpf. */
        for (let m = lib.bpf_object__next_map(obj, null); m; m = lib.bpf_object__next_map(obj, m)) {
          const rc = lib.bpf_map__set_pin_path(m, null);
          if (rc < 0) throw syscallError(`clear pin path of ${lib.bpf_map__name(m)}`, rc);
        }
      }
      for (const [name, n] of Object.entries(opts.maxEntries ?? {})) {
        const map = lib.bpf_object__find_map_by_name(obj, name);
        if (!map) continue;
        const rc = lib.bpf_map__set_max_entries(map, n);
        if (rc < 0) throw syscallError(`set max_entries of ${name} to ${n}`, rc);
      }
      for (const [name, shared] of opts.reuseMaps ?? []) {
        const map = lib.bpf_object__find_map_by_name(obj, name);
        if (!map) continue;
        const rc = lib.bpf_map__reuse_fd(map, shared.fd);
        if (rc < 0) throw syscallError(`reuse map ${name} (fd ${shared.fd})`, rc);
      }
      const { result, error, lines } = withLibbpfLog(() => lib.bpf_object__load(obj));
      if (error) throw error;
      const rc = result ?? 0;
      if (rc < 0) {
        const mismatch = lines.find((l) => l.includes("couldn't reuse pinned map"));
        if (mismatch) {
          const m = /at '([^']+)'/.exec(mismatch);
          throw new PinnedMapMismatchError(m?.[1] ?? opts.pinDir ?? '?', mismatch.replace(/^libbpf:\s*/, '').trim());
        }
        const { program, log } = extractVerifierLog(lines);
        if (lines.some((l) => l.includes('BEGIN PROG LOAD LOG'))) {
          throw new VerifierError(path.basename(file), program, log.slice(-20), rc);
        }
        throw syscallError(`load of ${path.basename(file)}`, rc, log.slice(-3).join(' | '));
      }
    } catch (err) {
      lib.bpf_object__close(obj);
      throw err;
    }
    const self = new BpfObject(file, obj, performance.now() - t0);
    self.#index();
    return self;
  }

  #index(): void {
    const lib = libbpf();
    const obj = this.#ptr();
    for (let p = lib.bpf_object__next_program(obj, null); p; p = lib.bpf_object__next_program(obj, p)) {
      const name = lib.bpf_program__name(p);
      const prog = new BpfProgram(name, lib.bpf_program__section_name(p), lib.bpf_program__fd(p), Number(lib.bpf_program__insn_cnt(p)));
      this.programs.set(name, prog);
      rememberOwnProgram(prog.info().id, name);
    }
    for (let m = lib.bpf_object__next_map(obj, null); m; m = lib.bpf_object__next_map(obj, m)) {
      const name = lib.bpf_map__name(m);
      if (lib.bpf_map__is_internal(m)) continue; /* .rodata/.bss and friends */
      this.maps.set(name, new BpfMap(lib.bpf_map__fd(m), { ownsFd: false, name }));
    }
  }

  #ptr(): Pointer {
    if (!this.#obj) throw new Error(`BPF object ${this.file} is closed`);
    return this.#obj;
  }

  program(name: string): BpfProgram {
    const p = this.programs.get(name);
    if (!p) throw new FlannelBpfError(`program ${name} not found in ${this.file}`, 'rebuild the BPF objects (scripts/build-bpf.sh)');
    return p;
  }

  map(name: string): BpfMap {
    const m = this.maps.get(name);
    if (!m) throw new FlannelBpfError(`map ${name} not found in ${this.file}`, 'rebuild the BPF objects (scripts/build-bpf.sh)');
    return m;
  }

  /**
   * Close the object. Attached programs stay attached (TC filters and XDP
   * hold their own reference) and pinned maps stay pinned.
   */
  close(): void {
    if (this.#obj) {
      libbpf().bpf_object__close(this.#obj);
      this.#obj = null;
    }
  }
}
