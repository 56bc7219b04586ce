// The withheld key lookup (crypto/keyring.ts keyRowsQuery: webhook payloads, the events API) probes
// users for an erasure request by key. For a tenant PostgreSQL's statistics do not know yet — its
// users all written after the last ANALYZE, as when a platform creates its first thousands — the probe
// scanned every user of the tenant once per key (the bench: 235 ms for 8 keys among 19,202 users).
// Here: a tenant of 3,000 users written after ANALYZE, autovacuum off for this database's users so
// the statistics stay stale; the lookup of 8 keys must read a handful of pages, and still withhold
// exactly the users awaiting erasure.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createTenant, createTestContext, type TestContext } from './helpers/app.js';
import { keyRowsQuery } from '../src/crypto/keyring.js';
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

  it('reads a handful of pages, not the tenant', async () => {
    const q = keyRowsQuery(ctx.db, fresh, ids, true).compile();
    const explained = await poolOf(ctx.db)!.query(`explain (analyze, buffers, format json) ${q.sql}`, q.parameters as unknown[]);
    const plan = explained.rows[0]['QUERY PLAN'][0].Plan as { 'Actual Rows': number; 'Shared Hit Blocks': number; 'Shared Read Blocks': number };
    expect(plan['Actual Rows']).toBe(8);
    expect(plan['Shared Hit Blocks'] + plan['Shared Read Blocks']).toBeLessThan(100);
  });

  it('withholds exactly the keys of users awaiting erasure', async () => {
    await sql`update users set erasure_requested_at = now() where tenant_id = ${fresh} and id in (${sql.join([ids[1]!, ids[5]!])})`.execute(ctx.db);
    const withheld = await keyRowsQuery(ctx.db, fresh, ids, true).execute();
    expect(withheld.map((r) => r.user_id).sort()).toEqual(ids.filter((_, i) => i !== 1 && i !== 5).sort());
    expect(await keyRowsQuery(ctx.db, fresh, ids, false).execute()).toHaveLength(8);
  });
});
