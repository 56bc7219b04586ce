// The withheld key lookup (crypto/keyring.ts keyRows: webhook payloads, the events API) probes
// users for an erasure request by key. For a tenant PostgreSQL's statistics do not know yet — its
// users all written after the last ANALYZE, as when a platform creates its first thousands — the probe
// scanned every user of the tenant once per key (the bench: 235 ms for 8 keys among 19,202 users).
// Here: a tenant of 3,000 users written after ANALYZE, autovacuum off for this database's users so
// the statistics stay stale; the lookup of 8 keys must read a handful of pages, and still withhold
// exactly the users awaiting erasure.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createTenant, createTestContext, type TestContext } from './helpers/app.js';
import { KEY_ROWS_WITHHELD_SQL, keyRows } from '../src/crypto/keyring.js';
import { poolOf } from '../src/db/database.js';

let ctx: TestContext;
let known: string;
let fresh: string;
const FRESH_USERS = 3_000;
const idOf = (prefix: string, i: number) => `usr_${prefix}${String(i).padStart(24, '0')}`;

async function addUsers(tenantId: string, prefix: string, n: number): Promise<void> {
  await sql`
    insert into users (tenant_id, id, type, country, profile, metadata, tags, updated_at)
    select ${tenantId}, 'usr_' || ${prefix} || lpad(i::text, 24, '0'), 'individual', 'FR',
           jsonb_build_object('first_name', 'Key', 'last_name', 'Holder' || i), '{}', '{}', now()
      from generate_series(1, ${n}) as i`.execute(ctx.db);
  await sql`
    insert into user_keys (tenant_id, user_id, key_id, wrapped_key, master_key_id)
    select ${tenantId}, 'usr_' || ${prefix} || lpad(i::text, 24, '0'), 'dk_' || i, '\\x00', 'mk_test'
      from generate_series(1, ${n}) as i`.execute(ctx.db);
}

beforeAll(async () => {
  ctx = await createTestContext();
  known = (await createTenant(ctx.db)).tenantId;
  fresh = (await createTenant(ctx.db)).tenantId;
  await sql`alter table users set (autovacuum_enabled = false)`.execute(ctx.db);
  await addUsers(known, 'KN', 500);
  await sql`analyze users`.execute(ctx.db);
  await addUsers(fresh, 'FR', FRESH_USERS);
});
afterAll(() => ctx.close());

describe('the withheld key lookup on a tenant the statistics do not know', () => {
  const ids = Array.from({ length: 8 }, (_, i) => idOf('FR', FRESH_USERS - i));

  type Plan = { 'Actual Rows': number; 'Shared Hit Blocks': number; 'Shared Read Blocks': number };
  const pagesRead = (plan: Plan) => plan['Shared Hit Blocks'] + plan['Shared Read Blocks'];

  it('reads a handful of pages, not the tenant', async () => {
    const explained = await poolOf(ctx.db)!.query(`explain (analyze, buffers, format json) ${KEY_ROWS_WITHHELD_SQL}`, [fresh, ids]);
    const plan = explained.rows[0]['QUERY PLAN'][0].Plan as Plan;
    expect(plan['Actual Rows']).toBe(8);
    expect(pagesRead(plan)).toBeLessThan(100);
  });

  // The lookup is a named statement: after five runs PostgreSQL may keep a generic plan, made without
  // the tenant or the ids. That plan must read the short indexes too.
  it('reads a handful of pages with the generic plan a named statement keeps', async () => {
    const client = await poolOf(ctx.db)!.connect();
    try {
      await client.query('set plan_cache_mode = force_generic_plan');
      await client.query(`prepare withheld_generic(text, text[]) as ${KEY_ROWS_WITHHELD_SQL}`);
      // EXPLAIN EXECUTE takes no bind parameters: the values as literals.
      const args = `${client.escapeLiteral(fresh)}, array[${ids.map((id) => client.escapeLiteral(id)).join(', ')}]`;
      const explained = await client.query(`explain (analyze, buffers, format json) execute withheld_generic(${args})`);
      const plan = explained.rows[0]['QUERY PLAN'][0].Plan as Plan;
      expect(plan['Actual Rows']).toBe(8);
      expect(pagesRead(plan)).toBeLessThan(100);
    } finally {
      await client.query('deallocate withheld_generic; reset plan_cache_mode');
      client.release();
    }
  });

  it('withholds exactly the keys of users awaiting erasure', async () => {
    await sql`update users set erasure_requested_at = now() where tenant_id = ${fresh} and id in (${sql.join([ids[1]!, ids[5]!])})`.execute(ctx.db);
    const withheld = await keyRows(ctx.db, fresh, ids, true);
    expect(withheld.map((r) => r.user_id).sort()).toEqual(ids.filter((_, i) => i !== 1 && i !== 5).sort());
    expect(await keyRows(ctx.db, fresh, ids, false)).toHaveLength(8);
    // The same inside a transaction (no pool: the text runs unnamed through Kysely, the array bound once a placeholder).
    const inTx = await ctx.db.transaction().execute((tx) => keyRows(tx, fresh, ids, true));
    expect(inTx.map((r) => r.user_id).sort()).toEqual(withheld.map((r) => r.user_id).sort());
  });

  it('runs as the named statements, planned once a connection', async () => {
    const pool = poolOf(ctx.db)!;
    for (let i = 0; i < 3; i++) {
      await keyRows(ctx.db, fresh, ids.slice(0, 2 + i), true);
      await keyRows(ctx.db, fresh, ids.slice(0, 2 + i), false);
    }
    const clients = await Promise.all(Array.from({ length: pool.totalCount }, () => pool.connect()));
    try {
      const names = new Set<string>();
      for (const c of clients) {
        const { rows } = await c.query<{ name: string }>("select name from pg_prepared_statements where name like 'user_keys_of%'");
        for (const r of rows) names.add(r.name);
      }
      expect([...names].sort()).toEqual(['user_keys_of', 'user_keys_of_withheld']);
    } finally {
      for (const c of clients) c.release();
    }
  });
});
