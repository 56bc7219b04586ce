// DELETE /v1/users/{id} honours If-Match like PATCH and the status changes do: a caller that read
// version N and closes with If-Match "N" after someone else changed the user gets 412 and nothing
// happens (no close, no history, no event, no audit entry, pending requests left as they were).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;

beforeAll(async () => ({ ctx, api, tenantId } = await openTenantContext()));
afterAll(() => ctx.close());

const CLOSE = { origin: 'operator', reason: 'dormant' };

/** Everything a close writes, for one user. */
async function trail(id: string) {
  const [user, changes, events, audit, requests] = await Promise.all([
    ctx.db.selectFrom('users').select(['status', 'version', 'pending_changes']).where('id', '=', id).executeTakeFirstOrThrow(),
    ctx.db.selectFrom('status_changes').select('id').where('user_id', '=', id).execute(),
    ctx.db.selectFrom('events').select('id').where('user_id', '=', id).execute(),
    ctx.db.selectFrom('audit_entries').select('id').where('user_id', '=', id).execute(),
    ctx.db.selectFrom('change_requests').select(['id', 'status']).where('user_id', '=', id).execute(),
  ]);
  return { user, changes, events, audit, requests };
}

async function newUser() {
  const res = await api.post('/v1/users', individual());
  expect(res.statusCode, res.body).toBe(201);
  return { id: res.json().id as string, etag: res.headers.etag as string };
}

describe('closing with If-Match', () => {
  it('a stale version answers 412 problem+json and closes nothing', async () => {
    const requester = client(ctx.app, (await createKey(ctx.db, tenantId, 'ADMIN')).key);
    const { id, etag } = await newUser();
    // A verified user, so the ADMIN's name change waits for review as a pending request.
    expect((await api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'test' })).statusCode).toBe(201);
    // Someone else changes the user after our read: our ETag is now stale.
    expect((await api.patch(`/v1/users/${id}`, { occupation: 'pilot' })).statusCode).toBe(200);
    expect((await requester.patch(`/v1/users/${id}`, { last_name: 'Elm' })).json().pending_changes).toHaveLength(1);
    const before = await trail(id);

    const res = await api.delete(`/v1/users/${id}`, CLOSE, { 'if-match': etag });
    expect(res.statusCode, res.body).toBe(412);
    expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(res.json()).toMatchObject({ code: 'precondition_failed', current_version: before.user.version });
    expect(await trail(id)).toEqual(before);
    expect(before.user.status).toBe('active');
  });

  it('a malformed If-Match can never match: 412, nothing closed', async () => {
    const { id } = await newUser();
    const before = await trail(id);
    // RFC 9110 compares entity tags strongly, character by character: "01" is not "1", W/"1" is weak.
    for (const header of ['W/"1"', '1', '"abc"', '"01"', '"1" "2"', '"2", W/"1"']) {
      const res = await api.delete(`/v1/users/${id}`, CLOSE, { 'if-match': header });
      expect(res.statusCode, header).toBe(412);
    }
    expect(await trail(id)).toEqual(before);
  });

  it('the current version closes the user, once, and answers its new ETag', async () => {
    const { id, etag } = await newUser();
    const res = await api.delete(`/v1/users/${id}`, CLOSE, { 'if-match': etag });
    expect(res.statusCode, res.body).toBe(200);
    const after = await trail(id);
    expect(after.user.status).toBe('closed');
    expect(res.headers.etag).toBe(`"${after.user.version}"`);
    expect(after.changes).toHaveLength(1);
  });

  it('an If-Match list that names the current version closes the user (RFC 9110: any listed tag may match)', async () => {
    const { id } = await newUser();
    const res = await api.delete(`/v1/users/${id}`, CLOSE, { 'if-match': '"7", "1"' });
    expect(res.statusCode, res.body).toBe(200);
    const after = await trail(id);
    expect(after.user.status).toBe('closed');
    expect(after.changes).toHaveLength(1);
  });

  it('If-Match: * closes whatever the version', async () => {
    const { id } = await newUser();
    await api.patch(`/v1/users/${id}`, { occupation: 'pilot' });
    expect((await api.delete(`/v1/users/${id}`, CLOSE, { 'if-match': '*' })).statusCode).toBe(200);
    expect((await trail(id)).user.status).toBe('closed');
  });

  it('a user already closed answers 200 as it is, whatever If-Match says, and records nothing new', async () => {
    const { id, etag } = await newUser();
    expect((await api.delete(`/v1/users/${id}`, CLOSE)).statusCode).toBe(200);
    const before = await trail(id);
    // The lost-response retry: the client still holds the ETag it read before its own close.
    const res = await api.delete(`/v1/users/${id}`, CLOSE, { 'if-match': etag });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ id, status: 'closed' });
    expect(await trail(id)).toEqual(before);
  });

  it('two closes racing on the same ETag: one closes, the other answers 412 or the closed user, never a second close', async () => {
    const { id, etag } = await newUser();
    const results = await Promise.all([0, 1, 2, 3].map(() => api.delete(`/v1/users/${id}`, CLOSE, { 'if-match': etag })));
    for (const r of results) expect([200, 412], r.body).toContain(r.statusCode);
    const after = await trail(id);
    expect(after.user.status).toBe('closed');
    expect(after.changes).toHaveLength(1);
    const closedEvents = await ctx.db.selectFrom('events').select('id').where('user_id', '=', id).where('type', '=', 'user.closed').execute();
    expect(closedEvents).toHaveLength(1);
  });
});

describe('writes that do not take If-Match', () => {
  it('refuse it (400 request.if_match_unsupported) and change nothing, rather than apply whatever the version', async () => {
    const { id, etag } = await newUser();
    const before = await trail(id);
    const officer = client(ctx.app, (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key);
    for (const [who, method, url, body] of [
      [api, 'POST', `/v1/users/${id}/legal-hold`, { reason: 'court order' }],
      [api, 'POST', `/v1/users/${id}/erasure`, { requested_by: 'user' }],
      [officer, 'PUT', `/v1/users/${id}/kyc-sub-status`, { sub_status: 'submitted' }],
      [api, 'POST', `/v1/users/${id}/verifications`, { result: 'approved', provider: 'acme-kyc' }],
      [api, 'POST', `/v1/users/${id}/required-actions`, { code: 'provide_field', field: 'occupation' }],
    ] as const) {
      // Before, each answered 2xx and wrote, the header ignored: a caller counting on a 412 lost its update.
      const res = await who.call({ method, url, body, headers: { 'if-match': etag } });
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBe(400);
      expect(res.json()).toMatchObject({ code: 'request.if_match_unsupported', errors: [{ field: 'If-Match', code: 'unsupported' }] });
    }
    expect(await trail(id)).toEqual(before);
    const row = await ctx.db.selectFrom('users').select(['legal_hold', 'kyc_sub_status', 'kyc_status', 'erasure_requested_at', 'required_actions']).where('id', '=', id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ legal_hold: false, kyc_sub_status: null, kyc_status: 'unverified', erasure_requested_at: null, required_actions: [] });
    // Without the header, the same write goes through.
    expect((await api.post(`/v1/users/${id}/legal-hold`, { reason: 'court order' })).statusCode).toBe(200);
  });
});
