// Tenant-defined fields end to end: declared in the policy (and refused when the service would not
// run them), validated on create and PATCH, decided by the field policy per KYC state (apply,
// review, approval, deny), held and approved, searched, exported, erased — and a removed
// definition's values kept, readable and frozen. Each checked in the answer and in the database.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, createTenant, openTenantContext, withPersonal, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { createErasureService } from '../src/modules/erasure/erasure.service.js';
import { createLifecycleService } from '../src/modules/lifecycle/lifecycle.service.js';
import { dumpDatabase } from './helpers/dump.js';

let ctx: TestContext;
let tenantId: string;
let api: Client;
let officer: Client;

// MatchMove's parents' details and salutation, a provider account number, a segment.
const DEFINITIONS = {
  salutation: { schema: { type: 'string', enum: ['mr', 'mrs', 'ms', 'dr'] } },
  account_no: { schema: { type: 'string', pattern: '^[A-Z]{2}[0-9]{6,10}$', maxLength: 12 }, personal: true, searchable: true },
  parents: {
    schema: {
      type: 'object',
      properties: {
        mother: { type: 'object', properties: { name: { type: 'string', maxLength: 100 }, born_on: { type: 'string', format: 'date' } }, required: ['name'] },
        father_name: { type: 'string', maxLength: 100 },
      },
    },
    personal: true,
  },
  segment: { schema: { type: 'string', enum: ['gold', 'silver'] }, searchable: true },
  score: { schema: { type: 'integer', minimum: 0, maximum: 1000 }, searchable: true },
  vip: { schema: { type: 'boolean' } },
  ref_code: { schema: { type: 'string', pattern: '^(a+)+$', maxLength: 2000 } },
};
// Once verified: each outcome on one custom field (unverified users get the default, allow).
const VERIFIED_OUTCOMES = { 'custom.salutation': 'allow', 'custom.account_no': 'approval', 'custom.parents': 'allow_with_review', 'custom.segment': 'deny' };

const putPolicy = (body: unknown, c: Client = api) => c.call({ method: 'PUT', url: '/v1/policy', body });
const standardPolicy = () => putPolicy({ custom_fields: DEFINITIONS, fields: { individual: { verified: VERIFIED_OUTCOMES } } });
const row = (id: string) => ctx.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const eventsOf = async (id: string) =>
  withPersonal(ctx, await ctx.db.selectFrom('events').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).orderBy('seq').execute());
const auditOf = (id: string) => ctx.db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).orderBy('seq').execute();

async function create(custom: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const res = await api.post('/v1/users', individual({ custom, ...extra }));
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}
async function verify(id: string) {
  expect((await api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'acme-kyc', level: 1 })).statusCode).toBe(201);
}

beforeAll(async () => {
  ({ ctx, tenantId, api } = await openTenantContext());
  officer = client(ctx.app, (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key);
  const res = await standardPolicy();
  expect(res.statusCode, res.body).toBe(200);
});
afterAll(() => ctx.close());
// PUT replaces the whole policy: every test starts from the standard one.
afterEach(async () => expect((await standardPolicy()).statusCode).toBe(200));

describe('declaring fields in the policy', () => {
  it('GET /v1/policy lists each definition with its schema and flags, and its outcomes under fields', async () => {
    const policy = (await api.get('/v1/policy')).json();
    expect(policy.custom_fields.account_no).toEqual({ ...DEFINITIONS.account_no });
    expect(policy.custom_fields.salutation).toEqual({ ...DEFINITIONS.salutation, personal: false, searchable: false });
    expect(policy.fields.individual.unverified['custom.account_no']).toBe('allow');
    expect(policy.fields.business.verified['custom.segment']).toBe('allow');
    expect(policy.fields.individual.verified).toMatchObject(VERIFIED_OUTCOMES);
  });

  it.each([
    ['an object deeper than 2', { x: { schema: { type: 'object', properties: { a: { type: 'object', properties: { b: { type: 'object', properties: { c: { type: 'string' } } } } } } } } }, 'custom_fields.x.schema.properties.a.properties.b', 'too_deep'],
    ['an unknown type', { x: { schema: { type: 'array' } } }, 'custom_fields.x.schema.type', 'unknown_type'],
    ['an unknown keyword', { x: { schema: { type: 'string', $ref: 'http://attacker.example/s.json' } } }, 'custom_fields.x.schema.$ref', 'unsupported_keyword'],
    ['a pattern that does not compile', { x: { schema: { type: 'string', pattern: '([a-z]' } } }, 'custom_fields.x.schema.pattern', 'bad_pattern'],
    ['a backreference (no linear engine runs it)', { x: { schema: { type: 'string', pattern: '^(a)\\1$' } } }, 'custom_fields.x.schema.pattern', 'bad_pattern'],
    ['a pattern too costly to run (counted repetitions make a huge program)', { x: { schema: { type: 'string', maxLength: 2000, pattern: '[\\s\\S]{1000}[\\s\\S]{1000}' } } }, 'custom_fields.x.schema.pattern', 'bad_pattern'],
    ['a too long pattern', { x: { schema: { type: 'string', pattern: 'a'.repeat(201) } } }, 'custom_fields.x.schema.pattern', 'bad_pattern'],
    ['a too large definition', { x: { schema: { type: 'string', enum: Array.from({ length: 100 }, (_, i) => `${'v'.repeat(30)}-${i}`) } } }, 'custom_fields.x', 'too_large'],
    ['a maxLength past the bound', { x: { schema: { type: 'string', maxLength: 1_000_000 } } }, 'custom_fields.x.schema.maxLength', 'bad_bound'],
    ['a reserved name', { constructor: { schema: { type: 'string' } } }, 'custom_fields.constructor', 'invalid_name'],
    ['a name that is no identifier', { 'Bad-Name': { schema: { type: 'string' } } }, 'custom_fields.Bad-Name', 'invalid_name'],
    ['a searchable object', { x: { schema: { type: 'object', properties: { a: { type: 'string' } } }, searchable: true } }, 'custom_fields.x.searchable', 'not_searchable'],
  ])('refuses %s with 400 policy.custom_field_invalid naming the path, and keeps the policy', async (_what, custom_fields, field, code) => {
    const before = (await api.get('/v1/policy')).json();
    const res = await putPolicy({ custom_fields });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json()).toMatchObject({ code: 'policy.custom_field_invalid', errors: expect.arrayContaining([expect.objectContaining({ field, code })]) });
    expect((await api.get('/v1/policy')).json()).toEqual(before);
  });

  it('refuses more than 50 fields, and an outcome for a field that is not defined', async () => {
    const many = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`f${i}`, { schema: { type: 'boolean' } }]));
    expect((await putPolicy({ custom_fields: many })).json()).toMatchObject({ code: 'policy.custom_field_invalid', errors: [expect.objectContaining({ field: 'custom_fields', code: 'too_many' })] });
    const res = await putPolicy({ custom_fields: DEFINITIONS, fields: { individual: { verified: { 'custom.nope': 'deny' } } } });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors).toEqual([expect.objectContaining({ field: 'fields.individual.verified.custom.nope', code: 'unknown_field' })]);
  });

  it('a definition named __proto__ never reaches the policy (the body parser refuses it)', async () => {
    const res = await api.call({ method: 'PUT', url: '/v1/policy', body: '{"custom_fields":{"__proto__":{"schema":{"type":"string"}}}}' });
    expect(res.statusCode).toBe(400);
    expect((await api.get('/v1/policy')).json().custom_fields).not.toHaveProperty('__proto__');
  });
});

describe('values on create', () => {
  it('are answered under custom, personal ones sealed at rest and in the user.created event', async () => {
    const custom = { salutation: 'dr', account_no: 'FR1234567', parents: { mother: { name: 'Mira Oak', born_on: '1950-02-03' } }, segment: 'gold', score: 7, vip: true };
    const user = await create(custom);
    expect(user.custom).toEqual(custom);
    expect((await api.get(`/v1/users/${user.id}`)).json().custom).toEqual(custom);
    const r = await row(user.id);
    const profile = r.profile as Record<string, unknown>;
    expect(profile.custom).toEqual({ salutation: 'dr', segment: 'gold', score: 7, vip: true });
    expect(profile.custom_sealed).toMatch(/^[a-z0-9]+\./);
    expect(profile.custom_index).toHaveLength(1); // account_no: personal and searchable
    expect(JSON.stringify(r)).not.toContain('FR1234567');
    expect(JSON.stringify(r)).not.toContain('Mira Oak');
    const [created] = await eventsOf(user.id);
    expect(created!.type).toBe('user.created');
    expect((created!.data.user as { custom: unknown }).custom).toEqual(custom);
  });

  it.each([
    ['a value that fails the pattern', { account_no: 'fr12' }, 'custom.account_no', 'pattern_mismatch'],
    ['a value outside the enum', { salutation: 'lord' }, 'custom.salutation', 'not_in_enum'],
    ['a value of the wrong type', { score: '7' }, 'custom.score', 'invalid_type'],
    ['an integer past its maximum', { score: 1001 }, 'custom.score', 'above_maximum'],
    ['a field that is not defined', { nope: 1 }, 'custom.nope', 'unknown_field'],
    ['an undeclared property of an object', { parents: { uncle: 'Bob' } }, 'custom.parents.uncle', 'unknown_field'],
    ['a missing required property', { parents: { mother: { born_on: '1950-02-03' } } }, 'custom.parents.mother.name', 'required'],
    ['an impossible date', { parents: { mother: { name: 'M', born_on: '1950-02-30' } } }, 'custom.parents.mother.born_on', 'invalid_date'],
    ['a string past its maxLength', { parents: { father_name: 'x'.repeat(101) } }, 'custom.parents.father_name', 'too_long'],
    ['a huge value', { ref_code: 'a'.repeat(2000) + 'a'.repeat(100) }, 'custom.ref_code', 'too_large'],
  ])('refuses %s with 400 naming the field, and stores nothing', async (_what, custom, field, code) => {
    const body = individual({ custom });
    const res = await api.post('/v1/users', body);
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json()).toMatchObject({ code: 'request.validation_failed', errors: [expect.objectContaining({ field, code })] });
    expect(await ctx.db.selectFrom('users').select('id').where('external_ref', '=', body.external_ref).executeTakeFirst()).toBeUndefined();
  });

  it('a key named __proto__ is refused at the door and nothing is stored', async () => {
    const body = JSON.stringify(individual()).replace(/}$/, ',"custom":{"__proto__":{"segment":"gold"}}}');
    const res = await api.post('/v1/users', body);
    expect(res.statusCode).toBe(400);
    expect(({} as Record<string, unknown>).segment).toBeUndefined();
  });

  it('a catastrophic pattern costs linear time: 2,000 characters against ^(a+)+$ answer at once', async () => {
    const user = await create({});
    const started = performance.now();
    const res = await api.patch(`/v1/users/${user.id}`, { custom: { ref_code: `${'a'.repeat(1999)}!` } });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors).toEqual([expect.objectContaining({ field: 'custom.ref_code', code: 'pattern_mismatch' })]);
    expect(performance.now() - started).toBeLessThan(1000);
    expect((await api.patch(`/v1/users/${user.id}`, { custom: { ref_code: 'a'.repeat(2000) } })).json().custom.ref_code).toHaveLength(2000);
  });
});

describe('PATCH under the field policy', () => {
  it('unverified: every custom field applies at once (default allow), audited and emitted with its values sealed', async () => {
    const user = await create({ segment: 'silver' });
    const res = await api.patch(`/v1/users/${user.id}`, { custom: { segment: 'gold', account_no: 'DE99887766', parents: { father_name: 'Ash Oak' } } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().custom).toEqual({ segment: 'gold', account_no: 'DE99887766', parents: { father_name: 'Ash Oak' } });
    const updated = (await eventsOf(user.id)).at(-1)!;
    expect(updated.type).toBe('user.updated');
    expect(updated.data).toMatchObject({
      changed_fields: ['custom.account_no', 'custom.parents', 'custom.segment'],
      previous: { 'custom.segment': 'silver', 'custom.account_no': null },
      current: { 'custom.segment': 'gold', 'custom.account_no': 'DE99887766', 'custom.parents': { father_name: 'Ash Oak' } },
    });
    expect((await auditOf(user.id)).at(-1)).toMatchObject({ action: 'user.updated', changed_fields: ['custom.account_no', 'custom.parents', 'custom.segment'] });
    // A merge patch inside an object field: one property changed, one cleared with null.
    const merged = await api.patch(`/v1/users/${user.id}`, { custom: { parents: { mother: { name: 'Mira' }, father_name: null } } });
    expect(merged.json().custom.parents).toEqual({ mother: { name: 'Mira' } });
    const cleared = await api.patch(`/v1/users/${user.id}`, { custom: { account_no: null } });
    expect(cleared.json().custom).toEqual({ segment: 'gold', parents: { mother: { name: 'Mira' } } });
    expect((await row(user.id)).profile).not.toHaveProperty('custom_index');
  });

  it('verified: allow applies, allow_with_review reopens review, approval is held, deny refuses everything', async () => {
    const user = await create({ salutation: 'mr', account_no: 'FR1234567' });
    await verify(user.id);
    const allowed = await officer.patch(`/v1/users/${user.id}`, { custom: { salutation: 'dr' } });
    expect(allowed.json()).toMatchObject({ custom: { salutation: 'dr' }, kyc: { status: 'verified' } });

    const reviewed = await officer.patch(`/v1/users/${user.id}`, { custom: { parents: { father_name: 'Ash' } } });
    expect(reviewed.json()).toMatchObject({ custom: { parents: { father_name: 'Ash' } }, kyc: { status: 'review_required' } });
    expect((await eventsOf(user.id)).at(-1)).toMatchObject({ type: 'user.kyc_status_changed', data: { fields: ['custom.parents'] } });

    const denied = await officer.patch(`/v1/users/${user.id}`, { custom: { segment: 'gold', salutation: 'ms' } });
    expect(denied.statusCode).toBe(422);
    expect(denied.json()).toMatchObject({ code: 'user.field_denied', errors: [expect.objectContaining({ field: 'custom.segment', code: 'denied' })] });
    expect((await api.get(`/v1/users/${user.id}`)).json().custom).toMatchObject({ salutation: 'dr' });
    expect((await auditOf(user.id)).at(-1)).toMatchObject({ action: 'user.update_denied', outcome: 'flagged', changed_fields: ['custom.segment'] });
  });

  it('a dry run shows each custom field’s outcome and changes nothing', async () => {
    const user = await create({ salutation: 'mr', account_no: 'FR1234567' });
    await verify(user.id);
    const before = await row(user.id);
    const res = await officer.post(`/v1/users/${user.id}/dry-run`, { custom: { salutation: 'ms', account_no: 'FR7654321', parents: { father_name: 'A' }, segment: 'gold' } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({
      outcomes: [
        { field: 'custom.account_no', outcome: 'approval' }, { field: 'custom.parents', outcome: 'allow_with_review' },
        { field: 'custom.salutation', outcome: 'allow' }, { field: 'custom.segment', outcome: 'deny' },
      ],
      refused: ['custom.segment'],
    });
    // The same value as stored (a personal one, compared opened) is no change.
    expect((await officer.post(`/v1/users/${user.id}/dry-run`, { custom: { account_no: 'FR1234567' } })).json().outcomes).toEqual([]);
    expect((await officer.post(`/v1/users/${user.id}/dry-run`, { custom: { account_no: 'bad' } })).json().errors).toEqual([expect.objectContaining({ field: 'custom.account_no' })]);
    expect(await row(user.id)).toEqual(before);
  });

  it('a held change is approved by another key: applied, sealed again, and emitted', async () => {
    const user = await create({ account_no: 'FR1234567' });
    await verify(user.id);
    const held = await api.patch(`/v1/users/${user.id}`, { custom: { account_no: 'FR7654321' } });
    expect(held.json().custom.account_no).toBe('FR1234567');
    const [pending] = held.json().pending_changes;
    // The row's pending_changes is kept in the clear: a personal value is named, not copied (before:
    // the value lay there unsealed until decided, in every backup); the change request holds it sealed.
    expect(pending).toMatchObject({ fields: ['custom.account_no'], proposed: {} });
    expect(JSON.stringify((await row(user.id)).pending_changes)).not.toContain('FR7654321');
    expect((await officer.get(`/v1/change-requests/${pending.id}`)).json().changes).toEqual({ 'custom.account_no': { from: 'FR1234567', to: 'FR7654321' } });
    const approved = await officer.post(`/v1/change-requests/${pending.id}/approve`, { note: 'checked with the provider' });
    expect(approved.statusCode, approved.body).toBe(200);
    expect(approved.json().changes).toEqual({ 'custom.account_no': { from: 'FR1234567', to: 'FR7654321' } });
    expect((await api.get(`/v1/users/${user.id}`)).json()).toMatchObject({ custom: { account_no: 'FR7654321' }, pending_changes: [] });
    expect(JSON.stringify((await row(user.id)).profile)).not.toContain('FR7654321');
    const events = (await eventsOf(user.id)).slice(-2);
    expect(events.map((e) => e.type)).toEqual(['user.change_approved', 'user.updated']);
    expect(events[1]!.data).toMatchObject({ changed_fields: ['custom.account_no'], current: { 'custom.account_no': 'FR7654321' } });
    // Searchable by the new value, not the old one (the search token was written again).
    expect((await api.get('/v1/users?custom=account_no:FR7654321')).json().data.map((u: { id: string }) => u.id)).toEqual([user.id]);
    expect((await api.get('/v1/users?custom=account_no:FR1234567')).json().data.map((u: { id: string }) => u.id)).not.toContain(user.id);
  });

  it('concurrent patches of different custom fields all land: none is lost in the sealed envelope', async () => {
    const user = await create({});
    const patches = [
      { account_no: 'FR1111111' }, { parents: { father_name: 'Ash' } }, { salutation: 'dr' }, { segment: 'gold' }, { score: 5 }, { vip: true },
    ];
    const answers = await Promise.all(patches.map((custom) => api.patch(`/v1/users/${user.id}`, { custom })));
    expect(answers.map((a) => a.statusCode)).toEqual(patches.map(() => 200));
    expect((await api.get(`/v1/users/${user.id}`)).json().custom).toEqual(Object.assign({}, ...patches));
    expect((await row(user.id)).version).toBe(1 + patches.length);
    expect((await eventsOf(user.id)).filter((e) => e.type === 'user.updated')).toHaveLength(patches.length);
  });

  it('every route that answers a user opens its personal values (closing answers the user too)', async () => {
    const user = await create({ account_no: 'FR5555555', salutation: 'ms' });
    const closed = await api.delete(`/v1/users/${user.id}`, { origin: 'operator', reason: 'user_request' });
    expect(closed.statusCode, closed.body).toBe(200);
    expect(closed.json().custom).toEqual({ account_no: 'FR5555555', salutation: 'ms' });
    const page = (await api.get('/v1/users?limit=200')).json().data.find((u: { id: string }) => u.id === user.id);
    expect(page.custom).toEqual({ account_no: 'FR5555555', salutation: 'ms' });
  });
});

describe('search', () => {
  it('finds by a searchable field, clear or personal, exact match, within the tenant only', async () => {
    const mine = await create({ segment: 'gold', score: 912, account_no: 'GB00112233' });
    await create({ segment: 'silver', score: 3 });
    const other = await createTenant(ctx.db);
    const otherApi = client(ctx.app, other.ownerKey);
    expect((await putPolicy({ custom_fields: DEFINITIONS }, otherApi)).statusCode).toBe(200);
    expect((await otherApi.post('/v1/users', individual({ custom: { score: 912, account_no: 'GB00112233' } }))).statusCode).toBe(201);

    const ids = async (q: string) => (await api.get(`/v1/users?${q}`)).json().data.map((u: { id: string }) => u.id);
    expect(await ids('custom=score:912')).toEqual([mine.id]);
    expect(await ids('custom=account_no:GB00112233')).toEqual([mine.id]);
    expect(await ids('custom=account_no:GB0011223')).toEqual([]); // exact, not a prefix
    expect(await ids(`custom=segment:gold&external_ref=${encodeURIComponent(mine.external_ref)}`)).toEqual([mine.id]);
    for (const [q, code] of [['custom=vip:true', 'not_searchable'], ['custom=nope:1', 'unknown_field'], ['custom=score:many', 'invalid_type']]) {
      const res = await api.get(`/v1/users?${q}`);
      expect(res.statusCode).toBe(400);
      expect(res.json().errors).toEqual([expect.objectContaining({ field: 'custom', code })]);
    }
  });
});

describe('export and erasure', () => {
  it('the export holds every value; erasure destroys them all, personal ones with the key, and no copy is left in the database', async () => {
    const custom = { account_no: 'FR3141592', parents: { mother: { name: 'Mira Cnrycustom' } }, segment: 'gold', salutation: 'dr' };
    const user = await create(custom);
    // Changed too: the event and audit entry of the change hold copies of the values.
    expect((await api.patch(`/v1/users/${user.id}`, { custom: { parents: { father_name: 'Ash Cnryfather' } } })).statusCode).toBe(200);
    const exported = (await api.get(`/v1/users/${user.id}/export`)).json();
    expect(exported.user.custom).toEqual({ ...custom, parents: { ...custom.parents, father_name: 'Ash Cnryfather' } });

    await putPolicy({ custom_fields: DEFINITIONS, fields: { individual: { verified: VERIFIED_OUTCOMES } }, retention: { erasure_after_days: 0 } });
    expect((await api.post(`/v1/users/${user.id}/erasure`, { requested_by: 'user' })).statusCode).toBe(202);
    const sweeper = createErasureService({ db: ctx.db, lifecycle: createLifecycleService({ db: ctx.db, keyring: ctx.keyring }), blobs: ctx.blobs, keyring: ctx.keyring });
    expect((await sweeper.sweep()).erased).toContain(user.id);

    const r = await row(user.id);
    expect(r.profile).toEqual({});
    expect((await api.get(`/v1/users/${user.id}`)).json().custom).toEqual({});
    expect((await api.get(`/v1/users/${user.id}/export`)).json().user.custom).toEqual({});
    expect((await api.get('/v1/users?custom=account_no:FR3141592')).json().data).toEqual([]);
    const dump = (await dumpDatabase(ctx.databaseUrl)).text;
    for (const canary of ['FR3141592', 'Cnrycustom', 'Cnryfather']) expect(dump).not.toContain(canary);
    // The sealed copies in the event log are gone with the key.
    expect((await eventsOf(user.id)).find((e) => e.type === 'user.created')!.data).toMatchObject({ redacted: true });
    expect((await eventsOf(user.id)).find((e) => e.type === 'user.created')!.data).not.toHaveProperty('user');
    await standardPolicy();
  });
});

describe('removing a definition', () => {
  it('keeps stored values readable but frozen; restoring the definition makes them writable again', async () => {
    const user = await create({ salutation: 'mrs', account_no: 'FR2718281' });
    const { salutation: _s, account_no: _a, ...rest } = DEFINITIONS;
    expect((await putPolicy({ custom_fields: rest })).statusCode).toBe(200);

    expect((await api.get(`/v1/users/${user.id}`)).json().custom).toEqual({ salutation: 'mrs', account_no: 'FR2718281' });
    const frozen = await api.patch(`/v1/users/${user.id}`, { custom: { salutation: 'ms' } });
    expect(frozen.statusCode).toBe(400);
    expect(frozen.json().errors).toEqual([expect.objectContaining({ field: 'custom.salutation', code: 'unknown_field', message: expect.stringContaining('kept') })]);
    // Other changes go on; the orphaned values are written back sealed (nothing says they are not personal).
    expect((await api.patch(`/v1/users/${user.id}`, { custom: { segment: 'gold' } })).json().custom).toEqual({ salutation: 'mrs', account_no: 'FR2718281', segment: 'gold' });
    expect((await row(user.id)).profile).toMatchObject({ custom: { segment: 'gold' } });
    expect(JSON.stringify((await row(user.id)).profile)).not.toContain('mrs');
    expect((await api.get(`/v1/users/${user.id}/export`)).json().user.custom).toMatchObject({ salutation: 'mrs' });

    expect((await standardPolicy()).statusCode).toBe(200);
    const again = await api.patch(`/v1/users/${user.id}`, { custom: { salutation: 'ms' } });
    expect(again.json().custom).toMatchObject({ salutation: 'ms', account_no: 'FR2718281' });
    expect((await row(user.id)).profile).toMatchObject({ custom: { salutation: 'ms', segment: 'gold' } });
  });
});
