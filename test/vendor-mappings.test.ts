// The README's "Coming from another vendor" tables, their main rows run: a Treezor user (seed 001), a
// SEND business (seed 003) and a Didit user (seed 004) written with the field and status names the
// tables give, then read back. Rows that need the compliance profile (mobile, sanctions, risk…) are
// not here: they are tested with it.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTenantContext, type Client, type TestContext } from './helpers/app.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;

beforeAll(async () => ({ ctx, api, tenantId } = await openTenantContext()));
afterAll(() => ctx.close());

// The declaration the README shows, sent as written there.
const VENDOR_FIELDS = {
  custom_fields: {
    nationality_other: { schema: { type: 'string', pattern: '^[A-Z]{2}$' }, personal: true },
    opt_in_mailing: { schema: { type: 'boolean' } },
    sanctions_questionnaire_date: { schema: { type: 'string', format: 'date' } },
    kyc_review_comment: { schema: { type: 'string', maxLength: 500 }, personal: true },
    legal_share_capital: { schema: { type: 'number', minimum: 0 } },
    legal_annual_turnover: { schema: { type: 'string', maxLength: 32 } },
    listed_on_stock_exchange: { schema: { type: 'boolean' } },
    salutation: { schema: { type: 'string', enum: ['mr', 'mrs', 'ms', 'dr'] } },
    social_professional_category: { schema: { type: 'string', maxLength: 64 } },
    provider_account_no: { schema: { type: 'string', maxLength: 64 }, personal: true, searchable: true },
    issuer_sub_status: { schema: { type: 'string', pattern: '^[a-z_]{1,64}$' }, searchable: true },
  },
  fields: { business: { verified: { 'custom.legal_share_capital': 'approval' } } },
};

describe('the README', () => {
  it('shows the declaration this file sends', () => {
    const readme = fs.readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Coming from another vendor'), readme.indexOf('## Choices made where the spec is silent'));
    const body = /-d '(\{[\s\S]*?\})'\n```/.exec(section)?.[1];
    expect(JSON.parse(body ?? 'null')).toEqual(VENDOR_FIELDS);
  });
});

const eventTypes = async (id: string) =>
  (await ctx.db.selectFrom('events').select('type').where('tenant_id', '=', tenantId).where('user_id', '=', id).orderBy('seq').execute()).map((e) => e.type);

describe('Treezor (seed 001)', () => {
  it('the sample user, translated: built-in fields, tenant-defined fields for the rest, CANCELED as a close with origin', async () => {
    // Fields without a built-in home, declared as the README's "Coming from another vendor" does (the same body).
    const policy = await api.call({ method: 'PUT', url: '/v1/policy', body: VENDOR_FIELDS });
    expect(policy.statusCode, policy.body).toBe(200);

    const translated = {
      type: 'individual', // userTypeId 1
      external_ref: 'user test Treezor'.replaceAll(' ', '-'), // userTag (Kyclo's is printable ASCII without spaces)
      title: 'mr', // "M"
      first_name: 'Alex', last_name: 'Oak', middle_name: null, // firstname, lastname, middleNames ""
      date_of_birth: '1982-05-31', place_of_birth: 'Edgewood', birth_country: 'FR', nationality: 'FR', // birthday, placeOfBirth, birthCountry
      email: 'alex.oak@example.com',
      country: 'FR',
      address: { line1: '33 rosewood road', line2: null, line3: null, postcode: '75017', city: 'Paris', state: null }, // address1..3, postcode, city, state
      mailing_address: { line1: '2 quai de la Tournelle', postcode: '75005', city: 'Paris', country: 'FR' }, // secondaryAddress1, secondaryPostcode…
      tax_residence: 'FR', tax_number: '1234567890123', // taxResidence, taxNumber
      timezone: 'Europe/Paris',
      custom: { nationality_other: 'BE', opt_in_mailing: false, sanctions_questionnaire_date: '2023-10-23' },
      metadata: { treezor: { userId: 8327278, codeStatus: '110009' } },
    };
    // userTag as sent ("user test Treezor") has spaces, which an external_ref may not hold.
    const spaced = await api.post('/v1/users', { ...translated, external_ref: 'user test Treezor', phone: '+33111111111' });
    expect(spaced.statusCode).toBe(400);
    expect(spaced.json().errors).toEqual([expect.objectContaining({ field: 'external_ref' })]);
    // The sample's phone, "+3311111111", is one digit short of a French number: refused, nothing created.
    const badPhone = await api.post('/v1/users', { ...translated, phone: '+3311111111' });
    expect(badPhone.statusCode).toBe(400);
    expect(badPhone.json().errors).toEqual([expect.objectContaining({ field: 'phone', code: 'invalid_phone' })]);

    const created = await api.post('/v1/users', { ...translated, phone: '+33111111111' });
    expect(created.statusCode, created.body).toBe(201);
    const id = created.json().id;
    const read = (await api.get(`/v1/users/${id}`)).json();
    expect(read).toMatchObject({
      ...translated, phone: '+33111111111', status: 'active', kyc: { status: 'unverified', level: null },
      mailing_address: { ...translated.mailing_address, line2: null, line3: null, state: null },
      tax_number: '*****0123', // masked everywhere but the GDPR export
    });

    // DELETE /v1/users/{userId} {"origin": "OPERATOR"} → userStatus CANCELED
    const closed = await api.delete(`/v1/users/${id}`, { origin: 'operator', reason: 'other' });
    expect(closed.statusCode, closed.body).toBe(200);
    expect(closed.json()).toMatchObject({ status: 'closed', status_reason: 'other' });
    const change = await ctx.db.selectFrom('status_changes').selectAll().where('user_id', '=', id).executeTakeFirstOrThrow();
    expect(change).toMatchObject({ from_status: 'active', to_status: 'closed', origin: 'operator' });
    expect(await eventTypes(id)).toEqual(['user.created', 'user.status_changed', 'user.closed']);
    // "Users cannot be deleted": the record is kept, and closing again is a no-op.
    expect((await api.delete(`/v1/users/${id}`, { origin: 'user', reason: 'user_request' })).json().status).toBe('closed');
    expect(await eventTypes(id)).toHaveLength(3);
  });

  it('parentUserId and effectiveBeneficiary: a relationship held by the business', async () => {
    const biz = (await api.post('/v1/users', { type: 'business', country: 'FR', legal_name: 'Oak SAS', registration_number: '552100554', legal_form: 'SAS' })).json().id;
    const person = (await api.post('/v1/users', { type: 'individual', country: 'FR', first_name: 'Alex', last_name: 'Oak' })).json().id;
    const rel = await api.post(`/v1/users/${biz}/relationships`, { type: 'beneficial_owner', related_user_id: person, ownership_percent: 30, control: true });
    expect(rel.statusCode, rel.body).toBe(201);
    const owners = (await api.get(`/v1/users/${biz}/ownership`)).json().owners;
    expect(owners).toEqual([expect.objectContaining({ user_id: person, percent: 30 })]);
  });
});

describe('SEND (seed 003)', () => {
  it('the sample business, translated; once verified, SEND\'s "Yes" applies and its "No" is held or refused', async () => {
    const created = await api.post('/v1/users', {
      type: 'business',
      legal_name: 'Machnet Technologies Inc', // first_name of a business
      incorporation_date: '1995-01-01', // date_of_birth of a business
      country: 'US', email: 'ops@machnet.example.com', phone: '+12106603032', // mobile_phone, in E.164
      address: { line1: '500 8 El Camino Real Santa Clara', city: 'Santa Clara', state: 'CA', postcode: '95053' }, // zipcode
      mailing_address: { line1: '500 8 El Camino Real Santa Clara', city: 'Santa Clara', state: 'CA', postcode: '95053', country: 'US' },
      website: 'https://www.example.com', // company_website, with its scheme
      employees_range: '11_50', // number_of_employee BETWEEN_25_TO_50, approximated
      monthly_transactions: 122, transaction_frequency: 'weekly', // number_of_transaction_per_month, WEEKLY
      sector: 'COMPUTER_TECHNOLOGY', // user_scope of a business
    });
    expect(created.statusCode, created.body).toBe(201);
    const id = created.json().id;
    expect((await api.get(`/v1/users/${id}`)).json()).toMatchObject({
      legal_name: 'Machnet Technologies Inc', incorporation_date: '1995-01-01', monthly_transactions: 122, transaction_frequency: 'weekly',
      kyc: { status: 'unverified' }, // status UNVERIFIED
      mailing_address: { country: 'US', postcode: '95053' },
    });

    expect((await api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'send-kyc', level: 1 })).statusCode).toBe(201);
    // company_website, number_of_transaction_per_month: Yes once verified → applied at once.
    const yes = await api.patch(`/v1/users/${id}`, { website: 'https://machnet.example.com', monthly_transactions: 150 });
    expect(yes.statusCode, yes.body).toBe(200);
    expect(yes.json()).toMatchObject({ website: 'https://machnet.example.com', monthly_transactions: 150, kyc: { status: 'verified' }, pending_changes: [] });
    // first_name (the business's name): No once verified → held for a compliance officer, not applied.
    const no = await api.patch(`/v1/users/${id}`, { legal_name: 'Machnet Inc' });
    expect(no.statusCode, no.body).toBe(200);
    expect(no.json()).toMatchObject({ legal_name: 'Machnet Technologies Inc', pending_changes: [expect.objectContaining({ fields: ['legal_name'] })] });
    // A tenant-defined field the declaration holds for approval once a business is verified.
    const capital = await api.patch(`/v1/users/${id}`, { custom: { legal_share_capital: 250000 } });
    expect(capital.statusCode, capital.body).toBe(200);
    expect(capital.json().custom).toEqual({});
    expect(capital.json().pending_changes).toEqual(expect.arrayContaining([expect.objectContaining({ fields: ['custom.legal_share_capital'] })]));
    // country: No even unverified → refused, nothing applied.
    const country = await api.patch(`/v1/users/${id}`, { country: 'CA' });
    expect(country.statusCode).toBe(422);
    expect(country.json().code).toBe('user.field_denied');
    expect((await api.get(`/v1/users/${id}`)).json().country).toBe('US');
  });
});

describe('Didit (seed 004)', () => {
  it('vendor_data as external_ref (case-sensitive), metadata and tags, the status table, the batch delete', async () => {
    const created = await api.post('/v1/users', {
      type: 'individual', external_ref: 'Didit-Vendor-42', country: 'ES', first_name: 'Lucía', last_name: 'Roble',
      metadata: { plan: 'pro' }, tags: ['onboarding'],
    });
    expect(created.statusCode, created.body).toBe(201);
    const id = created.json().id;
    // GET /v3/users/{vendor_data}/ → the list filtered by external_ref, exact.
    expect((await api.get('/v1/users?external_ref=didit-vendor-42')).json().data).toEqual([]);
    expect((await api.get('/v1/users?external_ref=Didit-Vendor-42')).json().data.map((u: { id: string }) => u.id)).toEqual([id]);
    // vendor_data already exists → conflict, with the existing id.
    const again = await api.post('/v1/users', { type: 'individual', external_ref: 'Didit-Vendor-42', country: 'ES', first_name: 'L', last_name: 'R' });
    expect(again.json()).toMatchObject({ status: 409, code: 'user.exists', existing_id: id });

    // ACTIVE → FLAGGED → ACTIVE → BLOCKED → ACTIVE
    expect((await api.post(`/v1/users/${id}/flag`, { reason: 'aml_alert' })).json()).toMatchObject({ from: 'active', to: 'flagged' });
    expect((await api.post(`/v1/users/${id}/status-changes`, { status: 'active', reason: 'review_cleared' })).statusCode).toBe(201);
    expect((await api.post(`/v1/users/${id}/block`, { reason: 'fraud_suspected' })).statusCode).toBe(201);
    expect((await api.get(`/v1/users/${id}/capabilities`)).json().capabilities.deposits).toEqual({ allowed: false, reason: 'account_blocked' });
    expect((await api.post(`/v1/users/${id}/unblock`, { reason: 'review_cleared' })).statusCode).toBe(201);
    const history = (await api.get(`/v1/users/${id}/status-changes`)).json().data.map((c: { from: string; to: string }) => `${c.from}>${c.to}`);
    expect(history).toEqual(['blocked>active', 'active>blocked', 'flagged>active', 'active>flagged']);

    // POST /v3/users/delete/ → batch close; idempotent.
    const batch = await api.post('/v1/users/delete', { ids: [id], origin: 'operator', reason: 'other' });
    expect(batch.json().results).toEqual([{ id, result: 'closed' }]);
    expect((await api.post('/v1/users/delete', { ids: [id], origin: 'operator', reason: 'other' })).json().results).toEqual([{ id, result: 'already_closed' }]);
    expect((await eventTypes(id)).filter((t) => t === 'user.closed')).toHaveLength(1);
  });
});
