// Frozen once released. The dispatcher's claim takes each tenant's due deliveries within that
// tenant's room (workers/dispatcher.ts `claimDue`): a skip scan over the tenants with pending
// deliveries, then each tenant's oldest due ones, both on (tenant_id, next_attempt_at). The index on
// next_attempt_at alone stays: it answers whether anything is due at all (idle rounds stop there),
// and dispatchers of the release before still claim with it during a rolling deploy.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index webhook_deliveries_pending on webhook_deliveries (tenant_id, next_attempt_at) where status = 'pending'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index webhook_deliveries_pending`.execute(db);
}
