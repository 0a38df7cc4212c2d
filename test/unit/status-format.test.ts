/**
 * `flannel-bpf status`, pure part: facts → report → screen / JSON, the
 * warnings, rates for --watch, and the command's argument handling.
 */
import test from 'ava';
import {
  buildReport, formatStatus, reportToJson, formatBytes, formatCount, formatAge, formatBitRate, formatPacketRate, table, TOP_PEERS,
  type StatusReport,
} from '../../src/cli/status-format.js';
import { parseStatusArgs, resolveDirs, DEFAULT_PIN_DIR, DEFAULT_STATE_DIR } from '../../src/cli/status.js';
import { hooksFor } from '../../src/loader/dataplane.js';
import { parseCidr, parseIPv4 } from '../../src/maps/addr.js';
import { CONFIG_FLAGS } from '../../src/maps/config.js';
import { facts, stateFile, zeroDrops, NOW } from './status-fixtures.js';

const codes = (r: StatusReport) => r.warnings.map((w) => w.code);

test('a healthy node: every fact of the header, programs, maps, peers sorted by traffic, no warnings', (t) => {
  const r = buildReport(facts());
  t.deepEqual(r.warnings, []);
  t.true(r.agent.running);
  t.true(r.agent.ready);
  t.is(r.agent.uptimeSeconds, 192);
  t.is(r.agent.lastSyncAgeSeconds, 170);
  t.deepEqual(r.node, { name: 'n1', leaseKey: '10.244.1.0-24', subnet: '10.244.1.0/24', network: '10.244.0.0/16', publicIp: '192.168.10.11', vtepMac: '0e:fb:00:00:00:01' });
  t.deepEqual(r.backend, { type: 'vxlan', vni: 1, port: 8472, directRouting: false, fastPath: false, podMtu: 1450, tunnelMtu: 1450 });
  t.is(r.uplink.name, 'eth0');
  t.is(r.decap.engine, 'kernel');
  const required = hooksFor({ engine: 'kernel', backend: 'vxlan' });
  t.deepEqual(r.programs.filter((p) => p.required).map((p) => p.hook), required);
  t.true(r.programs.filter((p) => p.required).every((p) => p.attached && p.progId !== null));
  t.deepEqual(r.programs.filter((p) => ['uplink-tc-ingress', 'dev-tc-egress'].includes(p.hook)).map((p) => [p.hook, p.interface, p.progId, p.attached]),
    [['uplink-tc-ingress', 'eth0', 101, true], ['dev-tc-egress', 'flannel-bpf', 102, true]]);
  t.deepEqual(r.programs.map((p) => p.hook), ['uplink-xdp', 'uplink-tc-ingress', 'uplink-tc-egress', 'dev-tc-egress', 'dev-tc-ingress'], 'every hook listed in JSON');
  t.deepEqual(r.maps.map((m) => [m.name, m.entries, m.capacity]), [['fbpf_peers', 2, 65536], ['fbpf_sources', 2, 65536], ['fbpf_peer_stats', 2, 65536]]);
  t.deepEqual(r.peers.list.map((p) => p.peer), ['10.244.3.0-24', '10.244.2.0-24'], 'busiest first');
  t.is(r.peers.list[1]!.txPackets, 7n);
  t.is(r.peers.list[0]!.rates, null);

  const screen = formatStatus(r);
  t.regex(screen, /^flannel-bpf status — node n1 \(lease 10\.244\.1\.0-24\) — 2026-11-26 10:00:00 UTC$/m);
  t.regex(screen, /^ {2}Agent {8}running, pid 4242, up 3m 12s — ready$/m);
  t.regex(screen, /^ {2}Lease sync {3}in sync, watching the store \(last change applied 2m 50s ago\)$/m);
  t.regex(screen, /^ {2}Lease store {2}etcd, connected for 3m 11s$/m);
  t.regex(screen, /^ {2}Backend {6}vxlan — VNI 1, port 8472, DirectRouting off$/m);
  t.regex(screen, /^ {2}MTU {10}pods 1450, tunnel 1450 \(uplink 1500 − 50\)$/m);
  t.regex(screen, /^ {2}Uplink {7}eth0 — ifindex 2, driver veth, MTU 1500, MAC 02:00:00:00:10:11, chosen by --iface eth0$/m);
  t.regex(screen, /^ {2}Decap {8}kernel \(requested auto\) — the kernel VXLAN device decapsulates/m);
  t.regex(screen, /^ {2}uplink-tc-ingress +eth0 \(2\) +fbpf_uplink_ingress +101 +attached$/m);
  const unused = r.programs.map((p) => p.hook).filter((h) => !required.includes(h));
  t.regex(screen, new RegExp(`^ {2}not used by vxlan/kernel: ${unused.join(', ')}$`, 'm'));
  t.regex(screen, /^ {2}fbpf_peers +lpm_trie +2 +65,536 +0\.003%$/m);
  t.regex(screen, /^PEERS — 2 programmed, 0 unreachable, 0 rejected$/m);
  t.regex(screen, /^ {2}PEER +SUBNET +PUBLIC IP +MODE +TX PKTS +TX BYTES +RX PKTS +RX BYTES$/m);
  t.regex(screen, /^ {2}10\.244\.3\.0-24 +10\.244\.3\.0\/24 +192\.168\.20\.13 +vxlan +1,000 +1\.4 MiB +900 +1\.2 MiB$/m);
  t.regex(screen, /^ {2}10\.244\.2\.0-24 +10\.244\.2\.0\/24 +192\.168\.10\.12 +vxlan +7 +588 B +7 +588 B$/m);
  t.regex(screen, /^DROPS\n {2}none$/m);
  t.regex(screen, /^WARNINGS\n {2}none$/m);
  t.notRegex(screen, /RATE/, 'no rate columns outside --watch');
});

test('the agent is down: said so, counters still shown, store state marked as last known, not ready', (t) => {
  const r = buildReport(facts({ agentRunning: false, agentSameNetns: null }));
  t.false(r.agent.running);
  t.false(r.agent.ready);
  t.true(r.agent.notReady.includes('agent is not running'));
  t.false(r.store.live);
  t.deepEqual(codes(r), ['agent_down']);
  t.regex(r.warnings[0]!.message, /last pid 4242/);
  const screen = formatStatus(r);
  t.regex(screen, /^ {2}Agent {8}DOWN \(last pid 4242\) — the dataplane keeps forwarding with the pinned maps; counters below are live$/m);
  t.regex(screen, /^ {2}Lease store {2}etcd, unknown while the agent is down \(last known: connected\)$/m);
  t.regex(screen, /^ {2}Lease sync {3}last change applied 2m 50s ago by the stopped agent; later lease changes are not applied$/m);
  t.regex(screen, /1,000 +1\.4 MiB +900 +1\.2 MiB/, 'counters from the pinned maps');
  t.regex(screen, /^ {2}! the agent is not running/m);
});

test('no state file: names unknown, peers shown by id, a warning saying which flag to pass', (t) => {
  const r = buildReport(facts({ state: null, agentRunning: false, agentSameNetns: null, subnetEnvMtu: null, subnetEnvExists: null }));
  t.deepEqual(codes(r), ['agent_down', 'no_state_file']);
  t.is(r.node.name, null);
  t.deepEqual(r.peers.list.map((p) => p.peer), [null, null]);
  t.is(r.store.kind, null);
  const screen = formatStatus(r);
  t.regex(screen, /^ {2}\? \(id 2\) +10\.244\.3\.0\/24/m);
  t.regex(screen, /Lease store {2}unknown \(no state file\)/);
  t.regex(r.warnings[1]!.remedy, /--node-dir/);
});

test('warnings: strict rp_filter on the uplink (all or the device), in this namespace only', (t) => {
  t.deepEqual(codes(buildReport(facts({ rpFilter: { all: 1, uplink: 0 } }))), ['rp_filter_strict']);
  const r = buildReport(facts({ rpFilter: { all: 0, uplink: 1 } }));
  t.deepEqual(codes(r), ['rp_filter_strict']);
  t.regex(r.warnings[0]!.message, /net\.ipv4\.conf\.eth0\.rp_filter=1/);
  t.deepEqual(codes(buildReport(facts({ rpFilter: { all: 1, uplink: 2 } }))), [], 'loose on the device wins (max of all and the device)');
  t.deepEqual(codes(buildReport(facts({ rpFilter: { all: 0, uplink: 0 } }))), []);
});

test('warnings: MTU mismatch between pods (subnet.env, cni0) and the tunnel', (t) => {
  const big = buildReport(facts({ subnetEnvMtu: 1500 }));
  t.deepEqual(codes(big), ['mtu_mismatch', 'mtu_mismatch']);
  t.regex(big.warnings[0]!.message, /pods get MTU 1500 \(subnet\.env\) but the tunnel carries at most 1450 \(uplink eth0 MTU 1500 − 50\)/);
  t.regex(big.warnings[1]!.message, /subnet\.env says MTU 1500 but the agent configured 1450/);
  const links = facts().links.map((l) => (l.name === 'cni0' ? { ...l, mtu: 1500 } : l));
  const cni = buildReport(facts({ links }));
  t.deepEqual(codes(cni), ['mtu_mismatch']);
  t.regex(cni.warnings[0]!.message, /cni0 has MTU 1500/);
  /* The uplink shrank under a running node: the tunnel now carries less than the pods send. */
  const shrunk = facts().links.map((l) => (l.name === 'eth0' ? { ...l, mtu: 1400 } : l));
  const r = buildReport(facts({ links: shrunk }));
  t.is(r.backend.tunnelMtu, 1350);
  t.true(codes(r).filter((c) => c === 'mtu_mismatch').length >= 2);
  /* host-gw has no encapsulation: pod MTU = uplink MTU is right. */
  const hg = facts();
  hg.config = { ...hg.config, backend: 'host-gw', decap: 'tc', mtu: 1500 };
  const hooks = hg.hooks.map((h) => (h.hook === 'uplink-tc-egress' ? { ...h, progId: 104, ours: true } : h));
  const hgr = buildReport({ ...hg, hooks, subnetEnvMtu: 1500, links: hg.links.filter((l) => l.name !== 'cni0') });
  t.deepEqual(codes(hgr), []);
  t.regex(formatStatus(hgr), /^ {2}MTU {10}pods 1500, uplink 1500 \(no encapsulation\)$/m);
  t.is(hgr.backend.tunnelMtu, 1500);
});

test('warnings: unreachable host-gw peers and rejected leases, each with its reason', (t) => {
  const r = buildReport(facts({
    state: stateFile({
      unreachable: [{ leaseKey: 'n3', subnet: '10.244.3.0/24', publicIp: '192.168.20.13', message: 'host-gw next hop 192.168.20.13 is not on the uplink\'s subnets' }],
      rejected: [{ leaseKey: 'n9', reason: 'overlaps_peer', message: 'lease "n9" (subnet 10.244.2.0/25) overlaps lease "n2"' }],
    }),
  }));
  t.deepEqual(codes(r), ['unreachable_peer', 'rejected_lease']);
  t.is(r.peers.unreachable, 1);
  t.is(r.peers.rejected, 1);
  t.regex(r.warnings[0]!.message, /peer n3 \(subnet 10\.244\.3\.0\/24, next hop 192\.168\.20\.13\) is unreachable with host-gw/);
  t.regex(r.warnings[1]!.message, /lease n9 rejected \(overlaps_peer\): .*overlaps lease "n2"/);
  t.deepEqual(r.leases.rejected.map((x) => x.reason), ['overlaps_peer']);
  t.regex(formatStatus(r), /^PEERS — 2 programmed, 1 unreachable, 1 rejected$/m);
});

test('warnings: a detached program (and a foreign one), not ready, with the hook named', (t) => {
  const hooks = facts().hooks.map((h) => (h.hook === 'dev-tc-egress' ? { ...h, progId: null, ours: false } : h.hook === 'uplink-tc-ingress' ? { ...h, progId: 999, ours: false } : h));
  const r = buildReport(facts({ hooks, programNames: new Map([[999, 'some_other_prog']]) }));
  t.deepEqual(codes(r), ['program_detached', 'program_detached']);
  t.false(r.agent.ready);
  t.deepEqual(r.agent.notReady, ['programs detached: uplink-tc-ingress, dev-tc-egress']);
  t.regex(r.warnings[0]!.message, /uplink-tc-ingress on eth0 \(program 999 some_other_prog is there instead\)/);
  const screen = formatStatus(r);
  t.regex(screen, /^ {2}dev-tc-egress +flannel-bpf \(3\) +- +- +DETACHED$/m);
  t.regex(screen, /^ {2}uplink-tc-ingress +eth0 \(2\) +some_other_prog +999 +FOREIGN PROGRAM$/m);
});

test('warnings: another network namespace than the agent\'s, or than the pinned uplink\'s', (t) => {
  const other = buildReport(facts({ agentSameNetns: false }));
  t.deepEqual(codes(other), ['wrong_netns']);
  t.regex(other.warnings[0]!.remedy, /nsenter --net=\/proc\/4242\/ns\/net flannel-bpf status/);
  t.regex(formatStatus(other), /unknown \(other netns\)/);
  const links = [{ ifindex: 2, name: 'ifb0', mtu: 1500, mac: 'be:61:94:3b:b3:7a' }];
  const mac = buildReport(facts({ agentRunning: false, agentSameNetns: null, links }));
  t.deepEqual(codes(mac), ['agent_down', 'wrong_netns']);
  t.regex(mac.warnings[1]!.message, /ifindex 2 in this network namespace is ifb0 \(be:61:94:3b:b3:7a\), not the uplink \(02:00:00:00:10:11\)/);
});

test('warnings: the store is not connected, the maps never synced, a map nearly full', (t) => {
  const r = buildReport(facts({ state: stateFile({ store: { kind: 'kube', state: 'disconnected', since: NOW.toISOString(), detail: 'ECONNREFUSED' }, lastSync: null }) }));
  t.deepEqual(codes(r), ['not_synced', 'store_not_connected']);
  t.regex(r.warnings[1]!.message, /the lease store \(kube\) is disconnected: ECONNREFUSED/);
  t.regex(formatStatus(r), /^ {2}Lease sync {3}never synced with the lease store$/m);
  const stale = buildReport(facts({ state: stateFile({ store: { kind: 'etcd', state: 'disconnected', since: NOW.toISOString() } }) }));
  t.regex(formatStatus(stale), /^ {2}Lease sync {3}last change applied 2m 50s ago; the store is disconnected, later changes are not seen$/m);
  t.false(r.agent.ready);
  const full = buildReport(facts({ capacity: { fbpf_peers: 2, fbpf_sources: 65536, fbpf_peer_stats: 65536 } }));
  t.deepEqual(codes(full), ['map_nearly_full']);
  t.regex(full.warnings[0]!.message, /fbpf_peers is 100% full \(2 of 2\)/);
});

test('--watch: rates from the previous sample; new peers start at zero; counter resets never go negative', (t) => {
  const first = buildReport(facts());
  const later = facts({
    now: new Date(NOW.getTime() + 2000),
    counters: new Map([
      [1, { txPackets: 17n, txBytes: 1588n, rxPackets: 7n, rxBytes: 588n }],
      [2, { txPackets: 0n, txBytes: 0n, rxPackets: 0n, rxBytes: 0n }],
      [3, { txPackets: 50n, txBytes: 5000n, rxPackets: 0n, rxBytes: 0n }],
    ]),
    peers: [...facts().peers, { subnet: parseCidr('10.244.4.0/24'), value: { mode: 'vxlan', vtepMac: '0e:fb:00:00:00:04', peerId: 3, publicIp: parseIPv4('192.168.20.14') } }],
  });
  const drops = zeroDrops();
  drops.unknown_source = { packets: 10n, bytes: 920n };
  later.drops = drops;
  const r = buildReport(later, { report: first, at: NOW });
  t.is(r.intervalSeconds, 2);
  const by = new Map(r.peers.list.map((p) => [p.peerId, p]));
  t.deepEqual(by.get(1)!.rates, { txPackets: 5, txBytes: 500, rxPackets: 0, rxBytes: 0 });
  t.deepEqual(by.get(2)!.rates, { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 }, 'a counter reset (id reused) gives 0, not a negative rate');
  t.deepEqual(by.get(3)!.rates, { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 }, 'a peer new in this sample has no rate yet');
  t.is(r.peers.list[0]!.peerId, 1, 'sorted by current rate in --watch');
  t.is(r.drops.find((d) => d.reason === 'unknown_source')!.rate, 5);
  const screen = formatStatus(r);
  t.regex(screen, /TX RATE +RX RATE$/m);
  t.regex(screen, /^ {2}10\.244\.2\.0-24 .* 5\.0 pkt\/s 4\.00 kbit\/s +0 pkt\/s 0 bit\/s$/m);
  t.regex(screen, /^ {2}unknown_source +10 +920 B +5\.0 pkt\/s +tunnel packet whose outer source IP is not a known peer$/m);
});

test('top peers: the busiest TOP_PEERS by default, every peer with --peers', (t) => {
  const n = TOP_PEERS + 5;
  const peers = Array.from({ length: n }, (_, i) => ({
    subnet: { addr: parseIPv4('10.244.0.0') + (i + 10) * 256, prefix: 24 },
    value: { mode: 'vxlan' as const, vtepMac: '0e:fb:00:00:01:00', peerId: i + 1, publicIp: parseIPv4('192.168.10.100') + i },
  }));
  const counters = new Map(peers.map((p, i) => [p.value.peerId, { txPackets: BigInt(i), txBytes: BigInt(i * 100), rxPackets: 0n, rxBytes: 0n }]));
  const r = buildReport(facts({ peers, counters, state: stateFile({ peers: [] }) }));
  /* etcd mode, peers not yet in the state file: named by their lease key (flannel's: the subnet). */
  const rows = (s: string) => s.split('\n').filter((l) => /^ {2}10\.244\.\d+\.0-24 /.test(l));
  const top = formatStatus(r);
  t.is(rows(top).length, TOP_PEERS);
  t.regex(top, new RegExp(`^PEERS — ${n} programmed, 0 unreachable, 0 rejected \\(the ${TOP_PEERS} busiest shown; --peers for all\\)$`, 'm'));
  t.true(rows(top)[0]!.startsWith(`  10.244.${n + 9}.0-24 `), 'the busiest first');
  t.is(rows(formatStatus(r, { allPeers: true })).length, n);
  t.is(r.peers.list.length, n, 'JSON always has every peer');
});

test('JSON: counters are exact integer literals, also above 2^53', (t) => {
  const big = 2n ** 60n + 7n;
  const r = buildReport(facts({ counters: new Map([[1, { txPackets: big, txBytes: 1n, rxPackets: 0n, rxBytes: 0n }]]) }));
  const text = reportToJson(r);
  t.regex(text, new RegExp(`"txPackets": ${big.toString()},`));
  t.notRegex(text, /u64:/);
  const parsed = JSON.parse(text) as { peers: { list: Array<{ txBytes: number }> } };
  t.is(parsed.peers.list.find((p) => p.txBytes === 1)?.txBytes, 1);
  t.false(reportToJson(r, false).includes('\n'), 'compact form for --watch --json (one document per line)');
});

test('number, byte, rate and age formatting', (t) => {
  t.is(formatCount(1234567n), '1,234,567');
  t.is(formatCount(999), '999');
  t.is(formatBytes(588n), '588 B');
  t.is(formatBytes(1536), '1.5 KiB');
  t.is(formatBytes(3n * 1024n ** 3n), '3.0 GiB');
  t.is(formatBitRate(125_000_000), '1.00 Gbit/s');
  t.is(formatBitRate(500), '4.00 kbit/s');
  t.is(formatPacketRate(0), '0 pkt/s');
  t.is(formatPacketRate(2500), '2.5 kpkt/s');
  t.is(formatAge(59.9), '59s');
  t.is(formatAge(170), '2m 50s');
  t.is(formatAge(3 * 3600 + 61), '3h 01m');
  t.is(formatAge(90000), '1d 01h');
  t.is(formatAge(null), '?');
  t.deepEqual(table([{ title: 'A' }, { title: 'N', right: true }], [['x', '1'], ['long', '100']]), ['  A       N', '  x       1', '  long  100']);
});

test('arguments: flags as the agent spells them, --node-dir is the state dir, errors name the flag', (t) => {
  t.deepEqual(parseStatusArgs(['--json', '-watch', '--peers', '--node-dir', '/x', '--bpffs-pin-dir=/sys/fs/bpf/p', '--interval=0.5']),
    { json: true, watch: true, peers: true, pinDir: '/sys/fs/bpf/p', stateDir: '/x', interval: 0.5, help: false });
  t.is(parseStatusArgs(['--state-dir=/y']).stateDir, '/y');
  t.false(parseStatusArgs(['--json=false']).json);
  t.true(parseStatusArgs(['-h']).help);
  t.throws(() => parseStatusArgs(['--nodes-dir=/x']), { message: /unknown flag --nodes-dir/ });
  t.throws(() => parseStatusArgs(['--node-dir']), { message: /--node-dir needs a value/ });
  t.throws(() => parseStatusArgs(['extra']), { message: /unexpected argument "extra"/ });
  t.throws(() => parseStatusArgs(['--interval=0']), { message: /--interval/ });
});

test('directories: flags, then FLANNELD_* variables, then defaults', (t) => {
  t.deepEqual(resolveDirs({ pinDir: null, stateDir: '/nonexistent-state' }, {}), { pinDir: DEFAULT_PIN_DIR, stateDir: '/nonexistent-state' });
  t.deepEqual(resolveDirs({ pinDir: null, stateDir: null }, { FLANNELD_STATE_DIR: '/s', FLANNELD_BPFFS_PIN_DIR: '/sys/fs/bpf/q' }), { pinDir: '/sys/fs/bpf/q', stateDir: '/s' });
  t.deepEqual(resolveDirs({ pinDir: '/p', stateDir: null }, { FLANNELD_BPFFS_PIN_DIR: '/sys/fs/bpf/q' }), { pinDir: '/p', stateDir: DEFAULT_STATE_DIR });
});

test('fast path on: the device and cni0 ingress hooks are required (attached, or DETACHED when missing), not "not needed"', (t) => {
  const base = facts();
  const hooks = [
    ...base.hooks.filter((h) => h.hook !== 'dev-tc-ingress'),
    { hook: 'dev-tc-ingress' as const, ifindex: 3, progId: 103, ours: true },
    { hook: 'cni-tc-ingress' as const, ifindex: 4, progId: null, ours: false },
  ];
  const r = buildReport(facts({ config: { ...base.config, decap: 'tc', flags: base.config.flags | CONFIG_FLAGS.fastPath, cniIfindex: 4 }, hooks }));
  const row = (h: string) => r.programs.find((p) => p.hook === h)!;
  t.true(row('dev-tc-ingress').required);
  t.true(row('cni-tc-ingress').required);
  const screen = formatStatus(r);
  t.regex(screen, /^ {2}dev-tc-ingress +flannel-bpf \(3\) +fbpf_dev_ingress +103 +attached$/m);
  t.regex(screen, /^ {2}cni-tc-ingress +cni0 \(4\) +- +- +DETACHED$/m);
  const off = buildReport(facts({ hooks }));
  t.false(off.programs.find((p) => p.hook === 'cni-tc-ingress')!.required, 'fast path off: cni0 is not ours to hook');
  const early = buildReport(facts({ config: { ...base.config, decap: 'tc', flags: base.config.flags | CONFIG_FLAGS.fastPath, cniIfindex: 0 }, hooks }));
  t.false(early.programs.find((p) => p.hook === 'cni-tc-ingress')!.required, 'cni0 just appeared, the agent has not attached yet: not (yet) required');
  t.deepEqual(early.warnings.map((w) => w.code), [], 'and no warning in that second');
});
