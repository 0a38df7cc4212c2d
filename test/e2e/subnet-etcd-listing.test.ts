/**
 * The etcd subnet manager lists the subnets once per start: acquireLease's
 * listing becomes the watch's first snapshot, and the watch starts at that
 * listing's revision + 1, so what changed in between arrives as events. And
 * acquireLease parses only the records that can carry our public IP. Against
 * a REAL etcd (Debian's /usr/bin/etcd 3.4) in this process's private network
 * namespace.
 */
import test, { type ExecutionContext } from 'ava';
import { privateNetns } from '../helpers/netns.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { EtcdSubnetManager, LISTING_REUSE_MS, type EtcdSubnetManagerOptions } from '../../src/control/subnet/etcd.js';
import type { LeaseEvent } from '../../src/control/subnet/types.js';
import { parseNetConf } from '../../src/control/config/net-conf.js';
import { createLogger, createTestSink, type TestSink } from '../../src/control/log.js';
import type { OwnLeaseAttrs } from '../../src/control/lease/backend-data.js';
import type { Lease } from '../../src/control/lease/types.js';
import { formatCidr, parseIPv4 } from '../../src/maps/addr.js';

privateNetns();

const PREFIX = '/coreos.com/network';
const key = (subnet: string): string => `${PREFIX}/subnets/${subnet.replace('/', '-')}`;
const vxlan = (ip: string, mac: string): OwnLeaseAttrs => ({ publicIp: parseIPv4(ip), backendType: 'vxlan', vni: 1, vtepMac: mac });
const value = (ip: string, mac: string): string => `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`;

async function etcdWith(t: ExecutionContext): Promise<EtcdServer> {
  const etcd = await startEtcd({ name: 'listing' });
  t.teardown(() => etcd.close());
  etcd.ctl(['put', `${PREFIX}/config`, '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}']);
  return etcd;
}

/** A manager whose subnet listings (ranges over <prefix>/subnets/) are counted. */
function manager(t: ExecutionContext, etcd: EtcdServer, extra: Partial<EtcdSubnetManagerOptions> = {}): { m: EtcdSubnetManager; sink: TestSink; listings: () => number } {
  const sink = createTestSink();
  const m = new EtcdSubnetManager({ endpoints: [etcd.endpoint], logger: createLogger({ level: 'debug', sink }), random: () => 0, ...extra });
  t.teardown(() => m.close());
  let n = 0;
  const kv = m.client.kv;
  const range = kv.range.bind(kv);
  kv.range = ((req: Parameters<typeof range>[0], opts?: Parameters<typeof range>[1]) => {
    if (req.range_end && Buffer.from(req.key as Uint8Array).toString('utf8') === `${PREFIX}/subnets/`) n++;
    return range(req, opts);
  }) as typeof kv.range;
  return { m, sink, listings: () => n };
}

async function acquire(m: EtcdSubnetManager, attrs: OwnLeaseAttrs): Promise<Lease> {
  const config = parseNetConf(await m.getNetworkConfig(), { mode: 'etcd' });
  return m.acquireLease({ attrs, config, previousSubnet: null });
}

function watch(t: ExecutionContext, m: EtcdSubnetManager): LeaseEvent[] {
  const events: LeaseEvent[] = [];
  const ac = new AbortController();
  const done = m.watchLeases((e) => events.push(e), ac.signal);
  t.teardown(async () => { ac.abort(); await done; });
  return events;
}

async function until(pred: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const short = (e: LeaseEvent): string => (e.type === 'snapshot'
  ? `snapshot ${e.leases.map((l) => l.key).join(',')} / rejected ${e.rejected.map((r) => `${r.leaseKey}:${r.reason}`).join(',')}`
  : e.type === 'removed' ? `removed ${e.key}` : e.type === 'rejected' ? `rejected ${e.rejection.leaseKey}` : `${e.type} ${e.lease.key}`);

test('one listing per start: the watch snapshots acquireLease\'s listing and replays what changed since as events', async (t) => {
  const etcd = await etcdWith(t);
  etcd.ctl(['put', key('10.244.20.0/24'), value('192.168.60.20', '0e:fb:00:00:60:20')]);
  etcd.ctl(['put', key('10.244.21.0/24'), value('192.168.60.21', '0e:fb:00:00:60:21')]);
  etcd.ctl(['put', key('10.244.22.0/24'), 'not json']);
  const { m, listings } = manager(t, etcd, {
    hooks: {
      /* After the listing, before our key is created: changes the snapshot must not contain but the watch must deliver. */
      beforeCreate: () => {
        etcd.ctl(['put', key('10.244.23.0/24'), value('192.168.60.23', '0e:fb:00:00:60:23')]);
        etcd.ctl(['del', key('10.244.20.0/24')]);
        etcd.ctl(['put', key('10.244.21.0/24'), value('192.168.60.21', '0e:fb:00:00:60:99')]);
      },
    },
  });
  const own = await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  t.is(listings(), 1);
  const events = watch(t, m);
  await until(() => events.length >= 4, 'the snapshot and three events');
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(events.map(short), [
    'snapshot 10.244.20.0-24,10.244.21.0-24 / rejected 10.244.22.0-24:malformed_json',
    'added 10.244.23.0-24',
    'removed 10.244.20.0-24',
    'updated 10.244.21.0-24',
  ], 'our own key (created after the listing) is not an event');
  t.is(listings(), 1, 'the watch did not list again');
  t.is(formatCidr(own.subnet), '10.244.1.0/24');
});

test('a watch that starts long after the acquisition lists afresh', async (t) => {
  const etcd = await etcdWith(t);
  etcd.ctl(['put', key('10.244.20.0/24'), value('192.168.60.20', '0e:fb:00:00:60:20')]);
  let skew = 0;
  const { m, listings } = manager(t, etcd, { now: () => Date.now() + skew });
  await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  skew = LISTING_REUSE_MS + 1000;
  const events = watch(t, m);
  await until(() => events.length >= 1, 'the snapshot');
  t.is(listings(), 2);
  t.deepEqual(events.map(short), ['snapshot 10.244.20.0-24 / rejected ']);
});

test('the lease carrying our public IP is found even when its JSON spells the IP with escapes (values are parsed only when they can match)', async (t) => {
  const etcd = await etcdWith(t);
  etcd.ctl(['put', key('10.244.7.0/24'), '{"PublicIP":"192.168.50.\\u0031","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:fb:00:00:00:07"}}']);
  etcd.ctl(['put', key('10.244.8.0/24'), value('192.168.50.18', '0e:fb:00:00:00:08')]); /* contains "192.168.50.1" as text: parsed, not ours */
  const { m, sink } = manager(t, etcd);
  const own = await acquire(m, vxlan('192.168.50.1', '0e:fb:00:00:00:01'));
  t.is(formatCidr(own.subnet), '10.244.7.0/24');
  t.is(own.vtepMac, '0e:fb:00:00:00:07', 'the stored VtepMAC is kept');
  t.true(sink.records().some((r) => /Found lease \(ip: 10\.244\.7\.0\/24\) for current IP \(192\.168\.50\.1\), reusing/.test(r.msg)));
});
