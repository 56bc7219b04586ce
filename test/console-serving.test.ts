// GET /v1/me (what the console reads at sign-in) and the console served at /console: same origin,
// its own strict Content-Security-Policy, client-side routes answered with the app's page.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, createTenant, createTestContext, type TestContext } from './helpers/app.js';
import { CONSOLE_CSP, consoleRoutes } from '../src/http/console.js';
import { PERMISSIONS, ROLES, roleAllows, type Permission } from '../src/modules/api-keys/roles.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

describe('GET /v1/me', () => {
  it('answers each role its own key, tenant and exactly the permissions the role table gives it', async () => {
    const t = await createTenant(ctx.db);
    const tenant = await ctx.db.selectFrom('tenants').select(['id', 'name']).where('id', '=', t.tenantId).executeTakeFirstOrThrow();
    for (const role of ROLES) {
      const key = role === 'OWNER' ? { key: t.ownerKey, id: t.ownerKeyId } : await createKey(ctx.db, t.tenantId, role);
      const res = await client(ctx.app, key.key).get('/v1/me');
      expect(res.statusCode, res.body).toBe(200);
      const me = res.json();
      expect(me).toMatchObject({ id: key.id, role, tenant: { id: tenant.id, name: tenant.name } });
      expect(me.permissions).toEqual((Object.keys(PERMISSIONS) as Permission[]).filter((p) => roleAllows(role, p)));
      expect(me).not.toHaveProperty('key');
      expect(JSON.stringify(me)).not.toContain(key.key);
    }
  });

  it('tells a READER it may read users but not change their status, and an ADMIN which key roles it manages', async () => {
    const t = await createTenant(ctx.db);
    const reader = await createKey(ctx.db, t.tenantId, 'READER');
    const me = (await client(ctx.app, reader.key).get('/v1/me')).json();
    expect(me.permissions).toContain('users:read');
    expect(me.permissions).not.toContain('users:change_status');
    expect(me.manages_roles).toEqual([]);
    const admin = await createKey(ctx.db, t.tenantId, 'ADMIN');
    expect((await client(ctx.app, admin.key).get('/v1/me')).json().manages_roles).toEqual(['ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER', 'READER']);
  });

  it('refuses a missing or revoked key with 401 and says nothing about any key', async () => {
    const t = await createTenant(ctx.db);
    expect((await client(ctx.app, null).get('/v1/me')).statusCode).toBe(401);
    const dev = await createKey(ctx.db, t.tenantId, 'DEVELOPER');
    expect((await client(ctx.app, t.ownerKey).delete(`/v1/api-keys/${dev.id}`)).statusCode).toBe(200);
    const res = await client(ctx.app, dev.key).get('/v1/me');
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('auth.key_revoked');
  });
});

describe('the console at /console', () => {
  let root: string;
  let app: ReturnType<typeof Fastify>;
  beforeAll(async () => {
    // A build of its own: the real console/dist may be rebuilt by the browser tests meanwhile.
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'kyclo-console-'));
    await fs.mkdir(path.join(root, 'assets'));
    await fs.writeFile(path.join(root, 'index.html'), '<!doctype html><script type="module" src="/console/assets/app-1.js"></script>');
    await fs.writeFile(path.join(root, 'assets/app-1.js'), 'console.log(1)');
    await fs.writeFile(path.join(root, 'assets/app-1.js.gz'), zlib.gzipSync('console.log(1)'));
    app = Fastify();
    await app.register(consoleRoutes(root));
  });
  afterAll(async () => {
    await app.close();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('answers every client-side route with the app’s page, never cached, under the strict policy', async () => {
    for (const url of ['/console', '/console/', '/console/users/usr_01ARZ3NDEKTSV4RRFFQ69G5FAV', '/console/operations/keys?x=1']) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(res.headers['cache-control']).toBe('no-cache');
      expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
      expect(res.body).toContain('/console/assets/app-1.js');
    }
  });

  it('serves hashed assets for a year, and a missing asset is a 404, not the page', async () => {
    const js = await app.inject({ url: '/console/assets/app-1.js' });
    expect(js.statusCode).toBe(200);
    expect(js.headers['cache-control']).toContain('immutable');
    expect(js.headers['content-security-policy']).toBe(CONSOLE_CSP);
    expect((await app.inject({ url: '/console/assets/nope.js' })).statusCode).toBe(404);
    const gz = await app.inject({ url: '/console/assets/app-1.js', headers: { 'accept-encoding': 'gzip' } });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(zlib.gunzipSync(gz.rawPayload).toString()).toBe('console.log(1)');
    expect((await app.inject({ url: '/console/assets/../index.html' })).body).not.toContain('console.log');
  });

  it('allows nothing inline, nothing from another origin, and no framing', () => {
    expect(CONSOLE_CSP).not.toMatch(/unsafe-inline|unsafe-eval|https?:|\*/);
    expect(CONSOLE_CSP).toContain("default-src 'none'");
    expect(CONSOLE_CSP).toContain("connect-src 'self'");
    expect(CONSOLE_CSP).toContain("frame-ancestors 'none'");
  });

  it('in the app, /console carries the console’s policy while /v1 keeps the API’s', async () => {
    const page = await ctx.app.inject({ url: '/console/users' });
    expect([200, 503]).toContain(page.statusCode); // 503 when console/ has not been built
    expect(page.headers['content-security-policy']).toBe(CONSOLE_CSP);
    expect(page.headers['x-frame-options']).toBe('DENY');
    const api = await client(ctx.app, null).get('/v1/me');
    expect(api.headers['content-security-policy']).toBe("default-src 'none'; frame-ancestors 'none'");
  });

  it('says how to build the console when it is not built', async () => {
    const bare = Fastify();
    await bare.register(consoleRoutes(path.join(root, 'missing')));
    const res = await bare.inject({ url: '/console' });
    expect(res.statusCode).toBe(503);
    expect(res.body).toContain('npm run build');
    await bare.close();
  });
});
