// Required actions and the KYC sub-status: writes on the user row, each in one transaction with its
// audit entry and events. Fulfilment happens inside the writes that bring the field or document
// (a PATCH, an approved change request, a document upload): they call `fulfilled` with what they
// applied and write the list it returns with their own update, then `recordFulfilled`.
import { sql } from 'kysely';
import type { Db, RequiredAction, Tx } from '../../db/database.js';
import { newId } from '../../lib/ids.js';
import { AppError, notFound, validationFailed } from '../../http/errors.js';
import type { Actor } from '../audit/actor.js';
import { recordChange, type EventInput } from '../audit/write-path.js';
import * as users from '../users/users.repo.js';
import type { UserRow } from '../users/users.repo.js';
import { userClosed } from '../lifecycle/lifecycle.service.js';
import { policyFields, type UserType } from '../users/field-policy.js';
import type { Keyring } from '../../crypto/keyring.js';
import { PERSONAL_FIELD } from '../events/personal.js';
import { checkNew, fulfil, withAction, type NewAction } from './required-actions.js';

/** What anyone with the event may read: ids, codes, field names; the message is free text, sealed. */
const eventData = (userId: string, a: RequiredAction) => ({
  user_id: userId, required_action_id: a.id, code: a.code, field: a.field, document_type: a.document_type, due_at: a.due_at, status: a.status,
});

/** The actions a write that applied `fields` (with values) or added a document fulfils: the list to store, and what changed. */
export function fulfilled(user: Pick<UserRow, 'required_actions'>, arrived: { fields?: readonly string[]; documentType?: string }) {
  if (!user.required_actions?.some((a) => a.status === 'open')) return { next: null, fulfilled: [] as RequiredAction[] };
  const out = fulfil(user.required_actions, arrived);
  return { next: out.fulfilled.length ? out.next : null, fulfilled: out.fulfilled };
}

/** The audit entry and one event per fulfilled action, in the caller's transaction (after its update). */
export async function recordFulfilled(tx: Tx, actor: Actor, userId: string, done: RequiredAction[], cause: Record<string, unknown>): Promise<void> {
  if (!done.length) return;
  await recordChange(
    tx, actor,
    {
      action: 'user.required_actions_fulfilled', targetType: 'user', targetId: userId, userId, changedFields: ['required_actions'],
      details: { required_action_ids: done.map((a) => a.id), ...cause },
    },
    done.map((a): EventInput => ({ type: 'user.required_action_fulfilled', userId, data: { ...eventData(userId, a), ...cause } })),
  );
}

export function createRequiredActionsService({ db, keyring }: { db: Db; keyring: Keyring }) {
  /** Locks the user, refuses a closed one, runs `write`, and stores what it returns at a new version. */
  async function change<T>(actor: Actor, userId: string, write: (u: UserRow) => { next: RequiredAction[]; result: T; record: (tx: Tx, version: number) => Promise<void> }) {
    return db.transaction().execute(async (tx) => {
      const u = await users.getForUpdate(tx, actor.tenantId, userId);
      if (!u) throw notFound('user', userId);
      if (u.status === 'closed') throw userClosed(userId);
      const { next, result, record } = write(u);
      const updated = await users.updateAtVersion(tx, actor.tenantId, userId, u.version, { required_actions: next });
      await record(tx, updated!.version);
      return { result, version: updated!.version };
    });
  }

  const sealed = (tx: Tx, actor: Actor, userId: string, a: RequiredAction) =>
    a.message === null ? Promise.resolve(null) : keyring.seal(tx, actor.tenantId, userId, PERSONAL_FIELD, { message: a.message });

  return {
    async add(actor: Actor, userId: string, input: NewAction) {
      return change(actor, userId, (u) => {
        const open = u.required_actions.filter((a) => a.status === 'open').length;
        const errors = checkNew(input, policyFields(u.type as UserType), open);
        if (errors.length) throw validationFailed(errors);
        const action: RequiredAction = {
          id: newId('rqa'), code: input.code, field: input.field ?? null, document_type: input.document_type ?? null, message: input.message ?? null,
          due_at: input.due_at ? new Date(input.due_at).toISOString() : null, status: 'open', created_at: new Date().toISOString(), resolved_at: null,
        };
        return {
          next: withAction(u.required_actions, action),
          result: action,
          record: async (tx, version) => {
            const personal = await sealed(tx, actor, userId, action);
            await recordChange(
              tx, actor,
              { action: 'user.required_action_added', targetType: 'required_action', targetId: action.id, userId, changedFields: ['required_actions'], details: eventData(userId, action), personal },
              { type: 'user.required_action_added', userId, data: { ...eventData(userId, action), version }, personal },
            );
          },
        };
      });
    },

    async cancel(actor: Actor, userId: string, actionId: string) {
      return change(actor, userId, (u) => {
        const found = u.required_actions.find((a) => a.id === actionId);
        if (!found) throw notFound('required_action', actionId);
        if (found.status !== 'open') {
          throw new AppError(409, 'required_action.not_open', `Required action ${actionId} is already ${found.status}.`, { current_status: found.status });
        }
        const cancelled: RequiredAction = { ...found, status: 'cancelled', resolved_at: new Date().toISOString() };
        return {
          next: u.required_actions.map((a) => (a.id === actionId ? cancelled : a)),
          result: cancelled,
          record: async (tx, version) => {
            await recordChange(
              tx, actor,
              { action: 'user.required_action_cancelled', targetType: 'required_action', targetId: actionId, userId, changedFields: ['required_actions'], details: eventData(userId, cancelled) },
              { type: 'user.required_action_cancelled', userId, data: { ...eventData(userId, cancelled), version } },
            );
          },
        };
      });
    },

    /** Sets (or clears, with null) MatchMove's finer KYC step; the same value again changes nothing. */
    async setSubStatus(actor: Actor, userId: string, subStatus: string | null) {
      return db.transaction().execute(async (tx) => {
        const u = await users.getForUpdate(tx, actor.tenantId, userId);
        if (!u) throw notFound('user', userId);
        if (u.status === 'closed') throw userClosed(userId);
        if (u.kyc_sub_status === subStatus) return u;
        const updated = await tx.updateTable('users')
          .set({ kyc_sub_status: subStatus, version: sql`version + 1`, updated_at: sql`now()` })
          .where('tenant_id', '=', actor.tenantId).where('id', '=', userId)
          .returningAll().executeTakeFirstOrThrow();
        const data = { user_id: userId, from: u.kyc_sub_status, to: subStatus, kyc_status: u.kyc_status };
        await recordChange(
          tx, actor,
          { action: 'user.kyc_sub_status_changed', targetType: 'user', targetId: userId, userId, changedFields: ['kyc.sub_status'], details: data },
          { type: 'user.kyc_sub_status_changed', userId, data: { ...data, version: updated.version } },
        );
        return updated as UserRow;
      });
    },
  };
}

export type RequiredActionsService = ReturnType<typeof createRequiredActionsService>;
