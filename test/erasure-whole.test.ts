// Erasure leaves nothing and happens whole: every stored idempotent response that concerns the
// user is gone whatever route answered it; a request to erase is one transaction; and a user whose
// key is destroyed gets a clear error, not an endless loop, when something tries to seal for them.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { createErasureService } from '../src/modules/erasure/erasure.service.js';
import { createLifecycleService } from '../src/modules/lifecycle/lifecycle.service.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;

beforeAll(async () => {
  ({ ctx, api, tenantId } = await openTenantContext());
  await api.call({ method: 'PUT', url: '/v1/policy', body: { retention: { erasure_after_days: 0 }, rate_limit: { requests_per_minute: 6000 } } });
});
afterAll(() => ctx.close());

const sweep = () => createErasureService({ db: ctx.db, lifecycle: createLifecycleService({ db: ctx.db, keyring: ctx.keyring }), blobs: ctx.blobs, keyring: ctx.keyring }).sweep();
const key = (k: string) => ({ 'idempotency-key': k });

describe('stored idempotent responses', () => {
  it('every response stored about a user is deleted when the user is erased, whatever the route that answered it', async () => {
    const officer = client(ctx.app, (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key);
    const mail = `erase-me-${Date.now()}@example.com`;
    const user = (await api.post('/v1/users', individual({ email: mail }), key('w-create'))).json();
    expect((await api.post(`/v1/users/${user.id}/verifications`, { result: 'approved', provider: 'acme-kyc', provider_ref: 'sess-erase' }, key('w-verify'))).statusCode).toBe(201);
    const first = (await officer.patch(`/v1/users/${user.id}`, { email: `new-${mail}` })).json().pending_changes[0].id;
    const approved = await api.post(`/v1/change-requests/${first}/approve`, {}, key('w-approve'));
    expect(approved.statusCode, approved.body).toBe(200);
    expect(approved.body).toContain(mail); // the old and the new email, stored for replay
    const second = (await officer.patch(`/v1/users/${user.id}`, { last_name: 'Erasable' })).json().pending_changes[0].id;
    expect((await api.post(`/v1/change-requests/${second}/reject`, { reason: 'Mr Erasable phoned' }, key('w-reject'))).statusCode).toBe(200);
    expect((await api.post(`/v1/users/${user.id}/legal-hold`, { reason: 'court order' }, key('w-hold'))).statusCode).toBe(200);
    await api.delete(`/v1/users/${user.id}/legal-hold`);
    expect((await api.post(`/v1/users/${user.id}/erasure`, { requested_by: 'user', note: 'by letter' }, key('w-erase'))).statusCode).toBe(202);
    const keys = ['w-create', 'w-verify', 'w-approve', 'w-reject', 'w-hold', 'w-erase'];
    const stored = await ctx.db.selectFrom('idempotency_keys').select(['key', 'subject_user_ids']).where('key', 'in', keys).execute();
    expect(stored.map((r) => r.key).sort()).toEqual([...keys].sort());
    for (const r of stored) expect(r.subject_user_ids, r.key).toContain(user.id);

    expect((await sweep()).erased).toEqual([user.id]);
    const left = await ctx.db.selectFrom('idempotency_keys').select('key').where('key', 'in', keys).execute();
    expect(left).toEqual([]);
    // Replaying the approval now replays nothing personal: the request runs again, and is refused.
    const replay = await api.post(`/v1/change-requests/${first}/approve`, {}, key('w-approve'));
    expect(replay.body).not.toContain(mail);
  });
});

describe('an erasure request', () => {
  it('is one transaction: when scheduling fails, the user is not left closed for an erasure nobody scheduled', async () => {
    const user = (await api.post('/v1/users', individual())).json();
    await sql`create function test_fail_erasure() returns trigger language plpgsql as $$
      begin
        if new.erasure_requested_at is not null and old.erasure_requested_at is null then raise exception 'injected fault'; end if;
        return new;
      end $$`.execute(ctx.db);
    await sql`create trigger test_fail_erasure before update on users for each row execute function test_fail_erasure()`.execute(ctx.db);
    try {
      const res = await api.post(`/v1/users/${user.id}/erasure`, { requested_by: 'user' });
      expect(res.statusCode).toBe(500);
    } finally {
      await sql`drop trigger test_fail_erasure on users`.execute(ctx.db);
      await sql`drop function test_fail_erasure()`.execute(ctx.db);
    }
    const row = await ctx.db.selectFrom('users').selectAll().where('id', '=', user.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: 'active', erasure_requested_at: null, version: 1 });
    expect(await ctx.db.selectFrom('status_changes').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
    expect((await ctx.db.selectFrom('audit_entries').select('action').where('user_id', '=', user.id).execute()).map((a) => a.action)).toEqual(['user.created']);
    // And asked again without the fault, it closes and schedules together.
    expect((await api.post(`/v1/users/${user.id}/erasure`, { requested_by: 'user' })).statusCode).toBe(202);
    expect(await ctx.db.selectFrom('users').select(['status', 'erasure_requested_at']).where('id', '=', user.id).executeTakeFirstOrThrow()).toMatchObject({ status: 'closed', erasure_requested_at: expect.any(Date) });
  });

  it('a user whose destruction fails holds back no other: the others are erased, it is reported and stays due', async () => {
    const [a, b, c] = await Promise.all([0, 1, 2].map(async () => (await api.post('/v1/users', individual())).json()));
    for (const u of [a, b, c]) expect((await api.post(`/v1/users/${u.id}/erasure`, { requested_by: 'user' })).statusCode).toBe(202);
    // A fault that strikes one user's destruction only (a timeout on a huge history, say).
    await sql`create function test_fail_destroy() returns trigger language plpgsql as $$
      begin
        if new.erased_at is not null and old.erased_at is null and new.id = ${sql.lit(b.id)} then raise exception 'injected fault'; end if;
        return new;
      end $$`.execute(ctx.db);
    await sql`create trigger test_fail_destroy before update on users for each row execute function test_fail_destroy()`.execute(ctx.db);
    let swept: Awaited<ReturnType<typeof sweep>>;
    try {
      // Before, the batch's transaction rolled back whole: nobody was erased, at every sweep.
      swept = await sweep();
    } finally {
      await sql`drop trigger test_fail_destroy on users`.execute(ctx.db);
      await sql`drop function test_fail_destroy()`.execute(ctx.db);
    }
    const mine = [a.id, b.id, c.id];
    expect(swept.erased.filter((id) => mine.includes(id)).sort()).toEqual([a.id, c.id].sort());
    expect(swept.failed).toEqual([{ user_id: b.id, error: 'SQLSTATE P0001: injected fault' }]);
    const rows = await ctx.db.selectFrom('users').select(['id', 'erased_at', 'profile']).where('id', 'in', mine).execute();
    for (const r of rows) {
      if (r.id === b.id) expect(r).toMatchObject({ erased_at: null, profile: expect.objectContaining({ first_name: expect.any(String) }) });
      else expect(r).toMatchObject({ erased_at: expect.any(Date), profile: {} });
    }
    expect(await ctx.db.selectFrom('audit_entries').select('user_id').where('action', '=', 'user.erased').where('user_id', 'in', mine).execute())
      .toHaveLength(2);
    // Still due: the next sweep, the fault gone, destroys it.
    const again = await sweep();
    expect(again.erased).toContain(b.id);
    expect(again.failed).toEqual([]);
  });

  it('for a user whose data key is destroyed, sealing answers user.erased at once instead of looping', async () => {
    const user = (await api.post('/v1/users', individual())).json();
    await api.post(`/v1/users/${user.id}/erasure`, { requested_by: 'user' });
    expect((await sweep()).erased).toContain(user.id);
    const started = Date.now();
    await expect(ctx.keyring.seal(ctx.db, tenantId, user.id, 'event.personal', { x: 1 })).rejects.toMatchObject({ status: 409, code: 'user.erased' });
    expect(Date.now() - started).toBeLessThan(2000);
    const keys = await ctx.db.selectFrom('user_keys').selectAll().where('user_id', '=', user.id).execute();
    expect(keys).toHaveLength(1);
    expect(keys[0]!.wrapped_key).toBeNull();
  });
});
