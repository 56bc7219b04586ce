// Issue 16 §2, Didit's shapes: a user created already flagged (one atomic call, audited like a
// transition), read back by its external_ref (case-sensitive), and a batch close that also requests
// each user's erasure, with the same per-item results.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createTenant, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
let tenantId: string;
let api: Client;

beforeAll(async () => ({ ctx, tenantId, api } = await openTenantContext()));
afterAll(() => ctx.close());

const rowsOf = (table: 'status_changes' | 'audit_entries' | 'events', id: string) =>
  ctx.db.selectFrom(table).selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).execute();

describe('creating a user with an initial status', () => {
  it('flagged: the user, its first status change, two audit entries and two events, in one call', async () => {
    const res = await api.post('/v1/users', individual({ status: 'flagged', status_reason: 'compliance_review' }));
    expect(res.statusCode, res.body).toBe(201);
    const user = res.json();
    expect(user).toMatchObject({ status: 'flagged', status_reason: 'compliance_review', version: 1 });
    const [change] = await rowsOf('status_changes', user.id);
    expect(change).toMatchObject({ from_status: 'active', to_status: 'flagged', reason: 'compliance_review', origin: 'operator', actor_role: 'OWNER' });
    const history = (await api.get(`/v1/users/${user.id}/status-changes`)).json().data;
    expect(history).toEqual([expect.objectContaining({ id: change!.id, from: 'active', to: 'flagged', reason: 'compliance_review' })]);
    const audit = (await rowsOf('audit_entries', user.id)).sort((a, b) => Number(a.seq) - Number(b.seq));
    expect(audit.map((a) => [a.action, a.details])).toEqual([
      ['user.created', { status: 'flagged' }],
      ['user.status_changed', { from: 'active', to: 'flagged', reason: 'compliance_review', origin: 'operator', at_creation: true }],
    ]);
    const events = (await rowsOf('events', user.id)).sort((a, b) => Number(a.seq) - Number(b.seq));
    expect(events.map((e) => e.type)).toEqual(['user.created', 'user.status_changed']);
    expect(events[1]!.data).toEqual({ user_id: user.id, status_change_id: change!.id, from: 'active', to: 'flagged', reason: 'compliance_review', origin: 'operator', at_creation: true });
    // Flagged from the first moment: withdrawals and exchanges are under review.
    const caps = (await api.get(`/v1/users/${user.id}/capabilities`)).json().capabilities;
    expect(caps.withdrawals).toEqual({ allowed: false, reason: 'under_review' });
    // And it leaves flagged like any flagged user.
    expect((await api.post(`/v1/users/${user.id}/status-changes`, { status: 'active', reason: 'review_cleared' })).statusCode).toBe(201);
  });

  it('with an Idempotency-Key, a replay answers the same user and writes nothing more', async () => {
    const body = individual({ status: 'flagged' });
    const key = { 'idempotency-key': `flagged-${body.external_ref}` };
    const first = await api.post('/v1/users', body, key);
    const second = await api.post('/v1/users', body, key);
    expect(first.statusCode).toBe(201);
    expect(second.statusCode).toBe(201);
    expect(second.body).toBe(first.body);
    expect(await rowsOf('status_changes', first.json().id)).toHaveLength(1);
    expect((await rowsOf('events', first.json().id)).map((e) => e.type).sort()).toEqual(['user.created', 'user.status_changed']);
  });

  it('active (or no status) stays the one-statement create with no status change', async () => {
    for (const extra of [{}, { status: 'active' }]) {
      const user = (await api.post('/v1/users', individual(extra))).json();
      expect(user.status).toBe('active');
      expect(await rowsOf('status_changes', user.id)).toEqual([]);
      expect((await rowsOf('events', user.id)).map((e) => e.type)).toEqual(['user.created']);
    }
  });

  it('a taken external_ref answers 409 and leaves no status change, audit entry or event behind', async () => {
    const first = individual();
    const existing = (await api.post('/v1/users', first)).json();
    const before = await ctx.db.selectFrom('status_changes').select('id').where('tenant_id', '=', tenantId).execute();
    const res = await api.post('/v1/users', individual({ external_ref: first.external_ref, status: 'flagged' }));
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'user.exists', existing_id: existing.id });
    expect(await ctx.db.selectFrom('status_changes').select('id').where('tenant_id', '=', tenantId).execute()).toEqual(before);
    expect((await rowsOf('events', existing.id)).map((e) => e.type)).toEqual(['user.created']);
  });

  it('refuses any other initial status, and a reason without a status, with 400', async () => {
    const count = async () => (await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).execute()).length;
    const n = await count();
    for (const extra of [{ status: 'suspended', status_reason: 'other' }, { status: 'closed' }, { status_reason: 'other' }, { status: 'flagged', status_reason: 'not_a_code' }]) {
      const res = await api.post('/v1/users', individual(extra));
      expect(res.statusCode, JSON.stringify(extra)).toBe(400);
      expect(res.json().errors[0].field).toMatch(/^status/);
    }
    expect(await count()).toBe(n);
  });
});

describe('reading a user by external_ref', () => {
  it('finds it exactly, case-sensitively, URL-encoded characters included', async () => {
    const user = (await api.post('/v1/users', individual({ external_ref: 'Didit/Vendor-Data?X#1' }))).json();
    const res = await api.get(`/v1/users/by-external-ref/${encodeURIComponent('Didit/Vendor-Data?X#1')}`);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual((await api.get(`/v1/users/${user.id}`)).json());
    expect(res.headers.etag).toBe(`"${user.version}"`);
    const lower = await api.get(`/v1/users/by-external-ref/${encodeURIComponent('didit/vendor-data?x#1')}`);
    expect(lower.statusCode).toBe(404);
    expect(lower.json().code).toBe('user.not_found');
  });

  it('answers 404 for another tenant’s reference', async () => {
    const body = individual();
    await api.post('/v1/users', body);
    const other = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    const res = await other.get(`/v1/users/by-external-ref/${body.external_ref}`);
    expect(res.statusCode).toBe(404);
    // Exactly what a reference no tenant has gets.
    const none = await other.get('/v1/users/by-external-ref/no-such-ref');
    expect({ ...res.json(), request_id: null }).toEqual({ ...none.json(), request_id: null });
  });
});

describe('batch close with erasure', () => {
  it('closes each open user and requests its erasure; the closed one is scheduled too; the unknown one is not_found', async () => {
    const [a, b, c] = [(await api.post('/v1/users', individual())).json().id, (await api.post('/v1/users', individual())).json().id, (await api.post('/v1/users', individual())).json().id];
    expect((await api.delete(`/v1/users/${c}`, { origin: 'operator', reason: 'other' })).statusCode).toBe(200);
    const res = await api.post('/v1/users/delete', { ids: [a, b, c, 'usr_nope'], origin: 'user', reason: 'user_request', erase: true });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().results).toEqual([
      { id: a, result: 'closed', erasure_scheduled_for: expect.any(String) },
      { id: b, result: 'closed', erasure_scheduled_for: expect.any(String) },
      { id: c, result: 'already_closed', erasure_scheduled_for: expect.any(String) },
      { id: 'usr_nope', result: 'not_found' },
    ]);
    for (const id of [a, b, c]) {
      const u = await ctx.db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirstOrThrow();
      expect(u.status).toBe('closed');
      expect(u.erasure_requested_at).not.toBeNull();
      // Default retention: five years after closure.
      expect(u.erasure_scheduled_for!.getTime() - u.status_changed_at.getTime()).toBe(1827 * 86_400_000);
      const actions = (await rowsOf('audit_entries', id)).map((e) => e.action);
      expect(actions).toContain('user.erasure_scheduled');
      expect((await rowsOf('events', id)).map((e) => e.type)).toContain('user.erasure_scheduled');
    }
    // Closed for the erasure, with the erasure's reason and the batch's origin as who asked.
    expect((await rowsOf('status_changes', a))[0]).toMatchObject({ to_status: 'closed', reason: 'erasure_requested', origin: 'user' });
    // Again: nothing new, the same results but for the already closed ones.
    const again = await api.post('/v1/users/delete', { ids: [a], origin: 'user', reason: 'user_request', erase: true });
    expect(again.json().results).toEqual([{ id: a, result: 'already_closed', erasure_scheduled_for: res.json().results[0].erasure_scheduled_for }]);
    expect((await rowsOf('audit_entries', a)).filter((e) => e.action === 'user.erasure_scheduled')).toHaveLength(1);
  });

  it('without erase closes only, as before', async () => {
    const id = (await api.post('/v1/users', individual())).json().id;
    const res = await api.post('/v1/users/delete', { ids: [id], origin: 'operator', reason: 'other' });
    expect(res.json().results).toEqual([{ id, result: 'closed' }]);
    expect((await ctx.db.selectFrom('users').select('erasure_requested_at').where('id', '=', id).executeTakeFirstOrThrow()).erasure_requested_at).toBeNull();
  });
});
