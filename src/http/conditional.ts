// Conditional writes: the ETag a user-bearing answer declares, the If-Match header a write takes,
// and how that header is read. Shared by the routes that answer or change a user.
import { Type } from 'typebox';

export const ETagHeader = { ETag: { type: 'string', description: 'Strong ETag: the quoted version' } };
export const IfMatch = Type.Object({ 'if-match': Type.Optional(Type.String({ maxLength: 64, description: 'The ETag you last read' })) });

/** `"3"` → 3, `*` → '*'; anything else can never match, so it is stale by definition (412). */
export function parseIfMatch(header: string | undefined): number | '*' | undefined {
  if (header === undefined) return undefined;
  const h = header.trim();
  if (h === '*') return '*';
  const m = /^"(\d{1,9})"$/.exec(h);
  return m ? Number(m[1]) : -1;
}
