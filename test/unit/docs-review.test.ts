/**
 * Reviews the documentation against the code, so that docs cannot name a flag or a metric that does not
 * exist: README.md, docs/*.md and deploy/* (manifests, their comments, the Grafana dashboard).
 *
 * - Command lines in code (fenced blocks and inline code) that run `flannel-bpf agent` or `flannel-bpf reset`
 *   must parse with the agent's own flag parser; `flannel-bpf status` and `flannel-cleanup` lines may use only
 *   those commands' flags. (`lab` and `demo` are developer commands and not reviewed here.)
 * - Inline code that is a flag (`--fast-path=off`) must be a flag of ours — with a value, one the parser
 *   accepts — or one of the few other programs' flags the docs mention on purpose (FOREIGN, with its owner).
 * - Every FLANNELD_* variable is a flag's variable; every flannel_bpf_* metric is in METRICS
 *   (src/metrics/server.ts; histogram series _bucket/_sum/_count included), and docs/metrics.md lists them all.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { FLAG_SPECS, parseFlags } from '../../src/control/config/flags.js';
import { METRICS } from '../../src/metrics/server.js';
import { CLEANUP_FLAGS } from '../../deploy/flannel-cleanup.js';
import { ROOT, readText, yamlDocs, isObj, isAgent, type Obj, type Json } from './deploy-support.js';

/** Flags of other programs the docs name on purpose. */
const FOREIGN: Record<string, string> = {
  '--profile': 'kubectl debug',
  '--patch-file': 'kubectl patch',
  '--node-labels': 'kubelet',
  '--pod-cidr': 'kubelet',
  '--allocate-node-cidrs': 'kube-controller-manager',
  '--cluster-cidr': 'kube-controller-manager',
  '--pod-network-cidr': 'kubeadm init',
  '--only': 'bench/controlplane.ts (docs/performance.md)',
  /* not a flag: how flags are written (docs/configuration.md's syntax paragraph) */
  '--flag': 'the syntax placeholder',
};

const AGENT_FLAGS = new Set(FLAG_SPECS.map((s) => `--${s.name}`));
const ENV_VARS = new Set(FLAG_SPECS.flatMap((s) => (s.env ? [s.env] : [])));
const STATUS_FLAGS = new Set([...(/const USAGE = `([\s\S]*?)`;/.exec(readText('src/cli/status.ts'))?.[1] ?? '').matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]));
const CLEANUP = new Set<string>(CLEANUP_FLAGS);

const mdFiles = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const deployFiles = fs.readdirSync(path.join(ROOT, 'deploy')).filter((f) => /\.(ya?ml|json|md)$/.test(f)).map((f) => `deploy/${f}`);

/** Fenced code blocks and inline code spans of a Markdown text. */
function codeOf(md: string): { blocks: string[]; spans: string[] } {
  const blocks: string[] = [];
  const prose = md.replace(/^```[^\n]*\n([\s\S]*?)^```/gm, (_all, body: string) => { blocks.push(body); return ''; });
  const spans = [...prose.matchAll(/(`+)([\s\S]+?)\1/g)].map((m) => (m[2] ?? '').trim());
  return { blocks, spans };
}

/** Logical command lines: continuations joined, comments dropped. */
function commandLines(code: string): string[] {
  return code.replace(/\\\n/g, ' ').split('\n').map((l) => l.replace(/(^|\s)#.*$/, '').trim()).filter(Boolean);
}

const PLACEHOLDER = /[<>…|]|\.\.\.|=(N|VALUE|DIR|FILE|SECONDS|NAME|D|S)$|^(N|VALUE|DIR|FILE|SECONDS|NAME|D|S)$/;

interface Finding { file: string; text: string; problem: string }

/** Check the flannel-bpf / flannel-cleanup command lines in one piece of code. */
function reviewCommands(file: string, code: string, out: Finding[]): number {
  let n = 0;
  for (const line of commandLines(code)) {
    for (const m of line.matchAll(/(?:^|[\s/(;&|$"'])(?:bin\/)?(flannel-bpf (agent|reset|status)|flannel-cleanup(?:\.[jt]s)?)((?:\s+[^\s;&|)#]+)*)/g)) {
      n++;
      const tokens = (m[3] ?? '').trim().split(/\s+/).filter(Boolean);
      const cmd = m[2] ?? 'cleanup';
      const flagNames = tokens.filter((x) => x.startsWith('-')).map((x) => x.split('=')[0] ?? x);
      if (cmd === 'agent' || cmd === 'reset') {
        const unknown = flagNames.filter((f) => !AGENT_FLAGS.has(f) && f !== '--help' && f !== '-h');
        if (unknown.length) { out.push({ file, text: line, problem: `unknown flag(s) ${unknown.join(', ')}` }); continue; }
        if (tokens.some((x) => PLACEHOLDER.test(x))) continue;
        try {
          parseFlags(tokens, {});
        } catch (err) {
          out.push({ file, text: line, problem: (err as Error).message });
        }
      } else {
        const known = cmd === 'status' ? STATUS_FLAGS : CLEANUP;
        const unknown = flagNames.filter((f) => !known.has(f) && f !== '--help');
        if (unknown.length) out.push({ file, text: line, problem: `unknown ${cmd} flag(s) ${unknown.join(', ')}` });
      }
    }
  }
  return n;
}

/** Check inline code that consists of flags. */
function reviewFlagSpan(file: string, span: string, out: Finding[]): void {
  for (const m of span.matchAll(/(?:^|[\s:/(,])(--[a-z0-9][a-z0-9_-]*)(=\S+)?/g)) {
    const flag = m[1] ?? '';
    const value = m[2];
    if (AGENT_FLAGS.has(flag)) {
      if (value && !PLACEHOLDER.test(value) && !PLACEHOLDER.test(`${flag}${value}`)) {
        try {
          parseFlags([`${flag}${value}`], {});
        } catch (err) {
          out.push({ file, text: span, problem: (err as Error).message });
        }
      }
    } else if (!STATUS_FLAGS.has(flag) && !CLEANUP.has(flag) && FOREIGN[flag] === undefined) {
      out.push({ file, text: span, problem: `${flag} is not a flag of flannel-bpf agent, status or flannel-cleanup (nor a known flag of another program)` });
    }
  }
}

function metricNames(text: string): string[] {
  return [...text.matchAll(/\bflannel_bpf_[a-z0-9_]*[a-z0-9]\b/g)].map((m) => m[0]);
}

function knownMetric(name: string): boolean {
  if (METRICS.some((x) => x.name === name)) return true;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && METRICS.some((x) => x.name === base && x.type === 'histogram');
}

test('Markdown: every flannel-bpf command line parses, every flag named in inline code exists', (t) => {
  const findings: Finding[] = [];
  let commands = 0;
  let spans = 0;
  for (const file of mdFiles) {
    const { blocks, spans: inline } = codeOf(readText(file));
    for (const b of blocks) commands += reviewCommands(file, b, findings);
    for (const s of inline) {
      commands += reviewCommands(file, s, findings);
      if (/^-/.test(s)) { spans++; reviewFlagSpan(file, s, findings); }
    }
  }
  t.deepEqual(findings, []);
  t.log(`${commands} command lines, ${spans} inline flags reviewed`);
  t.true(commands >= 10, `${commands} command lines reviewed`);
  t.true(spans >= 20, `${spans} inline flags reviewed`);
});

test('deploy/: the agent\'s arguments parse, and every flag named in a comment exists', (t) => {
  const findings: Finding[] = [];
  let agents = 0;
  for (const file of deployFiles.filter((f) => /\.ya?ml$/.test(f))) {
    const text = readText(file);
    const walk = (v: Json | undefined): void => {
      if (Array.isArray(v)) { v.forEach(walk); return; }
      if (!isObj(v)) return;
      if (isAgent(v)) {
        agents++;
        try {
          const parsed = parseFlags((v.args ?? []) as string[], {});
          if (parsed.warnings.length) findings.push({ file, text: JSON.stringify(v.args), problem: parsed.warnings.join('; ') });
        } catch (err) {
          findings.push({ file, text: JSON.stringify(v.args), problem: (err as Error).message });
        }
      }
      Object.values(v).forEach(walk);
    };
    yamlDocs(text).forEach((d: Obj) => walk(d));
    for (const line of text.split('\n')) {
      const comment = /(?:^|\s)#(.*)$/.exec(line)?.[1];
      if (comment) reviewFlagSpan(file, comment, findings);
    }
  }
  t.deepEqual(findings, []);
  t.is(agents, 1, 'one agent container in the manifests');
});

test('every FLANNELD_* variable in the docs and manifests is a flag\'s variable', (t) => {
  const bad: string[] = [];
  for (const file of [...mdFiles, ...deployFiles]) {
    for (const m of readText(file).matchAll(/\bFLANNELD_[A-Z0-9_]*[A-Z0-9]\b/g)) if (!ENV_VARS.has(m[0])) bad.push(`${file}: ${m[0]}`);
  }
  t.deepEqual(bad, []);
});

test('every flannel_bpf_* metric in the docs, manifests and dashboard exists (METRICS), and docs/metrics.md lists every metric', (t) => {
  const bad: string[] = [];
  let seen = 0;
  for (const file of [...mdFiles, ...deployFiles]) {
    for (const name of metricNames(readText(file))) {
      seen++;
      if (!knownMetric(name)) bad.push(`${file}: ${name}`);
    }
  }
  t.deepEqual(bad, []);
  t.true(seen >= 30, `${seen} metric mentions reviewed`);
  const listed = new Set(metricNames(readText('docs/metrics.md')));
  t.deepEqual(METRICS.map((x) => x.name).filter((n) => !listed.has(n)), [], 'docs/metrics.md names every metric');
});

test('the reviewer catches a wrong flag, a bad value and an unknown metric', (t) => {
  const findings: Finding[] = [];
  reviewCommands('x.md', 'flannel-bpf agent --kube-subnet-mgr --ip-masq=maybe', findings);
  reviewCommands('x.md', 'bin/flannel-bpf agent --iface-regexp=eth', findings);
  reviewCommands('x.md', 'flannel-bpf status --jsn', findings);
  reviewFlagSpan('x.md', '--fast-path=fast', findings);
  reviewFlagSpan('x.md', '--no-such-flag', findings);
  t.is(findings.length, 5);
  t.false(knownMetric('flannel_bpf_peer_tx_packet_total'));
  t.true(knownMetric('flannel_bpf_reconcile_duration_seconds_bucket'));
  t.false(knownMetric('flannel_bpf_drops_total_bucket'));
  t.deepEqual(commandLines('flannel-bpf agent \\\n  --ip-masq # comment\n').map((l) => l.split(/\s+/)), [['flannel-bpf', 'agent', '--ip-masq']]);
});
