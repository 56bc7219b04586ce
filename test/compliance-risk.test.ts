// The risk assessment of the compliance profile (issue 16 §2): set by compliance roles only, kept in
// a history, audited with an event, shown on the user, and a prohibited rating denies every
// capability. Each rule is shown by its outcome: rows, audit entries, events, capability answers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, createTenant, openTenantContext, withPersonal, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
let tenantId: string;
let api: Client;
let officer: Client;

beforeAll(async () => {
  ({ ctx, tenantId, api } = await openTenantContext());
  officer = client(ctx.app, (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key);
});
afterAll(() => ctx.close());

const put = (c: Client, id: string, body: unknown, headers: Record<string, string> = {}) => c.call({ method: 'PUT', url: `/v1/users/${id}/risk`, body, headers });
const person = async () => (await api.post('/v1/users', individual())).json().id as string;
async function verifiedPerson() {
  const id = await person();
  expect((await api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'acme-kyc', level: 1 })).statusCode).toBe(201);
  return id;
}
const history = (id: string) => ctx.db.selectFrom('risk_changes').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).orderBy('id').execute();
const audit = (id: string, action = 'user.risk_changed') =>
  ctx.db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).where('action', '=', action).orderBy('seq').execute();
const events = (id: string, type = 'user.risk_changed') =>
  ctx.db.selectFrom('events').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).where('type', '=', type).orderBy('seq').execute();
const version = async (id: string) => (await ctx.db.selectFrom('users').select('version').where('id', '=', id).executeTakeFirstOrThrow()).version;

describe('setting the risk', () => {
  it('a compliance officer sets it: shown on the user, a history row, an audit entry and user.risk_changed with the reason sealed', async () => {
    const id = await person();
    const v0 = await version(id);
    expect((await api.get(`/v1/users/${id}`)).json().risk).toBeNull();

    const res = await put(officer, id, { rating: 'high', status: 'pending', reason: 'Adverse media: local press, 2025' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({
      rating: 'high', status: 'pending', reason: 'Adverse media: local press, 2025', updated_at: expect.any(String),
      set_by: { key_id: expect.stringMatching(/^key_/), role: 'COMPLIANCE_OFFICER' },
    });
    expect(res.headers.etag).toBe(`"${v0 + 1}"`);
    const user = await api.get(`/v1/users/${id}`);
    expect(user.json().risk).toEqual(res.json());
    expect(user.headers.etag).toBe(`"${v0 + 1}"`);

    const [row] = await history(id);
    expect(row).toMatchObject({ from_rating: null, from_status: null, to_rating: 'high', to_status: 'pending', reason: 'Adverse media: local press, 2025', actor_role: 'COMPLIANCE_OFFICER' });
    const [entry] = await audit(id);
    expect(entry).toMatchObject({
      outcome: 'applied', target_type: 'user', target_id: id, actor_role: 'COMPLIANCE_OFFICER', changed_fields: ['risk.rating', 'risk.status', 'risk.reason'],
      details: { risk_change_id: row!.id, from: null, to: { rating: 'high', status: 'pending' } },
    });
    // The officer's words are free text about a person: never in the clear in the audit log or the event.
    expect(JSON.stringify(entry!.details)).not.toContain('Adverse');
    expect(entry!.personal_enc).toEqual(expect.any(String));
    const evs = await events(id);
    expect(evs).toHaveLength(1);
    expect(JSON.stringify(evs[0]!.data)).not.toContain('Adverse');
    const [opened] = await withPersonal(ctx, evs);
    expect(opened!.data).toEqual({
      user_id: id, risk_change_id: row!.id, version: v0 + 1, changed_fields: ['risk.rating', 'risk.status', 'risk.reason'],
      from: null, to: { rating: 'high', status: 'pending' }, reason: 'Adverse media: local press, 2025',
    });
  });

  it('keeps every change in a history, newest first, with where it came from', async () => {
    const id = await person();
    expect((await put(officer, id, { rating: 'low', status: 'cleared', reason: 'onboarding' })).statusCode).toBe(200);
    expect((await put(api, id, { rating: 'medium', status: 'cleared', reason: 'periodic review' })).statusCode).toBe(200);
    const page = (await api.get(`/v1/users/${id}/risk-changes`)).json();
    expect(page.next_cursor).toBeNull();
    expect(page.data.map((c: { from: unknown; to: unknown; reason: string; actor: { role: string } }) => [c.from, c.to, c.reason, c.actor.role])).toEqual([
      [{ rating: 'low', status: 'cleared' }, { rating: 'medium', status: 'cleared' }, 'periodic review', 'OWNER'],
      [null, { rating: 'low', status: 'cleared' }, 'onboarding', 'COMPLIANCE_OFFICER'],
    ]);
    const second = (await audit(id)).at(-1)!;
    expect(second.changed_fields).toEqual(['risk.rating', 'risk.reason']);
    // A page of one, then the next.
    const first = (await api.get(`/v1/users/${id}/risk-changes?limit=1`)).json();
    expect(first.data).toHaveLength(1);
    expect((await api.get(`/v1/users/${id}/risk-changes?limit=1&cursor=${first.next_cursor}`)).json().data[0].from).toBeNull();
  });

  it('the same rating, status and reason again changes nothing: no history row, audit entry, event or new version', async () => {
    const id = await person();
    const body = { rating: 'low', status: 'cleared', reason: 'onboarding' };
    expect((await put(officer, id, body)).statusCode).toBe(200);
    const v = await version(id);
    const again = await put(officer, id, body);
    expect(again.statusCode).toBe(200);
    expect(again.headers.etag).toBe(`"${v}"`);
    expect(await history(id)).toHaveLength(1);
    expect(await audit(id)).toHaveLength(1);
    expect(await events(id)).toHaveLength(1);
  });

  it('requires a reason and a known rating and status: 400, nothing written', async () => {
    const id = await person();
    for (const body of [{ rating: 'high', status: 'pending' }, { rating: 'high', status: 'pending', reason: '' }, { rating: 'extreme', status: 'pending', reason: 'x' }, { rating: 'low', status: 'ok', reason: 'x' }]) {
      const res = await put(officer, id, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().code).toBe('request.validation_failed');
    }
    expect(await history(id)).toEqual([]);
    expect(await audit(id)).toEqual([]);
    expect((await api.get(`/v1/users/${id}`)).json().risk).toBeNull();
  });

  it('is refused to READER and DEVELOPER keys with 403, and nothing is written', async () => {
    const id = await person();
    const v = await version(id);
    for (const role of ['READER', 'DEVELOPER'] as const) {
      const c = client(ctx.app, (await createKey(ctx.db, tenantId, role)).key);
      const res = await put(c, id, { rating: 'low', status: 'cleared', reason: 'I would like it low' });
      expect(res.statusCode, role).toBe(403);
      expect(res.json().code).toBe('auth.forbidden');
      // Both may read it, and its history.
      expect((await c.get(`/v1/users/${id}/risk-changes`)).statusCode).toBe(200);
    }
    expect(await history(id)).toEqual([]);
    expect(await audit(id)).toEqual([]);
    expect(await events(id)).toEqual([]);
    expect(await version(id)).toBe(v);
  });

  it('answers 404 for another tenant’s user, and changes nothing of it', async () => {
    const id = await person();
    const other = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    const res = await put(other, id, { rating: 'prohibited', status: 'rejected', reason: 'x' });
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe('user.not_found');
    expect((await other.get(`/v1/users/${id}/risk-changes`)).statusCode).toBe(404);
    expect(await history(id)).toEqual([]);
    expect((await api.get(`/v1/users/${id}`)).json().risk).toBeNull();
  });

  it('with a stale If-Match answers 412; on a closed user 409; nothing written either way', async () => {
    const id = await person();
    const v = await version(id);
    const stale = await put(officer, id, { rating: 'low', status: 'cleared', reason: 'x' }, { 'if-match': `"${v - 1}"` });
    expect(stale.statusCode).toBe(412);
    expect((await put(officer, id, { rating: 'low', status: 'cleared', reason: 'x' }, { 'if-match': `"${v}"` })).statusCode).toBe(200);
    expect((await api.delete(`/v1/users/${id}`, { origin: 'operator', reason: 'other' })).statusCode).toBe(200);
    const closed = await put(officer, id, { rating: 'high', status: 'cleared', reason: 'y' });
    expect(closed.statusCode).toBe(409);
    expect(closed.json().code).toBe('user.closed');
    expect(await history(id)).toHaveLength(1);
  });
});

describe('concurrent changes', () => {
  it('are serialised on the user: the history is one unbroken chain, each from the one before', async () => {
    const id = await person();
    const ratings = ['low', 'medium', 'high', 'prohibited'];
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => put(officer, id, { rating: ratings[i % 4], status: 'pending', reason: `review ${i}` })));
    expect(results.map((r) => r.statusCode)).toEqual(Array(12).fill(200));
    const rows = await history(id);
    expect(rows).toHaveLength(12);
    rows.forEach((r, i) => {
      if (i === 0) expect(r.from_rating).toBeNull();
      else expect([r.from_rating, r.from_status]).toEqual([rows[i - 1]!.to_rating, rows[i - 1]!.to_status]);
    });
    const user = (await api.get(`/v1/users/${id}`)).json();
    expect(user.risk).toMatchObject({ rating: rows.at(-1)!.to_rating, reason: rows.at(-1)!.reason });
    expect(await audit(id)).toHaveLength(12);
    expect(await events(id)).toHaveLength(12);
  });
});

describe('a prohibited rating', () => {
  const verdicts = async (id: string) => {
    const body = (await api.get(`/v1/users/${id}/capabilities`)).json();
    return Object.fromEntries(Object.entries(body.capabilities as Record<string, { allowed: boolean; reason: string | null }>).map(([op, v]) => [op, v.reason ?? 'allowed']));
  };

  it('denies every capability with risk_prohibited at once, and lifting it restores them', async () => {
    const id = await verifiedPerson();
    expect(await verdicts(id)).toEqual({ deposits: 'allowed', withdrawals: 'allowed', exchanges: 'allowed', card_transactions: 'allowed' });
    expect((await put(officer, id, { rating: 'prohibited', status: 'rejected', reason: 'sanctions list match confirmed' })).statusCode).toBe(200);
    expect(await verdicts(id)).toEqual({ deposits: 'risk_prohibited', withdrawals: 'risk_prohibited', exchanges: 'risk_prohibited', card_transactions: 'risk_prohibited' });
    expect((await api.get(`/v1/users/${id}/capabilities`)).json().risk_rating).toBe('prohibited');
    expect((await put(officer, id, { rating: 'high', status: 'cleared', reason: 'false positive: different birth date' })).statusCode).toBe(200);
    expect(await verdicts(id)).toEqual({ deposits: 'allowed', withdrawals: 'allowed', exchanges: 'allowed', card_transactions: 'allowed' });
  });

  it('denies what a flagged user’s status leaves open, whatever the tenant’s matrix; the status’s own reasons come first', async () => {
    const id = await verifiedPerson();
    expect((await api.post(`/v1/users/${id}/flag`, { reason: 'compliance_review' })).statusCode).toBe(201);
    expect((await put(officer, id, { rating: 'prohibited', status: 'rejected', reason: 'x' })).statusCode).toBe(200);
    expect(await verdicts(id)).toEqual({ deposits: 'risk_prohibited', withdrawals: 'under_review', exchanges: 'under_review', card_transactions: 'risk_prohibited' });
    // A matrix opening everything to flagged users does not open a prohibited one.
    expect((await api.call({ method: 'PUT', url: '/v1/policy', body: { capabilities: { flagged: { withdrawals: true, exchanges: true } } } })).statusCode).toBe(200);
    expect(await verdicts(id)).toEqual({ deposits: 'risk_prohibited', withdrawals: 'risk_prohibited', exchanges: 'risk_prohibited', card_transactions: 'risk_prohibited' });
    expect((await api.call({ method: 'PUT', url: '/v1/policy', body: {} })).statusCode).toBe(200);
  });

  it('is in the capability answer of an unverified user too: the rating decides before KYC', async () => {
    const id = await person();
    expect((await put(officer, id, { rating: 'prohibited', status: 'rejected', reason: 'x' })).statusCode).toBe(200);
    expect(Object.values(await verdicts(id))).toEqual(['risk_prohibited', 'risk_prohibited', 'risk_prohibited', 'risk_prohibited']);
  });
});

describe('the GDPR export', () => {
  it('carries the risk on the user and its whole history', async () => {
    const id = await person();
    await put(officer, id, { rating: 'low', status: 'cleared', reason: 'onboarding' });
    await put(officer, id, { rating: 'high', status: 'pending', reason: 'review' });
    const doc = (await api.get(`/v1/users/${id}/export`)).json();
    expect(doc.user.risk).toMatchObject({ rating: 'high', status: 'pending', reason: 'review' });
    expect(doc.risk_changes.map((c: { to: { rating: string } }) => c.to.rating)).toEqual(['low', 'high']);
  });
});
