// One user's rows of a history table (status changes, risk changes, verifications), newest first,
// a keyset page at a time: the same query and cursor for each, which three services wrote alike.
import type { Selectable } from 'kysely';
import type { Database, Db } from './database.js';
import { decodeCursor, toPage } from '../lib/cursor.js';

type HistoryTable = 'status_changes' | 'risk_changes' | 'verifications';
export type HistoryRow<T extends HistoryTable> = Selectable<Database[T]>;

/** A page of `table`'s rows of the user, newest first (by id), each turned into its answer by `view`. */
export async function userHistoryPage<T extends HistoryTable, V>(
  db: Db,
  table: T,
  tenantId: string,
  userId: string,
  q: { limit?: number; cursor?: string },
  view: (row: HistoryRow<T>) => V,
) {
  const limit = q.limit ?? 50;
  const before = decodeCursor(q.cursor, ['id'] as const);
  // Kysely cannot follow a table chosen by a type parameter; the three share the columns used here.
  let query = db.selectFrom(table as HistoryTable as 'status_changes').selectAll()
    .where('tenant_id', '=', tenantId).where('user_id', '=', userId);
  if (before) query = query.where('id', '<', before.id);
  const rows = (await query.orderBy('id', 'desc').limit(limit + 1).execute()) as unknown as HistoryRow<T>[];
  return toPage(rows, limit, view, (r) => ({ id: (r as { id: string }).id }));
}
