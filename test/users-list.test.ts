import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { business, individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;

beforeAll(async () => ({ ctx, api, tenantId } = await openTenantContext()));
afterAll(() => ctx.close());

async function collect(query: string, limit = 50): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const res = await api.get(`/v1/users?limit=${limit}${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    expect(res.statusCode).toBe(200);
    const page = res.json();
    expect(page.data.length).toBeLessThanOrEqual(limit);
    ids.push(...page.data.map((u: { id: string }) => u.id));
    cursor = page.next_cursor;
  } while (cursor);
  return ids;
}

describe('listing and searching users', () => {
  const tag = `batch-${Date.now()}`;

  it('pages 250 users in pages of 50: 250 distinct users, newest first, the same order twice', async () => {
    for (let i = 0; i < 250; i += 25) {
      await Promise.all(Array.from({ length: 25 }, (_, j) => api.post('/v1/users', individual({ tags: [tag], first_name: `P${i + j}` }))));
    }
    const first = await collect(`&tag=${tag}`);
    expect(first).toHaveLength(250);
    expect(new Set(first).size).toBe(250);
    expect([...first].sort().reverse()).toEqual(first);
    expect(await collect(`&tag=${tag}`)).toEqual(first);
  });

  it('pages the unfiltered list the same at every size: those with their own statement (10, 25, 50, 200) and others (7, 199)', async () => {
    const all = (await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).orderBy('id', 'desc').execute()).map((r) => r.id);
    expect(all.length).toBeGreaterThan(200);
    for (const size of [10, 25, 50, 200, 7, 199]) expect(await collect('', size), `limit=${size}`).toEqual(all);
  });

  it('keeps pages distinct and complete while other users are being inserted', async () => {
    const before = await collect(`&tag=${tag}`);
    const ids: string[] = [];
    let cursor: string | null = null;
    let inserted = 0;
    do {
      const res = await api.get(`/v1/users?limit=50&tag=${tag}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      const page = res.json();
      ids.push(...page.data.map((u: { id: string }) => u.id));
      cursor = page.next_cursor;
      // Insert between page reads: new users must neither duplicate nor displace any listed one.
      await Promise.all(Array.from({ length: 5 }, () => api.post('/v1/users', individual({ tags: [tag] }))));
      inserted += 5;
    } while (cursor);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(before);
    expect(await collect(`&tag=${tag}`)).toHaveLength(250 + inserted);
  });

  it('filters by type, status, kyc_status, external_ref and dates', async () => {
    const biz = (await api.post('/v1/users', business({ tags: ['filters'] }))).json();
    const person = (await api.post('/v1/users', individual({ tags: ['filters'] }))).json();
    expect(await collect('&tag=filters&type=business')).toEqual([biz.id]);
    expect(await collect('&tag=filters&type=individual')).toEqual([person.id]);
    expect(await collect('&tag=filters&status=active&status=flagged')).toEqual([person.id, biz.id]);
    expect(await collect('&tag=filters&status=closed')).toEqual([]);
    expect(await collect('&tag=filters&kyc_status=unverified')).toHaveLength(2);
    expect(await collect('&tag=filters&kyc_status=verified')).toEqual([]);
    expect(await collect(`&external_ref=${encodeURIComponent(biz.external_ref)}`)).toEqual([biz.id]);
    const at = encodeURIComponent(person.created_at);
    expect(await collect(`&tag=filters&created_from=${at}`)).toEqual([person.id]);
    expect(await collect(`&tag=filters&created_to=${at}`)).toEqual([biz.id]);
    await api.patch(`/v1/users/${biz.id}`, { sector: 'fintech' });
    const since = encodeURIComponent(new Date(Date.now() - 60_000).toISOString());
    expect((await collect(`&tag=filters&updated_since=${since}`)).sort()).toEqual([biz.id, person.id].sort());
    expect(await collect(`&tag=filters&updated_since=${encodeURIComponent('2999-01-01T00:00:00Z')}`)).toEqual([]);
  });

  it('filters by risk rating (repeatable, unrated for never assessed), with other filters, and pages by keyset', async () => {
    const riskTag = `risk-${Date.now()}`;
    const make = async (n: number) => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) ids.push((await api.post('/v1/users', individual({ tags: [riskTag] }))).json().id);
      return ids;
    };
    const setRisk = async (id: string, rating: string) => {
      const res = await api.put(`/v1/users/${id}/risk`, { rating, status: 'cleared', reason: `assessed ${rating}` });
      expect(res.statusCode, res.body).toBe(200);
    };
    const high = await make(7);
    const [low, unrated, prohibited] = await make(3);
    for (const id of high) await setRisk(id, 'high');
    await setRisk(low!, 'medium');
    await setRisk(low!, 'low'); // only the current rating counts, not the history
    await setRisk(prohibited!, 'prohibited');
    const newest = (ids: string[]) => [...ids].sort().reverse();

    // Keyset paging over a filter the walk cannot answer: 7 users in pages of 2, each once, newest first.
    expect(await collect(`&tag=${riskTag}&risk=high`, 2)).toEqual(newest(high));
    expect(await collect(`&risk=high&risk=low&tag=${riskTag}`, 3)).toEqual(newest([...high, low!]));
    expect(await collect(`&tag=${riskTag}&risk=medium`)).toEqual([]);
    expect(await collect(`&tag=${riskTag}&risk=unrated`)).toEqual([unrated]);
    expect(await collect(`&tag=${riskTag}&risk=unrated&risk=prohibited`)).toEqual(newest([unrated!, prohibited!]));
    // With another filter: a high-risk user suspended is the only one both high and suspended.
    expect((await api.post(`/v1/users/${high[3]}/suspend`, { reason: 'aml_alert' })).statusCode).toBe(201);
    expect(await collect(`&tag=${riskTag}&risk=high&status=suspended`)).toEqual([high[3]]);
    expect(await collect(`&tag=${riskTag}&risk=low&status=suspended`)).toEqual([]);
    // What comes back carries the rating it was chosen for.
    const page = (await api.get(`/v1/users?tag=${riskTag}&risk=prohibited`)).json();
    expect(page.data.map((u: { risk: { rating: string } }) => u.risk.rating)).toEqual(['prohibited']);
  });

  it('searches name, email, phone and external_ref, case-insensitively, with LIKE wildcards taken literally', async () => {
    const u = (await api.post('/v1/users', individual({
      first_name: 'Zéphyrine', last_name: 'Quillfeather', email: 'zq.unique@example.org', phone: '+447911123456', external_ref: 'ext_Q%42',
    }))).json();
    const b = (await api.post('/v1/users', business({ legal_name: 'Xylophonic Trading GmbH', country: 'DE' }))).json();
    expect(await collect('&q=quillfeather')).toEqual([u.id]);
    expect(await collect('&q=ZÉPHYR')).toEqual([u.id]);
    expect(await collect('&q=zq.unique')).toEqual([u.id]);
    expect(await collect(`&q=${encodeURIComponent('+447911123456')}`)).toEqual([u.id]);
    expect(await collect(`&q=${encodeURIComponent('ext_q%42')}`)).toEqual([u.id]);
    expect(await collect('&q=xylophonic')).toEqual([b.id]);
    expect(await collect(`&q=${encodeURIComponent('%')}`)).toEqual([u.id]);
    expect(await collect('&q=nobody-has-this-name')).toEqual([]);
  });

  it('refuses bad query parameters with 400 naming them', async () => {
    for (const [query, field] of [
      ['limit=0', 'limit'],
      ['limit=201', 'limit'],
      ['status=dormant', 'status.0'],
      ['risk=extreme', 'risk.0'],
      ['risk=low&risk=HIGH', 'risk.1'],
      ['created_from=yesterday', 'created_from'],
      ['cursor=not-a-cursor', 'cursor'],
      ['colour=blue', 'colour'],
    ]) {
      const res = await api.get(`/v1/users?${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(res.json().errors.map((e: { field: string }) => e.field), query).toContain(field);
    }
  });

  it('defaults to 50 per page', async () => {
    const res = await api.get(`/v1/users?tag=${tag}`);
    expect(res.json().data).toHaveLength(50);
    expect(res.json().next_cursor).toEqual(expect.any(String));
  });
});
