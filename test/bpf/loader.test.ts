/**
 * The loader's lifecycle inside this process's private network namespace:
 * map operations (single and batch) on every map type we use, pinning and
 * reuse of pins, layout checks, TC attach / atomic replace / detach, XDP
 * native with generic fallback / atomic replace / detach, and typed errors.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Dataplane, defaultObjectDir, hookStates, detachAll, TC_HANDLE, TC_PRIORITY } from '../../src/loader/dataplane.js';
import { BpfObject, listProgramIds } from '../../src/loader/object.js';
import { attachTc, detachTc, queryTc } from '../../src/loader/tc.js';
import { attachXdp, detachXdp, queryXdp } from '../../src/loader/xdp.js';
import { loadLibrary } from '../../src/loader/libbpf.js';
import { LibraryMissingError, PinnedMapMismatchError, BpfSyscallError } from '../../src/loader/errors.js';
import { NodeMaps } from '../../src/maps/index.js';
import { MapLayoutMismatchError } from '../../src/maps/codec.js';
import { parseCidr, parseIPv4, formatCidr } from '../../src/maps/addr.js';
import { privateNetns, uniquePrefix } from '../helpers/netns.js';
import { testTopology } from '../helpers/bpf-harness.js';

const { sh } = privateNetns();
const topo = testTopology();
sh('ip link add fbbr0 type bridge; ip link set fbbr0 up');
const bridgeIfindex = Number(/^(\d+):/.exec(sh('ip -o link show dev fbbr0'))?.[1]);

/* Pins live under a unique directory on bpffs, removed in teardown. */
const pinRoot = `/sys/fs/bpf/${uniquePrefix('fbt-loader-')}`;
test.after.always(() => fs.rmSync(pinRoot, { recursive: true, force: true }));

test.serial('peers map (LPM trie): update, longest-prefix semantics, delete, key walk, batch update/lookup/delete', (t) => {
  const dp = Dataplane.load({ only: ['devEgress'] });
  t.teardown(() => dp.close());
  const peers = dp.maps.peers;
  const v = (id: number) => ({ mode: 'vxlan' as const, vtepMac: '0e:00:00:00:00:01', peerId: id, publicIp: parseIPv4('192.168.1.1') });
  peers.set(parseCidr('10.244.2.0/24'), v(1));
  t.deepEqual(peers.get(parseCidr('10.244.2.0/24')), v(1));
  t.is(peers.get(parseCidr('10.244.3.0/24')), null);
  t.is(peers.get({ addr: parseIPv4('10.244.2.77'), prefix: 32 })?.peerId, 1, 'a /32 lookup finds the covering /24 (LPM)');
  t.true(peers.delete(parseCidr('10.244.2.0/24')));
  t.false(peers.delete(parseCidr('10.244.2.0/24')), 'second delete reports absence');

  const many = Array.from({ length: 3000 }, (_, i) => [parseCidr(`10.${100 + (i >> 8)}.${i & 255}.0/24`), v(i + 1)] as const);
  peers.setMany(many);
  const all = peers.entries();
  t.is(all.length, 3000, 'batch lookup reads every entry');
  t.is(dp.maps.map('fbpf_peers').keys().length, 3000, 'key walk agrees');
  const byCidr = new Map(all.map(([k, val]) => [formatCidr(k), val.peerId]));
  t.is(byCidr.get('10.100.5.0/24'), 6);
  peers.deleteMany(many.slice(0, 1000).map(([k]) => k));
  t.is(peers.entries().length, 2000, 'batch delete removed exactly 1000');
});

test.serial('hash, array and per-CPU maps: values round-trip; per-CPU values are summed over CPUs', (t) => {
  const dp = Dataplane.load({ only: ['devEgress'] });
  t.teardown(() => dp.close());
  dp.maps.sources.setMany([[parseIPv4('192.168.1.2'), { peerId: 5 }], [parseIPv4('192.168.1.3'), { peerId: 6 }]]);
  t.deepEqual(dp.maps.sources.get(parseIPv4('192.168.1.3')), { peerId: 6 });
  t.is(dp.maps.sources.entries().length, 2);

  const stats = { txPackets: 1n, txBytes: 100n, rxPackets: 2n, rxBytes: 200n };
  dp.maps.peerStats.set(9, stats);
  const ncpu = dp.maps.map('fbpf_peer_stats').ncpus;
  t.true(ncpu >= 1);
  t.deepEqual(dp.maps.peerStats.get(9), { txPackets: BigInt(ncpu), txBytes: 100n * BigInt(ncpu), rxPackets: 2n * BigInt(ncpu), rxBytes: 200n * BigInt(ncpu) },
    'the same value was written on every CPU and reads back summed');
  t.deepEqual([...dp.maps.readPeerStats().keys()], [9], 'only non-zero slots are listed');
  t.is(dp.maps.readConfig(), null, 'an unwritten config reads as unconfigured');
});

test.serial('maps are pinned under the node directory and reused by the next load (agent restart)', (t) => {
  const dir = path.join(pinRoot, 'node-a');
  const first = Dataplane.load({ pinDir: dir });
  first.maps.peers.set(parseCidr('10.244.7.0/24'), { mode: 'host-gw', vtepMac: '00:00:00:00:00:00', peerId: 4, publicIp: parseIPv4('10.0.0.7') });
  first.close();
  t.deepEqual(fs.readdirSync(dir).sort(), ['fbpf_config', 'fbpf_drops', 'fbpf_endpoints', 'fbpf_fast_stats', 'fbpf_peer_stats', 'fbpf_peers', 'fbpf_sources']);

  const second = Dataplane.load({ pinDir: dir });
  t.teardown(() => second.close());
  t.is(second.maps.peers.get(parseCidr('10.244.7.0/24'))?.peerId, 4, 'the restarted loader sees the same map');

  const viaPins = NodeMaps.fromPinDir(dir);
  t.teardown(() => viaPins.close());
  t.is(viaPins.peers.entries().length, 1, 'status can read the pins while no agent runs');
});

test.serial('a pinned map of another size refuses to load with noMigrate (PinnedMapMismatchError names the pin)', (t) => {
  const dir = path.join(pinRoot, 'node-b');
  Dataplane.load({ pinDir: dir, maxPeers: 1024 }).close();
  const err = t.throws(() => Dataplane.load({ pinDir: dir, maxPeers: 2048, noMigrate: true }), { instanceOf: PinnedMapMismatchError });
  t.regex(err?.message ?? '', /fbpf_(peers|sources|peer_stats)/);
  t.regex(err?.remedy ?? '', /reset/);
});

test.serial('--max-peers change: the pinned maps are migrated (entries copied, old pins kept until finishMigrations)', (t) => {
  const dir = path.join(pinRoot, 'node-m');
  const first = Dataplane.load({ pinDir: dir, maxPeers: 1024 });
  const peer = (id: number) => ({ mode: 'vxlan' as const, vtepMac: '0e:00:00:00:00:07', peerId: id, publicIp: parseIPv4(`192.168.3.${id}`) });
  first.maps.peers.setMany(Array.from({ length: 50 }, (_, i) => [parseCidr(`10.244.${i + 1}.0/24`), peer(i + 1)] as const));
  first.maps.sources.set(parseIPv4('192.168.3.9'), { peerId: 9 });
  first.maps.peerStats.set(9, { txPackets: 5n, txBytes: 500n, rxPackets: 7n, rxBytes: 700n });
  const oldPeersId = first.maps.map('fbpf_peers').info.id;
  first.close();

  const second = Dataplane.load({ pinDir: dir, maxPeers: 4096 });
  t.teardown(() => second.close());
  const byMap = new Map(second.migrations.map((m) => [m.map, m]));
  t.deepEqual([...byMap.keys()].sort(), ['fbpf_peer_stats', 'fbpf_peers', 'fbpf_sources'], 'exactly the peer-sized maps changed');
  t.is(byMap.get('fbpf_peers')?.copied, 50);
  t.is(byMap.get('fbpf_peers')?.from.maxEntries, 1024);
  t.is(byMap.get('fbpf_peers')?.to.maxEntries, 4096);
  t.is(byMap.get('fbpf_sources')?.copied, 1);
  t.is(byMap.get('fbpf_peer_stats')?.copied, 1024, 'an array map carries every slot');
  for (const m of second.migrations) t.is(m.dropped, 0, `${m.map}: nothing dropped`);
  t.not(second.maps.map('fbpf_peers').info.id, oldPeersId, 'a new map');
  t.is(second.maps.map('fbpf_peers').maxEntries, 4096);
  t.is(second.maps.peers.entries().length, 50);
  t.deepEqual(second.maps.peers.get(parseCidr('10.244.17.0/24')), peer(17));
  t.deepEqual(second.maps.sources.get(parseIPv4('192.168.3.9')), { peerId: 9 });
  const ncpu = BigInt(second.maps.map('fbpf_peer_stats').ncpus);
  t.deepEqual(second.maps.peerStats.get(9), { txPackets: 5n * ncpu, txBytes: 500n * ncpu, rxPackets: 7n * ncpu, rxBytes: 700n * ncpu }, 'counters survive, on every CPU');
  t.true(fs.existsSync(path.join(dir, 'fbpf_peers__migrating')), 'the old pin stays until the new programs are attached');
  second.finishMigrations();
  t.deepEqual(fs.readdirSync(dir).filter((n) => n.includes('__')), [], 'old pins removed after the switch');

  /* Shrinking below the number of entries: what does not fit is counted, never silently lost. */
  second.close();
  const third = Dataplane.load({ pinDir: dir, maxPeers: 32 });
  t.teardown(() => third.close());
  const peers = third.migrations.find((m) => m.map === 'fbpf_peers');
  t.is(peers?.copied, 32);
  t.is(peers?.dropped, 18);
  t.regex(peers?.note ?? '', /not all entries fit/);
  third.finishMigrations();
});

test.serial('an older build\'s smaller value struct is migrated: old fields kept per CPU, new ones zero', (t) => {
  const dir = path.join(pinRoot, 'node-o');
  const old = BpfObject.load(path.resolve(defaultObjectDir(), '../test-bpf/old_stats_layout.o'), { pinDir: dir });
  const m = old.map('fbpf_peer_stats');
  t.is(m.valueSize, 16);
  const v = Buffer.alloc(m.valueBufSize);
  for (let c = 0; c < m.ncpus; c++) { v.writeBigUInt64LE(BigInt(10 + c), c * m.cpuStride); v.writeBigUInt64LE(1000n, c * m.cpuStride + 8); }
  const key = Buffer.alloc(4);
  key.writeUInt32LE(3);
  m.update(key, v);
  old.close();

  const dp = Dataplane.load({ pinDir: dir });
  t.teardown(() => dp.close());
  const mig = dp.migrations.find((x) => x.map === 'fbpf_peer_stats');
  t.is(mig?.from.valueSize, 16);
  t.is(mig?.to.valueSize, 32);
  t.is(mig?.dropped, 0);
  const ncpu = dp.maps.map('fbpf_peer_stats').ncpus;
  const sumTx = Array.from({ length: ncpu }, (_, c) => BigInt(10 + c)).reduce((a, b) => a + b, 0n);
  t.deepEqual(dp.maps.peerStats.get(3), { txPackets: sumTx, txBytes: 1000n * BigInt(ncpu), rxPackets: 0n, rxBytes: 0n });
  dp.finishMigrations();
});

test.serial('a map whose layout differs from the agent\'s codec refuses to start (MapLayoutMismatchError)', (t) => {
  const dir = path.join(pinRoot, 'node-c');
  const stale = BpfObject.load(path.resolve(defaultObjectDir(), '../test-bpf/bad_layout.o'), { pinDir: dir });
  stale.close();
  const err = t.throws(() => Dataplane.load({ pinDir: dir, noMigrate: true }), { instanceOf: PinnedMapMismatchError });
  t.regex(err?.message ?? '', /fbpf_peers/);
  /* Opening the node's pins directly (what `status` does) checks sizes against the codecs. */
  Dataplane.load({ pinDir: path.join(dir, 'rest') }).close();
  for (const m of ['fbpf_sources', 'fbpf_config', 'fbpf_peer_stats', 'fbpf_drops', 'fbpf_fast_stats', 'fbpf_endpoints']) {
    fs.renameSync(path.join(dir, 'rest', m), path.join(dir, m));
  }
  const err2 = t.throws(() => NodeMaps.fromPinDir(dir), { instanceOf: MapLayoutMismatchError });
  t.regex(err2?.message ?? '', /fbpf_peers: value size is 20 bytes in the loaded map but 16 in this agent/);
});

test.serial('a value that shrank is not guessed at: the migration reports the entries it could not carry', (t) => {
  const dir = path.join(pinRoot, 'node-s');
  const stale = BpfObject.load(path.resolve(defaultObjectDir(), '../test-bpf/bad_layout.o'), { pinDir: dir });
  const key = Buffer.alloc(8);
  key.writeUInt32LE(24, 0);
  key.writeUInt32BE(0x0af40500, 4);
  stale.map('fbpf_peers').update(key, Buffer.alloc(20, 1));
  stale.close();
  const dp = Dataplane.load({ pinDir: dir });
  t.teardown(() => dp.close());
  const mig = dp.migrations.find((m) => m.map === 'fbpf_peers');
  t.is(mig?.copied, 0);
  t.is(mig?.dropped, 1);
  t.regex(mig?.note ?? '', /value shrank \(20 → 16 bytes\)/);
  t.is(dp.maps.peers.entries().length, 0, 'the new map starts empty (the agent refills it from the leases before attaching)');
  dp.finishMigrations();
});

test.serial('TC: attach with explicit handle/priority, atomic replace in the same slot, detach', (t) => {
  const a = Dataplane.load({ only: ['devEgress'] });
  const b = Dataplane.load({ only: ['devEgress'] });
  t.teardown(() => { a.close(); b.close(); });
  const slot = { ifindex: topo.devIfindex, direction: 'egress' as const, handle: TC_HANDLE, priority: TC_PRIORITY };
  const idA = attachTc(slot, a.program('devEgress').fd);
  t.is(queryTc(slot), idA);
  t.is(idA, a.program('devEgress').info().id);
  t.throws(() => attachTc(slot, b.program('devEgress').fd, false), { instanceOf: BpfSyscallError }, 'occupied slot without replace');
  const idB = attachTc(slot, b.program('devEgress').fd);
  t.not(idB, idA);
  t.is(queryTc(slot), idB, 'replaced in place');
  t.regex(sh(`tc filter show dev fbd0 egress`), /handle 0xfb .*direct-action/s);
  t.true(detachTc(slot));
  t.is(queryTc(slot), null);
  t.false(detachTc(slot), 'detaching an empty slot reports it');
});

test.serial('XDP: native on veth, generic fallback where the driver has none, atomic replace, detach', (t) => {
  const a = Dataplane.load({ only: ['uplinkXdp'] });
  const b = Dataplane.load({ only: ['uplinkXdp'] });
  t.teardown(() => { a.close(); b.close(); });
  const fdA = a.program('uplinkXdp').fd;
  const fdB = b.program('uplinkXdp').fd;
  t.is(attachXdp(topo.uplinkIfindex, fdA), 'native', 'veth has native XDP');
  t.is(queryXdp(topo.uplinkIfindex).progId, a.program('uplinkXdp').info().id);
  t.is(attachXdp(topo.uplinkIfindex, fdB, { mode: 'native', replaceFd: fdA }), 'native');
  t.is(queryXdp(topo.uplinkIfindex).progId, b.program('uplinkXdp').info().id, 'replaced atomically');
  t.throws(() => attachXdp(topo.uplinkIfindex, fdA, { mode: 'native', replaceFd: fdA }), { instanceOf: BpfSyscallError },
    'replace refuses when the expected old program is not the attached one');
  detachXdp(topo.uplinkIfindex);
  t.is(queryXdp(topo.uplinkIfindex).progId, 0);

  t.is(attachXdp(bridgeIfindex, fdA), 'generic', 'a bridge has no native XDP: generic fallback');
  t.is(queryXdp(bridgeIfindex).mode, 'generic');
  detachXdp(bridgeIfindex);
  t.is(queryXdp(bridgeIfindex).progId, 0);
});

test.serial('Dataplane.attach per engine, engine switch, hook states, detachAll leaves nothing', (t) => {
  const dp = Dataplane.load();
  t.teardown(() => dp.close());
  const plan = { uplinkIfindex: topo.uplinkIfindex, devIfindex: topo.devIfindex, backend: 'vxlan' as const };
  const before = new Set(listProgramIds());
  let states = dp.attach({ ...plan, engine: 'xdp' });
  t.deepEqual(states.map((s) => [s.hook, s.ours]), [['uplink-xdp', true], ['uplink-tc-ingress', true], ['uplink-tc-egress', false],
    ['dev-tc-egress', true], ['dev-tc-ingress', false]]);
  t.is(states[0]?.mode, 'native');
  states = dp.attach({ ...plan, engine: 'xdp' });
  t.true(states.filter((s) => s.hook !== 'uplink-tc-egress' && s.hook !== 'dev-tc-ingress').every((s) => s.ours), 'repeating the attach is harmless (replace)');
  states = dp.attach({ ...plan, engine: 'kernel' });
  t.is(states[0]?.progId, null, 'switching to the kernel engine removes our XDP program');
  states = dp.attach({ ...plan, engine: 'tc', backend: 'host-gw' });
  t.is(states[4]?.progId, null, 'nothing on the device\'s ingress');
  t.true(states[2]?.ours, 'host-gw: the uplink egress fix-up is attached');
  states = dp.attach({ ...plan, engine: 'tc', backend: 'udp' });
  t.is(states[2]?.progId, null, 'and removed when the backend no longer needs it');
  detachAll(plan);
  t.true(hookStates(plan).every((s) => s.progId === null), 'detachAll removes every hook');
  /* Only programs this test loaded (other test files may load their own meanwhile). */
  const mine = new Set([...dp.programs.values()].map((p) => p.info().id));
  dp.close();
  const leaked = listProgramIds().filter((id) => !before.has(id) && mine.has(id));
  t.deepEqual(leaked, [], 'no program of ours left loaded after close + detach');
});

test('a missing shared library is a LibraryMissingError with the package to install', (t) => {
  const err = t.throws(() => loadLibrary('libbpf-does-not-exist.so.9', 'install libbpf1 (apt-get install libbpf1)'), { instanceOf: LibraryMissingError });
  t.regex(err?.message ?? '', /libbpf-does-not-exist\.so\.9/);
  t.regex(err?.remedy ?? '', /apt-get install libbpf1/);
});

test('without privileges, loading fails with BpfPermissionError naming CAP_BPF + CAP_NET_ADMIN', (t) => {
  const script = `import { BpfObject } from ${JSON.stringify(path.resolve('src/loader/object.ts'))};
try { BpfObject.load(${JSON.stringify(path.join(defaultObjectDir(), 'dev_egress.o'))}); console.log(JSON.stringify({ ok: true })); }
catch (e) { console.log(JSON.stringify({ name: e.name, errno: e.errno, remedy: e.remedy })); }`;
  const tmp = fs.mkdtempSync('/tmp/fbt-eperm-');
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const file = path.join(tmp, 'probe.mts');
  fs.writeFileSync(file, script);
  /* Still uid 0 (so the checkout stays readable wherever it is), but with every capability dropped. */
  const tsx = `file://${path.resolve('node_modules/tsx/dist/esm/index.mjs')}`;
  const out = execFileSync('setpriv', ['--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all', '--',
    process.execPath, '--import', tsx, file], { encoding: 'utf8', env: { ...process.env, TSX_TSCONFIG_PATH: path.resolve('tsconfig.json') } });
  const res = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { name?: string; errno?: number; remedy?: string };
  t.is(res.name, 'BpfPermissionError');
  t.is(res.errno, 1);
  t.regex(res.remedy ?? '', /root|CAP_BPF \+ CAP_NET_ADMIN/);
});

test('without CAP_SYS_ADMIN (CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN only): attach, recognise our programs by their pins after a restart, replace XDP atomically', (t) => {
  const ns = `${uniquePrefix('fbcap')}`;
  const dir = path.join(pinRoot, 'node-cap');
  execFileSync('ip', ['netns', 'add', ns]);
  t.teardown(() => { execFileSync('ip', ['netns', 'del', ns]); });
  execFileSync('ip', ['-n', ns, 'link', 'add', 'fbc0a', 'type', 'veth', 'peer', 'name', 'fbc0b']);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'fbc0a', 'up']);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'fbc0b', 'up']);
  fs.mkdirSync(dir, { recursive: true });
  const script = `import { Dataplane, hookStates } from ${JSON.stringify(path.resolve('src/loader/dataplane.ts'))};
import { programInfoById } from ${JSON.stringify(path.resolve('src/loader/object.ts'))};
import { libbpf } from ${JSON.stringify(path.resolve('src/loader/libbpf.ts'))};
const plan = { uplinkIfindex: libbpf().if_nametoindex('fbc0a'), devIfindex: libbpf().if_nametoindex('fbc0b') };
const seen = (hs) => hs.filter((h) => h.progId).map((h) => ({ hook: h.hook, id: h.progId, ours: h.ours }));
const dp = Dataplane.load({ pinDir: process.argv[2], only: ['devEgress', 'uplinkIngress', 'uplinkXdp'] });
const before = seen(hookStates(plan));
dp.attach({ ...plan, engine: 'xdp', backend: 'vxlan', xdpMode: 'generic' });
dp.pinPrograms();
const after = seen(hookStates(plan));
console.log(JSON.stringify({ before, after, byIdWorks: programInfoById(after[0].id) !== null }));
dp.close();`;
  const tmp = fs.mkdtempSync('/tmp/fbt-cap-');
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const file = path.join(tmp, 'probe.mts');
  fs.writeFileSync(file, script);
  const tsx = `file://${path.resolve('node_modules/tsx/dist/esm/index.mjs')}`;
  type Seen = Array<{ hook: string; id: number; ours: boolean }>;
  const run = () => JSON.parse(execFileSync('nsenter', [`--net=/run/netns/${ns}`, '--', 'setpriv', '--bounding-set=-all,+bpf,+perfmon,+net_admin,+net_raw', '--',
    process.execPath, '--import', tsx, file, dir], { encoding: 'utf8', env: { ...process.env, TSX_TSCONFIG_PATH: path.resolve('tsconfig.json') } }).trim().split('\n').pop() ?? '{}') as { before: Seen; after: Seen; byIdWorks: boolean };
  const first = run();
  t.false(first.byIdWorks, 'BPF_PROG_GET_FD_BY_ID is refused: the child really lacks CAP_SYS_ADMIN');
  t.deepEqual(first.before, []);
  t.deepEqual(first.after.map((h) => [h.hook, h.ours]), [['uplink-xdp', true], ['uplink-tc-ingress', true], ['dev-tc-egress', true]]);
  t.true(fs.readdirSync(dir).filter((n) => n.startsWith('prog_')).length === 3, 'the programs are pinned');

  const second = run();
  t.deepEqual(second.before.map((h) => [h.hook, h.id, h.ours]), first.after.map((h) => [h.hook, h.id, true]), 'a new process recognises the attached programs by their pins');
  t.deepEqual(second.after.map((h) => h.ours), [true, true, true]);
  for (let i = 0; i < 3; i++) t.not(second.after[i]?.id, first.after[i]?.id, `${second.after[i]?.hook}: replaced by the new load`);
  /* Leave nothing attached. */
  execFileSync('ip', ['-n', ns, 'link', 'set', 'fbc0a', 'xdpgeneric', 'off']);
});
