// Frozen once released. A GIN index takes new entries into a pending list (fastupdate) and files
// them into its tree in one batch when the list passes gin_pending_list_limit (4 MB by default);
// until then every search through the index reads the whole list. Every non-HOT write of a user
// (any PATCH: updated_at is indexed) adds the row's trigrams to users_search's list, ≈ 1.1 KB each,
// so at the default a rare-name search read up to ≈ 3,600 pending rows — measured at 1,000,000 users,
// 2,000 µs of PostgreSQL CPU with the list empty, 5,400 with 3,400 rows pending — and the write that
// overflowed the list filed them all before it answered (310–470 ms). At 512 KB the list's share of
// a search is bounded at ≈ 470 rows and the write that files them takes ≈ 70–120 ms, for about 5 %
// more PostgreSQL CPU a write (smaller batches share fewer tree descents). The same bound on every
// GIN index of users: tag and tenant-field searches read their lists the same way.
// (bench/README.md, "The search's pending list")
import { sql, type Kysely } from 'kysely';

const USERS_GIN_INDEXES = ['users_search', 'users_tags', 'users_custom_values', 'users_custom_tokens'] as const;

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const index of USERS_GIN_INDEXES) await sql`alter index ${sql.id(index)} set (gin_pending_list_limit = 512)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const index of USERS_GIN_INDEXES) await sql`alter index ${sql.id(index)} reset (gin_pending_list_limit)`.execute(db);
}
