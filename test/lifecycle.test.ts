import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;

beforeAll(async () => ({ ctx, api, tenantId } = await openTenantContext()));
afterAll(() => ctx.close());

async function newUser(verified = true): Promise<string> {
  const id = (await api.post('/v1/users', individual())).json().id as string;
  if (verified) expect((await api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'test' })).statusCode).toBe(201);
  return id;
}
const row = (id: string) => ctx.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const history = (id: string) => ctx.db.selectFrom('status_changes').selectAll().where('user_id', '=', id).orderBy('id').execute();
const eventsOf = (id: string, type: string) =>
  ctx.db.selectFrom('events').selectAll().where('user_id', '=', id).where('type', '=', type).orderBy('seq').execute();

describe('status changes', () => {
  it('suspends with a reason: the row, the history entry, the audit entry and user.status_changed', async () => {
    const id = await newUser();
    const res = await api.post(`/v1/users/${id}/status-changes`, { status: 'suspended', reason: 'fraud_suspected', note: 'card testing', origin: 'system' });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({ user_id: id, from: 'active', to: 'suspended', reason: 'fraud_suspected', note: 'card testing', origin: 'system' });
    expect(await row(id)).toMatchObject({ status: 'suspended', status_reason: 'fraud_suspected' });
    expect(await history(id)).toEqual([expect.objectContaining({ from_status: 'active', to_status: 'suspended', origin: 'system' })]);
    expect((await eventsOf(id, 'user.status_changed'))[0]!.data).toMatchObject({ from: 'active', to: 'suspended', reason: 'fraud_suspected', origin: 'system' });
    const listed = (await api.get(`/v1/users/${id}/status-changes`)).json().data;
    expect(listed).toEqual([expect.objectContaining({ id: res.json().id, actor: { key_id: expect.any(String), role: 'OWNER' } })]);
  });

  it('refuses a move the table forbids with 409 listing the allowed next states, and changes nothing', async () => {
    const id = await newUser();
    await api.post(`/v1/users/${id}/block`, { reason: 'sanctions_match' });
    const before = await row(id);
    const res = await api.post(`/v1/users/${id}/status-changes`, { status: 'suspended', reason: 'other' });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'user.transition_not_allowed', current_status: 'blocked', allowed: ['active', 'closed'] });
    expect(res.json().detail).toBe('A blocked user cannot become suspended; from blocked it can become: active, closed.');
    expect(await row(id)).toEqual(before);
    expect(await history(id)).toHaveLength(1);
    // The shorthands keep their own rule, and say it: unsuspend only leaves suspended (though
    // blocked → active is allowed, so the detail must not claim the move itself is impossible).
    const unsuspend = await api.post(`/v1/users/${id}/unsuspend`, { reason: 'review_cleared' });
    expect(unsuspend.statusCode).toBe(409);
    expect(unsuspend.json().detail).toMatch(/^This move only applies to a suspended user; this user is blocked\./);
    expect(unsuspend.json().detail).not.toMatch(/cannot become active/);
    expect((await api.post(`/v1/users/${id}/unblock`, { reason: 'review_cleared' })).statusCode).toBe(201);
    expect((await row(id)).status).toBe('active');
  });

  it('a shorthand without a body, or with an empty JSON one, is asked for its reason (400) and changes nothing', async () => {
    const id = await newUser();
    const flag = await api.call({ method: 'POST', url: `/v1/users/${id}/flag` });
    expect(flag.statusCode).toBe(400);
    expect(flag.json()).toMatchObject({ code: 'request.validation_failed' });
    const emptyJson = await api.call({ method: 'POST', url: `/v1/users/${id}/status-changes`, body: '', headers: { 'content-type': 'application/json' } });
    expect(emptyJson.statusCode).toBe(400);
    expect(emptyJson.json()).toMatchObject({ code: 'request.validation_failed', errors: [expect.objectContaining({ field: 'body' })] });
    await api.post(`/v1/users/${id}/block`, { reason: 'sanctions_match' });
    const unblock = await api.call({ method: 'POST', url: `/v1/users/${id}/unblock`, body: '', headers: { 'content-type': 'application/json' } });
    expect(unblock.statusCode).toBe(400);
    expect((await row(id)).status).toBe('blocked');
    expect(await history(id)).toEqual([expect.objectContaining({ to_status: 'blocked' })]);
  });

  it('closing needs the close permission on every route: a COMPLIANCE_OFFICER may suspend but not close', async () => {
    const id = await newUser();
    const officer = client(ctx.app, (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key);
    const res = await officer.post(`/v1/users/${id}/status-changes`, { status: 'closed', reason: 'other' });
    expect(res.statusCode).toBe(403);
    expect(res.json().code).toBe('auth.forbidden');
    expect((await row(id)).status).toBe('active');
    expect((await officer.post(`/v1/users/${id}/status-changes`, { status: 'suspended', reason: 'other' })).statusCode).toBe(201);
  });

  it('requires a published reason code for every move: into a freeze, and out of one (product.md: every change carries a reason code)', async () => {
    const id = await newUser();
    for (const [path, body] of [
      ['suspend', {}], ['block', {}], ['status-changes', { status: 'closed' }], ['suspend', { reason: 'bored' }], ['flag', {}], ['flag', { note: 'looks odd' }],
      ['status-changes', { status: 'flagged' }],
    ] as const) {
      const res = await api.post(`/v1/users/${id}/${path}`, body);
      expect(res.statusCode, `${path} ${JSON.stringify(body)}`).toBe(400);
      expect(res.json().errors[0].field).toBe('reason');
    }
    expect(await history(id)).toEqual([]);
    expect((await api.post(`/v1/users/${id}/suspend`, { reason: 'aml_alert' })).statusCode).toBe(201);
    // Lifting the freeze lets money move again: it says why as surely as the freeze did.
    for (const [path, body] of [['unsuspend', {}], ['status-changes', { status: 'active' }], ['status-changes', { status: 'active', reason: null }]] as const) {
      const res = await api.post(`/v1/users/${id}/${path}`, body);
      expect(res.statusCode, `${path} ${JSON.stringify(body)}`).toBe(400);
      expect(res.json().errors[0].field).toBe('reason');
    }
    expect((await row(id)).status).toBe('suspended');
    const lifted = await api.post(`/v1/users/${id}/unsuspend`, { reason: 'review_cleared', note: 'alert 17 closed, no suspicion' });
    expect(lifted.statusCode, lifted.body).toBe(201);
    expect(await history(id)).toEqual([
      expect.objectContaining({ from_status: 'active', to_status: 'suspended', reason: 'aml_alert' }),
      expect.objectContaining({ from_status: 'suspended', to_status: 'active', reason: 'review_cleared' }),
    ]);
    expect((await eventsOf(id, 'user.status_changed')).map((e) => (e.data as { reason: string }).reason)).toEqual(['aml_alert', 'review_cleared']);
  });

  it('50 concurrent suspensions of one active user: exactly one succeeds, 49 answer 409, one history entry', async () => {
    const id = await newUser();
    const results = await Promise.all(Array.from({ length: 50 }, () => api.post(`/v1/users/${id}/suspend`, { reason: 'fraud_suspected' })));
    expect(results.filter((r) => r.statusCode === 201)).toHaveLength(1);
    expect(results.filter((r) => r.statusCode === 409)).toHaveLength(49);
    expect(await history(id)).toHaveLength(1);
    expect(await eventsOf(id, 'user.status_changed')).toHaveLength(1);
  });

  it('an unsuspend decided on a freeze that was lifted and made again meanwhile (a newer freeze) answers 409 and lifts nothing', async () => {
    const id = await newUser();
    expect((await api.post(`/v1/users/${id}/suspend`, { reason: 'fraud_suspected' })).statusCode).toBe(201);
    let late: ReturnType<typeof api.post> | undefined;
    await ctx.db.transaction().execute(async (trx) => {
      await trx.selectFrom('users').select('id').where('id', '=', id).forUpdate().execute();
      // The late unsuspend reads the first freeze, then waits for the row.
      late = api.post(`/v1/users/${id}/unsuspend`, { reason: 'review_cleared' });
      for (let i = 0; i < 100; i++) {
        const waiting = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like 'update "users"%'`.execute(ctx.db);
        if (waiting.rows[0]!.n > 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      // Meanwhile another officer lifted it and a third froze the user again (sanctions): the status
      // is suspended as it was, its change newer.
      await trx.updateTable('users').set({ status: 'suspended', status_reason: 'sanctions_match', status_changed_at: sql`clock_timestamp()` }).where('id', '=', id).execute();
    });
    const res = await late!;
    expect(res.statusCode, res.body).toBe(409);
    expect(res.json()).toMatchObject({ code: 'user.transition_conflict', current_status: 'suspended' });
    expect(await row(id)).toMatchObject({ status: 'suspended', status_reason: 'sanctions_match' });
    expect((await history(id)).map((h) => h.to_status)).toEqual(['suspended']);
  });

  it('50 concurrent different moves with the same If-Match: exactly one succeeds, the others 409 or 412, one history entry', async () => {
    const id = await newUser();
    const version = (await row(id)).version;
    const targets = ['flagged', 'suspended', 'blocked', 'closed'];
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        api.post(`/v1/users/${id}/status-changes`, { status: targets[i % 4], reason: 'compliance_review' }, { 'if-match': `"${version}"` }),
      ),
    );
    expect(results.filter((r) => r.statusCode === 201)).toHaveLength(1);
    expect(results.every((r) => [201, 409, 412].includes(r.statusCode))).toBe(true);
    expect(await history(id)).toHaveLength(1);
  });
});

describe('capabilities', () => {
  it('follow the status at once: the next check after a suspension returns sees it', async () => {
    const id = await newUser();
    const cap = async () => (await api.get(`/v1/users/${id}/capabilities`)).json().capabilities;
    expect(await cap()).toEqual({
      deposits: { allowed: true, reason: null }, withdrawals: { allowed: true, reason: null },
      exchanges: { allowed: true, reason: null }, card_transactions: { allowed: true, reason: null },
    });
    await api.post(`/v1/users/${id}/flag`, { reason: 'aml_alert' });
    expect(await cap()).toMatchObject({ deposits: { allowed: true }, withdrawals: { allowed: false, reason: 'under_review' } });
    await api.post(`/v1/users/${id}/suspend`, { reason: 'fraud_suspected' });
    const res = await api.get(`/v1/users/${id}/capabilities`);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json().capabilities.deposits).toEqual({ allowed: false, reason: 'account_suspended' });
    const unverified = await newUser(false);
    expect((await api.get(`/v1/users/${unverified}/capabilities`)).json().capabilities.deposits).toEqual({ allowed: false, reason: 'kyc_not_verified' });
  });

  it('follow the tenant’s matrix', async () => {
    const id = await newUser();
    await api.post(`/v1/users/${id}/flag`, { reason: 'aml_alert' });
    const put = await api.call({ method: 'PUT', url: '/v1/policy', body: { capabilities: { flagged: { withdrawals: true, deposits: false } } } });
    expect(put.statusCode, put.body).toBe(200);
    expect(put.json().capabilities.flagged).toEqual({ deposits: false, withdrawals: true, exchanges: false, card_transactions: true });
    const caps = (await api.get(`/v1/users/${id}/capabilities`)).json().capabilities;
    expect(caps.withdrawals).toEqual({ allowed: true, reason: null });
    expect(caps.deposits).toEqual({ allowed: false, reason: 'under_review' });
    const bad = await api.call({ method: 'PUT', url: '/v1/policy', body: { capabilities: { closed: { deposits: true } } } });
    expect(bad.statusCode).toBe(400);
    await api.call({ method: 'PUT', url: '/v1/policy', body: {} });
  });

  it('a freeze holds against the policy: overriding the suspended or blocked row is refused and writes nothing; one stored before the rule is ignored', async () => {
    const suspended = await newUser();
    const blocked = await newUser();
    await api.post(`/v1/users/${suspended}/suspend`, { reason: 'fraud_suspected' });
    await api.post(`/v1/users/${blocked}/block`, { reason: 'sanctions_match' });
    const before = await ctx.db.selectFrom('tenants').select('policy').where('id', '=', tenantId).executeTakeFirstOrThrow();
    for (const status of ['suspended', 'blocked']) {
      const put = await api.call({ method: 'PUT', url: '/v1/policy', body: { capabilities: { [status]: { deposits: true, withdrawals: true } } } });
      expect(put.statusCode, put.body).toBe(400);
      expect(put.json().errors).toContainEqual(expect.objectContaining({ field: `capabilities.${status}`, code: 'immutable' }));
    }
    expect(await ctx.db.selectFrom('tenants').select('policy').where('id', '=', tenantId).executeTakeFirstOrThrow()).toEqual(before);
    // A tenant whose policy was written with such a row before: the row is not applied.
    await ctx.db.updateTable('tenants').set({ policy: JSON.stringify({ capabilities: { suspended: { deposits: true }, blocked: { withdrawals: true } } }) as never })
      .where('id', '=', tenantId).execute();
    try {
      expect((await api.get(`/v1/users/${suspended}/capabilities`)).json().capabilities.deposits).toEqual({ allowed: false, reason: 'account_suspended' });
      expect((await api.get(`/v1/users/${blocked}/capabilities`)).json().capabilities.withdrawals).toEqual({ allowed: false, reason: 'account_blocked' });
      const effective = (await api.get('/v1/policy')).json().capabilities;
      expect(effective.suspended.deposits).toBe(false);
      expect(effective.blocked.withdrawals).toBe(false);
    } finally {
      await ctx.db.updateTable('tenants').set({ policy: before.policy as never }).where('id', '=', tenantId).execute();
    }
  });
});

describe('closing', () => {
  it('closes for good, idempotently: the second close answers 200 with no new event or audit entry', async () => {
    const id = await newUser();
    const first = await api.delete(`/v1/users/${id}`, { origin: 'user', reason: 'user_request', note: 'asked by email' });
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toMatchObject({ id, status: 'closed', status_reason: 'user_request' });
    const audits = async () => ctx.db.selectFrom('audit_entries').select('id').where('user_id', '=', id).execute();
    const events = async () => ctx.db.selectFrom('events').select('id').where('user_id', '=', id).execute();
    const [a, e] = [await audits(), await events()];
    expect((await eventsOf(id, 'user.closed'))).toHaveLength(1);
    const again = await api.delete(`/v1/users/${id}`, { origin: 'operator', reason: 'other' });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ status: 'closed', status_reason: 'user_request' });
    expect(await audits()).toHaveLength(a.length);
    expect(await events()).toHaveLength(e.length);
  });

  it('a closed user refuses every write with 409 user.closed, reads still work, and its pending requests are cancelled', async () => {
    const requester = client(ctx.app, (await createKey(ctx.db, tenantId, 'ADMIN')).key);
    const id = await newUser();
    const cr = (await requester.patch(`/v1/users/${id}`, { last_name: 'Elm' })).json().pending_changes[0];
    expect((await api.delete(`/v1/users/${id}`, { origin: 'operator', reason: 'dormant' })).statusCode).toBe(200);
    const closed = await row(id);
    expect(closed.pending_changes).toEqual([]);
    const request = await ctx.db.selectFrom('change_requests').selectAll().where('id', '=', cr.id).executeTakeFirstOrThrow();
    expect(request).toMatchObject({ status: 'cancelled', decision_reason: 'user_closed' });
    for (const [label, call] of [
      ['patch', () => api.patch(`/v1/users/${id}`, { occupation: 'x' })],
      ['status', () => api.post(`/v1/users/${id}/status-changes`, { status: 'active', reason: 'review_cleared' })],
      ['suspend', () => api.post(`/v1/users/${id}/suspend`, { reason: 'other' })],
      ['verification', () => api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'x' })],
    ] as const) {
      const res = await call();
      expect(res.statusCode, label).toBe(409);
      expect(res.json().code, label).toBe('user.closed');
    }
    expect((await api.post(`/v1/change-requests/${cr.id}/approve`, {})).statusCode).toBe(409);
    expect(await row(id)).toEqual(closed);
    expect((await api.get(`/v1/users/${id}`)).statusCode).toBe(200);
    expect((await api.get(`/v1/users/${id}/capabilities`)).json().capabilities.deposits).toEqual({ allowed: false, reason: 'account_closed' });
  });

  it('batch-closes with a result per id', async () => {
    const [a, b] = [await newUser(), await newUser()];
    await api.delete(`/v1/users/${b}`, { origin: 'operator', reason: 'dormant' });
    const res = await api.post('/v1/users/delete', { ids: [a, b, 'usr_00000000000000000000000000', a], origin: 'operator', reason: 'dormant' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().results).toEqual([
      { id: a, result: 'closed' }, { id: b, result: 'already_closed' }, { id: 'usr_00000000000000000000000000', result: 'not_found' },
    ]);
    expect((await row(a)).status).toBe('closed');
    const tooMany = await api.post('/v1/users/delete', { ids: Array.from({ length: 1001 }, (_, i) => `usr_${i}`), origin: 'operator', reason: 'dormant' });
    expect(tooMany.statusCode).toBe(400);
  });

  it('1,000 ids in one batch close every one of them', async () => {
    const ids = (await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).where('status', '!=', 'closed').execute()).map((r) => r.id);
    const fill = Array.from({ length: 1000 - ids.length }, (_, i) => `usr_absent_${i}`);
    const res = await api.post('/v1/users/delete', { ids: [...ids, ...fill], origin: 'operator', reason: 'other' });
    expect(res.statusCode).toBe(200);
    expect(res.json().results.filter((r: { result: string }) => r.result === 'closed')).toHaveLength(ids.length);
    const open = await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).where('status', '!=', 'closed').execute();
    expect(open).toEqual([]);
  });
});
