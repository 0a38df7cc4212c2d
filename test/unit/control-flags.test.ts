import test from 'ava';
import {
  parseFlags, FLAG_SPECS, envVarName, defaultFlags, formatUsage, resolveNodeName, type AgentFlags,
} from '../../src/control/config/flags.js';
import { ConfigError } from '../../src/control/config/errors.js';

const NOENV = {};
const flags = (argv: string[], env: Record<string, string | undefined> = NOENV): AgentFlags => parseFlags(argv, env).flags;

function configError(t: import('ava').ExecutionContext, fn: () => unknown): ConfigError {
  const err = t.throws(fn, { instanceOf: ConfigError });
  if (!err) throw new Error('unreachable');
  return err as ConfigError;
}

test('defaults match flanneld (flannel-compat.md §2) and ours (brief)', (t) => {
  const f = flags([]);
  t.deepEqual(f.etcdEndpoints, ['http://127.0.0.1:4001', 'http://127.0.0.1:2379']);
  t.is(f.etcdPrefix, '/coreos.com/network');
  t.is(f.etcdKeyfile, '');
  t.is(f.etcdCertfile, '');
  t.is(f.etcdCafile, '');
  t.is(f.etcdUsername, '');
  t.is(f.etcdPassword, '');
  t.false(f.kubeSubnetMgr);
  t.is(f.kubeApiUrl, '');
  t.is(f.kubeconfigFile, '');
  t.is(f.kubeAnnotationPrefix, 'flannel.alpha.coreos.com');
  t.deepEqual(f.iface, []);
  t.deepEqual(f.ifaceRegex, []);
  t.is(f.ifaceCanReach, '');
  t.is(f.publicIp, '');
  t.is(f.subnetFile, '/run/flannel/subnet.env');
  t.is(f.subnetLeaseRenewMargin, 60);
  t.false(f.ipMasq);
  t.false(f.ipMasqFullyRandomDisable);
  t.true(f.iptablesForwardRules);
  t.is(f.iptablesResync, 5);
  t.is(f.healthzIp, '0.0.0.0');
  t.is(f.healthzPort, 0);
  t.is(f.netConfigPath, '/etc/kube-flannel/net-conf.json');
  t.true(f.setNodeNetworkUnavailable);
  t.false(f.version);
  t.is(f.v, 0);
  t.is(f.bpffsPinDir, '/sys/fs/bpf/flannel-bpf');
  t.deepEqual(f.metricsAddr, { host: '0.0.0.0', port: 9472 });
  t.is(f.maxPeers, 65536);
  t.is(f.decap, 'auto');
  t.true(f.fastPath, 'the fast path is on by default (the kube-proxy scenarios pass with it)');
  t.is(f.nodeName, '');
  t.is(f.etcdConfig, '');
  t.is(f.stateDir, '/run/flannel-bpf');
  t.deepEqual(f, defaultFlags());
});

test('FLAG_SPECS lists every flag of the brief with its env var, and every AgentFlags key once', (t) => {
  const names = FLAG_SPECS.map((s) => s.name);
  for (const n of ['etcd-endpoints', 'etcd-prefix', 'etcd-keyfile', 'etcd-certfile', 'etcd-cafile', 'etcd-username', 'etcd-password',
    'kube-subnet-mgr', 'kube-api-url', 'kubeconfig-file', 'kube-annotation-prefix', 'iface', 'iface-regex', 'iface-can-reach',
    'public-ip', 'subnet-file', 'subnet-lease-renew-margin', 'ip-masq', 'ip-masq-fully-random-disable', 'iptables-forward-rules',
    'iptables-resync', 'healthz-ip', 'healthz-port', 'net-config-path', 'set-node-network-unavailable', 'version', 'v',
    'bpffs-pin-dir', 'metrics-addr', 'max-peers', 'decap', 'fast-path', 'node-name', 'etcd-config', 'state-dir']) {
    t.true(names.includes(n), n);
  }
  t.is(new Set(names).size, names.length);
  t.is(new Set(FLAG_SPECS.map((s) => s.key)).size, FLAG_SPECS.length);
  t.deepEqual(new Set(FLAG_SPECS.map((s) => s.key)), new Set(Object.keys(defaultFlags())));
  const byName = new Map(FLAG_SPECS.map((s) => [s.name, s]));
  t.is(byName.get('max-peers')?.env, 'FLANNELD_MAX_PEERS');
  t.is(byName.get('iface-regex')?.env, 'FLANNELD_IFACE_REGEX');
  t.is(byName.get('log_backtrace_at')?.env, 'FLANNELD_LOG_BACKTRACE_AT');
  t.is(byName.get('version')?.env, null);
  t.is(byName.get('ip-masq')?.origin, 'flannel');
  t.is(byName.get('decap')?.origin, 'flannel-bpf');
  t.deepEqual(byName.get('decap')?.values, ['auto', 'xdp', 'kernel', 'tc']);
  t.is(byName.get('iptables-forward-rules')?.default, true);
  t.is(byName.get('iface')?.kind, 'list');
  for (const s of FLAG_SPECS) t.true(s.help.length > 0 && s.accepted.length > 0, s.name);
});

test('envVarName: upper case, - and . become _', (t) => {
  t.is(envVarName('subnet-lease-renew-margin'), 'FLANNELD_SUBNET_LEASE_RENEW_MARGIN');
  t.is(envVarName('a.b-c'), 'FLANNELD_A_B_C');
});

test('syntaxes: --flag=value, --flag value, -flag, -flag=value', (t) => {
  const f = flags(['--public-ip=10.0.0.1', '--healthz-port', '8081', '-kube-subnet-mgr', '-subnet-file=/tmp/s.env', '-iface', 'eth1']);
  t.is(f.publicIp, '10.0.0.1');
  t.is(f.healthzPort, 8081);
  t.true(f.kubeSubnetMgr);
  t.is(f.subnetFile, '/tmp/s.env');
  t.deepEqual(f.iface, ['eth1']);
  t.is(configError(t, () => flags(['--iface='])).problem, 'empty');
});

test('booleans: bare means true, =false/=0/=f, Go spellings', (t) => {
  t.true(flags(['--ip-masq']).ipMasq);
  t.false(flags(['--ip-masq=false']).ipMasq);
  t.false(flags(['--iptables-forward-rules=false']).iptablesForwardRules);
  t.false(flags(['--set-node-network-unavailable=0']).setNodeNetworkUnavailable);
  t.true(flags(['--ip-masq=T']).ipMasq);
  t.false(flags(['--ip-masq=F']).ipMasq);
  t.true(flags(['--ip-masq=TRUE']).ipMasq);
  const e = configError(t, () => flags(['--ip-masq=yes']));
  t.is(e.field, '--ip-masq');
  t.is(e.value, 'yes');
  t.regex(e.accepted, /true or false/);
});

test('`--ip-masq false` (Go would silently stop parsing) is an error with a fix', (t) => {
  const e = configError(t, () => flags(['--ip-masq', 'false', '--iface', 'eth1']));
  t.is(e.field, 'false');
  t.regex(e.problem, /positional/);
  t.regex(e.remedy, /--ip-masq=false/);
  t.is(configError(t, () => flags(['--', 'x'])).field, 'x');
  t.notThrows(() => flags(['--ip-masq', '--']));
});

test('repeatable flags collect every occurrence in order; others: last wins', (t) => {
  const f = flags(['--iface', 'eth0', '--iface=10.0.0.2', '--iface-regex', '^ens', '--iface-regex=^eth[0-9]+$', '--public-ip=10.0.0.1', '--public-ip=10.0.0.9']);
  t.deepEqual(f.iface, ['eth0', '10.0.0.2']);
  t.deepEqual(f.ifaceRegex, ['^ens', '^eth[0-9]+$']);
  t.is(f.publicIp, '10.0.0.9');
});

test('unknown flags: error names the flag and suggests the nearest one', (t) => {
  const e = configError(t, () => flags(['--ip-masquerade']));
  t.is(e.field, '--ip-masquerade');
  t.regex(e.problem, /unknown flag/);
  const e2 = configError(t, () => flags(['--max-peer=10']));
  t.regex(e2.problem, /did you mean --max-peers/);
  t.is(configError(t, () => flags(['---x'])).problem, 'bad flag syntax');
  t.is(configError(t, () => flags(['-=x'])).problem, 'bad flag syntax');
});

test('a value-taking flag at the end or followed by another flag needs a value', (t) => {
  const e = configError(t, () => flags(['--public-ip']));
  t.is(e.field, '--public-ip');
  t.regex(e.problem, /needs a value/);
  t.regex(configError(t, () => flags(['--subnet-file', '--ip-masq'])).problem, /needs a value/);
});

test('invalid values name the flag and the accepted values', (t) => {
  const cases: [string, RegExp][] = [
    ['--subnet-lease-renew-margin=0', /1\.\.1439/],
    ['--subnet-lease-renew-margin=1440', /1\.\.1439/],
    ['--max-peers=0', /1\.\.1048576/],
    ['--max-peers=1048577', /1\.\.1048576/],
    ['--max-peers=1e3', /1\.\.1048576/],
    ['--decap=ebpf', /auto, xdp, kernel, tc/],
    ['--fast-path=yes', /on, off/],
    ['--healthz-port=65536', /0\.\.65535/],
    ['--iptables-resync=0', /1\.\.86400/],
    ['--public-ip=10.0.0', /IPv4/],
    ['--iface-can-reach=host.example', /IPv4/],
    ['--public-ipv6=fd00::1', /IPv4-only/],
    ['--iface-regex=(', /regular expression/],
    ['--metrics-addr=9472', /port/],
    ['--metrics-addr=localhost:9472', /IPv4/],
    ['--bpffs-pin-dir=relative/dir', /absolute/],
    ['--state-dir=run', /absolute/],
    ['--kube-api-url=ftp://x', /http/],
    ['--etcd-endpoints=http://a:2379,,http://b:2379', /etcd URLs/],
    ['--etcd-endpoints=grpc://a:2379', /etcd URLs/],
    ['--kube-annotation-prefix=a/b/c', /fqdn/],
    ['--kube-annotation-prefix=noperiod', /fqdn/],
    ['--node-name=Node_1', /node name/],
    ['--v=-1', /0\.\./],
  ];
  for (const [arg, accepted] of cases) {
    const e = configError(t, () => flags([arg]));
    t.is(e.field, arg.split('=')[0] ?? '', arg);
    t.is(e.value, arg.slice(arg.indexOf('=') + 1), arg);
    t.regex(e.accepted, accepted, arg);
    t.is(e.origin, 'command line');
  }
});

test('valid values of our flags', (t) => {
  const f = flags(['--max-peers=1024', '--decap=xdp', '--fast-path=on', '--metrics-addr=:0', '--node-name=worker-1.example',
    '--bpffs-pin-dir=/sys/fs/bpf/fbpf-test-n1', '--etcd-endpoints=https://10.0.0.1:2379, 10.0.0.2:2379', '--kube-annotation-prefix=example.com/net', '--v=4']);
  t.is(f.maxPeers, 1024);
  t.is(f.decap, 'xdp');
  t.true(f.fastPath);
  t.deepEqual(f.metricsAddr, { host: '', port: 0 });
  t.is(f.nodeName, 'worker-1.example');
  t.is(f.bpffsPinDir, '/sys/fs/bpf/fbpf-test-n1');
  t.deepEqual(f.etcdEndpoints, ['https://10.0.0.1:2379', '10.0.0.2:2379']);
  t.is(f.kubeAnnotationPrefix, 'example.com/net');
  t.is(f.v, 4);
  t.false(flags(['--fast-path', 'off']).fastPath);
});

test('FLANNELD_* fill flags not given on the command line; the command line wins', (t) => {
  const env = { FLANNELD_IP_MASQ: 'true', FLANNELD_PUBLIC_IP: '10.0.0.5', FLANNELD_MAX_PEERS: '4096', FLANNELD_DECAP: 'kernel', FLANNELD_HEALTHZ_PORT: '8081' };
  const r = parseFlags(['--public-ip=10.0.0.1', '--decap=tc'], env);
  t.true(r.flags.ipMasq);
  t.is(r.sources['ip-masq'], 'environment');
  t.is(r.flags.publicIp, '10.0.0.1');
  t.is(r.sources['public-ip'], 'command line');
  t.is(r.flags.maxPeers, 4096);
  t.is(r.flags.decap, 'tc');
  t.is(r.flags.healthzPort, 8081);
  t.is(r.sources['etcd-prefix'], 'default');
  t.false(parseFlags(['--ip-masq=false'], env).flags.ipMasq);
});

test('FLANNELD_ env: empty values are ignored; lists get one value; bool false from env', (t) => {
  const f = flags([], { FLANNELD_PUBLIC_IP: '', FLANNELD_IFACE: 'eth0,eth1', FLANNELD_IPTABLES_FORWARD_RULES: 'false', FLANNELD_SUBNET_LEASE_RENEW_MARGIN: '120' });
  t.is(f.publicIp, '');
  t.deepEqual(f.iface, ['eth0,eth1']);
  t.false(f.iptablesForwardRules);
  t.is(f.subnetLeaseRenewMargin, 120);
  t.deepEqual(flags(['--iface=eth9'], { FLANNELD_IFACE: 'eth0' }).iface, ['eth9']);
});

test('invalid FLANNELD_* values are errors naming the variable', (t) => {
  const e = configError(t, () => flags([], { FLANNELD_MAX_PEERS: 'lots' }));
  t.is(e.field, 'FLANNELD_MAX_PEERS');
  t.is(e.origin, 'environment');
  t.is(e.value, 'lots');
  t.regex(e.message, /^environment: FLANNELD_MAX_PEERS = "lots"/);
  t.is(configError(t, () => flags([], { FLANNELD_SUBNET_LEASE_RENEW_MARGIN: '1440' })).field, 'FLANNELD_SUBNET_LEASE_RENEW_MARGIN');
  /* a bad env value for a flag given on the command line is never read */
  t.notThrows(() => flags(['--max-peers=10'], { FLANNELD_MAX_PEERS: 'lots' }));
});

test('FLANNELD_VERSION has no effect (flanneld checks --version before reading the environment)', (t) => {
  t.false(flags([], { FLANNELD_VERSION: 'true' }).version);
  t.true(flags(['--version']).version);
});

test('warnings: unknown FLANNELD_ variables, half TLS config, ignored klog flags, etcd-config in kube mode', (t) => {
  const r = parseFlags(['--etcd-keyfile=/k.pem', '--vmodule=x=2'], { FLANNELD_IFACE_REGX: 'eth', FLANNELD_IFACE: 'eth0', PATH: '/bin' });
  t.true(r.warnings.some((w) => w.includes('FLANNELD_IFACE_REGX') && w.includes('FLANNELD_IFACE_REGEX')));
  t.false(r.warnings.some((w) => w.includes('FLANNELD_IFACE ')));
  t.true(r.warnings.some((w) => w.includes('plain http')));
  t.true(r.warnings.some((w) => w.includes('--vmodule')));
  t.deepEqual(parseFlags([], {}).warnings, []);
  t.true(parseFlags(['--kube-subnet-mgr', '--etcd-config=/x.json'], {}).warnings.some((w) => w.includes('--etcd-config')));
  t.deepEqual(parseFlags(['--etcd-keyfile=/k.pem', '--etcd-certfile=/c.pem'], {}).warnings, []);
});

test('-h / --help returns help without parsing the rest', (t) => {
  t.true(parseFlags(['--help'], {}).help);
  t.true(parseFlags(['-h', '--bogus'], {}).help);
  t.false(parseFlags([], {}).help);
  const u = formatUsage();
  for (const s of FLAG_SPECS) t.true(u.includes(`--${s.name}`), s.name);
  t.true(u.includes('[$FLANNELD_MAX_PEERS]'));
});

test('parseFlags is pure: input arrays and env untouched, results independent', (t) => {
  const argv = ['--iface', 'eth0'];
  const env = { FLANNELD_IFACE_REGEX: '^e' };
  const a = parseFlags(argv, env);
  a.flags.iface.push('mutated');
  const b = parseFlags(argv, env);
  t.deepEqual(b.flags.iface, ['eth0']);
  t.deepEqual(argv, ['--iface', 'eth0']);
  t.deepEqual(env, { FLANNELD_IFACE_REGEX: '^e' });
  t.deepEqual(defaultFlags().iface, []);
});

test('resolveNodeName: --node-name, then NODE_NAME, then POD_NAME/POD_NAMESPACE, else a ConfigError', (t) => {
  t.deepEqual(resolveNodeName({ nodeName: 'n1' }, { NODE_NAME: 'n2' }), { kind: 'name', name: 'n1', from: '--node-name' });
  t.deepEqual(resolveNodeName({ nodeName: '' }, { NODE_NAME: 'n2', POD_NAME: 'p' }), { kind: 'name', name: 'n2', from: 'NODE_NAME' });
  t.deepEqual(resolveNodeName({ nodeName: '' }, { POD_NAME: 'p', POD_NAMESPACE: 'kube-flannel' }), { kind: 'pod', namespace: 'kube-flannel', pod: 'p' });
  const e = configError(t, () => resolveNodeName({ nodeName: '' }, { POD_NAME: 'p' }));
  t.regex(e.problem, /POD_NAME and POD_NAMESPACE must be set/);
});
