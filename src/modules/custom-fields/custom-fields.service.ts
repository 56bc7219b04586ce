// Tenant-defined fields at the edges of the users module: the tenant's definitions read from its
// policy, a body's values checked, a stored row opened for the planner and sealed again for the
// write, and the personal values of user views opened just before a response is serialised.
import type { FastifyInstance } from 'fastify';
import type { Db, Tx } from '../../db/database.js';
import type { DataKey, Keyring } from '../../crypto/keyring.js';
import { keyringFor } from '../erasure/retained.js';
import { AppError, validationFailed } from '../../http/errors.js';
import { mergePatch, type JsonObject } from '../users/merge-patch.js';
import { normaliseDefinitions, type CustomFieldDefinitions } from './definitions.js';
import { checkCustomInput, customTooLarge, searchValue } from './values.js';
import { CUSTOM_FIELD, openCustom, plainRow, SEALED, searchToken, storeProfile } from './storage.js';

export async function loadDefinitions(db: Db | Tx, tenantId: string): Promise<CustomFieldDefinitions> {
  const row = await db.selectFrom('tenants').select('policy').where('id', '=', tenantId).executeTakeFirst();
  return normaliseDefinitions((row?.policy as { custom_fields?: CustomFieldDefinitions } | undefined)?.custom_fields);
}

const tooLarge = (e: { field: string; code: string; message: string }) =>
  new AppError(422, 'user.value_too_large', `The change would exceed a size bound: ${e.field}.`, { errors: [e] });

/**
 * A row about to be written, its plain custom values against the bound on all of them (422): an
 * approval applies values that were each checked alone when held, while others were applied meanwhile.
 */
export function assertCustomSize(profile: unknown): void {
  const big = customTooLarge((profile as JsonObject | null)?.custom ?? {});
  if (big) throw tooLarge(big);
}

/** A create's `custom`, checked (400 naming custom.<name>) and without nulls: the plain values to store. */
export function checkedCreateValues(defs: CustomFieldDefinitions, input: JsonObject): JsonObject {
  const errors = checkCustomInput(defs, {}, input);
  if (errors.length) throw validationFailed(errors);
  const plain = mergePatch({}, input) as JsonObject;
  const big = customTooLarge(plain);
  if (big) throw tooLarge(big);
  return plain;
}

/**
 * The row as the planner must see it when a patch names `custom`: plain values, the patch's
 * checked against the definitions (400) and against the bound on all of them (422).
 * A patch that does not name `custom` leaves the stored form as it is, unopened.
 */
export async function plainForPatch<R extends { id: string; tenant_id: string; profile: unknown }>(
  keyring: Keyring, defs: CustomFieldDefinitions, row: R, patch: { custom?: JsonObject | null }, executor?: Db | Tx,
): Promise<R> {
  if (patch.custom === undefined) return row;
  const current = await openCustom(keyring, row.tenant_id, row.id, row.profile, executor);
  if (patch.custom !== null) {
    const errors = checkCustomInput(defs, current, patch.custom);
    if (errors.length) throw validationFailed(errors);
    const big = customTooLarge(mergePatch(current, patch.custom));
    if (big) throw tooLarge(big);
  }
  return plainRow(row, current);
}

/** Columns about to be written, their profile back in stored form (personal values sealed). */
export function sealColumns<C extends { profile: JsonObject }>(
  keyring: Keyring, key: DataKey, defs: CustomFieldDefinitions, tenantId: string, userId: string, columns: C,
): C {
  return { ...columns, profile: storeProfile(keyring, key, tenantId, userId, columns.profile, defs) };
}

/** `?custom=<name>:<value>` as a list filter: containment on clear values, a search token for personal ones. */
export async function customFilter(db: Db, keyring: Keyring, tenantId: string, raw: string) {
  const at = raw.indexOf(':');
  const name = raw.slice(0, at);
  const defs = await loadDefinitions(db, tenantId);
  const parsed = searchValue(defs, name, raw.slice(at + 1));
  if ('error' in parsed) throw validationFailed([parsed.error]);
  return defs[name]!.personal
    ? { customToken: searchToken(keyring, tenantId, name, parsed.value) }
    : { customMatch: { [name]: parsed.value } };
}

type View = { id?: unknown; custom?: JsonObject & { [SEALED]?: string } };
const sealedIn = (v: unknown): v is View & { id: string } =>
  typeof v === 'object' && v !== null && typeof (v as View).custom?.[SEALED] === 'string' && typeof (v as View).id === 'string';

/**
 * Every route that answers a user (or a page of users) answers its personal custom values opened,
 * whichever module built the view: the view carries the envelope, this opens all of a response's
 * at once (one key lookup) just before serialisation. Nothing to open costs a property check.
 */
export function registerCustomFieldViews(app: FastifyInstance, keyring: Keyring): void {
  // A callback hook: the responses with nothing to open (nearly all) pay no promise.
  app.addHook('preSerialization', (req, _reply, payload: unknown, done) => {
    const views = typeof payload === 'object' && payload !== null && req.actor ? sealedViews(payload) : [];
    if (views.length === 0) return done(null, payload);
    openCustomViews(keyringFor(req.actor, keyring), req.actor.tenantId, views).then(() => done(null, payload), (err: Error) => done(err));
  });
}

/**
 * Opens the personal custom values of user views in place, all with one key lookup: the views a
 * response answers (above) and the lines of the warehouse export alike.
 */
export async function openCustomViews(keyring: Keyring, tenantId: string, views: readonly unknown[]): Promise<void> {
  const sealed = views.filter(sealedIn);
  if (sealed.length === 0) return;
  const opened = await keyring.openMany(tenantId, sealed.map((v) => ({ userId: v.id, field: CUSTOM_FIELD, envelope: v.custom![SEALED]! })));
  sealed.forEach((v, i) => {
    const o = opened[i];
    if (typeof o === 'object' && o !== null) Object.assign(v.custom!, o);
  });
}

/** The user views of a response: the response itself, or the items of a page. */
function sealedViews(payload: object): Array<View & { id: string }> {
  if (sealedIn(payload)) return [payload];
  const data = (payload as { data?: unknown }).data;
  return Array.isArray(data) ? data.filter(sealedIn) : [];
}

/**
 * Approving a held change: the row as the change request saw it (plain values, when it holds a
 * custom field) and the function that turns the approved columns back into stored form.
 */
export async function plainForApproval<R extends { id: string; tenant_id: string; profile: unknown }>(keyring: Keyring, tx: Tx, user: R, fields: string[]) {
  if (!fields.some((f) => f.startsWith('custom.'))) return { row: user, seal: async <C extends { profile: JsonObject }>(c: C) => c };
  const row = plainRow(user, await openCustom(keyring, user.tenant_id, user.id, user.profile, tx));
  const seal = async <C extends { profile: JsonObject }>(c: C) =>
    sealColumns(keyring, await keyring.dataKeyFor(tx, user.tenant_id, user.id), await loadDefinitions(tx, user.tenant_id), user.tenant_id, user.id, c);
  return { row, seal };
}
