// Frozen once released. An erased user keeps only a hash of its external_ref (erasure.service.ts
// `externalRefHash`); an import looks those hashes up for every batch, so that a file read again
// after an erasure does not bring the erased person back as a new user (imports.service.ts). Only
// erased users have the hash: the index holds them alone.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index users_erased_refs on users (tenant_id, external_ref_hash) where external_ref_hash is not null`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index users_erased_refs`.execute(db);
}
