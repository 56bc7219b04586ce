// Relationships: add, end, list, and the ownership walk. A write is one transaction that first takes
// the tenant's relationship lock (relationships.repo.ts), then locks the holder's row, checks every
// rule against what is committed, and decides the change by the field policy as the field
// `relationships`: applied at once (with a new KYC review when the policy says so), held as a change
// request for a compliance officer, or refused. The approval applies it later through `applyApproved`,
// which runs the same checks again under the same locks.
import type { Db, Tx } from '../../db/database.js';
import { newId } from '../../lib/ids.js';
import { decodeCursor, toPage } from '../../lib/cursor.js';
import { AppError, notFound } from '../../http/errors.js';
import type { Actor } from '../audit/actor.js';
import { recordAttempt, recordChange } from '../audit/write-path.js';
import * as users from '../users/users.repo.js';
import type { UserRow } from '../users/users.repo.js';
import * as changeRequests from '../reviews/change-requests.repo.js';
import { decide, effectivePolicy, policyState, type UserType } from '../users/field-policy.js';
import { loadOverrides } from '../policy/policy.service.js';
import { userClosed } from '../lifecycle/lifecycle.service.js';
import type { Keyring } from '../../crypto/keyring.js';
import { withheldAmong } from '../erasure/retained.js';
import { CHANGES_FIELD, PERSONAL_FIELD, TITLE_FIELD } from '../events/personal.js';
import { checkPendingChange } from '../users/bounds.js';
import { checkShape, TYPE_RULES, OWNERSHIP_TYPES, type RelationshipType } from './relationship-rules.js';
import * as repo from './relationships.repo.js';
import type { RelationshipRow } from './relationships.repo.js';

export const FIELD = 'relationships';

export interface AddInput {
  type: RelationshipType;
  related_user_id: string;
  ownership_percent?: number | null;
  control?: boolean;
  title?: string | null;
  starts_on?: string | null;
}

/** What a change request on `relationships` holds: the relationship to add (its id chosen now) or the one to end. */
export type Proposal =
  | { action: 'add'; relationship: AddInput & { id: string } }
  | { action: 'end'; relationship_id: string };

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const withoutTitle = <R extends { title?: unknown }>({ title: _title, ...rest }: R) => rest;

type Titled = { related_user_id: string; title?: string | null; title_enc?: string };

/**
 * A relationship's title is free text about the related person, not about the holder: where a held
 * change keeps it (the change request's sealed changes), it is sealed with *that person's* key, so
 * their erasure takes it. Sealed with the holder's key, as before, it outlived them in the business's
 * change requests for good.
 */
async function sealTitle<R extends Titled>(keyring: Keyring, tx: Tx, tenantId: string, r: R): Promise<Omit<R, 'title'>> {
  const { title, ...rest } = r;
  if (title === undefined || title === null) return rest;
  return { ...rest, title_enc: await keyring.seal(tx, tenantId, r.related_user_id, TITLE_FIELD, { title }) };
}

/**
 * The titles of relationship changes opened in place (`title_enc` → `title`), one key lookup for
 * all: null where the related person has been erased. Changes written before titles were sealed
 * this way carry `title` itself and are left as they are.
 */
export async function openTitles(keyring: Keyring, tenantId: string, changes: ReadonlyArray<Record<string, { from: unknown; to: unknown }> | undefined>, executor?: Db | Tx): Promise<void> {
  const sealed: Titled[] = [];
  for (const c of changes) {
    const r = c?.[FIELD];
    if (!r) continue;
    const to = r.to as { action?: string; relationship?: Titled } | null;
    for (const t of [r.from as Titled | null, to?.action === 'add' ? to.relationship : undefined]) {
      if (t && typeof t.title_enc === 'string') sealed.push(t);
    }
  }
  if (sealed.length === 0) return;
  const opened = await keyring.openMany(tenantId, sealed.map((t) => ({ userId: t.related_user_id, field: TITLE_FIELD, envelope: t.title_enc! })), undefined, executor);
  sealed.forEach((t, i) => {
    delete t.title_enc;
    t.title = (opened[i] as { title?: string } | undefined)?.title ?? null;
  });
}

export const toRelationship = (r: RelationshipRow) => ({
  id: r.id,
  type: r.type,
  user_id: r.user_id,
  related_user_id: r.related_user_id,
  ownership_percent: r.ownership_percent === null ? null : Number(r.ownership_percent),
  control: r.control,
  title: r.title,
  starts_on: r.starts_on,
  ended_at: iso(r.ended_at),
  created_at: iso(r.created_at)!,
  change_request_id: r.change_request_id,
});
export type RelationshipView = ReturnType<typeof toRelationship>;

const refused = (code: string, message: string, field: string, extra: Record<string, unknown> = {}) =>
  new AppError(422, code, message, { errors: [{ field, code: code.split('.')[1]!, message }], ...extra });

/** The rules a new relationship must pass against what is committed; call under lockGraph. */
async function checkAdd(tx: Tx, holder: UserRow, input: AddInput): Promise<void> {
  const t = holder.tenant_id;
  if (input.related_user_id === holder.id) throw refused('relationship.self', 'A user cannot be related to itself.', 'related_user_id');
  // Share-locked: a close of the related user committing meanwhile is seen (and refused below), and
  // one that starts later waits for this write, so no current relationship is left to a closed user.
  const related = await users.getForShare(tx, t, input.related_user_id);
  // Another tenant's user is not found, exactly like one that does not exist.
  if (!related) {
    throw new AppError(404, 'user.not_found', `No user ${input.related_user_id} exists.`, {
      errors: [{ field: 'related_user_id', code: 'not_found', message: 'no such user in this tenant' }],
    });
  }
  if (related.status === 'closed') throw refused('relationship.related_user_closed', `User ${related.id} is closed: it cannot take a new relationship.`, 'related_user_id');
  const shape = checkShape(input, holder.type as UserType, related.type as UserType);
  if (shape.length) throw new AppError(422, 'relationship.invalid', `The relationship is not allowed: ${shape.map((e) => e.message).join('; ')}.`, { errors: shape });

  const existing = await repo.findCurrent(tx, t, holder.id, related.id, input.type);
  if (existing) throw new AppError(409, 'relationship.exists', `${related.id} is already a current ${input.type} of ${holder.id}.`, { existing_id: existing });
  if (input.type === 'parent') {
    const parent = await repo.currentParent(tx, t, holder.id);
    if (parent) throw new AppError(409, 'relationship.parent_exists', `${holder.id} already has a parent (${parent.related_user_id}); end that relationship first.`, { existing_id: parent.id });
  }
  const graph = TYPE_RULES[input.type].graph;
  if (graph) {
    const types = graph === 'ownership' ? OWNERSHIP_TYPES : ['parent'];
    const path = await repo.pathUp(tx, t, related.id, holder.id, types);
    if (path) {
      throw refused('relationship.cycle', `${holder.id} already ${graph === 'ownership' ? 'owns' : 'is a parent of'} ${related.id} (through ${path.join(' → ')}): this would close a cycle.`, 'related_user_id', { path });
    }
  }
  if (input.ownership_percent != null) {
    const total = await repo.ownedPercent(tx, t, holder.id);
    if (total + input.ownership_percent > 100 + 1e-9) {
      throw refused('relationship.ownership_over_100', `The current owners of ${holder.id} hold ${total} %: ${input.ownership_percent} % more would exceed 100 %.`, 'ownership_percent', { current_total_percent: total });
    }
  }
}

export function createRelationshipsService({ db, keyring }: { db: Db; keyring: Keyring }) {
  /** The holder, locked; a closed holder changes no more. */
  async function lockHolder(tx: Tx, actor: Actor, userId: string): Promise<UserRow> {
    const holder = await users.getForUpdate(tx, actor.tenantId, userId);
    if (!holder) throw notFound('user', userId);
    if (holder.status === 'closed') throw userClosed(userId);
    return holder;
  }

  function insertRow(tx: Tx, actor: Actor, holder: UserRow, input: AddInput & { id: string }, crId: string | null) {
    return repo.insert(tx, {
      tenant_id: actor.tenantId, id: input.id, user_id: holder.id, related_user_id: input.related_user_id, type: input.type,
      ownership_percent: input.ownership_percent ?? null, control: input.control ?? false, title: input.title ?? null,
      starts_on: input.starts_on ?? null, created_by_key_id: actor.keyId, request_id: actor.requestId, change_request_id: crId,
    });
  }

  const eventData = (r: RelationshipView, crId: string | null) => ({
    user_id: r.user_id, relationship_id: r.id, type: r.type, related_user_id: r.related_user_id,
    ownership_percent: r.ownership_percent, control: r.control, ...(crId ? { change_request_id: crId } : {}),
  });

  /** The audit entry and event of an applied add or end (also used by an approval, with its own audit action). */
  async function recordApplied(
    tx: Tx, actor: Actor, kind: 'added' | 'ended', r: RelationshipView, crId: string | null, extraEvents: Parameters<typeof recordChange>[3] = [], personal: string | null = null,
  ) {
    const data = eventData(r, crId);
    await recordChange(
      tx, actor,
      crId
        ? { action: 'change_request.approved', targetType: 'change_request', targetId: crId, userId: r.user_id, changedFields: [FIELD], details: { [`relationship_${kind}`]: data }, personal }
        : { action: `user.relationship_${kind}`, targetType: 'relationship', targetId: r.id, userId: r.user_id, changedFields: [FIELD], details: data },
      [...(Array.isArray(extraEvents) ? extraEvents : [extraEvents]), { type: `user.relationship_${kind}`, userId: r.user_id, data }],
    );
  }

  /** A verified holder whose policy says allow_with_review: KYC status becomes review_required. */
  async function reopenReview(tx: Tx, actor: Actor, holder: UserRow) {
    if (holder.kyc_status !== 'verified') return;
    await users.updateAtVersion(tx, actor.tenantId, holder.id, holder.version, { kyc_status: 'review_required' });
    await recordChange(
      tx, actor,
      { action: 'user.kyc_status_changed', targetType: 'user', targetId: holder.id, userId: holder.id, changedFields: ['kyc.status'], details: { from: 'verified', to: 'review_required', fields: [FIELD] } },
      { type: 'user.kyc_status_changed', userId: holder.id, data: { user_id: holder.id, from: 'verified', to: 'review_required', reason: 'reviewed_field_changed', fields: [FIELD] } },
    );
  }

  /** Holds the change as a change request on the field `relationships`, exactly like a PATCH's approval fields. */
  async function requestApproval(tx: Tx, actor: Actor, holder: UserRow, proposal: Proposal, from: unknown) {
    // The same bounds as a PATCH's change request (at most MAX_PENDING_CHANGES pending, their
    // proposals within PENDING_CHANGES_MAX_BYTES), checked by the same function on the whole
    // proposal: 422 user.value_too_large, nothing written.
    checkPendingChange(holder, { [FIELD]: proposal });
    const crId = newId('chg');
    // The row's pending_changes is kept in the clear and shown on every read: the proposal is listed
    // without its title (free text about the person, nulled by their erasure), which the change
    // request keeps sealed — as a personal custom value held for approval is (users.service.ts).
    const listed = proposal.action === 'add' ? { ...proposal, relationship: withoutTitle(proposal.relationship) } : proposal;
    await users.updateAtVersion(tx, actor.tenantId, holder.id, holder.version, {
      pending_changes: [...holder.pending_changes, { id: crId, fields: [FIELD], proposed: { [FIELD]: listed }, requested_at: new Date().toISOString() }],
    });
    // The title, in `to` (an add) or `from` (an end), sealed again inside with the related person's key.
    const stored = proposal.action === 'add' ? { ...proposal, relationship: await sealTitle(keyring, tx, actor.tenantId, proposal.relationship) } : proposal;
    const storedFrom = from === null ? null : await sealTitle(keyring, tx, actor.tenantId, from as Titled);
    await changeRequests.insert(tx, {
      tenant_id: actor.tenantId, id: crId, user_id: holder.id, fields: [FIELD],
      changes_enc: await keyring.seal(tx, actor.tenantId, holder.id, CHANGES_FIELD, { [FIELD]: { from: storedFrom, to: stored } }),
      requested_by_key_id: actor.keyId, requested_by_role: actor.role, request_id: actor.requestId,
    });
    await recordChange(
      tx, actor,
      // Audit details are immutable and never erased: only ids and codes there; the proposal itself
      // is sealed with the holder's key, without the title (the person's: the change request keeps it
      // under their key, and the relationship row until their erasure).
      {
        action: 'user.change_requested', targetType: 'change_request', targetId: crId, userId: holder.id, changedFields: [FIELD],
        details: proposal.action === 'add'
          ? { action: 'add', relationship_id: proposal.relationship.id, type: proposal.relationship.type, related_user_id: proposal.relationship.related_user_id }
          : { action: 'end', relationship_id: proposal.relationship_id },
        personal: await keyring.seal(tx, actor.tenantId, holder.id, PERSONAL_FIELD, { proposal: listed }),
      },
      { type: 'user.change_requested', userId: holder.id, data: { user_id: holder.id, change_request_id: crId, fields: [FIELD] } },
    );
    return { status: 'pending_approval' as const, change_request_id: crId, fields: [FIELD], proposal };
  }

  /**
   * Runs `write` under the tenant's relationship lock with the holder locked and the policy's
   * outcome for `relationships`; a denied change is audited as a flagged attempt after rollback.
   */
  async function underPolicy<T>(actor: Actor, userId: string, write: (tx: Tx, holder: UserRow, outcome: string) => Promise<T>): Promise<T> {
    const policy = effectivePolicy((await loadOverrides(db, actor.tenantId)).fields);
    const result = await db.transaction().execute(async (tx) => {
      await repo.lockGraph(tx, actor.tenantId);
      const holder = await lockHolder(tx, actor, userId);
      const d = decide(policy, holder.type as UserType, policyState(holder), FIELD);
      if (d.outcome === 'deny') return { denied: d.reason, value: undefined };
      return { denied: undefined, value: await write(tx, holder, d.outcome) };
    });
    if (result.denied !== undefined) {
      await recordAttempt(db, actor, { action: 'user.update_denied', outcome: 'flagged', targetType: 'user', targetId: userId, userId, changedFields: [FIELD] });
      throw new AppError(422, 'user.field_denied', `These fields cannot be changed: ${FIELD}.`, { errors: [{ field: FIELD, code: 'denied', message: result.denied }] });
    }
    return result.value as T;
  }

  return {
    async add(actor: Actor, userId: string, input: AddInput) {
      return underPolicy(actor, userId, async (tx, holder, outcome) => {
        await checkAdd(tx, holder, input);
        const proposal = { ...input, id: newId('rel') };
        if (outcome === 'approval') return { pending: await requestApproval(tx, actor, holder, { action: 'add', relationship: proposal }, null) };
        const view = toRelationship(await insertRow(tx, actor, holder, proposal, null));
        await recordApplied(tx, actor, 'added', view, null);
        if (outcome === 'allow_with_review') await reopenReview(tx, actor, holder);
        return { relationship: view };
      });
    },

    async end(actor: Actor, userId: string, relId: string) {
      return underPolicy(actor, userId, async (tx, holder, outcome) => {
        const rel = await repo.get(tx, actor.tenantId, holder.id, relId);
        if (!rel) throw notFound('relationship', relId);
        if (rel.ended_at) throw new AppError(409, 'relationship.ended', `Relationship ${relId} already ended at ${rel.ended_at.toISOString()}.`);
        if (outcome === 'approval') return { pending: await requestApproval(tx, actor, holder, { action: 'end', relationship_id: relId }, toRelationship(rel)) };
        const view = toRelationship((await repo.end(tx, actor.tenantId, relId, actor.keyId))!);
        await recordApplied(tx, actor, 'ended', view, null);
        if (outcome === 'allow_with_review') await reopenReview(tx, actor, holder);
        return { relationship: view };
      });
    },

    /**
     * Applies an approved change request on `relationships`, inside the approval's transaction (which
     * took lockGraph before locking the user). The rules are checked again: the graph may have moved.
     */
    async applyApproved(
      tx: Tx, actor: Actor, holder: UserRow, crId: string, proposal: Proposal, approvedEvent: Parameters<typeof recordChange>[3], note: string | null = null,
    ) {
      // The officer's note is free text: in the audit entry only sealed with the holder's key.
      const personal = note === null ? null : await keyring.seal(tx, actor.tenantId, holder.id, PERSONAL_FIELD, { note });
      if (proposal.action === 'add') {
        await checkAdd(tx, holder, proposal.relationship);
        const view = toRelationship(await insertRow(tx, actor, holder, proposal.relationship, crId));
        await recordApplied(tx, actor, 'added', view, crId, approvedEvent, personal);
        return view;
      }
      const ended = await repo.end(tx, actor.tenantId, proposal.relationship_id, actor.keyId);
      if (!ended) throw new AppError(409, 'relationship.ended', `Relationship ${proposal.relationship_id} has already ended. Nothing was applied.`);
      const view = toRelationship(ended);
      await recordApplied(tx, actor, 'ended', view, crId, approvedEvent, personal);
      return view;
    },

    async list(actor: Actor, userId: string, q: { include?: 'ended'; limit?: number; cursor?: string }) {
      await users.getOrThrow(db, actor.tenantId, userId);
      const limit = q.limit ?? 50;
      const after = decodeCursor(q.cursor, ['id'] as const);
      const rows = await repo.list(db, actor.tenantId, userId, { includeEnded: q.include === 'ended', afterId: after?.id ?? null, limit });
      // A title is free text about a person's role: withheld where either side awaits erasure, as
      // its destruction will null it (erasure/retained.ts).
      const withheld = await withheldAmong(db, actor, rows.flatMap((r) => [r.user_id, r.related_user_id]));
      const view = withheld.size ? (r: RelationshipRow) => ({ ...toRelationship(r), ...(withheld.has(r.user_id) || withheld.has(r.related_user_id) ? { title: null } : {}) }) : toRelationship;
      return toPage(rows, limit, view, (r) => ({ id: r.id }));
    },

    async ownership(actor: Actor, userId: string) {
      await users.getOrThrow(db, actor.tenantId, userId);
      const { owners, truncated } = await repo.ultimateOwners(db, actor.tenantId, userId);
      return { user_id: userId, owners, truncated };
    },
  };
}

export type RelationshipsService = ReturnType<typeof createRelationshipsService>;
