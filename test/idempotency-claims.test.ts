// An Idempotency-Key claim learns that its write committed from the write's own audit entries; it
// must be this request's write, not another one that happens to carry the same X-Request-Id (which a
// client may reuse as a correlation id across calls).
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../src/db/database.js';
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

// A request slower than the abandonment age has its claim taken over; when it answers at last, it
// must leave the newer claim's row alone. Its store and its release on a 5xx matched the key only:
// the late answer completed the row (replayed while the newer request still ran), or deleted it (a
// third request then claimed the key and ran the write again). Each request is held in a trigger on
// an advisory lock the test owns; the claim is aged in the database rather than waited out. (The
// takeover does not compare bodies, so the newer request may differ: that keeps the two held apart.)
describe('a claim taken over from a request that was only slow', () => {
  let holder: Db;
  beforeAll(async () => {
    holder = createDb(ctx.databaseUrl, { max: 1 });
    await sql`create function hold_user_insert() returns trigger language plpgsql as $$
      begin
        perform pg_advisory_xact_lock(hashtext(new.external_ref));
        if new.external_ref like 'held-fail-%' then raise exception 'the first request fails late'; end if;
        return new;
      end $$`.execute(ctx.db);
    await sql`create trigger hold_user_insert before insert on users for each row
      when (new.external_ref like 'held-%') execute function hold_user_insert()`.execute(ctx.db);
  });
  afterAll(async () => {
    await sql`drop trigger hold_user_insert on users`.execute(ctx.db);
    await holder.destroy();
  });

  const waiting = async () => Number((await sql<{ n: string }>`
    select count(*)::text as n from pg_locks where locktype = 'advisory' and not granted
      and database = (select oid from pg_database where datname = current_database())`.execute(ctx.db)).rows[0]!.n);
  const lock = (ref: string) => sql`select pg_advisory_lock(hashtext(${ref}))`.execute(holder);
  const unlock = (ref: string) => sql`select pg_advisory_unlock(hashtext(${ref}))`.execute(holder);

  it.each([['fails with a 5xx', 'held-fail-a'], ['succeeds', 'held-a']])('the first request that %s after the takeover leaves the newer claim in progress, and the key answers the newer one', async (_how, refA) => {
    const t = await createTenant(ctx.db);
    const key = `K-${refA}`;
    const headers = { authorization: `Bearer ${t.ownerKey}`, 'idempotency-key': key };
    const claim = () => ctx.db.selectFrom('idempotency_keys').select(['state', 'claim_id']).where('api_key_id', '=', t.ownerKeyId).where('key', '=', key).executeTakeFirst();
    const refB = `held-b-${refA}`;
    await lock(refA);
    await lock(refB);
    const first = ctx.app.inject({ method: 'POST', url: '/v1/users', payload: individual({ external_ref: refA }), headers });
    await expect.poll(waiting).toBe(1);
    const a = await claim();
    await sql`update idempotency_keys set created_at = now() - interval '2 minutes' where api_key_id = ${t.ownerKeyId} and key = ${key}`.execute(ctx.db);
    const bodyB = individual({ external_ref: refB });
    const second = ctx.app.inject({ method: 'POST', url: '/v1/users', payload: bodyB, headers });
    await expect.poll(waiting).toBe(2);
    const b = await claim();
    expect(b).toMatchObject({ state: 'in_progress' });
    expect(b!.claim_id).not.toBe(a!.claim_id);

    await unlock(refA);
    const lateA = await first;
    expect(lateA.statusCode >= 500).toBe(refA.startsWith('held-fail-'));
    // The newer request still runs: its claim is untouched.
    expect(await claim()).toEqual(b);

    await unlock(refB);
    const answerB = await second;
    expect(answerB.statusCode, answerB.body).toBe(201);
    const replay = await ctx.app.inject({ method: 'POST', url: '/v1/users', payload: bodyB, headers });
    expect([replay.statusCode, replay.headers['idempotent-replayed'], replay.json().id]).toEqual([201, 'true', answerB.json().id]);
  });
});
