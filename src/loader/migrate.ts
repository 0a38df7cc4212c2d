/**
 * Pinned-map migration for upgrades in place.
 *
 * A new build (or a new --max-peers) may define a map differently from the
 * one pinned by the running dataplane: another capacity, a grown value
 * struct, other flags. libbpf then refuses to reuse the pin. Instead of
 * asking the operator to wipe the node (which would cut traffic), the loader:
 *
 *   1. moves the old pin aside (`<name>__migrating`; bpffs names cannot hold dots),
 *   2. lets libbpf create and pin the new map,
 *   3. copies the old entries into it (same key size; values zero-extended when
 *      the struct grew, per CPU for per-CPU maps; what no longer fits is counted),
 *   4. after the new programs are attached, unlinks the old pin.
 *
 * The programs still attached keep their own reference to the old map, so
 * until the atomic replace they forward with the old (full) map, and after it
 * the new programs start with a full map: no gap either side.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BpfMap } from './map.js';

export const MIGRATING_SUFFIX = '__migrating';

export interface MapShape { type: number; keySize: number; valueSize: number; maxEntries: number; flags: number }

export interface MapMigration {
  map: string;
  from: MapShape;
  to: MapShape;
  /** Entries copied into the new map. */
  copied: number;
  /** Entries of the old map that could not be carried over (see `note`). */
  dropped: number;
  note?: string;
  /** The old pin, unlinked by finishMigrations(). */
  oldPin: string;
}

function shape(m: BpfMap): MapShape {
  const { type, keySize, valueSize, maxEntries, flags } = m.info;
  return { type, keySize, valueSize, maxEntries, flags };
}

/**
 * Move a pin aside so that libbpf creates the map anew. When an old pin is
 * already there (an earlier migration was interrupted), the current pin is
 * the newer one (it was filled from the old one and may be attached): it
 * replaces the older leftover.
 */
export function moveAside(pin: string): string {
  const old = `${pin}${MIGRATING_SUFFIX}`;
  if (fs.existsSync(old)) fs.unlinkSync(old);
  fs.renameSync(pin, old);
  return old;
}

/** Old pins in a pin directory whose migration has not finished (a crash between load and attach). */
export function leftoverMigrations(pinDir: string): Array<{ map: string; oldPin: string }> {
  let names: string[];
  try { names = fs.readdirSync(pinDir); } catch { return []; }
  return names.filter((n) => n.endsWith(MIGRATING_SUFFIX))
    .map((n) => ({ map: n.slice(0, -MIGRATING_SUFFIX.length), oldPin: path.join(pinDir, n) }));
}

function readAll(m: BpfMap): { keys: Buffer[]; values: Buffer[] } {
  try {
    const all = m.lookupAll();
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (let i = 0; i < all.count; i++) {
      keys.push(all.keys.subarray(i * m.keySize, (i + 1) * m.keySize));
      values.push(all.values.subarray(i * m.valueBufSize, (i + 1) * m.valueBufSize));
    }
    return { keys, values };
  } catch {
    /* Map types without batch lookup: walk the keys. */
    const keys = m.keys();
    const values: Buffer[] = [];
    const present: Buffer[] = [];
    for (const k of keys) {
      const v = m.lookup(k);
      if (v) { present.push(k); values.push(v); }
    }
    return { keys: present, values };
  }
}

/**
 * Copy every entry of `from` into `to`. Keys must have the same size; a value
 * is copied into the front of the new value (zero-extended) when the new one
 * is at least as large, per CPU slot for per-CPU maps. A shrunk value or
 * another key size is not guessed at: nothing is copied (the owner refills
 * the map, e.g. the reconciler from the leases) and the reason is returned.
 */
export function copyMapEntries(from: BpfMap, to: BpfMap): { copied: number; dropped: number; note?: string } {
  const { keys, values } = readAll(from);
  if (keys.length === 0) return { copied: 0, dropped: 0 };
  if (from.keySize !== to.keySize) return { copied: 0, dropped: keys.length, note: `key size changed (${from.keySize} → ${to.keySize} bytes): not copied` };
  if (to.valueSize < from.valueSize) return { copied: 0, dropped: keys.length, note: `value shrank (${from.valueSize} → ${to.valueSize} bytes): not copied` };
  if (from.perCpu !== to.perCpu) return { copied: 0, dropped: keys.length, note: 'per-CPU-ness changed: not copied' };
  const slots = from.perCpu ? Math.min(from.ncpus, to.ncpus) : 1;
  let copied = 0;
  let dropped = 0;
  let note: string | undefined;
  for (let i = 0; i < keys.length; i++) {
    const v = Buffer.alloc(to.valueBufSize);
    for (let c = 0; c < slots; c++) {
      values[i]!.copy(v, c * to.cpuStride, c * from.cpuStride, c * from.cpuStride + from.valueSize);
    }
    try {
      to.update(keys[i]!, v);
      copied++;
    } catch (err) {
      dropped++;
      note ??= `not all entries fit: ${(err as Error).message}`;
    }
  }
  return { copied, dropped, note };
}

/** Copy an old pin's entries into the new map; the old pin stays until finishMigrations(). */
export function migrateInto(map: string, oldPin: string, to: BpfMap): MapMigration {
  const old = BpfMap.fromPin(oldPin);
  try {
    const r = copyMapEntries(old, to);
    return { map, from: shape(old), to: shape(to), oldPin, ...r };
  } finally {
    old.close();
  }
}

/** Unlink the old pins (after the new programs are attached). */
export function finishMigrations(migrations: readonly MapMigration[]): void {
  for (const m of migrations) fs.rmSync(m.oldPin, { force: true });
}
