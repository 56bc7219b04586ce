// SEND's two example requests (seed 003: a PATCH of an individual and of a business, documents
// embedded), translated to Kyclo: the profile part is a merge patch, each document is its own POST.
// The translation table is in the README ("SEND's examples in Kyclo").
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { business, dataUri, individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;

beforeAll(async () => ({ ctx, api } = await openTenantContext()));
afterAll(() => ctx.close());

// SEND's placeholder content, "SUQs==", is not even well-formed base64 (6 characters), and "SUQs"
// decodes to "ID,", not an image: both are refused. The translation sends real JPEG and PDF bytes
// under the same declared types.
const SEND_PLACEHOLDER = 'data:image/jpg;base64,SUQs==';
const jpg = (what: string) => dataUri('jpeg', what, 'image/jpg');
const pdf = (what: string) => dataUri('pdf', what);

describe("SEND's example requests, translated", () => {
  it('individual: profile fields by merge patch, then two files and two identifier numbers', async () => {
    const id = (await api.post('/v1/users', individual({ country: 'US', first_name: 'T', last_name: 'N', address: null, phone: null, nationality: null, birth_country: null }))).json().id;
    const patch = await api.patch(`/v1/users/${id}`, {
      first_name: 'Tenzin', middle_name: null, last_name: 'Norgay', date_of_birth: '2000-01-01', email: 'tenzin.norgay@example.com',
      gender: 'female', phone: '+12106603032', occupation: 'Banker',
      address: { line1: '500 8 El Camino Real Santa Clara', city: 'Santa Clara', state: 'CA', postcode: '95053' },
      metadata: { company_details: { company_name: 'ACME', address: '123 address st', phone_number: '222222222' } },
    });
    expect(patch.statusCode, patch.body).toBe(200);

    const malformed = await api.post(`/v1/users/${id}/documents`, { kind: 'physical', type: 'driving_licence', content: SEND_PLACEHOLDER });
    expect(malformed.json().errors).toEqual([expect.objectContaining({ field: 'content', code: 'invalid_data_uri' })]);
    const notImage = await api.post(`/v1/users/${id}/documents`, { kind: 'physical', type: 'driving_licence', content: 'data:image/jpg;base64,SUQs' });
    expect(notImage.json()).toMatchObject({ status: 415, code: 'document.unsupported_content' });

    const sent = [
      { kind: 'physical', type: 'driving_licence', content: jpg('licence front'), content_back: jpg('licence back'), country: 'US', issuing_authority: 'CA' },
      { kind: 'physical', type: 'bank_statement', content: jpg('statement') },
      { kind: 'virtual', type: 'driving_licence_number', number: '1111111111', expiry_date: '2025-03-09', issuing_authority: 'CA', country: 'US' },
      { kind: 'virtual', type: 'ssn', number: '111111112', country: 'US', issuing_authority: 'CA' },
    ];
    for (const body of sent) {
      const res = await api.post(`/v1/users/${id}/documents`, body);
      expect(res.statusCode, res.body).toBe(201);
    }
    const listed = (await api.get(`/v1/users/${id}/documents`)).json().data;
    const byType = Object.fromEntries(listed.map((d: { type: string }) => [d.type, d]));
    expect(byType.driving_licence).toMatchObject({ kind: 'physical', content_type: 'image/jpeg', back_content_type: 'image/jpeg', country: 'US', issuing_authority: 'CA' });
    expect(byType.bank_statement).toMatchObject({ kind: 'physical', content_type: 'image/jpeg', back_content_type: null });
    // SEND masks the SSN (*****1112); Kyclo masks every identifier number, the licence number too.
    expect(byType.ssn).toMatchObject({ kind: 'virtual', number: '*****1112', country: 'US' });
    expect(byType.driving_licence_number).toMatchObject({ number: '*****1111', expiry_date: '2025-03-09', issuing_authority: 'CA', country: 'US' });
    expect((await api.get(`/v1/users/${id}`)).json()).toMatchObject({ first_name: 'Tenzin', last_name: 'Norgay', phone: '+12106603032', address: expect.objectContaining({ postcode: '95053' }) });
  });

  it('business: the transaction profile by merge patch, then the certificate of incorporation and the audited financials', async () => {
    const id = (await api.post('/v1/users', business({ country: 'US' }))).json().id;
    const patch = await api.patch(`/v1/users/${id}`, { monthly_transactions: 122, transaction_frequency: 'weekly' });
    expect(patch.statusCode, patch.body).toBe(200);
    const cert = await api.post(`/v1/users/${id}/documents`, { kind: 'physical', type: 'certificate_of_incorporation', content: pdf('certificate') });
    const fin = await api.post(`/v1/users/${id}/documents`, { kind: 'physical', type: 'audited_financials', content: jpg('financials') });
    expect([cert.statusCode, fin.statusCode]).toEqual([201, 201]);
    expect(cert.json()).toMatchObject({ content_type: 'application/pdf', status: 'current' });
    expect(fin.json()).toMatchObject({ content_type: 'image/jpeg', status: 'current' });
    expect((await api.get(`/v1/documents/${cert.json().id}/content`)).rawPayload.toString()).toContain('certificate');
    expect((await api.get(`/v1/users/${id}`)).json()).toMatchObject({ monthly_transactions: 122, transaction_frequency: 'weekly' });
  });
});
