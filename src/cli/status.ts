/**
 * `flannel-bpf status [--json] [--watch] [--peers] [--node-dir DIR]
 *                     [--bpffs-pin-dir DIR] [--state-dir DIR] [--interval S]`
 *
 * Describes this node's dataplane from what is on the node, so that it works
 * while the agent is down: the pinned maps (config, peers, counters, drops),
 * the programs attached at the hooks the pinned config names, the agent's
 * state file (names, lease store, rejected/unreachable leases), subnet.env,
 * the interfaces and rp_filter of the network namespace it runs in. Needs
 * root (reading pinned maps). The pure part (report, screen, JSON) is in
 * status-format.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { NodeMaps } from '../maps/index.js';
import { hookStates, PROGRAMS } from '../loader/dataplane.js';
import { installLibbpfLog, setLibbpfLogSink } from '../loader/log.js';
import { programNameById, rememberPinnedPrograms } from '../loader/object.js';
import { FlannelBpfError, BpfPermissionError } from '../loader/errors.js';
import { readStateFile, agentAlive } from '../control/state.js';
import { readSubnetEnv } from '../control/subnet-env.js';
import { readPeerCountersExact } from '../metrics/peer-counters.js';
import { buildReport, formatStatus, reportToJson, type LinkFact, type PreviousSample, type StatusFacts, type StatusReport } from './status-format.js';
import { pause } from '../control/subnet/util.js';

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/flannel-bpf';
export const DEFAULT_STATE_DIR = '/run/flannel-bpf';
export const WATCH_INTERVAL_S = 2;

const USAGE = `usage: flannel-bpf status [--json] [--watch] [--peers] [--node-dir DIR]
                          [--bpffs-pin-dir DIR] [--state-dir DIR] [--interval SECONDS]

Shows this node's flannel-bpf dataplane: node, subnet, backend, decap engine,
attached programs, map fill, agent health, lease store, peers with their
counters, drops by reason, and warnings. Works while the agent is down (it
reads the pinned maps and the agent's state file). Run as root, in the node's
network namespace.

  --json             one JSON document (schema: docs/status-schema.md); every peer
  --watch            redraw every ${WATCH_INTERVAL_S} s with rates (with --json: one document per line)
  --peers            every peer (default: the ${10} busiest)
  --node-dir DIR     the directory holding the agent's state.json (its --state-dir)
  --bpffs-pin-dir D  the agent's --bpffs-pin-dir (default: from state.json, else ${DEFAULT_PIN_DIR})
  --state-dir DIR    same as --node-dir (default ${DEFAULT_STATE_DIR})
  --interval S       --watch period in seconds (default ${WATCH_INTERVAL_S})
`;

export class StatusError extends FlannelBpfError {}

export interface StatusArgs {
  json: boolean;
  watch: boolean;
  peers: boolean;
  pinDir: string | null;
  stateDir: string | null;
  interval: number;
  help: boolean;
}

/** Flags as the agent takes them: -flag, --flag, --flag=value, --flag value. */
export function parseStatusArgs(argv: readonly string[]): StatusArgs {
  const a: StatusArgs = { json: false, watch: false, peers: false, pinDir: null, stateDir: null, interval: WATCH_INTERVAL_S, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const m = /^--?([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new StatusError(`unexpected argument ${JSON.stringify(arg)}`, 'see flannel-bpf status --help');
    const name = m[1]!;
    const inline = m[2];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new StatusError(`--${name} needs a value`, 'see flannel-bpf status --help');
      return v;
    };
    const bool = (): boolean => {
      if (inline === undefined) return true;
      if (/^(1|t|true)$/i.test(inline)) return true;
      if (/^(0|f|false)$/i.test(inline)) return false;
      throw new StatusError(`--${name}=${inline}: expected true or false`, 'see flannel-bpf status --help');
    };
    switch (name) {
      case 'json': a.json = bool(); break;
      case 'watch': a.watch = bool(); break;
      case 'peers': a.peers = bool(); break;
      case 'node-dir': case 'state-dir': a.stateDir = value(); break;
      case 'bpffs-pin-dir': a.pinDir = value(); break;
      case 'interval': {
        const v = Number(value());
        if (!Number.isFinite(v) || v < 0.2 || v > 3600) throw new StatusError(`--interval ${v}: expected seconds between 0.2 and 3600`, 'e.g. --interval 2');
        a.interval = v;
        break;
      }
      case 'h': case 'help': a.help = true; break;
      default: throw new StatusError(`unknown flag --${name}`, 'see flannel-bpf status --help');
    }
  }
  return a;
}

export interface StatusDirs {
  pinDir: string;
  stateDir: string;
}

/** Flags, then FLANNELD_* (as the agent), then the state file's pin dir, then the defaults. */
export function resolveDirs(a: Pick<StatusArgs, 'pinDir' | 'stateDir'>, env: Readonly<Record<string, string | undefined>>): StatusDirs {
  const stateDir = a.stateDir ?? (env.FLANNELD_STATE_DIR || null) ?? DEFAULT_STATE_DIR;
  const pinDir = a.pinDir ?? (env.FLANNELD_BPFFS_PIN_DIR || null) ?? readStateFile(stateDir)?.pinDir ?? DEFAULT_PIN_DIR;
  return { pinDir, stateDir };
}

function readLinks(): LinkFact[] {
  try {
    const out = execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    return (JSON.parse(out) as Array<{ ifindex: number; ifname: string; mtu: number; address?: string }>)
      .map((l) => ({ ifindex: l.ifindex, name: l.ifname, mtu: l.mtu, mac: l.address ?? '' }));
  } catch {
    return [];
  }
}

function sameNetns(pid: number): boolean | null {
  try {
    return fs.statSync('/proc/self/ns/net').ino === fs.statSync(`/proc/${pid}/ns/net`).ino;
  } catch {
    return null;
  }
}

function readSysctl(key: string): number | null {
  try {
    const v = Number(fs.readFileSync(`/proc/sys/${key}`, 'utf8').trim());
    return Number.isInteger(v) ? v : null;
  } catch {
    return null;
  }
}

/** Everything the report needs, read from the node (maps, netlink, files). */
export function gatherFacts(dirs: StatusDirs, now = new Date()): StatusFacts {
  const { pinDir, stateDir } = dirs;
  try {
    fs.statSync(path.join(pinDir, 'fbpf_config'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new StatusError(`cannot read the pins under ${pinDir} (permission denied)`, 'run status as root on the node (sudo flannel-bpf status)');
    }
  }
  if (!fs.existsSync(path.join(pinDir, 'fbpf_config'))) {
    const state = readStateFile(stateDir);
    throw new StatusError(`flannel-bpf is not set up on this node (no pins under ${pinDir})`,
      state && state.pinDir !== pinDir
        ? `the agent's state file says its pins are under ${state.pinDir}: pass --bpffs-pin-dir=${state.pinDir}`
        : 'start the agent (it loads the dataplane and pins its maps there), or point status at its directories: --bpffs-pin-dir=<the agent\'s --bpffs-pin-dir> --node-dir=<its --state-dir>');
  }
  let maps: NodeMaps;
  try {
    maps = NodeMaps.fromPinDir(pinDir);
  } catch (err) {
    if (err instanceof BpfPermissionError || (process.getuid?.() ?? 0) !== 0) {
      throw new StatusError(`cannot open the pinned maps under ${pinDir}: ${(err as Error).message}`, 'run status as root on the node (sudo flannel-bpf status)');
    }
    throw err;
  }
  try {
    const config = maps.readConfig();
    if (!config) {
      throw new StatusError(`the pinned maps under ${pinDir} hold no node configuration`, 'the agent has not finished setting up this node: wait for it, or read its log');
    }
    const state = readStateFile(stateDir);
    rememberPinnedPrograms(pinDir); /* our programs by their pins: no CAP_SYS_ADMIN needed */
    const links = readLinks();
    /* The fast path's cni0 hook: cni0 appears with the first pod, and the agent attaches to it then. */
    const cniIfindex = config.cniIfindex || links.find((l) => l.name === 'cni0')?.ifindex;
    const hooks = hookStates({ uplinkIfindex: config.uplinkIfindex, devIfindex: config.devIfindex, cniIfindex });
    const programNames = new Map<number, string>();
    for (const h of hooks) {
      if (h.progId) {
        const name = programNameById(h.progId);
        /* Ours carry full names (from the pins); a kernel name keeps 15 characters, completed only when that is unambiguous (fbpf_uplink_ing… is two programs). */
        const full = name ? Object.values(PROGRAMS).map((p) => p.program).filter((p) => p.startsWith(name)) : [];
        if (name) programNames.set(h.progId, full.length === 1 ? full[0]! : name);
      }
    }
    const peers = maps.peers.entries().map(([subnet, value]) => ({ subnet, value }));
    const counters = readPeerCountersExact(maps.peerStats.map, [...new Set(peers.map((p) => p.value.peerId))]);
    const uplinkName = links.find((l) => l.ifindex === config.uplinkIfindex)?.name ?? state?.uplink?.name;
    const env = state ? readSubnetEnv(state.subnetFile) : null;
    const agentRunning = state ? agentAlive(state) : false;
    return {
      now, pinDir, stateDir, config, state, agentRunning,
      agentSameNetns: agentRunning && state ? sameNetns(state.pid) : null,
      hooks, programNames, links, peers,
      sources: maps.map('fbpf_sources').lookupAll(8192).count,
      capacity: { fbpf_peers: maps.peers.capacity, fbpf_sources: maps.sources.capacity, fbpf_peer_stats: maps.peerStats.capacity },
      counters, drops: maps.readDrops(),
      rpFilter: {
        all: readSysctl('net/ipv4/conf/all/rp_filter'),
        uplink: uplinkName && /^[\w.@-]+$/.test(uplinkName) ? readSysctl(`net/ipv4/conf/${uplinkName}/rp_filter`) : null,
      },
      subnetEnvMtu: env?.mtu ?? null,
      subnetEnvExists: state ? env !== null : null,
    };
  } finally {
    maps.close();
  }
}

/** One report (status.ts's whole job without printing). */
export function statusReport(dirs: StatusDirs, prev?: PreviousSample): StatusReport {
  const facts = gatherFacts(dirs);
  return buildReport(facts, prev);
}

export async function runStatusCommand(argv: string[]): Promise<number> {
  let args: StatusArgs;
  try {
    args = parseStatusArgs(argv);
  } catch (err) {
    process.stderr.write(`flannel-bpf status: ${(err as StatusError).message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const dirs = resolveDirs(args, process.env);
  /* libbpf would print the kernel's extack for every empty hook it queries. */
  installLibbpfLog();
  setLibbpfLogSink(null);
  const render = (r: StatusReport): string => (args.json ? `${reportToJson(r, !args.watch)}\n` : formatStatus(r, { allPeers: args.peers }));
  try {
    if (!args.watch) {
      process.stdout.write(render(statusReport(dirs)));
      return 0;
    }
    const stop = new AbortController();
    const onSig = () => stop.abort();
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    const tty = process.stdout.isTTY === true && !args.json;
    let prev: PreviousSample | undefined;
    try {
      while (!stop.signal.aborted) {
        const at = new Date();
        const report = buildReport(gatherFacts(dirs, at), prev);
        const screen = render(report);
        process.stdout.write(tty ? `\x1b[H\x1b[2J${screen}` : args.json ? screen : `${screen}\n`);
        prev = { report, at };
        await pause(args.interval * 1000, stop.signal);
      }
    } finally {
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
    }
    return 0;
  } catch (err) {
    const e = err as Error & { remedy?: string };
    const msg = e instanceof FlannelBpfError ? e.message.slice(0, e.message.length - e.remedy!.length - 3) : e.message;
    process.stderr.write(`flannel-bpf status: ${msg}\n${e.remedy ? `  remedy: ${e.remedy}\n` : ''}`);
    return 1;
  }
}
