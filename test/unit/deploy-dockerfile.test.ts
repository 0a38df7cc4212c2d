/**
 * deploy/Dockerfile, checked statically (no Docker daemon here): the stages and their base images, the
 * packages, that every path it COPYs exists in the repository (and is not filtered out by its
 * .dockerignore), that the paths copied between stages are the ones those stages produce, that the
 * entrypoint command exists, and that the runtime needs only production dependencies. Also the iptables
 * wrapper the image installs, run against stub commands.
 */
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { builtinModules } from 'node:module';
import { execFileSync } from 'node:child_process';
import { ROOT, readText, loadManifest, runtimeSources } from './deploy-support.js';
import { PROGRAMS } from '../../src/loader/dataplane.js';

interface Instr { cmd: string; args: string; line: number; stage: number }
interface Stage { name: string | null; image: string; instrs: Instr[] }

/** Dockerfile instructions: comments dropped, continuation lines joined. */
function parseDockerfile(text: string): { stages: Stage[]; preamble: Instr[] } {
  const instrs: Instr[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((l, i) => {
    const line = l.trimEnd();
    if (buf === '' && (line.trim() === '' || line.trim().startsWith('#'))) return;
    if (buf === '') start = i + 1;
    if (line.trim().startsWith('#')) return; /* comment inside a continuation */
    if (line.endsWith('\\')) { buf += `${line.slice(0, -1)} `; return; }
    buf += line;
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(buf);
    if (!m) throw new Error(`line ${start}: cannot parse ${JSON.stringify(buf)}`);
    instrs.push({ cmd: (m[1] ?? '').toUpperCase(), args: (m[2] ?? '').replace(/\s+/g, ' ').trim(), line: start, stage: -1 });
    buf = '';
  });
  const stages: Stage[] = [];
  const preamble: Instr[] = [];
  for (const ins of instrs) {
    if (ins.cmd === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      stages.push({ image: m?.[1] ?? '', name: m?.[2] ?? null, instrs: [] });
    } else if (stages.length === 0) {
      preamble.push(ins);
    } else {
      ins.stage = stages.length - 1;
      (stages[stages.length - 1] as Stage).instrs.push(ins);
    }
  }
  return { stages, preamble };
}

const dockerfile = readText('deploy/Dockerfile');
const { stages, preamble } = parseDockerfile(dockerfile);
const stage = (name: string | null): Stage => {
  const s = name === null ? stages[stages.length - 1] : stages.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
};
const runs = (s: Stage): string[] => s.instrs.filter((i) => i.cmd === 'RUN').map((i) => i.args);
const workdir = (s: Stage, before: Instr): string => {
  let wd = '/';
  for (const i of s.instrs) {
    if (i === before) break;
    if (i.cmd === 'WORKDIR') wd = path.posix.resolve(wd, i.args);
  }
  return wd;
};

interface Copy { from: string | null; chmod: string | null; sources: string[]; dest: string; instr: Instr }
function copies(s: Stage): Copy[] {
  return s.instrs.filter((i) => i.cmd === 'COPY' || i.cmd === 'ADD').map((i) => {
    const words = i.args.split(' ');
    let from: string | null = null;
    let chmod: string | null = null;
    while (words[0]?.startsWith('--')) {
      const w = words.shift() as string;
      if (w.startsWith('--from=')) from = w.slice('--from='.length);
      else if (w.startsWith('--chmod=')) chmod = w.slice('--chmod='.length);
      else throw new Error(`line ${i.line}: unexpected ${w}`);
    }
    const dest = words.pop() as string;
    return { from, chmod, sources: words, dest: path.posix.resolve(workdir(s, i), dest), instr: i };
  });
}

function aptPackages(s: Stage): string[] {
  const out: string[] = [];
  for (const r of runs(s)) {
    for (const m of r.matchAll(/apt-get install ([^&;|]+)/g)) {
      out.push(...(m[1] ?? '').split(' ').filter((w) => w !== '' && !w.startsWith('-')));
    }
  }
  return out.sort();
}

test('four stages: BPF objects on Debian 12, TypeScript and production node_modules on Node 20, a Node 20 slim runtime', (t) => {
  t.deepEqual(preamble.map((p) => p.cmd), [], 'nothing before the first FROM');
  t.deepEqual(stages.map((s) => `${s.name ?? '(runtime)'} ${s.image}`), [
    'bpf debian:bookworm-slim',
    'ts node:20-bookworm-slim',
    'deps node:20-bookworm-slim',
    '(runtime) node:20-bookworm-slim',
  ]);
  t.regex(dockerfile.split('\n')[0] ?? '', /^# syntax=docker\/dockerfile:1/, 'BuildKit syntax (COPY --chmod, Dockerfile.dockerignore)');
});

test('packages: clang + libbpf-dev to build the programs; the runtime gets libbpf1, iproute2, iptables and nothing else', (t) => {
  t.deepEqual(aptPackages(stage('bpf')), ['clang', 'libbpf-dev', 'linux-libc-dev']);
  t.deepEqual(aptPackages(stage(null)), ['iproute2', 'iptables', 'libbpf1']);
  t.deepEqual(aptPackages(stage('ts')), []);
  t.deepEqual(aptPackages(stage('deps')), []);
  for (const s of stages) {
    for (const r of runs(s).filter((x) => x.includes('apt-get install'))) {
      t.regex(r, /apt-get update && apt-get install -y --no-install-recommends /, 'update and install in one layer, no recommends');
      t.regex(r, /rm -rf \/var\/lib\/apt\/lists\/\*/, 'apt lists removed in the same layer');
    }
  }
  t.regex(runs(stage(null)).join(' '), /rm -rf \/usr\/local\/lib\/node_modules \/usr\/local\/bin\/npm \/usr\/local\/bin\/npx/, 'npm is not shipped');
});

test('every path COPYed from the build context exists in the repository and is not excluded by Dockerfile.dockerignore', (t) => {
  const ignore = readText('deploy/Dockerfile.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const ignored = (p: string): boolean => ignore.some((pat) => {
    const clean = pat.replace(/^\*\*\//, '').replace(/\/$/, '');
    if (clean.startsWith('*.')) return p.endsWith(clean.slice(1));
    return p === clean || p.startsWith(`${clean}/`);
  });
  let n = 0;
  for (const s of stages) {
    for (const c of copies(s).filter((x) => x.from === null)) {
      for (const src of c.sources) {
        n++;
        t.false(src.includes('*') || src.includes('..'), `${src}: a plain path inside the context`);
        const abs = path.join(ROOT, src);
        t.true(fs.existsSync(abs), `line ${c.instr.line}: ${src} exists`);
        if (src.endsWith('/')) t.true(fs.statSync(abs).isDirectory(), `${src} is a directory`);
        t.false(ignored(src.replace(/\/$/, '')), `${src} is not excluded by the .dockerignore`);
      }
    }
  }
  t.true(n >= 10);
  for (const p of ['node_modules', 'build', 'dist']) t.true(ignored(p), `the checkout's ${p}/ stays out of the context`);
});

test('COPY --from: earlier stages only, and exactly the paths those stages produce', (t) => {
  const runtime = stage(null);
  const from = copies(runtime).filter((c) => c.from !== null);
  t.deepEqual(from.map((c) => `${c.from} ${c.sources.join(' ')} → ${c.dest}`), [
    'deps /src/node_modules/ → /app/node_modules',
    'ts /src/dist/ → /app/dist',
    'bpf /src/build/bpf/ → /app/build/bpf',
  ]);
  for (const c of from) t.true(stages.findIndex((s) => s.name === c.from) < stages.indexOf(runtime), `${c.from} is an earlier stage`);

  /* bpf: the objects are written to <WORKDIR>/build/bpf */
  const bpf = stage('bpf');
  const build = bpf.instrs.find((i) => i.cmd === 'RUN' && i.args.includes('build-bpf.sh'));
  t.truthy(build);
  t.is(path.posix.resolve(workdir(bpf, build as Instr), /BPF_OUT_DIR=(\S+)/.exec(build?.args ?? '')?.[1] ?? '?'), '/src/build/bpf');
  t.regex(readText('scripts/build-bpf.sh'), /BPF_OUT_DIR/, 'build-bpf.sh honours BPF_OUT_DIR');
  for (const p of Object.values(PROGRAMS)) t.true(fs.existsSync(path.join(ROOT, 'bpf', p.object.replace(/\.o$/, '.c'))), `${p.object} is built from bpf/`);

  /* ts: the project's compiled build (scripts/build.sh → tsconfig.build.json) plus the migration helper, into <WORKDIR>/dist */
  const ts = stage('ts');
  const tsc = ts.instrs.find((i) => i.cmd === 'RUN' && i.args.includes('tsc'));
  t.is(tsc?.args, 'bash scripts/build.sh --js-only && npx tsc -p deploy/tsconfig.image.json && rm -f dist/.tsbuildinfo*');
  t.is(workdir(ts, tsc as Instr), '/src');
  t.regex(readText('scripts/build.sh'), /tsc"? -p tsconfig\.build\.json/, 'scripts/build.sh compiles with tsconfig.build.json');
  const buildCfg = JSON.parse(readText('tsconfig.build.json')) as { compilerOptions: Record<string, unknown>; include: string[] };
  const outDir = path.posix.resolve('/src', String(buildCfg.compilerOptions.outDir));
  const rootDir = path.posix.resolve('/src', String(buildCfg.compilerOptions.rootDir));
  t.is(outDir, '/src/dist');
  t.deepEqual(buildCfg.include, ['src/**/*.ts']);
  const image = JSON.parse(readText('deploy/tsconfig.image.json')) as { extends: string; compilerOptions: Record<string, unknown>; include: string[] };
  t.is(image.extends, '../tsconfig.build.json', 'the helper is compiled with the same options, into the same dist/');
  t.deepEqual(image.include, ['flannel-cleanup.ts']);
  t.false('outDir' in image.compilerOptions || 'rootDir' in image.compilerOptions);
  t.not(path.posix.resolve('/src/deploy', String(image.compilerOptions.tsBuildInfoFile)), path.posix.resolve('/src', String(buildCfg.compilerOptions.tsBuildInfoFile)),
    'its own incremental state');
  const emitted = (src: string): string => path.posix.join('/app/dist', path.posix.relative(rootDir, `/src/${src}`)).replace(/\.ts$/, '.js');
  t.is(emitted('src/cli/main.ts'), '/app/dist/src/cli/main.js');
  t.regex(readText('bin/flannel-bpf'), /dist\/src\/cli\/main\.js/, 'bin/flannel-bpf runs dist/src/cli/main.js');
  t.regex(readText('bin/flannel-bpf'), /! -d "\$dir\/src"/, '… and runs it without a freshness stamp when there is no src/ next to it (the image)');
  t.false(copies(stage(null)).some((c) => c.sources.some((x) => x.startsWith('src'))), 'no src/ in the runtime image');
  const rm = loadManifest().initContainers.find((c) => c.name === 'remove-flannel');
  t.deepEqual(rm?.command, ['node', emitted('deploy/flannel-cleanup.ts')], 'the init container runs the compiled migration helper');

  /* deps: npm ci --omit=dev in /src */
  const deps = stage('deps');
  const ci = deps.instrs.find((i) => i.cmd === 'RUN' && i.args.includes('npm ci'));
  t.regex(ci?.args ?? '', /npm ci --omit=dev/);
  t.is(workdir(deps, ci as Instr), '/src');
});

test('the entrypoint is "flannel-bpf agent", and that command exists in the image', (t) => {
  const runtime = stage(null);
  const ep = runtime.instrs.filter((i) => i.cmd === 'ENTRYPOINT');
  t.is(ep.length, 1);
  t.deepEqual(JSON.parse(ep[0]?.args ?? '[]'), ['flannel-bpf', 'agent'], 'exec form');
  t.regex(runs(runtime).join(' '), /ln -s \/app\/bin\/flannel-bpf \/usr\/local\/bin\/flannel-bpf/, 'flannel-bpf on PATH');
  const bin = copies(runtime).find((c) => c.dest === '/app/bin/flannel-bpf');
  t.deepEqual(bin?.sources, ['bin/flannel-bpf']);
  t.is(bin?.chmod, '0755');
  t.true((fs.statSync(path.join(ROOT, 'bin/flannel-bpf')).mode & 0o111) !== 0, 'bin/flannel-bpf is executable');
  t.regex(readText('src/cli/main.ts'), /case 'agent':/, 'agent is a flannel-bpf command');
  t.truthy(copies(runtime).find((c) => c.sources.includes('package.json') && c.dest === '/app'), 'package.json ("type": "module") next to dist/');
  t.is(runtime.instrs.filter((i) => i.cmd === 'USER').pop()?.args, 'root', 'root: the capabilities apply to uid 0');
  /* the manifest's agent container runs the same command */
  t.deepEqual(loadManifest().agent.command, ['flannel-bpf', 'agent']);
});

test('the runtime needs only production dependencies: every package the compiled code imports is in "dependencies"', (t) => {
  const pkg = JSON.parse(readText('package.json')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
  const files = runtimeSources();
  const bad: string[] = [];
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8');
    const specs = [
      ...[...text.matchAll(/^import (?!type )[^'"]*?from '([^']+)'/gm)].map((x) => x[1]),
      ...[...text.matchAll(/^import '([^']+)'/gm)].map((x) => x[1]),
      ...[...text.matchAll(/import\('([^']+)'\)/g)].map((x) => x[1]),
      ...[...text.matchAll(/^export (?!type )[^'"]*? from '([^']+)'/gm)].map((x) => x[1]),
    ];
    for (const s of specs) {
      if (!s || s.startsWith('.') || s.startsWith('node:') || builtinModules.includes(s)) continue;
      const pkgName = s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : (s.split('/')[0] ?? s);
      if (!(pkgName in pkg.dependencies)) bad.push(`${path.relative(ROOT, f)}: ${s}`);
    }
  }
  t.deepEqual(bad, []);
});

/* ------------------------------------------------------------ iptables-wrapper.sh */

function stubSbin(t: { teardown(fn: () => void): void }, save: { legacy: string; nft: string }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fbt-iptw-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const mode of ['legacy', 'nft'] as const) {
    for (const suffix of ['', '-restore']) {
      fs.writeFileSync(path.join(dir, `iptables-${mode}${suffix}`), `#!/bin/sh\necho "${mode}${suffix} $*"\n`, { mode: 0o755 });
    }
    /* iptables-<mode>-save prints its canned rules; with -t mangle only the mangle table's lines */
    const body = save[mode].replace(/'/g, '');
    fs.writeFileSync(path.join(dir, `iptables-${mode}-save`),
      `#!/bin/sh\nif [ "$*" = "-t mangle" ]; then printf '%s\\n' '${body}' | grep -E '^:KUBE-' || true; else printf '%s\\n' '${body}'; fi\n`, { mode: 0o755 });
  }
  fs.copyFileSync(path.join(ROOT, 'deploy/iptables-wrapper.sh'), path.join(dir, 'iptables-wrapper'));
  fs.chmodSync(path.join(dir, 'iptables-wrapper'), 0o755);
  return dir;
}

const sh = (dir: string, cmd: string, args: string[] = []): string =>
  execFileSync(path.join(dir, cmd), args, { encoding: 'utf8', env: { ...process.env, IPTABLES_WRAPPER_SBIN: dir } }).trim();

test('iptables-wrapper: follows the kubelet\'s hint chain, else the backend with more rules (nft on a tie)', (t) => {
  const rules = (n: number): string => Array.from({ length: n }, (_, i) => `-A X -j RULE${i}`).join('\n');
  const cases: Array<[{ legacy: string; nft: string }, string]> = [
    [{ legacy: rules(50), nft: ':KUBE-IPTABLES-HINT - [0:0]' }, 'nft'],
    [{ legacy: `:KUBE-KUBELET-CANARY - [0:0]\n${rules(1)}`, nft: rules(50) }, 'legacy'],
    [{ legacy: rules(12), nft: rules(3) }, 'legacy'],
    [{ legacy: rules(2), nft: rules(2) }, 'nft'],
    [{ legacy: '', nft: '' }, 'nft'],
  ];
  for (const [save, want] of cases) t.is(sh(stubSbin(t, save), 'iptables-wrapper', ['--detect']), want);
});

test('iptables-wrapper: --install points iptables, iptables-save, iptables-restore at it; the first call re-points them and runs the real command', (t) => {
  const dir = stubSbin(t, { legacy: ':KUBE-IPTABLES-HINT - [0:0]', nft: '' });
  sh(dir, 'iptables-wrapper', ['--install']);
  for (const c of ['iptables', 'iptables-save', 'iptables-restore']) t.is(fs.readlinkSync(path.join(dir, c)), 'iptables-wrapper');
  t.is(sh(dir, 'iptables-restore', ['--noflush', '-w', '5']), 'legacy-restore --noflush -w 5');
  t.deepEqual(['iptables', 'iptables-save', 'iptables-restore'].map((c) => fs.readlinkSync(path.join(dir, c))),
    ['iptables-legacy', 'iptables-legacy-save', 'iptables-legacy-restore'], 'chosen once, then the real commands run directly');
  t.is(sh(dir, 'iptables'), 'legacy');
  const runtime = stage(null);
  t.truthy(copies(runtime).find((c) => c.sources.includes('deploy/iptables-wrapper.sh') && c.dest === '/usr/sbin/iptables-wrapper' && c.chmod === '0755'));
  t.true(runs(runtime).includes('/usr/sbin/iptables-wrapper --install'));
});
