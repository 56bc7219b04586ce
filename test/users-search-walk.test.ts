// A search walks the newest SEARCH_WALK_ROWS users first and lets what it finds choose the plan for
// the rest (users.repo.ts list()). Either way the answer must be exactly the newest matches:
// checked here on both sides of the walk's edge, with more users than the walk covers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createTenant, createTestContext, client, type Client, type TestContext } from './helpers/app.js';
import { SEARCH_WALK_ROWS } from '../src/modules/users/users.repo.js';
import { poolOf } from '../src/db/database.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;
const TOTAL = SEARCH_WALK_ROWS + 300;
// Oldest first: index 0 is the oldest user; the walk covers the newest SEARCH_WALK_ROWS. Matches of
// each name, by index, one per path list() can take.
const NAMES: Record<string, number[]> = {
  edgeless: [3, 7, 150, 299], // none inside the walk: collected through the index
  pair: [20, TOTAL - 5], // one inside, one outside: rare, collected through the index
  straddle: [10, 250, TOTAL - 800, TOTAL - 500, TOTAL - 2, TOTAL - 1], // four inside: small pages fill in the walk, larger ones go to the planner
};
const idAt = (i: number) => `usr_${String(i).padStart(26, '0')}`;

async function pages(query: string, limit: number): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const res = await api.get(`/v1/users?limit=${limit}${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    expect(res.statusCode).toBe(200);
    ids.push(...res.json().data.map((u: { id: string }) => u.id));
    cursor = res.json().next_cursor;
  } while (cursor);
  return ids;
}

beforeAll(async () => {
  ctx = await createTestContext();
  const t = await createTenant(ctx.db);
  tenantId = t.tenantId;
  api = client(ctx.app, t.ownerKey);
  const nameOf = new Map<number, string>();
  for (const [name, at] of Object.entries(NAMES)) for (const i of at) nameOf.set(i, name);
  const names = Array.from({ length: TOTAL }, (_, i) => nameOf.get(i) ?? `filler${i % 97}`);
  await sql`
    insert into users (tenant_id, id, type, country, profile, metadata, tags, updated_at)
    select ${tenantId}, 'usr_' || lpad(i::text, 26, '0'), 'individual', 'FR',
           jsonb_build_object('first_name', (${names}::text[])[i + 1], 'last_name', 'Walker'), '{}', '{}', now()
      from generate_series(0, ${TOTAL - 1}) as i`.execute(ctx.db);
});
afterAll(() => ctx.close());

describe('a search over more users than the walk covers', () => {
  for (const [name, at] of Object.entries(NAMES)) {
    const expected = [...at].reverse().map(idAt);
    it(`finds every "${name}", newest first, in pages of 1, 2 and 50`, async () => {
      for (const limit of [1, 2, 50]) expect(await pages(`&q=${name}`, limit)).toEqual(expected);
    });
  }

  it('combines with other filters the same way', async () => {
    await sql`update users set status = 'suspended' where tenant_id = ${tenantId} and id in (${sql.join([idAt(250), idAt(TOTAL - 1)])})`.execute(ctx.db);
    expect(await pages('&q=straddle&status=suspended', 1)).toEqual([idAt(TOTAL - 1), idAt(250)]);
    expect(await pages('&q=straddle&status=active', 2)).toEqual([TOTAL - 2, TOTAL - 500, TOTAL - 800, 10].map(idAt));
  });

  it('runs a search by q alone as named statements (the walk; a rare name at a common page size), each planned once for every name searched; with other filters, unnamed', async () => {
    // Every connection of the pool, held at once, asked what it has prepared: runs per statement name.
    const prepared = async () => {
      const pool = poolOf(ctx.db)!;
      const clients = await Promise.all(Array.from({ length: pool.options.max ?? 10 }, () => pool.connect()));
      const runs = new Map<string, { generic: number; custom: number }>();
      try {
        for (const c of clients) {
          const { rows } = await c.query<{ name: string; generic_plans: string; custom_plans: string }>(
            "select name, generic_plans::text, custom_plans::text from pg_prepared_statements where name like 'users_walk%' or name like 'users_search_rare%'");
          for (const r of rows) {
            const sum = runs.get(r.name) ?? { generic: 0, custom: 0 };
            runs.set(r.name, { generic: sum.generic + Number(r.generic_plans), custom: sum.custom + Number(r.custom_plans) });
          }
        }
      } finally {
        for (const c of clients) c.release();
      }
      return runs;
    };
    const total = (m: Map<string, { generic: number; custom: number }>) => [...m.values()].reduce((n, r) => n + r.generic + r.custom, 0);
    const before = await prepared();
    const names = ['straddle', 'edgeless', 'pair', 'filler3', 'filler4', 'filler5', 'walker', 'nobody'];
    for (const name of names) expect((await api.get(`/v1/users?limit=2&q=${name}`)).statusCode).toBe(200);
    const after = await prepared();
    expect(total(after) - total(before)).toBe(names.length);
    const walkQ = after.get('users_walk_q')!;
    expect(walkQ.generic + walkQ.custom - (before.get('users_walk_q')?.generic ?? 0) - (before.get('users_walk_q')?.custom ?? 0)).toBe(names.length);
    // PostgreSQL's plan cache turns to the generic plan after five custom ones (the connection is reused: pg's pool is LIFO).
    expect(walkQ.generic).toBeGreaterThan(before.get('users_walk_q')?.generic ?? 0);

    // A rare name (none or one in the walk) at a page size of PAGE_SIZES: its collection is named too.
    const rare = ['edgeless', 'pair', 'nobody', 'edgeless', 'pair', 'nobody', 'edgeless'];
    for (const name of rare) expect((await api.get(`/v1/users?limit=10&q=${name}`)).json().data.length).toBe(NAMES[name]?.length ?? 0);
    const rareRuns = (await prepared()).get('users_search_rare_10')!;
    expect(rareRuns.generic + rareRuns.custom).toBe(rare.length);
    expect(rareRuns.generic).toBeGreaterThan(0);

    const named = await prepared();
    expect((await api.get('/v1/users?limit=2&q=straddle&status=active')).statusCode).toBe(200);
    expect((await api.get('/v1/users?limit=2&q=straddle&type=individual')).statusCode).toBe(200);
    expect((await api.get('/v1/users?limit=10&q=edgeless&status=active')).json().data.length).toBe(NAMES.edgeless!.length);
    const filtered = await prepared();
    expect(total(filtered)).toBe(total(named));
    expect([...filtered.keys()].sort()).toEqual([...named.keys()].sort());
  });
});
