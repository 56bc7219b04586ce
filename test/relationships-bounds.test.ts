// The relationships module against a tenant that shapes its graph to hurt: the ownership walk and
// the cycle check are linear in the relationships above a user, never in the number of paths, and
// GET /ownership lists a bounded number of chains; relationship changes held for approval count
// against the same bounds as a PATCH's change requests.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { business, individual } from './helpers/factories.js';
import { newId } from '../src/lib/ids.js';
import { MAX_PENDING_CHANGES } from '../src/modules/users/bounds.js';
import { MAX_PATHS_PER_OWNER } from '../src/modules/relationships/relationship-rules.js';

let ctx: TestContext;
let tenantId: string;
let api: Client;

beforeAll(async () => {
  ({ ctx, tenantId, api } = await openTenantContext());
});
afterAll(() => ctx.close());

const company = async () => {
  const r = await api.post('/v1/users', business());
  expect(r.statusCode, r.body).toBe(201);
  return r.json().id as string;
};
const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
  const t = performance.now();
  const out = await f();
  return [out, performance.now() - t];
};

describe('an ownership lattice (each level two businesses owning 50 % of both below: legal, and 2^depth paths)', () => {
  const DEPTH = 17;
  let bottom: string;
  let levels: string[][];

  beforeAll(async () => {
    bottom = await company();
    levels = [[bottom]];
    for (let d = 0; d < DEPTH; d++) levels.push([await company(), await company()]);
    // The rows POST /v1/users/{id}/relationships writes (its audit entries and events play no part in
    // the walk), inserted at once: 68 requests through the API would only make the test slow.
    const rows = levels.slice(1).flatMap((owners, d) => levels[d]!.flatMap((held) => owners.map((o) => ({
      tenant_id: tenantId, id: newId('rel'), user_id: held, related_user_id: o, type: 'shareholder' as const,
      ownership_percent: 50, control: false, title: null, starts_on: null, created_by_key_id: null, request_id: null, change_request_id: null,
    }))));
    await ctx.db.insertInto('relationships').values(rows).execute();
    expect(rows).toHaveLength(2 + 4 * (DEPTH - 1));
  });

  it('answers the capability check of the bottom business at once, exactly, with the suspended top owner named', async () => {
    const top = levels[DEPTH]![0]!;
    expect((await api.post(`/v1/users/${top}/suspend`, { reason: 'fraud_suspected' })).statusCode).toBe(201);
    const [caps, ms] = await timed(() => api.get(`/v1/users/${bottom}/capabilities`));
    expect(caps.statusCode).toBe(200);
    expect(ms, 'capability check (4.5 s before)').toBeLessThan(2000);
    // Every level passes 50 % on: the top owner holds 50 % of the bottom business over 2^16 paths.
    expect(caps.json()).toMatchObject({
      capabilities: { deposits: { allowed: false, reason: 'related_party_suspended' } },
      related_parties: [{ user_id: top, status: 'suspended', ownership_percent: 50, control: false }],
    });
    const path = caps.json().related_parties[0].path as string[];
    expect(path).toHaveLength(DEPTH + 1);
    expect(path[0]).toBe(bottom);
    expect(path.at(-1)).toBe(top);
    path.slice(1).forEach((p, i) => expect(levels[i + 1]).toContain(p));
    expect((await api.post(`/v1/users/${top}/unsuspend`, { reason: 'review_cleared' })).statusCode).toBe(201);
  });

  it('answers GET /ownership at once: exact percentages and chain counts, the strongest chains listed up to the cap', async () => {
    const [res, ms] = await timed(() => api.get(`/v1/users/${bottom}/ownership`));
    expect(res.statusCode).toBe(200);
    expect(ms, 'GET /ownership (19.6 s and 78 MB before)').toBeLessThan(2000);
    expect(res.body.length, "bytes").toBeLessThan(64 * 1024);
    const body = res.json();
    expect(body).toMatchObject({ user_id: bottom, truncated: false });
    expect(body.owners.map((o: { user_id: string; percent: number; path_count: number }) => [o.user_id, o.percent, o.path_count]))
      .toEqual([...levels[DEPTH]!].sort().map((id) => [id, 50, 2 ** (DEPTH - 1)]));
    for (const o of body.owners as Array<{ user_id: string; paths: string[][] }>) {
      expect(o.paths).toHaveLength(MAX_PATHS_PER_OWNER);
      expect(new Set(o.paths.map((p) => p.join())).size).toBe(MAX_PATHS_PER_OWNER);
      expect([...o.paths].sort()).toEqual(o.paths);
      for (const p of o.paths) expect([p.length, p[0], p.at(-1)]).toEqual([DEPTH + 1, bottom, o.user_id]);
    }
    // A business in the middle: 2 owners, 2^4 chains each — all listed, under the cap, and no path_count.
    const mid = await api.get(`/v1/users/${levels[DEPTH - 5]![0]}/ownership`);
    expect(mid.json().owners.map((o: { path_count?: number; paths: unknown[] }) => [o.path_count, o.paths.length])).toEqual([[undefined, 16], [undefined, 16]]);
  });

  it('checks a new relationship of the bottom business for cycles at once, and still finds the cycle through the lattice', async () => {
    // Not a cycle: the check walks everything above the bottom business and finds no x (2.9 s before, under the tenant's lock).
    const x = await company();
    const [ok, okMs] = await timed(() => api.post(`/v1/users/${x}/relationships`, { type: 'shareholder', related_user_id: bottom, ownership_percent: 10 }));
    expect(ok.statusCode, ok.body).toBe(201);
    expect(okMs, 'cycle check, no cycle').toBeLessThan(2000);
    // A cycle: the top business taking the bottom one as shareholder.
    const top = levels[DEPTH]![1]!;
    const [cycle, cycleMs] = await timed(() => api.post(`/v1/users/${top}/relationships`, { type: 'shareholder', related_user_id: bottom, ownership_percent: 10 }));
    expect(cycleMs, 'cycle check, cycle').toBeLessThan(2000);
    expect(cycle.statusCode).toBe(422);
    const path = cycle.json().path as string[];
    expect(cycle.json().code).toBe('relationship.cycle');
    expect([path.length, path[0], path.at(-1)]).toEqual([DEPTH + 1, bottom, top]);
    path.slice(1).forEach((p, i) => expect(levels[i + 1]).toContain(p));
    const current = await ctx.db.selectFrom('relationships').select('id').where('tenant_id', '=', tenantId).where('user_id', '=', top).execute();
    expect(current).toEqual([]);
  });
});

describe('ownership deeper than the walk follows', () => {
  it('says so: GET /ownership answers truncated, with the owners within reach', async () => {
    const chain = [await company()];
    for (let i = 0; i < 34; i++) chain.push(await company());
    await ctx.db.insertInto('relationships').values(chain.slice(1).map((owner, i) => ({
      tenant_id: tenantId, id: newId('rel'), user_id: chain[i]!, related_user_id: owner, type: 'shareholder' as const, ownership_percent: 100, control: false,
    }))).execute();
    const deep = (await api.get(`/v1/users/${chain[0]}/ownership`)).json();
    expect(deep).toEqual({ user_id: chain[0], owners: [], truncated: true });
    // Within 32 links, the end of the chain is the ultimate owner, and nothing is cut.
    expect((await api.get(`/v1/users/${chain[3]}/ownership`)).json()).toEqual({
      user_id: chain[3], owners: [{ user_id: chain[34], percent: 100, paths: [chain.slice(3)] }], truncated: false,
    });
  });
});

describe('relationship changes held for approval', () => {
  const verifiedCompany = async () => {
    const id = await company();
    expect((await api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'acme-kyc', level: 1 })).statusCode).toBe(201);
    return id;
  };
  const person = async () => (await api.post('/v1/users', individual())).json().id as string;
  const state = async (id: string) => ({
    user: await ctx.db.selectFrom('users').select(['version', 'pending_changes']).where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirstOrThrow(),
    requests: (await ctx.db.selectFrom('change_requests').select('id').where('tenant_id', '=', tenantId).where('user_id', '=', id).execute()).length,
    audit: (await ctx.db.selectFrom('audit_entries').select('id').where('tenant_id', '=', tenantId).where('user_id', '=', id).execute()).length,
  });

  it('count against the cap on pending change requests, refused past it like a PATCH, nothing written', async () => {
    const biz = await verifiedCompany();
    for (let i = 0; i < MAX_PENDING_CHANGES; i++) {
      const r = await api.post(`/v1/users/${biz}/relationships`, { type: 'director', related_user_id: await person(), title: 'x'.repeat(200) });
      expect(r.statusCode, r.body).toBe(202);
    }
    const before = await state(biz);
    expect(before.user.pending_changes).toHaveLength(MAX_PENDING_CHANGES);
    const over = await api.post(`/v1/users/${biz}/relationships`, { type: 'director', related_user_id: await person() });
    expect(over.statusCode).toBe(422);
    expect(over.json()).toMatchObject({ code: 'user.value_too_large', errors: [{ field: 'pending_changes', code: 'too_many' }] });
    // Ending one is held for approval too, and refused the same way.
    const current = await ctx.db.insertInto('relationships').values({
      tenant_id: tenantId, id: newId('rel'), user_id: biz, related_user_id: await person(), type: 'director', control: false,
    }).returning('id').executeTakeFirstOrThrow();
    const end = await api.post(`/v1/users/${biz}/relationships/${current.id}/end`);
    expect([end.statusCode, end.json().errors]).toEqual([422, over.json().errors]);
    // The same answer a PATCH held for approval gets.
    const patch = await api.patch(`/v1/users/${biz}`, { legal_name: 'Renamed Ltd' });
    expect([patch.statusCode, patch.json().code, patch.json().errors]).toEqual([422, over.json().code, over.json().errors]);
    expect(await state(biz)).toEqual(before);
    // Deciding one makes room.
    const officer = client(ctx.app, (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key);
    const first = (before.user.pending_changes[0] as { id: string }).id;
    expect((await officer.post(`/v1/change-requests/${first}/reject`, { reason: 'not_supported' })).statusCode).toBe(200);
    expect((await api.post(`/v1/users/${biz}/relationships`, { type: 'director', related_user_id: await person() })).statusCode).toBe(202);
  });

  it('count against the byte bound of pending change requests', async () => {
    const biz = await verifiedCompany();
    // A request made before the bounds existed, holding 63.9 KiB of proposed values.
    const crId = newId('chg');
    const big = [{ id: crId, fields: ['metadata'], proposed: { metadata: { blob: 'y'.repeat(65_400) } }, requested_at: new Date().toISOString() }];
    await ctx.db.updateTable('users').set({ pending_changes: JSON.stringify(big) }).where('tenant_id', '=', tenantId).where('id', '=', biz).execute();
    const before = await state(biz);
    const over = await api.post(`/v1/users/${biz}/relationships`, { type: 'director', related_user_id: await person(), title: 'x'.repeat(200) });
    expect(over.statusCode).toBe(422);
    expect(over.json()).toMatchObject({ code: 'user.value_too_large', errors: [{ field: 'pending_changes', code: 'too_large' }] });
    expect(await state(biz)).toEqual(before);
  });
});
