import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTenantContext, type Client, type TestContext, withPersonal } from './helpers/app.js';
import { business, individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;

beforeAll(async () => ({ ctx, api, tenantId } = await openTenantContext()));
afterAll(() => ctx.close());

const countUsers = async () =>
  Number((await ctx.db.selectFrom('users').select((eb) => eb.fn.countAll<string>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow()).n);

describe('creating users', () => {
  it('creates an individual: 201 with Location and ETag, the row, one audit entry and one user.created event', async () => {
    const body = individual();
    const res = await api.post('/v1/users', body);
    expect(res.statusCode).toBe(201);
    const user = res.json();
    expect(user.id).toMatch(/^usr_[0-9A-Z]{26}$/);
    expect(res.headers.location).toBe(`/v1/users/${user.id}`);
    expect(res.headers.etag).toBe('"1"');
    expect(user).toMatchObject({
      type: 'individual', external_ref: body.external_ref, country: 'FR', status: 'active',
      kyc: { status: 'unverified', level: null, verified_at: null },
      first_name: 'Alex', middle_name: null, last_name: 'Oak', email: body.email,
      address: { line1: '33 rosewood road', line2: null, line3: null, city: 'Paris', state: null, postcode: '75017' },
      mailing_address: null, metadata: {}, tags: [], version: 1,
    });
    expect(user).not.toHaveProperty('legal_name');

    const row = await ctx.db.selectFrom('users').selectAll().where('id', '=', user.id).executeTakeFirstOrThrow();
    expect(row.tenant_id).toBe(tenantId);
    expect(row.profile).toMatchObject({ first_name: 'Alex', email: body.email });

    const audit = await ctx.db.selectFrom('audit_entries').selectAll().where('target_id', '=', user.id).execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ action: 'user.created', outcome: 'applied', actor_role: 'OWNER', request_id: res.headers['x-request-id'] });
    const stored = await ctx.db.selectFrom('events').selectAll().where('user_id', '=', user.id).execute();
    expect(stored).toHaveLength(1);
    expect(stored[0]!.type).toBe('user.created');
    // The personal part is sealed at rest and opens with the user's key.
    expect(JSON.stringify(stored[0]!.data)).not.toContain(body.email);
    expect(stored[0]!.personal_enc).toMatch(/^kc1\./);
    const [event] = await withPersonal(ctx, stored);
    expect((event!.data as { user: { id: string; email: string } }).user).toMatchObject({ id: user.id, email: body.email });
  });

  it('creates a business with its own fields and none of an individual’s', async () => {
    const res = await api.post('/v1/users', business());
    expect(res.statusCode).toBe(201);
    const user = res.json();
    expect(user).toMatchObject({ type: 'business', legal_name: 'Oak & Rosewood Ltd', monthly_transactions: 1200, country: 'GB' });
    expect(user).not.toHaveProperty('first_name');
  });

  it('answers 409 user.exists with the existing id for a duplicate external_ref, and creates nothing', async () => {
    const first = (await api.post('/v1/users', individual({ external_ref: 'dup-1' }))).json();
    const before = await countUsers();
    const res = await api.post('/v1/users', individual({ external_ref: 'dup-1' }));
    expect(res.statusCode).toBe(409);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({ code: 'user.exists', existing_id: first.id, status: 409 });
    expect(await countUsers()).toBe(before);
  });

  it('treats external_ref as case-sensitive', async () => {
    expect((await api.post('/v1/users', individual({ external_ref: 'Case-A' }))).statusCode).toBe(201);
    expect((await api.post('/v1/users', individual({ external_ref: 'case-a' }))).statusCode).toBe(201);
  });

  it('gives 50 concurrent creates with one external_ref exactly one user', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, () => api.post('/v1/users', individual({ external_ref: 'race-1' }))));
    expect(results.filter((r) => r.statusCode === 201)).toHaveLength(1);
    expect(results.filter((r) => r.statusCode === 409)).toHaveLength(49);
    const rows = await ctx.db.selectFrom('users').select('id').where('external_ref', '=', 'race-1').execute();
    expect(rows).toHaveLength(1);
  });

  const invalid: Array<[string, Record<string, unknown>, string, string]> = [
    ['an unknown country', { country: 'XX' }, 'country', 'invalid_country'],
    ['a lowercase country', { country: 'fr' }, 'country', 'invalid_pattern'],
    ['an unknown nationality', { nationality: 'ZZ' }, 'nationality', 'invalid_country'],
    ['an impossible date', { date_of_birth: '2023-02-30' }, 'date_of_birth', 'invalid_date'],
    ['a birth date in the future', { date_of_birth: '2999-01-01' }, 'date_of_birth', 'in_the_future'],
    ['a phone not in E.164', { phone: '0611111111' }, 'phone', 'invalid_pattern'],
    ['a phone that cannot exist', { phone: '+33000000000' }, 'phone', 'invalid_phone'],
    ['an invalid email', { email: 'not-an-email' }, 'email', 'invalid_email'],
    ['an unknown gender', { gender: 'robot' }, 'gender', 'not_allowed_value'],
    ['an unknown time zone', { timezone: 'Mars/Olympus' }, 'timezone', 'invalid_timezone'],
    ['21 tags', { tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }, 'tags', 'too_large'],
    ['a tag of 65 characters', { tags: ['x'.repeat(65)] }, 'tags.0', 'too_large'],
    ['metadata over 16 KiB', { metadata: { blob: 'x'.repeat(17 * 1024) } }, 'metadata', 'too_large'],
    ['an unknown field', { shoe_size: 44 }, 'shoe_size', 'unknown_field'],
    ['a business field on an individual', { legal_name: 'Acme' }, 'legal_name', 'unknown_field'],
    ['a read-only field', { version: 7 }, 'version', 'unknown_field'],
    // An initial status is active or flagged (Didit's onboarding review); nothing else can be created.
    ['an initial status other than active or flagged', { status: 'blocked' }, 'status', 'not_allowed_value'],
    ['a missing last name', { last_name: undefined }, 'last_name', 'required'],
    ['a wrong type', { pep: 'yes' }, 'pep', 'invalid_type'],
    ['a control character in a name', { first_name: 'Al\u0000ex' }, 'first_name', 'invalid_pattern'],
  ];
  it.each(invalid)('refuses %s with 400 naming the field, and creates nothing', async (_label, override, field, code) => {
    const before = await countUsers();
    const body = JSON.parse(JSON.stringify(individual(override)));
    const res = await api.post('/v1/users', body);
    expect(res.statusCode).toBe(400);
    const problem = res.json();
    expect(problem).toMatchObject({ code: 'request.validation_failed', status: 400, request_id: res.headers['x-request-id'] });
    expect(problem.errors).toContainEqual(expect.objectContaining({ field, code }));
    expect(await countUsers()).toBe(before);
  });

  it('reports schema errors and reference-data errors in one answer', async () => {
    const body = individual({ country: 'XX', phone: '+33000000000', timezone: 'Mars/Olympus', pep: 'yes', shoe_size: 44 });
    const res = await api.post('/v1/users', body);
    expect(res.statusCode).toBe(400);
    const found = (res.json().errors as Array<{ field: string; code: string }>).map((e) => `${e.field}:${e.code}`).sort();
    expect(found).toEqual(['country:invalid_country', 'pep:invalid_type', 'phone:invalid_phone', 'shoe_size:unknown_field', 'timezone:invalid_timezone']);
  });

  it('refuses malformed JSON (400), a wrong content type (415) and a body over 1 MiB (413)', async () => {
    const before = await countUsers();
    const malformed = await api.call({ method: 'POST', url: '/v1/users', body: '{"type": "individual",', headers: { 'content-type': 'application/json' } });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().code).toBe('request.malformed_json');
    const text = await api.call({ method: 'POST', url: '/v1/users', body: 'type=individual', headers: { 'content-type': 'text/plain' } });
    expect(text.statusCode).toBe(415);
    expect(text.json().code).toBe('request.unsupported_media_type');
    const huge = await api.post('/v1/users', individual({ metadata: { blob: 'x'.repeat(1024 * 1024 + 10) } }));
    expect(huge.statusCode).toBe(413);
    expect(huge.json().code).toBe('request.body_too_large');
    expect(await countUsers()).toBe(before);
  });

  it.each(['"abc"', '[]', 'null', '123', '{}', '{"type":"alien"}'])('refuses the body %s with 400 and creates nothing', async (raw) => {
    const before = await countUsers();
    const res = await api.call({ method: 'POST', url: '/v1/users', body: raw, headers: { 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('request.validation_failed');
    expect(await countUsers()).toBe(before);
  });

  it('gets a user with its ETag, and answers 404 problem for an unknown id', async () => {
    const created = (await api.post('/v1/users', individual())).json();
    const res = await api.get(`/v1/users/${created.id}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"1"');
    expect(res.json()).toEqual(created);
    const missing = await api.get('/v1/users/usr_00000000000000000000000000');
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ code: 'user.not_found', status: 404 });
  });

  it('echoes a sane X-Request-Id and replaces an unsafe one', async () => {
    const echoed = await api.get('/v1/users', { 'x-request-id': 'trace-abc.123' });
    expect(echoed.headers['x-request-id']).toBe('trace-abc.123');
    const replaced = await api.get('/v1/users', { 'x-request-id': 'bad id with spaces' });
    expect(replaced.headers['x-request-id']).toMatch(/^req_/);
  });
});

describe('values the database cannot hold', () => {
  it('refuses NUL characters anywhere with 400, never a 500', async () => {
    const cases: Array<[string, () => Promise<{ statusCode: number }>]> = [
      ['metadata value', () => api.post('/v1/users', individual({ metadata: { a: 'x\u0000y' } }))],
      ['metadata key', () => api.post('/v1/users', individual({ metadata: { 'a\u0000': 1 } }))],
      ['user id', () => api.get('/v1/users/usr_%00abc')],
      ['audit filter', () => api.get('/v1/audit-events?user_id=%00')],
      ['event filter', () => api.get('/v1/events?type=a%00b')],
      ['cursor', () => api.get(`/v1/users?cursor=${Buffer.from('{"id":"\u0000"}').toString('base64url')}`)],
    ];
    for (const [label, call] of cases) expect((await call()).statusCode, label).toBe(400);
  });
});
