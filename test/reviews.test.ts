// The review workflow end to end: a verified user's address change applied with a new KYC review,
// a last-name change waiting in the queue, approved by a compliance officer, all of it in the audit log.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, createTenant, createTestContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
let tenantId: string;
let platform: Client; // the platform's backend: an ADMIN key
let officer: Client; // a compliance officer
let officerKeyId: string;

beforeAll(async () => {
  ctx = await createTestContext();
  const t = await createTenant(ctx.db);
  tenantId = t.tenantId;
  platform = client(ctx.app, (await createKey(ctx.db, tenantId, 'ADMIN')).key);
  const co = await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER');
  officer = client(ctx.app, co.key);
  officerKeyId = co.id;
});
afterAll(() => ctx.close());

async function verifiedUser(overrides: Record<string, unknown> = {}) {
  const user = (await platform.post('/v1/users', individual(overrides))).json();
  const v = await platform.post(`/v1/users/${user.id}/verifications`, {
    result: 'approved', level: 2, provider: 'acme-kyc', provider_ref: 'sess-1',
    identity: { first_name: 'Alex', last_name: 'Oak', date_of_birth: '1982-05-31', nationality: 'FR', document_type: 'passport', document_number: '12AB34567' },
  });
  expect(v.statusCode, v.body).toBe(201);
  return user as { id: string; last_name: string; address: { line1: string } };
}
const userRow = (id: string) => ctx.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const eventTypes = async (id: string) =>
  (await ctx.db.selectFrom('events').select('type').where('user_id', '=', id).orderBy('seq').execute()).map((e) => e.type);

describe('a compliance officer reviews changes to a verified user', () => {
  it('sees an address change applied with a new KYC review, a last-name change queued, approves it, and reads it all in the audit log', async () => {
    const user = await verifiedUser();
    expect((await userRow(user.id)).kyc_status).toBe('verified');

    // The platform moves the address and the surname in one PATCH, and tries to change the country.
    const refused = await platform.patch(`/v1/users/${user.id}`, { country: 'DE' });
    expect(refused.statusCode).toBe(422);
    const res = await platform.patch(`/v1/users/${user.id}`, { address: { line1: '1 Elm Street' }, last_name: 'Elm' });
    expect(res.statusCode, res.body).toBe(200);
    const after = res.json();
    expect(after.address.line1).toBe('1 Elm Street');
    expect(after.last_name).toBe('Oak');
    expect(after.kyc.status).toBe('review_required');
    expect(after.pending_changes).toEqual([expect.objectContaining({ fields: ['last_name'], proposed: { last_name: 'Elm' } })]);

    // The officer works the queue, oldest first.
    const queue = (await officer.get('/v1/change-requests?status=pending')).json().data;
    const request = queue.find((c: { user_id: string }) => c.user_id === user.id);
    expect(request).toMatchObject({ status: 'pending', changes: { last_name: { from: 'Oak', to: 'Elm' } } });
    const approved = await officer.post(`/v1/change-requests/${request.id}/approve`, { note: 'marriage certificate seen' });
    expect(approved.statusCode, approved.body).toBe(200);
    expect(approved.json()).toMatchObject({ status: 'approved', decided_by: { key_id: officerKeyId, role: 'COMPLIANCE_OFFICER' } });

    const row = await userRow(user.id);
    expect((row.profile as { last_name: string }).last_name).toBe('Elm');
    expect(row.pending_changes).toEqual([]);
    expect((await officer.get(`/v1/users/${user.id}`)).json()).toMatchObject({ last_name: 'Elm', pending_changes: [] });

    const audit = (await officer.get(`/v1/audit-events?user_id=${user.id}`)).json().data.reverse();
    expect(audit.map((a: { action: string; outcome: string }) => `${a.action}:${a.outcome}`)).toEqual([
      'user.created:applied',
      'user.verification_recorded:applied',
      'user.update_denied:flagged',
      'user.updated:applied',
      'user.change_requested:applied',
      'change_request.approved:applied',
    ]);
    expect(audit[2].changed_fields).toEqual(['country']);
    // The address applied with a new review: the audit log says the KYC status lapsed too.
    expect(audit[3]).toMatchObject({ changed_fields: ['address.line1', 'kyc.status'], details: { review_required: true, kyc_status: { from: 'verified', to: 'review_required' } } });
    expect(audit[5]).toMatchObject({ actor: { key_id: officerKeyId, role: 'COMPLIANCE_OFFICER' }, changed_fields: ['last_name'] });

    expect(await eventTypes(user.id)).toEqual([
      'user.created', 'user.verification_recorded', 'user.kyc_status_changed',
      'user.updated', 'user.kyc_status_changed', 'user.change_requested', 'user.change_approved', 'user.updated',
    ]);
  });

  it('a rejected request changes nothing and says why', async () => {
    const user = await verifiedUser();
    const cr = (await platform.patch(`/v1/users/${user.id}`, { date_of_birth: '1983-06-01' })).json().pending_changes[0];
    const res = await officer.post(`/v1/change-requests/${cr.id}/reject`, { reason: 'no evidence of a data-entry error' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'rejected', decision_reason: 'no evidence of a data-entry error' });
    const row = await userRow(user.id);
    expect((row.profile as { date_of_birth: string }).date_of_birth).toBe('1982-05-31');
    expect(row.pending_changes).toEqual([]);
    expect((await eventTypes(user.id)).at(-1)).toBe('user.change_rejected');
    const again = await officer.post(`/v1/change-requests/${cr.id}/approve`, {});
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: 'change_request.not_pending', status: 409, current_status: 'rejected' });
  });

  it('refuses an approval when a field changed since the request: 409 change_request.stale, nothing applied', async () => {
    await platform.call({ method: 'PUT', url: '/v1/policy', body: { fields: { individual: { verified: { middle_name: 'allow' } } } } });
    const user = await verifiedUser();
    // Both names held for approval; then middle_name becomes directly writable and changes.
    await platform.call({ method: 'PUT', url: '/v1/policy', body: { fields: { individual: { verified: { middle_name: 'approval' } } } } });
    const cr = (await platform.patch(`/v1/users/${user.id}`, { middle_name: 'J', last_name: 'Birch' })).json().pending_changes[0];
    expect(cr.fields.sort()).toEqual(['last_name', 'middle_name']);
    await platform.call({ method: 'PUT', url: '/v1/policy', body: { fields: { individual: { verified: { middle_name: 'allow' } } } } });
    expect((await platform.patch(`/v1/users/${user.id}`, { middle_name: 'K' })).statusCode).toBe(200);
    const before = await userRow(user.id);
    const res = await officer.post(`/v1/change-requests/${cr.id}/approve`, {});
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'change_request.stale', fields: ['middle_name'] });
    const after = await userRow(user.id);
    expect(after.version).toBe(before.version);
    expect((after.profile as { last_name: string }).last_name).toBe('Oak');
    expect((await officer.get(`/v1/change-requests/${cr.id}`)).json().status).toBe('pending');
    await platform.call({ method: 'PUT', url: '/v1/policy', body: {} });
  });

  it('an approve racing a conditional PATCH of the same field: exactly one wins, nothing half-applied', async () => {
    for (let round = 0; round < 8; round++) {
      await platform.call({ method: 'PUT', url: '/v1/policy', body: {} });
      const user = await verifiedUser();
      const cr = (await platform.patch(`/v1/users/${user.id}`, { last_name: 'Approved', first_name: 'Approvedfirst' })).json().pending_changes[0];
      // Now the tenant lets the platform write names directly, and both race.
      await platform.call({ method: 'PUT', url: '/v1/policy', body: { fields: { individual: { verified: { last_name: 'allow' } } } } });
      const version = (await userRow(user.id)).version;
      const [approve, patch] = await Promise.all([
        officer.post(`/v1/change-requests/${cr.id}/approve`, {}),
        platform.patch(`/v1/users/${user.id}`, { last_name: 'Patched' }, { 'if-match': `"${version}"` }),
      ]);
      const wins = [approve.statusCode === 200, patch.statusCode === 200].filter(Boolean).length;
      expect(wins, `approve ${approve.statusCode} ${approve.body} / patch ${patch.statusCode}`).toBe(1);
      const profile = (await userRow(user.id)).profile as { first_name: string; last_name: string };
      if (approve.statusCode === 200) {
        expect(patch.statusCode).toBe(412);
        expect(profile).toMatchObject({ first_name: 'Approvedfirst', last_name: 'Approved' });
      } else {
        expect(approve.json().code).toBe('change_request.stale');
        expect(profile).toMatchObject({ first_name: 'Alex', last_name: 'Patched' });
      }
    }
    await platform.call({ method: 'PUT', url: '/v1/policy', body: {} });
  });

  it('the key that asked for a change cannot approve it (four eyes)', async () => {
    const user = await verifiedUser();
    const cr = (await officer.patch(`/v1/users/${user.id}`, { gender: 'female' })).json().pending_changes[0];
    const res = await officer.post(`/v1/change-requests/${cr.id}/approve`, {});
    expect(res.statusCode).toBe(403);
    expect(res.json().code).toBe('change_request.self_review');
    expect((await officer.get(`/v1/change-requests/${cr.id}`)).json().status).toBe('pending');
  });

  it('a verified name still needs approval while a new verification is pending or after one was rejected: one key cannot step KYC down, change it, and step it back', async () => {
    const user = await verifiedUser();
    for (const result of ['review', 'rejected'] as const) {
      expect((await officer.post(`/v1/users/${user.id}/verifications`, { result, provider: 'acme-kyc' })).statusCode).toBe(201);
      const res = await officer.patch(`/v1/users/${user.id}`, { last_name: `Mallory-${result}` });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ last_name: 'Oak', pending_changes: [{ fields: ['last_name'] }] });
      // The request waits for a second pair of eyes, whatever the KYC status does meanwhile.
      expect((await officer.post(`/v1/users/${user.id}/verifications`, { result: 'approved', provider: 'acme-kyc', level: 2 })).statusCode).toBe(201);
      expect((await userRow(user.id))).toMatchObject({ kyc_status: 'verified', profile: expect.objectContaining({ last_name: 'Oak' }) });
      const crId = res.json().pending_changes.at(-1).id as string;
      expect((await platform.post(`/v1/change-requests/${crId}/reject`, { reason: 'not_supported' })).statusCode).toBe(200);
    }
  });

  it('lists a user’s requests and the queue with a cursor, oldest first', async () => {
    const user = await verifiedUser();
    for (const name of ['A', 'B', 'C']) await platform.patch(`/v1/users/${user.id}`, { preferred_name: name, last_name: `Name${name}` });
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { data: Array<{ id: string }>; next_cursor: string | null } = (await officer.get(`/v1/users/${user.id}/change-requests?limit=1${cursor ? `&cursor=${cursor}` : ''}`)).json();
      ids.push(...page.data.map((c: { id: string }) => c.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(ids).toHaveLength(3);
    expect([...ids].sort()).toEqual(ids);
    expect((await officer.get(`/v1/users/usr_00000000000000000000000000/change-requests`)).statusCode).toBe(404);
    expect((await officer.post('/v1/change-requests/chg_00000000000000000000000000/approve', {})).statusCode).toBe(404);
  });
});

describe('Treezor’s behaviour as a tenant policy', () => {
  it('with allow_with_review on identity fields, a change applies at once and reopens KYC review', async () => {
    const fields = ['first_name', 'last_name', 'date_of_birth', 'email'];
    const put = await platform.call({
      method: 'PUT', url: '/v1/policy',
      body: { fields: { individual: { verified: Object.fromEntries(fields.map((f) => [f, 'allow_with_review'])) } } },
    });
    expect(put.statusCode, put.body).toBe(200);
    const user = await verifiedUser();
    const res = await platform.patch(`/v1/users/${user.id}`, { last_name: 'Treezor', email: 'new@example.com' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ last_name: 'Treezor', email: 'new@example.com', kyc: { status: 'review_required' }, pending_changes: [] });
    expect((await userRow(user.id)).kyc_status).toBe('review_required');
    // A new verification closes the review.
    await platform.post(`/v1/users/${user.id}/verifications`, { result: 'approved', provider: 'acme-kyc', level: 2 });
    expect((await userRow(user.id)).kyc_status).toBe('verified');
    await platform.call({ method: 'PUT', url: '/v1/policy', body: {} });
  });
});

describe('an identifier number held for approval', () => {
  it('is listed masked in the user’s pending_changes (kept in the clear, read by every role); the change request holds it whole and approval applies it', async () => {
    expect((await platform.put('/v1/policy', { fields: { individual: { verified: { tax_number: 'approval' } } } })).statusCode).toBe(200);
    try {
      const reader = client(ctx.app, (await createKey(ctx.db, tenantId, 'READER')).key);
      const user = await verifiedUser({ tax_number: '111111112' });
      const res = await platform.patch(`/v1/users/${user.id}`, { tax_number: '987654321' });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().pending_changes).toMatchObject([{ fields: ['tax_number'], proposed: { tax_number: '*****4321' } }]);
      // Nowhere in the clear: the answer, the row, a READER's read.
      expect(res.body).not.toContain('987654321');
      expect(JSON.stringify((await userRow(user.id)).pending_changes)).not.toContain('987654321');
      expect((await reader.get(`/v1/users/${user.id}`)).body).not.toContain('987654321');
      // A row written before (the number stored whole) is answered masked too.
      const row = await userRow(user.id);
      await ctx.db.updateTable('users').set({ pending_changes: JSON.stringify(row.pending_changes.map((p) => ({ ...p, proposed: { tax_number: '987654321' } }))) })
        .where('id', '=', user.id).execute();
      expect((await reader.get(`/v1/users/${user.id}`)).json().pending_changes[0].proposed).toEqual({ tax_number: '*****4321' });
      const crId = res.json().pending_changes[0].id as string;
      // The review queue shows the change as {from, to}: both numbers masked there too (before, only a
      // number held directly under tax_number was masked, and the queue answered both whole).
      const reads = [await officer.get(`/v1/change-requests/${crId}`), await officer.get(`/v1/users/${user.id}/change-requests`), await officer.get('/v1/change-requests?status=pending')];
      for (const read of reads) {
        expect(read.statusCode, read.body).toBe(200);
        expect(read.body).not.toMatch(/987654321|111111112/);
      }
      expect(reads[0]!.json().changes.tax_number).toEqual({ from: '*****1112', to: '*****4321' });
      const approved = await officer.post(`/v1/change-requests/${crId}/approve`, {});
      expect(approved.statusCode, approved.body).toBe(200);
      expect(approved.body).not.toMatch(/987654321|111111112/);
      expect(approved.json().changes.tax_number).toEqual({ from: '*****1112', to: '*****4321' });
      for (const read of [await platform.get(`/v1/events?user_id=${user.id}`), await officer.get(`/v1/audit-events?user_id=${user.id}`)]) {
        expect(read.statusCode, read.body).toBe(200);
        expect(read.body).not.toMatch(/987654321|111111112/);
      }
      expect((await userRow(user.id)).profile).toMatchObject({ tax_number: '987654321' });
      expect((await userRow(user.id)).pending_changes).toEqual([]);
    } finally {
      await platform.put('/v1/policy', {});
    }
  });
});

describe('a tenant-defined value held for approval', () => {
  it('is refused at approval (422 user.value_too_large, nothing applied) when the values already applied and it would pass 8 KiB together: each was checked alone when held', async () => {
    const names = ['n1', 'n2', 'n3', 'n4', 'n5'];
    // Nine properties of 200 characters: ≈ 1.9 KB a value, under the 2 KiB bound on one value.
    const props = Object.fromEntries('abcdefghi'.split('').map((k) => [k, { type: 'string', maxLength: 200 }]));
    const policy = {
      custom_fields: Object.fromEntries(names.map((n) => [n, { schema: { type: 'object', properties: props }, personal: false, searchable: false }])),
      fields: { individual: { verified: Object.fromEntries(names.map((n) => [`custom.${n}`, 'approval'])) } },
    };
    const put = await platform.put('/v1/policy', policy);
    expect(put.statusCode, put.body).toBe(200);
    try {
      const user = await verifiedUser();
      const value = (c: string) => Object.fromEntries('abcdefghi'.split('').map((k) => [k, c.repeat(200)]));
      const ids: string[] = [];
      for (const [i, n] of names.entries()) {
        const res = await platform.patch(`/v1/users/${user.id}`, { custom: { [n]: value(String(i)) } });
        expect(res.statusCode, res.body).toBe(200);
        ids.push(res.json().pending_changes.at(-1).id);
      }
      const outcomes = [];
      for (const id of ids) outcomes.push((await officer.post(`/v1/change-requests/${id}/approve`, {})).statusCode);
      // Four values (≈ 7.5 KB) fit; the fifth would make ≈ 9.4 KB of the 8 KiB bound.
      expect(outcomes).toEqual([200, 200, 200, 200, 422]);
      const refused = await officer.post(`/v1/change-requests/${ids[4]}/approve`, {});
      expect(refused.json()).toMatchObject({ code: 'user.value_too_large', errors: [{ field: 'custom', code: 'too_large' }] });
      expect(Object.keys((await platform.get(`/v1/users/${user.id}`)).json().custom).sort()).toEqual(['n1', 'n2', 'n3', 'n4']);
      expect((await officer.get(`/v1/change-requests/${ids[4]}`)).json().status).toBe('pending');
    } finally {
      await platform.put('/v1/policy', {});
    }
  });

  it('is checked at approval against the field’s definition as it is then: narrowed or removed since → 409, nothing applied', async () => {
    const policy = (tier: object) => ({
      custom_fields: { tier: { schema: tier, personal: false, searchable: false } },
      fields: { individual: { verified: { 'custom.tier': 'approval' } } },
    });
    expect((await platform.put('/v1/policy', policy({ type: 'string' }))).statusCode).toBe(200);
    try {
      const user = await verifiedUser();
      const held = async (value: string) => {
        const res = await platform.patch(`/v1/users/${user.id}`, { custom: { tier: value } });
        expect(res.statusCode, res.body).toBe(200);
        return res.json().pending_changes.at(-1).id as string;
      };
      const gold = await held('gold');
      const silver = await held('silver');
      expect((await platform.put('/v1/policy', policy({ type: 'string', enum: ['silver'] }))).statusCode).toBe(200);
      const refused = await officer.post(`/v1/change-requests/${gold}/approve`, {});
      expect(refused.statusCode, refused.body).toBe(409);
      expect(refused.json()).toMatchObject({ code: 'change_request.invalid_now', errors: [{ field: 'custom.tier' }] });
      expect((await officer.get(`/v1/change-requests/${gold}`)).json().status).toBe('pending');
      expect((await userRow(user.id)).profile).not.toHaveProperty('custom.tier');
      // A value the definition still takes is approved as ever.
      expect((await officer.post(`/v1/change-requests/${silver}/approve`, {})).statusCode).toBe(200);
      expect((await platform.get(`/v1/users/${user.id}`)).json().custom).toEqual({ tier: 'silver' });
      // A removed definition freezes its values: an approval cannot write it either.
      expect((await platform.put('/v1/policy', policy({ type: 'string', enum: ['silver', 'bronze'] }))).statusCode).toBe(200);
      const bronze = await held('bronze');
      expect((await platform.put('/v1/policy', {})).statusCode).toBe(200);
      const frozen = await officer.post(`/v1/change-requests/${bronze}/approve`, {});
      expect(frozen.statusCode, frozen.body).toBe(409);
      expect(frozen.json().errors[0]).toMatchObject({ field: 'custom.tier', code: 'unknown_field' });
    } finally {
      await platform.put('/v1/policy', {});
    }
  });
});
