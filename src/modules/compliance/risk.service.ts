// The risk assessment: a rating and a status set by compliance, with the reason. A change is one
// transaction that locks the user, writes the current assessment on the row (so every read of the
// user and every capability check sees it), a history row, the audit entry and user.risk_changed.
// The reason is free text an officer wrote about a person: plain on the row and in the history (both
// nulled by erasure, like a status change's note), sealed with the user's key in the audit entry and
// the event, which are never rewritten.
import { sql, type Selectable } from 'kysely';
import type { Db, RiskChangesTable, RiskState } from '../../db/database.js';
import { newId } from '../../lib/ids.js';
import { userHistoryPage } from '../../db/user-history.js';
import { notFound } from '../../http/errors.js';
import { pinnedVersion, type Precondition } from '../../http/conditional.js';
import type { Actor } from '../audit/actor.js';
import { withheldFrom } from '../erasure/retained.js';
import { recordChange } from '../audit/write-path.js';
import * as users from '../users/users.repo.js';
import { userClosed } from '../lifecycle/lifecycle.service.js';
import type { Keyring } from '../../crypto/keyring.js';
import { PERSONAL_FIELD } from '../events/personal.js';

export interface RiskInput {
  rating: string;
  status: string;
  reason: string;
}

export const toRiskChange = (r: Selectable<RiskChangesTable>) => ({
  id: r.id,
  user_id: r.user_id,
  from: r.from_rating === null ? null : { rating: r.from_rating, status: r.from_status! },
  to: { rating: r.to_rating, status: r.to_status },
  reason: r.reason,
  actor: { key_id: r.actor_key_id, role: r.actor_role },
  request_id: r.request_id,
  created_at: r.created_at.toISOString(),
});

export function createRiskService({ db, keyring }: { db: Db; keyring: Keyring }) {
  return {
    /**
     * Sets the user's risk. The same rating, status and reason again changes nothing (a PUT is
     * idempotent): no history row, audit entry or event, and the version stays. `ifMatch` pins the
     * user's version (412 when stale).
     */
    async set(actor: Actor, userId: string, input: RiskInput, ifMatch?: Precondition): Promise<{ risk: RiskState; version: number; changed: boolean }> {
      return db.transaction().execute(async (tx) => {
        const u = await users.getForUpdate(tx, actor.tenantId, userId);
        if (!u) throw notFound('user', userId);
        pinnedVersion(ifMatch, u.version);
        if (u.status === 'closed') throw userClosed(userId);
        const before = u.risk;
        if (before && before.rating === input.rating && before.status === input.status && before.reason === input.reason) {
          return { risk: before, version: u.version, changed: false };
        }
        const risk: RiskState = {
          rating: input.rating, status: input.status, reason: input.reason, updated_at: new Date().toISOString(),
          set_by: { key_id: actor.keyId, role: actor.role },
        };
        const updated = await tx.updateTable('users')
          .set({ risk: JSON.stringify(risk), version: sql`version + 1`, updated_at: sql`now()` })
          .where('tenant_id', '=', actor.tenantId).where('id', '=', userId)
          .returning('version').executeTakeFirstOrThrow();
        const change = await tx.insertInto('risk_changes').values({
          tenant_id: actor.tenantId, id: newId('rsk'), user_id: userId,
          from_rating: before?.rating ?? null, from_status: before?.status ?? null, to_rating: input.rating, to_status: input.status,
          reason: input.reason, actor_key_id: actor.keyId, actor_role: actor.role, request_id: actor.requestId,
        }).returning('id').executeTakeFirstOrThrow();
        const changed = [
          ...(before?.rating !== input.rating ? ['risk.rating'] : []),
          ...(before?.status !== input.status ? ['risk.status'] : []),
          ...(before?.reason !== input.reason ? ['risk.reason'] : []),
        ];
        const moves = { from: before ? { rating: before.rating, status: before.status } : null, to: { rating: input.rating, status: input.status } };
        const personal = await keyring.seal(tx, actor.tenantId, userId, PERSONAL_FIELD, { reason: input.reason });
        await recordChange(
          tx, actor,
          { action: 'user.risk_changed', targetType: 'user', targetId: userId, userId, changedFields: changed, details: { risk_change_id: change.id, ...moves }, personal },
          { type: 'user.risk_changed', userId, data: { user_id: userId, risk_change_id: change.id, version: updated.version, changed_fields: changed, ...moves }, personal },
        );
        return { risk, version: updated.version, changed: true };
      });
    },

    /** The history of the user's risk, newest first. */
    async history(actor: Actor, userId: string, q: { limit?: number; cursor?: string }) {
      const user = await users.getOrThrow(db, actor.tenantId, userId);
      // The reason is free text about the person: withheld as erasure will null it (erasure/retained.ts).
      const view = withheldFrom(actor, user) ? (r: Selectable<RiskChangesTable>) => ({ ...toRiskChange(r), reason: null }) : toRiskChange;
      return userHistoryPage(db, 'risk_changes', actor.tenantId, userId, q, view);
    },
  };
}

export type RiskService = ReturnType<typeof createRiskService>;
