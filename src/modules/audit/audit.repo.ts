// The audit log as plain Kysely reads, newest first by the tenant's sequence.
import type { Selectable } from 'kysely';
import type { AuditEntriesTable, Db } from '../../db/database.js';

export type AuditRow = Selectable<AuditEntriesTable>;

export interface AuditFilters {
  beforeSeq?: string;
  userId?: string;
  actorKeyId?: string;
  action?: string;
  from?: string;
  to?: string;
  limit: number;
}

export async function listPage(db: Db, tenantId: string, f: AuditFilters): Promise<AuditRow[]> {
  let query = db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId);
  if (f.beforeSeq) query = query.where('seq', '<', f.beforeSeq as never);
  if (f.userId) query = query.where('user_id', '=', f.userId);
  if (f.actorKeyId) query = query.where('actor_key_id', '=', f.actorKeyId);
  if (f.action) query = query.where('action', '=', f.action);
  if (f.from) query = query.where('occurred_at', '>=', new Date(f.from));
  if (f.to) query = query.where('occurred_at', '<', new Date(f.to));
  return query.orderBy('seq', 'desc').limit(f.limit).execute();
}
