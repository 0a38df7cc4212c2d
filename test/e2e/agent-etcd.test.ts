/**
 * The agent in etcd mode, end to end: real agents in two node namespaces of
 * a lab, a real etcd, real pods. Distinct subnets, each other's entries in
 * the maps, pod traffic through them; stock flanneld's lease format; bad
 * leases rejected by name while the rest keep working; own lease deleted;
 * compaction; restart with stale state; a backend change refused.
 */
import test from 'ava';
import { Lab, ETCD_PREFIX } from '../../src/cli/lab/lab.js';
import { etcdctl } from '../../src/cli/lab/etcd.js';
import { nsExec } from '../../src/cli/lab/netns.js';
import { NodeMaps } from '../../src/maps/index.js';
import { formatCidr, formatIPv4 } from '../../src/maps/addr.js';
import { readStateFile } from '../../src/control/state.js';
import { requireRoot } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

requireRoot();

let lab: Lab;
test.before(async () => {
  lab = await Lab.up({ nodes: 2, backend: 'vxlan', podsPerNode: 1, segments: 1 });
});
test.after.always(() => { lab?.down(); });

function peersOf(node: string): Map<string, { mode: string; publicIp: string; vtepMac: string; peerId: number }> {
  const maps = NodeMaps.fromPinDir(lab.node(node).pinDir);
  try {
    return new Map(maps.peers.entries().map(([k, v]) => [formatCidr(k), { mode: v.mode, publicIp: formatIPv4(v.publicIp), vtepMac: v.vtepMac, peerId: v.peerId }]));
  } finally {
    maps.close();
  }
}

function sourcesOf(node: string): string[] {
  const maps = NodeMaps.fromPinDir(lab.node(node).pinDir);
  try {
    return maps.sources.entries().map(([ip]) => formatIPv4(ip)).sort();
  } finally {
    maps.close();
  }
}

const etcd = (...args: string[]) => etcdctl(lab.state.etcd!, args);

test.serial('two agents with a real etcd take distinct subnets, program each other, and carry pod traffic', async (t) => {
  const [n1, n2] = [lab.node('n1'), lab.node('n2')];
  t.truthy(n1.subnet);
  t.not(n1.subnet, n2.subnet);
  const s2 = readStateFile(n2.stateDir);
  const p1 = peersOf('n1');
  t.deepEqual(p1.get(n2.subnet!), { mode: 'vxlan', publicIp: n2.ip, vtepMac: s2?.vtepMac ?? '?', peerId: p1.get(n2.subnet!)?.peerId ?? -1 });
  t.true((p1.get(n2.subnet!)?.peerId ?? 0) >= 1);
  t.deepEqual(sourcesOf('n1'), [n2.ip], 'n2 is n1\'s only tunnel source');
  t.is(p1.size, 1, 'only the peer, never our own subnet');
  const m = await lab.check();
  t.deepEqual(m.failures, [], 'every pod reaches every pod');
});

test.serial('our lease is byte-compatible with flanneld\'s, and a lease in stock flanneld\'s format is understood', async (t) => {
  const n1 = lab.node('n1');
  const st = readStateFile(n1.stateDir)!;
  const own = etcd('get', `${ETCD_PREFIX}/subnets/${n1.subnet!.replace('/', '-')}`, '--print-value-only').trim();
  t.is(own, `{"PublicIP":"${n1.ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${st.vtepMac}"}}`);
  /* The value from flannel's documentation (flannel-compat.md §3), as stock flanneld writes it. */
  etcd('put', `${ETCD_PREFIX}/subnets/10.244.200.0-24`, '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}');
  const entry = await waitFor(() => peersOf('n1').get('10.244.200.0/24'), { what: 'the stock lease in n1\'s peers map' });
  t.is(entry.mode, 'vxlan', '192.168.64.3 is not on n1\'s segment: VXLAN');
  t.is(entry.publicIp, '192.168.64.3');
  t.is(entry.vtepMac, 'c6:d2:32:6f:8f:44');
  t.true(sourcesOf('n1').includes('192.168.64.3'));
  etcd('del', `${ETCD_PREFIX}/subnets/10.244.200.0-24`);
  await waitFor(() => !peersOf('n1').has('10.244.200.0/24'), { what: 'the deleted lease to leave the map' });
});

test.serial('bad leases are rejected with a named reason, logged once, and the good ones keep working', async (t) => {
  const n2 = lab.node('n2');
  const bad: Record<string, string> = {
    '10.244.201.0-24': '{"PublicIP":"192.168.10.201","BackendType":"vxlan",', /* malformed JSON */
    '10.244.202.0-24': '{"PublicIP":"192.168.10.202","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"zz:zz"}}',
    '10.245.1.0-24': '{"PublicIP":"192.168.10.203","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:00:00:00:02:03"}}',
    [`${n2.subnet!.replace(/\.0\/24$/, '.128')}-25`]: '{"PublicIP":"192.168.10.204","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:00:00:00:02:04"}}',
    '10.244.205.0-24': '{"PublicIP":"192.168.10.205","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":7,"VtepMAC":"0e:00:00:00:02:05"}}',
  };
  for (const [k, v] of Object.entries(bad)) etcd('put', `${ETCD_PREFIX}/subnets/${k}`, v);
  t.teardown(() => { for (const k of Object.keys(bad)) etcd('del', `${ETCD_PREFIX}/subnets/${k}`); });
  const st = await waitFor(() => {
    const s = readStateFile(lab.node('n1').stateDir);
    return s && s.rejected.length >= 4 ? s : null;
  }, { what: 'rejections in n1\'s state', timeoutMs: 15_000 });
  const reasons = Object.fromEntries(st.rejected.map((r) => [r.leaseKey, r.reason]));
  t.is(reasons['10.244.202.0-24'], 'bad_vtep_mac');
  t.is(reasons['10.245.1.0-24'], 'outside_network');
  t.is(reasons[`${n2.subnet!.replace(/\.0\/24$/, '.128')}-25`], 'overlaps_peer');
  t.is(reasons['10.244.205.0-24'], 'vni_mismatch');
  const log = nsExec(lab.node('n1').ns, `cat ${lab.node('n1').logFile}`);
  t.regex(log, /10\.244\.201\.0-24.*malformed_json|malformed_json.*10\.244\.201\.0-24/, 'malformed JSON is reported by name');
  const lines = log.split('\n').filter((l) => l.includes('"lease":"10.244.202.0-24"') && l.includes('bad_vtep_mac'));
  t.is(lines.length, 1, 'each rejection is logged once, not on every reconcile');
  t.is(peersOf('n1').get(n2.subnet!)?.publicIp, n2.ip, 'the good peer is still programmed');
  t.deepEqual((await lab.check()).failures, []);
  t.true(lab.running('n1'), 'the agent is still running');
});

test.serial('our own lease deleted from etcd is re-acquired with the same subnet', async (t) => {
  const n1 = lab.node('n1');
  const key = `${ETCD_PREFIX}/subnets/${n1.subnet!.replace('/', '-')}`;
  etcd('del', key);
  const back = await waitFor(() => etcd('get', key, '--print-value-only').trim(), { what: 'n1 to re-acquire its lease', timeoutMs: 15_000 });
  t.true(back.includes(`"PublicIP":"${n1.ip}"`));
  t.is(readStateFile(n1.stateDir)?.lease?.subnet, n1.subnet);
  t.deepEqual((await lab.check()).failures, []);
});

test.serial('after etcd compaction the agent re-lists and keeps following changes', async (t) => {
  for (let i = 0; i < 5; i++) etcd('put', '/unrelated/key', String(i));
  const rev = /"revision":(\d+)/.exec(etcd('get', '/unrelated/key', '-w', 'json'))?.[1];
  etcd('compact', rev ?? '1', '--physical');
  etcd('put', `${ETCD_PREFIX}/subnets/10.244.210.0-24`, '{"PublicIP":"192.168.10.210","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:00:00:00:02:10"}}');
  t.teardown(() => etcd('del', `${ETCD_PREFIX}/subnets/10.244.210.0-24`));
  const e = await waitFor(() => peersOf('n1').get('10.244.210.0/24'), { what: 'a lease added after compaction', timeoutMs: 15_000 });
  t.is(e.mode, 'vxlan', 'no DirectRouting configured');
});

test.serial('restart: the dataplane keeps forwarding while the agent is down; stale entries are removed on start', async (t) => {
  const n1 = lab.node('n1');
  const n2 = lab.node('n2');
  await lab.stopNodeAndWait('n1');
  t.deepEqual((await lab.check()).failures, [], 'pods still talk with n1\'s agent stopped');
  /* While n1 is down: a peer appears and another disappears. */
  etcd('put', `${ETCD_PREFIX}/subnets/10.244.220.0-24`, '{"PublicIP":"192.168.10.220","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:00:00:00:02:20"}}');
  t.teardown(() => etcd('del', `${ETCD_PREFIX}/subnets/10.244.220.0-24`));
  etcd('put', `${ETCD_PREFIX}/subnets/10.244.221.0-24`, '{"PublicIP":"192.168.10.221","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:00:00:00:02:21"}}');
  lab.startNode(n1);
  await lab.waitReady([n1]);
  etcd('del', `${ETCD_PREFIX}/subnets/10.244.221.0-24`);
  await waitFor(() => {
    const p = peersOf('n1');
    return p.has('10.244.220.0/24') && !p.has('10.244.221.0/24') && p.has(n2.subnet!);
  }, { what: 'n1 to reconcile what changed while it was down', timeoutMs: 15_000 });
  const before = peersOf('n1').get(n2.subnet!)?.peerId;
  t.truthy(before);
  t.deepEqual((await lab.check()).failures, []);
});

test.serial('a backend change against pinned state is refused with the reset command', async (t) => {
  const n2 = lab.node('n2');
  await lab.stopNodeAndWait('n2');
  const conf = etcd('get', `${ETCD_PREFIX}/config`, '--print-value-only').trim();
  etcd('put', `${ETCD_PREFIX}/config`, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'host-gw' } }));
  t.teardown(() => etcd('put', `${ETCD_PREFIX}/config`, conf));
  const linesBefore = nsExec(n2.ns, `wc -l < ${n2.logFile}`).trim();
  lab.startNode(n2);
  const log = await waitFor(() => {
    const l = nsExec(n2.ns, `tail -n +${Number(linesBefore) + 1} ${n2.logFile}`);
    return l.includes('"level":"error"') ? l : null;
  }, { what: 'the agent to refuse to start', timeoutMs: 20_000 });
  await waitFor(() => !lab.running('n2'), { what: 'the refusing agent to exit' });
  t.regex(log, /set up for the vxlan backend, but net-conf\.json says host-gw/);
  t.regex(log, /flannel-bpf reset --bpffs-pin-dir=/);
  etcd('put', `${ETCD_PREFIX}/config`, conf);
  lab.startNode(n2);
  await lab.waitReady([n2]);
  t.deepEqual((await lab.check()).failures, [], 'back to normal with the right backend');
});

test.serial('--ip-masq installs flannel\'s chains exactly; a removed rule is restored by the resync loop', async (t) => {
  const n1 = lab.node('n1');
  const save = () => nsExec(n1.ns, 'iptables-save -t nat');
  const rules = save().split('\n').filter((l) => l.includes('FLANNEL-POSTRTG'));
  t.deepEqual(rules, [
    ':FLANNEL-POSTRTG - [0:0]',
    '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG',
    '-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN',
    `-A FLANNEL-POSTRTG -s ${n1.subnet} -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN`,
    `-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d ${n1.subnet} -m comment --comment "flanneld masq" -j RETURN`,
    `-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d ${n1.subnet} -m comment --comment "flanneld masq" -j RETURN`,
    '-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
    '-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
  ]);
  t.regex(nsExec(n1.ns, 'iptables-save -t filter'), /-A FLANNEL-FWD -s 10\.244\.0\.0\/16 -m comment --comment "flanneld forward" -j ACCEPT/);
  nsExec(n1.ns, 'iptables -w 5 -t nat -D FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN');
  await waitFor(() => save().includes('--mark 0x4000/0x4000'), { what: 'the resync loop to restore the rule', timeoutMs: 15_000 });
  t.deepEqual(save().split('\n').filter((l) => l.includes('FLANNEL-POSTRTG')), rules, 'restored in the original order');
});

test.serial('a malformed network config stops a starting agent with an error naming the field', async (t) => {
  const n2 = lab.node('n2');
  const conf = etcd('get', `${ETCD_PREFIX}/config`, '--print-value-only').trim();
  t.teardown(() => etcd('put', `${ETCD_PREFIX}/config`, conf));
  await lab.stopNodeAndWait('n2');
  etcd('put', `${ETCD_PREFIX}/config`, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', VNI: 'one' } }));
  const lines = Number(nsExec(n2.ns, `wc -l < ${n2.logFile}`).trim());
  lab.startNode(n2);
  const log = await waitFor(() => {
    const l = nsExec(n2.ns, `tail -n +${lines + 1} ${n2.logFile}`);
    return l.includes('"level":"error"') ? l : null;
  }, { what: 'the agent to refuse the config', timeoutMs: 20_000 });
  t.regex(log, /Backend\.VNI/);
  t.deepEqual((await lab.check()).failures, [], 'the dataplane left by the previous run keeps forwarding meanwhile');
  etcd('put', `${ETCD_PREFIX}/config`, conf);
  await waitFor(() => !lab.running('n2'), { what: 'the refusing agent to exit' });
  lab.startNode(n2);
  await lab.waitReady([n2]);
});

test.serial('flannel-bpf reset removes what flannel-bpf created on the node', async (t) => {
  const n2 = lab.node('n2');
  const managed = () => nsExec(n2.ns, 'ip -d neigh show dev eth0').split('\n').filter((l) => /\bmanaged\b.*\bproto 251\b/.test(l));
  await waitFor(() => managed().length > 0, { what: 'the agent to make its next hops managed neighbour entries' });
  await lab.stopNodeAndWait('n2');
  const bin = `${process.cwd()}/bin/flannel-bpf`;
  const out = nsExec(n2.ns, `${bin} reset --bpffs-pin-dir=${n2.pinDir} --state-dir=${n2.stateDir} --subnet-file=${n2.subnetFile}`);
  t.regex(out, /detached programs/);
  t.regex(out, /deleted device flannel-bpf/);
  t.regex(out, /removed pins/);
  t.regex(out, /deleted \d+ managed neighbour entr/);
  t.deepEqual(managed(), [], 'no managed neighbour entry of ours left on the uplink');
  t.throws(() => nsExec(n2.ns, 'ip link show dev flannel-bpf'), undefined, 'device gone');
  t.is(nsExec(n2.ns, 'tc filter show dev eth0 ingress; tc filter show dev eth0 egress').trim(), '', 'no filter left on the uplink');
  t.false(nsExec(n2.ns, 'iptables-save').includes('FLANNEL-'), 'flannel chains gone');
  t.false(nsExec(n2.ns, `ls ${n2.dir}`).includes('subnet.env'), 'subnet.env gone');
  t.throws(() => nsExec(n2.ns, `ls ${n2.pinDir}`), undefined, 'pins gone');
  t.regex(nsExec(n2.ns, `${bin} reset --bpffs-pin-dir=${n2.pinDir} --state-dir=${n2.stateDir} --subnet-file=${n2.subnetFile}`), /nothing of flannel-bpf found/, 'idempotent');
  /* A fresh start after a reset sets the node up again (same lease: it is found by our public IP). */
  lab.startNode(n2);
  await lab.waitReady([n2]);
  t.deepEqual((await lab.check()).failures, []);
});

test.serial('--ip-blackhole-route adds a blackhole route for our subnet below the bridge\'s route', async (t) => {
  const n1 = lab.node('n1');
  await lab.stopNodeAndWait('n1');
  n1.extraArgs = [...(n1.extraArgs ?? []), '--ip-blackhole-route'];
  lab.startNode(n1);
  await lab.waitReady([n1]);
  const routes = await waitFor(() => {
    const r = nsExec(n1.ns, 'ip route show type blackhole');
    return r.trim() ? r : null;
  }, { what: 'the blackhole route' });
  t.is(routes.trim(), `blackhole ${n1.subnet} metric 4096`);
  t.deepEqual((await lab.check()).failures, [], 'pods are still reachable: the bridge route wins');
});
