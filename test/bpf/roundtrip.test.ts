/**
 * Encapsulation on one node → decapsulation on the other, through the real
 * programs of both: the receiving pod's node gets the original inner packet
 * back (TTL lowered by the sender's hop), for every backend and engine.
 */
import test from 'ava';
import { Harness, NODE, PEER, TC_ACT_REDIRECT, XDP_PASS, testTopology } from '../helpers/bpf-harness.js';
import { tcpFrame, udpFrame, icmpFrame, parseEth, withTtl, l4ChecksumOk, parseIPv4Packet } from '../helpers/packets.js';
import type { BackendType, DecapEngine } from '../../src/maps/config.js';

test.before(() => { testTopology(); });

const A = { publicIp: NODE.publicIp, vtepMac: NODE.vtepMac, subnet: NODE.subnet, id: 3 };
const B = PEER;

const cases: Array<{ backend: BackendType; engine: DecapEngine }> = [
  { backend: 'vxlan', engine: 'tc' },
  { backend: 'vxlan', engine: 'xdp' },
  { backend: 'udp', engine: 'tc' },
  { backend: 'udp', engine: 'xdp' },
];

for (const { backend, engine } of cases) {
  for (const [kind, build] of [['tcp', tcpFrame], ['udp', udpFrame], ['icmp', icmpFrame]] as const) {
    test(`${backend}: encap on A → ${engine} decap on B returns the original ${kind} packet`, (t) => {
      const sender = new Harness({ backend }).peer(B, backend === 'vxlan' ? 'vxlan' : 'udp');
      const receiver = new Harness({ backend, decap: engine, identity: { publicIp: B.publicIp, vtepMac: B.vtepMac } })
        .peer(A, backend === 'vxlan' ? 'vxlan' : 'udp');
      t.teardown(() => { sender.close(); receiver.close(); });

      const original = build({ src: '10.244.1.5', dst: '10.244.2.9', ttl: 64, payloadLen: 333 });
      const wire = sender.run('devEgress', original);
      t.is(wire.retval, TC_ACT_REDIRECT);

      const r = receiver.run(engine === 'xdp' ? 'uplinkXdp' : 'uplinkIngress', wire.data);
      const frame = engine === 'xdp' ? r.data.subarray(8) : r.data;
      t.is(r.retval, engine === 'xdp' ? XDP_PASS : TC_ACT_REDIRECT);
      const e = parseEth(frame);
      t.is(e.dst, receiver.config.devMac, 'addressed to the receiving device');
      if (backend === 'vxlan') t.is(e.src, A.vtepMac, 'from the sender\'s VtepMAC');
      t.deepEqual(e.payload, withTtl(original.subarray(14), 63), 'original inner packet, one hop later');
      t.true(parseIPv4Packet(e.payload).checksumOk);
      t.true(l4ChecksumOk(e.payload));
      t.is(sender.stats(B.id).txPackets, 1);
      t.is(receiver.stats(A.id).rxPackets, 1);
      t.is(sender.stats(B.id).txBytes, receiver.stats(A.id).rxBytes, 'tx bytes on A = rx bytes on B');
    });
  }
}
