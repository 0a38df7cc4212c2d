/**
 * Every compiled object passes the kernel verifier; reports program sizes
 * (instructions) and load times. A program the verifier rejects surfaces as a
 * VerifierError carrying the verifier log's last lines.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { BpfObject } from '../../src/loader/object.js';
import { VerifierError, FlannelBpfError } from '../../src/loader/errors.js';
import { defaultObjectDir, PROGRAMS } from '../../src/loader/dataplane.js';
import { requireRoot } from '../helpers/netns.js';
import { DROP_REASONS } from '../../src/maps/reasons.js';

test.before(() => requireRoot());

const dir = defaultObjectDir();
const objects = fs.readdirSync(dir).filter((f) => f.endsWith('.o')).sort();

test('every program of DESIGN.md §2 is built', (t) => {
  for (const { object } of Object.values(PROGRAMS)) t.true(objects.includes(object), `${object} in ${dir}`);
});

for (const file of objects) {
  test(`verifier accepts ${file}`, (t) => {
    const obj = BpfObject.load(path.join(dir, file));
    t.teardown(() => obj.close());
    t.true(obj.programs.size >= 1);
    for (const p of obj.programs.values()) {
      const info = p.info();
      t.true(info.id > 0);
      t.true(info.xlatedInsns > 0);
      t.true(info.verifiedInsns > 0);
      t.log(`${file}: ${p.name} (${p.section}) ${p.elfInsns} insns in ELF, ${info.xlatedInsns} xlated, ` +
        `${info.jitedBytes} B jited, verifier processed ${info.verifiedInsns}; open+load ${obj.loadMs.toFixed(1)} ms`);
    }
    t.deepEqual([...obj.maps.keys()].sort(), ['fbpf_config', 'fbpf_drops', 'fbpf_endpoints', 'fbpf_fast_stats', 'fbpf_peer_stats', 'fbpf_peers', 'fbpf_sources']);
    t.is(obj.map('fbpf_drops').maxEntries, DROP_REASONS.length, 'C and TypeScript agree on the drop reasons');
  });
}

test('a verifier rejection throws VerifierError with the program name and the log\'s last lines', (t) => {
  const file = path.resolve(dir, '../test-bpf/verifier_reject.o');
  const err = t.throws(() => BpfObject.load(file), { instanceOf: VerifierError });
  t.is(err?.program, 'fbpf_fixture_reject');
  t.true((err?.log.length ?? 0) > 0 && (err?.log.length ?? 99) <= 20, 'at most the last 20 lines');
  t.regex(err?.log.join('\n') ?? '', /invalid access to packet|R\d+ offset is outside of the packet/);
  t.regex(err?.message ?? '', /verifier rejected fbpf_fixture_reject/);
  t.truthy(err?.remedy);
});

test('a missing object file names the build command', (t) => {
  const err = t.throws(() => BpfObject.load('/nonexistent/flannel-bpf/x.o'), { instanceOf: FlannelBpfError });
  t.regex(err?.remedy ?? '', /build-bpf\.sh/);
});
