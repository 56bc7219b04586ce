// Counts per tenant are bounded: a tenant cannot grow its webhook endpoints or active API keys
// without end (each is a row, a secret, a fan-out target or a lookup hit). Past the bound: 409
// problem+json with a stable code, nothing created, nothing audited. Racing creations at the bound
// cannot both pass (the count is taken under a lock on the tenant's row).
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_WEBHOOK_ENDPOINTS } from '../src/modules/webhooks/webhooks.service.js';
import { MAX_ACTIVE_API_KEYS } from '../src/modules/api-keys/api-keys.service.js';
import { client, createTenant, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;

beforeAll(async () => ({ ctx, api, tenantId } = await openTenantContext()));
afterAll(() => ctx.close());

const count = async (table: 'webhook_endpoints' | 'api_keys', tenant: string, extra = sql`true`) =>
  Number((await sql<{ n: string }>`select count(*) as n from ${sql.table(table)} where tenant_id = ${tenant} and ${extra}`.execute(ctx.db)).rows[0]!.n);
const audited = async (tenant: string, action: string) =>
  Number((await sql<{ n: string }>`select count(*) as n from audit_entries where tenant_id = ${tenant} and action = ${action}`.execute(ctx.db)).rows[0]!.n);

/** Fills a tenant up to `n` rows of `table` directly in SQL (the HTTP path is what is under test). */
async function fill(table: 'webhook_endpoints' | 'api_keys', tenant: string, n: number) {
  if (table === 'webhook_endpoints') {
    await sql`insert into webhook_endpoints (tenant_id, id, url, event_types, enabled, secret_enc)
              select ${tenant}, 'whe_' || lpad(i::text, 26, '0'), 'https://hooks.example.com/' || i, '{}', true, 'x'
                from generate_series(1, ${n}) i`.execute(ctx.db);
  } else {
    await sql`insert into api_keys (tenant_id, id, name, role, prefix, key_hash)
              select ${tenant}, 'key_' || lpad(i::text, 26, '0'), 'filler', 'READER', 'kyclo_live_fill', sha256((${tenant} || i)::bytea)
                from generate_series(1, ${n}) i`.execute(ctx.db);
  }
}

describe('webhook endpoints per tenant', () => {
  it(`a tenant registers at most ${MAX_WEBHOOK_ENDPOINTS}: the next answers 409 webhook_endpoint.limit_reached and creates nothing`, async () => {
    const t = await createTenant(ctx.db);
    const owner = client(ctx.app, t.ownerKey);
    await fill('webhook_endpoints', t.tenantId, MAX_WEBHOOK_ENDPOINTS - 1);
    expect((await owner.post('/v1/webhook-endpoints', { url: 'https://hooks.example.com/last' })).statusCode).toBe(201);
    const auditsBefore = await audited(t.tenantId, 'webhook_endpoint.created');
    const res = await owner.post('/v1/webhook-endpoints', { url: 'https://hooks.example.com/one-too-many' });
    expect(res.statusCode, res.body).toBe(409);
    expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(res.json()).toMatchObject({ code: 'webhook_endpoint.limit_reached', limit: MAX_WEBHOOK_ENDPOINTS });
    expect(await count('webhook_endpoints', t.tenantId)).toBe(MAX_WEBHOOK_ENDPOINTS);
    expect(await audited(t.tenantId, 'webhook_endpoint.created')).toBe(auditsBefore);
    // Deleting one makes room; another tenant was never affected.
    const first = (await owner.get('/v1/webhook-endpoints?limit=1')).json().data[0];
    expect((await owner.delete(`/v1/webhook-endpoints/${first.id}`)).statusCode).toBe(200);
    expect((await owner.post('/v1/webhook-endpoints', { url: 'https://hooks.example.com/again' })).statusCode).toBe(201);
    expect((await api.post('/v1/webhook-endpoints', { url: 'https://hooks.example.com/other-tenant' })).statusCode).toBe(201);
  });

  it('eight creations racing for the last slot: exactly one passes', async () => {
    const t = await createTenant(ctx.db);
    const owner = client(ctx.app, t.ownerKey);
    await fill('webhook_endpoints', t.tenantId, MAX_WEBHOOK_ENDPOINTS - 1);
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => owner.post('/v1/webhook-endpoints', { url: `https://hooks.example.com/race-${i}` })),
    );
    expect(results.map((r) => r.statusCode).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    expect(await count('webhook_endpoints', t.tenantId)).toBe(MAX_WEBHOOK_ENDPOINTS);
    expect(await audited(t.tenantId, 'webhook_endpoint.created')).toBe(1);
  });
});

describe('API keys per tenant', () => {
  it(`a tenant holds at most ${MAX_ACTIVE_API_KEYS} active keys: the next answers 409 api_key.limit_reached and creates nothing`, async () => {
    const t = await createTenant(ctx.db);
    const owner = client(ctx.app, t.ownerKey);
    await fill('api_keys', t.tenantId, MAX_ACTIVE_API_KEYS - 1); // plus the OWNER key: the tenant is full
    const auditsBefore = await audited(t.tenantId, 'api_key.created');
    const res = await owner.post('/v1/api-keys', { role: 'READER', name: 'one too many' });
    expect(res.statusCode, res.body).toBe(409);
    expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(res.json()).toMatchObject({ code: 'api_key.limit_reached', limit: MAX_ACTIVE_API_KEYS });
    expect(await count('api_keys', t.tenantId)).toBe(MAX_ACTIVE_API_KEYS);
    expect(await audited(t.tenantId, 'api_key.created')).toBe(auditsBefore);
  });

  it('revoked and expired keys do not count: revoking one makes room for exactly one', async () => {
    const t = await createTenant(ctx.db);
    const owner = client(ctx.app, t.ownerKey);
    await fill('api_keys', t.tenantId, MAX_ACTIVE_API_KEYS - 1);
    await sql`update api_keys set expires_at = now() - interval '1 day' where tenant_id = ${t.tenantId} and id = 'key_00000000000000000000000001'`.execute(ctx.db);
    expect((await owner.post('/v1/api-keys', { role: 'READER', name: 'in the expired one’s place' })).statusCode).toBe(201);
    expect((await owner.post('/v1/api-keys', { role: 'READER', name: 'full again' })).statusCode).toBe(409);
    expect((await owner.delete('/v1/api-keys/key_00000000000000000000000002')).statusCode).toBe(200);
    expect((await owner.post('/v1/api-keys', { role: 'READER', name: 'in the revoked one’s place' })).statusCode).toBe(201);
    expect(await count('api_keys', t.tenantId, sql`revoked_at is null and (expires_at is null or expires_at > now())`)).toBe(MAX_ACTIVE_API_KEYS);
  });

  it('eight creations racing for the last slot: exactly one passes', async () => {
    const t = await createTenant(ctx.db);
    const owner = client(ctx.app, t.ownerKey);
    await fill('api_keys', t.tenantId, MAX_ACTIVE_API_KEYS - 2);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => owner.post('/v1/api-keys', { role: 'READER', name: `race ${i}` })));
    expect(results.map((r) => r.statusCode).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    expect(await count('api_keys', t.tenantId)).toBe(MAX_ACTIVE_API_KEYS);
    const created = await sql<{ n: string }>`select count(*) as n from audit_entries where tenant_id = ${t.tenantId} and action = 'api_key.created' and target_id like 'key_%' and target_id not like 'key_fill%'`.execute(ctx.db);
    expect(Number(created.rows[0]!.n)).toBe(2); // the OWNER key and the one winner
  });

  it('the lock a creation takes on the tenant never holds up that tenant’s user writes', async () => {
    // A creation takes the tenant row FOR NO KEY UPDATE; inserts referencing the tenant take KEY SHARE.
    await ctx.db.transaction().execute(async (tx) => {
      await sql`select 1 from tenants where id = ${tenantId} for no key update`.execute(tx);
      const res = await Promise.race([
        api.post('/v1/users', individual()),
        new Promise<null>((r) => setTimeout(() => r(null), 3000)),
      ]);
      expect(res, 'a user write waited for the tenant lock').not.toBeNull();
      expect(res!.statusCode, res!.body).toBe(201);
    });
  });
});
