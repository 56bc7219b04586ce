// The vendor profiles on records shaped as the vendors' own documents show them (test/fixtures/
// vendors: Treezor's and SEND's examples as published; Didit's and MatchMove's documents describe
// their fields without a full example, so their records are built from those descriptions).
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createTenant, createTestContext, type TestContext } from './helpers/app.js';
import { importText, servicesFor } from './helpers/imports.js';
import type { Services } from '../src/services.js';
import { PROFILES } from '../src/modules/imports/profiles/index.js';
import { checkRow } from '../src/modules/imports/row-check.js';
import type { Format } from '../src/modules/imports/formats.js';

let ctx: TestContext;
let services: Services;
beforeAll(async () => {
  ctx = await createTestContext();
  services = servicesFor(ctx);
});
afterAll(() => ctx.close());

const fixture = (name: string) => fs.readFile(new URL(`./fixtures/vendors/${name}`, import.meta.url), 'utf8');

async function importAs(profile: string, text: string, format: Format) {
  const { tenantId, ownerKey } = await createTenant(ctx.db);
  const { actor, job: done } = await importText(services, tenantId, text, { profile, format });
  const users = await ctx.db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).orderBy('external_ref').execute();
  const errors = await services.imports.errors(actor, done.id, {});
  const audit = await ctx.db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId).where('action', '=', 'user.imported').execute();
  // The user as GET /v1/users/{id} answers it (the contract checks the answer against its schema).
  const get = async (id: string) => {
    const res = await client(ctx.app, ownerKey).get(`/v1/users/${id}`);
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };
  return { job: done, users, errors: errors.data, audit, get, api: client(ctx.app, ownerKey) };
}

const checked = (profile: string, record: Record<string, unknown>) => {
  const mapped = PROFILES[profile]!.map(record);
  if (mapped.user.external_ref === undefined) mapped.user.external_ref = mapped.external_ref;
  return { mapped, result: checkRow(mapped) };
};

describe('the treezor profile', () => {
  it("imports Treezor's published users answer: the CANCELED user closed, its id kept, each unmapped field listed", async () => {
    const { job, users, errors, audit, get, api } = await importAs('treezor', await fixture('treezor-users.json'), 'json');
    // The first example hides most attributes ("// [...]"), country among them: reported, not guessed.
    expect(errors).toEqual([expect.objectContaining({ line: 3, field: 'country', code: 'required' })]);
    expect(job.counts).toMatchObject({ read: 2, imported: 1, rejected: 1 });
    const [u] = users;
    expect(u).toMatchObject({
      external_ref: 'treezor:8327278', type: 'individual', country: 'FR', status: 'closed', status_reason: 'other', kyc_status: 'unverified', kyc_level: null,
      profile: { first_name: 'Alex', last_name: 'Oak', date_of_birth: '1982-05-31', email: 'alex.oak@example.com', place_of_birth: 'Edgewood', birth_country: 'FR', nationality: 'FR', address: { line1: '33 rosewood road', city: 'Paris', postcode: '75017' } },
    });
    expect(u!.created_at.toISOString()).toBe('2023-10-23T12:28:00.000Z');
    // "" and 0000-00-00 are absent: no empty title, no legal registration date; the vendor id is kept.
    expect(u!.profile).not.toHaveProperty('title');
    // kycLevel 1 with kycReview 0: never reviewed, so no Kyclo level (an unverified user with one is refused).
    expect(u!.metadata).toMatchObject({ treezor: { id: '8327278', clientId: '945198', codeStatus: '110009', phone: '+3311111111', kycLevel: 1 } });
    expect(u!.metadata).not.toHaveProperty('treezor.legalRegistrationDate');
    expect(job.moved_fields).toMatchObject({
      phone: 'metadata.treezor.phone (not a valid phone number)', clientId: 'metadata.treezor.clientId', userTag: 'metadata.treezor.userTag (not a valid external_ref)',
      kycLevel: 'metadata.treezor.kycLevel (no KYC review: a level comes with a verification)',
    });
    // specifiedUSPerson 0 is FATCA/CRS's answer "not a US person"; the sanctions answers are null (not
    // answered) and the mobile "": nothing to land, nothing in metadata.
    expect(u!.profile).toMatchObject({ fatca_crs: { relevant: false } });
    expect(await get(u!.id)).toMatchObject({ fatca_crs: { relevant: false, confirmed_at: null }, sanctions: null, mobile: null, phone: null });
    for (const f of ['specifiedUSPerson', 'mobile', 'activityOutsideEu', 'economicSanctions', 'residentCountriesSanctions', 'involvedSanctions']) {
      expect(job.moved_fields, f).not.toHaveProperty(f);
      expect(u!.metadata, f).not.toHaveProperty(`treezor.${f}`);
    }
    expect(audit).toEqual([expect.objectContaining({ user_id: u!.id, details: { profile: 'treezor', import_id: job.id, line: expect.any(Number) } })]);
    // The vendor's id is the entry's sealed personal part, opened for those who may read the audit log.
    expect(audit[0]!.personal_enc).toEqual(expect.any(String));
    const entry = (await api.get(`/v1/audit-events?user_id=${u!.id}&action=user.imported`)).json().data[0];
    expect(entry).toMatchObject({ details: { import_id: job.id }, values: { source_id: '8327278' } });
  });

  it('a closed user the source gives no closing date for counts from the import: an erasure keeps it the whole retention', async () => {
    const started = Date.now();
    const { users, api } = await importAs('treezor', await fixture('treezor-users.json'), 'json');
    const [u] = users;
    expect(u).toMatchObject({ status: 'closed' });
    // Not the creation date (2023-10-23): that would start the AML retention years early.
    expect(u!.status_changed_at.getTime()).toBeGreaterThanOrEqual(started - 1000);
    const history = await ctx.db.selectFrom('status_changes').select(['to_status', 'created_at']).where('user_id', '=', u!.id).execute();
    expect(history).toEqual([{ to_status: 'closed', created_at: u!.status_changed_at }]);
    const erasure = await api.post(`/v1/users/${u!.id}/erasure`, { requested_by: 'user' });
    expect(erasure.statusCode, erasure.body).toBe(202);
    // Before, 2023-10-23 + five years: destroyed in 2028, years before five years after its real closure.
    expect(Date.parse(erasure.json().scheduled_for)).toBeGreaterThanOrEqual(started - 1000 + 1827 * 86_400_000);
  });

  it('takes userTag as external_ref when it is one, frozen as suspended, kycReview 2 as verified, a company as a business', () => {
    const { result } = checked('treezor', {
      userId: 42, userTypeId: 2, userStatus: 'VALIDATED', userTag: 'crm-42', isFrozen: 1, kycReview: 2, kycLevel: 2, country: 'FR',
      legalName: 'Oak SAS', legalRegistrationNumber: '123456789', legalRegistrationDate: '2015-03-02', legalNumberOfEmployeeRange: '1-9', mobile: '+33611111111',
    });
    expect(result).toEqual({ row: expect.objectContaining({ external_ref: 'crm-42', type: 'business', status: 'suspended', kyc_status: 'verified', kyc_level: 2,
      profile: expect.objectContaining({ legal_name: 'Oak SAS', incorporation_date: '2015-03-02', employees_range: '1_10', mobile: '+33611111111' }) }) });
  });

  it('a verified user Treezor (or SEND) gives no date for is verified as of the import, as a status without its date: never verified without a date', async () => {
    const started = Date.now();
    const { users, errors } = await importAs('treezor', JSON.stringify({ users: [{ userId: 5, userTypeId: 1, kycReview: 2, kycLevel: 2, country: 'FR', firstname: 'Alex', lastname: 'Oak' }] }), 'json');
    const send = await importAs('send', JSON.stringify({ id: 's-5', status: 'VERIFIED', country: 'US', first_name: 'Ann', last_name: 'Oak' }), 'ndjson');
    expect([errors, send.errors]).toEqual([[], []]);
    for (const u of [users[0]!, send.users[0]!]) {
      expect(u.kyc_status).toBe('verified');
      // Before: null, and a later re-verification pending would have unlocked the user's locked documents.
      expect(u.kyc_verified_at!.getTime()).toBeGreaterThanOrEqual(started - 1000);
    }
    expect(users[0]!.kyc_level).toBe(2);
  });

  it('converts incomeRange (thousands of euros) into the income band that holds it, and keeps a range that straddles two', () => {
    const person = { userId: 9, userTypeId: 1, userStatus: 'VALIDATED', country: 'FR', firstname: 'Alex', lastname: 'Oak' };
    const banded = checked('treezor', { ...person, incomeRange: '28-35' });
    expect(banded.result).toEqual({ row: expect.objectContaining({ profile: expect.objectContaining({ income_range: '25k_50k' }) }) });
    expect(banded.mapped.moved).not.toHaveProperty('incomeRange');
    const straddling = checked('treezor', { ...person, incomeRange: '24-27' });
    expect((straddling.result as { row: { profile: object } }).row.profile).not.toHaveProperty('income_range');
    expect(straddling.mapped.moved).toEqual(expect.objectContaining({ incomeRange: 'metadata.treezor.incomeRange (straddles income_ranges)' }));
    expect(straddling.mapped.user.metadata).toMatchObject({ treezor: { incomeRange: '24-27' } });
  });

  it('lands mobile, phone, the sanctions questionnaire and specifiedUSPerson in the compliance profile; keeps an answer it cannot read', async () => {
    const record = {
      userId: 7, userTypeId: 1, userStatus: 'VALIDATED', country: 'FR', firstname: 'Alex', lastname: 'Oak', specifiedUSPerson: 1,
      phone: '+33144556677', mobile: '0611111111', activityOutsideEu: 0, economicSanctions: '1', residentCountriesSanctions: 0, involvedSanctions: 2,
      sanctionsQuestionnaireDate: '2024-02-01',
    };
    const { job, users, errors, get } = await importAs('treezor', JSON.stringify({ users: [record] }), 'json');
    expect(errors).toEqual([]);
    const [u] = users;
    expect(u!.profile).toMatchObject({
      phone: '+33144556677', mobile: '+33611111111', fatca_crs: { relevant: true },
      sanctions: { activity_outside_eu: false, economic_sanctions: true, resident_countries_sanctions: false },
    });
    expect(await get(u!.id)).toMatchObject({
      phone: '+33144556677', mobile: '+33611111111', fatca_crs: { relevant: true, confirmed_at: null },
      sanctions: { activity_outside_eu: false, economic_sanctions: true, resident_countries_sanctions: false, involved_sanctions: null },
    });
    // 2 is no answer to a yes/no question: kept and reported, not guessed; the questionnaire's date is a
    // tenant-defined field in Kyclo (README), so metadata here.
    expect(u!.metadata).toMatchObject({ treezor: { involvedSanctions: 2, sanctionsQuestionnaireDate: '2024-02-01' } });
    expect(job.moved_fields).toEqual({
      involvedSanctions: 'metadata.treezor.involvedSanctions (not 0 or 1)', sanctionsQuestionnaireDate: 'metadata.treezor.sanctionsQuestionnaireDate',
    });
  });
});

describe('the send profile', () => {
  it("imports SEND's published individual and business answers, converting the phone, the website and the employee range", async () => {
    const { job, users, errors, get } = await importAs('send', await fixture('send-users.ndjson'), 'ndjson');
    expect(errors).toEqual([]);
    expect(job.counts).toMatchObject({ read: 2, imported: 2 });
    const person = users.find((u) => u.type === 'individual')!;
    expect(person).toMatchObject({
      external_ref: 'send:f45680e1-014d-42c7-be86-3b2899e911c3', country: 'US', kyc_status: 'unverified',
      profile: { first_name: 'Tenzin', last_name: 'Norgay', gender: 'female', phone: '+12106603032', occupation: 'Banker', address: { line1: '500 8 El Camino Real Santa Clara', city: 'Santa Clara', state: 'CA', postcode: '95053' } },
    });
    expect(person.created_at.toISOString()).toBe('2022-03-29T15:59:03.699Z');
    // Identifier numbers never land in metadata: the documents are listed as not imported.
    expect(JSON.stringify(person.metadata)).not.toContain('1111111111');
    // user_scope and company_details have their homes: business_scope and employer. The employer's
    // 222222222 is no US number: that part alone stays in metadata, and the report says why.
    expect(person.profile).toMatchObject({ business_scope: 'ARTS_ENTERTAINMENT', employer: { name: 'ACME', address: '123 address st' } });
    expect(await get(person.id)).toMatchObject({ business_scope: 'ARTS_ENTERTAINMENT', employer: { name: 'ACME', address: '123 address st', phone: null } });
    expect(person.metadata).toEqual({ send: { id: 'f45680e1-014d-42c7-be86-3b2899e911c3', ip_address: '10.0.0.1', company_details: { phone_number: '222222222' } } });
    expect(job.moved_fields).toMatchObject({
      virtual_documents: expect.stringMatching(/^not imported/), physical_documents: expect.stringMatching(/^not imported/), ip_address: 'metadata.send.ip_address',
      'company_details.phone_number': 'metadata.send.company_details.phone_number (not a valid phone number in the user’s country)',
    });
    expect(job.moved_fields).not.toHaveProperty('company_details');
    expect(job.moved_fields).not.toHaveProperty('user_scope');
    const biz = users.find((u) => u.type === 'business')!;
    expect(biz.profile).toMatchObject({
      legal_name: 'Machnet Technologies Inc', incorporation_date: '1995-01-01', website: 'https://www.example.com', employees_range: '11_50',
      monthly_transactions: 122, transaction_frequency: 'weekly', sector: 'COMPUTER_TECHNOLOGY',
      mailing_address: { line1: '500 8 El Camino Real Santa Clara', city: 'Santa Clara', state: 'CA', postcode: '95053', country: 'US' },
    });
    // 222222222 is no US number: kept and reported, the row still imported.
    expect(biz.metadata).toMatchObject({ send: { mobile_phone: '222222222' } });
    expect(job.moved_fields.mobile_phone).toBe('metadata.send.mobile_phone (not a valid phone number in the user’s country)');
    // A business's user_scope is its sector, not an individual's line of business.
    expect(await get(biz.id)).toMatchObject({ sector: 'COMPUTER_TECHNOLOGY', mobile: null });
    expect(biz.profile).not.toHaveProperty('business_scope');
  });

  it('takes a business’s business_type as its legal form', () => {
    const { result } = checked('send', { id: 'b-1', type: 'BUSINESS', first_name: 'Oak LLC', country: 'US', business_type: 'LLC', user_scope: 'RETAIL' });
    expect(result).toEqual({ row: expect.objectContaining({ type: 'business', profile: expect.objectContaining({ legal_name: 'Oak LLC', legal_form: 'LLC', sector: 'RETAIL' }) }) });
  });
});

describe('the didit profile', () => {
  const didit = (extra: Record<string, unknown> = {}) => ({
    vendor_data: 'user-7f3a', display_name: 'Ann', full_name: 'Ann Oak', date_of_birth: '1990-04-01', status: 'FLAGGED', country: 'ES',
    metadata: { plan: 'pro' }, tags: ['beta'], portrait_image: 'https://example.com/portrait.jpg', session_count: 3, created_at: '2025-01-02T03:04:05Z', ...extra,
  });

  it('maps vendor_data, the status, metadata and tags; leaves the portrait out; rejects a name it cannot split', async () => {
    const text = [didit(), didit({ vendor_data: 'user-2', full_name: 'Ann Maria de la Oak' }), didit({ vendor_data: 'user-3', country: undefined })].map((r) => JSON.stringify(r)).join('\n');
    const { job, users, errors, get } = await importAs('didit', text, 'ndjson');
    expect(users).toEqual([expect.objectContaining({
      external_ref: 'user-7f3a', status: 'flagged', tags: ['beta'], metadata: { plan: 'pro', didit: { id: 'user-7f3a', session_count: 3 } },
      profile: expect.objectContaining({ first_name: 'Ann', last_name: 'Oak', display_name: 'Ann', date_of_birth: '1990-04-01' }),
    })]);
    // display_name is the compliance profile's own field (mutable in both), not the preferred name.
    expect(await get(users[0]!.id)).toMatchObject({ display_name: 'Ann', preferred_name: null });
    expect(job.moved_fields).not.toHaveProperty('display_name');
    expect(errors.map((e) => [e.line, e.field, e.code])).toEqual([
      [2, 'full_name', 'ambiguous_name'], [2, 'first_name', 'required'], [2, 'last_name', 'required'],
      [3, 'country', 'required'],
    ]);
    expect(job.moved_fields).toMatchObject({ portrait_image: expect.stringMatching(/^not imported/), session_count: 'metadata.didit.session_count' });
  });
});

describe('the matchmove profile', () => {
  const record = {
    id: 'a1b2c3', ref_id: 'cust-991', user_type: 'customer', salutation: 'Ms', title: 'ms', first_name: 'Mei', last_name: 'Tan', preferred_name: 'Mei Tan',
    gender: 'female', email: 'mei.tan@example.com', mobile_country_code: '65', mobile: '91234567', marital_status: 'Single',
    birth: { date: '1988-02-03', city: 'Singapore', country: 'SG' }, nationality: 'SG',
    addresses: [{ type: 'billing', address_1: '1 Billing Rd', city: 'Singapore', zipcode: '018989', country: 'SG' }, { type: 'residential', address_1: '10 Orchard Rd', city: 'Singapore', zipcode: '238826', country: 'SG' }],
    employment_type: 'salaried', job_title: 'Analyst', employer: { name: 'Orchard Pte Ltd', address: '1 Raffles Pl', phone: '62223333', industry: 'finance' },
    annual_income_range: '50k-100k', purpose_of_account: 'savings', email_verified: 1, mobile_verified: 0,
    fatca_crs_relevance: 0, fatca_crs_confirmation: '2023-01-02T03:10:00Z', data_terms_signed_date: '2023-01-02T03:05:00Z',
    status: 'suspened', sub_status: 'account_suspended_by_issuer',
    kyc_status: 'completed', kyc_sub_status: 'approved', kyc_processed_date: '2024-05-06T07:08:09Z', risk_status: 'CLEARED', created_date: '2023-01-02T03:04:05Z',
  };

  it('maps names, birth details, the residential address, the mobile with its country prefix, and the account and KYC statuses', async () => {
    const { job, users, errors } = await importAs('matchmove', JSON.stringify(record) + '\n', 'ndjson');
    expect(errors).toEqual([]);
    expect(users[0]).toMatchObject({
      external_ref: 'cust-991', country: 'SG', status: 'suspended', kyc_status: 'verified',
      profile: { title: 'ms', first_name: 'Mei', last_name: 'Tan', gender: 'female', phone: '+6591234567', date_of_birth: '1988-02-03', place_of_birth: 'Singapore', birth_country: 'SG', occupation: 'Analyst', address: { line1: '10 Orchard Rd', postcode: '238826' } },
      metadata: { matchmove: expect.objectContaining({ id: 'a1b2c3', sub_status: 'account_suspended_by_issuer', risk_status: 'CLEARED' }) },
    });
    expect(users[0]!.kyc_verified_at!.toISOString()).toBe('2024-05-06T07:08:09.000Z');
    expect(job.moved_fields).toMatchObject({ addresses: 'metadata.matchmove.addresses (more than one address)' });
  });

  it('lands the compliance profile: KYC sub-status, marital status, employment, employer, purpose, verified flags, FATCA/CRS, terms', async () => {
    const { job, users, get } = await importAs('matchmove', JSON.stringify(record) + '\n', 'ndjson');
    const [u] = users;
    expect(u).toMatchObject({
      kyc_sub_status: 'approved',
      profile: {
        income_range: '50k_100k', marital_status: 'single', employment_type: 'employed', purpose_of_account: 'savings', email_verified: true, phone_verified: false,
        employer: { name: 'Orchard Pte Ltd', address: '1 Raffles Pl', phone: '+6562223333' },
        fatca_crs: { relevant: false, confirmed_at: '2023-01-02T03:10:00Z' }, terms_accepted_at: '2023-01-02T03:05:00Z',
      },
    });
    expect(await get(u!.id)).toMatchObject({
      kyc: { status: 'verified', level: null, verified_at: '2024-05-06T07:08:09.000Z', sub_status: 'approved' },
      marital_status: 'single', employment_type: 'employed', purpose_of_account: 'savings', email_verified: true, phone_verified: false,
      employer: { name: 'Orchard Pte Ltd', address: '1 Raffles Pl', phone: '+6562223333' },
      fatca_crs: { relevant: false, confirmed_at: '2023-01-02T03:10:00Z' }, terms_accepted_at: '2023-01-02T03:05:00Z',
    });
    // What has no built-in home stays in metadata, listed; a risk status is no risk rating (the
    // tenant's officers set one, with its reason), the issuer's sub status a tenant-defined field.
    const landed = ['annual_income_range', 'kyc_sub_status', 'marital_status', 'employment_type', 'purpose_of_account', 'email_verified', 'mobile_verified', 'fatca_crs_relevance', 'fatca_crs_confirmation', 'data_terms_signed_date', 'employer'];
    for (const f of landed) expect(job.moved_fields, f).not.toHaveProperty(f);
    expect(u!.metadata).toEqual({ matchmove: {
      id: 'a1b2c3', salutation: 'Ms', addresses: [record.addresses[0]], employer: { industry: 'finance' }, sub_status: 'account_suspended_by_issuer', risk_status: 'CLEARED',
    } });
    expect(job.moved_fields).toEqual({
      salutation: 'metadata.matchmove.salutation', addresses: 'metadata.matchmove.addresses (more than one address)',
      'employer.industry': 'metadata.matchmove.employer.industry', sub_status: 'metadata.matchmove.sub_status', risk_status: 'metadata.matchmove.risk_status',
    });
  });

  it('keeps values that name none of Kyclo’s codes in metadata, saying why, and imports the row', () => {
    const { mapped, result } = checked('matchmove', {
      id: 'x9', user_type: 'customer', first_name: 'Lee', last_name: 'Ong', country: 'SG', marital_status: 'complicated', employment_type: 'freelancer',
      purpose_of_account: 'remittance', kyc_status: 'pending', kyc_sub_status: 'documents_ok', data_terms_signed_date: '2023-01-02', email_verified: 'yes', employer: 'Orchard',
    });
    expect(result).toEqual({ row: expect.objectContaining({ kyc_sub_status: null, kyc_status: 'unverified' }) });
    expect(mapped.user).not.toHaveProperty('marital_status');
    expect(mapped.user).not.toHaveProperty('terms_accepted_at');
    expect(mapped.moved).toEqual({
      marital_status: 'metadata.matchmove.marital_status (not one of marital_statuses)', employment_type: 'metadata.matchmove.employment_type (not one of employment_types)',
      purpose_of_account: 'metadata.matchmove.purpose_of_account (not one of account_purposes)', kyc_sub_status: 'metadata.matchmove.kyc_sub_status (not one of kyc_sub_statuses)',
      data_terms_signed_date: 'metadata.matchmove.data_terms_signed_date (not a date-time)', email_verified: 'metadata.matchmove.email_verified (not 1 or 0)',
      employer: 'metadata.matchmove.employer (not an object)',
    });
    expect(mapped.user.metadata).toEqual({ matchmove: expect.objectContaining({ id: 'x9', marital_status: 'complicated', kyc_sub_status: 'documents_ok', data_terms_signed_date: '2023-01-02' }) });
  });

  it('gives a business the shared fields only: no marital status, employment or employer', () => {
    const { mapped, result } = checked('matchmove', {
      id: 'c1', user_type: 'corporate', preferred_name: 'Orchard Pte Ltd', country: 'SG', purpose_of_account: 'business_payments', fatca_crs_relevance: 1, marital_status: 'single',
    });
    expect(result).toEqual({ row: expect.objectContaining({ type: 'business', profile: expect.objectContaining({ purpose_of_account: 'business_payments', fatca_crs: { relevant: true } }) }) });
    expect(mapped.moved).toEqual({ marital_status: 'metadata.matchmove.marital_status' });
  });
});

describe('the kyclo profile', () => {
  it('reads kyc.sub_status as the import writes it, and rejects one that is no sub-status', () => {
    const row = { type: 'individual', external_ref: 'k-1', country: 'FR', first_name: 'Alex', last_name: 'Oak' };
    expect(checked('kyclo', { ...row, kyc: { status: 'pending', sub_status: 'submitted' } }).result).toEqual({ row: expect.objectContaining({ kyc_status: 'pending', kyc_sub_status: 'submitted' }) });
    expect(checked('kyclo', { ...row, kyc: { status: 'pending', sub_status: 'documents_ok' } }).result).toEqual({
      errors: [expect.objectContaining({ field: 'kyc.sub_status', code: 'not_allowed_value' })],
    });
  });
});
