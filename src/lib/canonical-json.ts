// RFC 8785 JSON Canonicalization Scheme: object keys sorted by UTF-16 code units, no whitespace,
// strings and numbers as ECMAScript's JSON.stringify writes them (which is what the RFC specifies).
//
// Written with an explicit stack rather than recursion: it hashes request bodies (the idempotency
// fingerprint) and audit entries, and a recursive walk overflowed the call stack at ~3,000 levels
// of nesting (a 500). This one takes any depth the heap can hold, and writes the same text.

function scalar(value: unknown): string {
  if (typeof value === 'number' && !Number.isFinite(value)) throw new Error('canonical JSON has no NaN or Infinity');
  return JSON.stringify(value) ?? 'null';
}

/** An object or array being written: its values, the keys of an object (null for an array), the next index. */
interface Frame {
  values: unknown[];
  keys: string[] | null;
  next: number;
}

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return scalar(value);
  const out: string[] = [];
  const open = (v: object): Frame => {
    if (Array.isArray(v)) {
      out.push('[');
      return { values: v, keys: null, next: 0 };
    }
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    out.push('{');
    return { values: entries.map((e) => e[1]), keys: entries.map((e) => e[0]), next: 0 };
  };
  const stack: Frame[] = [open(value)];
  while (stack.length) {
    const f = stack[stack.length - 1]!;
    if (f.next === f.values.length) {
      out.push(f.keys ? '}' : ']');
      stack.pop();
      continue;
    }
    if (f.next > 0) out.push(',');
    if (f.keys) out.push(`${JSON.stringify(f.keys[f.next])}:`);
    const v = f.values[f.next++];
    // An undefined array element is written null, as JSON.stringify writes it.
    if (v !== null && typeof v === 'object') stack.push(open(v));
    else out.push(scalar(v));
  }
  return out.join('');
}
