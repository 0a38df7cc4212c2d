/**
 * Kernel interop in network namespaces: a flannel-bpf node against a node
 * programmed exactly as stock flanneld programs it (flannel.1 VXLAN device,
 * VNI 1, port 8472, nolearning, static neigh/FDB/onlink route; host-gw and
 * DirectRouting routes), and flannel's UDP wire format against hand-built
 * reference packets. Ping and a 50 MB TCP transfer with matching sha256 in
 * both directions; every decap engine carries the transfer (throughput is
 * logged).
 */
import test from 'ava';
import dgram from 'node:dgram';
import fs from 'node:fs';
import { NetnsSet, uniquePrefix } from '../helpers/netns.js';
import { twoNodes, stockVxlanNode, stockHostGwNode, bpfNode, podIp, type NodeDef } from '../helpers/bpf-node.js';
import { tcpTransfer, ping } from '../helpers/traffic.js';
import { ipv4, icmpEcho, parseIPv4Packet, IPPROTO_ICMP, l4ChecksumOk } from '../helpers/packets.js';
import type { Engine } from '../../src/loader/dataplane.js';

const MB50 = 50 * 1024 * 1024;
const pinRoot = `/sys/fs/bpf/${uniquePrefix('fbt-interop-')}`;
test.after.always(() => fs.rmSync(pinRoot, { recursive: true, force: true }));

const A = { ip: '192.168.60.1', subnet: '10.244.1.0/24', vtepMac: '0e:fb:60:00:00:01' };
const B = { ip: '192.168.60.2', subnet: '10.244.2.0/24', vtepMac: '0e:fb:60:00:00:02' };

async function bothWays(t: import('ava').ExecutionContext, set: NetnsSet, a: NodeDef, b: NodeDef, label: string): Promise<void> {
  t.deepEqual(ping(set, a.pod, podIp(b)), { sent: 3, received: 3 }, `${label}: ping A→B`);
  t.deepEqual(ping(set, b.pod, podIp(a)), { sent: 3, received: 3 }, `${label}: ping B→A`);
  const ab = await tcpTransfer(set, a.pod, b.pod, podIp(b), MB50);
  t.is(ab.bytes, MB50);
  t.is(ab.sha256Received, ab.sha256Sent, `${label}: A→B sha256 matches`);
  const ba = await tcpTransfer(set, b.pod, a.pod, podIp(a), MB50, 5202);
  t.is(ba.bytes, MB50);
  t.is(ba.sha256Received, ba.sha256Sent, `${label}: B→A sha256 matches`);
  t.log(`${label}: 50 MB A→B ${ab.gbps.toFixed(2)} Gbit/s, B→A ${ba.gbps.toFixed(2)} Gbit/s`);
}

for (const engine of ['kernel', 'xdp', 'tc'] as Engine[]) {
  test.serial(`vxlan (${engine} decap) ↔ stock flannel.1: ping and 50 MB TCP both ways, strict rp_filter`, async (t) => {
    const set = new NetnsSet('fbv');
    t.teardown(() => set.cleanup());
    const [a, b] = twoNodes(set, A, B, 1450);
    const node = bpfNode(set, a, { backend: 'vxlan', engine, peer: b, peerMode: 'vxlan', pinRoot, rpFilterStrict: true });
    t.teardown(() => node.close());
    stockVxlanNode(set, b, a);
    await bothWays(t, set, a, b, `vxlan/${engine}`);
    const tx = node.dp.maps.peerStats.get(1);
    t.true((tx?.txPackets ?? 0n) > 1000n && (tx?.rxPackets ?? 0n) > 1000n, 'per-peer counters moved both ways');
    t.deepEqual(Object.entries(node.dp.maps.readDrops()).filter(([, v]) => v.packets > 0n), [], 'nothing dropped');
  });
}

test.serial('vxlan DirectRouting ↔ stock flannel with DirectRouting: plain IP both ways, steered through flannel-bpf', async (t) => {
  const set = new NetnsSet('fbd');
  t.teardown(() => set.cleanup());
  const [a, b] = twoNodes(set, A, B, 1450);
  const node = bpfNode(set, a, { backend: 'vxlan', engine: 'kernel', peer: b, peerMode: 'direct', pinRoot, rpFilterStrict: true });
  t.teardown(() => node.close());
  stockVxlanNode(set, b, a, true);
  await bothWays(t, set, a, b, 'vxlan+DirectRouting');
  const s = node.dp.maps.peerStats.get(1);
  t.true((s?.rxPackets ?? 0n) > 1000n, 'plain packets from the peer subnet were steered and counted');
});

test.serial('host-gw ↔ stock host-gw routes: ping and 50 MB TCP both ways', async (t) => {
  const set = new NetnsSet('fbh');
  t.teardown(() => set.cleanup());
  const [a, b] = twoNodes(set, A, B, 1500);
  const node = bpfNode(set, a, { backend: 'host-gw', engine: 'tc', peer: b, peerMode: 'host-gw', pinRoot, rpFilterStrict: true });
  t.teardown(() => node.close());
  stockHostGwNode(set, b, a);
  await bothWays(t, set, a, b, 'host-gw');
  /* The first packet towards a peer whose MAC is not resolved must not be lost (uplink egress fix-up). */
  for (let i = 0; i < 3; i++) {
    set.exec(a.ns, 'ip neigh flush dev eth0');
    t.deepEqual(ping(set, a.pod, podIp(b), { count: 1 }), { sent: 1, received: 1 }, `first packet after a neighbour flush (${i})`);
  }
  t.is(node.dp.maps.readDrops().no_neigh.packets, 0n);
});

for (const engine of ['tc', 'xdp'] as Engine[]) {
  test.serial(`udp backend (${engine} decap), flannel-bpf ↔ flannel-bpf: ping and 50 MB TCP both ways`, async (t) => {
    const set = new NetnsSet('fbu');
    t.teardown(() => set.cleanup());
    const [a, b] = twoNodes(set, A, B, 1472);
    const na = bpfNode(set, a, { backend: 'udp', engine, peer: b, peerMode: 'udp', pinRoot });
    const nb = bpfNode(set, b, { backend: 'udp', engine, peer: a, peerMode: 'udp', pinRoot });
    t.teardown(() => { na.close(); nb.close(); });
    await bothWays(t, set, a, b, `udp/${engine}`);
  });

  test.serial(`udp backend (${engine} decap): flannel's wire format against hand-built reference packets`, async (t) => {
    const set = new NetnsSet('fbr');
    t.teardown(() => set.cleanup());
    const [a, b] = twoNodes(set, A, B, 1472);
    const node = bpfNode(set, a, { backend: 'udp', engine, peer: b, peerMode: 'udp', pinRoot });
    t.teardown(() => node.close());
    /* B plays stock flanneld's UDP proxy: a UDP socket on 8285 whose datagrams are raw IPv4 packets. */
    const fakePod = '10.244.2.77';
    const echo = ipv4({ src: fakePod, dst: podIp(a), proto: IPPROTO_ICMP, ttl: 64 }, icmpEcho({ id: 0x7788, seq: 9 }, Buffer.from('flannel-udp-reference')));
    const script = `
      const dgram = require('node:dgram');
      const s = dgram.createSocket('udp4');
      s.on('message', (m, r) => { process.stdout.write(JSON.stringify({ from: r.address, port: r.port, hex: m.toString('hex') }) + '\\n'); process.exit(0); });
      s.bind(8285, '${b.ip}', () => s.send(Buffer.from('${echo.toString('hex')}', 'hex'), 8285, '${a.ip}'));
      setTimeout(() => { process.stderr.write('no reply'); process.exit(1); }, 5000);`;
    const out = set.exec(b.ns, `${process.execPath} -e "${script.replace(/"/g, '\\"')}"`, { timeoutMs: 10_000 });
    const reply = JSON.parse(out.trim()) as { from: string; port: number; hex: string };
    t.is(reply.from, a.ip, 'the reply came from A\'s public IP');
    t.true(reply.port >= 49152, 'from a hashed source port');
    const ip = parseIPv4Packet(Buffer.from(reply.hex, 'hex'));
    t.is(ip.src, podIp(a));
    t.is(ip.dst, fakePod, 'payload = the inner IPv4 packet, no extra header');
    t.is(ip.proto, IPPROTO_ICMP);
    t.true(ip.checksumOk);
    t.true(l4ChecksumOk(Buffer.from(reply.hex, 'hex')));
    t.is(ip.payload[0], 0, 'ICMP echo reply');
    t.is(ip.payload.readUInt16BE(4), 0x7788);
    t.is(ip.payload.readUInt16BE(6), 9);
    t.is(Number(node.dp.maps.peerStats.get(1)?.rxPackets ?? 0n), 1);
    t.is(Number(node.dp.maps.peerStats.get(1)?.txPackets ?? 0n), 1);
    void dgram;
  });
}
