import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { stateFileText, statePeerOf, writeStateFile, readStateFile, stateWrittenAt, type AgentStateFile, type PlannedPeerLike } from '../../src/control/state.js';
import { parseCidr, parseIPv4 } from '../../src/maps/addr.js';

function state(peers: AgentStateFile['peers'], extra: Partial<AgentStateFile> = {}): AgentStateFile {
  return {
    version: 1, pid: 42, startedAt: '2026-11-26T10:00:00.000Z', updatedAt: '2026-11-26T10:00:01.000Z', nodeName: 'n1',
    store: { kind: 'etcd', state: 'connected', since: '2026-11-26T10:00:00.500Z', detail: undefined },
    lease: { key: '10.244.1.0-24', subnet: '10.244.1.0/24', publicIp: '192.168.1.1' },
    network: '10.244.0.0/16', backend: { type: 'vxlan', vni: 1, port: 8472, directRouting: false, mtu: 1450 },
    vtepMac: '0e:00:00:00:00:01', uplink: null, device: { name: 'flannel.1', ifindex: 5, mtu: 1450 }, engine: null,
    pinDir: '/sys/fs/bpf/flannel-bpf', subnetFile: '/run/flannel/subnet.env', lastSync: null, maxPeers: 65536,
    peers, rejected: [{ leaseKey: 'x', reason: 'bad_subnet', message: 'lease "x": "quoted", \\ and\nnewline' }], unreachable: [], warnings: ['w "1"'],
    ...extra,
  };
}

const planned = (i: number): PlannedPeerLike => ({
  leaseKey: `10.244.${i}.0-24`, subnet: parseCidr(`10.244.${i}.0/24`), publicIp: parseIPv4(`192.168.1.${i}`), mode: i % 2 ? 'vxlan' : 'direct', peerId: i, vtepMac: `0e:00:00:00:00:${i.toString(16).padStart(2, '0')}`,
});

test('the state file text is exactly JSON.stringify(s, null, 1) + newline, with and without peers', (t) => {
  for (const n of [0, 1, 3, 200]) {
    const s = state(Array.from({ length: n }, (_, i) => statePeerOf(planned(i + 1))));
    t.is(stateFileText(s), `${JSON.stringify(s, null, 1)}\n`, `${n} peers`);
  }
  t.is(stateFileText(state([], { rejected: [] })), `${JSON.stringify(state([], { rejected: [] }), null, 1)}\n`);
  /* Strings that look like the peers marker inside values do not confuse it. */
  const tricky = state([statePeerOf(planned(7))], { nodeName: '\n "peers": []', warnings: ['"peers": []'] });
  t.is(stateFileText(tricky), `${JSON.stringify(tricky, null, 1)}\n`);
});

test('state file text: random peer entries', (t) => {
  fc.assert(fc.property(fc.array(fc.record({
    leaseKey: fc.string(), subnet: fc.string(), publicIp: fc.string(), mode: fc.string(), peerId: fc.nat(), vtepMac: fc.string(),
  }), { maxLength: 20 }), (peers) => {
    const s = state(peers);
    t.is(stateFileText(s), `${JSON.stringify(s, null, 1)}\n`);
  }));
});

test('statePeerOf formats a peer once: the same entry for the same peer object', (t) => {
  const p = planned(9);
  const a = statePeerOf(p);
  t.is(statePeerOf(p), a);
  t.deepEqual(a, { leaseKey: '10.244.9.0-24', subnet: '10.244.9.0/24', publicIp: '192.168.1.9', mode: 'vxlan', peerId: 9, vtepMac: '0e:00:00:00:00:09' });
  t.not(statePeerOf({ ...p }), a, 'another object (a changed peer) gets its own entry');
});

test('writeStateFile writes atomically, reads back, and records when it wrote', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fbpf-state-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  t.is(stateWrittenAt(dir), 0);
  /* More pieces than one writev takes (IOV_MAX 1024). */
  const s = state(Array.from({ length: 3000 }, (_, i) => statePeerOf({ ...planned((i % 250) + 1), leaseKey: `k${i}`, peerId: i + 1 })));
  const before = Date.now();
  writeStateFile(dir, s);
  t.true(stateWrittenAt(dir) >= before);
  t.is(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'), `${JSON.stringify(s, null, 1)}\n`);
  t.deepEqual(readStateFile(dir), JSON.parse(JSON.stringify(s)) as AgentStateFile);
  t.deepEqual(fs.readdirSync(dir), ['state.json']);
});
