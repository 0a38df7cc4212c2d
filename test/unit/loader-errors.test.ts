/** The loader's error remedies that depend on the process (capabilities). */
import test from 'ava';
import { effectiveCaps, verifierRemedy } from '../../src/loader/errors.js';

test('CapEff is parsed from /proc/self/status text', (t) => {
  t.is(effectiveCaps('Name:\tnode\nCapEff:\t000001ffffffffff\n'), 0x1ffffffffffn);
  t.is(effectiveCaps('Name:\tnode\n'), null);
});

test('a verifier rejection without CAP_PERFMON / CAP_SYS_ADMIN names the capability, not the build', (t) => {
  const bpfAndNetAdmin = (1n << 39n) | (1n << 12n);
  t.regex(verifierRemedy(bpfAndNetAdmin), /grant CAP_PERFMON/);
  t.regex(verifierRemedy(bpfAndNetAdmin | (1n << 38n)), /rebuild with scripts\/build-bpf\.sh/);
  t.regex(verifierRemedy(bpfAndNetAdmin | (1n << 21n)), /rebuild/, 'CAP_SYS_ADMIN implies what PERFMON grants');
  t.regex(verifierRemedy(null), /rebuild/, 'unknown capabilities: the generic remedy');
});
