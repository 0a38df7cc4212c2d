/**
 * /run/flannel/subnet.env exactly as flanneld writes it (flannel-compat.md §5):
 * FLANNEL_NETWORK, FLANNEL_SUBNET (first host address / lease prefix),
 * FLANNEL_MTU, FLANNEL_IPMASQ; no quoting, no export; written atomically
 * (temp file + fsync + rename), mode 0644, parent directory 0755.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type Cidr, formatCidr, formatIPv4, parseCidr, parseIPv4 } from '../maps/addr.js';

export interface SubnetEnv {
  network: Cidr;
  subnet: Cidr;
  mtu: number;
  ipMasq: boolean;
}

export function formatSubnetEnv(e: SubnetEnv): string {
  return [
    `FLANNEL_NETWORK=${formatCidr(e.network)}`,
    `FLANNEL_SUBNET=${formatIPv4(e.subnet.addr + 1)}/${e.subnet.prefix}`,
    `FLANNEL_MTU=${e.mtu}`,
    `FLANNEL_IPMASQ=${e.ipMasq ? 'true' : 'false'}`,
    '',
  ].join('\n');
}

/** Parse a subnet.env (ours or flanneld's); unknown lines are ignored, missing values are undefined. */
export function parseSubnetEnv(text: string): Partial<SubnetEnv> {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) vars.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  const out: Partial<SubnetEnv> = {};
  try {
    const net = vars.get('FLANNEL_NETWORK')?.split(',')[0];
    if (net) out.network = parseCidr(net);
  } catch { /* ignore */ }
  try {
    const sub = vars.get('FLANNEL_SUBNET');
    if (sub) {
      const [ip, plen] = sub.split('/');
      const prefix = Number(plen);
      if (ip && Number.isInteger(prefix)) out.subnet = parseCidr(`${formatIPv4((parseIPv4(ip) & (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0)) >>> 0)}/${prefix}`);
    }
  } catch { /* ignore */ }
  const mtu = Number(vars.get('FLANNEL_MTU'));
  if (Number.isInteger(mtu) && mtu > 0) out.mtu = mtu;
  const masq = vars.get('FLANNEL_IPMASQ');
  if (masq === 'true' || masq === 'false') out.ipMasq = masq === 'true';
  return out;
}

export function readSubnetEnv(file: string): Partial<SubnetEnv> | null {
  try {
    return parseSubnetEnv(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

/** Write atomically: readers (the CNI plugin) see the old file or the new one, never half of one. */
export function writeSubnetEnv(file: string, e: SubnetEnv): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, formatSubnetEnv(e));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(tmp, 0o644);
  fs.renameSync(tmp, file);
}
