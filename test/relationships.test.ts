// Relationships between users: the rules (same tenant, who may be what, no cycle, ≤ 100 %), their
// safety under concurrent writers, ending without deleting, and the field policy on a verified
// business (held for approval, then applied by a compliance officer) — rows, audit and events.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, createTenant, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { business, individual } from './helpers/factories.js';
import { createErasureService } from '../src/modules/erasure/erasure.service.js';
import { createLifecycleService } from '../src/modules/lifecycle/lifecycle.service.js';

let ctx: TestContext;
let tenantId: string;
let api: Client;
let officer: Client;

beforeAll(async () => {
  const t = await openTenantContext();
  ({ ctx, tenantId, api } = t);
  officer = client(ctx.app, (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key);
});
afterAll(() => ctx.close());

const person = async () => (await api.post('/v1/users', individual())).json().id as string;
const company = async () => (await api.post('/v1/users', business())).json().id as string;
async function verifiedCompany() {
  const id = await company();
  expect((await api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'acme-kyc', level: 1 })).statusCode).toBe(201);
  return id;
}
const relate = (holder: string, body: Record<string, unknown>, c: Client = api) => c.post(`/v1/users/${holder}/relationships`, body);
const rows = (holder: string) =>
  ctx.db.selectFrom('relationships').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', holder).orderBy('id').execute();
const eventsOf = (userId: string) =>
  ctx.db.selectFrom('events').select(['type', 'data']).where('tenant_id', '=', tenantId).where('user_id', '=', userId).orderBy('seq').execute();
const auditOf = (userId: string) =>
  ctx.db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', userId).orderBy('seq').execute();

describe('adding a relationship', () => {
  it('records the row, an audit entry and a user.relationship_added event, and lists it', async () => {
    const biz = await company();
    const owner = await person();
    const res = await relate(biz, { type: 'beneficial_owner', related_user_id: owner, ownership_percent: 30.5, control: true, title: 'Founder', starts_on: '2024-01-01' });
    expect(res.statusCode, res.body).toBe(201);
    const rel = res.json();
    expect(rel).toMatchObject({
      id: expect.stringMatching(/^rel_/), type: 'beneficial_owner', user_id: biz, related_user_id: owner, ownership_percent: 30.5,
      control: true, title: 'Founder', starts_on: '2024-01-01', ended_at: null, change_request_id: null,
    });
    expect(res.headers.location).toBe(`/v1/users/${biz}/relationships/${rel.id}`);
    const [row] = await rows(biz);
    expect(row).toMatchObject({ id: rel.id, related_user_id: owner, ownership_percent: '30.5000', control: true, ended_at: null });
    const audit = (await auditOf(biz)).at(-1)!;
    expect(audit).toMatchObject({ action: 'user.relationship_added', target_type: 'relationship', target_id: rel.id, changed_fields: ['relationships'], outcome: 'applied' });
    expect((await eventsOf(biz)).at(-1)).toEqual({
      type: 'user.relationship_added',
      data: { user_id: biz, relationship_id: rel.id, type: 'beneficial_owner', related_user_id: owner, ownership_percent: 30.5, control: true },
    });
    // Listed on both sides: the business's owners, the person's roles.
    for (const id of [biz, owner]) expect((await api.get(`/v1/users/${id}/relationships`)).json()).toEqual({ data: [rel], next_cursor: null });
  });

  it('refuses a user of another tenant with 404, and writes nothing', async () => {
    const biz = await company();
    const other = await createTenant(ctx.db);
    const foreign = (await client(ctx.app, other.ownerKey).post('/v1/users', individual())).json().id;
    const res = await relate(biz, { type: 'director', related_user_id: foreign });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'user.not_found', errors: [{ field: 'related_user_id', code: 'not_found' }] });
    expect(await rows(biz)).toEqual([]);
    // And the other tenant cannot read or write this tenant's business's relationships.
    const B = client(ctx.app, other.ownerKey);
    expect((await B.get(`/v1/users/${biz}/relationships`)).statusCode).toBe(404);
    expect((await B.post(`/v1/users/${biz}/relationships`, { type: 'director', related_user_id: foreign })).statusCode).toBe(404);
    expect(await rows(biz)).toEqual([]);
  });

  it('takes only an individual as beneficial owner; a shareholder may be either; only a business has owners', async () => {
    const biz = await company();
    const parentCo = await company();
    const bo = await relate(biz, { type: 'beneficial_owner', related_user_id: parentCo, ownership_percent: 40 });
    expect(bo.statusCode).toBe(422);
    expect(bo.json()).toMatchObject({ code: 'relationship.invalid', errors: [{ field: 'related_user_id', code: 'related_type' }] });
    expect((await relate(biz, { type: 'shareholder', related_user_id: parentCo, ownership_percent: 40 })).statusCode).toBe(201);
    expect((await relate(biz, { type: 'shareholder', related_user_id: await person(), ownership_percent: 10 })).statusCode).toBe(201);
    const onPerson = await relate(await person(), { type: 'director', related_user_id: await person() });
    expect(onPerson.json()).toMatchObject({ code: 'relationship.invalid', errors: [{ field: 'type', code: 'holder_type' }] });
    const percentOnDirector = await relate(biz, { type: 'director', related_user_id: await person(), ownership_percent: 5 });
    expect(percentOnDirector.json().errors).toEqual([expect.objectContaining({ field: 'ownership_percent', code: 'not_ownership' })]);
    const self = await relate(biz, { type: 'parent', related_user_id: biz });
    expect(self.json()).toMatchObject({ status: 422, code: 'relationship.self' });
    expect((await rows(biz)).map((r) => r.type)).toEqual(['shareholder', 'shareholder']);
  });

  it('keeps the beneficial owners’ and shareholders’ percentages of a business at 100 % or less', async () => {
    const biz = await company();
    const [a, b, c] = [await person(), await person(), await company()];
    expect((await relate(biz, { type: 'beneficial_owner', related_user_id: a, ownership_percent: 60 })).statusCode).toBe(201);
    expect((await relate(biz, { type: 'shareholder', related_user_id: c, ownership_percent: 30 })).statusCode).toBe(201);
    const over = await relate(biz, { type: 'beneficial_owner', related_user_id: b, ownership_percent: 10.0001 });
    expect(over.statusCode).toBe(422);
    expect(over.json()).toMatchObject({ code: 'relationship.ownership_over_100', current_total_percent: 90, errors: [{ field: 'ownership_percent' }] });
    expect((await relate(biz, { type: 'beneficial_owner', related_user_id: b, ownership_percent: 10 })).statusCode).toBe(201);
    expect((await relate(biz, { type: 'director', related_user_id: b })).statusCode).toBe(201); // no percent: not counted
    const bad = await relate(biz, { type: 'shareholder', related_user_id: a, ownership_percent: 101 });
    expect(bad.statusCode).toBe(400);
    // A percent that numeric(7,4) rounds to 0 (1e-11 passed the 4-decimal test within its tolerance and
    // broke the table's check: a 500). Now a 400 naming the field, nothing written.
    for (const tiny of [1e-11, 0.00004]) {
      const res = await relate(biz, { type: 'shareholder', related_user_id: a, ownership_percent: tiny });
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().errors).toEqual([expect.objectContaining({ field: 'ownership_percent' })]);
    }
    expect(await rows(biz)).toHaveLength(4);
  });

  it('refuses the same current relationship twice, and a second parent', async () => {
    const child = await person();
    const [p1, p2] = [await company(), await company()];
    expect((await relate(child, { type: 'parent', related_user_id: p1 })).statusCode).toBe(201);
    expect((await relate(child, { type: 'parent', related_user_id: p1 })).json()).toMatchObject({ status: 409, code: 'relationship.exists' });
    expect((await relate(child, { type: 'parent', related_user_id: p2 })).json()).toMatchObject({ status: 409, code: 'relationship.parent_exists' });
  });
});

describe('a related user closing meanwhile', () => {
  // The add read the related user without a lock: a close committing meanwhile was not seen, and a
  // current relationship to a closed user was left behind (the rule says 422 related_user_closed).
  it('waits for a close that is committing, then refuses: no relationship to a closed user', async () => {
    const biz = await company();
    const director = await person();
    let pending: ReturnType<typeof relate> | undefined;
    await ctx.db.transaction().execute(async (trx) => {
      // The close, written and not yet committed.
      await trx.updateTable('users').set({ status: 'closed' }).where('tenant_id', '=', tenantId).where('id', '=', director).execute();
      pending = relate(biz, { type: 'director', related_user_id: director });
      await new Promise((r) => setTimeout(r, 400));
    });
    const res = await pending!;
    expect(res.json()).toMatchObject({ status: 422, code: 'relationship.related_user_closed' });
    expect(await rows(biz)).toEqual([]);
  });
});

describe('cycles of ownership and parenthood', () => {
  it('refuses a direct cycle and one through a chain, naming the path', async () => {
    const [a, b, c] = [await company(), await company(), await company()];
    // a owns b, b owns c.
    expect((await relate(b, { type: 'shareholder', related_user_id: a, ownership_percent: 50 })).statusCode).toBe(201);
    expect((await relate(c, { type: 'shareholder', related_user_id: b, ownership_percent: 50 })).statusCode).toBe(201);
    const direct = await relate(a, { type: 'shareholder', related_user_id: b, ownership_percent: 10 });
    expect(direct.statusCode).toBe(422);
    expect(direct.json()).toMatchObject({ code: 'relationship.cycle', path: [b, a], errors: [{ field: 'related_user_id', code: 'cycle' }] });
    const chain = await relate(a, { type: 'shareholder', related_user_id: c, ownership_percent: 10 });
    expect(chain.json()).toMatchObject({ code: 'relationship.cycle', path: [c, b, a] });
    expect(await rows(a)).toEqual([]);
    // Directorship is no ownership: c may sit on a's board.
    expect((await relate(a, { type: 'director', related_user_id: c })).statusCode).toBe(201);
  });

  it('refuses a cycle of parent accounts', async () => {
    const [x, y, z] = [await company(), await company(), await company()];
    expect((await relate(y, { type: 'parent', related_user_id: x })).statusCode).toBe(201);
    expect((await relate(z, { type: 'parent', related_user_id: y })).statusCode).toBe(201);
    expect((await relate(x, { type: 'parent', related_user_id: z })).json()).toMatchObject({ status: 422, code: 'relationship.cycle', path: [z, y, x] });
  });

  it('lets exactly one of concurrent inserts that together would close a cycle succeed', async () => {
    const ownsOf = (holder: string, owner: string) => relate(holder, { type: 'shareholder', related_user_id: owner, ownership_percent: 10 });
    for (let round = 0; round < 5; round++) {
      // Direct: "p owns q" and "q owns p", four of each at once.
      const [p, q] = [await company(), await company()];
      const direct = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? ownsOf(q, p) : ownsOf(p, q))));
      expect(direct.filter((r) => r.statusCode === 201), `round ${round}`).toHaveLength(1);
      for (const r of direct.filter((x) => x.statusCode !== 201)) expect(['relationship.exists', 'relationship.cycle']).toContain(r.json().code);
      // Through a chain: a owns b; "b owns c" and "c owns a" are each fine alone, and close a → b → c → a together.
      const [a, b, c] = [await company(), await company(), await company()];
      expect((await ownsOf(b, a)).statusCode).toBe(201);
      const chain = await Promise.all([ownsOf(c, b), ownsOf(a, c)]);
      expect(chain.map((r) => r.statusCode).sort(), `round ${round}`).toEqual([201, 422]);
      const edges = await ctx.db.selectFrom('relationships').select(['user_id', 'related_user_id']).where('tenant_id', '=', tenantId)
        .where('user_id', 'in', [p, q, a, b, c]).execute();
      expect(edges).toHaveLength(3);
    }
  });

  it('never lets concurrent shareholdings of one business exceed 100 %', async () => {
    const biz = await company();
    const owners = await Promise.all(Array.from({ length: 6 }, () => person()));
    const res = await Promise.all(owners.map((o) => relate(biz, { type: 'shareholder', related_user_id: o, ownership_percent: 30 })));
    expect(res.filter((r) => r.statusCode === 201)).toHaveLength(3);
    expect(res.filter((r) => r.statusCode === 422).map((r) => r.json().code)).toEqual(Array(3).fill('relationship.ownership_over_100'));
    expect((await rows(biz)).reduce((s, r) => s + Number(r.ownership_percent), 0)).toBe(90);
  });
});

describe('ending a relationship', () => {
  it('sets ended_at and keeps the row; lists show it only with include=ended; ending twice answers 409', async () => {
    const biz = await company();
    const d = await person();
    const rel = (await relate(biz, { type: 'director', related_user_id: d, title: 'CFO' })).json();
    const res = await api.post(`/v1/users/${biz}/relationships/${rel.id}/end`);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ id: rel.id, ended_at: expect.any(String) });
    expect(await rows(biz)).toEqual([expect.objectContaining({ id: rel.id, ended_at: expect.any(Date) })]);
    expect((await api.get(`/v1/users/${biz}/relationships`)).json().data).toEqual([]);
    expect((await api.get(`/v1/users/${biz}/relationships?include=ended`)).json().data).toEqual([expect.objectContaining({ id: rel.id, title: 'CFO' })]);
    expect((await api.post(`/v1/users/${biz}/relationships/${rel.id}/end`)).json()).toMatchObject({ status: 409, code: 'relationship.ended' });
    // Only through its holder: through the director, the relationship is not found.
    expect((await api.post(`/v1/users/${d}/relationships/${rel.id}/end`)).json()).toMatchObject({ status: 404, code: 'relationship.not_found' });
    expect((await auditOf(biz)).map((a) => a.action).slice(-2)).toEqual(['user.relationship_added', 'user.relationship_ended']);
    expect((await eventsOf(biz)).at(-1)).toMatchObject({ type: 'user.relationship_ended', data: { relationship_id: rel.id, related_user_id: d } });
    // A new directorship of the same person is a new row; the old one stays.
    expect((await relate(biz, { type: 'director', related_user_id: d })).statusCode).toBe(201);
    expect(await rows(biz)).toHaveLength(2);
  });
});

describe('a verified business’s relationships follow the field policy', () => {
  it('are held for approval by default, then applied by a compliance officer with the same audit and events', async () => {
    const biz = await verifiedCompany();
    const owner = await person();
    const held = await relate(biz, { type: 'beneficial_owner', related_user_id: owner, ownership_percent: 40, title: 'Chair, née Quillfeather' });
    expect(held.statusCode, held.body).toBe(202);
    // The title is free text about the person: not in the row's pending_changes (kept in the clear),
    // only in the sealed change request (before, listed there unsealed until decided).
    const listed = (await ctx.db.selectFrom('users').select('pending_changes').where('tenant_id', '=', tenantId).where('id', '=', biz).executeTakeFirstOrThrow()).pending_changes;
    expect(JSON.stringify(listed)).not.toContain('Quillfeather');
    expect(listed).toEqual([expect.objectContaining({ proposed: { relationships: expect.objectContaining({ action: 'add', relationship: expect.objectContaining({ related_user_id: owner, ownership_percent: 40 }) }) } })]);
    const { change_request_id: crId } = held.json();
    expect(held.json()).toMatchObject({ status: 'pending_approval', fields: ['relationships'], proposal: { action: 'add', relationship: { related_user_id: owner } } });
    expect(await rows(biz)).toEqual([]);
    const cr = await ctx.db.selectFrom('change_requests').selectAll().where('tenant_id', '=', tenantId).where('id', '=', crId).executeTakeFirstOrThrow();
    expect(cr).toMatchObject({ user_id: biz, status: 'pending', fields: ['relationships'] });
    expect((await api.get(`/v1/users/${biz}`)).json().pending_changes).toEqual([expect.objectContaining({ id: crId, fields: ['relationships'] })]);

    const approved = await officer.post(`/v1/change-requests/${crId}/approve`, { note: 'register of members seen' });
    expect(approved.statusCode, approved.body).toBe(200);
    expect(approved.json()).toMatchObject({ status: 'approved', changes: { relationships: { from: null, to: { action: 'add' } } } });
    const [row] = await rows(biz);
    expect(row).toMatchObject({ related_user_id: owner, ownership_percent: '40.0000', change_request_id: crId, ended_at: null, title: 'Chair, née Quillfeather' });
    expect((await api.get(`/v1/users/${biz}`)).json().pending_changes).toEqual([]);
    expect((await eventsOf(biz)).map((e) => e.type).slice(-3)).toEqual(['user.change_requested', 'user.change_approved', 'user.relationship_added']);
    expect((await auditOf(biz)).map((a) => a.action).slice(-2)).toEqual(['user.change_requested', 'change_request.approved']);
    // The officer's note: readable through the audit log (sealed with the business's key), never in the clear.
    const approvedEntry = (await officer.get(`/v1/audit-events?user_id=${biz}`)).json().data[0];
    expect(approvedEntry).toMatchObject({ action: 'change_request.approved', changed_fields: ['relationships'] });
    expect(JSON.stringify(approvedEntry)).toContain('register of members seen');
    expect(JSON.stringify((await auditOf(biz)).at(-1)!.details)).not.toContain('register of members seen');

    // Ending it is held too; a rejection leaves it current.
    const end = await api.post(`/v1/users/${biz}/relationships/${row!.id}/end`);
    expect(end.statusCode).toBe(202);
    expect((await officer.post(`/v1/change-requests/${end.json().change_request_id}/reject`, { reason: 'no evidence' })).statusCode).toBe(200);
    expect((await rows(biz))[0]!.ended_at).toBeNull();
  });

  it("a held title goes with the related person's erasure: from the change request and the business's audit log", async () => {
    const biz = await verifiedCompany();
    const owner = await person();
    const mark = `Quill${Date.now()}`;
    const held = await relate(biz, { type: 'beneficial_owner', related_user_id: owner, ownership_percent: 40, title: `Chair, née ${mark}` });
    expect(held.statusCode, held.body).toBe(202);
    const crId = held.json().change_request_id as string;
    const approved = await officer.post(`/v1/change-requests/${crId}/approve`, {});
    expect(approved.statusCode, approved.body).toBe(200);
    expect((await rows(biz))[0]).toMatchObject({ related_user_id: owner, title: `Chair, née ${mark}` });
    // Ending it is held too: the change request's `from` is the relationship, title included.
    const ending = await api.post(`/v1/users/${biz}/relationships/${(await rows(biz))[0]!.id}/end`);
    expect(ending.statusCode, ending.body).toBe(202);
    const endId = ending.json().change_request_id as string;
    // While the person is there, the change requests show the title, opened with their key.
    expect((await officer.get(`/v1/change-requests/${crId}`)).json().changes.relationships.to.relationship).toMatchObject({ title: `Chair, née ${mark}` });
    expect((await officer.get(`/v1/change-requests/${endId}`)).json().changes.relationships.from).toMatchObject({ title: `Chair, née ${mark}` });
    expect(JSON.stringify((await officer.get(`/v1/audit-events?user_id=${biz}`)).json())).not.toContain(mark);

    await api.call({ method: 'PUT', url: '/v1/policy', body: { retention: { erasure_after_days: 0 } } });
    try {
      expect((await api.post(`/v1/users/${owner}/erasure`, { requested_by: 'user' })).statusCode).toBe(202);
      const { erased } = await createErasureService({ db: ctx.db, lifecycle: createLifecycleService({ db: ctx.db, keyring: ctx.keyring }), blobs: ctx.blobs, keyring: ctx.keyring }).sweep();
      expect(erased).toContain(owner);
    } finally {
      await api.call({ method: 'PUT', url: '/v1/policy', body: {} });
    }
    // Before, both change requests (sealed with the business's key, which stays) still read the title.
    const afterAdd = (await officer.get(`/v1/change-requests/${crId}`)).json();
    expect(afterAdd.changes.relationships.to.relationship).toMatchObject({ related_user_id: owner, title: null });
    expect((await officer.get(`/v1/change-requests/${endId}`)).json().changes.relationships.from).toMatchObject({ related_user_id: owner, title: null });
    expect(JSON.stringify((await api.get(`/v1/users/${biz}/export`)).json())).not.toContain(mark);
    expect(JSON.stringify((await officer.get(`/v1/audit-events?user_id=${biz}&limit=100`)).json())).not.toContain(mark);
  });

  it('checks the rules again at approval: a request the graph has overtaken applies nothing', async () => {
    const biz = await verifiedCompany();
    const [a, b] = [await person(), await person()];
    const first = (await relate(biz, { type: 'shareholder', related_user_id: a, ownership_percent: 70 })).json().change_request_id;
    const second = (await relate(biz, { type: 'shareholder', related_user_id: b, ownership_percent: 70 })).json().change_request_id;
    expect((await officer.post(`/v1/change-requests/${first}/approve`, {})).statusCode).toBe(200);
    const late = await officer.post(`/v1/change-requests/${second}/approve`, {});
    expect(late.json()).toMatchObject({ status: 422, code: 'relationship.ownership_over_100' });
    expect((await rows(biz)).map((r) => r.related_user_id)).toEqual([a]);
    const cr = await ctx.db.selectFrom('change_requests').select('status').where('tenant_id', '=', tenantId).where('id', '=', second).executeTakeFirstOrThrow();
    expect(cr.status).toBe('pending');
  });

  it('applies at once with a new KYC review, or refuses, when the tenant says so', async () => {
    await api.call({ method: 'PUT', url: '/v1/policy', body: { fields: { business: { verified: { relationships: 'allow_with_review' } } } } });
    const biz = await verifiedCompany();
    const res = await relate(biz, { type: 'director', related_user_id: await person() });
    expect(res.statusCode).toBe(201);
    expect((await api.get(`/v1/users/${biz}`)).json().kyc.status).toBe('review_required');
    expect((await eventsOf(biz)).map((e) => e.type).slice(-2)).toEqual(['user.relationship_added', 'user.kyc_status_changed']);

    await api.call({ method: 'PUT', url: '/v1/policy', body: { fields: { business: { verified: { relationships: 'deny' } } } } });
    const biz2 = await verifiedCompany();
    const denied = await relate(biz2, { type: 'director', related_user_id: await person() });
    expect(denied.statusCode).toBe(422);
    expect(denied.json()).toMatchObject({ code: 'user.field_denied', errors: [{ field: 'relationships', code: 'denied' }] });
    expect(await rows(biz2)).toEqual([]);
    expect((await auditOf(biz2)).at(-1)).toMatchObject({ action: 'user.update_denied', outcome: 'flagged', changed_fields: ['relationships'] });
    await api.call({ method: 'PUT', url: '/v1/policy', body: {} });
    expect((await api.get('/v1/policy')).json().fields.business.verified.relationships).toBe('approval');
  });
});
