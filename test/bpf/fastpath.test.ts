/**
 * The conntrack-gated fast path through BPF_PROG_TEST_RUN: cni0 ingress
 * (pod → peer sent without the kernel's forwarding path) and the device's
 * ingress (delivery to a local pod through the bridge). Conntrack in this
 * private namespace tracks nothing, so eligible flows take the fast path;
 * the e2e tests (lab-kube-proxy-fastpath) cover tracked and NATed flows.
 */
import test from 'ava';
import { Harness, NODE, PEER, TC_ACT_OK, TC_ACT_REDIRECT, testTopology, CNI_MAC, POD_MAC } from '../helpers/bpf-harness.js';
import { tcpFrame, udpFrame, icmpFrame, vxlanFrame, parseEth, parseIPv4Packet, parseUdp, parseVxlan, withTtl } from '../helpers/packets.js';
import { parseIPv4 } from '../../src/maps/addr.js';

test.before(() => { testTopology(); });

const POD = '10.244.1.5';
const REMOTE = '10.244.2.9';

test('cni0 ingress: a TCP packet from a pod to a peer pod is encapsulated and sent from here', (t) => {
  const h = new Harness({ backend: 'vxlan', fastPath: true }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const pkt = tcpFrame({ src: POD, dst: REMOTE, ttl: 64, ethDst: CNI_MAC, ethSrc: POD_MAC });
  const r = h.run('cniIngress', pkt);
  t.is(r.retval, TC_ACT_REDIRECT);
  t.is(r.data.length, pkt.length + 50);
  t.is(parseEth(r.data).dst, PEER.mac);
  const inner = parseEth(parseVxlan(parseUdp(parseIPv4Packet(parseEth(r.data).payload).payload).payload).payload);
  t.deepEqual(inner.payload, withTtl(pkt.subarray(14), 63), 'one routing hop: TTL − 1');
  t.is(h.stats(PEER.id).txPackets, 1);
  t.is(h.fast().fast_tx, 1);
});

test('cni0 ingress: UDP too; ICMP, TTL ≤ 1 and non-peer destinations take the compat path', (t) => {
  const h = new Harness({ backend: 'vxlan', fastPath: true }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  t.is(h.run('cniIngress', udpFrame({ src: POD, dst: REMOTE })).retval, TC_ACT_REDIRECT);
  for (const f of [icmpFrame({ src: POD, dst: REMOTE }), tcpFrame({ src: POD, dst: REMOTE, ttl: 1 })]) {
    const r = h.run('cniIngress', f);
    t.is(r.retval, TC_ACT_OK);
    t.deepEqual(r.data, f);
  }
  for (const dst of ['10.96.0.10', '8.8.8.8', '10.244.1.7']) {
    const f = tcpFrame({ src: POD, dst });
    t.deepEqual(h.run('cniIngress', f).data, f, dst);
  }
  t.deepEqual(h.fast(), { fast_tx: 1, fast_rx: 0, ct_tracked: 0, not_eligible: 2, fast_rx_peer: 0 });
});

test('with --fast-path=off both programs leave everything to the stack', (t) => {
  const h = new Harness({ backend: 'vxlan', fastPath: false }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const out = tcpFrame({ src: POD, dst: REMOTE });
  t.is(h.run('cniIngress', out).retval, TC_ACT_OK);
  const inbound = tcpFrame({ src: REMOTE, dst: POD, ethDst: NODE.vtepMac });
  t.is(h.run('devIngress', inbound).retval, TC_ACT_OK);
  t.deepEqual(h.fast(), { fast_tx: 0, fast_rx: 0, ct_tracked: 0, not_eligible: 0, fast_rx_peer: 0 });
});

test('device ingress: a packet for a local pod goes straight to the bridge with the pod\'s MAC', (t) => {
  const h = new Harness({ backend: 'vxlan', fastPath: true }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const pkt = tcpFrame({ src: REMOTE, dst: POD, ttl: 63, ethDst: NODE.vtepMac, ethSrc: PEER.vtepMac });
  const r = h.run('devIngress', pkt);
  t.is(r.retval, TC_ACT_REDIRECT);
  t.is(parseEth(r.data).dst, POD_MAC);
  t.is(parseEth(r.data).src, CNI_MAC);
  t.deepEqual(r.data.subarray(14), withTtl(pkt.subarray(14), 62));
  t.is(h.fast().fast_rx, 1);
});

test('device ingress: unknown pod MAC, the node\'s own addresses, ICMP and TTL 1 go up the stack untouched', (t) => {
  const h = new Harness({ backend: 'vxlan', fastPath: true }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const cases = [
    tcpFrame({ src: REMOTE, dst: '10.244.1.6' }), /* no neighbour entry yet */
    tcpFrame({ src: REMOTE, dst: '10.244.1.1' }), /* cni0's own address */
    icmpFrame({ src: REMOTE, dst: POD }),
    tcpFrame({ src: REMOTE, dst: POD, ttl: 1 }),
    tcpFrame({ src: REMOTE, dst: '10.244.7.1' }), /* not our subnet */
  ];
  for (const f of cases) {
    const r = h.run('devIngress', f);
    t.is(r.retval, TC_ACT_OK);
    t.deepEqual(r.data, f);
  }
  t.is(h.fast().fast_rx, 0);
  t.is(h.fast().not_eligible, 4, 'the four packets for our subnet are counted, the foreign one not');
});

test('device ingress: a known endpoint is delivered straight into the pod (bpf_redirect_peer), a stale one through the bridge', (t) => {
  const h = new Harness({ backend: 'vxlan', fastPath: true }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const pkt = tcpFrame({ src: REMOTE, dst: POD, ttl: 63, ethDst: NODE.vtepMac });
  h.maps.endpoints.set(parseIPv4(POD), { ifindex: testTopology().cniIfindex, mac: POD_MAC });
  const r = h.run('devIngress', pkt);
  t.is(r.retval, TC_ACT_REDIRECT);
  t.is(parseEth(r.data).dst, POD_MAC);
  t.is(h.fast().fast_rx_peer, 1, 'redirect_peer used');
  /* The pod's IP now belongs to another MAC than the endpoint entry says: never the old veth. */
  h.maps.endpoints.set(parseIPv4(POD), { ifindex: testTopology().cniIfindex, mac: '02:fb:00:00:c0:99' });
  t.is(h.run('devIngress', pkt).retval, TC_ACT_REDIRECT);
  t.is(h.fast().fast_rx_peer, 1, 'a stale endpoint is not used');
  t.is(h.fast().fast_rx, 2);
});

test('uplink ingress with the fast path built in: a decapsulated packet for a local pod goes straight to it', (t) => {
  const h = new Harness({ backend: 'vxlan', decap: 'tc', fastPath: true }).peer(PEER, 'vxlan');
  t.teardown(() => h.close());
  const inner = tcpFrame({ src: REMOTE, dst: POD, ttl: 63 }).subarray(14);
  const frame = vxlanFrame({ outerSrc: PEER.publicIp, outerDst: NODE.publicIp, innerEthSrc: PEER.vtepMac, innerEthDst: NODE.vtepMac }, inner);
  const r = h.run('uplinkIngressFast', frame);
  t.is(r.retval, TC_ACT_REDIRECT);
  t.is(parseEth(r.data).dst, POD_MAC, 'addressed to the pod, not to the flannel-bpf device');
  t.deepEqual(r.data.subarray(14), withTtl(inner, 62));
  t.is(h.fast().fast_rx, 1);
  t.is(h.stats(PEER.id).rxPackets, 1);
});
