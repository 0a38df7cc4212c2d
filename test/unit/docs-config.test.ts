/**
 * docs/configuration.md against the code: the flag table is exactly what scripts/gen-config-doc.ts
 * generates from FLAG_SPECS (regenerate with `node --import tsx scripts/gen-config-doc.ts`), every
 * net-conf.json key the agent reads is documented, and the examples parse.
 */
import test from 'ava';
import { FLAG_SPECS, parseFlags } from '../../src/control/config/flags.js';
import { parseNetConf } from '../../src/control/config/net-conf.js';
import { renderFlagTable, updateDoc, BEGIN, END } from '../../scripts/gen-config-doc.js';
import { readText, loadManifest } from './deploy-support.js';

const doc = readText('docs/configuration.md');

test('the committed flag table is the one generated from FLAG_SPECS (run: node --import tsx scripts/gen-config-doc.ts)', (t) => {
  t.is(updateDoc(doc), doc);
});

test('the generated table has one row per flag, with its FLANNELD_ variable and default', (t) => {
  const table = renderFlagTable();
  const rows = table.split('\n').slice(2);
  t.is(rows.length, FLAG_SPECS.length);
  FLAG_SPECS.forEach((s, i) => {
    const row = rows[i] ?? '';
    t.true(row.startsWith(`| \`--${s.name}`), `row ${i} is --${s.name}`);
    if (s.env) t.true(row.includes(`\`${s.env}\``), `--${s.name}: ${s.env}`);
    else t.true(row.includes('(none)'), `--${s.name}: no variable`);
    if (!Array.isArray(s.default) && s.default !== '') t.true(row.includes(`\`${String(s.default)}\``), `--${s.name}: default ${String(s.default)}`);
  });
  t.true(doc.indexOf(BEGIN) < doc.indexOf(table) && doc.indexOf(table) < doc.indexOf(END));
});

test('updateDoc replaces only the generated section and refuses a page without markers', (t) => {
  const page = `intro\n${BEGIN}\nold table\n${END}\noutro\n`;
  t.is(updateDoc(page, 'T'), `intro\n${BEGIN}\nT\n${END}\noutro\n`);
  t.throws(() => updateDoc('no markers'), { message: /markers/ });
});

test('every net-conf.json key the agent reads is documented', (t) => {
  for (const key of ['Network', 'SubnetLen', 'SubnetMin', 'SubnetMax', 'EnableIPv4', 'EnableIPv6', 'EnableNFTables', 'IPv6Network',
    'Backend.Type', 'Backend.VNI', 'Backend.Port', 'Backend.DirectRouting', 'Backend.MTU', 'Backend.GBP', 'Backend.Learning', 'Backend.MacPrefix', 'Backend.Name']) {
    t.true(doc.includes(`\`${key}\``), key);
  }
  for (const backend of ['vxlan', 'host-gw', 'udp']) t.true(doc.includes(`\`${backend}\``), backend);
});

test('the page\'s net-conf.json example parses, and the DaemonSet\'s arguments quoted on the page are the manifest\'s', (t) => {
  const example = /```json\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
  t.deepEqual(parseNetConf(example, { mode: 'kube' }).warnings, []);
  const args = (loadManifest().agent.args ?? []) as string[];
  t.true(doc.includes(`\`${args.join(' ')}\``), `the page says the DaemonSet runs with ${args.join(' ')}`);
  t.notThrows(() => parseFlags(args, {}));
});
