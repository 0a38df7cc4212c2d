/**
 * Property-based fuzzing of flanneld-style command lines and FLANNELD_*
 * variables (parseFlags).
 *
 * Properties:
 *  - never a crash: any argv (flag names in every syntax, garbage, "--",
 *    positional words) with any environment either parses or throws a
 *    ConfigError naming the argument, flag or variable at fault;
 *  - valid command lines (every flag, every syntax: -f, --f, =value,
 *    separate value, bare booleans, Go's boolean spellings, repeated flags)
 *    plus FLANNELD_* variables for the flags not given parse to exactly the
 *    values and sources a model of flannel-compat.md §2 / flags.ts's
 *    documented rules says: the command line wins, lists collect in order,
 *    the last occurrence of other flags wins, a variable gives a list one
 *    value, empty variables are ignored;
 *  - every invalid value of a flag (or of its variable) is rejected with a
 *    ConfigError naming that flag (or variable), carrying the value and the
 *    flag's accepted values; flag names in another case are unknown flags.
 *
 * Seed: random per run and printed on failure by fast-check; FC_SEED=<n>
 * replays a run.
 */
import test from 'ava';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { check, RUNS } from '../helpers/fuzz.js';
import { parseFlags, defaultFlags, envVarName, FLAG_SPECS, type FlagSpec, type AgentFlags } from '../../src/control/config/flags.js';
import { ConfigError } from '../../src/control/config/errors.js';
import { formatIPv4 } from '../../src/maps/addr.js';


const SPEC = new Map(FLAG_SPECS.map((s) => [s.name, s]));
const NAMES = FLAG_SPECS.map((s) => s.name);
const ENV_NAMES = new Set(FLAG_SPECS.flatMap((s) => (s.env ? [s.env] : [])));

/* ------------------------------------------------------------- values */

const GO_TRUE = ['1', 't', 'T', 'TRUE', 'true', 'True'];
const GO_FALSE = ['0', 'f', 'F', 'FALSE', 'false', 'False'];

/** The integer range a flag documents in its accepted text ("an integer 1..1439 (minutes)"). */
function range(s: FlagSpec): [number, number] {
  const m = /(-?\d+)\.\.(\d+)/.exec(s.accepted);
  assert.ok(m, `no range in ${s.accepted}`);
  return [Number(m[1]), Number(m[2])];
}

const ip = fc.integer({ min: 0, max: 0xffffffff }).map(formatIPv4);
const word = fc.string({ minLength: 1, maxLength: 12 });
const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,6}[a-z0-9])?$/);
/** A host name a URL parser takes as a name (an all-digit one would be read as an IPv4 number). */
const host = fc.stringMatching(/^[a-z][a-z0-9]{0,7}$/);
const endpoint = fc.oneof(
  fc.tuple(fc.constantFrom('http', 'https', 'HTTPS', 'unix', 'unixs'), fc.oneof(ip, label), fc.integer({ min: 1, max: 65535 })).map(([s, h, p]) => `${s}://${h}:${p}`),
  fc.tuple(fc.oneof(ip, label), fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `${h}:${p}`),
);
const regexes = fc.oneof(fc.constantFrom('^eth[0-9]+$', 'ens.*', '^(eth|ens)', 'bond0', '[a-z]+\\d', '.'), label);
const prefixes = fc.oneof(
  fc.array(label, { minLength: 2, maxLength: 3 }).map((l) => l.join('.')),
  fc.tuple(fc.array(label, { minLength: 2, maxLength: 3 }), label).map(([l, n]) => `${l.join('.')}/${n}`),
);

/** A valid raw value for a flag, and what it parses to. */
interface Valid { raw: string; value: unknown }

function validValue(s: FlagSpec): fc.Arbitrary<Valid> {
  const same = (a: fc.Arbitrary<string>): fc.Arbitrary<Valid> => a.map((raw) => ({ raw, value: raw }));
  switch (s.kind) {
    case 'bool': return fc.constantFrom(...GO_TRUE.map((raw) => ({ raw, value: true })), ...GO_FALSE.map((raw) => ({ raw, value: false })));
    case 'int': {
      const [lo, hi] = range(s);
      return fc.tuple(fc.integer({ min: lo, max: hi }), fc.boolean()).map(([n, plus]) => ({ raw: `${plus && n >= 0 ? '+' : ''}${n}`, value: n }));
    }
    case 'enum':
      return s.values?.join(',') === 'on,off' // on|off flags parse to a boolean
        ? fc.constantFrom({ raw: 'on', value: true }, { raw: 'off', value: false })
        : fc.constantFrom(...(s.values ?? []).map((raw) => ({ raw, value: raw })));
    default: break;
  }
  switch (s.name) {
    case 'etcd-endpoints':
      return fc.array(fc.tuple(endpoint, fc.constantFrom('', ' ')), { minLength: 1, maxLength: 3 })
        .map((l) => ({ raw: l.map(([e, sp]) => `${sp}${e}${sp}`).join(','), value: l.map(([e]) => e) }));
    case 'etcd-prefix': case 'net-config-path': case 'subnet-file': case 'iface': return same(word);
    case 'kube-api-url': return same(fc.oneof(fc.constant(''), fc.tuple(fc.constantFrom('http', 'https'), fc.oneof(ip, host)).map(([sc, h]) => `${sc}://${h}:6443/`)));
    case 'kube-annotation-prefix': return same(prefixes);
    case 'iface-regex': return same(regexes);
    case 'iface-can-reach': case 'public-ip': return same(fc.oneof(ip, fc.constant('')));
    case 'public-ipv6': return same(fc.constant(''));
    case 'healthz-ip': return same(fc.oneof(ip, fc.constantFrom('', '::', '::1', 'fd00::1')));
    case 'bpffs-pin-dir': case 'state-dir': return same(fc.string({ maxLength: 16 }).map((x) => `/${x}`));
    case 'metrics-addr':
      return fc.tuple(fc.oneof(ip, fc.constant('')), fc.integer({ min: 0, max: 65535 })).map(([h, p]) => ({ raw: `${h}:${p}`, value: { host: h, port: p } }));
    case 'node-name': return same(fc.oneof(fc.constant(''), fc.array(label, { minLength: 1, maxLength: 3 }).map((l) => l.join('.'))));
    default: return same(fc.string({ maxLength: 12 })); /* free-form: file paths, credentials, ignored klog flags */
  }
}

/** An invalid raw value for a flag, or null when every string is valid. `env`: a variable (empty values are not read there). */
function invalidValue(s: FlagSpec, env: boolean): fc.Arbitrary<string> | null {
  const nonEmpty = (a: fc.Arbitrary<string>): fc.Arbitrary<string> => (env ? a.filter((x) => x !== '') : a);
  const notIPv4 = fc.oneof(fc.constantFrom('1.2.3', '256.0.0.1', '01.2.3.4', '1.2.3.4 ', 'localhost', '::1'), word.filter((x) => !/^\d+\.\d+\.\d+\.\d+$/.test(x)));
  switch (s.kind) {
    case 'bool': return fc.oneof(fc.constantFrom('yes', 'no', 'on', 'off', 'tRUE', 'truE', '2', ' true', ''), word).filter((x) => !GO_TRUE.includes(x) && !GO_FALSE.includes(x) && (!env || x !== ''));
    case 'int': {
      const [lo, hi] = range(s);
      return nonEmpty(fc.oneof(
        fc.constantFrom('', '0x10', '1e3', '1.0', ' 1', '1 ', '٣', '+-1', '--1', '1_000', 'NaN', 'Infinity'),
        fc.oneof(fc.integer({ min: -1e15, max: lo - 1 }), fc.integer({ min: hi + 1, max: 1e15 })).map(String),
        fc.constant('9'.repeat(20)),
      ));
    }
    case 'enum': return fc.oneof(word, fc.constantFrom('', 'AUTO', 'Xdp', 'ON', 'true')).filter((x) => !(s.values ?? []).includes(x) && (!env || x !== ''));
    default: break;
  }
  switch (s.name) {
    case 'etcd-endpoints': return nonEmpty(fc.constantFrom('', 'http://a:2379,,http://b:2379', 'grpc://a:2379', 'a', 'a b:1', 'http://a:1,', ' , '));
    case 'etcd-prefix': case 'net-config-path': case 'subnet-file': case 'iface': return env ? null : fc.constant('');
    case 'kube-api-url': return fc.constantFrom('ftp://x', 'x', '://', 'http//x', 'file:///etc/passwd');
    case 'kube-annotation-prefix': return nonEmpty(fc.constantFrom('a/b/c', 'noperiod', '', '/x', 'a.b/c.d', 'a.b/ c', 'a.b/C', '.b/'));
    case 'iface-regex': return nonEmpty(fc.constantFrom('', '(', '[', '*', '?', 'a{2,1}', '\\', '(?<n>', '[z-a]'));
    case 'iface-can-reach': case 'public-ip': return notIPv4;
    case 'public-ipv6': return fc.oneof(fc.constantFrom('fd00::1', '::'), word);
    case 'healthz-ip': return fc.constantFrom('localhost', '1.2.3', 'x:y', '1.2.3.4:80', 'fd00::g');
    case 'bpffs-pin-dir': case 'state-dir': return nonEmpty(fc.oneof(fc.constant(''), word.filter((x) => !x.startsWith('/'))));
    case 'metrics-addr': return fc.constantFrom('9472', 'localhost:9472', ':65536', ':-1', '1.2.3:80', ':', ':x', '[::1]:80');
    case 'node-name': return fc.oneof(fc.constantFrom('Node_1', 'UPPER', '-a', 'a-', 'a..b', 'a'.repeat(254)), word.filter((x) => !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(x)));
    default: return null;
  }
}

/* ---------------------------------------------------------- argv model */

interface Occurrence { name: string; syntax: 'eq' | 'sep' | 'bare'; dashes: '-' | '--'; v: Valid }

/** One command-line occurrence: -f / --f, =value or a separate value (booleans: bare or =value only). */
function occurrence(s: FlagSpec): fc.Arbitrary<Occurrence> {
  return fc.tuple(validValue(s), fc.constantFrom<'eq' | 'sep' | 'bare'>('eq', 'sep', 'bare'), fc.constantFrom<'-' | '--'>('-', '--')).map(([v, syntax, dashes]) => {
    if (s.kind === 'bool') return { name: s.name, dashes, syntax: syntax === 'eq' ? 'eq' : 'bare', v: syntax === 'eq' ? v : { raw: 'true', value: true } };
    /* A separate value that looks like a flag would be read as one: write those with "=". */
    return { name: s.name, dashes, syntax: syntax !== 'bare' && !v.raw.startsWith('-') ? syntax : 'eq', v };
  });
}

function render(o: Occurrence): string[] {
  const f = `${o.dashes}${o.name}`;
  return o.syntax === 'bare' ? [f] : o.syntax === 'eq' ? [`${f}=${o.v.raw}`] : [f, o.v.raw];
}

const KEY_OF = new Map(FLAG_SPECS.map((s) => [s.name, s.key]));

/* ---------------------------------------------------------- properties */

test('valid command lines in every syntax plus FLANNELD_* variables parse to the model\'s values and sources', (t) => {
  const occ = fc.constantFrom(...NAMES).chain((n) => occurrence(SPEC.get(n)!));
  /* (--public-ipv6 has no non-empty valid value: an empty variable is not read.) */
  const envArb = fc.uniqueArray(fc.constantFrom(...FLAG_SPECS.filter((s) => s.env && s.name !== 'public-ipv6')), { maxLength: 8, selector: (s) => s.name })
    .chain((specs) => fc.tuple(...specs.map((s) => validValue(s).filter((v) => v.raw !== '').map((v): [FlagSpec, Valid] => [s, v]))));
  const noise = fc.dictionary(fc.oneof(fc.constantFrom('PATH', 'HOME', 'NODE_NAME'), fc.string({ maxLength: 8 }).map((x) => `FLANNELD_X${x}`)), fc.string({ maxLength: 8 }), { maxKeys: 3 });
  check(t, fc.property(fc.array(occ, { maxLength: 12 }), envArb, noise, (occs, envPairs, extra) => {
    const argv = occs.flatMap(render);
    const env: Record<string, string> = { ...extra };
    for (const [s, v] of envPairs) env[s.env!] = v.raw;
    /* Variables of flags given on the command line are never read, even when they are garbage. */
    for (const o of occs) { const e = SPEC.get(o.name)!.env; if (e && !(e in env)) env[e] = '\u0000garbage'; }
    const argvCopy = [...argv];
    const envCopy = { ...env };
    const r = parseFlags(argv, env);
    assert.deepEqual(argv, argvCopy, 'argv untouched');
    assert.deepEqual(env, envCopy, 'env untouched');

    const want = defaultFlags() as unknown as Record<string, unknown>;
    const sources: Record<string, string> = Object.fromEntries(NAMES.map((n) => [n, 'default']));
    for (const o of occs) {
      const s = SPEC.get(o.name)!;
      if (s.kind === 'list') want[s.key] = sources[o.name] === 'command line' ? [...(want[s.key] as string[]), o.v.value] : [o.v.value];
      else want[s.key] = o.v.value;
      sources[o.name] = 'command line';
    }
    for (const [s, v] of envPairs) {
      if (sources[s.name] === 'command line') continue;
      want[s.key] = s.kind === 'list' ? [v.value] : v.value;
      sources[s.name] = 'environment';
    }
    assert.equal(r.help, false);
    assert.deepEqual(r.flags as unknown as Record<string, unknown>, want, argv.join(' '));
    assert.deepEqual(r.sources, sources);
    for (const k of Object.keys(extra)) if (k.startsWith('FLANNELD_') && !ENV_NAMES.has(k)) assert.ok(r.warnings.some((w) => w.includes(k)), `warning for ${k}`);
  }));
});

/** Any argument at all, weighted towards things that look like flags. */
const anyArg = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom('-', '--'), fc.constantFrom(...NAMES)).map(([d, n]) => `${d}${n}`) },
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom('-', '--'), fc.constantFrom(...NAMES), fc.string({ maxLength: 16 })).map(([d, n, v]) => `${d}${n}=${v}`) },
  { weight: 2, arbitrary: fc.string({ maxLength: 16 }) },
  { weight: 1, arbitrary: fc.constantFrom('-', '--', '---', '-=', '--=x', '---ip-masq', '--IP-MASQ', '-V', 'true', 'false', '--ip-masq=', '--max-peer=10') },
  { weight: 1, arbitrary: fc.mixedCase(fc.constantFrom(...NAMES)).map((n) => `--${n}`) },
);
const anyEnv = fc.dictionary(
  fc.oneof(fc.constantFrom(...ENV_NAMES), fc.string({ maxLength: 10 }).map((x) => `FLANNELD_${x}`), fc.string({ maxLength: 6 })),
  fc.oneof(fc.string({ maxLength: 16 }), fc.constantFrom('', 'true', '0', '65536', '10.0.0.1', ':9472', '/x')),
  { maxKeys: 5 },
);

test('any argv and environment: a result, or a ConfigError naming the argument, flag or variable at fault', (t) => {
  const counts = new Map<string, number>();
  check(t, fc.property(fc.array(anyArg, { maxLength: 8 }), anyEnv, (argv, env) => {
    try {
      parseFlags(argv, env);
      counts.set('ok', (counts.get('ok') ?? 0) + 1);
    } catch (err) {
      assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
      assert.ok(err.accepted.length > 0 && err.problem.length > 0);
      assert.ok(err.field.length > 0 || argv.includes(''), 'an empty field only for an empty positional argument');
      assert.ok(err.message.includes(err.field), err.message);
      if (err.origin === 'environment') {
        assert.ok(ENV_NAMES.has(err.field), `variable ${err.field}`);
        assert.equal(err.value, env[err.field]);
      } else {
        assert.equal(err.origin, 'command line');
        const named = argv.some((a) => a === err.field || (a.startsWith('-') && `--${a.replace(/^--?/, '').split('=')[0]}` === err.field));
        assert.ok(named, `field ${JSON.stringify(err.field)} names none of ${JSON.stringify(argv)}`);
      }
      counts.set(err.origin, (counts.get(err.origin) ?? 0) + 1);
    }
  }));
  t.log([...counts.entries()].map(([k, v]) => `${k} ${v}`).join(', '));
});

test('every invalid value of a flag, on the command line or in its variable, names that flag or variable', (t) => {
  const cases = FLAG_SPECS.flatMap((s) => (['command line', 'environment'] as const).flatMap((where) => {
    if (where === 'environment' && !s.env) return [];
    const bad = invalidValue(s, where === 'environment');
    return bad ? [bad.map((raw) => ({ s, where, raw }))] : [];
  }));
  let n = 0;
  check(t, fc.property(fc.oneof(...cases), fc.constantFrom('-', '--'), fc.boolean(), ({ s, where, raw }, dashes, separate) => {
    const sep = separate && !raw.startsWith('-') && s.kind !== 'bool';
    const argv = where === 'environment' ? [] : sep ? [`${dashes}${s.name}`, raw] : [`${dashes}${s.name}=${raw}`];
    const env = where === 'environment' ? { [s.env!]: raw } : {};
    let err: unknown;
    try {
      parseFlags(argv, env);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError, `accepted ${where} ${s.name} = ${JSON.stringify(raw)}`);
    assert.equal(err.origin, where);
    assert.equal(err.field, where === 'environment' ? envVarName(s.name) : `--${s.name}`);
    assert.equal(err.value, raw);
    assert.equal(err.accepted, s.accepted);
    n++;
  }), { numRuns: RUNS * 2 });
  t.log(`${n} invalid values over ${cases.length} flag/place pairs`);
});

test('flag names in another case are unknown flags (Go flags are case-sensitive), named as written', (t) => {
  const variant = fc.constantFrom(...NAMES).chain((n) => fc.mixedCase(fc.constant(n))).filter((v) => !SPEC.has(v) && v !== 'h' && v !== 'H' && v.toLowerCase() !== 'help');
  check(t, fc.property(variant, fc.constantFrom('-', '--'), fc.option(fc.string({ maxLength: 8 }), { nil: undefined }), (name, dashes, value) => {
    let err: unknown;
    try {
      parseFlags([value === undefined ? `${dashes}${name}` : `${dashes}${name}=${value}`], {});
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError);
    assert.equal(err.field, `--${name}`);
    assert.match(err.problem, /^unknown flag/);
  }));
});

test('FLANNELD_* names: every flag but --version has its variable, upper case with "-" and "." as "_"', (t) => {
  for (const s of FLAG_SPECS) {
    if (s.name === 'version') { t.is(s.env, null); continue; }
    t.is(s.env, `FLANNELD_${s.name.toUpperCase().replace(/[-.]/g, '_')}`);
    t.is(KEY_OF.get(s.name), s.key);
  }
  t.is((defaultFlags() as AgentFlags).maxPeers, 65536);
});
