// Kyclo behind a load balancer: three real server processes on one database (and one Redis).
// Idempotency, rate limits and conditional writes must hold across them as in one process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { cliEnv, startServer, type Server } from './helpers/processes.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;
let servers: Server[] = [];

beforeAll(async () => {
  ({ ctx, api, tenantId } = await openTenantContext());
  const env = cliEnv({ DATABASE_URL: ctx.databaseUrl, PORT: '0', KYCLO_SERVE_WORKERS: 'false' });
  servers = await Promise.all([startServer(env), startServer(env), startServer(env)]);
}, 120_000);
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop('SIGTERM')));
  await ctx.close();
});

/** A request to server i % 3, as a load balancer would spread them. */
async function call(i: number, key: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${servers[i % servers.length]!.baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

describe('three processes, one database', () => {
  it('a key revoked by another process stops working on every server within 1 s (the key cache)', async () => {
    const { key, id } = await createKey(ctx.db, tenantId, 'READER');
    // Warm every server's cache with the valid key.
    for (let i = 0; i < servers.length; i++) expect((await call(i, key, 'GET', '/v1/users?limit=1')).status).toBe(200);
    await api.delete(`/v1/api-keys/${id}`); // revoked by the test's own process, not by any server
    const revokedAt = Date.now();
    const stoppedAfter = await Promise.all(
      servers.map(async (_, i) => {
        for (;;) {
          const { status } = await call(i, key, 'GET', '/v1/users?limit=1');
          if (status === 401) return Date.now() - revokedAt;
          expect(status).toBe(200);
          if (Date.now() - revokedAt > 5000) return Infinity;
          await new Promise((r) => setTimeout(r, 25));
        }
      }),
    );
    console.log(`revoked key refused after ${stoppedAfter.join(', ')} ms`);
    for (const ms of stoppedAfter) expect(ms).toBeLessThanOrEqual(1000 + 150);
  });

  it('100 concurrent identical POST /v1/users with one Idempotency-Key: exactly one user', async () => {
    const key = (await createKey(ctx.db, tenantId, 'ADMIN')).key;
    const body = individual();
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => call(i, key, 'POST', '/v1/users', body, { 'idempotency-key': 'one-user' })));
    expect(results.every((r) => r.status === 201 || r.status === 409)).toBe(true);
    const users = await ctx.db.selectFrom('users').select('id').where('external_ref', '=', body.external_ref).execute();
    expect(users).toHaveLength(1);
    const replayed = await call(1, key, 'POST', '/v1/users', body, { 'idempotency-key': 'one-user' });
    expect(replayed.status).toBe(201);
    expect(JSON.parse(replayed.body).id).toBe(users[0]!.id);
  });

  it('200 concurrent PATCHes with the same If-Match: exactly one 2xx and 199 × 412', async () => {
    const user = (await api.post('/v1/users', individual())).json();
    const key = (await createKey(ctx.db, tenantId, 'ADMIN')).key;
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => call(i, key, 'PATCH', `/v1/users/${user.id}`, { occupation: `job ${i}` }, { 'if-match': '"1"' })),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(results.filter((r) => r.status === 412)).toHaveLength(199);
    const row = await ctx.db.selectFrom('users').select('version').where('id', '=', user.id).executeTakeFirstOrThrow();
    expect(row.version).toBe(2);
  });

  it('1,000 read-modify-write appends from 20 clients retrying on 412: none lost', async () => {
    // Tags hold at most 20 values, so the appends go to a metadata list (same read-modify-write).
    const user = (await api.post('/v1/users', individual({ metadata: { log: [] } }))).json();
    const key = (await createKey(ctx.db, tenantId, 'ADMIN')).key;
    await ctx.db.updateTable('tenants').set({ policy: JSON.stringify({ rate_limit: { requests_per_minute: 1_000_000 } }) }).where('id', '=', tenantId).execute();
    let retries = 0;
    const client = async (c: number) => {
      for (let n = 0; n < 50; n++) {
        for (let attempt = 0; ; attempt++) {
          const read = await call(c + attempt, key, 'GET', `/v1/users/${user.id}`);
          const current = JSON.parse(read.body);
          const write = await call(c + attempt + 1, key, 'PATCH', `/v1/users/${user.id}`, { metadata: { log: [...current.metadata.log, `${c}:${n}`] } }, { 'if-match': read.headers.get('etag')! });
          if (write.status === 200) break;
          expect(write.status).toBe(412);
          retries++;
          // As a well-behaved client does: back off a little, at random, before reading again.
          await new Promise((r) => setTimeout(r, Math.random() * 5 * Math.min(attempt + 1, 8)));
        }
      }
    };
    await Promise.all(Array.from({ length: 20 }, (_, c) => client(c)));
    const row = await ctx.db.selectFrom('users').select(['metadata', 'version']).where('id', '=', user.id).executeTakeFirstOrThrow();
    const log = (row.metadata as { log: string[] }).log;
    expect(log).toHaveLength(1000);
    expect(new Set(log).size).toBe(1000);
    expect(row.version).toBe(1001);
    console.log(`lost-update test: 1000 appends, ${retries} retries on 412, 0 lost`);
  }, 180_000);

  // Needs a shared Redis; the title says why when it is skipped, so a skip is never silent.
  it.skipIf(!process.env.REDIS_URL)(`a limit of 100 a minute, 1,000 requests over 3 processes: exactly 100 allowed (shared through Redis)${process.env.REDIS_URL ? '' : ' — skipped: REDIS_URL is not set (npm test with REDIS_URL=redis://… runs it)'}`, async () => {
    await ctx.db.updateTable('tenants').set({ policy: JSON.stringify({ rate_limit: { requests_per_minute: 100 } }) }).where('id', '=', tenantId).execute();
    const key = (await createKey(ctx.db, tenantId, 'READER')).key;
    const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => call(i, key, 'GET', '/v1/enumerations/titles')));
    expect(results.filter((r) => r.status === 200)).toHaveLength(100);
    expect(results.filter((r) => r.status === 429)).toHaveLength(900);
    expect(results.every((r) => r.headers.get('ratelimit-policy') === '100;w=60')).toBe(true);
    await ctx.db.updateTable('tenants').set({ policy: '{}' }).where('id', '=', tenantId).execute();
  });
});
