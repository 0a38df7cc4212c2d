/**
 * Neighbour events on cni0 (`ip monitor neigh dev cni0`), so that the fast
 * path learns a pod's endpoint when the kernel learns the pod's MAC, not at the
 * next poll: a new pod's first flow otherwise crossed the bridge until then
 * (6 instead of 14 Gbit/s after a tc decap), and polling cni0's tables every
 * 2 s cost an idle agent three `ip`/`bridge` processes every 2 s.
 *
 * The parsing and the "does this event change an endpoint" decision are pure;
 * the watcher (the effect) restarts `ip monitor` when it exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cidrContains, isIPv4, parseIPv4, type Cidr } from '../maps/addr.js';
import type { Endpoint } from '../maps/endpoints.js';

export interface NeighEvent {
  /** The kernel deleted the entry ("Deleted …"). */
  deleted: boolean;
  ip: string;
  /** Lower-case MAC, when the entry has one. */
  mac: string | null;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/**
 * Pure: one line of `ip monitor neigh dev <dev>` (iproute2 6.1), e.g.
 * `10.244.6.2 lladdr b6:af:e7:bd:ea:22 managed STALE proto 251` or
 * `Deleted 10.244.6.2 lladdr … STALE`; null for anything else.
 */
export function parseNeighEvent(line: string): NeighEvent | null {
  const words = line.trim().split(/\s+/);
  let i = 0;
  const deleted = words[0] === 'Deleted';
  if (deleted) i++;
  if (words[i] === 'miss') i++;
  const ip = words[i];
  if (!ip || !isIPv4(ip)) return null;
  const at = words.indexOf('lladdr', i + 1);
  const mac = at > 0 && MAC.test(words[at + 1] ?? '') ? words[at + 1]!.toLowerCase() : null;
  return { deleted, ip, mac };
}

/**
 * Pure: whether an event asks for an endpoint sync — a pod address of our
 * subnet that now has a MAC the map does not hold for it, or the deletion of
 * the neighbour entry of a pod the map has (the endpoint outlives it,
 * endpoints.ts, but the sync makes the entry a managed one again, so that the
 * next flow's first packet finds it instead of going up the stack). The state
 * changes of an entry the map already has do not (the kernel re-probing an
 * idle pod's managed entry every ~30 s).
 */
export function eventChangesEndpoint(e: NeighEvent, subnet: Cidr, current: Endpoint | undefined): boolean {
  if (!cidrContains(subnet, parseIPv4(e.ip))) return false;
  if (e.deleted) return current !== undefined;
  return e.mac !== null && current?.mac !== e.mac;
}

export type MonitorSpawner = (args: string[]) => ChildProcess;
const defaultSpawner: MonitorSpawner = (args) => spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });

export interface NeighbourWatch {
  /** The device's ifindex the monitor was started for (a re-created cni0 needs a new monitor). */
  readonly ifindex: number;
  running(): boolean;
  stop(): void;
}

/**
 * Run `ip monitor neigh dev <dev>` and hand each parsed event to `onEvent`;
 * `onExit` hears when the monitor stops by itself (with its last stderr line),
 * so that the caller can start another and poll meanwhile.
 */
export function watchNeighbours(dev: string, ifindex: number, onEvent: (e: NeighEvent) => void,
  onExit: (reason: string) => void, spawner: MonitorSpawner = defaultSpawner): NeighbourWatch {
  let stopped = false;
  let alive = true;
  const child = spawner(['monitor', 'neigh', 'dev', dev]);
  let buf = '';
  let err = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const e = parseNeighEvent(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (e) onEvent(e);
    }
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => { err = (err + d).slice(-500); });
  const exited = (reason: string): void => {
    if (!alive) return;
    alive = false;
    if (!stopped) onExit(reason);
  };
  child.on('error', (e) => exited(e.message));
  child.on('close', (code) => exited(err.trim().split('\n').pop() || `ip monitor exited (${code})`));
  return {
    ifindex,
    running: () => alive,
    stop: () => {
      stopped = true;
      if (alive) child.kill('SIGTERM');
    },
  };
}
