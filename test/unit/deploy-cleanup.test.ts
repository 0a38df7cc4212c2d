/**
 * deploy/flannel-cleanup.ts, the remove-flannel init container: what stock flanneld leaves on a node is
 * removed (flannel.1, per-peer routes through a gateway inside the Network), nothing else is touched, and
 * only on a node handed over to flannel-bpf (label flannel-bpf/dataplane=bpf). `ip` is a fake here.
 */
import test from 'ava';
import { planCleanup, cleanup, CleanupRefused, type LinkJson, type RouteJson } from '../../deploy/flannel-cleanup.js';
import { parseCidr } from '../../src/maps/addr.js';
import { loadManifest, type Obj } from './deploy-support.js';

const NET = parseCidr('10.244.0.0/16');
const NET_CONF = String(((loadManifest().one('ConfigMap', 'kube-flannel-cfg').data ?? {}) as Obj)['net-conf.json']);

const links: LinkJson[] = [
  { ifname: 'lo' },
  { ifname: 'eth0' },
  { ifname: 'cni0', linkinfo: { info_kind: 'bridge' } },
  { ifname: 'flannel.1', linkinfo: { info_kind: 'vxlan', info_data: { id: 1, port: 8472 } } },
];
/* a stock flannel node: vxlan peers through flannel.1, a DirectRouting / host-gw peer through eth0 */
const routes: RouteJson[] = [
  { dst: 'default', gateway: '192.168.50.254', dev: 'eth0' },
  { dst: '192.168.50.0/24', dev: 'eth0' },
  { dst: '10.244.1.0/24', dev: 'cni0' },
  { dst: '10.244.2.0/24', gateway: '10.244.2.0', dev: 'flannel.1' },
  { dst: '10.244.3.0/24', gateway: '192.168.50.3', dev: 'eth0' },
  { dst: '10.244.4.7', gateway: '192.168.50.4', dev: 'eth0' },
  { dst: '10.244.0.0/16', gateway: '192.168.50.254', dev: 'eth0' },
  { dst: '10.245.0.0/24', gateway: '192.168.50.5', dev: 'eth0' },
  { dst: '10.244.9.0/24', dev: 'eth0', type: 'unreachable' },
  { dst: '10.244.0.0/16', dev: 'flannel-bpf' },
  { dst: '10.244.8.0/24', gateway: '192.168.50.8', dev: 'flannel-bpf' },
];

test('plan: flannel.1 first, then every per-peer route through a gateway inside the Network', (t) => {
  t.deepEqual(planCleanup(NET, links, routes), [
    ['link', 'delete', 'dev', 'flannel.1'],
    ['route', 'delete', '10.244.3.0/24', 'via', '192.168.50.3', 'dev', 'eth0'],
    ['route', 'delete', '10.244.4.7/32', 'via', '192.168.50.4', 'dev', 'eth0'],
  ]);
});

test('plan: nothing on a fresh node; a flannel.1 that is not a VXLAN device is not ours to delete', (t) => {
  const fresh = routes.filter((r) => r.dev !== 'flannel.1' && r.gateway !== '192.168.50.3' && r.gateway !== '192.168.50.4');
  t.deepEqual(planCleanup(NET, links.filter((l) => l.ifname !== 'flannel.1'), fresh), []);
  t.deepEqual(planCleanup(NET, [{ ifname: 'flannel.1', linkinfo: { info_kind: 'veth' } }], []), []);
});

function fakeIp(ls: LinkJson[], rs: RouteJson[]) {
  const calls: string[] = [];
  const ip = (args: string[]): string => {
    calls.push(args.join(' '));
    if (args.join(' ') === '-d -j link show') return JSON.stringify(ls);
    if (args.join(' ') === '-j -4 route show table main') return JSON.stringify(rs);
    return '';
  };
  const mutations = (): string[] => calls.filter((c) => !c.includes('show'));
  return { ip, calls, mutations };
}

test('cleanup: on a node labelled flannel-bpf/dataplane=bpf the leftovers are removed, in order', async (t) => {
  const f = fakeIp(links, routes);
  let asked = 0;
  const out = await cleanup({ netConf: NET_CONF, ip: f.ip, nodeLabels: async () => { asked++; return { 'flannel-bpf/dataplane': 'bpf' }; } });
  t.is(asked, 1);
  t.deepEqual(f.mutations(), ['link delete dev flannel.1', 'route delete 10.244.3.0/24 via 192.168.50.3 dev eth0', 'route delete 10.244.4.7/32 via 192.168.50.4 dev eth0']);
  t.is(out.length, 3);
});

test('cleanup: without the label nothing is changed and the refusal says what to do', async (t) => {
  for (const labels of [{}, { 'flannel-bpf/dataplane': 'migrating' }, null] as Array<Record<string, string> | null>) {
    const f = fakeIp(links, routes);
    const err = await t.throwsAsync(cleanup({ netConf: NET_CONF, ip: f.ip, nodeLabels: async () => labels }), { instanceOf: CleanupRefused });
    t.regex(err?.message ?? '', /flannel\.1/);
    t.regex((err as CleanupRefused | undefined)?.remedy ?? '', /flannel-bpf\/dataplane=bpf/);
    t.deepEqual(f.mutations(), []);
  }
});

test('cleanup: a fresh node needs no API call and changes nothing; --dry-run and --force', async (t) => {
  const fresh = fakeIp([{ ifname: 'eth0' }], [{ dst: 'default', gateway: '192.168.50.254', dev: 'eth0' }]);
  const out = await cleanup({ netConf: NET_CONF, ip: fresh.ip, nodeLabels: async () => { throw new Error('must not be asked'); } });
  t.regex(out.join(), /nothing of stock flannel/);
  t.deepEqual(fresh.mutations(), []);

  const dry = fakeIp(links, routes);
  const planned = await cleanup({ netConf: NET_CONF, ip: dry.ip, dryRun: true, nodeLabels: async () => ({ 'flannel-bpf/dataplane': 'bpf' }) });
  t.deepEqual(dry.mutations(), []);
  t.true(planned.every((l) => l.startsWith('would run: ip ')));

  const forced = fakeIp(links, routes);
  await cleanup({ netConf: NET_CONF, ip: forced.ip, force: true, nodeLabels: async () => { throw new Error('must not be asked'); } });
  t.is(forced.mutations().length, 3);
});

test('cleanup: a net-conf.json the agent would refuse is refused here too, before anything is read or changed', async (t) => {
  const f = fakeIp(links, routes);
  await t.throwsAsync(cleanup({ netConf: '{"Backend":{"Type":"vxlan"}}', ip: f.ip, force: true, nodeLabels: async () => null }), { message: /Network/ });
  t.deepEqual(f.calls, []);
});
