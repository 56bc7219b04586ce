// Frozen once released. Whoever may not read a user awaiting erasure gets that user's data key
// withheld (crypto/keyring.ts `keysOf`: webhook payloads, the events API): a NOT EXISTS probe of users
// by (tenant_id, id) for each key. For a tenant whose users came after the last ANALYZE — a platform
// creating its first thousands of users — the statistics say the tenant has no rows, every index
// leading with tenant_id looks alike, and PostgreSQL answered the probe by scanning the tenant's
// users through users_updated_at, the id a mere filter: 19,202 rows for each key, 235 ms for 8 keys,
// webhook delivery at ≈ 39 a second with PostgreSQL's core full (measured on the bench's database).
// This index holds only the users awaiting erasure, so any scan of it is short whatever the
// estimates say (0.12 ms for the same 8 keys), and it costs a write nothing until an erasure is asked.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index users_awaiting_erasure on users (tenant_id, id) where erasure_requested_at is not null`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index users_awaiting_erasure`.execute(db);
}
