/**
 * The libbpf 1.x binding through koffi. Only this file talks to koffi; the
 * rest of src/loader/ wraps these raw calls in typed, checked operations.
 *
 * Conventions (see ../shared/reference/libbpf-koffi-notes.md):
 *  - opaque libbpf objects are BigInt pointers (null for NULL);
 *  - keys and values are Node Buffers passed to `void *` (no copy);
 *  - low-level bpf_* calls return -errno; NULL-returning calls leave errno.
 */
import koffi from 'koffi';
import { LibraryMissingError } from './errors.js';

export type Pointer = bigint;

/* libbpf_print_level */
export const LIBBPF_WARN = 0;
export const LIBBPF_INFO = 1;
export const LIBBPF_DEBUG = 2;

/* enum bpf_tc_attach_point */
export const BPF_TC_INGRESS = 1;
export const BPF_TC_EGRESS = 2;
export const BPF_TC_F_REPLACE = 1;

/* XDP flags (linux/if_link.h) */
export const XDP_FLAGS_UPDATE_IF_NOEXIST = 1;
export const XDP_FLAGS_SKB_MODE = 2;
export const XDP_FLAGS_DRV_MODE = 4;
export const XDP_FLAGS_REPLACE = 16;

/* enum bpf_map_type (subset) */
export const BPF_MAP_TYPE_HASH = 1;
export const BPF_MAP_TYPE_ARRAY = 2;
export const BPF_MAP_TYPE_PERCPU_HASH = 5;
export const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
export const BPF_MAP_TYPE_LPM_TRIE = 11;

/* map update flags */
export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

/* Struct layouts of libbpf 1.1 on 64-bit: koffi computes offsets and the trailing padding. */
const ObjectOpenOpts = koffi.struct('fbpf_bpf_object_open_opts', {
  sz: 'size_t',
  object_name: 'const char *',
  relaxed_maps: 'bool',
  pin_root_path: 'const char *',
  attach_prog_fd_stub: 'uint32_t',
  kconfig: 'const char *',
  btf_custom_path: 'const char *',
  kernel_log_buf: 'void *',
  kernel_log_size: 'size_t',
  kernel_log_level: 'uint32_t',
});
const TcHook = koffi.struct('fbpf_bpf_tc_hook', {
  sz: 'size_t',
  ifindex: 'int',
  attach_point: 'int',
  parent: 'uint32_t',
});
const TcOpts = koffi.struct('fbpf_bpf_tc_opts', {
  sz: 'size_t',
  prog_fd: 'int',
  flags: 'uint32_t',
  prog_id: 'uint32_t',
  handle: 'uint32_t',
  priority: 'uint32_t',
});
const XdpAttachOpts = koffi.struct('fbpf_bpf_xdp_attach_opts', {
  sz: 'size_t',
  old_prog_fd: 'int',
});
const XdpQueryOpts = koffi.struct('fbpf_bpf_xdp_query_opts', {
  sz: 'size_t',
  prog_id: 'uint32_t',
  drv_prog_id: 'uint32_t',
  hw_prog_id: 'uint32_t',
  skb_prog_id: 'uint32_t',
  attach_mode: 'uint8_t',
});
const MapBatchOpts = koffi.struct('fbpf_bpf_map_batch_opts', {
  sz: 'size_t',
  elem_flags: 'uint64_t',
  flags: 'uint64_t',
});
const TestRunOpts = koffi.struct('fbpf_bpf_test_run_opts', {
  sz: 'size_t',
  data_in: 'void *',
  data_out: 'void *',
  data_size_in: 'uint32_t',
  data_size_out: 'uint32_t',
  ctx_in: 'void *',
  ctx_out: 'void *',
  ctx_size_in: 'uint32_t',
  ctx_size_out: 'uint32_t',
  retval: 'uint32_t',
  repeat: 'int',
  duration: 'uint32_t',
  flags: 'uint32_t',
  cpu: 'uint32_t',
  batch_size: 'uint32_t',
});
const PrintFn = koffi.proto('int fbpf_libbpf_print_fn(int level, void *fmt, void *ap)');

export const structSizes = {
  objectOpenOpts: koffi.sizeof(ObjectOpenOpts),
  tcHook: koffi.sizeof(TcHook),
  tcOpts: koffi.sizeof(TcOpts),
  xdpAttachOpts: koffi.sizeof(XdpAttachOpts),
  xdpQueryOpts: koffi.sizeof(XdpQueryOpts),
  mapBatchOpts: koffi.sizeof(MapBatchOpts),
  testRunOpts: koffi.sizeof(TestRunOpts),
} as const;

export interface TcHookArg { sz: number; ifindex: number; attach_point: number; parent: number }
export interface TcOptsArg { sz: number; prog_fd: number; flags: number; prog_id: number; handle: number; priority: number }
export interface XdpQueryArg {
  sz: number; prog_id: number; drv_prog_id: number; hw_prog_id: number; skb_prog_id: number; attach_mode: number;
}
export interface TestRunArg {
  sz: number;
  data_in: Buffer | null;
  data_out: Buffer | null;
  data_size_in: number;
  data_size_out: number;
  ctx_in: Buffer | null;
  ctx_out: Buffer | null;
  ctx_size_in: number;
  ctx_size_out: number;
  retval: number;
  repeat: number;
  duration: number;
  flags: number;
  cpu: number;
  batch_size: number;
}
export interface ObjectOpenOptsArg {
  sz: number;
  object_name: string | null;
  relaxed_maps: boolean;
  pin_root_path: string | null;
  attach_prog_fd_stub: number;
  kconfig: string | null;
  btf_custom_path: string | null;
  kernel_log_buf: Buffer | null;
  kernel_log_size: number;
  kernel_log_level: number;
}

/** The typed surface of libbpf (and the few libc calls the loader needs). */
export interface Libbpf {
  libbpf_set_print(fn: Pointer | null): Pointer | null;
  libbpf_num_possible_cpus(): number;
  libbpf_strerror(err: number, buf: Buffer, size: number): number;
  bpf_object__open_file(path: string, opts: ObjectOpenOptsArg): Pointer | null;
  bpf_object__load(obj: Pointer): number;
  bpf_object__close(obj: Pointer): void;
  bpf_object__find_program_by_name(obj: Pointer, name: string): Pointer | null;
  bpf_object__find_map_by_name(obj: Pointer, name: string): Pointer | null;
  bpf_object__next_program(obj: Pointer, prev: Pointer | null): Pointer | null;
  bpf_object__next_map(obj: Pointer, prev: Pointer | null): Pointer | null;
  bpf_program__name(prog: Pointer): string;
  bpf_program__section_name(prog: Pointer): string;
  bpf_program__fd(prog: Pointer): number;
  bpf_program__insn_cnt(prog: Pointer): number;
  bpf_map__name(map: Pointer): string;
  bpf_map__fd(map: Pointer): number;
  bpf_map__type(map: Pointer): number;
  bpf_map__key_size(map: Pointer): number;
  bpf_map__value_size(map: Pointer): number;
  bpf_map__max_entries(map: Pointer): number;
  bpf_map__set_max_entries(map: Pointer, n: number): number;
  bpf_map__set_pin_path(map: Pointer, path: string | null): number;
  bpf_map__pin_path(map: Pointer): string | null;
  bpf_map__is_pinned(map: Pointer): boolean;
  bpf_map__is_internal(map: Pointer): boolean;
  bpf_map__reuse_fd(map: Pointer, fd: number): number;
  bpf_obj_get(path: string): number;
  bpf_obj_pin(fd: number, path: string): number;
  bpf_obj_get_info_by_fd(fd: number, info: Buffer, len: Uint32Array): number;
  bpf_prog_get_fd_by_id(id: number): number;
  bpf_map_get_fd_by_id(id: number): number;
  bpf_prog_get_next_id(start: number, next: Uint32Array): number;
  bpf_map_update_elem(fd: number, key: Buffer, value: Buffer, flags: bigint): number;
  bpf_map_lookup_elem(fd: number, key: Buffer, value: Buffer): number;
  bpf_map_delete_elem(fd: number, key: Buffer): number;
  bpf_map_get_next_key(fd: number, key: Buffer | null, next: Buffer): number;
  bpf_map_update_batch(fd: number, keys: Buffer, values: Buffer, count: Uint32Array, opts: Buffer): number;
  bpf_map_lookup_batch(fd: number, inBatch: Buffer | null, outBatch: Buffer, keys: Buffer, values: Buffer,
    count: Uint32Array, opts: Buffer): number;
  bpf_map_delete_batch(fd: number, keys: Buffer, count: Uint32Array, opts: Buffer): number;
  bpf_tc_hook_create(hook: TcHookArg): number;
  bpf_tc_hook_destroy(hook: TcHookArg): number;
  bpf_tc_attach(hook: TcHookArg, opts: TcOptsArg): number;
  bpf_tc_detach(hook: TcHookArg, opts: TcOptsArg): number;
  bpf_tc_query(hook: TcHookArg, opts: TcOptsArg): number;
  bpf_xdp_attach(ifindex: number, fd: number, flags: number, opts: { sz: number; old_prog_fd: number } | null): number;
  bpf_xdp_detach(ifindex: number, flags: number, opts: { sz: number; old_prog_fd: number } | null): number;
  bpf_xdp_query(ifindex: number, flags: number, opts: XdpQueryArg): number;
  bpf_prog_test_run_opts(fd: number, opts: TestRunArg): number;
  /** BPF_STATS_RUN_TIME (0): the kernel counts every program's run time while the returned fd is open. */
  bpf_enable_stats(type: number): number;
  close(fd: number): number;
  if_nametoindex(name: string): number;
  vsnprintf(buf: Buffer, size: number, fmt: Pointer, ap: Pointer | Buffer): number;
  setns(fd: number, nstype: number): number;
  unshare(flags: number): number;
  socket(domain: number, type: number, protocol: number): number;
  ioctl(fd: number, request: number, arg: Buffer): number;
  errno(): number;
  register(fn: (level: number, fmt: Pointer, ap: Pointer) => number): Pointer;
  view(ptr: Pointer, len: number): ArrayBuffer;
}

let bound: Libbpf | undefined;

/** Load a shared library; a missing one becomes LibraryMissingError carrying the remedy. */
export function loadLibrary(name: string, remedy: string): ReturnType<typeof koffi.load> {
  try {
    return koffi.load(name);
  } catch (err) {
    throw new LibraryMissingError(name, remedy, err);
  }
}

/** Bind libbpf.so.1 and libc once; throws LibraryMissingError with the package to install. */
export function libbpf(): Libbpf {
  if (bound) return bound;
  const lib = loadLibrary('libbpf.so.1', 'install libbpf1 (apt-get install libbpf1), or run scripts/setup.sh');
  const libc = loadLibrary('libc.so.6', 'this agent needs glibc (Debian/Ubuntu base image)');
  const f = (proto: string) => lib.func(proto);
  const c = (proto: string) => libc.func(proto);

  /* eslint-disable @typescript-eslint/no-unsafe-return -- koffi functions are untyped; the Libbpf interface types them */
  const raw = {
    libbpf_set_print: f('void *libbpf_set_print(fbpf_libbpf_print_fn *fn)'),
    libbpf_num_possible_cpus: f('int libbpf_num_possible_cpus(void)'),
    libbpf_strerror: f('int libbpf_strerror(int err, _Out_ uint8_t *buf, size_t size)'),
    bpf_object__open_file: f('void *bpf_object__open_file(const char *path, const fbpf_bpf_object_open_opts *opts)'),
    bpf_object__load: f('int bpf_object__load(void *obj)'),
    bpf_object__close: f('void bpf_object__close(void *obj)'),
    bpf_object__find_program_by_name: f('void *bpf_object__find_program_by_name(void *obj, const char *name)'),
    bpf_object__find_map_by_name: f('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
    bpf_object__next_program: f('void *bpf_object__next_program(void *obj, void *prev)'),
    bpf_object__next_map: f('void *bpf_object__next_map(void *obj, void *prev)'),
    bpf_program__name: f('const char *bpf_program__name(void *prog)'),
    bpf_program__section_name: f('const char *bpf_program__section_name(void *prog)'),
    bpf_program__fd: f('int bpf_program__fd(void *prog)'),
    bpf_program__insn_cnt: f('size_t bpf_program__insn_cnt(void *prog)'),
    bpf_map__name: f('const char *bpf_map__name(void *map)'),
    bpf_map__fd: f('int bpf_map__fd(void *map)'),
    bpf_map__type: f('int bpf_map__type(void *map)'),
    bpf_map__key_size: f('uint32_t bpf_map__key_size(void *map)'),
    bpf_map__value_size: f('uint32_t bpf_map__value_size(void *map)'),
    bpf_map__max_entries: f('uint32_t bpf_map__max_entries(void *map)'),
    bpf_map__set_max_entries: f('int bpf_map__set_max_entries(void *map, uint32_t n)'),
    bpf_map__set_pin_path: f('int bpf_map__set_pin_path(void *map, const char *path)'),
    bpf_map__pin_path: f('const char *bpf_map__pin_path(void *map)'),
    bpf_map__is_pinned: f('bool bpf_map__is_pinned(void *map)'),
    bpf_map__is_internal: f('bool bpf_map__is_internal(void *map)'),
    bpf_map__reuse_fd: f('int bpf_map__reuse_fd(void *map, int fd)'),
    bpf_obj_get: f('int bpf_obj_get(const char *path)'),
    bpf_obj_pin: f('int bpf_obj_pin(int fd, const char *path)'),
    bpf_obj_get_info_by_fd: f('int bpf_obj_get_info_by_fd(int fd, _Inout_ void *info, _Inout_ uint32_t *len)'),
    bpf_prog_get_fd_by_id: f('int bpf_prog_get_fd_by_id(uint32_t id)'),
    bpf_map_get_fd_by_id: f('int bpf_map_get_fd_by_id(uint32_t id)'),
    bpf_prog_get_next_id: f('int bpf_prog_get_next_id(uint32_t start, _Inout_ uint32_t *next)'),
    bpf_map_update_elem: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    bpf_map_lookup_elem: f('int bpf_map_lookup_elem(int fd, const void *key, _Inout_ void *value)'),
    bpf_map_delete_elem: f('int bpf_map_delete_elem(int fd, const void *key)'),
    bpf_map_get_next_key: f('int bpf_map_get_next_key(int fd, const void *key, _Inout_ void *next)'),
    bpf_map_update_batch: f('int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, const void *opts)'),
    bpf_map_lookup_batch: f('int bpf_map_lookup_batch(int fd, void *in_batch, _Inout_ void *out_batch, _Inout_ void *keys, _Inout_ void *values, _Inout_ uint32_t *count, const void *opts)'),
    bpf_map_delete_batch: f('int bpf_map_delete_batch(int fd, const void *keys, _Inout_ uint32_t *count, const void *opts)'),
    bpf_tc_hook_create: f('int bpf_tc_hook_create(fbpf_bpf_tc_hook *hook)'),
    bpf_tc_hook_destroy: f('int bpf_tc_hook_destroy(fbpf_bpf_tc_hook *hook)'),
    bpf_tc_attach: f('int bpf_tc_attach(const fbpf_bpf_tc_hook *hook, _Inout_ fbpf_bpf_tc_opts *opts)'),
    bpf_tc_detach: f('int bpf_tc_detach(const fbpf_bpf_tc_hook *hook, const fbpf_bpf_tc_opts *opts)'),
    bpf_tc_query: f('int bpf_tc_query(const fbpf_bpf_tc_hook *hook, _Inout_ fbpf_bpf_tc_opts *opts)'),
    bpf_xdp_attach: f('int bpf_xdp_attach(int ifindex, int fd, uint32_t flags, const fbpf_bpf_xdp_attach_opts *opts)'),
    bpf_xdp_detach: f('int bpf_xdp_detach(int ifindex, uint32_t flags, const fbpf_bpf_xdp_attach_opts *opts)'),
    bpf_xdp_query: f('int bpf_xdp_query(int ifindex, int flags, _Inout_ fbpf_bpf_xdp_query_opts *opts)'),
    bpf_prog_test_run_opts: f('int bpf_prog_test_run_opts(int fd, _Inout_ fbpf_bpf_test_run_opts *opts)'),
    bpf_enable_stats: f('int bpf_enable_stats(int type)'),
    close: c('int close(int fd)'),
    if_nametoindex: c('unsigned int if_nametoindex(const char *name)'),
    vsnprintf: c('int vsnprintf(_Out_ uint8_t *buf, size_t size, void *fmt, void *ap)'),
    setns: c('int setns(int fd, int nstype)'),
    unshare: c('int unshare(int flags)'),
    socket: c('int socket(int domain, int type, int protocol)'),
    ioctl: c('int ioctl(int fd, unsigned long request, _Inout_ uint8_t *arg)'),
  };
  bound = {
    ...(raw as unknown as Omit<Libbpf, 'errno' | 'register' | 'view'>),
    errno: () => koffi.errno(),
    register: (fn) => koffi.register(fn, koffi.pointer(PrintFn)) as Pointer,
    view: (ptr, len) => koffi.view(ptr, len),
  };
  return bound;
}
