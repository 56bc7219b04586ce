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
 * The most a page may hold, in bytes of JSON, whatever its `limit`: 200 users each carrying 16 KiB of
 * metadata would otherwise make one 3 MB response (and its copy in memory). A page stops early, with
 * a next_cursor, at the row that would take it past the budget; it always holds at least one row.
 */
export const PAGE_BYTE_BUDGET = 1024 * 1024;

/** What a row weighs by default: its JSON (the response writes much the same text). */
const jsonSize = (item: unknown) => Buffer.byteLength(JSON.stringify(item) ?? '');

/**
 * Turns `limit + 1` rows fetched past the cursor into a page: the extra row only tells that there is
 * a next page, whose cursor is the key of the last row shown. The page also ends where its rows
 * reach `budget` bytes (`sizeOf`, the JSON of the mapped row unless a cheaper measure is given).
 */
export function toPage<R, T>(
  rows: R[],
  limit: number,
  map: (row: R) => T,
  keyOf: (row: R) => Record<string, string>,
  { budget = PAGE_BYTE_BUDGET, sizeOf }: { budget?: number; sizeOf?: (row: R, mapped: T) => number } = {},
) {
  const data: T[] = [];
  let bytes = 0;
  let n = 0;
  for (; n < rows.length && n < limit; n++) {
    const item = map(rows[n]!);
    bytes += sizeOf ? sizeOf(rows[n]!, item) : jsonSize(item);
    if (bytes > budget && n > 0) break;
    data.push(item);
  }
  const last = rows[data.length - 1];
  return { data, next_cursor: rows.length > data.length && last ? encodeCursor(keyOf(last)) : null };
}
