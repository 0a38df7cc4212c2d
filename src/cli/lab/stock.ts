/**
 * Stock flannel's kernel dataplane, programmed exactly as flanneld programs
 * it (flannel-compat.md §6–7), for side-by-side comparisons (demo, bench):
 * vxlan: flannel.1 (VNI 1, dstport 8472, nolearning, MTU = uplink − 50,
 * <subnet>/32), and per peer a PERMANENT neighbour, a `self permanent` FDB
 * entry and an onlink route; DirectRouting peers on-link: a plain route via
 * the peer; host-gw: a route via the peer.
 */
import { nsExec, nsRun } from './netns.js';
import { masqRules, forwardRules, ensureRules, type Exec } from '../../control/masquerade.js';
import { parseCidr } from '../../maps/addr.js';

/** flanneld's --ip-masq and forward rules (the default manifest runs with --ip-masq). */
export function programStockRules(me: Pick<StockNode, 'ns' | 'subnet'>, network: string): void {
  const exec: Exec = (cmd, args, input) => nsRun(me.ns, [cmd, ...args], { input });
  ensureRules(masqRules(parseCidr(network), parseCidr(me.subnet), true), exec);
  ensureRules(forwardRules(parseCidr(network)), exec);
}

export interface StockNode {
  ns: string;
  /** Public (underlay) IP. */
  ip: string;
  /** Uplink inside ns. */
  iface: string;
  /** Pod subnet, a.b.c.0/24. */
  subnet: string;
  vtepMac: string;
  uplinkMtu?: number;
}

function netAddr(subnet: string): string {
  return subnet.split('/')[0] ?? subnet;
}

/** flanneld's vxlan device and one route/neigh/FDB triple per peer (or a direct route for on-link DirectRouting peers). */
export function programStockVxlan(me: StockNode, peers: readonly StockNode[], opts: { directRouting?: boolean; onLink?: (peer: StockNode) => boolean } = {}): void {
  const mtu = (me.uplinkMtu ?? 1500) - 50;
  nsExec(me.ns, `ip link add flannel.1 type vxlan id 1 local ${me.ip} dev ${me.iface} dstport 8472 nolearning
    ip link set flannel.1 address ${me.vtepMac} mtu ${mtu} up
    ip addr add ${netAddr(me.subnet)}/32 dev flannel.1`);
  for (const p of peers) {
    if (opts.directRouting && opts.onLink?.(p)) {
      nsExec(me.ns, `ip route replace ${p.subnet} via ${p.ip}`);
      continue;
    }
    nsExec(me.ns, `ip neigh replace ${netAddr(p.subnet)} lladdr ${p.vtepMac} dev flannel.1 nud permanent
      bridge fdb replace ${p.vtepMac} dev flannel.1 dst ${p.ip} self permanent
      ip route replace ${p.subnet} via ${netAddr(p.subnet)} dev flannel.1 onlink`);
  }
}

/** flanneld's host-gw routes. */
export function programStockHostGw(me: StockNode, peers: readonly StockNode[]): void {
  for (const p of peers) nsExec(me.ns, `ip route replace ${p.subnet} via ${p.ip} dev ${me.iface}`);
}
