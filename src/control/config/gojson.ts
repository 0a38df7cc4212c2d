/**
 * Reading JSON objects the way Go's encoding/json fills a struct:
 *
 * - keys match field names case-insensitively ("VNI", "vni", "Vni");
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

/** Go-style lookup: the value of the last key equal to `field` ignoring case; undefined when absent. */
export function goField(obj: JsonObject, field: string): JsonValue | undefined {
  const want = field.toLowerCase();
  let found: JsonValue | undefined;
  for (const [k, v] of Object.entries(obj)) {
    if (k.toLowerCase() === want) found = v;
  }
  return found;
}

/** Keys of `obj` that match none of `fields` (case-insensitively), in document order. */
export function unknownKeys(obj: JsonObject, fields: readonly string[]): string[] {
  const known = new Set(fields.map((f) => f.toLowerCase()));
  return Object.keys(obj).filter((k) => !known.has(k.toLowerCase()));
}

/** JSON text of a value as Go's json.Marshal would emit it for our simple values (compact). */
export function compactJson(v: JsonValue): string {
  return JSON.stringify(v);
}
