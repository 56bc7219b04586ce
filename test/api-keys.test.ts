// API keys: minted over HTTP with the secret shown once, stored only as a SHA-256 hash, listed
// without secrets, revoked idempotently, and every failure to authenticate named precisely.
import crypto from 'node:crypto';
import { sql } from 'kysely';
import { KEY_CACHE_MS } from '../src/modules/api-keys/api-keys.repo.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, createTenant, createTestContext, type Client, type Response, type TestContext } from './helpers/app.js';

const SECRET_FORMAT = /^kyclo_live_[A-Za-z0-9]{32}$/;

let ctx: TestContext;
let tenantId: string;
let ownerKeyId: string;
let owner: Client;

beforeAll(async () => {
  ctx = await createTestContext();
  const t = await createTenant(ctx.db);
  tenantId = t.tenantId;
  ownerKeyId = t.ownerKeyId;
  owner = client(ctx.app, t.ownerKey);
});
afterAll(() => ctx.close());

const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest();

const keyRow = (id: string) => ctx.db.selectFrom('api_keys').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirstOrThrow();

const countKeys = async () =>
  Number((await ctx.db.selectFrom('api_keys').select((eb) => eb.fn.countAll<string>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow()).n);

const countAudit = async () =>
  Number((await ctx.db.selectFrom('audit_entries').select((eb) => eb.fn.countAll<string>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow()).n);

const auditFor = (keyId: string, action: string) =>
  ctx.db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId).where('target_id', '=', keyId).where('action', '=', action).execute();

async function mint(body: Record<string, unknown> = {}): Promise<{ res: Response; key: string; id: string }> {
  const res = await owner.post('/v1/api-keys', { role: 'READER', name: 'integration', ...body });
  expect(res.statusCode, res.body).toBe(201);
  const created = res.json();
  return { res, key: created.key, id: created.id };
}

function expectProblem(res: Response, status: number, code: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toContain('application/problem+json');
  expect(res.json()).toMatchObject({ status, code, request_id: res.headers['x-request-id'] });
}

/** last_used_at is written after the response, off the request path: wait for it. */
async function waitForLastUsed(id: string): Promise<Date> {
  for (let i = 0; i < 100; i++) {
    const row = await keyRow(id);
    if (row.last_used_at) return row.last_used_at;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`last_used_at of ${id} was never set`);
}

describe('creating a key', () => {
  it('answers 201 with the secret once, in the kyclo_live_ format, with Location and a display prefix', async () => {
    const res = await owner.post('/v1/api-keys', { role: 'DEVELOPER', name: 'ledger service' });
    expect(res.statusCode).toBe(201);
    const created = res.json();
    expect(created.key).toMatch(SECRET_FORMAT);
    expect(created.id).toMatch(/^key_[0-9A-Z]{26}$/);
    expect(res.headers.location).toBe(`/v1/api-keys/${created.id}`);
    expect(created).toMatchObject({
      name: 'ledger service', role: 'DEVELOPER', created_by: ownerKeyId, expires_at: null, revoked_at: null, last_used_at: null,
    });
    // The prefix identifies the key without revealing it.
    expect(created.key.startsWith(created.prefix)).toBe(true);
    expect(created.prefix.startsWith('kyclo_live_')).toBe(true);
    expect(created.prefix.length).toBeLessThanOrEqual('kyclo_live_'.length + 8);
    expect(created.prefix.length).toBeLessThan(created.key.length);
  });

  it('stores only the SHA-256 hash and the prefix: the plaintext is nowhere in the row, the audit log or the events', async () => {
    const { key, id } = await mint({ name: 'hash check' });
    const row = await keyRow(id);
    expect(Buffer.isBuffer(row.key_hash)).toBe(true);
    expect(row.key_hash.equals(sha256(key))).toBe(true);
    expect(row.prefix).toBe(key.slice(0, row.prefix.length));
    expect(row).toMatchObject({ tenant_id: tenantId, role: 'READER', name: 'hash check', created_by: ownerKeyId });

    const randomPart = key.slice('kyclo_live_'.length);
    for (const [column, value] of Object.entries(row)) {
      const renderings = Buffer.isBuffer(value)
        ? [value.toString('utf8'), value.toString('hex'), value.toString('base64'), value.toString('latin1')]
        : [value instanceof Date ? value.toISOString() : JSON.stringify(value) ?? ''];
      for (const text of renderings) {
        expect(text, `column ${column}`).not.toContain(key);
        expect(text, `column ${column}`).not.toContain(randomPart);
      }
    }
    // Nor in any other table of the database.
    const dump = await sql<{ doc: string }>`
      select coalesce(string_agg(t::text, ' '), '') as doc from (
        select row_to_json(a)::text as t from audit_entries a
        union all select row_to_json(e)::text from events e
        union all select row_to_json(k)::text from api_keys k
        union all select row_to_json(u)::text from users u
        union all select row_to_json(n)::text from tenants n
      ) x`.execute(ctx.db);
    expect(dump.rows[0]!.doc).not.toContain(randomPart);
  });

  it('gives each key a different secret and hash', async () => {
    const a = await mint();
    const b = await mint();
    expect(a.key).not.toBe(b.key);
    expect((await keyRow(a.id)).key_hash.equals((await keyRow(b.id)).key_hash)).toBe(false);
  });

  it('records api_key.created in the audit log with the acting key id, its role, the request id and no secret', async () => {
    const { res, id, key } = await mint({ role: 'COMPLIANCE_OFFICER', name: 'reviewer' });
    const entries = await auditFor(id, 'api_key.created');
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      actor_type: 'api_key', actor_key_id: ownerKeyId, actor_role: 'OWNER', outcome: 'applied',
      target_type: 'api_key', target_id: id, request_id: res.headers['x-request-id'],
      details: { role: 'COMPLIANCE_OFFICER', name: 'reviewer' },
    });
    expect(JSON.stringify(entries[0]!.details)).not.toContain(key);

    const listed = (await owner.get(`/v1/audit-events?action=api_key.created&actor=${ownerKeyId}`)).json();
    expect(listed.data).toContainEqual(
      expect.objectContaining({ action: 'api_key.created', actor: { type: 'api_key', key_id: ownerKeyId, role: 'OWNER' }, target: { type: 'api_key', id } }),
    );
  });

  it('accepts an expiry in the future and echoes it; the key works until then', async () => {
    const expires = new Date(Date.now() + 3600_000).toISOString();
    const { key, id, res } = await mint({ expires_at: expires });
    expect(res.json().expires_at).toBe(expires);
    expect((await keyRow(id)).expires_at?.toISOString()).toBe(expires);
    expect((await client(ctx.app, key).get('/v1/users')).statusCode).toBe(200);
  });

  it('refuses an expiry in the past with 400 naming expires_at, and creates no key and no audit entry', async () => {
    const [keys, audit] = [await countKeys(), await countAudit()];
    const res = await owner.post('/v1/api-keys', { role: 'READER', name: 'stale', expires_at: new Date(Date.now() - 60_000).toISOString() });
    expectProblem(res, 400, 'request.validation_failed');
    expect(res.json().errors).toContainEqual(expect.objectContaining({ field: 'expires_at' }));
    expect(await countKeys()).toBe(keys);
    expect(await countAudit()).toBe(audit);
  });

  it('a key that expires cannot make one that outlives it: no expiry, or a later one, is 400 naming expires_at; at or before its own is made', async () => {
    const expires = new Date(Date.now() + 3600_000).toISOString();
    const { key } = await mint({ role: 'ADMIN', expires_at: expires });
    const contractor = client(ctx.app, key);
    const [keys, audit] = [await countKeys(), await countAudit()];
    for (const body of [{ role: 'ADMIN', name: 'forever' }, { role: 'ADMIN', name: 'later', expires_at: new Date(Date.now() + 7200_000).toISOString() }]) {
      const res = await contractor.post('/v1/api-keys', body);
      expectProblem(res, 400, 'request.validation_failed');
      expect(res.json().errors).toEqual([expect.objectContaining({ field: 'expires_at', code: 'outlives_creator' })]);
    }
    expect([await countKeys(), await countAudit()]).toEqual([keys, audit]);
    const made = await contractor.post('/v1/api-keys', { role: 'DEVELOPER', name: 'until then', expires_at: expires });
    expect(made.statusCode, made.body).toBe(201);
    expect((await keyRow(made.json().id)).expires_at?.toISOString()).toBe(expires);
  });

  it.each([
    ['an unknown role', { role: 'SUPERUSER', name: 'x' }, 'role'],
    ['an empty name', { role: 'READER', name: '' }, 'name'],
    ['a missing name', { role: 'READER' }, 'name'],
    ['an unknown field', { role: 'READER', name: 'x', scopes: ['all'] }, 'scopes'],
    ['a malformed expiry', { role: 'READER', name: 'x', expires_at: 'tomorrow' }, 'expires_at'],
    ['a caller-chosen secret', { role: 'READER', name: 'x', key: 'kyclo_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }, 'key'],
  ])('refuses %s with 400 and creates nothing', async (_label, body, field) => {
    const [keys, audit] = [await countKeys(), await countAudit()];
    const res = await owner.post('/v1/api-keys', body);
    expectProblem(res, 400, 'request.validation_failed');
    expect(res.json().errors).toContainEqual(expect.objectContaining({ field }));
    expect(await countKeys()).toBe(keys);
    expect(await countAudit()).toBe(audit);
  });
});

describe('using a key', () => {
  it('lets a newly minted key call the API with its role', async () => {
    const { key, id } = await mint({ role: 'READER' });
    const reader = client(ctx.app, key);
    expect((await reader.get('/v1/users')).statusCode).toBe(200);
    // READER cannot mint keys: the role is the one it was created with.
    const denied = await reader.post('/v1/api-keys', { role: 'READER', name: 'nope' });
    expectProblem(denied, 403, 'auth.forbidden');
    expect((await keyRow(id)).role).toBe('READER');
  });

  it('sets last_used_at after a request, and shows it in the listing', async () => {
    const { key, id } = await mint();
    expect((await keyRow(id)).last_used_at).toBeNull();
    const before = Date.now();
    expect((await client(ctx.app, key).get('/v1/enumerations')).statusCode).toBe(200);
    const lastUsed = await waitForLastUsed(id);
    expect(lastUsed.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(lastUsed.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    const listed = (await owner.get('/v1/api-keys?limit=200')).json().data.find((k: { id: string }) => k.id === id);
    expect(listed.last_used_at).toBe(lastUsed.toISOString());
  });

  it('answers 401 auth.missing_key with WWW-Authenticate when there is no Authorization header, or not a Bearer one', async () => {
    for (const headers of [{} as Record<string, string>, { authorization: 'Basic dXNlcjpwYXNz' }, { authorization: 'Bearer' }, { authorization: '' }]) {
      const res = await client(ctx.app, null).get('/v1/users', headers);
      expectProblem(res, 401, 'auth.missing_key');
      expect(res.headers['www-authenticate']).toBe('Bearer');
    }
  });

  it('answers 401 auth.invalid_key for a well-formed key that does not exist, and for garbage', async () => {
    const unknown = `kyclo_live_${crypto.randomBytes(24).toString('base64').replace(/[^A-Za-z0-9]/g, 'x').slice(0, 32)}`;
    expect(unknown).toMatch(SECRET_FORMAT);
    for (const key of [unknown, 'not-a-key', `kyclo_test_${'a'.repeat(32)}`, `${unknown}x`]) {
      const res = await client(ctx.app, key).get('/v1/users');
      expectProblem(res, 401, 'auth.invalid_key');
      expect(res.headers['www-authenticate']).toBe('Bearer');
    }
  });

  it('authenticates before validating: a bad body without a valid key is 401, and nothing is created', async () => {
    const keys = await countKeys();
    const res = await client(ctx.app, null).post('/v1/api-keys', { role: 'NOPE' });
    expectProblem(res, 401, 'auth.missing_key');
    const bad = await client(ctx.app, 'kyclo_live_nonexistent0000000000000000').post('/v1/api-keys', { role: 'OWNER', name: 'x' });
    expectProblem(bad, 401, 'auth.invalid_key');
    expect(await countKeys()).toBe(keys);
  });

  it('answers 401 auth.key_revoked for a key whose expires_at has passed (set in the database; seen within the key cache window)', async () => {
    const { key, id } = await mint();
    const api = client(ctx.app, key);
    expect((await api.get('/v1/users')).statusCode).toBe(200);
    await ctx.db.updateTable('api_keys').set({ expires_at: new Date(Date.now() - 1000) }).where('tenant_id', '=', tenantId).where('id', '=', id).execute();
    await new Promise((r) => setTimeout(r, KEY_CACHE_MS + 20));
    const res = await api.get('/v1/users');
    expectProblem(res, 401, 'auth.key_revoked');
    expect(res.headers['www-authenticate']).toBe('Bearer');
  });
});

describe('listing keys', () => {
  it('never includes a secret or a hash, for any key', async () => {
    const minted = [await mint({ name: 'list a' }), await mint({ name: 'list b', role: 'ADMIN' })];
    const res = await owner.get('/v1/api-keys?limit=200');
    expect(res.statusCode).toBe(200);
    const { data, next_cursor } = res.json();
    expect(next_cursor).toBeNull();
    expect(data.length).toBe(await countKeys());
    for (const k of data) {
      expect(Object.keys(k).sort()).toEqual(
        ['created_at', 'created_by', 'expires_at', 'id', 'last_used_at', 'name', 'prefix', 'revoked_at', 'role'],
      );
    }
    for (const m of minted) {
      expect(res.body).not.toContain(m.key);
      expect(res.body).not.toContain(m.key.slice('kyclo_live_'.length));
      expect(data).toContainEqual(expect.objectContaining({ id: m.id, prefix: m.key.slice(0, data.find((k: { id: string }) => k.id === m.id).prefix.length) }));
    }
    expect(res.body).not.toContain(sha256(minted[0]!.key).toString('hex'));
    expect(res.body).not.toContain(sha256(minted[0]!.key).toString('base64'));
  });

  it('pages with limit and cursor without repeating or skipping a key', async () => {
    for (let i = 0; i < 3; i++) await mint({ name: `page ${i}` });
    const all = (await owner.get('/v1/api-keys?limit=200')).json().data.map((k: { id: string }) => k.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: Response = await owner.get(`/v1/api-keys?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(res.statusCode).toBe(200);
      const page = res.json();
      expect(page.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.data.map((k: { id: string }) => k.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toEqual(all);
  });
});

describe('revoking a key', () => {
  it('revokes: 200 with revoked_at, the row is marked, the key stops working with 401 auth.key_revoked', async () => {
    const { key, id } = await mint({ role: 'DEVELOPER' });
    const api = client(ctx.app, key);
    expect((await api.get('/v1/users')).statusCode).toBe(200);

    const res = await owner.delete(`/v1/api-keys/${id}`);
    expect(res.statusCode).toBe(200);
    const revoked = res.json();
    expect(revoked).toMatchObject({ id, role: 'DEVELOPER' });
    expect(revoked).not.toHaveProperty('key');
    expect(Date.parse(revoked.revoked_at)).not.toBeNaN();
    expect((await keyRow(id)).revoked_at?.toISOString()).toBe(revoked.revoked_at);

    const users = await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).execute();
    const after = await api.post('/v1/users', { type: 'individual', country: 'FR', first_name: 'A', last_name: 'B' });
    expectProblem(after, 401, 'auth.key_revoked');
    expect(after.headers['www-authenticate']).toBe('Bearer');
    expectProblem(await api.get('/v1/users'), 401, 'auth.key_revoked');
    expect(await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).execute()).toEqual(users);
  });

  it('records api_key.revoked with the acting key id and role', async () => {
    const { id } = await mint({ role: 'READER' });
    const res = await owner.delete(`/v1/api-keys/${id}`);
    expect(res.statusCode).toBe(200);
    const entries = await auditFor(id, 'api_key.revoked');
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      actor_type: 'api_key', actor_key_id: ownerKeyId, actor_role: 'OWNER', outcome: 'applied',
      target_type: 'api_key', target_id: id, request_id: res.headers['x-request-id'], details: { role: 'READER' },
    });
  });

  it('is idempotent: revoking twice answers 200 with the same revoked_at and writes no second audit entry', async () => {
    const { id } = await mint();
    const first = await owner.delete(`/v1/api-keys/${id}`);
    expect(first.statusCode).toBe(200);
    const audit = await countAudit();
    const second = await owner.delete(`/v1/api-keys/${id}`);
    expect(second.statusCode).toBe(200);
    expect(second.json()).toEqual(first.json());
    expect(await countAudit()).toBe(audit);
    expect(await auditFor(id, 'api_key.revoked')).toHaveLength(1);
  });

  it('stays idempotent under concurrency: ten simultaneous revokes all answer 200 and write one audit entry', async () => {
    const { id } = await mint();
    const results = await Promise.all(Array.from({ length: 10 }, () => owner.delete(`/v1/api-keys/${id}`)));
    expect(results.map((r) => r.statusCode)).toEqual(Array(10).fill(200));
    expect(new Set(results.map((r) => r.json().revoked_at)).size).toBe(1);
    expect(await auditFor(id, 'api_key.revoked')).toHaveLength(1);
  });

  it('keeps revoked keys in the listing (with revoked_at) and hides them with include_revoked=false', async () => {
    const { id } = await mint();
    await owner.delete(`/v1/api-keys/${id}`);
    const all = (await owner.get('/v1/api-keys?limit=200')).json().data;
    expect(all.find((k: { id: string }) => k.id === id)?.revoked_at).toBeTruthy();
    const active = (await owner.get('/v1/api-keys?limit=200&include_revoked=false')).json().data;
    expect(active.map((k: { id: string }) => k.id)).not.toContain(id);
    expect(active.every((k: { revoked_at: string | null }) => k.revoked_at === null)).toBe(true);
  });

  it('answers 404 api_key.not_found for an unknown id, and writes nothing', async () => {
    const audit = await countAudit();
    const res = await owner.delete('/v1/api-keys/key_00000000000000000000000000');
    expectProblem(res, 404, 'api_key.not_found');
    expect(await countAudit()).toBe(audit);
  });

  it('lets a key made by the CLI helper be revoked over HTTP too', async () => {
    const { key, id } = await createKey(ctx.db, tenantId, 'ADMIN');
    expect((await owner.delete(`/v1/api-keys/${id}`)).statusCode).toBe(200);
    expectProblem(await client(ctx.app, key).get('/v1/api-keys'), 401, 'auth.key_revoked');
  });
});
