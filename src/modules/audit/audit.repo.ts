// The audit log as plain Kysely reads, newest first by the tenant's sequence.
import { sql, type Selectable } from 'kysely';
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

/**
 * Whether an entry is sealed: on the chain (a position from 1 to the head: a seal row elsewhere is
 * not the chain's, `kyclo audit verify` reports it). An entry a few seconds old and still not sealed
 * was refused by the sealer (not written by a Kyclo process) or sealing is stuck. A hint for readers
 * of the API's pages and of the GDPR export alike: the proof is `kyclo audit verify`.
 */
export const sealedFlag = sql<boolean>`exists (select 1 from audit_seals s where s.tenant_id = audit_entries.tenant_id and s.entry_seq = audit_entries.seq and s.chain_seq > 0
  and s.chain_seq <= (select h.chain_seq from audit_heads h where h.tenant_id = audit_entries.tenant_id))`.as('sealed');

/** A page of the log, newest first, each entry with its `sealed` flag. */
export async function listPage(db: Db, tenantId: string, f: AuditFilters): Promise<Array<AuditRow & { sealed: boolean }>> {
  let query = db.selectFrom('audit_entries').selectAll().select(sealedFlag).where('tenant_id', '=', tenantId);
  if (f.beforeSeq) query = query.where('seq', '<', f.beforeSeq as never);
  if (f.userId) query = query.where('user_id', '=', f.userId);
  if (f.actorKeyId) query = query.where('actor_key_id', '=', f.actorKeyId);
  if (f.action) query = query.where('action', '=', f.action);
  if (f.from) query = query.where('occurred_at', '>=', new Date(f.from));
  if (f.to) query = query.where('occurred_at', '<', new Date(f.to));
  return query.orderBy('seq', 'desc').limit(f.limit).execute();
}
