// Frozen once released. The last `kyclo audit verify` result per tenant, for the console and for
// monitoring (GET /v1/audit/verification). Each row carries a MAC under the audit MAC key (derived
// from the master key), so a database superuser can neither forge an OK nor turn a BROKEN into one:
// the API reports whether the row is authentic. The proof itself stays `kyclo audit verify` against
// checkpoints kept outside the database; this row only says what the last run found.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table audit_verifications (
      tenant_id text primary key references tenants (id),
      verified_at timestamptz not null,
      ok boolean not null,
      sealed bigint not null,
      pending bigint not null,
      checkpoints integer not null,
      kept_checkpoints integer not null,
      reason text,
      broken_at text,
      entry_id text,
      mac text not null
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table audit_verifications`.execute(db);
}
