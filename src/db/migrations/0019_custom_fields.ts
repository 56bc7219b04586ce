// Frozen once released. Tenant-defined fields live in users.profile (custom-fields/storage.ts): the
// clear values under `custom`, the search tokens of personal ones under `custom_index`. A search
// (GET /v1/users?custom=<name>:<value>) is a containment test on one of those two expressions;
// these indexes answer it without reading every user. jsonb_path_ops: containment is the only
// operator used, and its index is a fraction of the default's size. Users without custom values
// have neither key, and add nothing to either index.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index users_custom_values on users using gin ((profile -> 'custom') jsonb_path_ops)`.execute(db);
  await sql`create index users_custom_tokens on users using gin ((profile -> 'custom_index') jsonb_path_ops)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists users_custom_tokens`.execute(db);
  await sql`drop index if exists users_custom_values`.execute(db);
}
