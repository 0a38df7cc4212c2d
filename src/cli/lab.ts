/**
 * `flannel-bpf lab up|check|status|down|list`
 *
 *   lab up --nodes 3 --backend vxlan [--direct-routing] [--pods-per-node 2] [--segments 1|2] [--decap auto|xdp|kernel|tc] [--prefix P]
 *   lab check [P]      ping every pod pair, print the matrix
 *   lab status [P]     `flannel-bpf status` on every node
 *   lab down [P|--all] remove the lab (also after a crash)
 *   lab list
 */
import { Lab, listLabs, teardownAll, loadState, teardown, type LabBackend, type PingMatrix } from './lab/lab.js';
import { nsRun } from './lab/netns.js';
import path from 'node:path';
import { repoRoot } from './lab/lab.js';

const USAGE = `usage:
  flannel-bpf lab up [--nodes N] [--backend vxlan|host-gw|udp] [--direct-routing] [--pods-per-node K]
                     [--segments 1|2] [--decap auto|xdp|kernel|tc] [--prefix P]
  flannel-bpf lab check [PREFIX]
  flannel-bpf lab status [PREFIX]
  flannel-bpf lab down [PREFIX | --all]
  flannel-bpf lab list
`;

interface UpArgs {
  nodes: number; backend: LabBackend; directRouting: boolean; podsPerNode: number; segments: 1 | 2;
  decap: 'auto' | 'xdp' | 'kernel' | 'tc'; prefix?: string;
}

function parseUp(argv: string[]): UpArgs {
  const a: UpArgs = { nodes: 3, backend: 'vxlan', directRouting: false, podsPerNode: 2, segments: 2, decap: 'auto' };
  for (let i = 0; i < argv.length; i++) {
    const [k, inline] = (argv[i] ?? '').split('=', 2) as [string, string | undefined];
    const val = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${k} needs a value`);
      return v;
    };
    switch (k) {
      case '--nodes': a.nodes = Number(val()); if (!Number.isInteger(a.nodes) || a.nodes < 1 || a.nodes > 60) throw new Error('--nodes must be 1..60'); break;
      case '--backend': {
        const b = val();
        if (b !== 'vxlan' && b !== 'host-gw' && b !== 'udp') throw new Error(`--backend ${b}: accepted values are vxlan, host-gw, udp`);
        a.backend = b;
        break;
      }
      case '--direct-routing': a.directRouting = inline === undefined ? true : inline === 'true'; break;
      case '--pods-per-node': a.podsPerNode = Number(val()); if (!Number.isInteger(a.podsPerNode) || a.podsPerNode < 0 || a.podsPerNode > 50) throw new Error('--pods-per-node must be 0..50'); break;
      case '--segments': { const s = Number(val()); if (s !== 1 && s !== 2) throw new Error('--segments must be 1 or 2'); a.segments = s; break; }
      case '--decap': {
        const d = val();
        if (d !== 'auto' && d !== 'xdp' && d !== 'kernel' && d !== 'tc') throw new Error(`--decap ${d}: accepted values are auto, xdp, kernel, tc`);
        a.decap = d;
        break;
      }
      case '--prefix': a.prefix = val(); break;
      default: throw new Error(`unknown flag ${k}\n${USAGE}`);
    }
  }
  if (a.backend === 'host-gw' && !argv.some((x) => x.startsWith('--segments'))) a.segments = 1;
  return a;
}

/** The connectivity matrix as a table: rows = source pods, columns = destinations. */
export function formatMatrix(m: PingMatrix): string {
  const names = m.pods.map((p) => p.name);
  const w = Math.max(6, ...names.map((n) => n.length));
  const lines = [`${'from \\ to'.padEnd(w + 16)} ${names.map((n) => n.padStart(w)).join(' ')}`];
  m.pods.forEach((p, i) => {
    const cells = (m.ok[i] ?? []).map((ok) => (ok ? '✓' : '✗').padStart(w));
    lines.push(`${`${p.name} ${p.ip}`.padEnd(w + 16)} ${cells.join(' ')}`);
  });
  const total = m.pods.length * m.pods.length;
  lines.push(`${total - m.failures.length}/${total} pod pairs reachable${m.failures.length ? `; failing: ${m.failures.join(', ')}` : ''}`);
  return lines.join('\n');
}

function pickPrefix(argv: string[]): string {
  const p = argv.find((x) => !x.startsWith('-'));
  if (p) return p;
  const labs = listLabs();
  if (labs.length === 0) throw new Error('no lab is up (flannel-bpf lab up)');
  if (labs.length > 1) throw new Error(`several labs are up (${labs.map((l) => l.prefix).join(', ')}): name one`);
  return labs[0]!.prefix;
}

export async function runLabCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const out = (s: string) => process.stdout.write(`${s}\n`);
  try {
    switch (sub) {
      case 'up': {
        const a = parseUp(rest);
        const t0 = Date.now();
        const lab = await Lab.up({ ...a, log: (l) => out(`  ${l}`) });
        out(`lab ${lab.state.prefix} up in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${a.nodes} nodes (${a.backend}${a.directRouting ? ' + DirectRouting' : ''}), ${lab.state.pods.length} pods`);
        for (const n of lab.state.nodes) out(`  ${n.name}  ${n.ns.padEnd(14)} ${n.ip.padEnd(15)} segment ${n.segment}  subnet ${n.subnet ?? '?'}  pid ${n.pid}`);
        return 0;
      }
      case 'check': {
        const lab = Lab.open(pickPrefix(rest));
        const m = await lab.check();
        out(formatMatrix(m));
        return m.failures.length ? 1 : 0;
      }
      case 'status': {
        const lab = Lab.open(pickPrefix(rest));
        const bin = path.join(repoRoot(), 'bin/flannel-bpf');
        for (const n of lab.state.nodes) {
          out(`── ${n.name} (${n.ns}, ${n.kind}) ──`);
          if (n.kind !== 'flannel-bpf') { out('  (not a flannel-bpf node)'); continue; }
          try {
            out(nsRun(n.ns, [bin, 'status', `--bpffs-pin-dir=${n.pinDir}`, `--state-dir=${n.stateDir}`], { timeoutMs: 30_000 }).trimEnd());
          } catch (err) {
            out(`  status failed: ${(err as Error).message}`);
          }
        }
        return 0;
      }
      case 'down': {
        if (rest.includes('--all')) {
          const done = teardownAll();
          out(done.length ? done.map((d) => `  ${d}`).join('\n') : 'no lab found');
          return 0;
        }
        const prefix = pickPrefix(rest);
        const s = loadState(prefix);
        if (!s) throw new Error(`no lab ${prefix}`);
        out(teardown(s).map((d) => `  ${d}`).join('\n'));
        return 0;
      }
      case 'list': {
        const labs = listLabs();
        out(labs.length ? labs.map((l) => `${l.prefix}  ${l.createdAt}  ${l.nodes.length} nodes  ${l.options.backend}`).join('\n') : 'no lab is up');
        return 0;
      }
      default:
        process.stderr.write(USAGE);
        return 2;
    }
  } catch (err) {
    process.stderr.write(`flannel-bpf lab: ${(err as Error).message}\n`);
    return 1;
  }
}
