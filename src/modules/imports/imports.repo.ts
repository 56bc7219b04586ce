// Import jobs, their rejected rows, and the batch write: one statement per batch of rows inserts
// the users, their data keys, one `user.imported` audit entry each (queued for the sealer), the
// status history of those not active, and (when asked) one event each. A row whose external_ref is
// taken inserts nothing at all, as POST /v1/users; the statement answers which rows it created.
import { sql } from 'kysely';
import type { Db, ImportJobsTable, Tx } from '../../db/database.js';
import type { Selectable } from 'kysely';
import { prepared } from '../../db/prepared.js';
import type { CheckedRow } from './row-check.js';

export type ImportJobRow = Selectable<ImportJobsTable>;

/**
 * One row as the batch statement takes it (jsonb_to_recordset): the checked row's fields, with the
 * profile as stored (tenant-defined personal values sealed), plus what the write makes for it (ids,
 * data key, audit entry, event). source_id goes to the audit entry only; status_origin is `origin`.
 */
export type BatchRow = Omit<CheckedRow, 'source_id' | 'status_origin' | 'profile'> & {
  id: string;
  profile: object;
  key_id: string;
  wrapped_key: string;
  audit: object;
  status_change_id: string | null;
  origin: string;
  event: object | null;
};

const insertBatch = prepared<{ id: string; external_ref: string }>(
  'imports_insert_batch',
  `with input as (
     select * from jsonb_to_recordset($2::jsonb) as r(
       id text, external_ref text, type text, country text, profile jsonb, metadata jsonb, tags text[], status text,
       status_reason text, status_changed_at timestamptz, kyc_status text, kyc_level integer, kyc_verified_at timestamptz,
       kyc_sub_status text, created_at timestamptz, key_id text, wrapped_key text, audit jsonb, status_change_id text, origin text, event jsonb)
   ), u as (
     insert into users (tenant_id, id, external_ref, type, country, profile, metadata, tags, status, status_reason, status_changed_at,
                        kyc_status, kyc_level, kyc_verified_at, kyc_sub_status, pending_changes, version, created_at, updated_at)
     select $1, id, external_ref, type, country, profile, metadata, tags, status, status_reason, status_changed_at,
            kyc_status, kyc_level, kyc_verified_at, kyc_sub_status, '[]'::jsonb, 1, created_at, now()
       from input
     on conflict (tenant_id, external_ref) where external_ref is not null do nothing
     returning id, external_ref
   ), created as (
     select i.* from input i join u on u.id = i.id
   ), k as (
     insert into user_keys (tenant_id, user_id, key_id, wrapped_key, master_key_id)
     select $1, id, key_id, decode(wrapped_key, 'base64'), $3 from created
   ), a as (
     insert into audit_entries (tenant_id, id, occurred_at, actor_type, actor_key_id, actor_role, action, outcome, target_type,
                                target_id, user_id, changed_fields, request_id, ip, details, personal_enc, mac)
     select r.tenant_id, r.id, r.occurred_at, r.actor_type, r.actor_key_id, r.actor_role, r.action, r.outcome, r.target_type,
            r.target_id, r.user_id, r.changed_fields, r.request_id, r.ip, r.details, r.personal_enc, r.mac
       from created c, jsonb_populate_record(null::audit_entries, c.audit) r
     returning tenant_id, seq
   ), qa as (
     insert into audit_unsealed (tenant_id, seq) select tenant_id, seq from a
   ), s as (
     insert into status_changes (tenant_id, id, user_id, from_status, to_status, reason, note, origin, actor_key_id, actor_role, request_id, created_at)
     select $1, status_change_id, id, 'active', status, status_reason, null, origin, (audit->>'actor_key_id'), (audit->>'actor_role'), null, status_changed_at
       from created where status_change_id is not null
   ), e as (
     insert into events (tenant_id, id, type, user_id, actor_key_id, request_id, data, personal_enc)
     select r.tenant_id, r.id, r.type, r.user_id, r.actor_key_id, r.request_id, r.data, r.personal_enc
       from created c, jsonb_populate_record(null::events, c.event) r where c.event is not null
     returning tenant_id, seq
   ), qe as (
     insert into event_outbox (seq, tenant_id) select seq, tenant_id from e
   )
   select id, external_ref from u`,
);

/** Inserts the batch; answers the rows it created (the others' external_ref was taken). */
export async function insertUsers(db: Db, tenantId: string, masterKeyId: string, rows: BatchRow[]) {
  return insertBatch(db, [tenantId, JSON.stringify(rows), masterKeyId]);
}

// What a row's refusal says, by SQLSTATE (never PostgreSQL's own message: it quotes the value, which
// may be personal data, and import errors are kept in clear).
const REFUSALS: Record<string, string> = {
  '22001': 'a text is too long',
  '22003': 'a number is out of range',
  '22007': 'a date or time is not valid',
  '22008': 'a date or time is out of range (years 0001 to 9999)',
  '22021': 'a text holds bytes that are not UTF-8',
  '22P02': 'a value is not in a form the database reads (in a text: half of a surrogate pair)',
  '22P05': 'a text holds a character the database cannot store (NUL)',
  '23514': 'a value fails a check of the table',
};

/**
 * Why PostgreSQL refused a value of the statement (a data error, class 22, or a check violation,
 * 23514), or undefined when the failure is no row's fault (the connection, a lock, a bug).
 */
export function refusedValue(err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  if (typeof code !== 'string' || !(code.startsWith('22') || code === '23514')) return undefined;
  return `${REFUSALS[code] ?? 'a value is not valid'} (SQLSTATE ${code})`;
}

/** The ids of the users that already hold these external refs. */
export async function idsByExternalRef(db: Db, tenantId: string, refs: string[]): Promise<Map<string, string>> {
  if (refs.length === 0) return new Map();
  const rows = await db.selectFrom('users').select(['id', 'external_ref']).where('tenant_id', '=', tenantId).where('external_ref', 'in', refs).execute();
  return new Map(rows.map((r) => [r.external_ref!, r.id]));
}

/** Of these external_ref hashes (keyed and unkeyed forms alike), those an erased user of the tenant was known by (migration 0025's index). */
export async function erasedRefHashes(db: Db, tenantId: string, hashes: string[]): Promise<Set<string>> {
  if (hashes.length === 0) return new Set();
  const rows = await db.selectFrom('users').select('external_ref_hash').where('tenant_id', '=', tenantId)
    .where('external_ref_hash', 'in', hashes).where('external_ref_hash', 'is not', null).execute();
  return new Set(rows.map((r) => r.external_ref_hash!));
}

export async function insertJob(db: Db, job: {
  tenant_id: string; id: string; profile: string; format: string; dry_run: boolean; user_events: boolean;
  source_name: string | null; source_sha256: string; created_by_key_id: string | null;
}) {
  return db.insertInto('import_jobs').values({ ...job, state: 'running', moved_fields: '{}', leased_until: sql`now() + interval '60 seconds'` as never })
    .onConflict((oc) => oc.columns(['tenant_id', 'source_sha256', 'profile', 'dry_run']).where('state', '=', 'running').doNothing())
    .returningAll().executeTakeFirst();
}

export async function findUnfinished(db: Db, tenantId: string, sha256: string, profile: string, dryRun: boolean) {
  return db.selectFrom('import_jobs').selectAll().where('tenant_id', '=', tenantId).where('source_sha256', '=', sha256)
    .where('profile', '=', profile).where('dry_run', '=', dryRun).where('state', '=', 'running').executeTakeFirst();
}

/** Takes the job's lease if no live run holds it: undefined when another run is at work on it. */
export async function lease(db: Db, tenantId: string, id: string) {
  return db.updateTable('import_jobs').set({ leased_until: sql`now() + interval '60 seconds'` as never, updated_at: sql`now()` as never })
    .where('tenant_id', '=', tenantId).where('id', '=', id).where('state', '=', 'running')
    .where((eb) => eb.or([eb('leased_until', 'is', null), eb('leased_until', '<', sql<Date>`now()`)]))
    .returningAll().executeTakeFirst();
}

/** The tenant's jobs, newest first (ids are time-ordered), optionally in one state. */
export async function list(db: Db, tenantId: string, q: { state?: ImportJobRow['state']; beforeId?: string; limit: number }) {
  let query = db.selectFrom('import_jobs').selectAll().where('tenant_id', '=', tenantId);
  if (q.state) query = query.where('state', '=', q.state);
  if (q.beforeId) query = query.where('id', '<', q.beforeId);
  return query.orderBy('id', 'desc').limit(q.limit).execute();
}

export async function get(db: Db, tenantId: string, id: string) {
  return db.selectFrom('import_jobs').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
}

/**
 * After a batch: the rows it rejected, then the job's progress (renewing the lease), in one
 * transaction, so a resumed run never counts a line twice nor reports an error twice.
 */
export async function recordProgress(
  db: Db, tenantId: string, id: string,
  p: { resumeLine: number; read: number; imported: number; existing: number; rejected: number; moved: Record<string, string> },
  errors: Array<{ line: number; n: number; field: string; code: string; message: string }>,
) {
  await db.transaction().execute(async (tx) => {
    if (errors.length) {
      await tx.insertInto('import_errors').values(errors.map((e) => ({ tenant_id: tenantId, import_id: id, ...e })))
        .onConflict((oc) => oc.columns(['tenant_id', 'import_id', 'line', 'n']).doNothing()).execute();
    }
    await tx.updateTable('import_jobs').set({
      resume_line: p.resumeLine,
      rows_read: sql`rows_read + ${p.read}` as never,
      rows_imported: sql`rows_imported + ${p.imported}` as never,
      rows_existing: sql`rows_existing + ${p.existing}` as never,
      rows_rejected: sql`rows_rejected + ${p.rejected}` as never,
      moved_fields: sql`moved_fields || ${JSON.stringify(p.moved)}::jsonb` as never,
      leased_until: sql`now() + interval '60 seconds'` as never,
      updated_at: sql`now()` as never,
    }).where('tenant_id', '=', tenantId).where('id', '=', id).execute();
  });
}

/** ANALYZE users (see ANALYZE_AFTER_ROWS). A role that does not own the table is skipped by PostgreSQL with a warning, not an error. */
export async function refreshStatistics(db: Db): Promise<void> {
  await sql`analyze users`.execute(db);
}

export async function finish(db: Db | Tx, tenantId: string, id: string, state: 'completed' | 'failed', failure: string | null) {
  return db.updateTable('import_jobs').set({ state, failure, leased_until: null, completed_at: sql`now()` as never, updated_at: sql`now()` as never })
    .where('tenant_id', '=', tenantId).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
}

export async function errorsPage(db: Db, tenantId: string, id: string, after: { line: string; n: string } | null, limit: number) {
  let q = db.selectFrom('import_errors').select(['line', 'n', 'field', 'code', 'message']).where('tenant_id', '=', tenantId).where('import_id', '=', id);
  if (after) q = q.where((eb) => eb.or([eb('line', '>', after.line as never), eb.and([eb('line', '=', after.line as never), eb('n', '>', Number(after.n))])]));
  return q.orderBy('line').orderBy('n').limit(limit).execute();
}
