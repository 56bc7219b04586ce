import { sql, type RawBuilder, type Selectable } from 'kysely';
import type { Db, PendingChange, RequiredAction, Tx, UsersTable } from '../../db/database.js';
import type { ListUsersFilters } from './users.schemas.js';
import { notFound } from '../../http/errors.js';
import { prepared, runCompiled } from '../../db/prepared.js';
import { isoTimestampTypes } from '../../db/iso-timestamps.js';
import { recordCtes } from '../audit/write-path.js';
import type { FieldOverrides } from './field-policy.js';
import type { CustomFieldDefinitions } from '../custom-fields/definitions.js';

export type UserRow = Omit<Selectable<UsersTable>, 'search_text'>;

type Stamp = 'status_changed_at' | 'kyc_verified_at' | 'created_at' | 'updated_at' | 'erasure_requested_at' | 'erasure_scheduled_for' | 'erased_at';
/** A row read only to be answered: its timestamps may already be ISO strings (db/iso-timestamps.ts). */
export type UserViewRow = Omit<UserRow, Stamp> & { [K in Stamp]: UserRow[K] | string };
const asView = { types: isoTimestampTypes };

/** Every column of a user row but search_text (the bench's baseline reads the same). */
export const COLUMNS = [
  'tenant_id', 'id', 'external_ref', 'type', 'country', 'status', 'status_reason', 'status_changed_at',
  'kyc_status', 'kyc_level', 'kyc_verified_at', 'profile', 'metadata', 'tags', 'pending_changes', 'version',
  'created_at', 'updated_at', 'external_ref_hash', 'legal_hold', 'legal_hold_reason', 'erasure_requested_at',
  'erasure_scheduled_for', 'erased_at', 'risk', 'kyc_sub_status', 'required_actions',
] as const;

/**
 * What a read that only becomes a user object (user-view.ts) needs: every column but the tenant,
 * the reference's hash (a bytea, parsed into a Buffer per row) and the legal hold's reason. Pages
 * and exports read thousands of rows; with the export's prefetch, 67,000 → 70,000 users/s in process.
 */
const NOT_VIEWED = new Set<string>(['tenant_id', 'external_ref_hash', 'legal_hold_reason']);
export const VIEW_COLUMN_LIST = COLUMNS.filter((c) => !NOT_VIEWED.has(c)).join(', ');
/** A row read only to be answered as a user object. */
export type ViewedRow = Omit<UserViewRow, 'tenant_id' | 'external_ref_hash' | 'legal_hold_reason'>;

// The hottest reads, as named prepared statements (db/prepared.ts). Those whose rows only become
// responses read timestamps as ISO strings.
const COLUMN_LIST = COLUMNS.join(', ');
const selectOne = prepared<UserRow>('users_get', `select ${COLUMN_LIST} from users where tenant_id = $1 and id = $2`);
const selectView = prepared<ViewedRow>('users_get_view', `select ${VIEW_COLUMN_LIST} from users where tenant_id = $1 and id = $2`, asView);
const firstPage = prepared<ViewedRow>('users_page', `select ${VIEW_COLUMN_LIST} from users where tenant_id = $1 order by id desc limit $2`, asView);
const nextPage = prepared<ViewedRow>('users_page_after', `select ${VIEW_COLUMN_LIST} from users where tenant_id = $1 and id < $2 order by id desc limit $3`, asView);
/**
 * The page sizes clients commonly ask for, each with its limit written into the statement. PostgreSQL
 * plans `limit $n` anew on every execution: a generic plan must assume a tenth of the tenant's rows,
 * so it never looks as cheap as the custom plan for the limit given, and a page paid 107 µs of
 * planning at 1,000,000 users (bench/README.md, "Planning a page"). With the limit a constant the plan
 * is generic from the sixth execution on. Each statement holds ≈ 32 KB of every connection's memory in
 * PostgreSQL, so only these sizes get one; any other limit runs the statements above.
 */
const PAGE_SIZES = [10, 20, 25, 50, 100, 200] as const;
const sizedPages = new Map(PAGE_SIZES.map((n) => [n as number, {
  first: prepared<ViewedRow>(`users_page_${n}`, `select ${VIEW_COLUMN_LIST} from users where tenant_id = $1 order by id desc limit ${n + 1}`, asView),
  after: prepared<ViewedRow>(`users_page_after_${n}`, `select ${VIEW_COLUMN_LIST} from users where tenant_id = $1 and id < $2 order by id desc limit ${n + 1}`, asView),
}]));

/** An unfiltered page, newest first, one row more than `limit` (there is a next page when it comes). */
function unfilteredPage(db: Db, tenantId: string, beforeId: string | null, limit: number): Promise<ViewedRow[]> {
  const sized = sizedPages.get(limit);
  if (sized) return beforeId ? sized.after(db, [tenantId, beforeId]) : sized.first(db, [tenantId]);
  return beforeId ? nextPage(db, [tenantId, beforeId, limit + 1]) : firstPage(db, [tenantId, limit + 1]);
}

// What a patch needs, in one round trip: the row, the tenant's field-policy overrides and custom
// field definitions, the data key.
const forPatch = prepared<UserViewRow & {
  field_overrides: FieldOverrides | null; custom_definitions: CustomFieldDefinitions | null; key_id: string | null; wrapped_key: Buffer | null;
}>(
  'users_get_for_patch',
  `select ${COLUMNS.map((c) => `u.${c}`).join(', ')}, t.policy -> 'fields' as field_overrides, t.policy -> 'custom_fields' as custom_definitions,
          k.key_id, k.wrapped_key
     from users u join tenants t on t.id = u.tenant_id
     left join user_keys k on k.tenant_id = u.tenant_id and k.user_id = u.id and k.destroyed_at is null
    where u.tenant_id = $1 and u.id = $2`,
  asView,
);

export async function getForPatch(db: Db, tenantId: string, id: string) {
  return (await forPatch(db, [tenantId, id]))[0];
}

// Patch and record in one statement (no BEGIN/COMMIT): the update only at the version read, the
// audit entry and events only if it matched.
const patchRecorded = prepared<UserViewRow>(
  'users_patch_recorded',
  `with u as (
     update users set profile = $3::jsonb, metadata = $4::jsonb, tags = $5::text[], kyc_status = $6,
                      version = version + 1, updated_at = now()
      where tenant_id = $1 and id = $2 and version = $7
     returning ${COLUMN_LIST}
   ), ${recordCtes('u', 8, 9)}
   select * from u`,
  asView,
);

export async function updateRecorded(
  db: Db, row: UserViewRow, next: { profile: object; metadata: object; tags: string[] }, kycStatus: string, record: [string, string],
): Promise<UserViewRow | undefined> {
  const values = [row.tenant_id, row.id, JSON.stringify(next.profile), JSON.stringify(next.metadata), next.tags, kycStatus, row.version, ...record];
  return (await patchRecorded(db, values))[0];
}

// Create and record in one statement: the user, its data key, the audit entry and the event. Every
// column the API shows is written explicitly, so the row built beforehand (for the sealed
// user.created snapshot) is the row stored.
const insertRecorded = prepared<UserViewRow>(
  'users_insert_recorded',
  `with u as (
     insert into users (tenant_id, id, external_ref, type, country, profile, metadata, tags, status, status_reason, kyc_status,
                        kyc_level, kyc_verified_at, pending_changes, version, created_at, updated_at, status_changed_at)
     values ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::text[], $15, $16, 'unverified', null, null, '[]'::jsonb, 1, $9, $9, $9)
     on conflict (tenant_id, external_ref) where external_ref is not null do nothing
     returning ${COLUMN_LIST}
   ), k as (
     insert into user_keys (tenant_id, user_id, key_id, wrapped_key, master_key_id) select u.tenant_id, u.id, $10, $11, $12 from u
   ), ${recordCtes('u', 13, 14)}
   select * from u`,
  asView,
);

/** The row a create stores, before it is stored (see insertRecorded); active unless an initial status is given. */
export function newRow(
  r: { tenant_id: string; id: string; external_ref: string | null; type: string; country: string; profile: object; metadata: object; tags: string[] },
  at: Date,
  initial: { status: string; status_reason: string | null } = { status: 'active', status_reason: null },
): UserRow {
  // Every column named, no `...r`: V8 (Node 20) makes each property written after a spread a slow
  // map transition, ≈ 2 µs apiece — this literal cost 43 µs a create that way, 0.3 µs as it is now.
  // Typed as a UserRow (no cast of the whole): a column added to the table and not named here fails to compile.
  return {
    tenant_id: r.tenant_id, id: r.id, external_ref: r.external_ref, type: r.type, country: r.country,
    profile: r.profile as UserRow['profile'], metadata: r.metadata as UserRow['metadata'],
    tags: r.tags, status: initial.status, status_reason: initial.status_reason, status_changed_at: at, kyc_status: 'unverified', kyc_level: null, kyc_verified_at: null,
    pending_changes: [], version: 1, created_at: at, updated_at: at, external_ref_hash: null, legal_hold: false, legal_hold_reason: null,
    erasure_requested_at: null, erasure_scheduled_for: null, erased_at: null, risk: null, kyc_sub_status: null, required_actions: [],
  };
}

/** Inserts `row` (from newRow) with its data key and record; nothing when the external_ref is taken. */
export async function insertWithRecord(
  db: Db | Tx, row: UserRow, key: { keyId: string; wrapped: Buffer; masterKeyId: string }, record: [string, string],
): Promise<UserViewRow | undefined> {
  const values = [
    row.tenant_id, row.id, row.external_ref, row.type, row.country, JSON.stringify(row.profile), JSON.stringify(row.metadata), row.tags,
    row.created_at, key.keyId, key.wrapped, key.masterKeyId, ...record, row.status, row.status_reason,
  ];
  return (await insertRecorded(db, values))[0];
}

export async function get(db: Db | Tx, tenantId: string, id: string): Promise<UserRow | undefined> {
  return (await selectOne(db, [tenantId, id]))[0];
}

function found<R>(row: R | undefined, id: string): R {
  if (!row) throw notFound('user', id);
  return row;
}

/** The user as GET /v1/users/{id} answers it, or 404 user.not_found. */
export async function getViewOrThrow(db: Db, tenantId: string, id: string): Promise<ViewedRow> {
  return found((await selectView(db, [tenantId, id]))[0], id);
}

/** The user, or 404 user.not_found: what every route under /v1/users/{id} starts with. */
export async function getOrThrow(db: Db | Tx, tenantId: string, id: string): Promise<UserRow> {
  return found(await get(db, tenantId, id), id);
}

/** Locks the row for the rest of the transaction: the fallback when optimistic writes keep colliding. */
export async function getForUpdate(tx: Tx, tenantId: string, id: string): Promise<UserRow | undefined> {
  return tx.selectFrom('users').select(COLUMNS).where('tenant_id', '=', tenantId).where('id', '=', id).forUpdate().executeTakeFirst();
}

/**
 * The row, share-locked until the transaction ends: a status change of this user (a close) that is
 * committing is waited for and its result read; one that starts later waits for this transaction.
 */
export async function getForShare(tx: Tx, tenantId: string, id: string): Promise<UserRow | undefined> {
  return tx.selectFrom('users').select(COLUMNS).where('tenant_id', '=', tenantId).where('id', '=', id).forShare().executeTakeFirst();
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
  required_actions?: RequiredAction[];
}

/**
 * Applies `changes` only if the row is still at `version` (returns nothing otherwise), bumping the
 * version: every change to what a user response shows, pending changes included, is a new ETag.
 */
export async function updateAtVersion(tx: Tx, tenantId: string, id: string, version: number, changes: UserChanges): Promise<UserRow | undefined> {
  const { profile, metadata, pending_changes, required_actions, ...rest } = changes;
  return tx
    .updateTable('users')
    .set({
      ...rest,
      ...(profile ? { profile: JSON.stringify(profile) } : {}),
      ...(metadata ? { metadata: JSON.stringify(metadata) } : {}),
      ...(pending_changes ? { pending_changes: JSON.stringify(pending_changes) } : {}),
      ...(required_actions ? { required_actions: JSON.stringify(required_actions) } : {}),
      version: sql`version + 1`,
      updated_at: sql`now()`,
    })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .where('version', '=', version)
    .returning(COLUMNS)
    .executeTakeFirst();
}

/**
 * Moves the status only from `from` (and at `version`, when pinned): racing transitions serialise here.
 * `since` is the status_changed_at the caller read (to the millisecond, as it reads it): a move decided
 * on a status that has since left and come back (suspended → active → suspended again, a newer freeze)
 * moves nothing, where `status = from` alone would lift the newer freeze with the older decision.
 */
export async function setStatus(
  tx: Tx,
  tenantId: string,
  id: string,
  move: { from: string; to: string; reason: string | null; version?: number; since?: Date },
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
  if (move.since !== undefined) q = q.where(sql<Date>`date_trunc('milliseconds', status_changed_at)`, '=', move.since);
  return q.returning(COLUMNS).executeTakeFirst();
}

const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);
/** The LIKE pattern of a search: the text, lowercased, anywhere in search_text. */
const containing = (q: string) => `%${escapeLike(q.toLowerCase())}%`;

// How many of the newest users a search walks before it asks the index instead (see list()).
export const SEARCH_WALK_ROWS = 1_000;
// Matches that walk must find for the search to be left to the planner (see list()).
const SEARCH_COMMON_MATCHES = 3;

/** A tenant-defined field filter, resolved by the service: a clear value to contain, or a personal value's search token. */
export interface CustomFilter {
  /** Leave out users awaiting erasure (a search by personal values, for a caller who may not read them: erasure/retained.ts). */
  retainedHidden?: boolean;
  customMatch?: Record<string, unknown>;
  customToken?: string;
}

/**
 * `risk`: the ratings asked for, `unrated` being a user never assessed. Both sides are written on
 * the one expression, risk ->> 'rating' (set whenever risk is: the Risk schema requires it), so one
 * expression index on (tenant_id, (risk ->> 'rating'), id) can serve every value.
 */
function riskCondition(values: readonly string[]): RawBuilder<unknown> {
  const ratings = values.filter((v) => v !== 'unrated');
  const rated = ratings.length ? sql`(risk ->> 'rating') in (${sql.join(ratings)})` : null;
  const unrated = values.includes('unrated') ? sql`(risk ->> 'rating') is null` : null;
  if (rated && unrated) return sql`(${rated} or ${unrated})`;
  return (rated ?? unrated)!;
}

/** The filters a selection of users takes: the list's, and the export's (all but the search). */
export type UserFilters = Pick<ListUsersFilters, 'status' | 'kyc_status' | 'risk' | 'type' | 'tag' | 'external_ref' | 'created_from' | 'created_to' | 'updated_since' | 'q'> & CustomFilter;

/** The filters as SQL conditions (none for the unfiltered list): the list's and the export's. */
export function filterConditions(f: UserFilters): RawBuilder<unknown>[] {
  const out: RawBuilder<unknown>[] = [];
  if (f.status?.length) out.push(sql`status in (${sql.join(f.status)})`);
  if (f.kyc_status) out.push(sql`kyc_status = ${f.kyc_status}`);
  if (f.risk?.length) out.push(riskCondition(f.risk));
  if (f.type) out.push(sql`type = ${f.type}`);
  if (f.tag) out.push(sql`tags @> array[${f.tag}]::text[]`);
  if (f.external_ref) out.push(sql`external_ref = ${f.external_ref}`);
  if (f.created_from) out.push(sql`created_at >= ${new Date(f.created_from)}`);
  if (f.created_to) out.push(sql`created_at < ${new Date(f.created_to)}`);
  if (f.updated_since) out.push(sql`updated_at >= ${new Date(f.updated_since)}`);
  if (f.q) out.push(sql`search_text like ${containing(f.q)}`);
  // The expressions of migration 0019's indexes, exactly.
  if (f.customMatch) out.push(sql`(profile -> 'custom') @> ${JSON.stringify(f.customMatch)}::jsonb`);
  if (f.customToken) out.push(sql`(profile -> 'custom_index') @> ${JSON.stringify([f.customToken])}::jsonb`);
  if (f.retainedHidden) out.push(sql`erasure_requested_at is null`);
  return out;
}

/**
 * Newest first, keyset on the time-ordered id: page 10,000 costs what page 1 costs.
 *
 * A search (`q`, `tag`: GIN indexes) is where PostgreSQL's plan can go badly wrong: for "the newest
 * 50 matches" it weighs walking the primary key backwards against collecting every match through
 * the index and sorting, on an estimate of how many match, and that estimate moves with every
 * ANALYZE (a name matching 1,130 of 1,000,000 users was estimated at 100, 1,001 and 2,017 on three
 * samples; at 2,017 it walked 45,000 rows, 50 ms, where collecting takes 6 ms). So a search first
 * walks the newest SEARCH_WALK_ROWS users below the cursor (≈ 1 ms) and lets what it found decide:
 * - the page is full: that is the answer (a name carried by 5 % of users or more);
 * - fewer than SEARCH_COMMON_MATCHES matches: the name is rare (under ≈ 0.3 %), so every match is
 *   collected through the index in a materialized CTE, which the planner cannot turn back into the
 *   walk (≈ 5 µs a match), and the page read by primary key;
 * - in between: common enough that either plan costs tens of milliseconds at most, so the planner
 *   chooses.
 * Whichever path runs, the answer is exactly the newest matches below the cursor.
 */
export async function list(db: Db, tenantId: string, f: ListUsersFilters & CustomFilter & { beforeId: string | null; limit: number }): Promise<ViewedRow[]> {
  const filters = filterConditions(f);
  if (!filters.length) return unfilteredPage(db, tenantId, f.beforeId, f.limit);
  const scope = [sql`tenant_id = ${tenantId}`, ...(f.beforeId ? [sql`id < ${f.beforeId}`] : [])];
  const inScope = sql.join(scope, sql` and `);
  const where = sql.join([...scope, ...filters], sql` and `);
  const columns = sql.raw(VIEW_COLUMN_LIST);
  const n = f.limit + 1;
  const rows = (query: RawBuilder<unknown>, name?: string) => runCompiled<ViewedRow>(db, query.compile(db), { ...asView, name });
  const planned = sql`select ${columns} from users where ${where} order by id desc limit ${n}`;
  if (!f.q && !f.tag) return rows(planned);
  // The walk's plan is the same whatever is searched (the newest users by primary key, then the
  // filter), yet unnamed it was planned anew for every search: 0.33 ms of PostgreSQL's time at
  // 1,000,000 users, the LIKE's selectivity estimated for a plan it cannot change. A search by `q` or
  // `tag` alone, the common case, runs it named (generic from the sixth run: 5 µs of planning). With
  // other filters it stays unnamed: a name per combination would let a client fill every connection
  // with prepared statements.
  const after = f.beforeId ? '_after' : '';
  const walkName = filters.length === 1 ? `users_walk_${f.q ? 'q' : 'tag'}${after}` : undefined;
  const walked = await rows(sql`
    select ${columns} from (select * from users where ${inScope} order by id desc limit ${sql.lit(SEARCH_WALK_ROWS)}) newest
     where ${sql.join(filters, sql` and `)} order by id desc limit ${n}`, walkName);
  if (walked.length === n) return walked;
  if (walked.length >= SEARCH_COMMON_MATCHES) return rows(planned);
  // Only the ids are collected and sorted; the page's rows are read after, by primary key.
  // By name alone, the commonest rare search is planned once per connection: the plan is already
  // chosen (every match through the trigram index), but PostgreSQL planned it for every search, 0.5 ms
  // at 1,000,000 users, mostly estimating how many the pattern matches. The pattern behind a
  // sub-select is estimated like any parameter, so the plan for a name is the generic plan and the
  // plan cache keeps it (from the sixth run). The limit is written in for the same reason as a page's
  // (PAGE_SIZES): only those sizes are named.
  const byName = filters.length === 1 && f.q ? f.q : null;
  const named = byName !== null && sizedPages.has(f.limit);
  const matching = byName !== null ? sql`${inScope} and search_text like (select ${containing(byName)}::text)` : where;
  return rows(sql`
    with matches as materialized (select id from users where ${matching})
    select ${columns} from users
     where tenant_id = ${tenantId} and id in (select id from matches order by id desc limit ${named ? sql.lit(n) : n}) order by id desc`,
  named ? `users_search_rare_${f.limit}${after}` : undefined);
}
