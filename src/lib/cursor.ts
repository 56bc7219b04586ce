// Opaque keyset cursors: base64url JSON of the last row's sort key. A tampered cursor is a 400.
import { validationFailed } from '../http/errors.js';

export function encodeCursor(key: Record<string, string>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

export function decodeCursor<K extends string>(
  cursor: string | undefined,
  keys: readonly K[],
  valuePattern: RegExp = /^[\x21-\x7e]{1,200}$/,
): Record<K, string> | null {
  if (cursor === undefined) return null;
  const bad = () => validationFailed([{ field: 'cursor', code: 'invalid_cursor', message: 'The cursor is not one this API issued.' }]);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (typeof parsed !== 'object' || parsed === null) throw bad();
  const obj = parsed as Record<string, unknown>;
  for (const k of keys) if (typeof obj[k] !== 'string' || !valuePattern.test(obj[k] as string)) throw bad();
  return obj as Record<K, string>;
}

/**
 * Turns `limit + 1` rows fetched past the cursor into a page: the extra row only tells that there is
 * a next page, whose cursor is the key of the last row shown.
 */
export function toPage<R, T>(rows: R[], limit: number, map: (row: R) => T, keyOf: (row: R) => Record<string, string>) {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { data: page.map(map), next_cursor: rows.length > limit && last ? encodeCursor(keyOf(last)) : null };
}
