// Export for the warehouse: NDJSON from one snapshot, masked numbers, parts only for the roles that
// may read them, a trailer with the next cursor; and the round trip export → import into another
// tenant gives the same users.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, createTenant, createTestContext, type TestContext } from './helpers/app.js';
import { business, individual } from './helpers/factories.js';
import { importText, servicesFor } from './helpers/imports.js';
import type { Services } from '../src/services.js';
import { cliActor } from '../src/modules/audit/actor.js';
import { PAGE_ROWS } from '../src/modules/exports/exports.service.js';
import { poolOf } from '../src/db/database.js';

let ctx: TestContext;
let services: Services;

beforeAll(async () => {
  ctx = await createTestContext();
  services = servicesFor(ctx);
});
afterAll(() => ctx.close());

const parse = (body: string) => body.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

async function importRows(tenantId: string, rows: object[]) {
  return (await importText(services, tenantId, rows.map((r) => JSON.stringify(r)).join('\n'))).job;
}

describe('GET /v1/exports/users', () => {
  it('streams every user of the tenant as NDJSON in id order, numbers masked, then the trailer', async () => {
    const t = await createTenant(ctx.db);
    const other = await createTenant(ctx.db);
    const api = client(ctx.app, t.ownerKey);
    const a = (await api.post('/v1/users', individual({ tax_number: '1234567890' }))).json();
    const b = (await api.post('/v1/users', business())).json();
    await client(ctx.app, other.ownerKey).post('/v1/users', individual());
    const res = await api.get('/v1/exports/users');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
    const lines = parse(res.body);
    expect(lines.slice(0, -1).map((l) => l.id)).toEqual([a.id, b.id].sort());
    const exportedA = lines.find((l) => l.id === a.id)!;
    expect(exportedA.tax_number).toBe('*****7890');
    expect(exportedA).toEqual(a);
    const trailer = lines.at(-1)!;
    expect(trailer).toEqual({ count: 2, snapshot_at: expect.any(String), next_cursor: expect.any(String) });
    // The next cursor asks for what changed since the snapshot, a minute early (upsert by id).
    const since = JSON.parse(Buffer.from(trailer.next_cursor as string, 'base64url').toString()).since;
    expect(Date.parse(trailer.snapshot_at as string) - Date.parse(since)).toBe(60_000);
  });

  it('filters by updated_since and the list filters, and resumes after a given id', async () => {
    const t = await createTenant(ctx.db);
    const api = client(ctx.app, t.ownerKey);
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await api.post('/v1/users', individual())).json().id as string);
    ids.sort();
    await ctx.db.updateTable('users').set({ updated_at: new Date('2020-01-01T00:00:00Z') }).where('tenant_id', '=', t.tenantId).where('id', '=', ids[0]!).execute();
    await api.post(`/v1/users/${ids[1]}/suspend`, { reason: 'fraud_suspected' });
    const recent = parse((await api.get('/v1/exports/users?updated_since=2021-01-01T00:00:00Z')).body);
    expect(recent.slice(0, -1).map((l) => l.id)).toEqual(ids.slice(1));
    const suspended = parse((await api.get('/v1/exports/users?status=suspended')).body);
    expect(suspended.slice(0, -1).map((l) => l.id)).toEqual([ids[1]]);
    const resumed = parse((await api.get(`/v1/exports/users?after=${ids[1]}`)).body);
    expect(resumed.slice(0, -1).map((l) => l.id)).toEqual(ids.slice(2));
    // A cursor this API did not issue is refused before anything is streamed.
    const bad = await api.get(`/v1/exports/users?cursor=${Buffer.from('{"since":"never"}').toString('base64url')}`);
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('request.validation_failed');
  });

  it("takes the list's filters too: risk (unrated included), external_ref, created_from and created_to", async () => {
    const t = await createTenant(ctx.db);
    const api = client(ctx.app, t.ownerKey);
    const officer = client(ctx.app, (await createKey(ctx.db, t.tenantId, 'COMPLIANCE_OFFICER')).key);
    const users = [];
    for (let i = 0; i < 4; i++) users.push((await api.post('/v1/users', individual({ external_ref: `wh-${i}` }))).json() as { id: string });
    const [a, b, c, d] = users.map((u) => u.id) as [string, string, string, string];
    expect((await officer.call({ method: 'PUT', url: `/v1/users/${a}/risk`, body: { rating: 'high', status: 'pending', reason: 'r' } })).statusCode).toBe(200);
    expect((await officer.call({ method: 'PUT', url: `/v1/users/${b}/risk`, body: { rating: 'low', status: 'cleared', reason: 'r' } })).statusCode).toBe(200);
    await ctx.db.updateTable('users').set({ created_at: new Date('2024-06-01T00:00:00Z') }).where('tenant_id', '=', t.tenantId).where('id', 'in', [c, d]).execute();
    const ids = async (query: string) => {
      const res = await api.get(`/v1/exports/users?${query}`);
      expect(res.statusCode, res.body).toBe(200);
      return parse(res.body).slice(0, -1).map((l) => l.id);
    };
    // Before, each of these answered 400 unknown_field.
    expect(await ids('risk=high')).toEqual([a]);
    expect(await ids('risk=high&risk=unrated')).toEqual([a, c, d].sort());
    expect(await ids('risk=unrated')).toEqual([c, d].sort());
    expect(await ids('external_ref=wh-1')).toEqual([b]);
    expect(await ids('created_from=2024-01-01T00:00:00Z&created_to=2025-01-01T00:00:00Z')).toEqual([c, d].sort());
    expect(await ids('created_from=2025-01-01T00:00:00Z')).toEqual([a, b].sort());
  });

  it('is one snapshot: a user created while the export streams is not in it', async () => {
    const t = await createTenant(ctx.db);
    const n = PAGE_ROWS + 200;
    await importRows(t.tenantId, Array.from({ length: n }, (_, i) => individual({ external_ref: `snap-${i}` })));
    const stream = await services.exports.stream(cliActor(t.tenantId), {});
    const first = await stream.next();
    expect((first.value as Buffer).toString().split('\n').filter(Boolean)).toHaveLength(PAGE_ROWS);
    // Created after the first page was read, with an id above every exported one.
    const late = (await client(ctx.app, t.ownerKey).post('/v1/users', individual())).json();
    let rest = '';
    for await (const chunk of stream) rest += chunk;
    const lines = parse(rest);
    expect(lines.at(-1)).toMatchObject({ count: n });
    expect(lines.some((l) => l.id === late.id)).toBe(false);
    // Cut after its first page, while the next page is already asked for: the connection goes back
    // to the pool, and nothing fails unobserved.
    const pool = poolOf(ctx.db)!;
    const cut = await services.exports.stream(cliActor(t.tenantId), {});
    expect(pool.totalCount - pool.idleCount).toBeGreaterThan(0);
    expect(((await cut.next()).value as Buffer).toString().split('\n').filter(Boolean)).toHaveLength(PAGE_ROWS);
    await cut.return(undefined);
    expect(pool.totalCount - pool.idleCount).toBe(0);
  });

  it('includes verifications and status changes for the roles that may read them; a READER asking for verifications gets 403', async () => {
    const t = await createTenant(ctx.db);
    const api = client(ctx.app, t.ownerKey);
    const u = (await api.post('/v1/users', individual())).json();
    await api.post(`/v1/users/${u.id}/verifications`, { result: 'approved', provider: 'onfido', level: 2 });
    await api.post(`/v1/users/${u.id}/suspend`, { reason: 'fraud_suspected' });
    const dev = client(ctx.app, (await createKey(ctx.db, t.tenantId, 'DEVELOPER')).key);
    const res = await dev.get('/v1/exports/users?include=verifications,status_changes,documents_meta');
    expect(res.statusCode, res.body).toBe(200);
    const [line] = parse(res.body);
    expect(line).toMatchObject({ id: u.id, verifications: [expect.objectContaining({ result: 'approved', provider: 'onfido' })], status_changes: [expect.objectContaining({ to: 'suspended' })], documents: [] });
    const reader = client(ctx.app, (await createKey(ctx.db, t.tenantId, 'READER')).key);
    const refused = await reader.get('/v1/exports/users?include=verifications');
    expect(refused.statusCode).toBe(403);
    expect(refused.json().code).toBe('auth.forbidden');
    const plain = await reader.get('/v1/exports/users');
    expect(plain.statusCode).toBe(200);
    expect(parse(plain.body)[0]).not.toHaveProperty('verifications');
  });
});

describe('the round trip', () => {
  it('export → import into another tenant gives the same users, with their status, KYC and dates', async () => {
    const a = await createTenant(ctx.db);
    const b = await createTenant(ctx.db);
    const api = client(ctx.app, a.ownerKey);
    // The same tenant-defined fields on both sides: a personal one travels opened, and is sealed again.
    const custom_fields = { account_no: { schema: { type: 'string', maxLength: 12 }, personal: true }, segment: { schema: { type: 'string' } } };
    for (const key of [a.ownerKey, b.ownerKey]) expect((await client(ctx.app, key).call({ method: 'PUT', url: '/v1/policy', body: { custom_fields } })).statusCode).toBe(200);
    const p = (await api.post('/v1/users', individual({ metadata: { crm: { tier: 'gold' } }, tags: ['vip'], custom: { account_no: 'FR12345678', segment: 'gold' } }))).json();
    await api.call({ method: 'PUT', url: `/v1/users/${p.id}/risk`, body: { rating: 'high', status: 'pending', reason: 'source of funds unclear' } });
    await api.post(`/v1/users/${p.id}/verifications`, { result: 'approved', provider: 'onfido', level: 2 });
    expect((await api.call({ method: 'PUT', url: `/v1/users/${p.id}/kyc-sub-status`, body: { sub_status: 'approved' } })).statusCode).toBe(200);
    await api.patch(`/v1/users/${p.id}`, { occupation: 'Pilot' }, { 'content-type': 'application/merge-patch+json' });
    const biz = (await api.post('/v1/users', business())).json();
    await api.post(`/v1/users/${biz.id}/suspend`, { reason: 'compliance_review' });
    const noRef = (await api.post('/v1/users', individual({ external_ref: undefined }))).json();
    await importRows(a.tenantId, [individual({ external_ref: 'legacy-1', status: 'blocked', status_reason: 'sanctions_match', created_at: '2021-06-01T08:00:00Z' })]);

    const exported = (await api.get('/v1/exports/users')).body;
    const done = await importRows(b.tenantId, parse(exported));
    expect(done.counts).toEqual({ read: 4, imported: 4, existing: 0, rejected: 0 });

    const before = parse(exported).slice(0, -1);
    const after = parse((await client(ctx.app, b.ownerKey).get('/v1/exports/users')).body).slice(0, -1);
    expect(before.find((u) => u.id === p.id)!.custom).toEqual({ account_no: 'FR12345678', segment: 'gold' });
    // The export carries the compliance state as GET answers it; the KYC sub-status travels with KYC.
    expect(before.find((u) => u.id === p.id)).toMatchObject({ kyc: { status: 'verified', sub_status: 'approved' }, risk: { rating: 'high', status: 'pending' } });
    expect(after.find((u) => u.external_ref === p.external_ref)).toMatchObject({ kyc: { status: 'verified', sub_status: 'approved' }, risk: null });
    // A risk rating is the source's officers' decision, with its reason and history there: not imported.
    const strip = ({ id: _i, version: _v, updated_at: _u, external_ref: _e, risk: _r, ...rest }: Record<string, unknown>) => rest;
    const byRef = new Map(after.map((u) => [u.external_ref, u]));
    for (const u of before) {
      const ref = u.external_ref ?? `kyclo:${u.id}`;
      expect(strip(byRef.get(ref)!), String(ref)).toEqual(strip(u));
    }
    expect(byRef.has(`kyclo:${noRef.id}`)).toBe(true);
    // Importing the same export again (its trailer line skipped, as the first time) creates nothing.
    const again = await importRows(b.tenantId, parse(exported));
    expect(again.counts).toMatchObject({ imported: 0, existing: 4 });
  });

  it('a user awaiting erasure does not come back through export → import: its row is refused (erasure_pending), an erased one’s too (erased); the others are imported', async () => {
    const a = await createTenant(ctx.db);
    const b = await createTenant(ctx.db);
    const api = client(ctx.app, a.ownerKey);
    const kept = (await api.post('/v1/users', individual({ first_name: 'Kept' }))).json();
    const pending = (await api.post('/v1/users', individual({ first_name: 'Forgetme', email: 'forget.me@example.com' }))).json();
    expect((await api.post(`/v1/users/${pending.id}/erasure`, { requested_by: 'user' })).statusCode).toBe(202);
    // Erased now: retention 0 from here on (the request above keeps its five years).
    expect((await api.call({ method: 'PUT', url: '/v1/policy', body: { retention: { erasure_after_days: 0 } } })).statusCode).toBe(200);
    const gone = (await api.post('/v1/users', individual({ first_name: 'Gone' }))).json();
    expect((await api.post(`/v1/users/${gone.id}/erasure`, { requested_by: 'user' })).statusCode).toBe(202);
    expect((await services.erasure.sweep()).erased).toContain(gone.id);

    const exported = parse((await api.get('/v1/exports/users')).body);
    expect(exported.find((u) => u.id === pending.id)).toMatchObject({ first_name: 'Forgetme', erasure: { erased_at: null } });
    expect(exported.find((u) => u.id === gone.id)).toMatchObject({ external_ref: null, erasure: { erased_at: expect.any(String) } });
    const done = await importRows(b.tenantId, exported);
    expect(done.counts).toEqual({ read: 3, imported: 1, existing: 0, rejected: 2 });
    const users = await ctx.db.selectFrom('users').select(['external_ref', 'profile']).where('tenant_id', '=', b.tenantId).execute();
    expect(users.map((u) => u.external_ref)).toEqual([kept.external_ref]);
    const lineOf = (id: string) => exported.findIndex((u) => u.id === id) + 1;
    const errors = await ctx.db.selectFrom('import_errors').select(['line', 'field', 'code', 'message']).where('tenant_id', '=', b.tenantId).orderBy('line').orderBy('n').execute();
    expect(errors.filter((e) => e.field === 'erasure').map((e) => ({ ...e, line: Number(e.line) })).sort((x, y) => x.line - y.line)).toEqual([
      { line: lineOf(pending.id), field: 'erasure', code: 'erasure_pending', message: expect.stringContaining('awaits erasure at its source') },
      { line: lineOf(gone.id), field: 'erasure', code: 'erased', message: expect.stringContaining('erased at its source') },
    ].sort((x, y) => x.line - y.line));
  });
});
