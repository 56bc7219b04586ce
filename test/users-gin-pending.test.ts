// Every GIN index on users keeps its pending list to 512 KB (migration 0026): a search reads the
// whole list, and the write that overflows it files the list into the index before it answers.
// Checked in the catalogue (an index added later without the bound fails here) and by outcome: after
// ≈ 2 MB of new trigram entries, the search index holds at most 64 pending pages (at PostgreSQL's
// default of 4 MB they all stayed pending), and the users written are found.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createTenant, createTestContext, client, type Client, type TestContext } from './helpers/app.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;
const ROWS = 1_500;

beforeAll(async () => {
  ctx = await createTestContext();
  const t = await createTenant(ctx.db);
  tenantId = t.tenantId;
  api = client(ctx.app, t.ownerKey);
  await sql`create extension if not exists pgstattuple`.execute(ctx.db);
});
afterAll(() => ctx.close());

describe('the pending lists of the users indexes', () => {
  it('are bounded at 512 KB on every GIN index of users', async () => {
    const { rows } = await sql<{ name: string; options: string[] | null }>`
      select c.relname as name, c.reloptions as options
        from pg_index i join pg_class c on c.oid = i.indexrelid join pg_am a on a.oid = c.relam
       where i.indrelid = 'users'::regclass and a.amname = 'gin' order by c.relname`.execute(ctx.db);
    expect(rows.map((r) => r.name)).toEqual(['users_custom_tokens', 'users_custom_values', 'users_search', 'users_tags']);
    for (const r of rows) expect(r.options, r.name).toContain('gin_pending_list_limit=512');
  });

  it('leaves at most 512 KB of a burst of writes pending in the search index, and every user written is found', async () => {
    // Names of 64 hex characters: ≈ 60 trigrams, ≈ 1.4 KB of pending entries a row.
    await sql`
      insert into users (tenant_id, id, type, country, profile, metadata, tags, updated_at)
      select ${tenantId}, 'usr_' || lpad(i::text, 26, '0'), 'individual', 'FR',
             jsonb_build_object('first_name', md5(i::text) || md5((i + 1)::text), 'last_name', 'Pending'), '{}', '{}', now()
        from generate_series(1, ${ROWS}) as i`.execute(ctx.db);
    const { rows } = await sql<{ pending_pages: number }>`select pending_pages from pgstatginindex('users_search')`.execute(ctx.db);
    expect(rows[0]!.pending_pages).toBeLessThanOrEqual(64);
    // One user from the first batch filed into the tree, one from the last, each found by its name.
    for (const i of [1, ROWS]) {
      const name = (await sql<{ n: string }>`select md5(${String(i)}) || md5(${String(i + 1)}) as n`.execute(ctx.db)).rows[0]!.n;
      const res = await api.get(`/v1/users?q=${name.slice(10, 40)}`);
      expect(res.statusCode).toBe(200);
      expect(res.json().data.map((u: { id: string }) => u.id)).toEqual([`usr_${String(i).padStart(26, '0')}`]);
    }
  });
});
