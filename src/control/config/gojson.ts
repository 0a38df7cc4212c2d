/**
 * Reading JSON objects the way Go's encoding/json fills a struct:
 *
 * - keys match field names case-insensitively ("VNI", "vni", "Vni"), with
 *   Go's Unicode folding ("ſubnetLen" is SubnetLen);
 * - when several keys match one field, the last one in the document wins;
 * - keys that match no field are ignored (we report them as warnings);
 * - `null` for a plain bool/int field leaves the default in place.
 *
 * Deliberate differences: a JSON number such as `1.0` is accepted for an
 * integer field (Go refuses any number written with a fraction or exponent);
 * a key repeated with the exact same spelling keeps JS's JSON.parse semantics
 * (value of the last, position of the first).
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };
export type JsonObject = { [k: string]: JsonValue };

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The smallest code point among a character's single-character case variants (Go's foldRune, for the runes JS maps). */
function foldChar(ch: string): string {
  let best = ch;
  for (const c of [ch.toLowerCase(), ch.toUpperCase(), ch.toUpperCase().toLowerCase(), ch.toLowerCase().toUpperCase()]) {
    if ([...c].length === 1 && c.codePointAt(0)! < best.codePointAt(0)!) best = c;
  }
  return best;
}

/**
 * A key folded as encoding/json folds it to match field names: ASCII
 * upper-cased, other characters mapped to the smallest member of their case
 * orbit, so "ſ" (long s) matches "s" and "K" (Kelvin) matches "k", as in flanneld.
 */
export function goFold(key: string): string {
  let out = '';
  for (const ch of key) out += ch < '\u0080' ? ch.toUpperCase() : foldChar(ch);
  return out;
}

/** Go-style lookup: the value of the last key equal to `field` under Go's case folding; undefined when absent. */
export function goField(obj: JsonObject, field: string): JsonValue | undefined {
  const want = goFold(field);
  let found: JsonValue | undefined;
  for (const [k, v] of Object.entries(obj)) {
    if (goFold(k) === want) found = v;
  }
  return found;
}

/** Keys of `obj` that match none of `fields` (under Go's case folding), in document order. */
export function unknownKeys(obj: JsonObject, fields: readonly string[]): string[] {
  const known = new Set(fields.map(goFold));
  return Object.keys(obj).filter((k) => !known.has(goFold(k)));
}

/** JSON text of a value as Go's json.Marshal would emit it for our simple values (compact). */
export function compactJson(v: JsonValue): string {
  return JSON.stringify(v);
}
