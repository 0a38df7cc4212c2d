/**
 * The etcd subnet manager against a REAL etcd (Debian's /usr/bin/etcd 3.4),
 * one per test, listening on 127.0.0.1 inside this process's private network
 * namespace. Keys and values are checked with etcdctl, byte for byte.
 */
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import { privateNetns } from '../helpers/netns.js';
import { makeTestCerts, startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { EtcdSubnetManager, type EtcdSubnetManagerOptions } from '../../src/control/subnet/etcd.js';
import { makeSubnetManager } from '../../src/control/subnet/index.js';
import { defaultFlags } from '../../src/control/config/flags.js';
import { SubnetError, type LeaseEvent, type StoreState } from '../../src/control/subnet/types.js';
import { parseNetConf } from '../../src/control/config/net-conf.js';
import { createLogger, createTestSink, type TestSink } from '../../src/control/log.js';
import type { OwnLeaseAttrs } from '../../src/control/lease/backend-data.js';
import type { Lease, Rejection } from '../../src/control/lease/types.js';
import { formatCidr, parseCidr, parseIPv4 } from '../../src/maps/addr.js';

privateNetns();

const PREFIX = '/coreos.com/network';
const CONF = '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}';
const key = (subnet: string): string => `${PREFIX}/subnets/${subnet.replace('/', '-')}`;
const vxlan = (ip: string, mac: string): OwnLeaseAttrs => ({ publicIp: parseIPv4(ip), backendType: 'vxlan', vni: 1, vtepMac: mac });
const value = (ip: string, mac: string): string => `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`;

async function etcdWith(t: ExecutionContext, conf: string | null = CONF): Promise<EtcdServer> {
  const etcd = await startEtcd({ name: 'subnet' });
  t.teardown(() => etcd.close());
  if (conf !== null) etcd.ctl(['put', `${PREFIX}/config`, conf]);
  return etcd;
}

function manager(t: ExecutionContext, etcd: EtcdServer, extra: Partial<EtcdSubnetManagerOptions> = {}): { m: EtcdSubnetManager; sink: TestSink } {
  const sink = createTestSink();
  const m = new EtcdSubnetManager({ endpoints: [etcd.endpoint], logger: createLogger({ level: 'debug', sink }), random: () => 0, ...extra });
  t.teardown(() => m.close());
  return { m, sink };
}

async function acquire(m: EtcdSubnetManager, attrs: OwnLeaseAttrs, previousSubnet: string | null = null): Promise<Lease> {
  const config = parseNetConf(await m.getNetworkConfig(), { mode: 'etcd' });
  return m.acquireLease({ attrs, config, previousSubnet: previousSubnet === null ? null : parseCidr(previousSubnet) });
}

/** A key's etcd lease id (hex, as etcdctl wants it) or null for a key without lease. */
function leaseIdOf(etcd: EtcdServer, k: string): string | null {
  const raw = etcd.ctl(['get', k, '-w', 'json']);
  if (!/"kvs":/.test(raw)) throw new Error(`no key ${k}`);
  const m = /"lease":(\d+)/.exec(raw); /* int64: read the digits, JSON.parse would round them */
  if (!m || m[1] === '0') return null;
  return BigInt(m[1] as string).toString(16);
}

function ttlOf(etcd: EtcdServer, leaseHex: string): { granted: number; remaining: number } {
  const out = etcd.ctl(['lease', 'timetolive', leaseHex]);
  const m = /granted with TTL\((\d+)s\), remaining\((-?\d+)s\)/.exec(out);
  if (!m) throw new Error(`unexpected timetolive output: ${out}`);
  return { granted: Number(m[1]), remaining: Number(m[2]) };
}

const getValue = (etcd: EtcdServer, k: string): string => etcd.ctl(['get', k, '--print-value-only']).replace(/\n$/, '');

async function until(pred: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Collects lease events and keeps the consumer's view (snapshot replaces it). */
class Recorder {
  readonly events: LeaseEvent[] = [];
  readonly leases = new Map<string, Lease>();
  readonly rejected = new Map<string, Rejection>();
  on = (e: LeaseEvent): void => {
    this.events.push(e);
    switch (e.type) {
      case 'snapshot':
        this.leases.clear();
        this.rejected.clear();
        for (const l of e.leases) this.leases.set(l.key, l);
        for (const r of e.rejected) this.rejected.set(r.leaseKey, r);
        break;
      case 'added':
      case 'updated':
        this.rejected.delete(e.lease.key);
        this.leases.set(e.lease.key, e.lease);
        break;
      case 'removed':
        this.leases.delete(e.key);
        this.rejected.delete(e.key);
        break;
      case 'rejected':
        this.leases.delete(e.rejection.leaseKey);
        this.rejected.set(e.rejection.leaseKey, e.rejection);
        break;
    }
  };
  snapshots(): number {
    return this.events.filter((e) => e.type === 'snapshot').length;
  }
  /** Events after the last snapshot, as short strings. */
  tail(): string[] {
    const i = this.events.map((e) => e.type).lastIndexOf('snapshot');
    return this.events.slice(i + 1).map((e) => (e.type === 'removed' ? `removed ${e.key}`
      : e.type === 'rejected' ? `rejected ${e.rejection.leaseKey} ${e.rejection.reason}`
        : e.type === 'snapshot' ? 'snapshot' : `${e.type} ${e.lease.key}`));
  }
}

function watch(t: ExecutionContext, m: EtcdSubnetManager): Recorder {
  const rec = new Recorder();
  const ac = new AbortController();
  const done = m.watchLeases(rec.on, ac.signal);
  t.teardown(async () => { ac.abort(); await done; });
  return rec;
}

const logged = (sink: TestSink, re: RegExp): number => sink.records().filter((r) => re.test(r.msg)).length;

test('etcd: lease keys and values are byte-exact as flanneld writes them, each with a fresh 24 h etcd lease', async (t) => {
  const etcd = await etcdWith(t);
  const { m: a } = manager(t, etcd);
  const la = await acquire(a, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  t.is(formatCidr(la.subnet), '10.244.1.0/24', 'random() = 0 picks SubnetMin');
  t.is(getValue(etcd, key('10.244.1.0/24')),
    '{"PublicIP":"192.168.50.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:fb:00:00:00:01"}}');
  const id = leaseIdOf(etcd, key('10.244.1.0/24'));
  t.truthy(id, 'the key is attached to an etcd lease');
  const ttl = ttlOf(etcd, id as string);
  t.is(ttl.granted, 86400);
  t.true(ttl.remaining > 86390 && ttl.remaining <= 86400, `remaining ${ttl.remaining}`);
  t.true(Math.abs((la.expiration ?? 0) - (Date.now() + 86_400_000)) < 10_000, 'lease.expiration ≈ now + 24 h');

  const { m: b } = manager(t, etcd);
  const lb = await acquire(b, { publicIp: parseIPv4('192.168.50.2'), backendType: 'host-gw' });
  t.is(getValue(etcd, key(formatCidr(lb.subnet))), '{"PublicIP":"192.168.50.2","PublicIPv6":null,"BackendType":"host-gw"}');
  const { m: c } = manager(t, etcd);
  const lc = await acquire(c, { publicIp: parseIPv4('192.168.50.3'), backendType: 'udp' });
  t.is(getValue(etcd, key(formatCidr(lc.subnet))), '{"PublicIP":"192.168.50.3","PublicIPv6":null}', 'udp: BackendType left empty, as flannel');
  t.not(leaseIdOf(etcd, key(formatCidr(lb.subnet))), id, 'one etcd lease per key');
  t.is(getValue(etcd, `${PREFIX}/config`), CONF, 'the config key is left alone');
  t.is(await a.getNetworkConfig(), CONF);
});

test('etcd: renewal re-puts the key with a fresh etcd lease margin-before-expiry (short injected TTL), so it outlives its TTL', async (t) => {
  const etcd = await etcdWith(t);
  const { m, sink } = manager(t, etcd, { leaseTtlSeconds: 3, renewMarginMs: 2_000 });
  const lease = await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  const k = key(formatCidr(lease.subnet));
  const first = leaseIdOf(etcd, k);
  t.is(ttlOf(etcd, first as string).granted, 3);
  await m.completeLease();
  await new Promise((r) => setTimeout(r, 5_000)); /* > TTL: without renewal the key would be gone */
  t.is(getValue(etcd, k), value('192.168.50.1', '0e:fb:00:00:00:01'), 'key still there, same value');
  const now = leaseIdOf(etcd, k);
  t.truthy(now);
  t.not(now, first, 'renewed with a new etcd lease (no KeepAlive)');
  t.true(ttlOf(etcd, now as string).remaining <= 3);
  const renewals = logged(sink, /^Lease renewed$/);
  t.true(renewals >= 3 && renewals <= 7, `renewed ${renewals} times in 5 s (every ~1 s)`);
  t.is(logged(sink, /revoked/), 0, 'never lost');
});

test('etcd: subnet choice — our public IP\'s lease beats subnet.env, subnet.env beats allocation, a taken subnet.env subnet is skipped', async (t) => {
  const etcd = await etcdWith(t);
  /* an existing lease for our public IP, with another VtepMAC */
  const grant = /lease ([0-9a-f]+) granted/.exec(etcd.ctl(['lease', 'grant', '600']))?.[1] as string;
  etcd.ctl(['put', `--lease=${grant}`, key('10.244.7.0/24'), value('192.168.50.1', '0e:fb:00:00:00:77')]);

  const { m: a, sink: sa } = manager(t, etcd);
  const la = await acquire(a, vxlan('192.168.50.1', '0e:fb:00:00:00:01'), '10.244.9.0/24');
  t.is(formatCidr(la.subnet), '10.244.7.0/24', 'own public IP\'s lease reused');
  t.is(la.vtepMac, '0e:fb:00:00:00:77', 'its VtepMAC is kept');
  t.is(getValue(etcd, key('10.244.7.0/24')), value('192.168.50.1', '0e:fb:00:00:00:77'));
  const id = leaseIdOf(etcd, key('10.244.7.0/24'));
  t.not(id, grant, 'rewritten with a fresh etcd lease');
  t.is(ttlOf(etcd, id as string).granted, 86400);
  t.is(logged(sa, /for current IP \(192\.168\.50\.1\), reusing/), 1);

  const { m: b, sink: sb } = manager(t, etcd);
  const lb = await acquire(b, vxlan('192.168.50.2', '0e:fb:00:00:00:02'), '10.244.9.0/24');
  t.is(formatCidr(lb.subnet), '10.244.9.0/24', 'subnet.env\'s subnet reused when free');
  t.is(logged(sb, /Found previously leased subnet \(10\.244\.9\.0\/24\), reusing/), 1);

  const { m: c, sink: sc } = manager(t, etcd);
  const lc = await acquire(c, vxlan('192.168.50.3', '0e:fb:00:00:00:03'), '10.244.9.0/24');
  t.is(formatCidr(lc.subnet), '10.244.1.0/24', 'subnet.env\'s subnet in use → allocation (first free with random() = 0)');
  t.is(logged(sc, /already in use/), 1);

  const { m: d } = manager(t, etcd);
  const ld = await acquire(d, vxlan('192.168.50.4', '0e:fb:00:00:00:04'), '10.245.0.0/24');
  t.is(formatCidr(ld.subnet), '10.244.2.0/24', 'a subnet.env subnet outside the network is ignored');

  /* an incompatible lease for our public IP (below SubnetMin) is deleted */
  etcd.ctl(['put', key('10.244.0.0/24'), value('192.168.50.5', '0e:fb:00:00:00:05')]);
  const { m: e, sink: se } = manager(t, etcd);
  const le = await acquire(e, vxlan('192.168.50.5', '0e:fb:00:00:00:05'));
  t.is(formatCidr(le.subnet), '10.244.3.0/24');
  t.is(etcd.ctl(['get', key('10.244.0.0/24')]), '', 'the incompatible lease was deleted');
  t.is(logged(se, /not compatible with current config, deleting/), 1);
});

test('etcd: allocation picks uniformly among the first 100 free subnets, skipping leases and TTL-less reservations; a reservation for our IP is reused and stays one', async (t) => {
  const etcd = await etcdWith(t);
  etcd.ctl(['put', key('10.244.1.0/24'), value('10.9.9.9', '0e:fb:00:00:09:09')]); /* reservation: no --lease */
  const grant = /lease ([0-9a-f]+) granted/.exec(etcd.ctl(['lease', 'grant', '600']))?.[1] as string;
  for (const s of ['10.244.2.0/24', '10.244.5.0/24']) etcd.ctl(['put', `--lease=${grant}`, key(s), value(`10.8.0.${s.split('.')[2]}`, '0e:fb:00:00:08:08')]);
  etcd.ctl(['put', key('10.244.6.0/24'), 'this is not JSON']); /* unparsable, but its subnet is taken */

  const { m: first } = manager(t, etcd, { random: () => 0 });
  t.is(formatCidr((await acquire(first, vxlan('192.168.50.1', '0e:fb:00:00:00:01'))).subnet), '10.244.3.0/24');
  const { m: second } = manager(t, etcd, { random: () => 0.5 });
  /* free now: 4, 7, 8, …: candidate [floor(0.5 * 100)] = [50] → 56 */
  t.is(formatCidr((await acquire(second, vxlan('192.168.50.2', '0e:fb:00:00:00:02'))).subnet), '10.244.56.0/24');
  const { m: last } = manager(t, etcd, { random: () => 0.999999 });
  /* free: 4, 7 … 55, 57, …: the 100th candidate is 106 (never beyond the first 100) */
  t.is(formatCidr((await acquire(last, vxlan('192.168.50.3', '0e:fb:00:00:00:03'))).subnet), '10.244.106.0/24');

  const { m: reserved, sink } = manager(t, etcd);
  const lr = await acquire(reserved, vxlan('10.9.9.9', '0e:fb:00:00:09:09'));
  t.is(formatCidr(lr.subnet), '10.244.1.0/24', 'the reservation for our public IP is ours');
  t.is(leaseIdOf(etcd, key('10.244.1.0/24')), null, 'still without TTL');
  t.is(lr.expiration, undefined);
  await reserved.completeLease();
  t.is(logged(sink, /waiting to renew/), 0, 'a reservation is not renewed');
});

test('etcd: two managers racing for the same free subnet — one wins, the loser retries onto the other one (exactly 2 free)', async (t) => {
  const etcd = await etcdWith(t, '{"Network":"10.244.0.0/22","SubnetMax":"10.244.2.0","Backend":{"Type":"vxlan"}}');
  /* both choose 10.244.1.0 (random() = 0); each waits at the create until both have chosen */
  const arrived: Array<() => void> = [];
  const calls: Record<string, number[]> = { a: [], b: [] };
  let release!: () => void;
  const both = new Promise<void>((r) => { release = r; });
  const barrier = (who: 'a' | 'b') => async (sn: unknown, attempt: number): Promise<void> => {
    calls[who]?.push(attempt);
    if (attempt === 1) {
      arrived.push(() => undefined);
      if (arrived.length === 2) release();
      await both;
    }
  };
  const { m: a, sink: sa } = manager(t, etcd, { hooks: { beforeCreate: barrier('a') } });
  const { m: b, sink: sb } = manager(t, etcd, { hooks: { beforeCreate: barrier('b') } });
  const [la, lb] = await Promise.all([
    acquire(a, vxlan('192.168.50.1', '0e:fb:00:00:00:01')),
    acquire(b, vxlan('192.168.50.2', '0e:fb:00:00:00:02')),
  ]);
  t.deepEqual([formatCidr(la.subnet), formatCidr(lb.subnet)].sort(), ['10.244.1.0/24', '10.244.2.0/24']);
  const lost = [logged(sa, /lost the race/), logged(sb, /lost the race/)].sort();
  t.deepEqual(lost, [0, 1], 'exactly one lost the race once');
  const loser = logged(sa, /lost the race/) === 1 ? 'a' : 'b';
  t.deepEqual(calls[loser], [1, 2], 'the loser tried again');
  t.is(getValue(etcd, key(formatCidr(la.subnet))), value('192.168.50.1', '0e:fb:00:00:00:01'));
  t.is(getValue(etcd, key(formatCidr(lb.subnet))), value('192.168.50.2', '0e:fb:00:00:00:02'));
  t.is(Number(etcd.ctl(['lease', 'list']).match(/found (\d+) leases/)?.[1]), 2, 'the loser\'s unused etcd lease was revoked');

  const { m: c } = manager(t, etcd);
  const err = await t.throwsAsync(acquire(c, vxlan('192.168.50.3', '0e:fb:00:00:00:03')), { instanceOf: SubnetError });
  t.regex(err?.message ?? '', /out of subnets/);
});

test('etcd: watch gives a snapshot, then added/updated/removed for peers; our own lease and identical re-puts are silent', async (t) => {
  const etcd = await etcdWith(t);
  etcd.ctl(['put', key('10.244.20.0/24'), value('192.168.60.20', '0e:fb:00:00:60:20')]);
  const { m } = manager(t, etcd);
  const own = await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  const rec = watch(t, m);
  await until(() => rec.snapshots() === 1, 'the snapshot');
  t.deepEqual([...rec.leases.keys()], ['10.244.20.0-24'], 'snapshot has the peer, not our own lease');
  const peer = rec.leases.get('10.244.20.0-24');
  t.is(peer?.vtepMac, '0e:fb:00:00:60:20');

  etcd.ctl(['put', key('10.244.21.0/24'), value('192.168.60.21', '0e:fb:00:00:60:21')]);
  etcd.ctl(['put', key('10.244.21.0/24'), value('192.168.60.21', '0e:fb:00:00:60:99')]);
  etcd.ctl(['put', key('10.244.21.0/24'), value('192.168.60.21', '0e:fb:00:00:60:99')]); /* a peer's renewal */
  etcd.ctl(['put', key(formatCidr(own.subnet)), value('192.168.50.1', '0e:fb:00:00:00:01')]); /* our own key */
  etcd.ctl(['del', key('10.244.20.0/24')]);
  await until(() => rec.tail().length >= 3, 'three events');
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(rec.tail(), ['added 10.244.21.0-24', 'updated 10.244.21.0-24', 'removed 10.244.20.0-24']);
  t.is(rec.leases.get('10.244.21.0-24')?.vtepMac, '0e:fb:00:00:60:99');
  t.is(rec.snapshots(), 1);
});

test('etcd: malformed records are rejected with a named reason while valid leases keep coming', async (t) => {
  const etcd = await etcdWith(t);
  etcd.ctl(['put', key('10.244.30.0/24'), 'not json at all']);
  etcd.ctl(['put', `${PREFIX}/subnets/garbage`, value('192.168.60.1', '0e:fb:00:00:60:01')]);
  etcd.ctl(['put', key('10.244.31.0/24'), value('192.168.60.31', 'zz:fb:00:00:60:31')]);
  etcd.ctl(['put', key('10.244.32.0/24'), value('192.168.60.32', '0e:fb:00:00:60:32')]);
  const { m, sink } = manager(t, etcd);
  await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  const rec = watch(t, m);
  await until(() => rec.snapshots() === 1, 'the snapshot');
  t.deepEqual([...rec.leases.keys()], ['10.244.32.0-24']);
  t.deepEqual(Object.fromEntries([...rec.rejected].map(([k, r]) => [k, r.reason])),
    { '10.244.30.0-24': 'malformed_json', garbage: 'bad_subnet', '10.244.31.0-24': 'bad_vtep_mac' });

  etcd.ctl(['put', key('10.244.33.0/24'), '{"PublicIPv6":null,"BackendType":"vxlan"}']);
  etcd.ctl(['put', key('10.244.34.0/24'), value('192.168.60.34', '0e:fb:00:00:60:34')]);
  etcd.ctl(['put', key('10.244.32.0/24'), value('192.168.60.32', '01:fb:00:00:60:32')]); /* a valid lease turns bad */
  etcd.ctl(['put', key('10.244.30.0/24'), value('192.168.60.30', '0e:fb:00:00:60:30')]); /* a bad one is fixed */
  await until(() => rec.tail().length >= 5, 'five events');
  t.deepEqual(rec.tail(), [
    'rejected 10.244.33.0-24 bad_public_ip',
    'added 10.244.34.0-24',
    'removed 10.244.32.0-24',
    'rejected 10.244.32.0-24 bad_vtep_mac',
    'added 10.244.30.0-24',
  ]);
  t.deepEqual([...rec.leases.keys()].sort(), ['10.244.30.0-24', '10.244.34.0-24']);
  const lines = sink.records().filter((r) => r.msg === 'lease rejected');
  t.true(lines.some((r) => r.lease === '10.244.33.0-24' && r.reason === 'bad_public_ip' && /PublicIP is missing/.test(String(r.detail))));
});

test('etcd: a compaction between list and watch makes etcd refuse the watch; the manager re-lists and emits a fresh snapshot', async (t) => {
  const etcd = await etcdWith(t);
  etcd.ctl(['put', key('10.244.40.0/24'), value('192.168.60.40', '0e:fb:00:00:60:40')]);
  let watches = 0;
  let compactedAt = 0;
  const { m, sink } = manager(t, etcd, {
    hooks: {
      beforeWatch: () => {
        if (++watches !== 1) return;
        etcd.ctl(['del', key('10.244.40.0/24')]);
        etcd.ctl(['put', key('10.244.41.0/24'), value('192.168.60.41', '0e:fb:00:00:60:41')]);
        compactedAt = etcd.compact();
      },
    },
  });
  await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  const rec = watch(t, m);
  await until(() => rec.snapshots() === 2, 'the second snapshot');
  const [s1, s2] = rec.events.filter((e) => e.type === 'snapshot') as Array<Extract<LeaseEvent, { type: 'snapshot' }>>;
  t.deepEqual(s1?.leases.map((l) => l.key), ['10.244.40.0-24']);
  t.deepEqual(s2?.leases.map((l) => l.key), ['10.244.41.0-24'], 're-listed state: the deleted lease is gone, the new one there');
  t.true(compactedAt > 0);
  t.is(logged(sink, /fell behind compaction; re-listing/), 1);
  t.is(watches, 2);
  etcd.ctl(['put', key('10.244.42.0/24'), value('192.168.60.42', '0e:fb:00:00:60:42')]);
  await until(() => rec.leases.has('10.244.42.0-24'), 'an event after the re-list');
  t.deepEqual(rec.tail(), ['added 10.244.42.0-24']);
});

test('etcd: our key deleted, or its etcd lease revoked (expiry), is re-acquired with the same subnet and logged', async (t) => {
  const etcd = await etcdWith(t);
  const { m, sink } = manager(t, etcd);
  const own = await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  const k = key(formatCidr(own.subnet));
  const rec = watch(t, m);
  const changes: Array<[string, string]> = [];
  m.onOwnLeaseChange((now, before) => changes.push([formatCidr(now.subnet), formatCidr(before.subnet)]));
  await m.completeLease();
  await until(() => rec.snapshots() === 1, 'the snapshot');

  etcd.ctl(['del', k]);
  await until(() => changes.length === 1, 're-acquisition after delete');
  t.is(getValue(etcd, k), value('192.168.50.1', '0e:fb:00:00:00:01'));
  t.deepEqual(changes[0], [formatCidr(own.subnet), formatCidr(own.subnet)]);

  const id = leaseIdOf(etcd, k) as string;
  etcd.ctl(['lease', 'revoke', id]); /* what expiry does */
  await until(() => changes.length === 2, 're-acquisition after the lease was revoked');
  t.is(getValue(etcd, k), value('192.168.50.1', '0e:fb:00:00:00:01'));
  t.not(leaseIdOf(etcd, k), id);
  t.is(logged(sink, /Lease has been revoked; re-acquiring/), 2);
  t.is(logged(sink, /re-acquired with the same subnet/), 2);
  t.deepEqual(rec.tail(), [], 'our own key never shows up as a peer event');
  t.is(m.ownLease()?.key, own.key);
});

test('etcd: etcd stopped and restarted → disconnected, then connected, and a lease written meanwhile arrives', async (t) => {
  t.timeout(40_000);
  const etcd = await etcdWith(t);
  const { m } = manager(t, etcd);
  await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  const states: StoreState[] = [];
  m.onStateChange((s) => states.push(s));
  const rec = watch(t, m);
  await until(() => rec.snapshots() === 1, 'the snapshot');
  t.is(m.state, 'connected');

  await etcd.stop();
  await until(() => m.state === 'disconnected', 'state disconnected');
  await new Promise((r) => setTimeout(r, 1_000)); /* a few failed re-lists with growing backoff */
  await etcd.start();
  etcd.ctl(['put', key('10.244.50.0/24'), value('192.168.60.50', '0e:fb:00:00:60:50')]);
  await until(() => rec.leases.has('10.244.50.0-24'), 'the lease written while we were disconnected', 20_000);
  t.is(m.state, 'connected');
  t.deepEqual(states.slice(0, 2), ['disconnected', 'connected']);
  t.true(rec.snapshots() >= 2, 'a fresh snapshot after reconnecting');
});

test('etcd: missing config names the v3 API, basic auth from the flags is passed through', async (t) => {
  const etcd = await etcdWith(t);
  const { m: other } = manager(t, etcd, { prefix: '/other/network' });
  const err = await t.throwsAsync(other.getNetworkConfig(), { instanceOf: SubnetError });
  t.regex(err?.message ?? '', /\/other\/network\/config\. Did you create your config using etcdv3 API\?/);
  t.true((err as SubnetError).retryable, 'flanneld keeps polling for the config key');

  etcd.ctl(['user', 'add', 'root', '--new-user-password=s3cret']);
  etcd.ctl(['auth', 'enable']);
  const { m: anon } = manager(t, etcd, { backoff: { initialMs: 50, maxMs: 100 } });
  await t.throwsAsync(anon.getNetworkConfig(), { message: /user name is empty|permission denied|authentication/i });
  const { m: authed } = manager(t, etcd, { username: 'root', password: 's3cret' });
  t.is(await authed.getNetworkConfig(), CONF);
  const { m: wrong } = manager(t, etcd, { username: 'root', password: 'nope' });
  await t.throwsAsync(wrong.getNetworkConfig(), { message: /authentication failed|invalid auth/i });
});

test('etcd: TLS from --etcd-certfile/--etcd-keyfile/--etcd-cafile reaches an etcd that requires client certificates', async (t) => {
  const certs = makeTestCerts();
  t.teardown(() => fs.rmSync(certs.dir, { recursive: true, force: true }));
  const etcd = await startEtcd({
    name: 'tls',
    tls: {
      certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile, clientCertAuth: true,
      clientCertFile: certs.clientCertFile, clientKeyFile: certs.clientKeyFile,
    },
  });
  t.teardown(() => etcd.close());
  t.regex(etcd.endpoint, /^https:\/\/127\.0\.0\.1:/);
  etcd.ctl(['put', `${PREFIX}/config`, CONF]);
  const flags = {
    ...defaultFlags(), etcdEndpoints: [etcd.endpoint],
    etcdCertfile: certs.clientCertFile, etcdKeyfile: certs.clientKeyFile, etcdCafile: certs.caFile,
  };
  const m = makeSubnetManager(flags, createLogger({ level: 'error', sink: createTestSink() }), {});
  t.teardown(() => m.close());
  t.is(m.kind, 'etcd');
  t.is(await m.getNetworkConfig(), CONF);
  const lease = await m.acquireLease({ attrs: vxlan('192.168.50.1', '0e:fb:00:00:00:01'), config: parseNetConf(CONF, { mode: 'etcd' }) });
  t.is(getValue(etcd, key(formatCidr(lease.subnet))), value('192.168.50.1', '0e:fb:00:00:00:01'));

  const { m: caOnly } = manager(t, etcd, { caFile: certs.caFile, callTimeoutMs: 3_000 });
  await t.throwsAsync(caOnly.getNetworkConfig(), undefined, 'without a client certificate the server refuses us');
});
