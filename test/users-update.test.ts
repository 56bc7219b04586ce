import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTenantContext, client, createKey, type Client, type TestContext, withPersonal } from './helpers/app.js';
import { business, individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;

beforeAll(async () => ({ ctx, api } = await openTenantContext()));
afterAll(() => ctx.close());

async function newUser(body: Record<string, unknown> = individual()) {
  const res = await api.post('/v1/users', body);
  expect(res.statusCode).toBe(201);
  return res.json();
}
const row = (id: string) => ctx.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const events = async (id: string) => withPersonal(ctx, await ctx.db.selectFrom('events').selectAll().where('user_id', '=', id).orderBy('seq').execute());
const audits = (id: string) => ctx.db.selectFrom('audit_entries').selectAll().where('user_id', '=', id).orderBy('seq').execute();

describe('updating users with JSON Merge Patch', () => {
  it("api.md's PATCH ?dry_run=true answers 400 request.dry_run_moved, naming the dry run's own route, and writes nothing (not even the read-only attempt)", async () => {
    const user = await newUser();
    for (const body of [{ email: 'moved@example.com' }, { email: 'moved@example.com', status: 'closed' }]) {
      const res = await api.patch(`/v1/users/${user.id}?dry_run=true`, body);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: 'request.dry_run_moved', errors: [{ field: 'dry_run' }] });
      expect(res.json().detail).toContain('POST /v1/users/{id}/dry-run');
    }
    expect(await row(user.id)).toMatchObject({ version: 1 });
    expect((await audits(user.id)).map((a) => a.action)).toEqual(['user.created']);
    expect((await events(user.id)).map((e) => e.type)).toEqual(['user.created']);
    // dry_run=false is the plain PATCH.
    expect((await api.patch(`/v1/users/${user.id}?dry_run=false`, { email: 'plain@example.com' })).json()).toMatchObject({ email: 'plain@example.com', version: 2 });
  });

  it('applies allowed fields, bumps the version and ETag, and records user.updated with changed fields and values', async () => {
    const user = await newUser();
    const res = await api.patch(`/v1/users/${user.id}`, { email: 'new@example.com', address: { line2: 'flat 4' }, tags: ['vip'] });
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"2"');
    const updated = res.json();
    expect(updated).toMatchObject({
      email: 'new@example.com', version: 2, tags: ['vip'],
      address: { line1: '33 rosewood road', line2: 'flat 4', city: 'Paris', postcode: '75017' },
    });
    expect((await row(user.id)).version).toBe(2);

    const evs = await events(user.id);
    expect(evs.map((e) => e.type)).toEqual(['user.created', 'user.updated']);
    expect(evs[1]!.data).toMatchObject({
      user_id: user.id,
      version: 2,
      changed_fields: ['address.line2', 'email', 'tags'],
      previous: { email: user.email, 'address.line2': null, tags: [] },
      current: { email: 'new@example.com', 'address.line2': 'flat 4', tags: ['vip'] },
    });
    const au = await audits(user.id);
    expect(au.at(-1)).toMatchObject({ action: 'user.updated', outcome: 'applied', changed_fields: ['address.line2', 'email', 'tags'] });
  });

  it('clears a field sent as null and merges metadata key by key', async () => {
    const user = await newUser(individual({ metadata: { a: 1, b: { c: 2 } } }));
    const res = await api.patch(`/v1/users/${user.id}`, { middle_name: 'J', phone: null, metadata: { a: null, b: { d: 3 } } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ middle_name: 'J', phone: null, metadata: { b: { c: 2, d: 3 } } });
    expect((await row(user.id)).profile).not.toHaveProperty('phone');
  });

  it('accepts application/merge-patch+json', async () => {
    const user = await newUser();
    const res = await api.call({
      method: 'PATCH', url: `/v1/users/${user.id}`, body: { occupation: 'pilot' },
      headers: { 'content-type': 'application/merge-patch+json' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().occupation).toBe('pilot');
  });

  it('a patch that changes nothing answers the user unchanged, with no new version, audit entry or event', async () => {
    const user = await newUser();
    const res = await api.patch(`/v1/users/${user.id}`, { email: user.email, first_name: 'Alex' });
    expect(res.statusCode).toBe(200);
    expect(res.json().version).toBe(1);
    expect(await events(user.id)).toHaveLength(1);
    expect(await audits(user.id)).toHaveLength(1);
  });

  it.each([
    ['country', { country: 'DE' }],
    ['type', { type: 'business' }],
    ['external_ref', { external_ref: 'another-ref' }],
  ])('refuses a change of %s with 422 user.field_denied, applies nothing, and flags the attempt in the audit log', async (field, patch) => {
    const user = await newUser();
    const res = await api.patch(`/v1/users/${user.id}`, { ...patch, email: 'mixed@example.com' });
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({ code: 'user.field_denied', errors: [{ field, code: 'denied' }] });
    const r = await row(user.id);
    expect(r.version).toBe(1);
    expect((r.profile as { email: string }).email).toBe(user.email);
    expect(await events(user.id)).toHaveLength(1);
    expect((await audits(user.id)).at(-1)).toMatchObject({ action: 'user.update_denied', outcome: 'flagged', changed_fields: [field] });
  });

  it('refuses read-only fields with 400 naming them, changes nothing, and records a flagged attempt', async () => {
    const user = await newUser();
    const res = await api.patch(`/v1/users/${user.id}`, { status: 'active', version: 9, email: 'x@example.com' });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors).toEqual([
      expect.objectContaining({ field: 'status', code: 'read_only' }),
      expect.objectContaining({ field: 'version', code: 'read_only' }),
    ]);
    expect((await row(user.id)).version).toBe(1);
    expect((await audits(user.id)).at(-1)).toMatchObject({ action: 'user.update_refused', outcome: 'flagged', changed_fields: ['status', 'version'] });
  });

  it('refuses fields of the other user type and unknown fields with 400', async () => {
    const person = await newUser();
    const company = await newUser(business());
    const a = await api.patch(`/v1/users/${person.id}`, { legal_name: 'Acme' });
    expect(a.statusCode).toBe(400);
    expect(a.json().errors).toContainEqual(expect.objectContaining({ field: 'legal_name', code: 'unknown_field' }));
    const b = await api.patch(`/v1/users/${company.id}`, { first_name: 'Alex' });
    expect(b.statusCode).toBe(400);
    const c = await api.patch(`/v1/users/${person.id}`, { favourite_colour: 'blue' });
    expect(c.statusCode).toBe(400);
    expect(c.json().errors).toContainEqual(expect.objectContaining({ field: 'favourite_colour', code: 'unknown_field' }));
    const d = await api.patch(`/v1/users/${person.id}`, {});
    expect(d.statusCode).toBe(400);
    expect((await row(person.id)).version).toBe(1);
  });

  it('validates patched values against reference data and does not clear required names', async () => {
    const user = await newUser();
    for (const [patch, field] of [
      [{ phone: '+33000000000' }, 'phone'],
      [{ nationality: 'QQ' }, 'nationality'],
      [{ date_of_birth: '2021-02-29' }, 'date_of_birth'],
      [{ last_name: null }, 'last_name'],
      [{ mailing_address: { country: 'QQ' } }, 'mailing_address.country'],
    ] as const) {
      const res = await api.patch(`/v1/users/${user.id}`, patch);
      expect(res.statusCode, JSON.stringify(patch)).toBe(400);
      expect(res.json().errors.map((e: { field: string }) => e.field)).toContain(field);
    }
    expect((await row(user.id)).version).toBe(1);
  });

  it('with a current If-Match applies; with a stale one answers 412 and changes nothing', async () => {
    const user = await newUser();
    const ok = await api.patch(`/v1/users/${user.id}`, { occupation: 'baker' }, { 'if-match': '"1"' });
    expect(ok.statusCode).toBe(200);
    const stale = await api.patch(`/v1/users/${user.id}`, { occupation: 'pilot' }, { 'if-match': '"1"' });
    expect(stale.statusCode).toBe(412);
    expect(stale.json()).toMatchObject({ code: 'precondition_failed', current_version: 2 });
    const garbage = await api.patch(`/v1/users/${user.id}`, { occupation: 'pilot' }, { 'if-match': 'W/"2"' });
    expect(garbage.statusCode).toBe(412);
    const r = await row(user.id);
    expect(r.version).toBe(2);
    expect((r.profile as { occupation: string }).occupation).toBe('baker');
    expect(await events(user.id)).toHaveLength(2);
  });

  it('If-Match compares strongly: a list naming the current version applies, "02" is not "2"', async () => {
    const user = await newUser();
    const listed = await api.patch(`/v1/users/${user.id}`, { occupation: 'baker' }, { 'if-match': '"5", "1"' });
    expect(listed.statusCode, listed.body).toBe(200);
    expect(listed.headers.etag).toBe('"2"');
    for (const header of ['"02"', '"2" "3"', 'W/"2"', '"5", W/"2"']) {
      const res = await api.patch(`/v1/users/${user.id}`, { occupation: 'pilot' }, { 'if-match': header });
      expect(res.statusCode, header).toBe(412);
      expect(res.json()).toMatchObject({ code: 'precondition_failed', current_version: 2 });
    }
    const r = await row(user.id);
    expect(r.version).toBe(2);
    expect((r.profile as { occupation: string }).occupation).toBe('baker');
    expect(await events(user.id)).toHaveLength(2);
  });

  it('20 concurrent patches with the same If-Match: exactly one applies, the others answer 412', async () => {
    const user = await newUser();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => api.patch(`/v1/users/${user.id}`, { occupation: `job ${i}` }, { 'if-match': '"1"' })),
    );
    expect(results.filter((r) => r.statusCode === 200)).toHaveLength(1);
    expect(results.filter((r) => r.statusCode === 412)).toHaveLength(19);
    expect((await row(user.id)).version).toBe(2);
    expect(await events(user.id)).toHaveLength(2);
  });

  it('concurrent patches without If-Match on different fields are all applied, none lost', async () => {
    const user = await newUser();
    const fields = [
      'occupation', 'middle_name', 'maiden_name', 'preferred_name', 'place_of_birth', 'tax_number',
      'first_name', 'last_name', 'email', 'language', 'timezone', 'gender',
    ];
    const values: Record<string, string> = { email: 'c@example.com', language: 'de', timezone: 'Europe/Berlin', gender: 'female' };
    const value = (f: string) => values[f] ?? `v-${f}`;
    const results = await Promise.all(fields.map((f) => api.patch(`/v1/users/${user.id}`, { [f]: value(f) })));
    expect(results.map((r) => r.statusCode)).toEqual(fields.map(() => 200));
    const r = await row(user.id);
    expect(r.version).toBe(1 + fields.length);
    for (const f of fields) expect((r.profile as Record<string, string>)[f]).toBe(value(f));
    expect(await events(user.id)).toHaveLength(1 + fields.length);
  });

  it('answers 404 for an unknown user and changes nothing', async () => {
    const res = await api.patch('/v1/users/usr_00000000000000000000000000', { occupation: 'x' });
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe('user.not_found');
  });

  it('a COMPLIANCE_OFFICER may update; the audit entry names its key and role', async () => {
    const user = await newUser();
    const t = await ctx.db.selectFrom('users').select('tenant_id').where('id', '=', user.id).executeTakeFirstOrThrow();
    const co = await createKey(ctx.db, t.tenant_id, 'COMPLIANCE_OFFICER');
    const res = await client(ctx.app, co.key).patch(`/v1/users/${user.id}`, { occupation: 'auditor' });
    expect(res.statusCode).toBe(200);
    expect((await audits(user.id)).at(-1)).toMatchObject({ actor_key_id: co.id, actor_role: 'COMPLIANCE_OFFICER', action: 'user.updated' });
  });
});
