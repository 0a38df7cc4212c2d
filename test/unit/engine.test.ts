/** Decap engine choice (--decap=auto|xdp|kernel|tc) per backend and uplink driver. */
import test from 'ava';
import { resolveEngine, EngineError } from '../../src/loader/engine.js';

test('auto: xdp on physical NICs with native XDP, kernel on veth and virtual NICs (vxlan)', (t) => {
  t.is(resolveEngine('auto', 'vxlan', { driver: 'mlx5_core' }), 'xdp');
  t.is(resolveEngine('auto', 'vxlan', { driver: 'ixgbe' }), 'xdp');
  t.is(resolveEngine('auto', 'vxlan', { driver: 'veth' }), 'kernel');
  t.is(resolveEngine('auto', 'vxlan', { driver: 'virtio_net' }), 'kernel');
});

test('auto with the fast path: tc on veth and virtual NICs (one-pass decap + delivery), xdp on physical XDP NICs', (t) => {
  t.is(resolveEngine('auto', 'vxlan', { driver: 'veth' }, true), 'tc');
  t.is(resolveEngine('auto', 'vxlan', { driver: 'virtio_net' }, true), 'tc');
  t.is(resolveEngine('auto', 'vxlan', { driver: 'mlx5_core' }, true), 'xdp');
  t.is(resolveEngine('kernel', 'vxlan', { driver: 'veth' }, true), 'kernel', 'an explicit request wins');
});

test('udp backend: xdp or tc, never kernel', (t) => {
  t.is(resolveEngine('auto', 'udp', { driver: 'i40e' }), 'xdp');
  t.is(resolveEngine('auto', 'udp', { driver: 'veth' }), 'tc');
  const err = t.throws(() => resolveEngine('kernel', 'udp', { driver: 'veth' }), { instanceOf: EngineError });
  t.regex(err?.remedy ?? '', /--decap=xdp or --decap=tc/);
});

test('explicit requests are honoured; host-gw has nothing to decapsulate', (t) => {
  t.is(resolveEngine('tc', 'vxlan', { driver: 'mlx5_core' }), 'tc');
  t.is(resolveEngine('xdp', 'vxlan', { driver: 'veth' }), 'xdp');
  t.is(resolveEngine('auto', 'host-gw', { driver: 'mlx5_core' }), 'tc');
  t.is(resolveEngine('kernel', 'host-gw', { driver: 'veth' }), 'tc');
});
