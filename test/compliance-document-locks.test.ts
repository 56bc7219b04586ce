// Per user type (issue 16 §2): which documents a verified user can no longer replace — an
// individual's SSN; a business's EIN and certificate of incorporation (SEND) — and whether a verified
// business's address and contact changes re-open review (by default never; a tenant may say so).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { business, dataUri, individual, physicalDocument } from './helpers/factories.js';

let ctx: TestContext;
let tenantId: string;
let api: Client;

beforeAll(async () => ({ ctx, tenantId, api } = await openTenantContext()));
afterAll(() => ctx.close());

const ssn = (n: string) => ({ kind: 'virtual', type: 'ssn', number: n });
const ein = (n: string) => ({ kind: 'virtual', type: 'ein', number: n });
const certificate = () => physicalDocument('certificate_of_incorporation', { content: dataUri('pdf') });
const upload = (id: string, body: unknown) => api.post(`/v1/users/${id}/documents`, body);
async function verified(body: Record<string, unknown>, docs: unknown[]) {
  const id = (await api.post('/v1/users', body)).json().id as string;
  for (const d of docs) expect((await upload(id, d)).statusCode).toBe(201);
  expect((await api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'acme-kyc' })).statusCode).toBe(201);
  return id;
}
const denied = (id: string) =>
  ctx.db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).where('action', '=', 'document.add').where('outcome', '=', 'denied').execute();

describe('the document locks after a verification', () => {
  // The attack: a key that may record verifications and add documents (DEVELOPER) records a
  // rejection, replaces the verified SSN, records an approval — verified, with a number nobody checked.
  it('hold once the user was verified: a DEVELOPER key cannot replace the SSN by recording a rejection first; a compliance officer can correct it then', async () => {
    const dev = client(ctx.app, (await createKey(ctx.db, tenantId, 'DEVELOPER')).key);
    const officer = client(ctx.app, (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key);
    const id = await verified(individual(), [ssn('111111112')]);
    const original = await ctx.db.selectFrom('documents').select(['id']).where('user_id', '=', id).where('status', '=', 'current').executeTakeFirstOrThrow();
    for (const result of ['rejected', 'review'] as const) {
      expect((await dev.post(`/v1/users/${id}/verifications`, { result, provider: 'acme-kyc' })).statusCode).toBe(201);
      const replaced = await dev.post(`/v1/users/${id}/documents`, ssn('222222223'));
      expect(replaced.statusCode, result).toBe(422);
      expect(replaced.json()).toMatchObject({ code: 'document.locked', document_id: original.id });
    }
    expect(await ctx.db.selectFrom('documents').select('id').where('user_id', '=', id).where('status', '=', 'current').execute()).toEqual([{ id: original.id }]);
    expect(await denied(id)).toHaveLength(2);
    // A compliance role corrects it while the new verification is pending; once verified again, nobody can.
    expect((await officer.post(`/v1/users/${id}/documents`, ssn('333333334'))).statusCode).toBe(201);
    expect((await api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'acme-kyc' })).statusCode).toBe(201);
    expect((await officer.post(`/v1/users/${id}/documents`, ssn('444444445'))).statusCode).toBe(422);
  });
});

describe('the document locks, per user type', () => {
  it('a verified business: its EIN and certificate are locked, an SSN on it is not', async () => {
    const id = await verified(business(), [ein('123456789'), certificate(), ssn('123456789')]);
    for (const doc of [ein('223456789'), certificate()]) {
      const res = await upload(id, doc);
      expect(res.statusCode).toBe(422);
      expect(res.json()).toMatchObject({ code: 'document.locked', errors: [{ field: 'type', code: 'locked' }] });
    }
    expect((await upload(id, ssn('223456789'))).statusCode).toBe(201);
    expect(await denied(id)).toHaveLength(2);
  });

  it('a verified individual: the SSN is locked, an EIN on it is not', async () => {
    const id = await verified(individual(), [ssn('123456789'), ein('123456789')]);
    expect((await upload(id, ssn('223456789'))).json().code).toBe('document.locked');
    expect((await upload(id, ein('223456789'))).statusCode).toBe(201);
  });

  it('a tenant sets the lists per type; a list for every type still applies to both; GET /v1/policy shows what applies', async () => {
    const put = await api.call({ method: 'PUT', url: '/v1/policy', body: { documents: { locked_when_verified: ['passport'], by_user_type: { business: ['articles_of_association'] } } } });
    expect(put.statusCode, put.body).toBe(200);
    expect(put.json().documents).toEqual({
      locked_when_verified: ['passport'],
      by_user_type: { individual: ['passport'], business: ['articles_of_association'] },
    });
    const person = await verified(individual(), [ssn('123456789'), physicalDocument('passport')]);
    expect((await upload(person, ssn('223456789'))).statusCode).toBe(201);
    expect((await upload(person, physicalDocument('passport'))).json().code).toBe('document.locked');
    const company = await verified(business(), [ein('123456789'), physicalDocument('articles_of_association', { content: dataUri('pdf') })]);
    expect((await upload(company, ein('223456789'))).statusCode).toBe(201);
    expect((await upload(company, physicalDocument('articles_of_association', { content: dataUri('pdf') }))).json().code).toBe('document.locked');
    const bad = await api.call({ method: 'PUT', url: '/v1/policy', body: { documents: { by_user_type: { trust: ['ssn'] } } } });
    expect(bad.statusCode).toBe(400);
    expect((await api.call({ method: 'PUT', url: '/v1/policy', body: {} })).statusCode).toBe(200);
  });
});

describe('a verified business’s address and contact changes', () => {
  it('never re-open review by default; a tenant makes them do so through the field policy', async () => {
    const id = await verified(business(), []);
    const quiet = await api.patch(`/v1/users/${id}`, { address: { line1: '2 Market Street' }, email: 'finance@elm.example.com', phone: '+442079460001' });
    expect(quiet.json()).toMatchObject({ kyc: { status: 'verified' }, address: { line1: '2 Market Street' } });
    const set = await api.call({
      method: 'PUT', url: '/v1/policy',
      body: { fields: { business: { verified: { 'address.line1': 'allow_with_review', 'address.postcode': 'allow_with_review', email: 'allow_with_review', phone: 'allow_with_review' } } } },
    });
    expect(set.statusCode, set.body).toBe(200);
    const reviewed = await api.patch(`/v1/users/${id}`, { address: { line1: '3 Market Street' } });
    expect(reviewed.json()).toMatchObject({ kyc: { status: 'review_required' }, address: { line1: '3 Market Street' } });
    const event = await ctx.db.selectFrom('events').selectAll().where('user_id', '=', id).where('type', '=', 'user.kyc_status_changed').orderBy('seq', 'desc').executeTakeFirstOrThrow();
    expect(event.data).toMatchObject({ from: 'verified', to: 'review_required', reason: 'reviewed_field_changed', fields: ['address.line1'] });
    expect((await api.call({ method: 'PUT', url: '/v1/policy', body: {} })).statusCode).toBe(200);
  });
});
