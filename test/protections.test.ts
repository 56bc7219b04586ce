import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;

beforeAll(async () => ({ ctx, api, tenantId } = await openTenantContext()));
afterAll(() => ctx.close());

const countUsers = async (ref: string) => (await ctx.db.selectFrom('users').select('id').where('external_ref', '=', ref).execute()).length;

describe('Idempotency-Key', () => {
  it('replays the first response byte for byte: status, body, Location, ETag; one user', async () => {
    const body = individual();
    const headers = { 'idempotency-key': `create-${body.external_ref}` };
    const first = await api.post('/v1/users', body, headers);
    expect(first.statusCode).toBe(201);
    const again = await api.post('/v1/users', body, headers);
    expect(again.statusCode).toBe(201);
    expect(again.body).toBe(first.body);
    expect(again.headers.location).toBe(first.headers.location);
    expect(again.headers.etag).toBe(first.headers.etag);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(await countUsers(body.external_ref)).toBe(1);
  });

  it('refuses the same key with another body (422), and is scoped to the API key', async () => {
    const body = individual();
    await api.post('/v1/users', body, { 'idempotency-key': 'k-reuse' });
    const reused = await api.post('/v1/users', { ...body, first_name: 'Other' }, { 'idempotency-key': 'k-reuse' });
    expect(reused.statusCode).toBe(422);
    expect(reused.json().code).toBe('idempotency.key_reused');
    const other = client(ctx.app, (await createKey(ctx.db, tenantId, 'ADMIN')).key);
    const fresh = individual();
    expect((await other.post('/v1/users', fresh, { 'idempotency-key': 'k-reuse' })).statusCode).toBe(201);
    expect(await countUsers(fresh.external_ref)).toBe(1);
  });

  it('stores and replays a 4xx as well; refuses a key over 255 characters', async () => {
    const bad = individual({ country: 'XX' });
    const first = await api.post('/v1/users', bad, { 'idempotency-key': 'k-invalid' });
    expect(first.statusCode).toBe(400);
    const again = await api.post('/v1/users', bad, { 'idempotency-key': 'k-invalid' });
    expect(again.statusCode).toBe(400);
    expect(again.json().errors).toEqual(first.json().errors);
    const long = await api.post('/v1/users', individual(), { 'idempotency-key': 'x'.repeat(256) });
    expect(long.statusCode).toBe(400);
    expect(long.json().code).toBe('idempotency.key_invalid');
    expect((await api.post('/v1/users', individual(), { 'idempotency-key': 'x'.repeat(255) })).statusCode).toBe(201);
  });

  it('50 concurrent identical requests with one key: exactly one user; the rest replay or answer 409 in progress', async () => {
    const body = individual();
    const results = await Promise.all(Array.from({ length: 50 }, () => api.post('/v1/users', body, { 'idempotency-key': 'k-race' })));
    expect(results.every((r) => r.statusCode === 201 || (r.statusCode === 409 && r.json().code === 'idempotency.in_progress'))).toBe(true);
    expect(await countUsers(body.external_ref)).toBe(1);
    const created = results.filter((r) => r.statusCode === 201);
    expect(new Set(created.map((r) => r.json().id)).size).toBe(1);
  });
});

describe('what idempotency keeps', () => {
  it('seals stored bodies, never stores a secret shown once, and forgets a user’s responses when the user is erased', async () => {
    const body = individual();
    const created = await api.post('/v1/users', body, { 'idempotency-key': 'k-sealed' });
    const row = await ctx.db.selectFrom('idempotency_keys').selectAll().where('key', '=', 'k-sealed').executeTakeFirstOrThrow();
    expect(row.response_body_enc).toMatch(/^km1\./);
    expect(JSON.stringify(row)).not.toContain(body.email);
    expect(row.subject_user_ids).toEqual([created.json().id]);

    const minted = await api.post('/v1/api-keys', { role: 'READER', name: 'once' }, { 'idempotency-key': 'k-secret' });
    expect(minted.statusCode).toBe(201);
    const stored = await ctx.db.selectFrom('idempotency_keys').selectAll().where('key', '=', 'k-secret').executeTakeFirstOrThrow();
    expect(stored.response_body_enc).toBeNull();
    const replay = await api.post('/v1/api-keys', { role: 'READER', name: 'once' }, { 'idempotency-key': 'k-secret' });
    expect(replay.statusCode).toBe(409);
    expect(replay.json().code).toBe('idempotency.not_replayable');
    expect(replay.headers.location).toBe(minted.headers.location);
    expect(replay.body).not.toContain(minted.json().key);

    const { createErasureService } = await import('../src/modules/erasure/erasure.service.js');
    const { createLifecycleService } = await import('../src/modules/lifecycle/lifecycle.service.js');
    await api.call({ method: 'PUT', url: '/v1/policy', body: { retention: { erasure_after_days: 0 }, rate_limit: { requests_per_minute: 6000 } } });
    await api.post(`/v1/users/${created.json().id}/erasure`, { requested_by: 'user' });
    await createErasureService({ db: ctx.db, lifecycle: createLifecycleService({ db: ctx.db, keyring: ctx.keyring }), blobs: ctx.blobs, keyring: ctx.keyring }).sweep();
    expect(await ctx.db.selectFrom('idempotency_keys').select('key').where('key', '=', 'k-sealed').execute()).toEqual([]);
    await api.call({ method: 'PUT', url: '/v1/policy', body: {} });
  });
});

describe('rate limits', () => {
  it('limit each API key per the tenant policy, with RateLimit headers on every response and 429 + Retry-After past it', async () => {
    const admin = await createKey(ctx.db, tenantId, 'ADMIN');
    const limited = client(ctx.app, admin.key);
    await api.call({ method: 'PUT', url: '/v1/policy', body: { rate_limit: { requests_per_minute: 5 } } });
    const answers = [];
    for (let i = 0; i < 7; i++) answers.push(await limited.get('/v1/enumerations/genders'));
    expect(answers.map((r) => r.statusCode)).toEqual([200, 200, 200, 200, 200, 429, 429]);
    expect(answers[0]!.headers['ratelimit-policy']).toBe('5;w=60');
    expect(answers[0]!.headers.ratelimit).toMatch(/^limit=5, remaining=4, reset=\d+$/);
    const refused = answers[5]!;
    expect(refused.json()).toMatchObject({ code: 'rate_limit.exceeded', status: 429 });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    // Other keys have their own windows.
    const other = client(ctx.app, (await createKey(ctx.db, tenantId, 'READER')).key);
    expect((await other.get('/v1/enumerations/genders')).statusCode).toBe(200);
    await api.call({ method: 'PUT', url: '/v1/policy', body: {} });
  });
});

describe('hardening', () => {
  it('sends security headers and no-store on API responses', async () => {
    const res = await api.get('/v1/users?limit=1');
    expect(res.headers).toMatchObject({
      'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer',
      'cache-control': 'no-store', 'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
    });
    expect(res.headers['strict-transport-security']).toContain('max-age=');
  });
});
