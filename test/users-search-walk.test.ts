// A search walks the newest SEARCH_WALK_ROWS users first and lets what it finds choose the plan for
// the rest (users.repo.ts list()). Either way the answer must be exactly the newest matches:
// checked here on both sides of the walk's edge, with more users than the walk covers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createTenant, createTestContext, client, type Client, type TestContext } from './helpers/app.js';
import { SEARCH_WALK_ROWS } from '../src/modules/users/users.repo.js';

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
});
