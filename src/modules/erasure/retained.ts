// Personal data under AML retention. From an erasure request until destruction a user's personal data
// "stays, encrypted and readable only by compliance roles" (product.md): OWNER, ADMIN and
// COMPLIANCE_OFFICER (the `users:read_retained` permission) read it as before; every other role reads
// such a user as destruction will leave it — the tombstone: id, type, country, status, KYC state,
// dates, the erasure block — and its sealed values (identity snapshots, event and change payloads,
// documents' numbers, tenant-defined personal values, relationship titles) do not open for it.
// The CLI acts for the operator (no role): it reads everything, as the roles that administer do.
import type { Db } from '../../db/database.js';
import type { Actor } from '../audit/actor.js';
import { roleAllows } from '../api-keys/roles.js';
import { retainedWithheld, type Keyring } from '../../crypto/keyring.js';
import type { ViewedRow } from '../users/users.repo.js';
import type { UserView } from '../users/users.schemas.js';
import { toUserView } from '../users/user-view.js';

/** Whether this caller reads the personal data of users awaiting erasure. */
export const readsRetained = (actor: Pick<Actor, 'role'>): boolean => actor.role === null || roleAllows(actor.role, 'users:read_retained');

/** The keyring this caller opens sealed values with: a user awaiting erasure's do not open without the permission. */
export const keyringFor = (actor: Pick<Actor, 'role'>, keyring: Keyring): Keyring => (readsRetained(actor) ? keyring : retainedWithheld(keyring));

/** An erasure was requested and destruction has not come yet (after it the row holds nothing personal). */
export const awaitsErasure = (row: Pick<ViewedRow, 'erasure_requested_at' | 'erased_at'>): boolean =>
  row.erasure_requested_at !== null && row.erased_at === null;

/**
 * The user as destruction will leave it (erasure.service.ts `destroy`): what a user awaiting erasure
 * shows a caller who may not read retained data. Its version and ETag are the user's own.
 */
export function withheldView(row: ViewedRow): UserView {
  return toUserView({
    ...row, external_ref: null, profile: {}, metadata: {}, tags: [], pending_changes: [], required_actions: [],
    risk: row.risk === null ? null : { ...(row.risk as object), reason: null },
  } as ViewedRow);
}

/**
 * Whether a selection leaves out users awaiting erasure for this caller: a search or a match on a
 * personal value (a name, an email, a tenant-defined value, the platform's reference, a tag) would
 * tell the value by finding them — and after destruction none of these finds them.
 */
export const hidesRetained = (actor: Pick<Actor, 'role'>, f: { q?: string; custom?: string; external_ref?: string; tag?: string }): boolean =>
  !readsRetained(actor) && (f.q !== undefined || f.custom !== undefined || f.external_ref !== undefined || f.tag !== undefined);

/** How this caller sees users: in full, or users awaiting erasure withheld. Costs nothing for the roles that read them. */
export function userViewFor(actor: Pick<Actor, 'role'>): (row: ViewedRow) => UserView {
  return readsRetained(actor) ? toUserView : (row) => (awaitsErasure(row) ? withheldView(row) : toUserView(row));
}

/** Whether this caller sees this user withheld (it awaits erasure and the caller may not read it). */
export const withheldFrom = (actor: Pick<Actor, 'role'>, row: Pick<ViewedRow, 'erasure_requested_at' | 'erased_at'>): boolean =>
  awaitsErasure(row) && !readsRetained(actor);

/** Of these users, those this caller sees withheld (none, without a query, for the roles that read them). */
export async function withheldAmong(db: Db, actor: Pick<Actor, 'role' | 'tenantId'>, userIds: string[]): Promise<Set<string>> {
  if (readsRetained(actor) || userIds.length === 0) return new Set();
  const rows = await db.selectFrom('users').select('id').where('tenant_id', '=', actor.tenantId).where('id', 'in', [...new Set(userIds)])
    .where('erasure_requested_at', 'is not', null).where('erased_at', 'is', null).execute();
  return new Set(rows.map((r) => r.id));
}
