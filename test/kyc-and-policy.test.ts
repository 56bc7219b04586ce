import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;

beforeAll(async () => ({ ctx, api, tenantId } = await openTenantContext()));
afterAll(() => ctx.close());

const userRow = (id: string) => ctx.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

describe('KYC verification records', () => {
  it('moves the KYC status: review → pending, rejected → rejected, approved → verified with level and time', async () => {
    const user = (await api.post('/v1/users', individual())).json();
    const steps: Array<[string, string]> = [['review', 'pending'], ['rejected', 'rejected'], ['approved', 'verified']];
    for (const [result, status] of steps) {
      const res = await api.post(`/v1/users/${user.id}/verifications`, { result, provider: 'acme-kyc', level: 3, provider_ref: `ref-${result}` });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json()).toMatchObject({ result, kyc_status_after: status, provider: 'acme-kyc', user_id: user.id });
      expect((await userRow(user.id)).kyc_status).toBe(status);
    }
    const row = await userRow(user.id);
    expect(row.kyc_level).toBe(3);
    expect(row.kyc_verified_at).toBeInstanceOf(Date);
    const got = (await api.get(`/v1/users/${user.id}`)).json();
    expect(got.kyc).toMatchObject({ status: 'verified', level: 3, verified_at: expect.any(String) });

    const history = (await api.get(`/v1/users/${user.id}/verifications`)).json().data;
    expect(history.map((v: { result: string }) => v.result)).toEqual(['approved', 'rejected', 'review']);
    const events = await ctx.db.selectFrom('events').select(['type', 'data']).where('user_id', '=', user.id).orderBy('seq').execute();
    expect(events.filter((e) => e.type === 'user.kyc_status_changed').map((e) => [e.data.from, e.data.to])).toEqual([
      ['unverified', 'pending'], ['pending', 'rejected'], ['rejected', 'verified'],
    ]);
    expect(events.filter((e) => e.type === 'user.verification_recorded')).toHaveLength(3);
  });

  it('keeps the identity snapshot immutable: the database refuses any UPDATE of a verification', async () => {
    const user = (await api.post('/v1/users', individual())).json();
    const v = (await api.post(`/v1/users/${user.id}/verifications`, {
      result: 'approved', provider: 'acme-kyc', identity: { first_name: 'Alex', last_name: 'Oak', document_number: 'DOCNO-7F3A9-ZZ' },
    })).json();
    // Identifier numbers are answered masked (issue 13); the GDPR export alone shows them whole.
    expect(v.identity).toEqual({ first_name: 'Alex', last_name: 'Oak', document_number: '*****9-ZZ' });
    const before = await ctx.db.selectFrom('verifications').selectAll().where('id', '=', v.id).executeTakeFirstOrThrow();
    // At rest the snapshot is ciphertext only.
    expect(before.identity_enc).toMatch(/^kc1\./);
    expect(JSON.stringify(before)).not.toContain('DOCNO-7F3A9-ZZ');
    await expect(
      sql`update verifications set identity_enc = 'kc1.forged' where id = ${v.id}`.execute(ctx.db),
    ).rejects.toThrow(/immutable/);
    await expect(sql`update verifications set level = 9 where id = ${v.id}`.execute(ctx.db)).rejects.toThrow(/immutable/);
    expect(await ctx.db.selectFrom('verifications').selectAll().where('id', '=', v.id).executeTakeFirstOrThrow()).toEqual(before);
    const listed = (await api.get(`/v1/users/${user.id}/verifications`)).json().data;
    expect(listed[0].identity).toEqual({ first_name: 'Alex', last_name: 'Oak', document_number: '*****9-ZZ' });
    expect((await api.get(`/v1/users/${user.id}/export`)).json().verifications[0].identity.document_number).toBe('DOCNO-7F3A9-ZZ');
  });

  it('refuses an invalid verification with 400 and records nothing', async () => {
    const user = (await api.post('/v1/users', individual())).json();
    for (const body of [
      { result: 'maybe', provider: 'x' },
      { result: 'approved' },
      { result: 'approved', provider: 'x', identity: { date_of_birth: '1990-02-30' } },
      { result: 'approved', provider: 'x', identity: { favourite_food: 'soup' } },
      { result: 'approved', provider: 'x', level: -1 },
    ]) {
      const res = await api.post(`/v1/users/${user.id}/verifications`, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
    }
    expect(await ctx.db.selectFrom('verifications').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
    expect((await userRow(user.id)).kyc_status).toBe('unverified');
    expect((await api.post('/v1/users/usr_00000000000000000000000000/verifications', { result: 'approved', provider: 'x' })).statusCode).toBe(404);
  });
});

describe('the tenant policy', () => {
  it('GET answers the defaults merged with overrides; PUT replaces the overrides, audited and evented', async () => {
    const initial = (await api.get('/v1/policy')).json();
    expect(initial.overrides).toEqual({});
    expect(initial.fields.individual.verified).toMatchObject({ last_name: 'approval', 'address.line1': 'allow_with_review', phone: 'allow', country: 'deny' });
    expect(initial.fields.business.unverified.legal_name).toBe('allow');

    const put = await api.call({ method: 'PUT', url: '/v1/policy', body: { fields: { individual: { verified: { 'address.line1': 'approval', email: 'allow' } } } } });
    expect(put.statusCode, put.body).toBe(200);
    expect(put.json().fields.individual.verified).toMatchObject({ 'address.line1': 'approval', email: 'allow', last_name: 'approval' });
    expect((await ctx.db.selectFrom('tenants').select('policy').where('id', '=', tenantId).executeTakeFirstOrThrow()).policy).toEqual({
      fields: { individual: { verified: { 'address.line1': 'approval', email: 'allow' } } },
      capabilities: {},
    });
    const audit = await ctx.db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId).where('action', '=', 'policy.updated').execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]!.details).toMatchObject({ before: {}, after: { fields: { individual: { verified: { email: 'allow' } } } } });
    const events = await ctx.db.selectFrom('events').select('type').where('tenant_id', '=', tenantId).where('type', '=', 'policy.updated').execute();
    expect(events).toHaveLength(1);

    // The new policy governs the next PATCH.
    const user = (await api.post('/v1/users', individual())).json();
    await api.post(`/v1/users/${user.id}/verifications`, { result: 'approved', provider: 'x' });
    const res = await api.patch(`/v1/users/${user.id}`, { email: 'changed@example.com', address: { line1: 'queued' } });
    expect(res.json()).toMatchObject({ email: 'changed@example.com', pending_changes: [expect.objectContaining({ fields: ['address.line1'] })] });

    const reset = await api.call({ method: 'PUT', url: '/v1/policy', body: {} });
    expect(reset.json().overrides).toEqual({ fields: {}, capabilities: {} });
    expect(reset.json().fields).toEqual(initial.fields);
  });

  it.each([
    [{ fields: { individual: { verified: { country: 'allow' } } } }, 'fields.individual.verified.country', 'immutable_field'],
    [{ fields: { business: { verified: { external_ref: 'approval' } } } }, 'fields.business.verified.external_ref', 'immutable_field'],
    [{ fields: { individual: { verified: { shoe_size: 'allow' } } } }, 'fields.individual.verified.shoe_size', 'unknown_field'],
    [{ fields: { individual: { verified: { email: 'sometimes' } } } }, 'fields.individual.verified.email', 'unknown_outcome'],
    [{ fields: { robots: {} } }, 'fields.robots', 'unknown_user_type'],
    [{ fields: { individual: { pending: {} } } }, 'fields.individual.pending', 'unknown_kyc_state'],
    [{ rate_limit: { requests_per_minute: 0 } }, 'rate_limit.requests_per_minute', 'too_small'],
    [{ documents: { locked_when_verified: ['shoe_scan'] } }, 'documents.locked_when_verified.0', 'not_allowed_value'],
    [{ documents: { locked_when_verified: ['ssn'], unlocked: [] } }, 'documents.unlocked', 'unknown_field'],
    [{ retention: { erasure_after_days: -1 } }, 'retention.erasure_after_days', 'too_small'],
    [{ capabilities: { closed: { deposits: true } } }, 'capabilities.closed', 'immutable'],
  ])('PUT %j → 400 naming %s, and nothing changes', async (body, field, code) => {
    const before = await ctx.db.selectFrom('tenants').select('policy').where('id', '=', tenantId).executeTakeFirstOrThrow();
    const res = await api.call({ method: 'PUT', url: '/v1/policy', body });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors).toContainEqual(expect.objectContaining({ field, code }));
    expect(await ctx.db.selectFrom('tenants').select('policy').where('id', '=', tenantId).executeTakeFirstOrThrow()).toEqual(before);
  });
});
