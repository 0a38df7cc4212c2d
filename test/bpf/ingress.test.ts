/**
 * The receive side through BPF_PROG_TEST_RUN: the shared verdict core in
 * every engine (XDP on the uplink, TC ingress on the uplink as the tc engine,
 * and as the kernel engine's early check), decapsulation output, counters,
 * host-gw steering, and what must pass untouched.
 */
import test from 'ava';
import {
  Harness, NODE, PEER, PEER_ROUTED, PEER_UNRESOLVED, TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT, XDP_DROP, XDP_PASS, testTopology,
} from '../helpers/bpf-harness.js';
import {
  tcpFrame, udpFrame, icmpFrame, eth, ipv4, udp, vxlanFrame, udpTunnelFrame, parseEth, ETH_P_ARP, ETH_P_IPV6,
  IPPROTO_TCP, tcp,
} from '../helpers/packets.js';
import type { DropReason } from '../../src/maps/reasons.js';
import type { DecapEngine, BackendType } from '../../src/maps/config.js';

test.before(() => { testTopology(); });

const POD_REMOTE = '10.244.2.9';
const POD_LOCAL = '10.244.1.5';
const innerIp = (len = 100) => tcpFrame({ src: POD_REMOTE, dst: POD_LOCAL, payloadLen: len }).subarray(14);
const fromPeer = { outerSrc: PEER.publicIp, outerDst: NODE.publicIp, innerEthSrc: PEER.vtepMac, innerEthDst: NODE.vtepMac };
const XDP_META_MAGIC = 0xfb9f0001;

type Expect = { verdict: 'accept' } | { verdict: 'drop'; reason: DropReason } | { verdict: 'pass' };

interface Case { name: string; frame: Buffer; expect: Expect; backend?: BackendType }

const vxlanCases: Case[] = [
  { name: 'valid VXLAN from a peer', frame: vxlanFrame(fromPeer, innerIp()), expect: { verdict: 'accept' } },
  { name: 'valid VXLAN, inner UDP', frame: vxlanFrame(fromPeer, udpFrame({ src: POD_REMOTE, dst: POD_LOCAL }).subarray(14)), expect: { verdict: 'accept' } },
  { name: 'valid VXLAN, 1400-byte inner packet', frame: vxlanFrame(fromPeer, innerIp(1360)), expect: { verdict: 'accept' } },
  { name: 'unknown outer source', frame: vxlanFrame({ ...fromPeer, outerSrc: '192.168.50.99' }, innerIp()), expect: { verdict: 'drop', reason: 'unknown_source' } },
  { name: 'unknown source with bad flags too (source is checked first)', frame: vxlanFrame({ ...fromPeer, outerSrc: '203.0.113.9', flags: 0 }, innerIp()), expect: { verdict: 'drop', reason: 'unknown_source' } },
  { name: 'wrong VNI', frame: vxlanFrame({ ...fromPeer, vni: 2 }, innerIp()), expect: { verdict: 'drop', reason: 'wrong_vni' } },
  { name: 'VNI 0', frame: vxlanFrame({ ...fromPeer, vni: 0 }, innerIp()), expect: { verdict: 'drop', reason: 'wrong_vni' } },
  { name: 'I flag missing', frame: vxlanFrame({ ...fromPeer, flags: 0 }, innerIp()), expect: { verdict: 'drop', reason: 'bad_flags' } },
  { name: 'extra flag bits (GBP G bit)', frame: vxlanFrame({ ...fromPeer, flags: 0x88000000 }, innerIp()), expect: { verdict: 'drop', reason: 'bad_flags' } },
  { name: 'reserved flag byte bits', frame: vxlanFrame({ ...fromPeer, flags: 0x08000001 }, innerIp()), expect: { verdict: 'drop', reason: 'bad_flags' } },
  { name: 'reserved low byte of the VNI word', frame: vxlanFrame({ ...fromPeer, reserved: 0x7f }, innerIp()), expect: { verdict: 'drop', reason: 'bad_flags' } },
  { name: 'outer IPv4 options', frame: vxlanFrame({ ...fromPeer, options: Buffer.from([1, 1, 1, 0]) }, innerIp()), expect: { verdict: 'drop', reason: 'ip_options' } },
  { name: 'first fragment (MF)', frame: vxlanFrame({ ...fromPeer, fragOff: 0x2000 }, innerIp()), expect: { verdict: 'drop', reason: 'fragment' } },
  { name: 'later fragment (offset ≠ 0) cannot be recognised', frame: vxlanFrame({ ...fromPeer, fragOff: 0x00b9 }, innerIp()), expect: { verdict: 'pass' } },
  { name: 'inner ARP', frame: (() => {
    const f = vxlanFrame(fromPeer, innerIp()); f.writeUInt16BE(ETH_P_ARP, 14 + 20 + 8 + 8 + 12); return f;
  })(), expect: { verdict: 'drop', reason: 'inner_not_ipv4' } },
  { name: 'inner IPv6 ethertype', frame: (() => {
    const f = vxlanFrame(fromPeer, innerIp()); f.writeUInt16BE(ETH_P_IPV6, 14 + 20 + 8 + 8 + 12); return f;
  })(), expect: { verdict: 'drop', reason: 'inner_not_ipv4' } },
  { name: 'inner version 6 behind an IPv4 ethertype', frame: (() => {
    const f = vxlanFrame(fromPeer, innerIp()); f[14 + 20 + 8 + 8 + 14] = 0x65; return f;
  })(), expect: { verdict: 'drop', reason: 'inner_not_ipv4' } },
  { name: 'inner destination MAC not our VtepMAC', frame: vxlanFrame({ ...fromPeer, innerEthDst: '0e:fb:00:00:00:99' }, innerIp()), expect: { verdict: 'drop', reason: 'inner_dst_mac' } },
  { name: 'inner broadcast destination MAC', frame: vxlanFrame({ ...fromPeer, innerEthDst: 'ff:ff:ff:ff:ff:ff' }, innerIp()), expect: { verdict: 'drop', reason: 'inner_dst_mac' } },
  { name: 'outer total length beyond the frame', frame: (() => {
    const f = vxlanFrame(fromPeer, innerIp()); f.writeUInt16BE(f.readUInt16BE(16) + 40, 16); return f;
  })(), expect: { verdict: 'drop', reason: 'truncated' } },
  { name: 'UDP length beyond the IP packet', frame: (() => {
    const f = vxlanFrame(fromPeer, innerIp()); f.writeUInt16BE(f.readUInt16BE(38) + 1, 38); return f;
  })(), expect: { verdict: 'drop', reason: 'truncated' } },
  { name: 'UDP length too small for VXLAN', frame: (() => {
    const f = vxlanFrame(fromPeer, innerIp()); f.writeUInt16BE(20, 38); return f;
  })(), expect: { verdict: 'drop', reason: 'truncated' } },
  { name: 'inner total length beyond the tunnel payload', frame: (() => {
    const f = vxlanFrame(fromPeer, innerIp()); const o = 14 + 20 + 8 + 8 + 14 + 2; f.writeUInt16BE(f.readUInt16BE(o) + 1, o); return f;
  })(), expect: { verdict: 'drop', reason: 'truncated' } },
  { name: 'other UDP port (4789)', frame: vxlanFrame({ ...fromPeer, dport: 4789 }, innerIp()), expect: { verdict: 'pass' } },
  { name: 'from a peer to another address of the node (the kernel socket listens on all)', frame: vxlanFrame({ ...fromPeer, outerDst: '192.168.50.77' }, innerIp()), expect: { verdict: 'accept' } },
  { name: 'unknown source to another address of the node', frame: vxlanFrame({ ...fromPeer, outerSrc: '203.0.113.1', outerDst: '172.16.9.9' }, innerIp()), expect: { verdict: 'drop', reason: 'unknown_source' } },
  { name: 'UDP 8472 addressed inside the cluster network (pod traffic) is not ours', frame: vxlanFrame({ ...fromPeer, outerSrc: '10.244.2.7', outerDst: '10.244.1.9' }, innerIp()), expect: { verdict: 'pass' } },
  { name: 'TCP to port 8472', frame: eth({}, ipv4({ src: PEER.publicIp, dst: NODE.publicIp, proto: IPPROTO_TCP },
    tcp({ sport: 1000, dport: 8472, src: PEER.publicIp, dst: NODE.publicIp }, Buffer.alloc(60)))), expect: { verdict: 'pass' } },
  { name: 'plain UDP to another port', frame: udpFrame({ src: PEER.publicIp, dst: NODE.publicIp, dport: 53 }), expect: { verdict: 'pass' } },
  { name: 'ARP', frame: eth({ type: ETH_P_ARP }, Buffer.alloc(28, 1)), expect: { verdict: 'pass' } },
  { name: 'IPv6', frame: eth({ type: ETH_P_IPV6 }, Buffer.alloc(60, 0x60)), expect: { verdict: 'pass' } },
];

const udpFrom = { outerSrc: PEER.publicIp, outerDst: NODE.publicIp };
const udpCases: Case[] = [
  { name: 'valid flannel UDP packet from a peer', frame: udpTunnelFrame(udpFrom, innerIp()), expect: { verdict: 'accept' } },
  { name: 'valid flannel UDP packet, ICMP inside', frame: udpTunnelFrame(udpFrom, icmpFrame({ src: POD_REMOTE, dst: POD_LOCAL }).subarray(14)), expect: { verdict: 'accept' } },
  { name: 'unknown source', frame: udpTunnelFrame({ ...udpFrom, outerSrc: '192.168.50.99' }, innerIp()), expect: { verdict: 'drop', reason: 'unknown_source' } },
  { name: 'inner not IPv4', frame: udpTunnelFrame(udpFrom, Buffer.concat([Buffer.from([0x60]), innerIp().subarray(1)])), expect: { verdict: 'drop', reason: 'inner_not_ipv4' } },
  { name: 'inner shorter than an IPv4 header', frame: udpTunnelFrame(udpFrom, innerIp().subarray(0, 12)), expect: { verdict: 'drop', reason: 'truncated' } },
  { name: 'inner total length beyond the payload', frame: (() => {
    const f = udpTunnelFrame(udpFrom, innerIp()); f.writeUInt16BE(f.readUInt16BE(44) + 1, 44); return f;
  })(), expect: { verdict: 'drop', reason: 'truncated' } },
  { name: 'outer options', frame: udpTunnelFrame({ ...udpFrom, options: Buffer.from([1, 1, 1, 0]) }, innerIp()), expect: { verdict: 'drop', reason: 'ip_options' } },
  { name: 'fragment', frame: udpTunnelFrame({ ...udpFrom, fragOff: 0x2000 }, innerIp()), expect: { verdict: 'drop', reason: 'fragment' } },
  { name: 'VXLAN port is not the UDP backend\'s', frame: vxlanFrame(fromPeer, innerIp()), expect: { verdict: 'pass' } },
];

function expectedInnerFrame(frame: Buffer, backend: BackendType, devMac: string): Buffer {
  if (backend === 'vxlan') return frame.subarray(14 + 36);
  const e = parseEth(frame);
  return Buffer.concat([eth({ dst: devMac, src: e.src }), frame.subarray(14 + 28)]);
}

function innerLen(frame: Buffer, backend: BackendType): number {
  const off = 14 + (backend === 'vxlan' ? 50 : 28);
  return frame.readUInt16BE(off + 2);
}

const engines: Array<{ backend: BackendType; engine: DecapEngine; cases: Case[] }> = [
  { backend: 'vxlan', engine: 'tc', cases: vxlanCases },
  { backend: 'vxlan', engine: 'kernel', cases: vxlanCases },
  { backend: 'vxlan', engine: 'xdp', cases: vxlanCases },
  { backend: 'udp', engine: 'tc', cases: udpCases },
  { backend: 'udp', engine: 'xdp', cases: udpCases },
];

for (const { backend, engine, cases } of engines) {
  for (const c of cases) {
    test(`${backend}/${engine}: ${c.name} → ${c.expect.verdict}${c.expect.verdict === 'drop' ? ` (${c.expect.reason})` : ''}`, (t) => {
      const h = new Harness({ backend, decap: engine }).peer(PEER, backend === 'vxlan' ? 'vxlan' : 'udp');
      t.teardown(() => h.close());
      const prog = engine === 'xdp' ? 'uplinkXdp' : 'uplinkIngress';
      const r = h.run(prog, c.frame);
      const ex = c.expect;
      if (ex.verdict === 'drop') {
        t.is(r.retval, engine === 'xdp' ? XDP_DROP : TC_ACT_SHOT);
        t.deepEqual(h.nonZeroDrops(), { [ex.reason]: 1 });
        t.is(h.dropBytes(ex.reason), c.frame.length, 'dropped bytes = frame length');
        t.is(h.stats(PEER.id).rxPackets, 0);
        return;
      }
      t.deepEqual(h.nonZeroDrops(), {}, 'no drop counted');
      if (ex.verdict === 'pass') {
        t.is(r.retval, engine === 'xdp' ? XDP_PASS : TC_ACT_OK);
        t.deepEqual(r.data, c.frame, 'untouched');
        t.is(h.stats(PEER.id).rxPackets, 0);
        return;
      }
      /* accept */
      const inner = expectedInnerFrame(c.frame, backend, h.config.devMac);
      if (engine === 'xdp') {
        t.is(r.retval, XDP_PASS);
        t.is(r.data.readUInt32LE(0), XDP_META_MAGIC, 'metadata for the TC hand-off');
        t.is(r.data.readUInt32LE(4), PEER.id);
        t.deepEqual(r.data.subarray(8), inner, 'outer headers stripped, inner frame intact');
      } else if (engine === 'kernel' && backend === 'vxlan') {
        t.is(r.retval, TC_ACT_OK, 'left to the VXLAN device, which decapsulates');
        t.deepEqual(r.data, c.frame);
      } else {
        t.is(r.retval, TC_ACT_REDIRECT, 'handed to the flannel-bpf device');
        t.deepEqual(r.data, inner, 'outer headers stripped, inner frame intact');
      }
      t.deepEqual(h.stats(PEER.id), { txPackets: 0, txBytes: 0, rxPackets: 1, rxBytes: innerLen(c.frame, backend) });
    });
  }
}

test('host-gw backend: tunnel-looking packets are not ours and pass', (t) => {
  const h = new Harness({ backend: 'host-gw' }).peer(PEER, 'host-gw');
  t.teardown(() => h.close());
  for (const f of [vxlanFrame(fromPeer, innerIp()), udpTunnelFrame(udpFrom, innerIp())]) {
    t.is(h.run('uplinkIngress', f).retval, TC_ACT_OK);
    t.is(h.run('uplinkXdp', f).retval, XDP_PASS);
  }
  t.deepEqual(h.nonZeroDrops(), {});
});

for (const backend of ['host-gw', 'vxlan'] as const) {
  test(`${backend} steering: a plain packet from a peer subnet is handed to the flannel-bpf device and counted`, (t) => {
    const h = new Harness({ backend, steer: true }).peer(PEER, backend === 'vxlan' ? 'direct' : 'host-gw');
    t.teardown(() => h.close());
    const pkt = tcpFrame({ src: POD_REMOTE, dst: POD_LOCAL, ethDst: NODE.uplinkMac, ethSrc: PEER.mac });
    const r = h.run('uplinkIngress', pkt);
    t.is(r.retval, TC_ACT_REDIRECT);
    t.is(parseEth(r.data).dst, h.config.devMac, 'addressed to the device so the stack accepts it there');
    t.deepEqual(r.data.subarray(6), pkt.subarray(6), 'nothing else changes');
    t.deepEqual(h.stats(PEER.id), { txPackets: 0, txBytes: 0, rxPackets: 1, rxBytes: pkt.length - 14 });

    const other = tcpFrame({ src: '172.16.0.4', dst: POD_LOCAL });
    const r2 = h.run('uplinkIngress', other);
    t.is(r2.retval, TC_ACT_OK, 'sources outside peer subnets pass');
    t.deepEqual(r2.data, other);
  });
}

test('steering is off unless the node config asks for it', (t) => {
  const h = new Harness({ backend: 'vxlan', steer: false }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const pkt = tcpFrame({ src: POD_REMOTE, dst: POD_LOCAL });
  const r = h.run('uplinkIngress', pkt);
  t.is(r.retval, TC_ACT_OK);
  t.deepEqual(r.data, pkt);
  t.is(h.stats(PEER.id).rxPackets, 0);
});

test('an unconfigured node passes every received packet untouched', (t) => {
  const h = new Harness({ backend: 'vxlan', decap: 'tc', unconfigured: true }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  for (const f of [vxlanFrame(fromPeer, innerIp()), vxlanFrame({ ...fromPeer, outerSrc: '1.2.3.4' }, innerIp())]) {
    t.is(h.run('uplinkIngress', f).retval, TC_ACT_OK);
    t.is(h.run('uplinkXdp', f).retval, XDP_PASS);
  }
  t.deepEqual(h.nonZeroDrops(), {});
});

test('rx counters grow by exactly what was received, per peer', (t) => {
  const h = new Harness({ backend: 'vxlan', decap: 'xdp' }).peer(PEER, 'vxlan')
    .peer({ subnet: '10.244.3.0/24', publicIp: '192.168.50.3', vtepMac: '0e:fb:00:00:00:03', id: 8 }, 'vxlan');
  t.teardown(() => h.close());
  let bytes = 0;
  for (let i = 0; i < 20; i++) {
    const ip = innerIp(10 + i * 50);
    bytes += ip.length;
    t.is(h.run('uplinkXdp', vxlanFrame(fromPeer, ip)).retval, XDP_PASS);
  }
  /* Packets XDP did not strip (XDP detached, or no metadata support) are stripped by the TC step. */
  for (let i = 0; i < 3; i++) {
    t.is(h.run('uplinkIngress', vxlanFrame({ ...fromPeer, outerSrc: '192.168.50.3' }, innerIp(100))).retval, TC_ACT_REDIRECT);
  }
  t.deepEqual(h.stats(PEER.id), { txPackets: 0, txBytes: 0, rxPackets: 20, rxBytes: bytes });
  t.deepEqual(h.stats(8), { txPackets: 0, txBytes: 0, rxPackets: 3, rxBytes: 3 * innerIp(100).length });
  t.deepEqual(h.nonZeroDrops(), {});
});

/*
 * --check-source-mac: a tunnel packet from a peer's IP must come from our
 * next hop towards that peer (an output FIB lookup from the uplink): the peer
 * itself when on-link, the gateway (here PEER, 192.168.50.2) for a routed one.
 */
const FORGER_MAC = '02:fb:00:00:66:66';
const srcMacCases: Array<{ name: string; peer: { publicIp: string; vtepMac: string; subnet: string; id: number }; ethSrc: string; ok: boolean }> = [
  { name: 'on-link peer, from its own MAC', peer: PEER, ethSrc: PEER.mac, ok: true },
  { name: 'on-link peer\'s IP forged by another host on the segment', peer: PEER, ethSrc: FORGER_MAC, ok: false },
  { name: 'routed peer, from the gateway\'s MAC', peer: PEER_ROUTED, ethSrc: PEER.mac, ok: true },
  { name: 'routed peer\'s IP forged on the segment (not from the gateway)', peer: PEER_ROUTED, ethSrc: FORGER_MAC, ok: false },
  { name: 'peer whose MAC is not resolved: nothing to compare, accepted (fail open)', peer: PEER_UNRESOLVED, ethSrc: FORGER_MAC, ok: true },
];

for (const { backend, engine } of engines) {
  for (const c of srcMacCases) {
    test(`${backend}/${engine} --check-source-mac: ${c.name} → ${c.ok ? 'accept' : 'drop (source_mac)'}`, (t) => {
      const h = new Harness({ backend, decap: engine, checkSourceMac: true }).peer(c.peer, backend === 'vxlan' ? 'vxlan' : 'udp');
      t.teardown(() => h.close());
      const o = { outerSrc: c.peer.publicIp, outerDst: NODE.publicIp, outerEthSrc: c.ethSrc, outerEthDst: NODE.uplinkMac, innerEthSrc: c.peer.vtepMac, innerEthDst: NODE.vtepMac };
      const frame = backend === 'vxlan' ? vxlanFrame(o, innerIp()) : udpTunnelFrame(o, innerIp());
      const r = h.run(engine === 'xdp' ? 'uplinkXdp' : 'uplinkIngress', frame);
      if (c.ok) {
        t.deepEqual(h.nonZeroDrops(), {});
        t.is(h.stats(c.peer.id).rxPackets, 1);
        t.not(r.retval, engine === 'xdp' ? XDP_DROP : TC_ACT_SHOT);
      } else {
        t.is(r.retval, engine === 'xdp' ? XDP_DROP : TC_ACT_SHOT);
        t.deepEqual(h.nonZeroDrops(), { source_mac: 1 });
        t.is(h.dropBytes('source_mac'), frame.length);
        t.is(h.stats(c.peer.id).rxPackets, 0);
      }
    });
  }
}

test('without --check-source-mac a forged source MAC is not looked at (the default)', (t) => {
  const h = new Harness({ backend: 'vxlan', decap: 'tc' }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const r = h.run('uplinkIngress', vxlanFrame({ ...fromPeer, outerEthSrc: FORGER_MAC }, innerIp()));
  t.is(r.retval, TC_ACT_REDIRECT);
  t.deepEqual(h.nonZeroDrops(), {});
});

test('--check-source-mac: the source check comes first (unknown source), the MAC check second, then the rest (bad flags)', (t) => {
  const h = new Harness({ backend: 'vxlan', decap: 'tc', checkSourceMac: true }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  h.run('uplinkIngress', vxlanFrame({ ...fromPeer, outerSrc: '192.168.50.99', outerEthSrc: FORGER_MAC }, innerIp()));
  h.run('uplinkIngress', vxlanFrame({ ...fromPeer, outerEthSrc: FORGER_MAC, flags: 0 }, innerIp()));
  h.run('uplinkIngress', vxlanFrame({ ...fromPeer, outerEthSrc: PEER.mac, flags: 0 }, innerIp()));
  t.deepEqual(h.nonZeroDrops(), { unknown_source: 1, source_mac: 1, bad_flags: 1 });
});
