import { sql, type Selectable } from 'kysely';
import type { Db, PendingChange, Tx, UsersTable } from '../../db/database.js';
import type { ListUsersFilters } from './users.schemas.js';
import { notFound } from '../../http/errors.js';
import { prepared } from '../../db/prepared.js';

export type UserRow = Omit<Selectable<UsersTable>, 'search_text'>;

const COLUMNS = [
  'tenant_id', 'id', 'external_ref', 'type', 'country', 'status', 'status_reason', 'status_changed_at',
  'kyc_status', 'kyc_level', 'kyc_verified_at', 'profile', 'metadata', 'tags', 'pending_changes', 'version',
  'created_at', 'updated_at', 'external_ref_hash', 'legal_hold', 'legal_hold_reason', 'erasure_requested_at',
  'erasure_scheduled_for', 'erased_at',
] as const;

// The hottest reads, as named prepared statements (db/prepared.ts).
const COLUMN_LIST = COLUMNS.join(', ');
const selectOne = prepared<UserRow>('users_get', `select ${COLUMN_LIST} from users where tenant_id = $1 and id = $2`);
const firstPage = prepared<UserRow>('users_page', `select ${COLUMN_LIST} from users where tenant_id = $1 order by id desc limit $2`);
const nextPage = prepared<UserRow>('users_page_after', `select ${COLUMN_LIST} from users where tenant_id = $1 and id < $2 order by id desc limit $3`);

export async function get(db: Db | Tx, tenantId: string, id: string): Promise<UserRow | undefined> {
  return (await selectOne(db, [tenantId, id]))[0];
}

/** The user, or 404 user.not_found: what every route under /v1/users/{id} starts with. */
export async function getOrThrow(db: Db | Tx, tenantId: string, id: string): Promise<UserRow> {
  const row = await get(db, tenantId, id);
  if (!row) throw notFound('user', id);
  return row;
}

/** Locks the row for the rest of the transaction: the fallback when optimistic writes keep colliding. */
export async function getForUpdate(tx: Tx, tenantId: string, id: string): Promise<UserRow | undefined> {
  return tx.selectFrom('users').select(COLUMNS).where('tenant_id', '=', tenantId).where('id', '=', id).forUpdate().executeTakeFirst();
}

export async function findIdByExternalRef(db: Db | Tx, tenantId: string, externalRef: string) {
  const r = await db
    .selectFrom('users')
    .select('id')
    .where('tenant_id', '=', tenantId)
    .where('external_ref', '=', externalRef)
    .executeTakeFirst();
  return r?.id;
}

/** Inserts unless the external_ref is taken (then nothing is returned and the transaction stays usable). */
export async function insert(
  tx: Tx,
  row: { tenant_id: string; id: string; external_ref: string | null; type: string; country: string; profile: object; metadata: object; tags: string[] },
): Promise<UserRow | undefined> {
  return tx
    .insertInto('users')
    .values({ ...row, profile: JSON.stringify(row.profile), metadata: JSON.stringify(row.metadata), updated_at: sql`now()` })
    .onConflict((oc) => oc.columns(['tenant_id', 'external_ref']).where('external_ref', 'is not', null).doNothing())
    .returning(COLUMNS)
    .executeTakeFirst();
}

export interface UserChanges {
  profile?: object;
  metadata?: object;
  tags?: string[];
  kyc_status?: string;
  kyc_level?: number | null;
  kyc_verified_at?: Date;
  pending_changes?: PendingChange[];
}

/**
 * Applies `changes` only if the row is still at `version` (returns nothing otherwise), bumping the
 * version: every change to what a user response shows, pending changes included, is a new ETag.
 */
export async function updateAtVersion(tx: Tx, tenantId: string, id: string, version: number, changes: UserChanges): Promise<UserRow | undefined> {
  const { profile, metadata, pending_changes, ...rest } = changes;
  return tx
    .updateTable('users')
    .set({
      ...rest,
      ...(profile ? { profile: JSON.stringify(profile) } : {}),
      ...(metadata ? { metadata: JSON.stringify(metadata) } : {}),
      ...(pending_changes ? { pending_changes: JSON.stringify(pending_changes) } : {}),
      version: sql`version + 1`,
      updated_at: sql`now()`,
    })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .where('version', '=', version)
    .returning(COLUMNS)
    .executeTakeFirst();
}

/** Moves the status only from `from` (and at `version`, when pinned): racing transitions serialise here. */
export async function setStatus(
  tx: Tx,
  tenantId: string,
  id: string,
  move: { from: string; to: string; reason: string | null; version?: number },
): Promise<UserRow | undefined> {
  let q = tx
    .updateTable('users')
    .set({
      status: move.to,
      status_reason: move.reason,
      status_changed_at: sql`now()`,
      // Closing cancels every pending change request, so none is left on the record.
      ...(move.to === 'closed' ? { pending_changes: '[]' } : {}),
      version: sql`version + 1`,
      updated_at: sql`now()`,
    })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .where('status', '=', move.from);
  if (move.version !== undefined) q = q.where('version', '=', move.version);
  return q.returning(COLUMNS).executeTakeFirst();
}

const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/** Newest first, keyset on the time-ordered id: page 10,000 costs what page 1 costs. */
export async function list(db: Db, tenantId: string, f: ListUsersFilters & { beforeId: string | null; limit: number }) {
  const filtered = f.status?.length || f.kyc_status || f.type || f.tag || f.external_ref || f.created_from || f.created_to || f.updated_since || f.q;
  if (!filtered) return f.beforeId ? nextPage(db, [tenantId, f.beforeId, f.limit + 1]) : firstPage(db, [tenantId, f.limit + 1]);
  let q = db.selectFrom('users').select(COLUMNS).where('tenant_id', '=', tenantId);
  if (f.beforeId) q = q.where('id', '<', f.beforeId);
  if (f.status?.length) q = q.where('status', 'in', f.status);
  if (f.kyc_status) q = q.where('kyc_status', '=', f.kyc_status);
  if (f.type) q = q.where('type', '=', f.type);
  if (f.tag) q = q.where('tags', '@>', sql<string[]>`array[${f.tag}]::text[]`);
  if (f.external_ref) q = q.where('external_ref', '=', f.external_ref);
  if (f.created_from) q = q.where('created_at', '>=', new Date(f.created_from));
  if (f.created_to) q = q.where('created_at', '<', new Date(f.created_to));
  if (f.updated_since) q = q.where('updated_at', '>=', new Date(f.updated_since));
  if (f.q) q = q.where('search_text', 'like', `%${escapeLike(f.q.toLowerCase())}%`);
  return q.orderBy('id', 'desc').limit(f.limit + 1).execute();
}
