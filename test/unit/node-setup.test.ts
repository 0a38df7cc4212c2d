/**
 * Pure parts of node setup: uplink choice (flannel's --iface rules), the
 * stable VtepMAC, subnet.env format, masquerade rule text. No root needed.
 */
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chooseUplink, UplinkError, type InterfaceFacts } from '../../src/control/uplink.js';
import { deriveVtepMac, chooseVtepMac } from '../../src/control/vtep.js';
import { formatSubnetEnv, parseSubnetEnv, writeSubnetEnv, readSubnetEnv } from '../../src/control/subnet-env.js';
import { masqRules, forwardRules, rulesPatch, defaultAsyncExec, IptablesError } from '../../src/control/masquerade.js';
import { parseIPv4, parseCidr, formatIPv4, parseMac } from '../../src/maps/addr.js';

const iface = (name: string, ...ips: string[]): InterfaceFacts => ({
  name, ifindex: name.length, mtu: 1500, mac: '02:00:00:00:00:01', up: true,
  addrs: ips.map((s) => { const [ip, p] = s.split('/'); return { ip: parseIPv4(ip!), prefix: Number(p ?? 24) }; }),
});
const ifaces = [iface('lo', '127.0.0.1/8'), iface('eth0', '10.0.0.5/24', '10.0.0.6/24'), iface('eth1', '192.168.7.9/24'), iface('cni0', '10.244.1.1/24')];
const none = { iface: [], ifaceRegex: [], ifaceCanReach: '', publicIp: '' };
const routes = { defaultIface: 'eth0', canReachIface: null };

test('uplink: default route interface and its first address by default', (t) => {
  const c = chooseUplink(ifaces, none, routes);
  t.is(c.iface.name, 'eth0');
  t.is(formatIPv4(c.publicIp), '10.0.0.5');
  t.is(c.reason, 'default route');
});

test('uplink: --iface by name or by IP, tried in order', (t) => {
  t.is(chooseUplink(ifaces, { ...none, iface: ['eth9', 'eth1'] }, routes).iface.name, 'eth1');
  const byIp = chooseUplink(ifaces, { ...none, iface: ['10.0.0.6'] }, routes);
  t.is(byIp.iface.name, 'eth0');
  t.is(formatIPv4(byIp.publicIp), '10.0.0.6', 'the named address, not the first one');
  const err = t.throws(() => chooseUplink(ifaces, { ...none, iface: ['eth9'] }, routes), { instanceOf: UplinkError });
  t.regex(err?.remedy ?? '', /eth0, eth1/);
});

test('uplink: --iface-regex matches addresses before names; --iface-can-reach; --public-ip', (t) => {
  t.is(chooseUplink(ifaces, { ...none, ifaceRegex: ['^192\\.168\\.'] }, routes).iface.name, 'eth1');
  t.is(chooseUplink(ifaces, { ...none, ifaceRegex: ['^eth1$'] }, routes).iface.name, 'eth1');
  t.throws(() => chooseUplink(ifaces, { ...none, ifaceRegex: ['('] }, routes), { message: /not a valid regular expression/ });
  t.is(chooseUplink(ifaces, { ...none, ifaceCanReach: '8.8.8.8' }, { defaultIface: 'eth0', canReachIface: 'eth1' }).iface.name, 'eth1');
  const pub = chooseUplink(ifaces, { ...none, publicIp: '192.168.7.9' }, routes);
  t.is(pub.iface.name, 'eth1', 'the interface owning --public-ip');
  const nat = chooseUplink(ifaces, { ...none, publicIp: '203.0.113.7' }, routes);
  t.is(nat.iface.name, 'eth0');
  t.is(formatIPv4(nat.publicIp), '203.0.113.7', '--public-ip overrides the interface address (NAT)');
  t.throws(() => chooseUplink(ifaces, none, { defaultIface: null, canReachIface: null }), { message: /no default route/ });
});

test('VtepMAC: derived MACs are stable, unicast, locally administered; published and device MACs win', (t) => {
  const a = deriveVtepMac('node-1/10.0.0.5');
  t.is(a, deriveVtepMac('node-1/10.0.0.5'), 'same identity, same MAC (no new random MAC per start)');
  t.not(a, deriveVtepMac('node-2/10.0.0.6'));
  const b = parseMac(a);
  t.is(b[0]! & 1, 0, 'unicast');
  t.is(b[0]! & 2, 2, 'locally administered');
  t.deepEqual(chooseVtepMac({ published: '0e:11:22:33:44:55', device: '0e:00:00:00:00:01', identity: 'x' }), { mac: '0e:11:22:33:44:55', source: 'published' });
  t.deepEqual(chooseVtepMac({ published: 'garbage', device: '0E:00:00:00:00:01', identity: 'x' }), { mac: '0e:00:00:00:00:01', source: 'device' });
  t.is(chooseVtepMac({ identity: 'x' }).source, 'derived');
});

test('subnet.env: flannel\'s exact lines and order; parses flanneld\'s file back', (t) => {
  const text = formatSubnetEnv({ network: parseCidr('10.244.0.0/16'), subnet: parseCidr('10.244.1.0/24'), mtu: 1450, ipMasq: true });
  t.is(text, 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
  const back = parseSubnetEnv('FLANNEL_NETWORK=10.244.0.0/16,10.245.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=8951\nFLANNEL_IPMASQ=false\n');
  t.deepEqual(back, { network: parseCidr('10.244.0.0/16'), subnet: parseCidr('10.244.7.0/24'), mtu: 8951, ipMasq: false });
  t.deepEqual(parseSubnetEnv('garbage\nFLANNEL_MTU=abc\n'), {});
});

test('subnet.env is written atomically with mode 0644', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fbt-env-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'run', 'flannel', 'subnet.env');
  const env = { network: parseCidr('10.244.0.0/16'), subnet: parseCidr('10.244.3.0/24'), mtu: 1500, ipMasq: false };
  const old = process.umask(0o077);
  try { writeSubnetEnv(file, env); } finally { process.umask(old); }
  t.is(fs.statSync(file).mode & 0o777, 0o644, 'regardless of umask');
  t.deepEqual(readSubnetEnv(file), env);
  t.deepEqual(fs.readdirSync(path.dirname(file)), ['subnet.env'], 'no temp file left');
});

test('masquerade and forward rules: flannel\'s chains, comments and order', (t) => {
  const m = masqRules(parseCidr('10.244.0.0/16'), parseCidr('10.244.1.0/24'), true);
  t.is(m.chain, 'FLANNEL-POSTRTG');
  t.is(m.jump.chain, 'POSTROUTING');
  t.deepEqual(m.rules, [
    '-m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN',
    '-s 10.244.1.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN',
    '-s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment "flanneld masq" -j RETURN',
    '! -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment "flanneld masq" -j RETURN',
    '-s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
    '! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
  ]);
  t.false(masqRules(parseCidr('10.244.0.0/16'), parseCidr('10.244.1.0/24'), false).rules.some((r) => r.includes('random-fully')));
  t.deepEqual(forwardRules(parseCidr('10.244.0.0/16')).rules, [
    '-s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
    '-d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
  ]);
});

test('rulesPatch: nothing when the chain matches and is jumped to; the whole chain (and the jump) otherwise', (t) => {
  const set = forwardRules(parseCidr('10.244.0.0/16'));
  const good = ['*filter', ':FORWARD ACCEPT [0:0]', ':FLANNEL-FWD - [0:0]', `-A FORWARD ${set.jump.rule}`,
    ...set.rules.map((r) => `-A FLANNEL-FWD ${r}`), 'COMMIT', ''].join('\n');
  t.is(rulesPatch(set, good), null);
  const full = ['*filter', ':FLANNEL-FWD - [0:0]', ...set.rules.map((r) => `-A FLANNEL-FWD ${r}`), `-A FORWARD ${set.jump.rule}`, 'COMMIT', ''].join('\n');
  t.is(rulesPatch(set, '*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n'), full, 'no chain: chain, rules and jump');
  const noJump = good.replace(`-A FORWARD ${set.jump.rule}\n`, '');
  t.is(rulesPatch(set, noJump), full, 'jump missing: added');
  const reordered = good.replace(`-A FLANNEL-FWD ${set.rules[0]}\n-A FLANNEL-FWD ${set.rules[1]}`, `-A FLANNEL-FWD ${set.rules[1]}\n-A FLANNEL-FWD ${set.rules[0]}`);
  t.is(rulesPatch(set, reordered), full.replace(`-A FORWARD ${set.jump.rule}\n`, ''), 'rules out of order: the chain is replaced, the jump kept');
});

test('the async command runner survives a command that exits without reading its input (EPIPE), and reports failures as IptablesError', async (t) => {
  /* 'true' closes stdin at once; 4 MiB of input cannot fit the pipe, so the write fails with EPIPE. */
  for (let i = 0; i < 5; i++) t.is(await defaultAsyncExec('true', [], 'x'.repeat(4 << 20)), '');
  t.is(await defaultAsyncExec('cat', [], 'in'), 'in', 'input reaches a command that reads it');
  t.is(await defaultAsyncExec('cat', []), '', 'no input: stdin closed at once');
  const err = await t.throwsAsync(defaultAsyncExec('false', []));
  t.true(err instanceof IptablesError, 'a failing command is an IptablesError');
});
