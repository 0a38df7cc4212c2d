/**
 * The flannel-bpf device in this process's private network namespace: created
 * as specified, reused as is by a restart, and a clear error naming stock
 * flanneld's flannel.1 when that device still holds our VNI; the uplink driver
 * read without ethtool.
 */
import test from 'ava';
import { ensureDevice, DeviceError } from '../../src/control/device.js';
import { parseCidr } from '../../src/maps/addr.js';
import { interfaceDriver } from '../../src/loader/ethtool.js';
import { privateNetns } from '../helpers/netns.js';

const { sh } = privateNetns();
sh('ip link add fbup0 type veth peer name fbup0p; ip addr add 192.168.77.2/24 dev fbup0; ip link set fbup0 up; ip link set fbup0p up');

const spec = (name: string, vni: number) => ({
  name, kind: 'vxlan' as const, mac: '0e:fb:00:00:00:01', mtu: 1450, subnet: parseCidr('10.244.7.0/24'),
  network: parseCidr('10.244.0.0/16'), port: 8472, vni, uplink: 'fbup0',
});

test.serial('created as specified, then reused unchanged by a second call (restart)', (t) => {
  const a = ensureDevice(spec('fbdev0', 5));
  t.true(a.created);
  t.is(a.mac, '0e:fb:00:00:00:01');
  t.is(a.mtu, 1450);
  t.regex(sh('ip -d link show dev fbdev0'), /vxlan id 5 .*dstport 8472 nolearning/s);
  t.regex(sh('ip route show 10.244.0.0/16'), /dev fbdev0 .*src 10\.244\.7\.0/);
  const b = ensureDevice(spec('fbdev0', 5));
  t.false(b.created, 'a restart keeps the device (traffic through it never stops)');
  t.is(b.ifindex, a.ifindex);
  sh('ip link del fbdev0');
});

test.serial('stock flanneld\'s flannel.1 holding our VNI: the error names it and the way out', (t) => {
  sh('ip link add flannel.1 type vxlan id 1 dstport 8472 nolearning dev fbup0');
  const err = t.throws(() => ensureDevice(spec('fbdev1', 1)), { instanceOf: DeviceError });
  t.regex(err?.message ?? '', /flannel\.1 already uses VNI 1 on port 8472 \(stock flanneld's device\)/);
  t.regex(err?.remedy ?? '', /ip link del flannel\.1.*migrate-from-flannel\.md/);
  sh('ip link del flannel.1');
});

test.serial('the uplink\'s driver is read in this namespace without the ethtool binary (ETHTOOL_GDRVINFO)', (t) => {
  t.is(interfaceDriver('fbup0'), 'veth');
  t.is(interfaceDriver('lo'), null, 'loopback reports no driver (EOPNOTSUPP)');
  t.is(interfaceDriver('fbnosuch0'), null);
  t.is(interfaceDriver('x'.repeat(20)), null, 'a name longer than IFNAMSIZ');
});
