// Required actions and the KYC sub-status (issue 16 §2, MatchMove): asked for, shown on the user,
// fulfilled automatically when the field or document arrives (by a PATCH, an approved change
// request, an upload), cancelled by an operator; each change a row version, an audit entry and an event.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, createTenant, openTenantContext, withPersonal, type Client, type TestContext } from './helpers/app.js';
import { individual, physicalDocument } from './helpers/factories.js';

let ctx: TestContext;
let tenantId: string;
let api: Client;

beforeAll(async () => ({ ctx, tenantId, api } = await openTenantContext()));
afterAll(() => ctx.close());

const person = async (extra: Record<string, unknown> = {}) => (await api.post('/v1/users', individual(extra))).json().id as string;
const ask = (id: string, body: Record<string, unknown>, c: Client = api) => c.post(`/v1/users/${id}/required-actions`, body);
const actionsOf = async (id: string) => (await api.get(`/v1/users/${id}`)).json().required_actions as Array<Record<string, unknown>>;
const events = (id: string, prefix = 'user.required_action') =>
  ctx.db.selectFrom('events').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).where('type', 'like', `${prefix}%`).orderBy('seq').execute();
const audit = (id: string, prefix = 'user.required_action') =>
  ctx.db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).where('action', 'like', `${prefix}%`).orderBy('seq').execute();
const due = new Date(Date.now() + 7 * 86_400_000).toISOString();

describe('asking for a field or a document', () => {
  it('shows the action on the user as open, with an audit entry and user.required_action_added (message sealed)', async () => {
    const id = await person();
    const before = (await api.get(`/v1/users/${id}`)).json().version;
    const res = await ask(id, { code: 'provide_document', document_type: 'proof_of_address', message: 'Please upload a utility bill under 3 months old', due_at: due });
    expect(res.statusCode, res.body).toBe(201);
    const action = res.json();
    expect(action).toEqual({
      id: expect.stringMatching(/^rqa_/), code: 'provide_document', field: null, document_type: 'proof_of_address',
      message: 'Please upload a utility bill under 3 months old', due_at: due, status: 'open', created_at: expect.any(String), resolved_at: null,
    });
    expect(res.headers.etag).toBe(`"${before + 1}"`);
    expect(await actionsOf(id)).toEqual([action]);
    const [entry] = await audit(id);
    expect(entry).toMatchObject({ action: 'user.required_action_added', target_type: 'required_action', target_id: action.id, changed_fields: ['required_actions'] });
    expect(JSON.stringify(entry!.details)).not.toContain('utility bill');
    const evs = await events(id);
    expect(evs.map((e) => e.type)).toEqual(['user.required_action_added']);
    expect(JSON.stringify(evs[0]!.data)).not.toContain('utility bill');
    expect((await withPersonal(ctx, evs))[0]!.data).toMatchObject({ required_action_id: action.id, status: 'open', message: 'Please upload a utility bill under 3 months old' });
  });

  it('refuses what cannot be asked: 400 with the field at fault, nothing written', async () => {
    const id = await person();
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ code: 'provide_field' }, 'field', 'required'],
      [{ code: 'provide_document' }, 'document_type', 'required'],
      [{ code: 'other', field: 'email', document_type: 'selfie' }, 'document_type', 'one_of'],
      [{ code: 'provide_field', field: 'legal_name' }, 'field', 'unknown_field'],
      [{ code: 'provide_field', field: 'country' }, 'field', 'unknown_field'],
      [{ code: 'provide_field', field: 'email', due_at: '2020-01-01T00:00:00Z' }, 'due_at', 'in_the_past'],
      [{ code: 'provide_document', document_type: 'love_letter' }, 'document_type', 'not_allowed_value'],
      [{ code: 'teleport' }, 'code', 'not_allowed_value'],
    ];
    for (const [body, field, code] of cases) {
      const res = await ask(id, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().errors, JSON.stringify(body)).toContainEqual(expect.objectContaining({ field, code }));
    }
    expect(await actionsOf(id)).toEqual([]);
    expect(await audit(id)).toEqual([]);
  });

  it('at most 20 open at once', async () => {
    const id = await person();
    for (let i = 0; i < 20; i++) expect((await ask(id, { code: 'other', message: `q${i}` })).statusCode).toBe(201);
    const res = await ask(id, { code: 'other' });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors).toEqual([expect.objectContaining({ code: 'too_many_open' })]);
  });

  it('is refused to READER and DEVELOPER keys (403), and another tenant’s user answers 404; nothing written', async () => {
    const id = await person();
    for (const role of ['READER', 'DEVELOPER'] as const) {
      const c = client(ctx.app, (await createKey(ctx.db, tenantId, role)).key);
      expect((await ask(id, { code: 'other' }, c)).statusCode).toBe(403);
    }
    const other = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    expect((await ask(id, { code: 'other' }, other)).statusCode).toBe(404);
    expect(await actionsOf(id)).toEqual([]);
  });
});

describe('fulfilment, automatic', () => {
  it('a PATCH bringing the field (or a leaf of it) fulfils the open action on it, in the same write', async () => {
    const id = await person({ occupation: null });
    const onAddress = (await ask(id, { code: 'provide_field', field: 'address', message: 'Your full address' })).json();
    const onOccupation = (await ask(id, { code: 'provide_field', field: 'occupation' })).json();
    const res = await api.patch(`/v1/users/${id}`, { address: { line2: 'Flat 4' } });
    expect(res.statusCode, res.body).toBe(200);
    const shown = res.json().required_actions;
    expect(shown).toEqual([
      { ...onAddress, status: 'fulfilled', resolved_at: expect.any(String) },
      onOccupation,
    ]);
    expect((await events(id)).map((e) => [e.type, (e.data as { required_action_id: string }).required_action_id])).toEqual([
      ['user.required_action_added', onAddress.id], ['user.required_action_added', onOccupation.id], ['user.required_action_fulfilled', onAddress.id],
    ]);
    expect((await events(id)).at(-1)!.data).toMatchObject({ status: 'fulfilled', fulfilled_by: 'user.updated' });
    expect((await audit(id)).at(-1)).toMatchObject({ action: 'user.required_actions_fulfilled', details: { required_action_ids: [onAddress.id], fulfilled_by: 'user.updated' } });
    // Clearing a field provides nothing.
    expect((await api.patch(`/v1/users/${id}`, { occupation: null })).json().required_actions[1].status).toBe('open');
  });

  it('a field held for approval fulfils nothing until a compliance officer approves it', async () => {
    const id = await person();
    expect((await api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'acme-kyc' })).statusCode).toBe(201);
    const action = (await ask(id, { code: 'provide_field', field: 'last_name', message: 'Your married name' })).json();
    const requester = client(ctx.app, (await createKey(ctx.db, tenantId, 'ADMIN')).key);
    const held = await requester.patch(`/v1/users/${id}`, { last_name: 'Elm' });
    expect(held.json().required_actions[0].status).toBe('open');
    const crId = held.json().pending_changes[0].id;
    expect((await api.post(`/v1/change-requests/${crId}/approve`, {})).statusCode).toBe(200);
    const [after] = await actionsOf(id);
    expect(after).toMatchObject({ id: action.id, status: 'fulfilled' });
    expect((await events(id)).at(-1)!.data).toMatchObject({ required_action_id: action.id, fulfilled_by: 'change_request.approved', change_request_id: crId });
  });

  it('a document upload fulfils the open action on its type', async () => {
    const id = await person();
    const action = (await ask(id, { code: 'provide_document', document_type: 'proof_of_address' })).json();
    const other = (await ask(id, { code: 'provide_document', document_type: 'selfie' })).json();
    const doc = await api.post(`/v1/users/${id}/documents`, physicalDocument('proof_of_address'));
    expect(doc.statusCode, doc.body).toBe(201);
    const list = await actionsOf(id);
    expect(list.map((a) => [a.id, a.status])).toEqual([[action.id, 'fulfilled'], [other.id, 'open']]);
    expect((await events(id)).at(-1)!.data).toMatchObject({ required_action_id: action.id, fulfilled_by: 'document.added', document_id: doc.json().id });
  });
});

describe('cancelling', () => {
  it('an open action: cancelled, with an audit entry and an event; a second time 409; unknown 404', async () => {
    const id = await person();
    const action = (await ask(id, { code: 'provide_field', field: 'email' })).json();
    const res = await api.post(`/v1/users/${id}/required-actions/${action.id}/cancel`);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ ...action, status: 'cancelled', resolved_at: expect.any(String) });
    expect((await events(id)).map((e) => e.type)).toEqual(['user.required_action_added', 'user.required_action_cancelled']);
    expect((await audit(id)).at(-1)).toMatchObject({ action: 'user.required_action_cancelled', target_id: action.id });
    const again = await api.post(`/v1/users/${id}/required-actions/${action.id}/cancel`);
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: 'required_action.not_open', current_status: 'cancelled' });
    // Cancelled, it is not fulfilled later.
    await api.patch(`/v1/users/${id}`, { email: 'new.address@example.org' });
    expect((await actionsOf(id))[0]!.status).toBe('cancelled');
    expect((await api.post(`/v1/users/${id}/required-actions/rqa_nope/cancel`)).statusCode).toBe(404);
    const other = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    expect((await other.post(`/v1/users/${id}/required-actions/${action.id}/cancel`)).statusCode).toBe(404);
  });
});

describe('the KYC sub-status', () => {
  it('is set beside kyc.status, audited with an event, cleared with null; the same value changes nothing', async () => {
    const id = await person();
    const set = (v: string | null, c: Client = api) => c.call({ method: 'PUT', url: `/v1/users/${id}/kyc-sub-status`, body: { sub_status: v } });
    const dev = client(ctx.app, (await createKey(ctx.db, tenantId, 'DEVELOPER')).key);
    const res = await set('pending_document_submission', dev);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().kyc).toEqual({ status: 'unverified', level: null, verified_at: null, sub_status: 'pending_document_submission' });
    expect((await set('submitted')).json().kyc.sub_status).toBe('submitted');
    const v = (await set('submitted')).json().version;
    expect((await api.get(`/v1/users/${id}`)).json().version).toBe(v);
    expect((await set(null)).json().kyc.sub_status).toBeNull();
    const evs = await events(id, 'user.kyc_sub_status');
    expect(evs.map((e) => [(e.data as { from: string }).from, (e.data as { to: string }).to])).toEqual([[null, 'pending_document_submission'], ['pending_document_submission', 'submitted'], ['submitted', null]]);
    expect((await audit(id, 'user.kyc_sub_status')).map((a) => a.changed_fields)).toEqual([['kyc.sub_status'], ['kyc.sub_status'], ['kyc.sub_status']]);
    expect((await set('approved_ish')).statusCode).toBe(400);
    const reader = client(ctx.app, (await createKey(ctx.db, tenantId, 'READER')).key);
    expect((await set('approved', reader)).statusCode).toBe(403);
  });
});
