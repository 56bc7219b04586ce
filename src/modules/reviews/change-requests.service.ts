// The review queue: changes the field policy holds for approval. Approving applies every proposed
// value in one transaction, or nothing if any of those fields moved since the request was made.
import type { Db, Tx } from '../../db/database.js';
import { decodeCursor, toPage } from '../../lib/cursor.js';
import { AppError, notFound } from '../../http/errors.js';
import type { Actor } from '../audit/actor.js';
import { recordChange } from '../audit/write-path.js';
import * as users from '../users/users.repo.js';
import { documentOf } from '../users/user-view.js';
import { applyValues } from '../users/patch-plan.js';
import { fulfilled, recordFulfilled } from '../compliance/required-actions.service.js';
import { deepEqual, valueAt } from '../users/merge-patch.js';
import * as repo from './change-requests.repo.js';
import type { ChangeRequestRow } from './change-requests.repo.js';
import { userClosed } from '../lifecycle/lifecycle.service.js';
import type { Keyring } from '../../crypto/keyring.js';
import { CHANGES_FIELD, DECISION_FIELD, maskIdentifiers, PERSONAL_FIELD } from '../events/personal.js';
import { lockGraph } from '../relationships/relationships.repo.js';
import { openTitles, type Proposal, type RelationshipsService } from '../relationships/relationships.service.js';
import { assertCustomSize, loadDefinitions, plainForApproval } from '../custom-fields/custom-fields.service.js';
import { checkCustomInput } from '../custom-fields/values.js';

/**
 * A tenant-defined value held for approval is checked again against the field's definition as it is
 * now: approval is a write of the field, and the README promises that the next write after a schema
 * change is checked against the new schema, and that a removed definition's values are frozen. The
 * request stays pending for the officer to reject (409, nothing applied), as a stale one does.
 */
async function checkCustomStillValid(tx: Tx, tenantId: string, fields: string[], proposed: Record<string, unknown>): Promise<void> {
  const names = fields.filter((f) => f.startsWith('custom.')).map((f) => f.slice('custom.'.length));
  if (names.length === 0) return;
  // Each proposed value is the field's whole new value: checked as written over nothing.
  const input = Object.fromEntries(names.map((n) => [n, proposed[`custom.${n}`] ?? null]));
  const errors = checkCustomInput(await loadDefinitions(tx, tenantId), Object.fromEntries(names.map((n) => [n, undefined])), input);
  if (errors.length) {
    throw new AppError(409, 'change_request.invalid_now', `The proposed values no longer fit the tenant's field definitions: ${errors.map((e) => e.field).join(', ')}. Nothing was applied; reject the request.`, { errors });
  }
}

type Changes = Record<string, { from: unknown; to: unknown }>;

/** A proposed tax_number is an identifier number: answered masked outside the GDPR export. */
const maskUnless = (unmasked: boolean, changes: Changes | undefined) => (unmasked ? changes : maskIdentifiers(changes));

type Decision = { reason?: string | null; note?: string | null };

/**
 * `changes` (and a decision's free text) are null once the user's data key is destroyed (erased):
 * the values are gone for good. `decision_reason` of a cancellation is a code, kept in the clear.
 */
export function toChangeRequest(r: ChangeRequestRow, changes: Changes | undefined, decision?: Decision) {
  return {
    id: r.id,
    user_id: r.user_id,
    status: r.status as 'pending' | 'approved' | 'rejected' | 'cancelled',
    fields: r.fields,
    changes: changes ?? null,
    requested_by: { key_id: r.requested_by_key_id, role: r.requested_by_role },
    request_id: r.request_id,
    created_at: r.created_at.toISOString(),
    decided_at: r.decided_at?.toISOString() ?? null,
    decided_by: r.decided_at ? { key_id: r.decided_by_key_id, role: r.decided_by_role } : null,
    decision_reason: decision ? (decision.reason ?? null) : r.decision_reason,
    decision_note: decision ? (decision.note ?? null) : r.decision_note,
  };
}

/** Change requests as the API shows them, their values and decision texts opened with each user's key (one lookup). */
export async function changeRequestViews(keyring: Keyring, tenantId: string, rows: ChangeRequestRow[], executor?: Db | Tx, unmasked = false) {
  const opened = await keyring.openMany(
    tenantId,
    rows.flatMap((r) => [
      { userId: r.user_id, field: CHANGES_FIELD, envelope: r.changes_enc ?? '' },
      { userId: r.user_id, field: DECISION_FIELD, envelope: r.decision_enc ?? '' },
    ]),
    undefined, executor,
  );
  // A relationship's title is sealed inside with the related person's key: opened here, null once erased.
  await openTitles(keyring, tenantId, rows.map((_, i) => opened[2 * i] as Changes | undefined), executor);
  return rows.map((r, i) => toChangeRequest(
    r,
    r.changes_enc ? maskUnless(unmasked, opened[2 * i] as Changes | undefined) : undefined,
    r.decision_enc ? ((opened[2 * i + 1] as Decision | undefined) ?? {}) : undefined,
  ));
}

export function createChangeRequestsService({ db, keyring, relationships }: { db: Db; keyring: Keyring; relationships: RelationshipsService }) {
  const views = (tenantId: string, rows: ChangeRequestRow[]) => changeRequestViews(keyring, tenantId, rows);

  /**
   * Locks the user, then the request (the order every writer uses: a PATCH or a close locks the user
   * row first), and refuses a request that is not pending, of a closed user, or decided by its requester.
   */
  async function lockPending(tx: Tx, actor: Actor, id: string) {
    const found = await repo.get(tx, actor.tenantId, id);
    if (!found) throw notFound('change_request', id);
    const user = await users.getForUpdate(tx, actor.tenantId, found.user_id);
    if (!user) throw notFound('user', found.user_id);
    if (user.status === 'closed') throw userClosed(user.id);
    const cr = (await repo.getForUpdate(tx, actor.tenantId, id))!;
    if (cr.status !== 'pending') {
      throw new AppError(409, 'change_request.not_pending', `Change request ${id} is already ${cr.status}.`, { current_status: cr.status });
    }
    // Four eyes: the key that asked for a change cannot be the key that decides it.
    if (actor.keyId && cr.requested_by_key_id === actor.keyId) {
      throw new AppError(403, 'change_request.self_review', 'A change request must be decided by another key than the one that made it.');
    }
    return { cr, user };
  }

  return {
    async get(actor: Actor, id: string) {
      const cr = await repo.get(db, actor.tenantId, id);
      if (!cr) throw notFound('change_request', id);
      return (await views(actor.tenantId, [cr]))[0]!;
    },

    async list(actor: Actor, q: { status?: string; user_id?: string; limit?: number; cursor?: string }) {
      const limit = q.limit ?? 50;
      const after = decodeCursor(q.cursor, ['id'] as const);
      const rows = await repo.list(db, actor.tenantId, { status: q.status, userId: q.user_id, afterId: after?.id ?? null, limit });
      const page = toPage(rows, limit, (r) => r, (r) => ({ id: r.id }));
      return { data: await views(actor.tenantId, page.data), next_cursor: page.next_cursor };
    },

    async listForUser(actor: Actor, userId: string, q: { status?: string; limit?: number; cursor?: string }) {
      await users.getOrThrow(db, actor.tenantId, userId);
      return this.list(actor, { ...q, user_id: userId });
    },

    async approve(actor: Actor, id: string, input: { note?: string }) {
      return db.transaction().execute(async (tx) => {
        // A change to relationships takes the tenant's relationship lock before any row lock, the
        // order every relationship writer uses (relationships.repo.ts). A request's fields never change.
        const relationshipChange = (await repo.get(tx, actor.tenantId, id))?.fields.includes('relationships');
        if (relationshipChange) await lockGraph(tx, actor.tenantId);
        const { cr, user } = await lockPending(tx, actor, id);
        const changes = (await keyring.open(actor.tenantId, user.id, CHANGES_FIELD, cr.changes_enc!, tx)) as Changes;
        if (relationshipChange) {
          await openTitles(keyring, actor.tenantId, [changes], tx);
          const decision = input.note === undefined ? null : { note: input.note };
          await users.updateAtVersion(tx, actor.tenantId, user.id, user.version, { pending_changes: user.pending_changes.filter((p) => p.id !== cr.id) });
          const decided = await repo.decide(tx, actor.tenantId, id, {
            status: 'approved', keyId: actor.keyId, role: actor.role,
            decisionEnc: decision && (await keyring.seal(tx, actor.tenantId, user.id, DECISION_FIELD, decision)),
          });
          await relationships.applyApproved(tx, actor, user, id, changes.relationships!.to as Proposal, {
            type: 'user.change_approved', userId: user.id, data: { user_id: user.id, change_request_id: id, changed_fields: cr.fields },
          }, input.note ?? null);
          return toChangeRequest(decided, changes, decision ?? undefined);
        }
        const fields = cr.fields;
        // Custom values are compared and applied plain, and stored sealed again.
        const plain = await plainForApproval(keyring, tx, user, fields);
        const doc = documentOf(plain.row);
        const stale = fields.filter((f) => !deepEqual(valueAt(doc, f), changes[f]!.from ?? null));
        if (stale.length) {
          throw new AppError(409, 'change_request.stale', `These fields changed since the request was made: ${stale.join(', ')}. Nothing was applied.`, {
            fields: stale,
          });
        }
        const previous = Object.fromEntries(fields.map((f) => [f, changes[f]!.from ?? null]));
        const current = Object.fromEntries(fields.map((f) => [f, changes[f]!.to ?? null]));
        await checkCustomStillValid(tx, actor.tenantId, fields, current);
        const actions = fulfilled(user, { fields: fields.filter((f) => current[f] !== null) });
        const next = applyValues(plain.row, current);
        if (fields.some((f) => f.startsWith('custom.'))) assertCustomSize(next.profile);
        const updated = await users.updateAtVersion(tx, actor.tenantId, user.id, user.version, {
          ...(await plain.seal(next)),
          pending_changes: user.pending_changes.filter((p) => p.id !== cr.id),
          ...(actions.next ? { required_actions: actions.next } : {}),
        });
        const decision = input.note === undefined ? null : { note: input.note };
        const decided = await repo.decide(tx, actor.tenantId, id, {
          status: 'approved', keyId: actor.keyId, role: actor.role,
          decisionEnc: decision && (await keyring.seal(tx, actor.tenantId, user.id, DECISION_FIELD, decision)),
        });
        const data = { user_id: user.id, change_request_id: id, changed_fields: fields };
        const personal = await keyring.seal(tx, actor.tenantId, user.id, PERSONAL_FIELD, { previous, current });
        const auditPersonal = decision ? await keyring.seal(tx, actor.tenantId, user.id, PERSONAL_FIELD, { previous, current, ...decision }) : personal;
        await recordChange(
          tx, actor,
          { action: 'change_request.approved', targetType: 'change_request', targetId: id, userId: user.id, changedFields: fields, details: {}, personal: auditPersonal },
          [
            { type: 'user.change_approved', userId: user.id, data, personal },
            { type: 'user.updated', userId: user.id, data: { ...data, version: updated!.version }, personal },
          ],
        );
        await recordFulfilled(tx, actor, user.id, actions.fulfilled, { fulfilled_by: 'change_request.approved', change_request_id: id });
        return toChangeRequest(decided, maskIdentifiers(changes), decision ?? undefined);
      });
    },

    async reject(actor: Actor, id: string, input: { reason: string; note?: string }) {
      return db.transaction().execute(async (tx) => {
        const { cr, user } = await lockPending(tx, actor, id);
        await users.updateAtVersion(tx, actor.tenantId, user.id, user.version, {
          pending_changes: user.pending_changes.filter((p) => p.id !== cr.id),
        });
        // The reason is free text that may name anyone: sealed in the row, the audit entry and the event.
        const decision = { reason: input.reason, note: input.note ?? null };
        const decided = await repo.decide(tx, actor.tenantId, id, {
          status: 'rejected', keyId: actor.keyId, role: actor.role, decisionEnc: await keyring.seal(tx, actor.tenantId, user.id, DECISION_FIELD, decision),
        });
        const fields = cr.fields;
        await recordChange(
          tx, actor,
          { action: 'change_request.rejected', targetType: 'change_request', targetId: id, userId: user.id, changedFields: fields, details: {}, personal: await keyring.seal(tx, actor.tenantId, user.id, PERSONAL_FIELD, decision) },
          { type: 'user.change_rejected', userId: user.id, data: { user_id: user.id, change_request_id: id, fields }, personal: await keyring.seal(tx, actor.tenantId, user.id, PERSONAL_FIELD, { reason: input.reason }) },
        );
        return (await changeRequestViews(keyring, actor.tenantId, [decided], tx))[0]!;
      });
    },
  };
}

export type ChangeRequestsService = ReturnType<typeof createChangeRequestsService>;
