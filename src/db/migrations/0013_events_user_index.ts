// Frozen once released. A user's events are read (the GDPR export, a page at a time in seq order)
// and rewritten (erasure drops their personal parts) by tenant and user; with only (tenant_id, seq)
// and (tenant_id, type, seq) to go by, each of those walked the tenant's whole event log. Partial,
// like audit_entries_user: tenant-level events (no user) never enter it.
// A plain CREATE INDEX (the migrator runs each migration in a transaction, where CONCURRENTLY is
// refused): it blocks writes to events while it builds, so on a large existing log, create it
// CONCURRENTLY by hand under this name first; IF NOT EXISTS then makes this a no-op.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index if not exists events_user on events (tenant_id, user_id, seq) where user_id is not null`.execute(db);
}
