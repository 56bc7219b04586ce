// Status changes, closing, and capabilities. A transition is read → check (pure table) → one
// transaction that moves the status only from the state it was checked against, writes the history
// row, the audit entry and the events. Racing transitions: the first to commit wins, the others 409.
import type { Selectable } from 'kysely';
import type { Db, StatusChangesTable, Tx } from '../../db/database.js';
import { newId } from '../../lib/ids.js';
import { userHistoryPage } from '../../db/user-history.js';
import { AppError, notFound, preconditionFailed, validationFailed } from '../../http/errors.js';
import { pinnedVersion, type Precondition } from '../../http/conditional.js';
import type { Actor } from '../audit/actor.js';
import { withheldFrom } from '../erasure/retained.js';
import { recordChange } from '../audit/write-path.js';
import * as users from '../users/users.repo.js';
import * as changeRequests from '../reviews/change-requests.repo.js';
import { checkTransition, type Origin, type Status } from './user-status.js';
import { effectiveCapabilities, evaluate, type CapabilityOverrides } from './capabilities.js';
import { CAPABILITY_INPUTS_SQL } from '../relationships/relationships.repo.js';
import { effectivePropagation, heldParties, relatedPartyReason, type Propagation, type RelatedParty } from '../relationships/relationship-rules.js';
import { prepared } from '../../db/prepared.js';
import type { Keyring } from '../../crypto/keyring.js';
import { PERSONAL_FIELD } from '../events/personal.js';

export interface TransitionInput {
  status: Status;
  reason?: string | null;
  note?: string | null;
  origin?: Origin;
}

// The capability check's one read (relationships.repo.ts CAPABILITY_INPUTS_SQL), prepared.
const capabilityInputs = prepared<{
  status: string; kyc_status: string; risk_rating: string | null; overrides: CapabilityOverrides | null; propagation: Partial<Propagation> | null; parties: RelatedParty[];
}>('user_capabilities', CAPABILITY_INPUTS_SQL);

export const userClosed = (id: string) =>
  new AppError(409, 'user.closed', `User ${id} is closed: it can be read, never changed again.`);

export const toStatusChange = (r: Selectable<StatusChangesTable>) => ({
  id: r.id,
  user_id: r.user_id,
  from: r.from_status as Status,
  to: r.to_status as Status,
  reason: r.reason,
  note: r.note,
  origin: r.origin as Origin,
  actor: { key_id: r.actor_key_id, role: r.actor_role },
  request_id: r.request_id,
  created_at: r.created_at.toISOString(),
});

/** A status change of a user awaiting erasure, to a caller who may not read it: its note (free text about the person) null, as destruction leaves it (erasure/retained.ts). */
export const withheldStatusChange = (r: Selectable<StatusChangesTable>) => ({ ...toStatusChange(r), note: null });

const article = (word: string) => (/^[aeiou]/.test(word) ? 'An' : 'A');

/**
 * The rule that refused a move, in words that agree with `allowed`: a shorthand that only leaves
 * one status (unsuspend, unblock) says so, rather than claim a move `allowed` lists is impossible.
 */
export function transitionRefused(from: Status, to: Status, requiredFrom: Status | null, allowed: readonly Status[]): string {
  if (requiredFrom !== null && from !== requiredFrom) {
    return `This move only applies to a ${requiredFrom} user; this user is ${from}. ` +
      `To move it to another status, use POST /v1/users/{id}/status-changes (allowed from ${from}: ${allowed.join(', ') || 'none'}).`;
  }
  return `${article(from)} ${from} user cannot become ${to}; from ${from} it can become: ${allowed.join(', ') || 'nothing'}.`;
}

export function createLifecycleService({ db, keyring }: { db: Db; keyring: Keyring }) {
  const getRow = (tenantId: string, id: string) => users.getOrThrow(db, tenantId, id);

  async function transition(
    actor: Actor,
    userId: string,
    input: TransitionInput,
    opts: { requiredFrom?: Status | null; ifMatch?: Precondition } = {},
  ) {
    const row = await getRow(actor.tenantId, userId);
    const from = row.status as Status;
    const reason = input.reason ?? null;
    const check = checkTransition(from, input.status, reason, opts.requiredFrom ?? null);
    if (!check.ok) {
      if (check.code === 'user.closed') throw userClosed(userId);
      if (check.code === 'reason_required') {
        throw validationFailed([{ field: 'reason', code: 'required', message: 'every status change takes a reason code (GET /v1/enumerations/reason_codes)' }]);
      }
      throw new AppError(409, 'user.transition_not_allowed', transitionRefused(from, input.status, opts.requiredFrom ?? null, check.allowed), {
        current_status: from,
        allowed: check.allowed,
      });
    }
    const pinned = pinnedVersion(opts.ifMatch, row.version);

    const done = await db.transaction().execute((tx) => applyTransition(tx, actor, userId, from, input, pinned, row.status_changed_at));
    if (done) return done;
    // Another change committed between our read and our write.
    const now = await getRow(actor.tenantId, userId);
    if (pinned !== undefined) throw preconditionFailed(now.version);
    throw new AppError(409, 'user.transition_conflict', `The user's status changed concurrently (now ${now.status}); read it and retry.`, {
      current_status: now.status,
    });
  }

  /** The status move, its history row, the audit entry and the events, inside the caller's transaction. */
  async function applyTransition(tx: Tx, actor: Actor, userId: string, from: Status, input: TransitionInput, pinned?: number, since?: Date) {
    const reason = input.reason ?? null;
    {
      const u = await users.setStatus(tx, actor.tenantId, userId, { from, to: input.status, reason, version: pinned, since });
      if (!u) return undefined;
      const change = await tx
        .insertInto('status_changes')
        .values({
          tenant_id: actor.tenantId, id: newId('stc'), user_id: userId, from_status: from, to_status: input.status,
          reason, note: input.note ?? null, origin: input.origin ?? 'operator',
          actor_key_id: actor.keyId, actor_role: actor.role, request_id: actor.requestId,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      const cancelled = input.status === 'closed'
        ? await changeRequests.cancelPending(tx, actor.tenantId, userId, { keyId: actor.keyId, role: actor.role })
        : [];
      const data = { user_id: userId, status_change_id: change.id, from, to: input.status, reason, origin: change.origin };
      await recordChange(
        tx, actor,
        {
          action: input.status === 'closed' ? 'user.closed' : 'user.status_changed',
          targetType: 'user', targetId: userId, userId, changedFields: ['status'],
          details: { from, to: input.status, reason, origin: change.origin, cancelled_change_requests: cancelled },
          // A note is free text that may name anyone: sealed with the user's key, so erasure destroys
          // it here too (the audit entry itself can never be rewritten). The history row's plain copy
          // is nulled by the erasure sweep.
          personal: input.note ? await keyring.seal(tx, actor.tenantId, userId, PERSONAL_FIELD, { note: input.note }) : null,
        },
        [
          { type: 'user.status_changed', userId, data },
          ...(input.status === 'closed' ? [{ type: 'user.closed', userId, data: { ...data, cancelled_change_requests: cancelled } }] : []),
        ],
      );
      return { change: toStatusChange(change), user: u };
    }
  }

  /**
   * Closing is idempotent: a closed user answers as it is, with no new history, audit entry or event,
   * whatever If-Match says (RFC 9110 §13.1.1: a change already applied may answer 2xx). An open user
   * whose version is not the pinned one answers 412 and nothing is written.
   */
  async function close(
    actor: Actor,
    userId: string,
    input: { origin: Origin; reason: string; note?: string },
    opts: { ifMatch?: Precondition } = {},
  ) {
    // Every open status may close, so a status that moved under us is simply tried again (unless
    // the caller pinned a version: then the move under us is a 412 from transition()).
    for (let attempt = 0; ; attempt++) {
      const row = await getRow(actor.tenantId, userId);
      if (row.status === 'closed') return { user: row, closed: false };
      try {
        const { user } = await transition(
          actor, userId, { status: 'closed', reason: input.reason, note: input.note, origin: input.origin }, { ifMatch: opts.ifMatch },
        );
        return { user, closed: true };
      } catch (err) {
        if (!(err instanceof AppError && err.code === 'user.transition_conflict' && attempt < 5)) throw err;
      }
    }
  }

  return {
    transition,
    close,

    /** Closes a user the caller has locked in `tx` (an erasure request: closing and scheduling are one change). */
    closeLocked: (tx: Tx, actor: Actor, user: { id: string; status: string }, input: { origin: Origin; reason: string; note?: string }) =>
      applyTransition(tx, actor, user.id, user.status as Status, { status: 'closed', reason: input.reason, note: input.note, origin: input.origin }),

    /**
     * Closes up to 1,000 users, four at a time; each closure is its own transaction. `closeOne`
     * replaces the closure of one user (the batch with erasure requests each user's erasure, which
     * closes it and schedules the destruction in one transaction) and may add to its result.
     */
    async closeMany(
      actor: Actor, ids: string[], input: { origin: Origin; reason: string; note?: string },
      closeOne: (id: string) => Promise<{ closed: boolean; extra?: Record<string, unknown> }> = async (id) => ({ closed: (await close(actor, id, input)).closed }),
    ) {
      const unique = [...new Set(ids)];
      const results = new Map<string, 'closed' | 'already_closed' | 'not_found' | 'failed'>();
      const extras = new Map<string, Record<string, unknown>>();
      let next = 0;
      let fault: unknown = null;
      // Every id gets its own result; an unexpected fault stops the batch only after the others settle.
      const worker = async () => {
        while (next < unique.length && !fault) {
          const id = unique[next++]!;
          try {
            const one = await closeOne(id);
            results.set(id, one.closed ? 'closed' : 'already_closed');
            if (one.extra) extras.set(id, one.extra);
          } catch (err) {
            if (err instanceof AppError && err.status === 404) results.set(id, 'not_found');
            else if (err instanceof AppError && err.status < 500) results.set(id, 'failed');
            else fault = err;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(4, unique.length) }, worker));
      if (fault) throw fault;
      return { results: unique.map((id) => ({ id, result: results.get(id)!, ...(extras.get(id) ?? {}) })) };
    },

    async history(actor: Actor, userId: string, q: { limit?: number; cursor?: string }) {
      const user = await getRow(actor.tenantId, userId);
      // A note is free text about the person: withheld as erasure will null it (erasure/retained.ts).
      const view = withheldFrom(actor, user) ? withheldStatusChange : toStatusChange;
      return userHistoryPage(db, 'status_changes', actor.tenantId, userId, q, view);
    },

    /** Read straight from the database on every call: no cache can answer from before a status change. */
    async capabilities(actor: Actor, userId: string) {
      const [row] = await capabilityInputs(db, [actor.tenantId, userId]);
      if (!row) throw notFound('user', userId);
      const status = row.status as Status;
      const propagation = effectivePropagation(row.propagation ?? undefined);
      const held = heldParties(row.parties, propagation);
      return {
        user_id: userId,
        status,
        kyc_status: row.kyc_status,
        capabilities: evaluate(effectiveCapabilities(row.overrides ?? undefined), status, row.kyc_status, relatedPartyReason(held), row.risk_rating),
        risk_rating: row.risk_rating,
        related_parties: held,
        propagation,
        evaluated_at: new Date().toISOString(),
      };
    },
  };
}

export type LifecycleService = ReturnType<typeof createLifecycleService>;
