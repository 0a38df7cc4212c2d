/**
 * The command line: `flannel-bpf agent --help` documents every flag, a bad
 * flag value exits non-zero with a one-line reason, unknown commands are
 * refused. (Nothing here needs root: the agent never starts.)
 */
import test from 'ava';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { FLAG_SPECS } from '../../src/control/config/flags.js';

const BIN = path.resolve('bin/flannel-bpf');
const cli = (...args: string[]) => spawnSync(BIN, args, { encoding: 'utf8', env: { ...process.env, FLANNELD_IFACE: '' } });

test('agent --help documents every flag with its FLANNELD_ variable', (t) => {
  const r = cli('agent', '--help');
  t.is(r.status, 0, r.stderr);
  for (const f of FLAG_SPECS) {
    t.true(r.stdout.includes(`--${f.name}`), `--${f.name} documented`);
    if (f.env) t.true(r.stdout.includes(f.env), `${f.env} documented`);
  }
});

for (const [args, re] of [
  [['--max-peers=abc'], /max-peers/],
  [['--decap=ebpf'], /decap.*(auto|xdp|kernel|tc)/],
  [['--subnet-lease-renew-margin=5000'], /subnet-lease-renew-margin/],
  [['--no-such-flag'], /no-such-flag/],
  [['--public-ip=300.1.1.1'], /public-ip/],
] as const) {
  test(`agent ${args.join(' ')} exits 2 with a one-line reason`, (t) => {
    const r = cli('agent', ...args);
    t.is(r.status, 2);
    const lines = r.stderr.trim().split('\n');
    t.is(lines.length, 1, r.stderr);
    t.regex(lines[0] ?? '', re);
    t.is(r.stdout, '');
  });
}

test('a bad FLANNELD_ variable is refused the same way', (t) => {
  const r = spawnSync(BIN, ['agent'], { encoding: 'utf8', env: { ...process.env, FLANNELD_MAX_PEERS: '-4' } });
  t.is(r.status, 2);
  t.regex(r.stderr, /FLANNELD_MAX_PEERS/);
});

test('unknown commands are refused with the usage; version prints', (t) => {
  const r = cli('frobnicate');
  t.is(r.status, 2);
  t.regex(r.stderr, /unknown command "frobnicate"/);
  t.regex(r.stderr, /usage: flannel-bpf <command>/);
  const v = cli('version');
  t.is(v.status, 0);
  t.regex(v.stdout, /^\d+\.\d+\.\d+\n$/);
});
