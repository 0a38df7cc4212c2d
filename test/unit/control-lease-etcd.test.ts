import test from 'ava';
import {
  etcdSubnetKey, parseEtcdSubnetKey, etcdLeaseValue, parseEtcdLease, etcdLeasePath, etcdConfigPath, etcdSubnetsPath, etcdValueOfLease,
  type EtcdSubnetKey,
} from '../../src/control/lease/etcd.js';
import { vxlanBackendData } from '../../src/control/lease/backend-data.js';
import type { Lease, LeaseParse, Rejection, RejectReason } from '../../src/control/lease/types.js';
import { parseCidr, parseIPv4, formatCidr } from '../../src/maps/addr.js';

function leaseOf(t: import('ava').ExecutionContext, r: LeaseParse): Lease {
  if (r.kind !== 'lease') t.fail(`expected a lease, got ${JSON.stringify(r)}`);
  return (r as { lease: Lease }).lease;
}
function rejectionOf(t: import('ava').ExecutionContext, r: LeaseParse): Rejection {
  if (r.kind !== 'rejected') t.fail(`expected a rejection, got ${JSON.stringify(r)}`);
  return (r as { rejection: Rejection }).rejection;
}

test('subnet key format and round trip', (t) => {
  t.is(etcdSubnetKey(parseCidr('10.244.1.0/24')), '10.244.1.0-24');
  for (const k of ['10.244.1.0-24', '10.0.0.0-8', '192.168.255.252-30', '10.244.128.0-17']) {
    const p = parseEtcdSubnetKey(k) as EtcdSubnetKey;
    t.is(typeof p, 'object');
    t.is(etcdSubnetKey(p.subnet), k);
    t.is(p.key, k);
  }
});

test('subnet key: full path accepted, IPv6 part kept in the key but not routed', (t) => {
  const p = parseEtcdSubnetKey('/coreos.com/network/subnets/10.244.1.0-24&fd00:10:244:1::-64') as EtcdSubnetKey;
  t.is(p.key, '10.244.1.0-24&fd00:10:244:1::-64');
  t.is(formatCidr(p.subnet), '10.244.1.0/24');
  t.is(p.ipv6, 'fd00:10:244:1::-64');
});

test('subnet key: invalid keys are reported, not thrown', (t) => {
  for (const k of ['10.244.1.0/24', '10.244.1-24', '10.244.1.0-33', '10.244.1.0-0', '10.244.1.5-24', '300.244.1.0-24', 'config', '010.244.1.0-24', 'x10.244.1.0-24']) {
    t.is(typeof parseEtcdSubnetKey(k), 'string', k);
  }
});

test('paths follow path.Join (no double or trailing slashes)', (t) => {
  t.is(etcdConfigPath(), '/coreos.com/network/config');
  t.is(etcdConfigPath('/coreos.com/network/'), '/coreos.com/network/config');
  t.is(etcdSubnetsPath('/x//y'), '/x/y/subnets');
  t.is(etcdLeasePath('/coreos.com/network', parseCidr('10.244.1.0/24')), '/coreos.com/network/subnets/10.244.1.0-24');
});

test('value: exact bytes flannel writes for vxlan (docs example)', (t) => {
  const v = etcdLeaseValue({ publicIp: parseIPv4('192.168.64.3'), backendType: 'vxlan', vni: 1, vtepMac: 'c6:d2:32:6f:8f:44' });
  t.is(v, '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}');
});

test('value: host-gw has no BackendData; udp has neither BackendType nor BackendData', (t) => {
  t.is(etcdLeaseValue({ publicIp: parseIPv4('10.0.0.2'), backendType: 'host-gw' }), '{"PublicIP":"10.0.0.2","PublicIPv6":null,"BackendType":"host-gw"}');
  t.is(etcdLeaseValue({ publicIp: parseIPv4('10.0.0.3'), backendType: 'udp' }), '{"PublicIP":"10.0.0.3","PublicIPv6":null}');
});

test('vxlanBackendData: compact, VNI first, VtepMAC last and lower-case', (t) => {
  t.is(vxlanBackendData(4096, '0E:2A:00:AB:cd:01'), '{"VNI":4096,"VtepMAC":"0e:2a:00:ab:cd:01"}');
  t.throws(() => vxlanBackendData(1, '01:00:5e:00:00:01'));
  t.throws(() => vxlanBackendData(-1, '0e:2a:00:ab:cd:01'));
});

test('parse: vxlan value round trip', (t) => {
  const value = etcdLeaseValue({ publicIp: parseIPv4('192.168.64.3'), backendType: 'vxlan', vni: 1, vtepMac: 'c6:d2:32:6f:8f:44' });
  const l = leaseOf(t, parseEtcdLease('/coreos.com/network/subnets/10.244.3.0-24', value, { expiration: 1234 }));
  t.deepEqual(l, {
    key: '10.244.3.0-24', subnet: parseCidr('10.244.3.0/24'), publicIp: parseIPv4('192.168.64.3'),
    backendType: 'vxlan', vtepMac: 'c6:d2:32:6f:8f:44', vni: 1, expiration: 1234,
  });
  t.is(etcdValueOfLease(l), value);
});

test('parse: udp lease (empty BackendType) becomes backendType udp and round-trips', (t) => {
  const l = leaseOf(t, parseEtcdLease('10.244.5.0-24', Buffer.from('{"PublicIP":"10.0.0.3","PublicIPv6":null}')));
  t.is(l.backendType, 'udp');
  t.is(l.vtepMac, undefined);
  t.is(etcdValueOfLease(l), '{"PublicIP":"10.0.0.3","PublicIPv6":null}');
});

test('parse: keys are case-insensitive (Go), host-gw BackendData ignored, foreign backends kept verbatim', (t) => {
  const l = leaseOf(t, parseEtcdLease('10.244.5.0-24', '{"publicip":"10.0.0.3","backendtype":"vxlan","backenddata":{"vni":2,"vtepmac":"0e:00:00:00:00:01"}}'));
  t.is(l.vni, 2);
  t.is(l.vtepMac, '0e:00:00:00:00:01');
  const hg = leaseOf(t, parseEtcdLease('10.244.6.0-24', '{"PublicIP":"10.0.0.4","BackendType":"host-gw","BackendData":"garbage"}'));
  t.is(hg.backendType, 'host-gw');
  const wg = leaseOf(t, parseEtcdLease('10.244.7.0-24', '{"PublicIP":"10.0.0.5","BackendType":"wireguard","BackendData":{"PublicKey":"x","Port":51820}}'));
  t.is(wg.backendType, 'wireguard');
  t.throws(() => etcdValueOfLease(wg));
});

test('parse: a vxlan lease without VNI is accepted with vni undefined (flannel never reads it)', (t) => {
  const l = leaseOf(t, parseEtcdLease('10.244.5.0-24', '{"PublicIP":"10.0.0.3","BackendType":"vxlan","BackendData":{"VtepMAC":"0e:00:00:00:00:01"}}'));
  t.is(l.vni, undefined);
});

test('parse: rejections carry the reason code and name the lease', (t) => {
  const cases: [string, string, RejectReason][] = [
    ['10.244.1.5-24', '{"PublicIP":"10.0.0.1"}', 'bad_subnet'],
    ['config', '{"Network":"10.244.0.0/16"}', 'bad_subnet'],
    ['10.244.1.0-24', '{"PublicIP":"10.0.0.1"', 'malformed_json'],
    ['10.244.1.0-24', '"10.0.0.1"', 'malformed_json'],
    ['10.244.1.0-24', '{"PublicIPv6":null}', 'bad_public_ip'],
    ['10.244.1.0-24', '{"PublicIP":"10.0.0.256"}', 'bad_public_ip'],
    ['10.244.1.0-24', '{"PublicIP":167772161}', 'bad_public_ip'],
    ['10.244.1.0-24', '{"PublicIP":"10.0.0.1","BackendType":5}', 'malformed_json'],
    ['10.244.1.0-24', '{"PublicIP":"10.0.0.1","BackendType":"vxlan"}', 'malformed_json'],
    ['10.244.1.0-24', '{"PublicIP":"10.0.0.1","BackendType":"vxlan","BackendData":[1]}', 'malformed_json'],
    ['10.244.1.0-24', '{"PublicIP":"10.0.0.1","BackendType":"vxlan","BackendData":{"VNI":"1","VtepMAC":"0e:00:00:00:00:01"}}', 'malformed_json'],
    ['10.244.1.0-24', '{"PublicIP":"10.0.0.1","BackendType":"vxlan","BackendData":{"VNI":1}}', 'bad_vtep_mac'],
    ['10.244.1.0-24', '{"PublicIP":"10.0.0.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"zz:00:00:00:00:01"}}', 'bad_vtep_mac'],
    ['10.244.1.0-24', '{"PublicIP":"10.0.0.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"01:00:5e:00:00:01"}}', 'bad_vtep_mac'],
    ['10.244.1.0-24', '{"PublicIP":"10.0.0.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"00:00:00:00:00:00"}}', 'bad_vtep_mac'],
  ];
  for (const [key, value, reason] of cases) {
    const r = rejectionOf(t, parseEtcdLease(`/coreos.com/network/subnets/${key}`, value));
    t.is(r.reason, reason, `${key} ${value}`);
    t.is(r.leaseKey, key);
    t.true(r.message.includes(key), r.message);
  }
});
