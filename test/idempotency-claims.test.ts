// An Idempotency-Key claim learns that its write committed from the write's own audit entries; it
// must be this request's write, not another one that happens to carry the same X-Request-Id (which a
// client may reuse as a correlation id across calls).
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { canonicalJson } from '../src/lib/canonical-json.js';
import { createTenant, createTestContext, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

it("another request with the same X-Request-Id never marks an abandoned claim committed: the retry runs the original write", async () => {
  const t = await createTenant(ctx.db);
  const headers = { authorization: `Bearer ${t.ownerKey}` };
  const bodyA = individual();
  const bodyB = individual();
  // Request A claimed K1 with X-Request-Id corr-1, then its process died before its write committed.
  const hash = ctx.keyring.mac('idempotency', `POST /v1/users\n${canonicalJson(bodyA)}`);
  await sql`
    insert into idempotency_keys (tenant_id, api_key_id, key, request_hash, state, request_id, claim_id, created_at)
    values (${t.tenantId}, ${t.ownerKeyId}, 'K1', ${hash}, 'in_progress', 'corr-1', 'a-claim-of-a-dead-process', now() - interval '2 minutes')`.execute(ctx.db);
  // The same client creates another user with the same correlation id: once bare, once under another key.
  const b = await ctx.app.inject({ method: 'POST', url: '/v1/users', payload: bodyB, headers: { ...headers, 'x-request-id': 'corr-1' } });
  expect(b.statusCode).toBe(201);
  const c = await ctx.app.inject({ method: 'POST', url: '/v1/users', payload: individual(), headers: { ...headers, 'x-request-id': 'corr-1', 'idempotency-key': 'K2' } });
  expect(c.statusCode).toBe(201);
  const claim = await ctx.db.selectFrom('idempotency_keys').selectAll().where('key', '=', 'K1').executeTakeFirstOrThrow();
  expect(claim).toMatchObject({ state: 'in_progress', committed_at: null, committed_target_id: null });

  // A is retried with its key: it never ran, so it runs now and makes A's user.
  const a = await ctx.app.inject({ method: 'POST', url: '/v1/users', payload: bodyA, headers: { ...headers, 'idempotency-key': 'K1' } });
  expect(a.statusCode, a.body).toBe(201);
  expect(a.headers['idempotent-replayed']).toBeUndefined();
  expect(a.json()).toMatchObject({ external_ref: bodyA.external_ref });
  const users = await ctx.db.selectFrom('users').select('external_ref').where('tenant_id', '=', t.tenantId).execute();
  expect(users.map((u) => u.external_ref).sort()).toEqual([bodyA.external_ref, bodyB.external_ref, c.json().external_ref].sort());
});
