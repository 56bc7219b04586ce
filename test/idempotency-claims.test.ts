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

// A 409 request.concurrent_conflict ("retry it", Retry-After: 0) was stored under the key like any
// other 4xx: the retry the answer asks for, with the same key, replayed the 409 for 24 hours.
it('an answer that says "retry" (Retry-After) is not kept under the key: the retry with the same key runs the write', async () => {
  const t = await createTenant(ctx.db);
  const headers = { authorization: `Bearer ${t.ownerKey}`, 'idempotency-key': 'K-transient' };
  const body = individual({ external_ref: 'serialization-victim' });
  // A serialization failure on the write (what a deadlock victim or a serializable conflict raises).
  await sql`create function fail_serialization() returns trigger language plpgsql as $$
    begin raise exception 'could not serialize access due to concurrent update' using errcode = '40001'; end $$`.execute(ctx.db);
  await sql`create trigger fail_serialization before insert on users for each row
    when (new.external_ref = 'serialization-victim') execute function fail_serialization()`.execute(ctx.db);
  const first = await ctx.app.inject({ method: 'POST', url: '/v1/users', payload: body, headers });
  expect(first.statusCode).toBe(409);
  expect(first.json()).toMatchObject({ code: 'request.concurrent_conflict' });
  expect(first.headers['retry-after']).toBe('0');
  expect(await ctx.db.selectFrom('idempotency_keys').select('key').where('key', '=', 'K-transient').execute()).toEqual([]);

  await sql`drop trigger fail_serialization on users`.execute(ctx.db);
  const retry = await ctx.app.inject({ method: 'POST', url: '/v1/users', payload: body, headers });
  expect(retry.headers['idempotent-replayed']).toBeUndefined();
  expect(retry.statusCode, retry.body).toBe(201);
  const users = await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', t.tenantId).where('external_ref', '=', 'serialization-victim').execute();
  expect(users).toEqual([{ id: retry.json().id }]);
  // And now the 201 is what the key replays.
  const again = await ctx.app.inject({ method: 'POST', url: '/v1/users', payload: body, headers });
  expect([again.statusCode, again.headers['idempotent-replayed'], again.json().id]).toEqual([201, 'true', retry.json().id]);
});
