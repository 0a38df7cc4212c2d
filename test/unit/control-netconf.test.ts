import test from 'ava';
import { parseNetConf, checkNetworkConfig, subnetCapacity, backendPodMtu, backendPort, backendVni, type NetConf } from '../../src/control/config/net-conf.js';
import { ConfigError } from '../../src/control/config/errors.js';
import { FlannelBpfError } from '../../src/loader/errors.js';
import { parseIPv4, formatIPv4, formatCidr } from '../../src/maps/addr.js';

const parse = (o: unknown, mode?: 'kube' | 'etcd'): NetConf => parseNetConf(JSON.stringify(o), mode ? { mode } : {});

function configError(t: import('ava').ExecutionContext, fn: () => unknown): ConfigError {
  const err = t.throws(fn, { instanceOf: ConfigError });
  if (!err) throw new Error('unreachable');
  return err as ConfigError;
}

test('the standard manifest config parses to vxlan with flannel defaults', (t) => {
  const c = parseNetConf('{"Network":"10.244.0.0/16","EnableNFTables":false,"Backend":{"Type":"vxlan"}}');
  t.is(formatCidr(c.network), '10.244.0.0/16');
  t.true(c.enableIPv4);
  t.false(c.enableIPv6);
  t.false(c.enableNFTables);
  t.deepEqual(c.backend, { type: 'vxlan', vni: 1, port: 8472, gbp: false, learning: false, directRouting: false, mtu: null });
  t.false(c.backendDefaulted);
  t.deepEqual(c.warnings, []);
  t.is(c.subnetLen, null);
});

test('keys are case-insensitive like Go encoding/json, at every level', (t) => {
  const c = parse({ network: '10.1.0.0/16', BACKEND: { type: 'VXLAN', vni: 7, port: 4789, directrouting: true, Mtu: 9001, gbp: false, LEARNING: false } });
  t.is(formatCidr(c.network), '10.1.0.0/16');
  t.deepEqual(c.backend, { type: 'vxlan', vni: 7, port: 4789, gbp: false, learning: false, directRouting: true, mtu: 9001 });
});

test('when a field is given twice with different case, the last key wins (Go semantics)', (t) => {
  const c = parseNetConf('{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","VNI":5,"vni":9}}');
  t.is(c.backend.type === 'vxlan' ? c.backend.vni : -1, 9);
});

test('Backend absent → udp (flannel code), with a warning that the docs say vxlan', (t) => {
  const c = parse({ Network: '10.244.0.0/16' });
  t.deepEqual(c.backend, { type: 'udp', port: 8285 });
  t.true(c.backendDefaulted);
  t.true(c.warnings.some((w) => w.includes('udp') && w.includes('vxlan')));
});

test('Backend present without Type is an error naming Backend.Type and the accepted values', (t) => {
  for (const backend of [{}, { VNI: 1 }, { Type: '' }, null]) {
    const e = configError(t, () => parse({ Network: '10.244.0.0/16', Backend: backend }));
    t.is(e.field, 'Backend.Type');
    t.regex(e.message, /"vxlan", "host-gw", "udp"/);
    t.regex(e.problem, /unknown backend type/);
  }
});

test('flannel-only and unknown backend types are rejected with the accepted list', (t) => {
  for (const type of ['wireguard', 'ipip', 'ipsec', 'alloc', 'extension', 'tencent-vpc', 'WireGuard']) {
    const e = configError(t, () => parse({ Network: '10.244.0.0/16', Backend: { Type: type } }));
    t.is(e.field, 'Backend.Type');
    t.is(e.value, type);
    t.is(e.accepted, '"vxlan", "host-gw", "udp"');
    t.regex(e.problem, /does not implement/);
  }
  const e = configError(t, () => parse({ Network: '10.244.0.0/16', Backend: { Type: 'geneve' } }));
  t.regex(e.problem, /unknown backend type "geneve"/);
  t.true(e instanceof FlannelBpfError);
  t.is(typeof e.remedy, 'string');
  t.true(e.remedy.length > 0);
});

test('Backend.Type is looked up lower-cased', (t) => {
  t.is(parse({ Network: '10.244.0.0/16', Backend: { Type: 'Host-GW' } }).backend.type, 'host-gw');
  t.is(parse({ Network: '10.244.0.0/16', Backend: { Type: 'UDP' } }).backend.type, 'udp');
});

test('vxlan: Port 0 means 8472; VNI/Port/MTU ranges are enforced with the field path', (t) => {
  const c = parse({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', Port: 0 } });
  t.is(backendPort(c.backend), 8472);
  const cases: [Record<string, unknown>, string][] = [
    [{ VNI: 0 }, 'Backend.VNI'], [{ VNI: 16777216 }, 'Backend.VNI'], [{ VNI: -1 }, 'Backend.VNI'], [{ VNI: 1.5 }, 'Backend.VNI'], [{ VNI: '1' }, 'Backend.VNI'],
    [{ Port: 65536 }, 'Backend.Port'], [{ Port: -1 }, 'Backend.Port'], [{ Port: '8472' }, 'Backend.Port'],
    [{ MTU: 67 }, 'Backend.MTU'], [{ MTU: 65536 }, 'Backend.MTU'], [{ MTU: 0 }, 'Backend.MTU'],
    [{ DirectRouting: 'true' }, 'Backend.DirectRouting'], [{ GBP: 1 }, 'Backend.GBP'], [{ Learning: 'no' }, 'Backend.Learning'],
  ];
  for (const [extra, field] of cases) {
    const e = configError(t, () => parse({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', ...extra } }));
    t.is(e.field, field, JSON.stringify(extra));
    t.deepEqual(e.value, Object.values(extra)[0]);
    t.true(e.message.includes(field) && e.message.includes('accepted'), e.message);
  }
  t.is(backendVni(parse({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', VNI: 16777215 } }).backend), 16777215);
  t.is(backendPort(parse({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', Port: 65535 } }).backend), 65535);
});

test('vxlan: null for a scalar keeps the default (Go leaves the field untouched)', (t) => {
  const c = parse({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', VNI: null, DirectRouting: null } });
  t.deepEqual(c.backend, { type: 'vxlan', vni: 1, port: 8472, gbp: false, learning: false, directRouting: false, mtu: null });
});

test('vxlan: GBP and Learning are accepted with a warning; unknown and Windows keys are warned about', (t) => {
  const c = parse({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', GBP: true, Learning: true, MacPrefix: '0E-2A', DirectRoute: true } });
  t.true(c.backend.type === 'vxlan' && c.backend.gbp && c.backend.learning);
  t.true(c.warnings.some((w) => w.includes('GBP')));
  t.true(c.warnings.some((w) => w.includes('Learning')));
  t.true(c.warnings.some((w) => w.includes('MacPrefix') && w.includes('Windows')));
  t.true(c.warnings.some((w) => w.includes('DirectRoute')));
});

test('udp: Port default 8285, range 1..65535; host-gw has no options', (t) => {
  t.deepEqual(parse({ Network: '10.244.0.0/16', Backend: { Type: 'udp' } }).backend, { type: 'udp', port: 8285 });
  t.deepEqual(parse({ Network: '10.244.0.0/16', Backend: { Type: 'udp', Port: 9000 } }).backend, { type: 'udp', port: 9000 });
  t.is(configError(t, () => parse({ Network: '10.244.0.0/16', Backend: { Type: 'udp', Port: 0 } })).field, 'Backend.Port');
  const hg = parse({ Network: '10.244.0.0/16', Backend: { Type: 'host-gw', Port: 1 } });
  t.deepEqual(hg.backend, { type: 'host-gw' });
  t.true(hg.warnings.some((w) => w.includes('Backend.Port')));
  t.is(backendPort(hg.backend), 0);
  t.is(backendVni(hg.backend), 0);
});

test('EnableIPv6=true is refused with a clear IPv4-only message; EnableIPv4=false too', (t) => {
  const e = configError(t, () => parse({ Network: '10.244.0.0/16', EnableIPv6: true, IPv6Network: 'fd00::/56', Backend: { Type: 'vxlan' } }));
  t.is(e.field, 'EnableIPv6');
  t.regex(e.problem, /IPv4-only/);
  t.is(configError(t, () => parse({ Network: '10.244.0.0/16', EnableIPv4: false })).field, 'EnableIPv4');
  t.is(configError(t, () => parse({ Network: '10.244.0.0/16', EnableIPv6: 'yes' })).field, 'EnableIPv6');
  const c = parse({ Network: '10.244.0.0/16', EnableIPv6: false, IPv6Network: 'fd00::/56', Backend: { Type: 'vxlan' } });
  t.true(c.warnings.some((w) => w.includes('IPv6Network')));
});

test('Network: required, a CIDR, host bits masked with a warning, /0 refused', (t) => {
  t.is(configError(t, () => parse({ Backend: { Type: 'vxlan' } })).field, 'Network');
  for (const bad of ['10.244.0.0', '10.244.0.0/33', 'fd00::/64', '10.244.0.256/16', 16, null, '0.0.0.0/0']) {
    const e = configError(t, () => parse({ Network: bad, Backend: { Type: 'vxlan' } }));
    t.is(e.field, 'Network', String(bad));
    t.deepEqual(e.value, bad);
  }
  const c = parse({ Network: '10.244.7.9/16', Backend: { Type: 'vxlan' } });
  t.is(formatCidr(c.network), '10.244.0.0/16');
  t.true(c.warnings.some((w) => w.includes('host bits')));
});

test('malformed documents name the document', (t) => {
  const e1 = t.throws(() => parseNetConf('{"Network":', { document: '/etc/kube-flannel/net-conf.json' }), { instanceOf: ConfigError });
  t.regex(e1?.message ?? '', /^\/etc\/kube-flannel\/net-conf\.json: /);
  t.regex(e1?.message ?? '', /not valid JSON/);
  t.is((t.throws(() => parseNetConf('[1,2]'), { instanceOf: ConfigError }) as ConfigError).problem, 'not a JSON object');
  t.is((t.throws(() => parse({ Network: '10.244.0.0/16', Backend: 'vxlan' }), { instanceOf: ConfigError }) as ConfigError).field, 'Backend');
});

test('unknown top-level keys are warnings; EnableNFTables parsed, and warned about when true (iptables only)', (t) => {
  const c = parse({ Network: '10.244.0.0/16', EnableNFTables: true, Backend: { Type: 'vxlan' }, Netwrok: 'x' });
  t.true(c.enableNFTables);
  t.is(c.warnings[0], 'unknown key "Netwrok" ignored (flannel ignores it too)');
  t.regex(c.warnings[1] ?? '', /^EnableNFTables is true, but flannel-bpf programs .* with iptables only; .*nftables tables \(flannel, flannel-ipv6\) deleted/);
  t.is(c.warnings.length, 2);
});

test('kube mode warns that SubnetLen/Min/Max are ignored (issue #1328); etcd mode does not', (t) => {
  const o = { Network: '10.244.0.0/16', SubnetLen: 26, Backend: { Type: 'vxlan' } };
  t.true(parse(o, 'kube').warnings.some((w) => w.includes('SubnetLen') && w.includes('kube')));
  t.deepEqual(parse(o, 'etcd').warnings, []);
  t.is(parse(o, 'kube').subnetLen, 26);
});

test('SubnetLen, SubnetMin, SubnetMax parse types', (t) => {
  t.is(configError(t, () => parse({ Network: '10.244.0.0/16', SubnetLen: -1 })).field, 'SubnetLen');
  t.is(configError(t, () => parse({ Network: '10.244.0.0/16', SubnetLen: '24' })).field, 'SubnetLen');
  t.is(configError(t, () => parse({ Network: '10.244.0.0/16', SubnetMin: '10.244.1' })).field, 'SubnetMin');
  t.is(configError(t, () => parse({ Network: '10.244.0.0/16', SubnetMax: null })).field, 'SubnetMax');
  const c = parse({ Network: '10.244.0.0/16', SubnetLen: 0, SubnetMin: '0.0.0.0' });
  t.is(c.subnetLen, null);
  t.is(c.subnetMin, null);
});

/* ------------------------------------------------------- CheckNetworkConfig */

const check = (o: Record<string, unknown>) => checkNetworkConfig(parse({ Backend: { Type: 'vxlan' }, ...o }));

test('etcd: defaults — /16 → SubnetLen 24, SubnetMin = second subnet, SubnetMax = last subnet', (t) => {
  const c = check({ Network: '10.244.0.0/16' });
  t.is(c.subnetLen, 24);
  t.is(formatIPv4(c.subnetMin), '10.244.1.0');
  t.is(formatIPv4(c.subnetMax), '10.244.255.0');
  t.is(subnetCapacity(c), 255);
});

test('etcd: prefix ≤ 22 → /24; 23..28 → prefix+2', (t) => {
  t.is(check({ Network: '10.0.0.0/8' }).subnetLen, 24);
  t.is(check({ Network: '10.244.0.0/22' }).subnetLen, 24);
  t.is(check({ Network: '10.244.0.0/23' }).subnetLen, 25);
  const c = check({ Network: '10.244.0.0/28' });
  t.is(c.subnetLen, 30);
  t.is(formatIPv4(c.subnetMin), '10.244.0.4');
  t.is(formatIPv4(c.subnetMax), '10.244.0.12');
});

test('etcd: flannel\'s exact error texts', (t) => {
  const cases: [Record<string, unknown>, string, string][] = [
    [{ Network: '10.244.0.0/16', SubnetLen: 31 }, 'SubnetLen', 'SubnetLen must be less than /31'],
    [{ Network: '10.244.0.0/16', SubnetLen: 17 }, 'SubnetLen', 'network must be able to accommodate at least four subnets'],
    [{ Network: '10.244.0.0/29' }, 'Network', 'network is too small. Minimum useful network prefix is /28'],
    [{ Network: '10.244.0.0/16', SubnetMin: '10.245.0.0' }, 'SubnetMin', 'SubnetMin is not in the range of the Network'],
    [{ Network: '10.244.0.0/16', SubnetMax: '10.243.255.0' }, 'SubnetMax', 'SubnetMax is not in the range of the Network'],
    [{ Network: '10.244.0.0/16', SubnetMin: '10.244.1.128' }, 'SubnetMin', 'SubnetMin is not on a SubnetLen boundary: 10.244.1.128'],
    [{ Network: '10.244.0.0/16', SubnetLen: 26, SubnetMax: '10.244.200.32' }, 'SubnetMax', 'SubnetMax is not on a SubnetLen boundary: 10.244.200.32'],
  ];
  for (const [o, field, text] of cases) {
    const e = configError(t, () => check(o));
    t.is(e.problem, text, JSON.stringify(o));
    t.is(e.field, field);
    t.true(e.message.includes(text));
  }
});

test('etcd: SubnetLen exactly prefix+2 and 30 are accepted; explicit bounds kept', (t) => {
  t.is(check({ Network: '10.244.0.0/16', SubnetLen: 18 }).subnetLen, 18);
  t.is(check({ Network: '10.244.0.0/16', SubnetLen: 30 }).subnetLen, 30);
  const c = check({ Network: '10.244.0.0/16', SubnetMin: '10.244.10.0', SubnetMax: '10.244.20.0' });
  t.is(c.subnetMin, parseIPv4('10.244.10.0'));
  t.is(c.subnetMax, parseIPv4('10.244.20.0'));
  t.is(subnetCapacity(c), 11);
  const inverted = check({ Network: '10.244.0.0/16', SubnetMin: '10.244.20.0', SubnetMax: '10.244.10.0' });
  t.is(subnetCapacity(inverted), 0);
  t.true(inverted.warnings.some((w) => w.includes('out of subnets')));
});

test('etcd: SubnetMax default wraps like Go uint32 at the top of the address space', (t) => {
  const c = check({ Network: '255.255.0.0/16' });
  t.is(formatIPv4(c.subnetMax), '255.255.255.0');
});

test('checkNetworkConfig is pure (input not modified)', (t) => {
  const input = parse({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } });
  const snapshot = JSON.stringify(input);
  checkNetworkConfig(input);
  t.is(JSON.stringify(input), snapshot);
});

test('backendPodMtu: vxlan −50 (or Backend.MTU −50), host-gw as is, udp −28', (t) => {
  t.is(backendPodMtu(parse({ Network: '10.0.0.0/8', Backend: { Type: 'vxlan' } }).backend, 1500), 1450);
  t.is(backendPodMtu(parse({ Network: '10.0.0.0/8', Backend: { Type: 'vxlan', MTU: 9001 } }).backend, 1500), 8951);
  t.is(backendPodMtu(parse({ Network: '10.0.0.0/8', Backend: { Type: 'host-gw' } }).backend, 1500), 1500);
  t.is(backendPodMtu(parse({ Network: '10.0.0.0/8', Backend: { Type: 'udp' } }).backend, 1500), 1472);
});
