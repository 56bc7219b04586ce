// Nothing crosses tenants: another tenant's id answers 404 (never 403, never data), every write
// attempt on it leaves the owning tenant's rows exactly as they were, and no list shows it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, createTenant, createTestContext, type Client, type Response, type TestContext } from './helpers/app.js';
import { business, individual } from './helpers/factories.js';

const SURNAME = 'Quillfeather';

interface TenantFixture {
  tenantId: string;
  ownerKeyId: string;
  owner: Client;
  admin: { key: string; id: string };
  userIds: string[];
  eventIds: string[];
  auditIds: string[];
  keyIds: string[];
  externalRef: string;
  email: string;
}

let ctx: TestContext;
let A: TenantFixture;
let B: TenantFixture;

async function setUpTenant(label: string, externalRef: string): Promise<TenantFixture> {
  const t = await createTenant(ctx.db);
  const owner = client(ctx.app, t.ownerKey);
  const admin = await createKey(ctx.db, t.tenantId, 'ADMIN');
  const email = `${SURNAME.toLowerCase()}@${label}.example.com`;
  const person = await owner.post('/v1/users', individual({ external_ref: externalRef, last_name: SURNAME, email }));
  expect(person.statusCode, person.body).toBe(201);
  const company = await owner.post('/v1/users', business());
  expect(company.statusCode, company.body).toBe(201);
  const patched = await owner.patch(`/v1/users/${person.json().id}`, { phone: '+33622222222' });
  expect(patched.statusCode, patched.body).toBe(200);
  const minted = await owner.post('/v1/api-keys', { role: 'DEVELOPER', name: `${label} developer` });
  expect(minted.statusCode, minted.body).toBe(201);

  const ids = async (table: 'events' | 'audit_entries' | 'api_keys' | 'users') =>
    (await ctx.db.selectFrom(table).select('id').where('tenant_id', '=', t.tenantId).execute()).map((r) => r.id);
  return {
    tenantId: t.tenantId,
    ownerKeyId: t.ownerKeyId,
    owner,
    admin,
    userIds: await ids('users'),
    eventIds: await ids('events'),
    auditIds: await ids('audit_entries'),
    keyIds: await ids('api_keys'),
    externalRef,
    email,
  };
}

/** Everything a tenant holds, minus last_used_at (bookkeeping written by its own key's use). */
async function holdings(tenantId: string) {
  const [users, apiKeys, audit, events] = await Promise.all([
    ctx.db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).orderBy('id').execute(),
    ctx.db
      .selectFrom('api_keys')
      .select(['id', 'name', 'role', 'prefix', 'key_hash', 'created_by', 'created_at', 'expires_at', 'revoked_at'])
      .where('tenant_id', '=', tenantId)
      .orderBy('id')
      .execute(),
    ctx.db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId).orderBy('seq').execute(),
    ctx.db.selectFrom('events').selectAll().where('tenant_id', '=', tenantId).orderBy('seq').execute(),
  ]);
  return { users, apiKeys, audit, events };
}

function expectNotFound(res: Response, code: string) {
  expect(res.statusCode, res.body).toBe(404);
  expect(res.headers['content-type']).toContain('application/problem+json');
  expect(res.json()).toMatchObject({ status: 404, code });
  // The problem says nothing about what the other tenant holds.
  expect(res.body).not.toContain(SURNAME);
  expect(res.body).not.toContain(A.email);
  expect(res.body).not.toContain(A.tenantId);
}

/** Any mention of one of A's ids, anywhere in a response body. */
const aIdsIn = (body: string) =>
  [...A.userIds, ...A.eventIds, ...A.auditIds, ...A.keyIds, A.tenantId].filter((id) => body.includes(id));

beforeAll(async () => {
  ctx = await createTestContext();
  A = await setUpTenant('tenant-a', 'shared-ref-1');
  // B deliberately reuses A's external_ref and surname: per-tenant uniqueness, and searches that would match A.
  B = await setUpTenant('tenant-b', 'shared-ref-1');
});
afterAll(() => ctx.close());

describe("tenant B's keys on tenant A's ids", () => {
  it("GET /v1/users/{id} of A's users answers 404 user.not_found, with none of A's data", async () => {
    for (const id of A.userIds) {
      expectNotFound(await B.owner.get(`/v1/users/${id}`), 'user.not_found');
    }
  });

  it.each([
    ['an allowed field', { email: 'takeover@evil.example.com' }],
    ['a field the policy denies', { country: 'DE' }],
    ['a read-only field', { status: 'blocked' }],
    ['a field of the other user type', { legal_name: 'Evil Ltd' }],
  ])("PATCH /v1/users/{id} of A's user with %s answers 404, and A's rows and audit log are unchanged", async (_label, body) => {
    const before = await holdings(A.tenantId);
    const bBefore = await holdings(B.tenantId);
    expectNotFound(await B.owner.patch(`/v1/users/${A.userIds[0]}`, body), 'user.not_found');
    expectNotFound(await B.owner.call({ method: 'PATCH', url: `/v1/users/${A.userIds[0]}`, body, headers: { 'if-match': '"2"' } }), 'user.not_found');
    expect(await holdings(A.tenantId)).toEqual(before);
    // Nor is the attempt recorded in B's log against A's user (that would leak A's id into B's audit trail as real).
    const bAfter = await holdings(B.tenantId);
    expect(bAfter.users).toEqual(bBefore.users);
    expect(bAfter.events).toEqual(bBefore.events);
    expect(bAfter.audit.filter((e) => e.target_id === A.userIds[0] || e.user_id === A.userIds[0])).toEqual([]);
  });

  it("DELETE /v1/api-keys/{id} of A's keys answers 404 api_key.not_found; A's keys stay active and keep working", async () => {
    const before = await holdings(A.tenantId);
    for (const id of A.keyIds) {
      expectNotFound(await B.owner.delete(`/v1/api-keys/${id}`), 'api_key.not_found');
    }
    expect(await holdings(A.tenantId)).toEqual(before);
    expect(before.apiKeys.every((k) => k.revoked_at === null)).toBe(true);
    expect((await A.owner.get('/v1/api-keys')).statusCode).toBe(200);
    expect((await client(ctx.app, A.admin.key).get('/v1/users')).statusCode).toBe(200);
  });

  it("an ADMIN of B gets 404, not 403, for A's OWNER key: the other tenant's key does not exist for it", async () => {
    const before = await holdings(A.tenantId);
    const res = await client(ctx.app, B.admin.key).delete(`/v1/api-keys/${A.ownerKeyId}`);
    expectNotFound(res, 'api_key.not_found');
    expect(await holdings(A.tenantId)).toEqual(before);
  });

  it("GET /v1/events/{id} of A's events answers 404 event.not_found", async () => {
    expect(A.eventIds.length).toBeGreaterThanOrEqual(3);
    for (const id of A.eventIds) {
      expectNotFound(await B.owner.get(`/v1/events/${id}`), 'event.not_found');
    }
  });

  it("A's keys are unknown in B: they still authenticate as A, and see A's data only", async () => {
    const res = await A.owner.get(`/v1/users/${B.userIds[0]}`);
    expectNotFound(res, 'user.not_found');
    expect((await A.owner.get(`/v1/users/${A.userIds[0]}`)).statusCode).toBe(200);
  });
});

describe("tenant B's lists", () => {
  const bList = async (url: string) => {
    const res = await B.owner.get(url);
    expect(res.statusCode, res.body).toBe(200);
    expect(aIdsIn(res.body)).toEqual([]);
    return res.json().data as Array<Record<string, unknown>>;
  };

  it("GET /v1/users shows B's users and none of A's", async () => {
    const data = await bList('/v1/users?limit=200');
    expect(data.map((u) => u.id).sort()).toEqual([...B.userIds].sort());
  });

  it("GET /v1/users?q=… matching users of both tenants returns only B's", async () => {
    for (const q of [SURNAME.toLowerCase(), SURNAME, 'shared-ref', 'quill']) {
      const data = await bList(`/v1/users?q=${encodeURIComponent(q)}`);
      expect(data.length, q).toBeGreaterThan(0);
      expect(data.every((u) => B.userIds.includes(u.id as string)), q).toBe(true);
    }
    // A's email is A's alone: B's search finds nothing.
    expect(await bList(`/v1/users?q=${encodeURIComponent(A.email)}`)).toEqual([]);
  });

  it("GET /v1/users?external_ref= with a ref both tenants use returns only B's user", async () => {
    const data = await bList(`/v1/users?external_ref=${A.externalRef}`);
    expect(data).toHaveLength(1);
    expect(B.userIds).toContain(data[0]!.id);
  });

  it("GET /v1/api-keys shows B's keys and none of A's", async () => {
    const data = await bList('/v1/api-keys?limit=200');
    expect(data.map((k) => k.id).sort()).toEqual(expect.arrayContaining([...B.keyIds].sort()));
    expect(data.every((k) => !A.keyIds.includes(k.id as string))).toBe(true);
  });

  it("GET /v1/events shows B's events and none of A's, also when filtered by A's user id", async () => {
    const data = await bList('/v1/events?limit=200');
    expect(data.map((e) => e.id).sort()).toEqual([...B.eventIds].sort());
    expect(await bList(`/v1/events?user_id=${A.userIds[0]}`)).toEqual([]);
    expect(await bList('/v1/events?type=user.created&limit=200')).toHaveLength(B.userIds.length);
  });

  it("GET /v1/audit-events shows B's entries and none of A's, also when filtered by A's user or A's key", async () => {
    const data = await bList('/v1/audit-events?limit=200');
    expect(data.length).toBeGreaterThanOrEqual(B.auditIds.length);
    expect(data.every((e) => !A.auditIds.includes(e.id as string))).toBe(true);
    expect(await bList(`/v1/audit-events?user_id=${A.userIds[0]}`)).toEqual([]);
    expect(await bList(`/v1/audit-events?actor=${A.ownerKeyId}`)).toEqual([]);
  });

  it('A still sees exactly its own data, unchanged, afterwards', async () => {
    const users = (await A.owner.get('/v1/users?limit=200')).json().data.map((u: { id: string }) => u.id);
    expect(users.sort()).toEqual([...A.userIds].sort());
    const row = await ctx.db.selectFrom('users').selectAll().where('tenant_id', '=', A.tenantId).where('external_ref', '=', A.externalRef).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ version: 2, status: 'active', country: 'FR' });
    expect(row.profile).toMatchObject({ email: A.email, last_name: SURNAME, phone: '+33622222222' });
    const user = await A.owner.get(`/v1/users/${row.id}`);
    expect(user.statusCode).toBe(200);
    expect(user.json()).toMatchObject({ id: row.id, email: A.email, version: 2 });
  });
});
