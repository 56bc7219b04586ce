// Frozen once released. ?q= is a trigram search over search_text, listed newest first. With the
// default statistics target PostgreSQL estimated a name matching 0.1 % of users anywhere between
// 100 and 10,000 rows from one ANALYZE to the next, and at the high end walked the primary key
// backwards past tens of thousands of rows instead of using the trigram index (3.7 ms vs 40–130 ms
// on 1,000,000 users). A larger sample makes the estimate, and so the plan, right and stable.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table users alter column search_text set statistics 10000`.execute(db);
}
