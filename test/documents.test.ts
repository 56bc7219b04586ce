// Documents end to end: both encodings of a file, identifier numbers, the checks (size, bytes,
// formats), versioning, encryption at rest, masking, the locks after verification, events and audit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, createTestContext, createTenant, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { filesUnder } from './helpers/dump.js';
import { business, dataUri, fileBytes, individual, multipartBody, physicalDocument } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;

beforeAll(async () => ({ ctx, api, tenantId } = await openTenantContext()));
afterAll(() => ctx.close());

const newUser = async (body: Record<string, unknown> = individual()) => {
  const res = await api.post('/v1/users', body);
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id as string;
};
const verify = async (id: string) => expect((await api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'test' })).statusCode).toBe(201);
const docRows = (userId: string) => ctx.db.selectFrom('documents').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', userId).orderBy('id').execute();
const eventsOf = (userId: string, prefix = 'document.') =>
  ctx.db.selectFrom('events').select(['type', 'data']).where('tenant_id', '=', tenantId).where('user_id', '=', userId).where('type', 'like', `${prefix}%`).orderBy('seq').execute();
const auditOf = (userId: string) =>
  ctx.db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', userId).where('action', 'like', 'document.%').orderBy('seq').execute();
const upload = (userId: string, body: unknown, headers?: Record<string, string>) => api.post(`/v1/users/${userId}/documents`, body, headers);
const uploadForm = (userId: string, fields: Record<string, string>, files: Parameters<typeof multipartBody>[1], key?: string) => {
  const { payload, contentType } = multipartBody(fields, files);
  return (key ? client(ctx.app, key) : api).call({ method: 'POST', url: `/v1/users/${userId}/documents`, body: payload, headers: { 'content-type': contentType } });
};

describe('uploading a file', () => {
  it('as a data URI in JSON: stored sealed, listed, downloaded byte for byte, audited, one event', async () => {
    const id = await newUser();
    const secret = `statement-${Date.now()}-plaintext`;
    const res = await upload(id, { kind: 'physical', type: 'bank_statement', content: dataUri('pdf', secret), country: 'FR' });
    expect(res.statusCode, res.body).toBe(201);
    const doc = res.json();
    expect(doc).toMatchObject({
      user_id: id, kind: 'physical', type: 'bank_statement', status: 'current', number: null, content_type: 'application/pdf',
      size: fileBytes('pdf', secret).length, country: 'FR', content_url: `/v1/documents/${doc.id}/content`, archived_at: null,
    });
    expect(res.headers.location).toBe(`/v1/documents/${doc.id}`);

    // At rest: neither the row nor the blob holds the content in the clear.
    const [row] = await docRows(id);
    expect(JSON.stringify(row)).not.toContain(secret);
    const blobs = await filesUnder(ctx.dataDir);
    expect(blobs.length).toBeGreaterThan(0);
    expect(blobs.some((b) => b.includes(secret))).toBe(false);

    const content = await api.get(`/v1/documents/${doc.id}/content`);
    expect(content.statusCode).toBe(200);
    expect(content.headers['content-type']).toBe('application/pdf');
    expect(content.headers['content-disposition']).toBe(`attachment; filename="${doc.id}.pdf"`);
    expect(content.headers['cache-control']).toBe('no-store');
    expect(content.rawPayload.equals(fileBytes('pdf', secret))).toBe(true);

    expect((await api.get(`/v1/users/${id}/documents`)).json().data).toEqual([doc]);
    expect(await eventsOf(id)).toEqual([
      { type: 'document.added', data: { document_id: doc.id, user_id: id, kind: 'physical', type: 'bank_statement', content_type: 'application/pdf', size: doc.size, replaces: null } },
    ]);
    expect((await auditOf(id)).map((a) => [a.action, a.target_id])).toEqual([['document.added', doc.id], ['document.content_read', doc.id]]);
  });

  it('as multipart, front and back of a card; each side downloads as sent', async () => {
    const id = await newUser();
    const front = fileBytes('jpeg', 'front side');
    const back = fileBytes('png', 'back side');
    const res = await uploadForm(id, { type: 'driving_licence', country: 'US', issuing_authority: 'CA', expiry_date: '2031-03-09' }, {
      file: { bytes: front, type: 'image/jpeg' }, file_back: { bytes: back, type: 'image/png' },
    });
    expect(res.statusCode, res.body).toBe(201);
    const doc = res.json();
    expect(doc).toMatchObject({ type: 'driving_licence', content_type: 'image/jpeg', size: front.length, back_content_type: 'image/png', back_size: back.length, issuing_authority: 'CA', expiry_date: '2031-03-09' });
    expect((await api.get(`/v1/documents/${doc.id}/content`)).rawPayload.equals(front)).toBe(true);
    const backRes = await api.get(`/v1/documents/${doc.id}/content?side=back`);
    expect(backRes.headers['content-type']).toBe('image/png');
    expect(backRes.rawPayload.equals(back)).toBe(true);
  });

  it('checks the bytes, not the declared type: 415 for other formats and for a mismatch, and nothing is written', async () => {
    const id = await newUser();
    const gif = `data:image/gif;base64,${Buffer.from('GIF89a....').toString('base64')}`;
    const cases: Array<[unknown, string]> = [
      [physicalDocument('proof_of_address', { content: gif }), 'document.unsupported_content'],
      [physicalDocument('proof_of_address', { content: dataUri('png', 'x', 'application/pdf') }), 'document.content_type_mismatch'],
      [physicalDocument('passport', { content: dataUri('jpeg'), content_back: dataUri('pdf', 'x', 'image/png') }), 'document.content_type_mismatch'],
    ];
    for (const [body, code] of cases) {
      const res = await upload(id, body);
      expect(res.statusCode, res.body).toBe(415);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.json().code).toBe(code);
    }
    const form = await uploadForm(id, { type: 'selfie' }, { file: { bytes: Buffer.from('<html>not an image</html>'), type: 'image/png' } });
    expect(form.statusCode).toBe(415);
    // SEND sends image/jpg; an octet-stream declaration is judged by the bytes alone.
    expect((await upload(id, physicalDocument('selfie', { content: dataUri('jpeg', 'x', 'image/jpg') }))).statusCode).toBe(201);
    expect((await uploadForm(id, { type: 'utility_bill' }, { file: { bytes: fileBytes('pdf'), type: 'application/octet-stream' } })).json()).toMatchObject({ content_type: 'application/pdf' });
    expect((await docRows(id)).map((d) => d.type)).toEqual(['selfie', 'utility_bill']);
    expect((await auditOf(id)).map((a) => a.action)).toEqual(['document.added', 'document.added']);
  });

  it('refuses malformed requests with 400 naming the field', async () => {
    const id = await newUser();
    const cases: Array<[unknown, string, string]> = [
      [{ kind: 'physical', type: 'ssn', content: dataUri('png') }, 'type', 'not_allowed_value'],
      [{ kind: 'virtual', type: 'passport', number: '12345678' }, 'type', 'not_allowed_value'],
      [{ kind: 'physical', type: 'passport', content: 'data:image/png;base64,%%%' }, 'content', 'invalid_data_uri'],
      [{ kind: 'physical', type: 'passport', content: 'data:image/png,plain' }, 'content', 'invalid_data_uri'],
      [{ kind: 'physical', type: 'passport' }, 'content', 'required'],
      [{ kind: 'physical', type: 'passport', content: dataUri('png'), number: '1' }, 'number', 'unknown_field'],
      [{ kind: 'physical', type: 'passport', content: dataUri('png'), country: 'XX' }, 'country', 'invalid_country'],
      [{ kind: 'physical', type: 'passport', content: dataUri('png'), expiry_date: '2031-02-30' }, 'expiry_date', 'invalid_date'],
      [{ kind: 'scan', type: 'passport' }, 'kind', 'not_allowed_value'],
    ];
    for (const [body, field, code] of cases) {
      const res = await upload(id, body);
      expect(res.statusCode, `${JSON.stringify(body)}: ${res.body}`).toBe(400);
      expect(res.json().errors, JSON.stringify(body)).toContainEqual(expect.objectContaining({ field, code }));
    }
    const noFile = await uploadForm(id, { type: 'passport' }, {});
    expect(noFile.json().errors).toContainEqual(expect.objectContaining({ field: 'file', code: 'required' }));
    const stray = await uploadForm(id, { type: 'passport' }, { file: { bytes: fileBytes('png'), type: 'image/png' }, extra: { bytes: fileBytes('png'), type: 'image/png' } });
    expect(stray.json().errors).toContainEqual(expect.objectContaining({ field: 'extra', code: 'unknown_field' }));
    const badField = await uploadForm(id, { type: 'passport', colour: 'red' }, { file: { bytes: fileBytes('png'), type: 'image/png' } });
    expect(badField.json().errors).toContainEqual(expect.objectContaining({ field: 'colour', code: 'unknown_field' }));
    expect(await docRows(id)).toEqual([]);
    expect(await auditOf(id)).toEqual([]);
  });

  it('limits each file to 10 MiB by default (413 document.too_large), in either encoding', async () => {
    const id = await newUser();
    const big = Buffer.concat([fileBytes('png'), Buffer.alloc(10 * 1024 * 1024)]);
    const form = await uploadForm(id, { type: 'passport' }, { file: { bytes: big, type: 'image/png' } });
    expect(form.statusCode, form.body).toBe(413);
    expect(form.json()).toMatchObject({ code: 'document.too_large', max_bytes: 10 * 1024 * 1024 });
    const json = await upload(id, physicalDocument('passport', { content: `data:image/png;base64,${big.toString('base64')}` }));
    expect(json.statusCode).toBe(413);
    expect(json.json().code).toBe('document.too_large');
    // Exactly at the limit is fine.
    const atLimit = Buffer.concat([fileBytes('png', ''), Buffer.alloc(10 * 1024 * 1024 - 8)]);
    const ok = await uploadForm(id, { type: 'passport' }, { file: { bytes: atLimit, type: 'image/png' } });
    expect(ok.statusCode, ok.body).toBe(201);
    expect(ok.json().size).toBe(10 * 1024 * 1024);
    expect(await docRows(id)).toHaveLength(1);
  });

  it('honours a smaller configured limit; a JSON body far over it is cut off by the body limit (413)', async () => {
    const small = await createTestContext({ documentMaxBytes: 4096 });
    try {
      const t = await createTenant(small.db);
      const c = client(small.app, t.ownerKey);
      const id = (await c.post('/v1/users', individual())).json().id;
      const over = await c.post(`/v1/users/${id}/documents`, physicalDocument('passport', { content: dataUri('png', 'x'.repeat(4096)) }));
      expect(over.json()).toMatchObject({ status: 413, code: 'document.too_large', max_bytes: 4096 });
      const huge = await c.post(`/v1/users/${id}/documents`, physicalDocument('passport', { content: dataUri('png', 'x'.repeat(64 * 1024)) }));
      expect(huge.json()).toMatchObject({ status: 413, code: 'request.body_too_large' });
      expect(await small.db.selectFrom('documents').selectAll().execute()).toEqual([]);
    } finally {
      await small.close();
    }
  });
});

describe('identifier numbers', () => {
  it('are sealed at rest, served masked everywhere, unmasked only in the export', async () => {
    const id = await newUser();
    const res = await upload(id, { kind: 'virtual', type: 'ssn', number: '111-11-1112', country: 'US' });
    expect(res.statusCode, res.body).toBe(201);
    const doc = res.json();
    expect(doc).toMatchObject({ kind: 'virtual', type: 'ssn', number: '*****1112', content_type: null, size: null, content_url: null, country: 'US' });
    expect(JSON.stringify(await docRows(id))).not.toContain('111111112');
    expect((await api.get(`/v1/users/${id}/documents`)).json().data[0].number).toBe('*****1112');
    const events = await eventsOf(id);
    expect(JSON.stringify(events)).not.toContain('1112');
    expect(JSON.stringify(await auditOf(id))).not.toContain('1112');
    const exported = (await api.get(`/v1/users/${id}/export`)).json();
    expect(exported.documents).toEqual([expect.objectContaining({ id: doc.id, number: '111111112' })]);
    const content = await api.get(`/v1/documents/${doc.id}/content`);
    expect(content.statusCode).toBe(404);
    expect(content.json().code).toBe('document.no_content');
  });

  it.each([
    ['ssn', '12345678', 'digits'],
    ['ssn', '000-12-3456', 'area'],
    ['ssn', '666123456', 'area'],
    ['ssn', '912345678', 'area'],
    ['ssn', '123-00-4567', 'group'],
    ['ssn', '123450000', 'serial'],
    ['ein', '1234567890', 'digits'],
    ['ein', '00-1234567', '00'],
    ['passport_number', 'AB12', '6–9'],
    ['driving_licence_number', 'X', '4 to 20'],
    ['tax_id', '12', '4 to 30'],
  ])('refuses the %s %s (400 number invalid_format), writing nothing', async (type, number, hint) => {
    const id = await newUser();
    const res = await upload(id, { kind: 'virtual', type, number });
    expect(res.statusCode, res.body).toBe(400);
    const err = res.json().errors.find((e: { field: string }) => e.field === 'number');
    expect(err).toMatchObject({ code: 'invalid_format' });
    expect(err.message).toContain(hint);
    expect(await docRows(id)).toEqual([]);
  });

  it('never shows more than the length minus four characters of a short number', async () => {
    const id = await newUser();
    const shown = async (type: string, number: string) => (await upload(id, { kind: 'virtual', type, number })).json().number;
    expect(await shown('tax_id', 'AB12')).toBe('*****');
    expect(await shown('passport_number', 'X12345')).toBe('*****45');
    expect(await shown('driving_licence_number', '12345678')).toBe('*****5678');
  });

  it('normalises separators and case; a US-only type implies, and insists on, the US', async () => {
    const id = await newUser();
    const ein = (await upload(id, { kind: 'virtual', type: 'ein', number: '12-3456789' })).json();
    expect(ein).toMatchObject({ number: '*****6789', country: 'US' });
    const pass = (await upload(id, { kind: 'virtual', type: 'passport_number', number: 'x1234567', country: 'FR' })).json();
    expect(pass).toMatchObject({ number: '*****4567', country: 'FR' });
    expect((await api.get(`/v1/users/${id}/export`)).json().documents.map((d: { number: string }) => d.number)).toEqual(['123456789', 'X1234567']);
    const wrong = await upload(id, { kind: 'virtual', type: 'ssn', number: '123456789', country: 'FR' });
    expect(wrong.json().errors).toContainEqual(expect.objectContaining({ field: 'country', code: 'not_allowed_value' }));
  });
});

describe('versions', () => {
  it('a new document of a type archives the previous one, which stays listable and readable', async () => {
    const id = await newUser();
    const first = (await upload(id, physicalDocument('proof_of_address', { content: dataUri('pdf', 'old bill') }))).json();
    const second = (await upload(id, physicalDocument('proof_of_address', { content: dataUri('png', 'new bill') }))).json();
    expect(second.replaces_id).toBe(first.id);

    const current = (await api.get(`/v1/users/${id}/documents`)).json().data;
    expect(current.map((d: { id: string }) => d.id)).toEqual([second.id]);
    const all = (await api.get(`/v1/users/${id}/documents?include=archived`)).json().data;
    expect(all.map((d: { id: string; status: string }) => [d.id, d.status])).toEqual([[second.id, 'current'], [first.id, 'archived']]);
    expect(all[1].archived_at).toEqual(expect.any(String));
    expect((await api.get(`/v1/documents/${first.id}/content`)).rawPayload.equals(fileBytes('pdf', 'old bill'))).toBe(true);

    expect((await eventsOf(id)).map((e) => [e.type, e.data])).toEqual([
      ['document.added', expect.objectContaining({ document_id: first.id, replaces: null })],
      ['document.added', expect.objectContaining({ document_id: second.id, replaces: first.id })],
      ['document.archived', { document_id: first.id, user_id: id, type: 'proof_of_address', replaced_by: second.id }],
    ]);
    // Other types are separate: a passport does not archive the proof of address.
    await upload(id, physicalDocument('passport'));
    expect((await api.get(`/v1/users/${id}/documents`)).json().data).toHaveLength(2);
  });

  it('pages with a cursor, newest first', async () => {
    const id = await newUser();
    for (const type of ['passport', 'selfie', 'utility_bill']) await upload(id, physicalDocument(type));
    const p1 = (await api.get(`/v1/users/${id}/documents?limit=2`)).json();
    const p2 = (await api.get(`/v1/users/${id}/documents?limit=2&cursor=${p1.next_cursor}`)).json();
    expect([...p1.data, ...p2.data].map((d: { type: string }) => d.type)).toEqual(['utility_bill', 'selfie', 'passport']);
    expect(p2.next_cursor).toBeNull();
  });

  it('concurrent uploads of one type leave exactly one current version and archive the rest', async () => {
    const id = await newUser();
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => upload(id, physicalDocument('bank_statement', { content: dataUri('pdf', `s${i}`) }))));
    expect(results.map((r) => r.statusCode)).toEqual(Array(8).fill(201));
    const rows = await docRows(id);
    expect(rows.filter((r) => r.status === 'current')).toHaveLength(1);
    expect(rows.filter((r) => r.status === 'archived')).toHaveLength(7);
    expect((await eventsOf(id, 'document.archived'))).toHaveLength(7);
  });
});

describe('locks after verification', () => {
  it('a verified individual cannot replace their SSN (422 document.locked, the attempt audited), but may add other types', async () => {
    const id = await newUser();
    const ssn = (await upload(id, { kind: 'virtual', type: 'ssn', number: '111111112' })).json();
    await verify(id);
    const res = await upload(id, { kind: 'virtual', type: 'ssn', number: '222334444' });
    expect(res.statusCode, res.body).toBe(422);
    expect(res.json()).toMatchObject({ code: 'document.locked', document_id: ssn.id, errors: [expect.objectContaining({ field: 'type', code: 'locked' })] });
    expect((await docRows(id)).map((d) => [d.id, d.status])).toEqual([[ssn.id, 'current']]);
    const denied = (await auditOf(id)).find((a) => a.outcome === 'denied');
    expect(denied).toMatchObject({ action: 'document.add', details: expect.objectContaining({ type: 'ssn', reason: 'locked_when_verified' }) });
    expect(await eventsOf(id, 'document.archived')).toEqual([]);
    expect((await upload(id, physicalDocument('proof_of_address'))).statusCode).toBe(201);
    expect((await upload(id, physicalDocument('proof_of_address'))).statusCode).toBe(201);
  });

  it('a user under review (review_required) is still verified for the locks', async () => {
    const id = await newUser();
    await upload(id, { kind: 'virtual', type: 'ssn', number: '111111112' });
    await verify(id);
    const patched = await api.patch(`/v1/users/${id}`, { address: { line1: '1 review street' } });
    expect(patched.json().kyc.status).toBe('review_required');
    expect((await upload(id, { kind: 'virtual', type: 'ssn', number: '222334444' })).json().code).toBe('document.locked');
  });

  it('a verified business cannot replace its EIN or certificate of incorporation; audited financials can be', async () => {
    const id = await newUser(business());
    await upload(id, { kind: 'virtual', type: 'ein', number: '12-3456789' });
    await upload(id, physicalDocument('certificate_of_incorporation', { content: dataUri('pdf') }));
    await upload(id, physicalDocument('audited_financials', { content: dataUri('pdf') }));
    await verify(id);
    expect((await upload(id, { kind: 'virtual', type: 'ein', number: '98-7654321' })).json().code).toBe('document.locked');
    expect((await upload(id, physicalDocument('certificate_of_incorporation', { content: dataUri('pdf') }))).json().code).toBe('document.locked');
    expect((await upload(id, physicalDocument('audited_financials', { content: dataUri('pdf') }))).statusCode).toBe(201);
  });

  it('an unverified user can replace anything; the tenant policy can lift or add locks', async () => {
    const id = await newUser();
    await upload(id, { kind: 'virtual', type: 'ssn', number: '111111112' });
    expect((await upload(id, { kind: 'virtual', type: 'ssn', number: '222334444' })).statusCode).toBe(201);
    await upload(id, physicalDocument('passport'));
    await verify(id);

    const put = await api.call({ method: 'PUT', url: '/v1/policy', body: { documents: { locked_when_verified: ['passport'] } } });
    expect(put.statusCode, put.body).toBe(200);
    // A list for every type applies to both, as before the lists were per type.
    expect(put.json().documents).toEqual({ locked_when_verified: ['passport'], by_user_type: { individual: ['passport'], business: ['passport'] } });
    expect((await upload(id, { kind: 'virtual', type: 'ssn', number: '333445555' })).statusCode).toBe(201);
    expect((await upload(id, physicalDocument('passport'))).json().code).toBe('document.locked');

    await api.call({ method: 'PUT', url: '/v1/policy', body: {} });
    expect((await api.get('/v1/policy')).json().documents).toEqual({
      locked_when_verified: ['ssn', 'ein', 'certificate_of_incorporation'],
      by_user_type: { individual: ['ssn'], business: ['ein', 'certificate_of_incorporation'] },
    });
  });

  it('a closed user takes no documents (409); an unknown user is a 404', async () => {
    const id = await newUser();
    await api.delete(`/v1/users/${id}`, { origin: 'operator', reason: 'other' });
    const res = await upload(id, physicalDocument());
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe('user.closed');
    expect((await upload('usr_01JZZZZZZZZZZZZZZZZZZZZZZZ', physicalDocument())).json().code).toBe('user.not_found');
    expect((await api.get('/v1/documents/doc_01JZZZZZZZZZZZZZZZZZZZZZZZ/content')).json().code).toBe('document.not_found');
  });
});

describe('access and idempotency', () => {
  it('a DEVELOPER uploads and lists (masked) but cannot open a file; a READER sees none of it', async () => {
    const id = await newUser();
    const dev = client(ctx.app, (await createKey(ctx.db, tenantId, 'DEVELOPER')).key);
    const doc = (await dev.post(`/v1/users/${id}/documents`, physicalDocument())).json();
    expect((await dev.get(`/v1/users/${id}/documents`)).statusCode).toBe(200);
    expect((await dev.get(`/v1/documents/${doc.id}/content`)).statusCode).toBe(403);
    const reader = client(ctx.app, (await createKey(ctx.db, tenantId, 'READER')).key);
    expect((await reader.get(`/v1/users/${id}/documents`)).statusCode).toBe(403);
  });

  it('a JSON upload with an Idempotency-Key is replayed, not stored twice; multipart with one is a 400', async () => {
    const id = await newUser();
    const body = physicalDocument('passport');
    const a = await upload(id, body, { 'idempotency-key': `doc-${id}` });
    const b = await upload(id, body, { 'idempotency-key': `doc-${id}` });
    expect(a.statusCode).toBe(201);
    expect(b.body).toBe(a.body);
    expect(await docRows(id)).toHaveLength(1);
    const { payload, contentType } = multipartBody({ type: 'passport' }, { file: { bytes: fileBytes('png'), type: 'image/png' } });
    const form = await api.call({ method: 'POST', url: `/v1/users/${id}/documents`, body: payload, headers: { 'content-type': contentType, 'idempotency-key': `form-${id}` } });
    expect(form.statusCode).toBe(400);
    expect(form.json().code).toBe('idempotency.not_supported');
    expect(await docRows(id)).toHaveLength(1);
  });

  it('takes only JSON and multipart: merge-patch JSON is a 415, a malformed form a 400, and nothing is written', async () => {
    const id = await newUser();
    const other = await upload(id, JSON.stringify({ kind: 'virtual', type: 'ssn', number: 123456789 }), { 'content-type': 'application/merge-patch+json' });
    expect(other.statusCode).toBe(415);
    const noBoundary = await upload(id, 'garbage', { 'content-type': 'multipart/form-data' });
    expect(noBoundary.json()).toMatchObject({ status: 400, code: 'request.malformed_multipart' });
    const { payload, contentType } = multipartBody({ type: 'passport' }, { file: { bytes: fileBytes('png'), type: 'image/png' } });
    const truncated = await upload(id, payload.subarray(0, payload.length - 30), { 'content-type': contentType });
    expect(truncated.statusCode).toBe(400);
    expect(await docRows(id)).toEqual([]);
  });

  it('other routes still refuse a multipart body (415)', async () => {
    const { payload, contentType } = multipartBody({ type: 'individual' }, {});
    const res = await api.call({ method: 'POST', url: '/v1/users', body: payload, headers: { 'content-type': contentType } });
    expect(res.statusCode).toBe(415);
  });
});

describe('files at rest, streamed', () => {
  it('are stored in the framed format (kcb2) and a blob sealed before streaming (kcb1) still downloads', async () => {
    const id = await newUser();
    const bytes = Buffer.concat([fileBytes('pdf', ''), Buffer.alloc(200 * 1024, 7)]);
    const res = await uploadForm(id, { type: 'bank_statement' }, { file: { bytes, type: 'application/pdf' } });
    expect(res.statusCode, res.body).toBe(201);
    const [row] = await docRows(id);
    const stored = (await ctx.blobs.get(row!.blob_key!))!;
    expect(stored.subarray(0, 4).toString()).toBe('kcb2');
    expect(stored.includes(bytes.subarray(0, 1024))).toBe(false);
    expect((await api.get(`/v1/documents/${row!.id}/content`)).rawPayload.equals(bytes)).toBe(true);

    // The same content sealed the way uploads were sealed before streaming: one GCM message.
    await ctx.blobs.put(row!.blob_key!, await ctx.keyring.sealBytes(ctx.db, tenantId, id, `document:${row!.id}:front`, bytes));
    const legacy = await api.get(`/v1/documents/${row!.id}/content`);
    expect(legacy.statusCode).toBe(200);
    expect(legacy.rawPayload.equals(bytes)).toBe(true);
  });

  it('a framed blob moved to another document or with a flipped byte is never served (500 data.integrity)', async () => {
    const id = await newUser();
    const a = (await uploadForm(id, { type: 'bank_statement' }, { file: { bytes: fileBytes('png', 'statement a'), type: 'image/png' } })).json();
    const b = (await uploadForm(id, { type: 'utility_bill' }, { file: { bytes: fileBytes('png', 'statement b'), type: 'image/png' } })).json();
    const [rowA, rowB] = await ctx.db.selectFrom('documents').selectAll().where('id', 'in', [a.id, b.id]).orderBy('id').execute();
    const sealedA = (await ctx.blobs.get(rowA!.blob_key!))!;
    await ctx.blobs.put(rowB!.blob_key!, sealedA); // bound to document a: it must not open as b
    const moved = await api.get(`/v1/documents/${b.id}/content`);
    expect(moved.statusCode).toBe(500);
    expect(moved.json().code).toBe('data.integrity');
    const flipped = Buffer.from(sealedA);
    flipped[flipped.length - 20]! ^= 1;
    await ctx.blobs.put(rowA!.blob_key!, flipped);
    const bad = await api.get(`/v1/documents/${a.id}/content`);
    expect(bad.statusCode).toBe(500);
    expect(bad.body).not.toContain('statement a');
  });

  it('a multipart form with the file part twice is a 400 and stores nothing', async () => {
    const id = await newUser();
    const boundary = 'kyclo-twice';
    const part = (bytes: Buffer) => Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n`), bytes, Buffer.from('\r\n')]);
    const payload = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\npassport\r\n`), part(fileBytes('png')), part(fileBytes('png')), Buffer.from(`--${boundary}--\r\n`)]);
    const res = await upload(id, payload, { 'content-type': `multipart/form-data; boundary=${boundary}` });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().errors).toContainEqual(expect.objectContaining({ field: 'file', code: 'duplicate' }));
    expect(await docRows(id)).toEqual([]);
    expect(await filesUnder(`${ctx.dataDir}/documents/${tenantId}/${id}`)).toEqual([]);
  });
});
