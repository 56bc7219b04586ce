// Frozen once released. Migration 0008 raised the statistics target of search_text to 1,000 so that
// PostgreSQL's estimate of a name's matches, and so its plan for ?q=, would hold still. It did not
// (1,130 matches were estimated at 100, 1,001 and 2,017 on three samples), and the search no longer
// leaves that choice to the estimate: it walks the newest 1,000 users first and what it finds there
// picks the plan (users.repo.ts list()). The large histogram then only cost planning time: each
// LIKE is tried against every entry, about 1 ms per search statement on 1,000,000 users against
// 0.3 ms at the default, and a rare name's search plans two statements.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table users alter column search_text set statistics -1`.execute(db);
}
