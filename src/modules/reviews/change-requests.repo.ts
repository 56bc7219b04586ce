import type { Selectable } from 'kysely';
import type { ChangeRequestsTable, Db, Tx } from '../../db/database.js';

export type ChangeRequestRow = Selectable<ChangeRequestsTable>;

export async function insert(
  tx: Tx,
  row: { tenant_id: string; id: string; user_id: string; fields: string[]; changes_enc: string; requested_by_key_id: string | null; requested_by_role: string | null; request_id: string | null },
) {
  await tx.insertInto('change_requests').values({ ...row, status: 'pending' }).execute();
}

export async function get(db: Db | Tx, tenantId: string, id: string) {
  return db.selectFrom('change_requests').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
}

export async function getForUpdate(tx: Tx, tenantId: string, id: string) {
  return tx.selectFrom('change_requests').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).forUpdate().executeTakeFirst();
}

export async function decide(
  tx: Tx,
  tenantId: string,
  id: string,
  d: { status: 'approved' | 'rejected' | 'cancelled'; keyId: string | null; role: string | null; decisionEnc: string | null },
) {
  // The reviewer's reason and note are free text: only their sealed form is stored.
  return tx
    .updateTable('change_requests')
    .set({ status: d.status, decided_at: new Date(), decided_by_key_id: d.keyId, decided_by_role: d.role, decision_reason: null, decision_note: null, decision_enc: d.decisionEnc })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Oldest first: the queue is worked in the order requests arrived. */
export async function list(db: Db, tenantId: string, f: { status?: string; userId?: string; afterId: string | null; limit: number }) {
  let q = db.selectFrom('change_requests').selectAll().where('tenant_id', '=', tenantId);
  if (f.status) q = q.where('status', '=', f.status);
  if (f.userId) q = q.where('user_id', '=', f.userId);
  if (f.afterId) q = q.where('id', '>', f.afterId);
  return q.orderBy('id').limit(f.limit + 1).execute();
}

/** Cancels a user's pending requests (the user was closed); returns their ids. */
export async function cancelPending(tx: Tx, tenantId: string, userId: string, by: { keyId: string | null; role: string | null }) {
  const rows = await tx
    .updateTable('change_requests')
    .set({ status: 'cancelled', decided_at: new Date(), decided_by_key_id: by.keyId, decided_by_role: by.role, decision_reason: 'user_closed' })
    .where('tenant_id', '=', tenantId)
    .where('user_id', '=', userId)
    .where('status', '=', 'pending')
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}
