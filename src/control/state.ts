/**
 * The agent's state file (<state-dir>/state.json): what `flannel-bpf status`
 * needs to describe the node when the agent is down (the pinned maps hold the
 * counters; this holds names: lease keys, nodes, the uplink, the engine…).
 * Written atomically; read tolerantly.
 */
import fs from 'node:fs';
import path from 'node:path';

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

export function writeStateFile(stateDir: string, s: AgentStateFile): void {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o755 });
  const file = stateFilePath(stateDir);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(s, null, 1)}\n`, { mode: 0o644 });
  fs.renameSync(tmp, file);
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
