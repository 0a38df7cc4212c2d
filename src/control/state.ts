/**
 * The agent's state file (<state-dir>/state.json): what `flannel-bpf status`
 * needs to describe the node when the agent is down (the pinned maps hold the
 * counters; this holds names: lease keys, nodes, the uplink, the engine…).
 * Written atomically; read tolerantly.
 */
import fs from 'node:fs';
import path from 'node:path';
import { formatCidr, formatIPv4, type Cidr } from '../maps/addr.js';

export interface StatePeer {
  leaseKey: string;
  subnet: string;
  publicIp: string;
  mode: string;
  peerId: number;
  vtepMac: string;
}

export interface AgentStateFile {
  version: 1;
  pid: number;
  startedAt: string;
  updatedAt: string;
  nodeName: string;
  store: { kind: 'etcd' | 'kube'; state: string; since: string; detail?: string };
  lease: { key: string; subnet: string; publicIp: string } | null;
  network: string;
  backend: { type: string; vni: number; port: number; directRouting: boolean; mtu: number };
  vtepMac: string;
  uplink: { name: string; ifindex: number; mtu: number; mac: string; driver: string; reason: string } | null;
  device: { name: string; ifindex: number; mtu: number } | null;
  engine: { requested: string; resolved: string; xdpMode: string | null } | null;
  pinDir: string;
  subnetFile: string;
  lastSync: string | null;
  maxPeers: number;
  peers: StatePeer[];
  rejected: Array<{ leaseKey: string; reason: string; message: string }>;
  unreachable: Array<{ leaseKey: string; subnet: string; publicIp: string; message: string }>;
  warnings: string[];
}

export function stateFilePath(stateDir: string): string {
  return path.join(stateDir, 'state.json');
}

/** The fields of a programmed peer the state file records (a DesiredPeerWithId). */
export interface PlannedPeerLike {
  leaseKey: string;
  subnet: Cidr;
  publicIp: number;
  mode: string;
  peerId: number;
  vtepMac: string;
}

/*
 * 10k peers make a 1.7 MB file. A programmed peer's entry, and its bytes in
 * the file, are made once per peer object — the reconciler keeps a peer's
 * object while the peer is unchanged — so a write is one writev of cached
 * pieces, not 10k objects formatted, stringified, joined and encoded (a few
 * ms of the event loop that lease changes wait for).
 */
const statePeers = new WeakMap<PlannedPeerLike, StatePeer>();
/** A peer's element in the peers array, UTF-8, followed by ",\n". */
const peerBytes = new WeakMap<StatePeer, Buffer>();
const SEP = Buffer.from(',\n');

/** The state-file entry of a programmed peer (the same object for the same peer). */
export function statePeerOf(p: PlannedPeerLike): StatePeer {
  let s = statePeers.get(p);
  if (!s) {
    s = { leaseKey: p.leaseKey, subnet: formatCidr(p.subnet), publicIp: formatIPv4(p.publicIp), mode: p.mode, peerId: p.peerId, vtepMac: p.vtepMac };
    statePeers.set(p, s);
  }
  return s;
}

function bytesOf(p: StatePeer): Buffer {
  let b = peerBytes.get(p);
  if (!b) {
    /* An array element two levels deep: its lines indented by two more spaces. */
    b = Buffer.from(`  ${JSON.stringify(p, null, 1).replace(/\n/g, '\n  ')},\n`);
    peerBytes.set(p, b);
  }
  return b;
}

/** The file as pieces to write in order: exactly the bytes of `${JSON.stringify(s, null, 1)}\n`. */
function statePieces(s: AgentStateFile): Buffer[] {
  const whole = (): Buffer[] => [Buffer.from(`${JSON.stringify(s, null, 1)}\n`)];
  if (s.peers.length === 0) return whole();
  const rest = JSON.stringify({ ...s, peers: [] }, null, 1);
  const marker = '\n "peers": []';
  const at = rest.indexOf(marker);
  if (at < 0) return whole();
  const out: Buffer[] = [Buffer.from(`${rest.slice(0, at)}\n "peers": [\n`)];
  for (const p of s.peers) out.push(bytesOf(p));
  const last = out[out.length - 1] as Buffer;
  out[out.length - 1] = last.subarray(0, last.length - SEP.length);
  out.push(Buffer.from(`\n ]${rest.slice(at + marker.length)}\n`));
  return out;
}

/** The file's text: exactly `${JSON.stringify(s, null, 1)}\n`. */
export function stateFileText(s: AgentStateFile): string {
  return Buffer.concat(statePieces(s)).toString('utf8');
}

/** When this process last wrote each state directory's file (ms since the epoch). */
const writtenAt = new Map<string, number>();

/** When this process last wrote the state file in `stateDir` (0: never). */
export function stateWrittenAt(stateDir: string): number {
  return writtenAt.get(stateDir) ?? 0;
}

export function writeStateFile(stateDir: string, s: AgentStateFile): void {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o755 });
  const file = stateFilePath(stateDir);
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    const pieces = statePieces(s);
    const want = pieces.reduce((n, b) => n + b.length, 0);
    let done = 0;
    while (done < want) {
      /* writev may stop short (signals, huge files): go on from where it stopped. */
      let skip = done;
      const rest: Buffer[] = [];
      for (const b of pieces) {
        if (skip >= b.length) { skip -= b.length; continue; }
        rest.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
      done += fs.writevSync(fd, rest);
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  writtenAt.set(stateDir, Date.now());
}

export function readStateFile(stateDir: string): AgentStateFile | null {
  try {
    const s = JSON.parse(fs.readFileSync(stateFilePath(stateDir), 'utf8')) as AgentStateFile;
    return s.version === 1 ? s : null;
  } catch {
    return null;
  }
}

/** Is the process that wrote the state file still alive? */
export function agentAlive(s: Pick<AgentStateFile, 'pid'>): boolean {
  try {
    process.kill(s.pid, 0);
    const cmd = fs.readFileSync(`/proc/${s.pid}/cmdline`, 'utf8');
    return cmd.includes('agent');
  } catch {
    return false;
  }
}
