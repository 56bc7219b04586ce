// The compliance profile's further fields (issue 16 §2): on create and PATCH, each through the field
// policy with its default outcome per KYC state, nested ones decided leaf by leaf, closed sets
// published as enumerations; audit entries and events as for every other field.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { business, individual } from './helpers/factories.js';

let ctx: TestContext;
let tenantId: string;
let api: Client;

beforeAll(async () => ({ ctx, tenantId, api } = await openTenantContext()));
afterAll(() => ctx.close());

const PROFILE = {
  purpose_of_account: 'savings',
  employer: { name: 'Rosewood Bakery', address: '2 Mill Lane, Paris', phone: '+33612345678' },
  fatca_crs: { relevant: false, confirmed_at: '2026-01-05T10:00:00.000Z' },
  terms_accepted_at: '2026-01-05T09:59:00.000Z',
  marital_status: 'married',
  email_verified: true,
  phone_verified: false,
  mobile: '+33698765432',
  sanctions: { activity_outside_eu: false, economic_sanctions: false, resident_countries_sanctions: false, involved_sanctions: false },
  display_name: 'Alex O.',
  business_scope: 'COMPUTER_TECHNOLOGY',
};

async function verified(body: Record<string, unknown>) {
  const user = (await api.post('/v1/users', body)).json();
  expect((await api.post(`/v1/users/${user.id}/verifications`, { result: 'approved', provider: 'acme-kyc', level: 1 })).statusCode).toBe(201);
  return user.id as string;
}
const latest = async (id: string, table: 'audit_entries' | 'events') =>
  (await ctx.db.selectFrom(table).selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).orderBy('seq', 'desc').limit(3).execute());

describe('on create and read', () => {
  it('an individual carries every field; nested ones answer every key', async () => {
    const res = await api.post('/v1/users', individual({ ...PROFILE, employer: { name: 'Rosewood Bakery' } }));
    expect(res.statusCode, res.body).toBe(201);
    const user = (await api.get(`/v1/users/${res.json().id}`)).json();
    expect(user).toMatchObject({ ...PROFILE, employer: { name: 'Rosewood Bakery', address: null, phone: null } });
    expect(user.kyc).toEqual({ status: 'unverified', level: null, verified_at: null, sub_status: null });
    expect(user.risk).toBeNull();
    expect(user.required_actions).toEqual([]);
    const row = await ctx.db.selectFrom('users').select('profile').where('id', '=', user.id).executeTakeFirstOrThrow();
    expect(row.profile).toMatchObject({ employer: { name: 'Rosewood Bakery' }, sanctions: PROFILE.sanctions });
  });

  it('absent fields are null, never missing; a business has no employer, marital status or business scope', async () => {
    const person = (await api.post('/v1/users', individual())).json();
    for (const k of ['purpose_of_account', 'employer', 'fatca_crs', 'terms_accepted_at', 'marital_status', 'email_verified', 'phone_verified', 'mobile', 'sanctions', 'display_name', 'business_scope']) {
      expect(person[k], k).toBeNull();
    }
    const company = (await api.post('/v1/users', business({ purpose_of_account: 'business_payments', fatca_crs: { relevant: true }, display_name: 'Oak' }))).json();
    expect(company).toMatchObject({ purpose_of_account: 'business_payments', fatca_crs: { relevant: true, confirmed_at: null }, display_name: 'Oak', sanctions: null });
    expect(company).not.toHaveProperty('employer');
    for (const field of ['employer', 'marital_status', 'business_scope']) {
      const bad = await api.post('/v1/users', business({ [field]: field === 'employer' ? { name: 'x' } : 'single' }));
      expect(bad.statusCode, field).toBe(400);
      const patched = await api.patch(`/v1/users/${company.id}`, { [field]: field === 'employer' ? { name: 'x' } : 'single' });
      expect(patched.statusCode, field).toBe(400);
      expect(patched.json().errors).toContainEqual(expect.objectContaining({ field, code: 'unknown_field' }));
    }
  });

  it('validates values: a closed set, a dialable mobile and employer phone, booleans', async () => {
    for (const [extra, field] of [
      [{ purpose_of_account: 'laundering' }, 'purpose_of_account'], [{ marital_status: 'complicated' }, 'marital_status'],
      [{ mobile: '+33000000000' }, 'mobile'], [{ employer: { phone: '+33000000000' } }, 'employer.phone'],
      [{ sanctions: { economic_sanctions: 'no' } }, 'sanctions.economic_sanctions'], [{ employer: { ceo: 'x' } }, 'employer.ceo'],
    ] as const) {
      const res = await api.post('/v1/users', individual(extra));
      expect(res.statusCode, JSON.stringify(extra)).toBe(400);
      expect(res.json().errors.map((e: { field: string }) => e.field)).toContain(field);
    }
  });

  it('publishes the closed sets as enumerations', async () => {
    for (const [name, code] of [['account_purposes', 'savings'], ['marital_statuses', 'widowed'], ['risk_ratings', 'prohibited'], ['risk_statuses', 'unknown'], ['kyc_sub_statuses', 'pending_bank_verification'], ['required_action_codes', 'provide_document']]) {
      const res = await api.get(`/v1/enumerations/${name}`);
      expect(res.statusCode, name).toBe(200);
      expect(res.json().values.map((v: { code: string }) => v.code)).toContain(code);
    }
  });
});

describe('under the field policy, once verified', () => {
  it('the sanctions questionnaire applies at once and never re-opens review (Treezor)', async () => {
    const id = await verified(individual(PROFILE));
    const res = await api.patch(`/v1/users/${id}`, { sanctions: { economic_sanctions: true } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ sanctions: { ...PROFILE.sanctions, economic_sanctions: true }, kyc: { status: 'verified' } });
    const [audit] = await latest(id, 'audit_entries');
    expect(audit).toMatchObject({ action: 'user.updated', changed_fields: ['sanctions.economic_sanctions'], details: { review_required: false } });
    const [event] = await latest(id, 'events');
    expect(event).toMatchObject({ type: 'user.updated', data: { changed_fields: ['sanctions.economic_sanctions'] } });
  });

  it('purpose of account and FATCA/CRS apply and re-open review; the employer, flags and mobile just apply', async () => {
    const id = await verified(individual(PROFILE));
    const plain = await api.patch(`/v1/users/${id}`, { employer: { phone: null, name: 'Elm Ltd' }, email_verified: false, mobile: '+33698765400', display_name: 'A. Oak', marital_status: 'divorced' });
    expect(plain.statusCode, plain.body).toBe(200);
    expect(plain.json()).toMatchObject({ employer: { name: 'Elm Ltd', address: '2 Mill Lane, Paris', phone: null }, kyc: { status: 'verified' } });
    const reviewed = await api.patch(`/v1/users/${id}`, { purpose_of_account: 'investments', fatca_crs: { relevant: true } });
    expect(reviewed.json()).toMatchObject({ purpose_of_account: 'investments', fatca_crs: { relevant: true }, kyc: { status: 'review_required' } });
    const events = await latest(id, 'events');
    expect(events.map((e) => e.type)).toEqual(['user.kyc_status_changed', 'user.updated', 'user.updated']);
    expect(events[0]!.data).toMatchObject({ to: 'review_required', fields: ['fatca_crs.relevant', 'purpose_of_account'] });
  });

  it('the business scope is held for approval (SEND: No once verified)', async () => {
    const id = await verified(individual(PROFILE));
    const res = await api.patch(`/v1/users/${id}`, { business_scope: 'ARTS_ENTERTAINMENT' });
    expect(res.json()).toMatchObject({ business_scope: 'COMPUTER_TECHNOLOGY', pending_changes: [{ fields: ['business_scope'], proposed: { business_scope: 'ARTS_ENTERTAINMENT' } }] });
    const cr = await ctx.db.selectFrom('change_requests').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).executeTakeFirstOrThrow();
    expect(cr).toMatchObject({ status: 'pending', fields: ['business_scope'] });
  });

  it('the dry run and GET /v1/policy name every new field with its outcome', async () => {
    const id = await verified(individual(PROFILE));
    const dry = (await api.post(`/v1/users/${id}/dry-run`, { mobile: '+33698765401', fatca_crs: { relevant: true }, business_scope: 'X', sanctions: { involved_sanctions: true } })).json();
    expect(Object.fromEntries(dry.outcomes.map((o: { field: string; outcome: string }) => [o.field, o.outcome]))).toEqual({
      'business_scope': 'approval', 'fatca_crs.relevant': 'allow_with_review', 'mobile': 'allow', 'sanctions.involved_sanctions': 'allow',
    });
    const policy = (await api.get('/v1/policy')).json();
    expect(policy.fields.individual.verified).toMatchObject({
      purpose_of_account: 'allow_with_review', 'employer.name': 'allow', 'fatca_crs.confirmed_at': 'allow_with_review', terms_accepted_at: 'allow',
      marital_status: 'allow', email_verified: 'allow', phone_verified: 'allow', mobile: 'allow', 'sanctions.activity_outside_eu': 'allow',
      display_name: 'allow', business_scope: 'approval',
    });
    expect(policy.fields.business.verified).toMatchObject({ purpose_of_account: 'allow_with_review', 'sanctions.economic_sanctions': 'allow', mobile: 'allow' });
    expect(policy.fields.business.verified).not.toHaveProperty('employer.name');
    expect(policy.fields.individual.unverified).toMatchObject({ business_scope: 'allow', purpose_of_account: 'allow' });
  });

  it('a tenant can override one: the sanctions answers held for approval', async () => {
    const set = await api.call({ method: 'PUT', url: '/v1/policy', body: { fields: { individual: { verified: { 'sanctions.involved_sanctions': 'approval' } } } } });
    expect(set.statusCode, set.body).toBe(200);
    const id = await verified(individual(PROFILE));
    const res = await api.patch(`/v1/users/${id}`, { sanctions: { involved_sanctions: true, activity_outside_eu: true } });
    expect(res.json()).toMatchObject({
      sanctions: { involved_sanctions: false, activity_outside_eu: true },
      pending_changes: [{ fields: ['sanctions.involved_sanctions'] }],
    });
    expect((await api.call({ method: 'PUT', url: '/v1/policy', body: {} })).statusCode).toBe(200);
  });

  it('risk and required_actions are not fields a patch can write: 400 read_only, recorded as a flagged attempt', async () => {
    const id = (await api.post('/v1/users', individual())).json().id;
    const res = await api.patch(`/v1/users/${id}`, { risk: { rating: 'low' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors).toEqual([expect.objectContaining({ field: 'risk', code: 'read_only' })]);
    const [audit] = await latest(id, 'audit_entries');
    expect(audit).toMatchObject({ action: 'user.update_refused', outcome: 'flagged', changed_fields: ['risk'] });
  });
});
