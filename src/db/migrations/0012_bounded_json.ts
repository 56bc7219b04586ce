// Frozen once released. Every jsonb column a request can grow gets a size bound in the database,
// behind the service's own checks (users/bounds.ts, the request schemas): a write path that forgets
// to ask, or a change request made before the bounds existed and approved after, is refused with
// check_violation (answered 422 request.value_too_large, naming the column) instead of storing it.
//
// Triggers with a WHEN clause rather than CHECK constraints, for two reasons: a row already over a
// bound (grown before this migration) can still be suspended, closed or erased, since an update is
// refused only when it changes the oversized column to an oversized value; and the WHEN clause is
// evaluated without entering PL/pgSQL, so an ordinary write pays one length test.
//
// The bounds are on jsonb's text form, which writes a space after every `:` and `,`, so each is at
// least twice the service's bound on the JSON the API accepts:
//   users.metadata          16 KiB in the API (reference/validate.ts)  → 32 KiB here
//   users.profile           bounded field by field by the schema (≈ 25 KiB at most) → 64 KiB
//   users.pending_changes   64 KiB, at most 10 requests (users/bounds.ts) → 128 KiB
//   tenants.policy          known fields and outcomes only (field-policy.ts) → 64 KiB
//   verifications.identity  a closed object of bounded strings (kyc.schemas.ts) → 64 KiB
// Columns written only from bounded values the service builds itself are not listed: events.data,
// audit_entries.details (append-only, ids, field names and the bounded policy) and
// idempotency_keys.response_headers (a Location header).
import { sql, type Kysely } from 'kysely';

const BOUNDS: Array<[table: string, column: string, bytes: number]> = [
  ['users', 'metadata', 32 * 1024],
  ['users', 'profile', 64 * 1024],
  ['users', 'pending_changes', 128 * 1024],
  ['tenants', 'policy', 64 * 1024],
  ['verifications', 'identity', 64 * 1024],
];

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create function kyclo_refuse_oversized() returns trigger language plpgsql as $$
    begin
      raise exception '%.% is larger than % bytes', tg_table_name, tg_argv[0], tg_argv[1]
        using errcode = 'check_violation', table = tg_table_name, column = tg_argv[0],
              constraint = tg_table_name || '_' || tg_argv[0] || '_bounded';
    end $$`.execute(db);
  for (const [table, column, bytes] of BOUNDS) {
    const t = sql.table(table);
    const c = sql.ref(`new.${column}`);
    const old = sql.ref(`old.${column}`);
    const size = sql.lit(bytes);
    const args = sql.raw(`'${column}', '${bytes}'`);
    await sql`create trigger ${sql.id(`${table}_${column}_bounded_insert`)} before insert on ${t} for each row
      when (octet_length(${c}::text) > ${size}) execute function kyclo_refuse_oversized(${args})`.execute(db);
    await sql`create trigger ${sql.id(`${table}_${column}_bounded_update`)} before update of ${sql.id(column)} on ${t} for each row
      when (${c} is distinct from ${old} and octet_length(${c}::text) > ${size}) execute function kyclo_refuse_oversized(${args})`.execute(db);
  }
}
