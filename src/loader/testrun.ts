/**
 * BPF_PROG_TEST_RUN: run a loaded program on a packet without a device and
 * get its verdict, the packet it left behind and the run time.
 */
import { libbpf, structSizes } from './libbpf.js';
import { syscallError } from './errors.js';

export interface TestRunResult {
  retval: number;
  /** The packet as the program left it. */
  data: Buffer;
  /** Average run time per repetition, ns. */
  durationNs: number;
  /** The context after the run, when a ctx was given. */
  ctx?: Buffer;
}

export interface TestRunOptions {
  repeat?: number;
  /** struct __sk_buff / xdp_md to pass in (e.g. ifindex, mark). */
  ctx?: Buffer;
  /** Room for the packet to grow (encapsulation). */
  headroom?: number;
}

export function testRun(progFd: number, packet: Buffer, opts: TestRunOptions = {}): TestRunResult {
  /* The kernel decides what it accepts (≥ 14 bytes; for TC an IPv4 frame also needs its IP header). */
  const out = Buffer.alloc(packet.length + (opts.headroom ?? 256));
  const ctxOut = opts.ctx ? Buffer.alloc(opts.ctx.length) : null;
  const o = {
    sz: structSizes.testRunOpts,
    data_in: packet,
    data_out: out,
    data_size_in: packet.length,
    data_size_out: out.length,
    ctx_in: opts.ctx ?? null,
    ctx_out: ctxOut,
    ctx_size_in: opts.ctx?.length ?? 0,
    ctx_size_out: ctxOut?.length ?? 0,
    retval: 0,
    repeat: opts.repeat ?? 1,
    duration: 0,
    flags: 0,
    cpu: 0,
    batch_size: 0,
  };
  const rc = libbpf().bpf_prog_test_run_opts(progFd, o);
  if (rc < 0) throw syscallError(`BPF_PROG_TEST_RUN (fd ${progFd}, ${packet.length} bytes)`, rc);
  const result: TestRunResult = {
    retval: o.retval,
    data: Buffer.from(out.subarray(0, o.data_size_out)),
    durationNs: o.duration,
  };
  if (ctxOut) result.ctx = ctxOut;
  return result;
}
