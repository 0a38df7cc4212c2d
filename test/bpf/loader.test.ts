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
  t.deepEqual(fs.readdirSync(dir).sort(), ['fbpf_config', 'fbpf_drops', 'fbpf_fast_stats', 'fbpf_peer_stats', 'fbpf_peers', 'fbpf_sources']);

  const second = Dataplane.load({ pinDir: dir });
  t.teardown(() => second.close());
  t.is(second.maps.peers.get(parseCidr('10.244.7.0/24'))?.peerId, 4, 'the restarted loader sees the same map');

  const viaPins = NodeMaps.fromPinDir(dir);
  t.teardown(() => viaPins.close());
  t.is(viaPins.peers.entries().length, 1, 'status can read the pins while no agent runs');
});

test.serial('a pinned map of another size refuses to load (PinnedMapMismatchError names the pin)', (t) => {
  const dir = path.join(pinRoot, 'node-b');
  Dataplane.load({ pinDir: dir, maxPeers: 1024 }).close();
  const err = t.throws(() => Dataplane.load({ pinDir: dir, maxPeers: 2048 }), { instanceOf: PinnedMapMismatchError });
  t.regex(err?.message ?? '', /fbpf_(peers|sources|peer_stats)/);
  t.regex(err?.remedy ?? '', /reset/);
});

test.serial('a map whose layout differs from the agent\'s codec refuses to start (MapLayoutMismatchError)', (t) => {
  const dir = path.join(pinRoot, 'node-c');
  const stale = BpfObject.load(path.resolve(defaultObjectDir(), '../test-bpf/bad_layout.o'), { pinDir: dir });
  stale.close();
  const err = t.throws(() => Dataplane.load({ pinDir: dir }), { instanceOf: PinnedMapMismatchError });
  t.regex(err?.message ?? '', /fbpf_peers/);
  /* Opening the node's pins directly (what `status` does) checks sizes against the codecs. */
  Dataplane.load({ pinDir: path.join(dir, 'rest') }).close();
  for (const m of ['fbpf_sources', 'fbpf_config', 'fbpf_peer_stats', 'fbpf_drops', 'fbpf_fast_stats']) {
    fs.renameSync(path.join(dir, 'rest', m), path.join(dir, m));
  }
  const err2 = t.throws(() => NodeMaps.fromPinDir(dir), { instanceOf: MapLayoutMismatchError });
  t.regex(err2?.message ?? '', /fbpf_peers: value size is 20 bytes in the loaded map but 16 in this agent/);
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
