// JSON Merge Patch (RFC 7396) over the user's patchable document, and the list of fields a patch
// actually changed, named as the field policy names them (addresses by leaf: `address.line1`).

export type JsonObject = Record<string, unknown>;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/**
 * Fields compared leaf by leaf; every other field is compared whole (metadata, tags, scalars). A
 * tenant-defined field is one leaf of `custom` (custom.<name>), its value compared whole; the
 * compliance profile's objects (employer, fatca_crs, sanctions) are decided leaf by leaf like addresses.
 */
export const NESTED_FIELDS = ['address', 'mailing_address', 'employer', 'fatca_crs', 'sanctions', 'custom'] as const;

/**
 * The dotted paths whose value differs between two documents (absent and null are the same), in
 * sorted order. `keys` limits the comparison to those top-level fields: a merge patch can change
 * no field it does not name, so a patch's own keys are enough.
 */
export function changedFields(before: JsonObject, after: JsonObject, keys?: readonly string[]): string[] {
  const out: string[] = [];
  const candidates = keys ? [...keys] : [...new Set([...Object.keys(before), ...Object.keys(after)])];
  for (const k of candidates.sort()) {
    if ((NESTED_FIELDS as readonly string[]).includes(k)) {
      const b = isObject(before[k]) ? (before[k] as JsonObject) : {};
      const a = isObject(after[k]) ? (after[k] as JsonObject) : {};
      for (const sub of [...new Set([...Object.keys(b), ...Object.keys(a)])].sort()) {
        if (!deepEqual(b[sub] ?? null, a[sub] ?? null)) out.push(`${k}.${sub}`);
      }
    } else if (!deepEqual(before[k] ?? null, after[k] ?? null)) {
      out.push(k);
    }
  }
  return out;
}

/** The value at a dotted path, null when absent. */
export function valueAt(doc: JsonObject, path: string): unknown {
  let cur: unknown = doc;
  for (const part of path.split('.')) cur = isObject(cur) ? cur[part] : undefined;
  return cur ?? null;
}

/** A copy of `doc` with the value at a dotted path set (null removes it). */
export function setAt(doc: JsonObject, path: string, value: unknown): JsonObject {
  const [head, ...rest] = path.split('.');
  const out = { ...doc };
  if (rest.length === 0) {
    if (value === null || value === undefined) delete out[head!];
    else out[head!] = value;
    return out;
  }
  const inner = isObject(out[head!]) ? (out[head!] as JsonObject) : {};
  out[head!] = setAt(inner, rest.join('.'), value);
  return out;
}
