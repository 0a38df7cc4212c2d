/**
 * TC egress on the flannel-bpf device (bpf/dev_egress.c) through
 * BPF_PROG_TEST_RUN: exact output bytes for every mode, checksums, the
 * outer source port, TTL handling, counters, and what must stay untouched.
 */
import test from 'ava';
import {
  Harness, NODE, PEER, PEER_UNRESOLVED, PEER_ROUTED, TC_ACT_OK, TC_ACT_REDIRECT, skbCtx, testTopology,
} from '../helpers/bpf-harness.js';
import {
  tcpFrame, udpFrame, icmpFrame, eth, ipv4, parseEth, parseIPv4Packet, parseUdp, parseVxlan, l4ChecksumOk,
  withTtl, ETH_P_ARP, ETH_P_IPV6, IPPROTO_UDP,
} from '../helpers/packets.js';

const POD_A = '10.244.1.5';
const POD_B = '10.244.2.9';

test.before(() => { testTopology(); });

function inner(frame: Buffer): Buffer {
  return frame.subarray(14);
}

for (const [name, build] of [['tcp', tcpFrame], ['udp', udpFrame], ['icmp', icmpFrame]] as const) {
  test(`vxlan: ${name} packet to a resolved peer gets flannel's exact VXLAN encapsulation`, (t) => {
    const h = new Harness({ backend: 'vxlan' }).peer(PEER, 'vxlan');
    t.teardown(() => h.close());
    const pkt = build({ src: POD_A, dst: POD_B, ttl: 63, payloadLen: 200 });
    const r = h.run('devEgress', pkt);
    t.is(r.retval, TC_ACT_REDIRECT);
    t.is(r.data.length, pkt.length + 50, 'VXLAN adds exactly 50 bytes');

    const outerEth = parseEth(r.data);
    t.is(outerEth.dst, PEER.mac, 'outer dst MAC = the resolved neighbour of the peer');
    t.is(outerEth.src, NODE.uplinkMac, 'outer src MAC = the uplink');
    t.is(outerEth.type, 0x0800);

    const ip = parseIPv4Packet(outerEth.payload);
    t.is(ip.version, 4);
    t.is(ip.ihl, 5);
    t.is(ip.tos, 0);
    t.is(ip.totLen, pkt.length - 14 + 50);
    t.is(ip.fragOff, 0, 'DF clear, no fragment (as the kernel vxlan driver)');
    t.is(ip.ttl, 64);
    t.is(ip.proto, IPPROTO_UDP);
    t.true(ip.checksumOk, 'outer IPv4 checksum is valid');
    t.is(ip.src, NODE.publicIp);
    t.is(ip.dst, PEER.publicIp);

    const u = parseUdp(ip.payload);
    t.true(u.sport >= 49152 && u.sport <= 65535, `source port ${u.sport} in 49152..65535`);
    t.is(u.dport, 8472);
    t.is(u.len, pkt.length - 14 + 30);
    t.is(u.check, 0, 'outer UDP checksum is 0');

    const vx = parseVxlan(u.payload);
    t.is(vx.flags, 0x08000000, 'only the I flag');
    t.is(vx.vni, 1);
    t.is(vx.reserved, 0);

    const ie = parseEth(vx.payload);
    t.is(ie.dst, PEER.vtepMac, 'inner dst MAC = peer VtepMAC');
    t.is(ie.src, NODE.vtepMac, 'inner src MAC = our VtepMAC');
    t.is(ie.type, 0x0800);
    t.deepEqual(ie.payload, withTtl(inner(pkt), 62), 'inner packet = original with TTL - 1');
    const iip = parseIPv4Packet(ie.payload);
    t.true(iip.checksumOk, 'inner IPv4 checksum valid after the TTL change');
    t.true(l4ChecksumOk(ie.payload), 'inner L4 checksum valid');

    t.deepEqual(h.stats(PEER.id), { txPackets: 1, txBytes: pkt.length - 14, rxPackets: 0, rxBytes: 0 });
    t.deepEqual(h.nonZeroDrops(), {});
  });
}

test('vxlan: VNI and port come from the node config', (t) => {
  const h = new Harness({ backend: 'vxlan', vni: 4096, port: 4789 }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const r = h.run('devEgress', udpFrame({ src: POD_A, dst: POD_B }));
  const u = parseUdp(parseIPv4Packet(parseEth(r.data).payload).payload);
  t.is(u.dport, 4789);
  t.is(parseVxlan(u.payload).vni, 4096);
});

test('vxlan: the outer source port follows the inner flow (same flow → same port, flows spread)', (t) => {
  const h = new Harness({ backend: 'vxlan' }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const sport = (p: number) => parseUdp(parseIPv4Packet(parseEth(h.run('devEgress', tcpFrame({ src: POD_A, dst: POD_B, sport: p })).data).payload).payload).sport;
  t.is(sport(40001), sport(40001));
  const ports = new Set(Array.from({ length: 32 }, (_, i) => sport(41000 + i)));
  t.true(ports.size >= 24, `32 flows used ${ports.size} distinct source ports`);
  for (const p of ports) t.true(p >= 49152 && p <= 65535);
});

test('vxlan: ECN is copied to the outer header, CE becomes ECT(0) (RFC 6040)', (t) => {
  const h = new Harness({ backend: 'vxlan' }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const outerTos = (tos: number) => parseIPv4Packet(parseEth(h.run('devEgress', udpFrame({ src: POD_A, dst: POD_B, tos })).data).payload).tos;
  t.is(outerTos(0xb8 | 0x1), 0x1, 'ECT(1) copied, DSCP not');
  t.is(outerTos(0x2), 0x2);
  t.is(outerTos(0x3), 0x2, 'CE → ECT(0)');
});

test('vxlan: a peer behind a router gets the router\'s MAC as outer destination', (t) => {
  const h = new Harness({ backend: 'vxlan' }).peer(PEER_ROUTED, 'vxlan');
  t.teardown(() => h.close());
  const r = h.run('devEgress', tcpFrame({ src: POD_A, dst: '10.244.5.20' }));
  t.is(r.retval, TC_ACT_REDIRECT);
  t.is(parseEth(r.data).dst, PEER.mac, 'next hop is the router 192.168.50.2');
  t.is(parseIPv4Packet(parseEth(r.data).payload).dst, PEER_ROUTED.publicIp, 'outer destination is still the peer');
});

test('vxlan: an unresolved next hop is handed to bpf_redirect_neigh with the packet already encapsulated', (t) => {
  const h = new Harness({ backend: 'vxlan' }).peer(PEER_UNRESOLVED, 'vxlan');
  t.teardown(() => h.close());
  const pkt = tcpFrame({ src: POD_A, dst: '10.244.3.3' });
  const r = h.run('devEgress', pkt);
  t.is(r.retval, TC_ACT_REDIRECT);
  t.is(r.data.length, pkt.length + 50);
  t.deepEqual(r.data.subarray(0, 12), pkt.subarray(0, 12), 'outer MACs left for the neighbour layer');
  t.is(parseIPv4Packet(parseEth(r.data).payload).dst, PEER_UNRESOLVED.publicIp);
});

test('udp backend: flannel\'s UDP format (outer IPv4/UDP 8285, payload = inner IP packet)', (t) => {
  const h = new Harness({ backend: 'udp' }).peer(PEER, 'udp');
  t.teardown(() => h.close());
  const pkt = icmpFrame({ src: POD_A, dst: POD_B, ttl: 64, payloadLen: 100 });
  const r = h.run('devEgress', pkt);
  t.is(r.retval, TC_ACT_REDIRECT);
  t.is(r.data.length, pkt.length + 28);
  const e = parseEth(r.data);
  t.is(e.dst, PEER.mac);
  t.is(e.src, NODE.uplinkMac);
  const ip = parseIPv4Packet(e.payload);
  t.true(ip.checksumOk);
  t.is(ip.proto, IPPROTO_UDP);
  t.is(ip.src, NODE.publicIp);
  t.is(ip.dst, PEER.publicIp);
  t.is(ip.totLen, pkt.length - 14 + 28);
  const u = parseUdp(ip.payload);
  t.is(u.dport, 8285);
  t.true(u.sport >= 49152);
  t.is(u.len, pkt.length - 14 + 8);
  t.is(u.check, 0);
  t.deepEqual(u.payload, withTtl(inner(pkt), 63));
  t.true(l4ChecksumOk(u.payload));
  t.deepEqual(h.stats(PEER.id), { txPackets: 1, txBytes: pkt.length - 14, rxPackets: 0, rxBytes: 0 });
});

for (const mode of ['direct', 'host-gw'] as const) {
  test(`${mode}: resolved on-link peer → no encapsulation, MACs from the FIB, TTL - 1`, (t) => {
    const h = new Harness({ backend: mode === 'direct' ? 'vxlan' : 'host-gw' }).peer(PEER, mode);
    t.teardown(() => h.close());
    const pkt = tcpFrame({ src: POD_A, dst: POD_B, ttl: 10 });
    const r = h.run('devEgress', pkt);
    t.is(r.retval, TC_ACT_REDIRECT);
    t.is(r.data.length, pkt.length, 'no encapsulation');
    t.is(parseEth(r.data).dst, PEER.mac);
    t.is(parseEth(r.data).src, NODE.uplinkMac);
    t.deepEqual(r.data.subarray(14), withTtl(inner(pkt), 9));
    t.true(l4ChecksumOk(r.data.subarray(14)));
    t.is(h.stats(PEER.id).txPackets, 1);
  });
}

test('direct: an unresolved DirectRouting peer falls back to VXLAN (no first-packet loss)', (t) => {
  const h = new Harness({ backend: 'vxlan' }).peer(PEER_UNRESOLVED, 'direct');
  t.teardown(() => h.close());
  const pkt = tcpFrame({ src: POD_A, dst: '10.244.3.7' });
  const r = h.run('devEgress', pkt);
  t.is(r.retval, TC_ACT_REDIRECT);
  t.is(r.data.length, pkt.length + 50, 'sent as VXLAN');
  t.is(parseVxlan(parseUdp(parseIPv4Packet(parseEth(r.data).payload).payload).payload).vni, 1);
});

test('direct: a DirectRouting peer that turns out to be behind a gateway is sent as VXLAN, not to the router', (t) => {
  const h = new Harness({ backend: 'vxlan' }).peer(PEER_ROUTED, 'direct');
  t.teardown(() => h.close());
  const pkt = tcpFrame({ src: POD_A, dst: '10.244.5.7' });
  const r = h.run('devEgress', pkt);
  t.is(r.data.length, pkt.length + 50);
});

test('host-gw: an unresolved peer goes to bpf_redirect_neigh unencapsulated', (t) => {
  const h = new Harness({ backend: 'host-gw' }).peer(PEER_UNRESOLVED, 'host-gw');
  t.teardown(() => h.close());
  const pkt = tcpFrame({ src: POD_A, dst: '10.244.3.7', ttl: 5 });
  const r = h.run('devEgress', pkt);
  t.is(r.retval, TC_ACT_REDIRECT);
  t.deepEqual(r.data.subarray(14), withTtl(inner(pkt), 4));
});

for (const ttl of [0, 1]) {
  test(`TTL ${ttl}: not forwarded; handed back to the stack (ICMP time exceeded), counted`, (t) => {
    const h = new Harness({ backend: 'vxlan' }).peer(PEER, 'vxlan');
    t.teardown(() => h.close());
    const pkt = tcpFrame({ src: POD_A, dst: POD_B, ttl });
    const r = h.run('devEgress', pkt);
    t.is(r.retval, TC_ACT_REDIRECT, 'redirected to the device\'s own ingress');
    t.is(r.data.length, pkt.length, 'not encapsulated');
    t.deepEqual(r.data.subarray(14), pkt.subarray(14), 'IP packet untouched (the stack decrements and answers)');
    t.is(parseEth(r.data).dst, NODE.vtepMac, 'addressed to the device so the stack accepts it');
    t.is(h.drops().ttl_exceeded, 1);
    t.is(h.stats(PEER.id).txPackets, 0);
  });
}

test('destinations outside every peer subnet are untouched', (t) => {
  const h = new Harness({ backend: 'vxlan' }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  for (const dst of ['10.244.9.1', '8.8.8.8', NODE.publicIp, '10.244.1.7']) {
    const pkt = tcpFrame({ src: POD_A, dst });
    const r = h.run('devEgress', pkt);
    t.is(r.retval, TC_ACT_OK, dst);
    t.deepEqual(r.data, pkt, dst);
  }
  t.deepEqual(h.nonZeroDrops(), {});
  t.is(h.stats(PEER.id).txPackets, 0);
});

test('non-IPv4 frames are untouched (ARP, IPv6, IPv6 in an IPv4 ethertype)', (t) => {
  const h = new Harness({ backend: 'vxlan' }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const frames = [
    eth({ type: ETH_P_ARP }, Buffer.alloc(28, 1)),
    eth({ type: ETH_P_IPV6 }, Buffer.alloc(60, 0x60)),
    /* An IPv4 ethertype with fewer than 20 header bytes never reaches TC egress: the stack builds
       these frames, and BPF_PROG_TEST_RUN refuses to construct one (EINVAL, asserted in malformed.test.ts). */
    eth({ type: 0x0800 }, Buffer.concat([Buffer.from([0x65]), Buffer.alloc(30)])), /* version 6 in an IPv4 ethertype */
  ];
  for (const f of frames) {
    const r = h.run('devEgress', f);
    t.is(r.retval, TC_ACT_OK);
    t.deepEqual(r.data, f);
  }
});

test('an unconfigured node (empty config map) passes everything untouched', (t) => {
  const h = new Harness({ backend: 'vxlan', unconfigured: true }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const pkt = tcpFrame({ src: POD_A, dst: POD_B });
  const r = h.run('devEgress', pkt);
  t.is(r.retval, TC_ACT_OK);
  t.deepEqual(r.data, pkt);
});

test('counters: tx packets and bytes grow by exactly what was sent', (t) => {
  const h = new Harness({ backend: 'vxlan' }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  let bytes = 0;
  for (let i = 0; i < 25; i++) {
    const pkt = udpFrame({ src: POD_A, dst: POD_B, payloadLen: 10 + i * 37, sport: 30000 + i });
    bytes += pkt.length - 14;
    t.is(h.run('devEgress', pkt).retval, TC_ACT_REDIRECT);
  }
  t.deepEqual(h.stats(PEER.id), { txPackets: 25, txBytes: bytes, rxPackets: 0, rxBytes: 0 });
  t.deepEqual(h.nonZeroDrops(), {});
});

test('counters: a GSO packet counts every segment', (t) => {
  /* host-gw: BPF_PROG_TEST_RUN cannot give an skb a gso_type, which encapsulation needs (see below). */
  const h = new Harness({ backend: 'host-gw' }).peer(PEER, 'host-gw');
  t.teardown(() => h.close());
  const pkt = tcpFrame({ src: POD_A, dst: POD_B, payloadLen: 1400 });
  const r = h.run('devEgress', pkt, { ctx: skbCtx({ gsoSegs: 5, gsoSize: 1398 }) });
  t.is(r.retval, TC_ACT_REDIRECT);
  t.deepEqual(h.stats(PEER.id), { txPackets: 5, txBytes: pkt.length - 14, rxPackets: 0, rxBytes: 0 });
});

test('an skb the kernel refuses to grow is dropped and counted as encap_failed, not sent', (t) => {
  /* A GSO skb without a gso_type (only BPF_PROG_TEST_RUN makes these) makes bpf_skb_adjust_room fail. */
  const h = new Harness({ backend: 'vxlan' }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const pkt = tcpFrame({ src: POD_A, dst: POD_B, payloadLen: 1400 });
  const r = h.run('devEgress', pkt, { ctx: skbCtx({ gsoSegs: 5, gsoSize: 1398 }) });
  t.is(r.retval, 2 /* TC_ACT_SHOT */);
  t.is(h.drops().encap_failed, 1);
  t.is(h.stats(PEER.id).txPackets, 0);
});

test('IPv4 options on the inner packet are carried unchanged', (t) => {
  const h = new Harness({ backend: 'vxlan' }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const opts = Buffer.from([0x01, 0x01, 0x01, 0x00]); /* NOP NOP NOP EOL */
  const pkt = eth({}, ipv4({ src: POD_A, dst: POD_B, proto: 17, ttl: 30, options: opts }, Buffer.alloc(20, 9)));
  const r = h.run('devEgress', pkt);
  t.is(r.retval, TC_ACT_REDIRECT);
  const innerIp = parseEth(parseVxlan(parseUdp(parseIPv4Packet(parseEth(r.data).payload).payload).payload).payload).payload;
  t.deepEqual(innerIp, withTtl(inner(pkt), 29));
  t.true(parseIPv4Packet(innerIp).checksumOk);
});

test('host-gw uplink egress fix-up: a frame re-sent by the neighbour layer with the device MAC gets the next hop\'s MACs', (t) => {
  const h = new Harness({ backend: 'host-gw' }).peer(PEER, 'host-gw').peer(PEER_UNRESOLVED, 'host-gw');
  t.teardown(() => h.close());
  const uplink = skbCtx({ ifindex: testTopology().uplinkIfindex });
  const queued = tcpFrame({ src: POD_A, dst: POD_B, ethSrc: h.config.devMac, ethDst: h.config.devMac });
  const r = h.run('uplinkEgress', queued, { ctx: uplink });
  t.is(r.retval, TC_ACT_OK, 'already on the right interface');
  t.is(parseEth(r.data).dst, PEER.mac);
  t.is(parseEth(r.data).src, NODE.uplinkMac);
  t.deepEqual(r.data.subarray(12), queued.subarray(12), 'only the MACs change (TTL was lowered once already)');

  const ordinary = tcpFrame({ src: NODE.publicIp, dst: PEER.publicIp, ethSrc: NODE.uplinkMac, ethDst: PEER.mac });
  const r2 = h.run('uplinkEgress', ordinary, { ctx: uplink });
  t.is(r2.retval, TC_ACT_OK);
  t.deepEqual(r2.data, ordinary, 'the uplink\'s own traffic is untouched');

  const stuck = tcpFrame({ src: POD_A, dst: '10.244.3.3', ethSrc: h.config.devMac, ethDst: h.config.devMac });
  t.is(h.run('uplinkEgress', stuck, { ctx: uplink }).retval, 2 /* TC_ACT_SHOT */, 'still unresolved: dropped, not sent to a wrong MAC');
  t.deepEqual(h.nonZeroDrops(), { no_neigh: 1 });
});

test('other backends leave the uplink egress alone', (t) => {
  const h = new Harness({ backend: 'vxlan' }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const f = tcpFrame({ src: POD_A, dst: POD_B, ethSrc: h.config.devMac });
  const r = h.run('uplinkEgress', f);
  t.is(r.retval, TC_ACT_OK);
  t.deepEqual(r.data, f);
});
