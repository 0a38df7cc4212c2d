/**
 * Bad packets against every receive engine: every truncation length from 0
 * to past the full header stack, with the original lengths and with lengths
 * rewritten to match the cut. Each gets its documented verdict and none is
 * ever decapsulated or redirected.
 *
 * Documented verdicts:
 *   shorter than Ethernet + IPv4 + UDP (42 bytes): not recognisable as a
 *     tunnel packet → passed to the stack, which discards malformed IP;
 *   from 42 bytes on (outer UDP header complete, our port, our address):
 *     dropped as `truncated` until the whole header stack is present.
 * Frames the kernel's test harness itself refuses to build (shorter than an
 * Ethernet header for XDP; shorter than Ethernet + IPv4 for TC, since 6.x)
 * are asserted to be refused (EINVAL): no program can ever see them.
 */
import test from 'ava';
import { Harness, NODE, PEER, TC_ACT_OK, TC_ACT_SHOT, XDP_DROP, XDP_PASS, testTopology } from '../helpers/bpf-harness.js';
import { tcpFrame, vxlanFrame, udpTunnelFrame } from '../helpers/packets.js';
import type { BackendType, DecapEngine } from '../../src/maps/config.js';
import { BpfSyscallError } from '../../src/loader/errors.js';

test.before(() => { testTopology(); });

const inner = tcpFrame({ src: '10.244.2.9', dst: '10.244.1.5', payloadLen: 40 }).subarray(14);
const IDENTIFIABLE = 14 + 20 + 8;

function fixLengths(f: Buffer): Buffer {
  const b = Buffer.from(f);
  if (b.length >= 14 + 4) b.writeUInt16BE(Math.max(0, b.length - 14), 16);
  if (b.length >= 14 + 20 + 6) b.writeUInt16BE(Math.max(0, b.length - 34), 38);
  return b;
}

const matrix: Array<{ backend: BackendType; engine: DecapEngine; frame: Buffer; stack: number }> = [
  { backend: 'vxlan', engine: 'tc', frame: vxlanFrame({ outerSrc: PEER.publicIp, outerDst: NODE.publicIp, innerEthDst: NODE.vtepMac }, inner), stack: 14 + 50 + 20 },
  { backend: 'vxlan', engine: 'kernel', frame: vxlanFrame({ outerSrc: PEER.publicIp, outerDst: NODE.publicIp, innerEthDst: NODE.vtepMac }, inner), stack: 14 + 50 + 20 },
  { backend: 'vxlan', engine: 'xdp', frame: vxlanFrame({ outerSrc: PEER.publicIp, outerDst: NODE.publicIp, innerEthDst: NODE.vtepMac }, inner), stack: 14 + 50 + 20 },
  { backend: 'udp', engine: 'tc', frame: udpTunnelFrame({ outerSrc: PEER.publicIp, outerDst: NODE.publicIp }, inner), stack: 14 + 28 + 20 },
  { backend: 'udp', engine: 'xdp', frame: udpTunnelFrame({ outerSrc: PEER.publicIp, outerDst: NODE.publicIp }, inner), stack: 14 + 28 + 20 },
];

for (const { backend, engine, frame, stack } of matrix) {
  for (const fixed of [false, true]) {
    test(`${backend}/${engine}: every truncation 0..${stack + 2} bytes${fixed ? ' (lengths rewritten to match)' : ''} gets its verdict, none is decapsulated`, (t) => {
      const h = new Harness({ backend, decap: engine }).peer(PEER, backend === 'vxlan' ? 'vxlan' : 'udp');
      t.teardown(() => h.close());
      const prog = engine === 'xdp' ? 'uplinkXdp' : 'uplinkIngress';
      const minLen = engine === 'xdp' ? 14 : 34;
      let refused = 0;
      let dropped = 0;
      let passed = 0;
      for (let len = 0; len <= stack + 2; len++) {
        if (len >= frame.length) break;
        const cut = fixed ? fixLengths(frame.subarray(0, len)) : Buffer.from(frame.subarray(0, len));
        if (len < minLen) {
          const err = t.throws(() => h.run(prog, cut), { instanceOf: BpfSyscallError }, `len ${len}`);
          t.is(err?.errno, 22, `len ${len}: the kernel refuses to build this frame (EINVAL)`);
          refused++;
          continue;
        }
        const r = h.run(prog, cut);
        if (len < IDENTIFIABLE) {
          t.is(r.retval, engine === 'xdp' ? XDP_PASS : TC_ACT_OK, `len ${len}: not recognisable → stack`);
          t.deepEqual(r.data, cut, `len ${len}: untouched`);
          passed++;
        } else {
          t.is(r.retval, engine === 'xdp' ? XDP_DROP : TC_ACT_SHOT, `len ${len}: dropped`);
          dropped++;
        }
      }
      t.deepEqual(h.nonZeroDrops(), dropped ? { truncated: dropped } : {}, 'every drop counted as truncated');
      t.is(h.stats(PEER.id).rxPackets, 0, 'nothing accepted');
      t.true(refused + passed + dropped > stack, 'every length tried');
      t.log(`${refused} refused by the kernel, ${passed} passed unrecognised, ${dropped} dropped as truncated`);
    });
  }
}

test('the full, untruncated frames of the matrix are accepted (the sweep above ends just short of them)', (t) => {
  for (const { backend, engine, frame } of matrix) {
    const h = new Harness({ backend, decap: engine }).peer(PEER, backend === 'vxlan' ? 'vxlan' : 'udp');
    const prog = engine === 'xdp' ? 'uplinkXdp' : 'uplinkIngress';
    const r = h.run(prog, frame);
    t.not(r.retval, engine === 'xdp' ? XDP_DROP : TC_ACT_SHOT, `${backend}/${engine}`);
    t.deepEqual(h.nonZeroDrops(), {}, `${backend}/${engine}`);
    h.close();
  }
});
