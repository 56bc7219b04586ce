// Users: create, read, list, and update under the field policy. Each write is read → decide →
// one short transaction (row + audit entry + event); concurrent patches are resolved optimistically
// on `version`, re-applying the merge patch to the fresh row unless the caller pinned a version.
import type { Db, Tx } from '../../db/database.js';
import { newId } from '../../lib/ids.js';
import { decodeCursor, toPage } from '../../lib/cursor.js';
import { AppError, notFound, preconditionFailed, validationFailed, type FieldError } from '../../http/errors.js';
import type { Actor } from '../audit/actor.js';
import { recordAttempt, recordChange } from '../audit/write-path.js';
import { checkReferenceData } from '../reference/validate.js';
import { decideFieldChanges, kycState, type FieldDecision, type UserType } from './field-policy.js';
import { changedFields, mergePatch, valueAt, type JsonObject } from './merge-patch.js';
import {
  ADDRESS_FIELDS, BUSINESS_FIELDS, INDIVIDUAL_FIELDS,
  type CreateUserInput, type ListUsersFilters, type PatchUserInput, type UserView,
} from './users.schemas.js';
import * as repo from './users.repo.js';
import type { UserRow } from './users.repo.js';

const TYPE_FIELDS: Record<UserType, string[]> = {
  individual: Object.keys(INDIVIDUAL_FIELDS),
  business: Object.keys(BUSINESS_FIELDS),
};
const ADDRESS_KEYS = Object.keys(ADDRESS_FIELDS);
const SHARED_PATCH_FIELDS = new Set(['type', 'external_ref', 'country', 'email', 'phone', 'address', 'mailing_address', 'metadata', 'tags']);

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function addressView(v: unknown, withCountry: boolean) {
  if (typeof v !== 'object' || v === null) return null;
  const a = v as JsonObject;
  const keys = withCountry ? [...ADDRESS_KEYS, 'country'] : ADDRESS_KEYS;
  return Object.fromEntries(keys.map((k) => [k, a[k] ?? null]));
}

export function toUserView(row: UserRow): UserView {
  const p = row.profile as JsonObject;
  const typeFields = TYPE_FIELDS[row.type as UserType];
  return {
    id: row.id,
    external_ref: row.external_ref,
    type: row.type,
    country: row.country,
    status: row.status,
    status_reason: row.status_reason,
    status_changed_at: row.status_changed_at.toISOString(),
    kyc: { status: row.kyc_status, level: row.kyc_level, verified_at: iso(row.kyc_verified_at) },
    ...Object.fromEntries(typeFields.map((k) => [k, p[k] ?? null])),
    email: (p.email as string | undefined) ?? null,
    phone: (p.phone as string | undefined) ?? null,
    address: addressView(p.address, false),
    mailing_address: addressView(p.mailing_address, true),
    metadata: row.metadata as JsonObject,
    tags: row.tags,
    version: row.version,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  } as UserView;
}

/** Drops nulls and empty address objects: the stored profile is sparse, the view fills the gaps. */
function compact(doc: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(doc)) {
    if (v === null || v === undefined) continue;
    if (k === 'address' || k === 'mailing_address') {
      const inner = compact(v as JsonObject);
      if (Object.keys(inner).length) out[k] = inner;
      continue;
    }
    out[k] = v;
  }
  return out;
}

/** The patchable document of a user: profile plus the record-level fields a patch may name. */
function documentOf(row: UserRow): JsonObject {
  return {
    ...(row.profile as JsonObject),
    external_ref: row.external_ref,
    type: row.type,
    country: row.country,
    metadata: row.metadata,
    tags: row.tags,
  };
}

function splitDocument(doc: JsonObject) {
  const { external_ref: _e, type: _t, country: _c, metadata, tags, ...profile } = doc;
  return { profile: compact(profile), metadata: (metadata as JsonObject | undefined) ?? {}, tags: (tags as string[] | undefined) ?? [] };
}

function assertValid(values: JsonObject): void {
  const errors = checkReferenceData(values);
  if (errors.length) throw validationFailed(errors);
}

type Plan =
  | { kind: 'noop' }
  | { kind: 'denied'; denied: FieldDecision[] }
  | { kind: 'apply'; next: ReturnType<typeof splitDocument>; changed: string[]; previous: JsonObject; current: JsonObject };

/** What a patch would do to this row: nothing, a refusal, or these changes. Pure. */
function planPatch(row: UserRow, patch: PatchUserInput): Plan {
  const before = documentOf(row);
  const after = mergePatch(before, patch) as JsonObject;
  const next = splitDocument(after);
  const changed = changedFields(before, { ...after, metadata: next.metadata, tags: next.tags });
  if (changed.length === 0) return { kind: 'noop' };
  const decisions = decideFieldChanges({ userType: row.type as UserType, kyc: kycState(row.kyc_status), fields: changed });
  const denied = decisions.filter((d) => d.outcome === 'deny');
  if (denied.length) return { kind: 'denied', denied };
  return {
    kind: 'apply',
    next,
    changed,
    previous: Object.fromEntries(changed.map((f) => [f, valueAt(before, f)])),
    current: Object.fromEntries(changed.map((f) => [f, valueAt(after, f)])),
  };
}

async function recordUpdate(tx: Tx, actor: Actor, u: UserRow, plan: Extract<Plan, { kind: 'apply' }>) {
  await recordChange(
    tx, actor,
    { action: 'user.updated', targetType: 'user', targetId: u.id, userId: u.id, changedFields: plan.changed },
    {
      type: 'user.updated',
      userId: u.id,
      data: { user_id: u.id, version: u.version, changed_fields: plan.changed, previous: plan.previous, current: plan.current },
    },
  );
}

export function createUsersService({ db }: { db: Db }) {
  /** A denied change is audited (outcome denied, no event) and refused with 422, nothing applied. */
  async function refuseDenied(actor: Actor, id: string, denied: FieldDecision[]): Promise<never> {
    const errors: FieldError[] = denied.map((d) => ({ field: d.field, code: 'denied', message: d.reason ?? 'cannot be changed' }));
    await recordAttempt(db, actor, {
      action: 'user.update_denied', outcome: 'denied', targetType: 'user', targetId: id, userId: id,
      changedFields: denied.map((d) => d.field),
    });
    throw new AppError(422, 'user.field_denied', `These fields cannot be changed: ${errors.map((e) => e.field).join(', ')}.`, { errors });
  }

  async function getRow(tenantId: string, id: string): Promise<UserRow> {
    const row = await repo.get(db, tenantId, id);
    if (!row) throw notFound('user', id);
    return row;
  }

  return {
    async get(actor: Actor, id: string): Promise<UserView> {
      return toUserView(await getRow(actor.tenantId, id));
    },

    async create(actor: Actor, input: CreateUserInput): Promise<UserView> {
      const { type, external_ref, country, metadata, tags, ...rest } = input;
      assertValid({ country, ...rest, metadata });
      const id = newId('usr');
      return db.transaction().execute(async (tx) => {
        const row = await repo.insert(tx, {
          tenant_id: actor.tenantId,
          id,
          external_ref: external_ref ?? null,
          type,
          country,
          profile: compact(rest as JsonObject),
          metadata: metadata ?? {},
          tags: tags ?? [],
        });
        if (!row) {
          const existing = await repo.findIdByExternalRef(tx, actor.tenantId, external_ref!);
          throw new AppError(409, 'user.exists', `A user with external_ref ${external_ref} already exists: ${existing}.`, {
            existing_id: existing,
          });
        }
        const user = toUserView(row);
        await recordChange(
          tx, actor,
          { action: 'user.created', targetType: 'user', targetId: id, userId: id, changedFields: [] },
          { type: 'user.created', userId: id, data: { user } },
        );
        return user;
      });
    },

    async list(actor: Actor, filters: ListUsersFilters) {
      const limit = filters.limit ?? 50;
      const before = decodeCursor(filters.cursor, ['id'] as const);
      const rows = await repo.list(db, actor.tenantId, { ...filters, beforeId: before?.id ?? null, limit });
      return toPage(rows, limit, toUserView, (r) => ({ id: r.id }));
    },

    /**
     * Applies a merge patch under the field policy. `ifMatch` pins the version (412 when stale).
     * Without it, the first attempt is optimistic (no lock); if another write got there first, the
     * patch is re-applied once under a row lock, so concurrent patches all land and none starves.
     */
    async update(actor: Actor, id: string, patch: PatchUserInput, ifMatch?: number | '*'): Promise<UserView> {
      const row = await getRow(actor.tenantId, id);
      const type = row.type as UserType;
      const foreign = Object.keys(patch).filter((k) => !SHARED_PATCH_FIELDS.has(k) && !TYPE_FIELDS[type].includes(k));
      if (foreign.length) {
        throw validationFailed(foreign.map((field) => ({ field, code: 'unknown_field', message: `not a field of a ${type} user` })));
      }
      assertValid(patch as JsonObject);
      const pinned = typeof ifMatch === 'number' ? ifMatch : undefined;
      if (pinned !== undefined && pinned !== row.version) throw preconditionFailed(row.version);

      const optimistic = planPatch(row, patch);
      if (optimistic.kind === 'noop') return toUserView(row);
      if (optimistic.kind === 'denied') return refuseDenied(actor, id, optimistic.denied);
      const applied = await db.transaction().execute(async (tx) => {
        const u = await repo.updateAtVersion(tx, actor.tenantId, id, row.version, optimistic.next);
        if (u) await recordUpdate(tx, actor, u, optimistic);
        return u;
      });
      if (applied) return toUserView(applied);
      if (pinned !== undefined) throw preconditionFailed((await getRow(actor.tenantId, id)).version);

      const outcome = await db.transaction().execute(async (tx) => {
        const locked = await repo.getForUpdate(tx, actor.tenantId, id);
        if (!locked) throw notFound('user', id);
        const plan = planPatch(locked, patch);
        if (plan.kind !== 'apply') return { plan, row: locked };
        const u = (await repo.updateAtVersion(tx, actor.tenantId, id, locked.version, plan.next))!;
        await recordUpdate(tx, actor, u, plan);
        return { plan, row: u };
      });
      if (outcome.plan.kind === 'denied') return refuseDenied(actor, id, outcome.plan.denied);
      return toUserView(outcome.row);
    },

    /** Records a write attempt on read-only fields (flagged), then refuses it with 400. */
    async refuseReadOnly(actor: Actor, id: string, fields: string[]): Promise<never> {
      await getRow(actor.tenantId, id);
      await recordAttempt(db, actor, {
        action: 'user.update_refused', outcome: 'flagged', targetType: 'user', targetId: id, userId: id, changedFields: fields,
      });
      throw validationFailed(fields.map((field) => ({ field, code: 'read_only', message: 'is set by the service and cannot be written' })));
    },
  };
}

export type UsersService = ReturnType<typeof createUsersService>;
