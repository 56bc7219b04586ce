// The event log as plain Kysely reads, newest first by the tenant's sequence.
import type { Selectable } from 'kysely';
import type { Db, EventsTable } from '../../db/database.js';

export type EventRow = Selectable<EventsTable>;

export async function listPage(
  db: Db, tenantId: string, f: { beforeSeq?: string; type?: string; userId?: string; limit: number },
): Promise<EventRow[]> {
  let query = db.selectFrom('events').selectAll().where('tenant_id', '=', tenantId);
  if (f.beforeSeq) query = query.where('seq', '<', f.beforeSeq as never);
  if (f.type) query = query.where('type', '=', f.type);
  if (f.userId) query = query.where('user_id', '=', f.userId);
  return query.orderBy('seq', 'desc').limit(f.limit).execute();
}

export async function findById(db: Db, tenantId: string, id: string): Promise<EventRow | undefined> {
  return db.selectFrom('events').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
}
