// Frozen once released. ?q= is a trigram search over search_text, listed newest first. With the
// default statistics target PostgreSQL estimated a name matching 0.1 % of users anywhere between
// 100 and 10,000 rows from one ANALYZE to the next, and at the high end walked the primary key
// backwards past tens of thousands of rows instead of using the trigram index (3.7 ms vs 40–130 ms
// on 1,000,000 users). A larger sample makes the estimate, and so the plan, right and stable: at
// 1,000, 1,001 estimated for 1,130 actual; 10,000 was as right but made planning 6 ms (each LIKE
// is tried against every histogram entry), 1,000 plans in about 1 ms.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table users alter column search_text set statistics 1000`.execute(db);
}
