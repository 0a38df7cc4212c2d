/**
 * IPv4 addresses, CIDRs and MACs in the forms the maps store them: IPv4 in
 * network byte order, MACs as 6 raw bytes. Parsing is strict: anything that
 * is not exactly a dotted quad / prefix / colon-separated MAC is rejected
 * with an AddressError naming the bad value.
 */
export class AddressError extends Error {
  constructor(readonly kind: 'ipv4' | 'cidr' | 'mac', readonly value: unknown, reason: string) {
    super(`invalid ${kind === 'ipv4' ? 'IPv4 address' : kind === 'cidr' ? 'IPv4 CIDR' : 'MAC address'} ${JSON.stringify(value)}: ${reason}`);
    this.name = 'AddressError';
  }
}

const QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Dotted quad → unsigned 32-bit number (host arithmetic, network order semantics: a.b.c.d = a<<24…). */
export function parseIPv4(s: unknown): number {
  if (typeof s !== 'string') throw new AddressError('ipv4', s, 'not a string');
  const m = QUAD.exec(s);
  if (!m) throw new AddressError('ipv4', s, 'expected a dotted quad like 10.0.0.1');
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i] ?? '';
    if (part.length > 1 && part.startsWith('0')) throw new AddressError('ipv4', s, 'leading zeros are ambiguous');
    const v = Number(part);
    if (v > 255) throw new AddressError('ipv4', s, `octet ${v} is above 255`);
    n = n * 256 + v;
  }
  return n >>> 0;
}

export function formatIPv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function isIPv4(s: unknown): s is string {
  try { parseIPv4(s); return true; } catch { return false; }
}

export interface Cidr {
  /** Network address (host bits zero). */
  addr: number;
  prefix: number;
}

export function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * "10.244.1.0/24" → Cidr. With `strict` (default) host bits must be zero;
 * otherwise they are masked off (as Go's net.ParseCIDR returns the network).
 */
export function parseCidr(s: unknown, strict = true): Cidr {
  if (typeof s !== 'string') throw new AddressError('cidr', s, 'not a string');
  const slash = s.indexOf('/');
  if (slash < 0) throw new AddressError('cidr', s, 'missing /prefix');
  let addr: number;
  try {
    addr = parseIPv4(s.slice(0, slash));
  } catch (err) {
    throw new AddressError('cidr', s, (err as Error).message);
  }
  const p = s.slice(slash + 1);
  if (!/^\d{1,2}$/.test(p) || Number(p) > 32) throw new AddressError('cidr', s, 'prefix must be 0..32');
  const prefix = Number(p);
  const net = (addr & prefixMask(prefix)) >>> 0;
  if (strict && net !== addr) throw new AddressError('cidr', s, `host bits set (network is ${formatIPv4(net)}/${prefix})`);
  return { addr: net, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.addr)}/${c.prefix}`;
}

export function cidrContains(outer: Cidr, ip: number): boolean {
  return ((ip & prefixMask(outer.prefix)) >>> 0) === outer.addr;
}

/** Does `outer` contain all of `inner`? */
export function cidrCovers(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && cidrContains(outer, inner.addr);
}

export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  return cidrCovers(a, b) || cidrCovers(b, a);
}

export function cidrEquals(a: Cidr, b: Cidr): boolean {
  return a.addr === b.addr && a.prefix === b.prefix;
}

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** "0e:2a:…" → 6 bytes. Rejects multicast and all-zero MACs: neither can be a VTEP. */
export function parseMac(s: unknown): Buffer {
  if (typeof s !== 'string') throw new AddressError('mac', s, 'not a string');
  if (!MAC.test(s)) throw new AddressError('mac', s, 'expected six colon-separated hex bytes');
  const b = Buffer.from(s.split(':').map((h) => parseInt(h, 16)));
  if ((b[0] ?? 0) & 1) throw new AddressError('mac', s, 'multicast bit set');
  if (b.every((x) => x === 0)) throw new AddressError('mac', s, 'all zeros');
  return b;
}

export function formatMac(b: Uint8Array): string {
  return Array.from(b.subarray(0, 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Write an IPv4 address in network byte order. */
export function writeIPv4(buf: Buffer, off: number, ip: number): void {
  buf.writeUInt32BE(ip >>> 0, off);
}

export function readIPv4(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off);
}
