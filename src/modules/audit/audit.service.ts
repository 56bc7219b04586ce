// The audit log as the API and the GDPR export show it: personal values opened with each user's
// key while it exists (null after erasure), and the signed checkpoints with the public key.
import { lastVerification } from './verification-record.js';
import type { Db } from '../../db/database.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { Actor } from './actor.js';
import { decodeCursor, toPage } from '../../lib/cursor.js';
import { openPersonal } from '../events/personal.js';
import { tenantCheckpoints } from './chain.js';
import * as repo from './audit.repo.js';
import type { AuditRow } from './audit.repo.js';

const toAuditEntry = (r: AuditRow & { sealed?: boolean }, values: Record<string, unknown> | undefined | null) => ({
  id: r.id,
  seq: String(r.seq),
  occurred_at: r.occurred_at.toISOString(),
  actor: { type: r.actor_type, key_id: r.actor_key_id, role: r.actor_role },
  action: r.action,
  outcome: r.outcome,
  target: { type: r.target_type, id: r.target_id },
  user_id: r.user_id,
  changed_fields: r.changed_fields,
  request_id: r.request_id,
  ip: r.ip,
  details: r.details,
  // Old and new personal values: readable while the user's data key exists, null after erasure.
  values: values ?? null,
  // The API's pages say whether each entry is on the chain (audit.repo.ts listPage); the export's rows do not.
  ...(r.sealed === undefined ? {} : { sealed: r.sealed }),
});

/** Audit entries as the API shows them, personal values opened with each user's key. */
export async function auditViews(keyring: Keyring, tenantId: string, rows: Array<AuditRow & { sealed?: boolean }>) {
  const values = await openPersonal(keyring, tenantId, rows);
  return rows.map((r, i) => toAuditEntry(r, values[i]));
}

export interface AuditQuery {
  user_id?: string;
  actor?: string;
  action?: string;
  from?: string;
  to?: string;
  limit?: number;
  cursor?: string;
}

export function createAuditService({ db, keyring }: { db: Db; keyring: Keyring }) {
  return {
    async list(actor: Actor, q: AuditQuery) {
      const limit = q.limit ?? 50;
      const before = decodeCursor(q.cursor, ['seq'] as const, /^\d{1,18}$/);
      const rows = await repo.listPage(db, actor.tenantId, {
        beforeSeq: before?.seq, userId: q.user_id, actorKeyId: q.actor, action: q.action, from: q.from, to: q.to, limit: limit + 1,
      });
      const page = toPage(rows, limit, (r) => r, (r) => ({ seq: String(r.seq) }));
      return { data: await auditViews(keyring, actor.tenantId, page.data), next_cursor: page.next_cursor };
    },

    /** The last `kyclo audit verify` result for the caller's tenant, with whether its MAC holds. */
    async lastVerification(actor: Actor) {
      return { verification: await lastVerification(db, keyring.auditKeys.macKey, actor.tenantId) };
    },

    async checkpoints(actor: Actor, q: { since?: string; limit?: number; cursor?: string }) {
      const limit = q.limit ?? 50;
      const before = decodeCursor(q.cursor, ['chain_seq'] as const, /^\d{1,18}$/);
      const rows = await tenantCheckpoints(db, actor.tenantId, { since: q.since, beforeSeq: before?.chain_seq, limit: limit + 1 });
      const pk = keyring.auditKeys.publicKeyBase64;
      return toPage(rows, limit, (c) => ({ ...c, public_key: pk }), (c) => ({ chain_seq: c.chain_seq }));
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
