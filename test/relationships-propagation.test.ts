// Ultimate ownership through chains of businesses, and propagation: a business's capabilities
// answer related_party_* while an owner of ≥ 25 % (chains multiplied) or a controller is suspended
// or blocked — read from the live statuses, with no write to the business — and recover with it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { business, individual } from './helpers/factories.js';
import { createLifecycleService } from '../src/modules/lifecycle/lifecycle.service.js';
import { createErasureService } from '../src/modules/erasure/erasure.service.js';

let ctx: TestContext;
let tenantId: string;
let api: Client;

beforeAll(async () => {
  ({ ctx, tenantId, api } = await openTenantContext());
});
afterAll(() => ctx.close());

const verified = async (body: Record<string, unknown>) => {
  const id = (await api.post('/v1/users', body)).json().id as string;
  expect((await api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'acme-kyc', level: 1 })).statusCode).toBe(201);
  return id;
};
// Unverified businesses take relationships at once; the ones whose capabilities are read get verified after.
const person = () => verified(individual());
const company = async () => (await api.post('/v1/users', business())).json().id as string;
const verify = (id: string) => api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'acme-kyc', level: 1 });
async function owns(holder: string, owner: string, percent: number, type = 'shareholder') {
  const res = await api.post(`/v1/users/${holder}/relationships`, { type, related_user_id: owner, ownership_percent: percent });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id as string;
}
const caps = async (id: string) => (await api.get(`/v1/users/${id}/capabilities`)).json();
const reasons = async (id: string) => Object.values((await caps(id)).capabilities as Record<string, { reason: string | null }>).map((v) => v.reason);
const businessState = async (id: string) => {
  const row = await ctx.db.selectFrom('users').select(['version', 'status', 'updated_at']).where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirstOrThrow();
  const events = await ctx.db.selectFrom('events').select('id').where('tenant_id', '=', tenantId).where('user_id', '=', id).execute();
  return { ...row, events: events.length };
};

describe('ultimate ownership', () => {
  it('multiplies percentages through chains and sums every path to the same owner', async () => {
    const [biz, holding, ana, ben] = [await company(), await company(), await person(), await person()];
    await owns(holding, ana, 60, 'beneficial_owner');
    await owns(holding, ben, 39.5, 'beneficial_owner');
    await owns(biz, holding, 50);
    await owns(biz, ana, 10, 'beneficial_owner');
    const res = await api.get(`/v1/users/${biz}/ownership`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      user_id: biz,
      owners: [
        { user_id: ana, percent: 40, paths: [[biz, ana], [biz, holding, ana]].sort() },
        { user_id: ben, percent: 19.75, paths: [[biz, holding, ben]] },
      ],
      truncated: false,
    });
    // A business with no recorded owner above it is itself an ultimate owner.
    const top = await company();
    await owns(holding, top, 0.5);
    expect((await api.get(`/v1/users/${biz}/ownership`)).json().owners).toContainEqual({ user_id: top, percent: 0.25, paths: [[biz, holding, top]] });
    expect((await api.get(`/v1/users/${ana}/ownership`)).json()).toEqual({ user_id: ana, owners: [], truncated: false });
  });
});

describe('propagation of a related party’s status to a business’s capabilities', () => {
  it('denies a 30 % owner’s business while the owner is suspended, and restores it with the owner — no write to the business', async () => {
    const [biz, owner] = [await company(), await person()];
    await owns(biz, owner, 30, 'beneficial_owner');
    expect((await verify(biz)).statusCode).toBe(201);
    expect(await reasons(biz)).toEqual([null, null, null, null]);
    const before = await businessState(biz);

    expect((await api.post(`/v1/users/${owner}/suspend`, { reason: 'fraud_suspected' })).statusCode).toBe(201);
    const held = await caps(biz);
    expect(held).toMatchObject({
      status: 'active',
      capabilities: { deposits: { allowed: false, reason: 'related_party_suspended' }, withdrawals: { allowed: false, reason: 'related_party_suspended' } },
      related_parties: [{ user_id: owner, status: 'suspended', ownership_percent: 30, control: false, path: [biz, owner] }],
      propagation: { ownership_threshold_percent: 25, statuses: ['blocked', 'suspended'] },
    });
    expect(await businessState(biz)).toEqual(before);

    expect((await api.post(`/v1/users/${owner}/unsuspend`, { reason: 'review_cleared' })).statusCode).toBe(201);
    expect(await caps(biz)).toMatchObject({ capabilities: { deposits: { allowed: true, reason: null } }, related_parties: [] });

    expect((await api.post(`/v1/users/${owner}/block`, { reason: 'sanctions_match' })).statusCode).toBe(201);
    expect(await reasons(biz)).toEqual(Array(4).fill('related_party_blocked'));
    expect((await api.post(`/v1/users/${owner}/unblock`, { reason: 'review_cleared' })).statusCode).toBe(201);
    expect(await reasons(biz)).toEqual([null, null, null, null]);
    expect(await businessState(biz)).toEqual(before);
  });

  it('holds the business for every check that starts after the suspension returns, however many run at once', async () => {
    const [biz, owner] = [await company(), await person()];
    await owns(biz, owner, 51, 'beneficial_owner');
    expect((await verify(biz)).statusCode).toBe(201);
    // Checks racing the suspension may see either state; every one started after it returned is denied.
    const racing = Promise.all(Array.from({ length: 20 }, () => caps(biz)));
    expect((await api.post(`/v1/users/${owner}/suspend`, { reason: 'fraud_suspected' })).statusCode).toBe(201);
    for (const c of await racing) expect([null, 'related_party_suspended']).toContain(c.capabilities.deposits.reason);
    const after = await Promise.all(Array.from({ length: 20 }, () => caps(biz)));
    expect(after.map((c) => c.capabilities.deposits.reason)).toEqual(Array(20).fill('related_party_suspended'));
  });

  it('propagates through a two-level chain (60 % × 50 % = 30 %), and stops when the link is ended', async () => {
    const [biz, holding, owner] = [await company(), await company(), await person()];
    await owns(holding, owner, 60, 'beneficial_owner');
    const link = await owns(biz, holding, 50);
    expect((await verify(biz)).statusCode).toBe(201);
    await api.post(`/v1/users/${owner}/suspend`, { reason: 'aml_alert' });
    expect(await caps(biz)).toMatchObject({
      capabilities: { exchanges: { allowed: false, reason: 'related_party_suspended' } },
      related_parties: [{ user_id: owner, ownership_percent: 30, path: [biz, holding, owner] }],
    });
    // The biz is verified: ending its link is held for approval; approved, the chain is gone.
    const end = await api.post(`/v1/users/${biz}/relationships/${link}/end`);
    expect(end.statusCode).toBe(202);
    const officer = client(ctx.app, (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key);
    expect((await officer.post(`/v1/change-requests/${end.json().change_request_id}/approve`, {})).statusCode).toBe(200);
    expect(await reasons(biz)).toEqual([null, null, null, null]);
  });

  it('holds at exactly 25 % (50 % × 50 %) and not below it (50 % × 49.98 % = 24.99 %)', async () => {
    const [at, below, hAt, hBelow, owner] = [await company(), await company(), await company(), await company(), await person()];
    await owns(hAt, owner, 50, 'beneficial_owner');
    await owns(at, hAt, 50);
    await owns(hBelow, owner, 49.98, 'beneficial_owner');
    await owns(below, hBelow, 50);
    for (const id of [at, below]) expect((await verify(id)).statusCode).toBe(201);
    await api.post(`/v1/users/${owner}/block`, { reason: 'fraud_suspected' });
    expect(await caps(at)).toMatchObject({ capabilities: { deposits: { reason: 'related_party_blocked' } }, related_parties: [{ ownership_percent: 25 }] });
    expect(await caps(below)).toMatchObject({ capabilities: { deposits: { allowed: true } }, related_parties: [] });
  });

  it('propagates from a controller whatever it owns, and not from a 20 % owner without control', async () => {
    const [biz, director, minor] = [await company(), await person(), await person()];
    const d = await api.post(`/v1/users/${biz}/relationships`, { type: 'director', related_user_id: director, control: true });
    expect(d.statusCode).toBe(201);
    await owns(biz, minor, 20, 'beneficial_owner');
    expect((await verify(biz)).statusCode).toBe(201);
    await api.post(`/v1/users/${minor}/suspend`, { reason: 'fraud_suspected' });
    expect(await reasons(biz)).toEqual([null, null, null, null]);
    await api.post(`/v1/users/${director}/suspend`, { reason: 'fraud_suspected' });
    expect(await caps(biz)).toMatchObject({ capabilities: { deposits: { reason: 'related_party_suspended' } }, related_parties: [{ user_id: director, control: true, ownership_percent: 0 }] });
  });

  it('follows the tenant’s policy: a higher threshold, other statuses, or off', async () => {
    const [biz, owner] = [await company(), await person()];
    await owns(biz, owner, 30, 'beneficial_owner');
    expect((await verify(biz)).statusCode).toBe(201);
    await api.post(`/v1/users/${owner}/flag`, { reason: 'aml_alert' });
    expect(await reasons(biz)).toEqual([null, null, null, null]); // flagged does not propagate by default
    const put = (propagation: unknown) => api.call({ method: 'PUT', url: '/v1/policy', body: { propagation } });
    expect((await put({ statuses: ['flagged'] })).statusCode).toBe(200);
    expect(await reasons(biz)).toEqual(Array(4).fill('related_party_flagged'));
    expect((await put({ statuses: ['flagged'], ownership_threshold_percent: 50 })).json().propagation).toEqual({ ownership_threshold_percent: 50, statuses: ['flagged'] });
    expect(await reasons(biz)).toEqual([null, null, null, null]);
    const bad = await put({ ownership_threshold_percent: 0, statuses: ['closed'] });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors.map((e: { field: string }) => e.field).sort()).toEqual(['propagation.ownership_threshold_percent', 'propagation.statuses']);
    expect((await put({ statuses: [] })).statusCode).toBe(200);
    await api.post(`/v1/users/${owner}/block`, { reason: 'fraud_suspected' });
    expect(await reasons(biz)).toEqual([null, null, null, null]);
    await api.call({ method: 'PUT', url: '/v1/policy', body: {} });
    expect(await reasons(biz)).toEqual(Array(4).fill('related_party_blocked'));
  });

  it('never lets the business’s own status be hidden: its own suspension speaks first', async () => {
    const [biz, owner] = [await company(), await person()];
    await owns(biz, owner, 80, 'beneficial_owner');
    expect((await verify(biz)).statusCode).toBe(201);
    await api.post(`/v1/users/${owner}/block`, { reason: 'fraud_suspected' });
    await api.post(`/v1/users/${biz}/flag`, { reason: 'aml_alert' });
    expect((await caps(biz)).capabilities).toMatchObject({
      withdrawals: { reason: 'under_review' }, deposits: { reason: 'related_party_blocked' },
    });
  });
});

describe('closing and erasing', () => {
  it('a blocked or suspended owner closed, or erased, still holds the business; one closed while active does not', async () => {
    const [biz, blocked, suspended, quiet] = [await company(), await person(), await person(), await person()];
    await owns(biz, blocked, 60, 'beneficial_owner');
    await owns(biz, suspended, 30, 'beneficial_owner');
    await owns(biz, quiet, 10, 'beneficial_owner');
    expect((await verify(biz)).statusCode).toBe(201);
    await api.post(`/v1/users/${blocked}/block`, { reason: 'sanctions_match' });
    await api.post(`/v1/users/${suspended}/suspend`, { reason: 'fraud_suspected' });
    expect(await reasons(biz)).toEqual(Array(4).fill('related_party_blocked'));
    // Before, a closed party dropped out: the owner's GDPR request, or a close, lifted the business's freeze.
    expect((await api.delete(`/v1/users/${suspended}`, { origin: 'user', reason: 'user_request' })).statusCode).toBe(200);
    expect((await api.delete(`/v1/users/${quiet}`, { origin: 'user', reason: 'user_request' })).statusCode).toBe(200);
    await api.call({ method: 'PUT', url: '/v1/policy', body: { retention: { erasure_after_days: 0 } } });
    try {
      expect((await api.post(`/v1/users/${blocked}/erasure`, { requested_by: 'user' })).statusCode).toBe(202);
      const lifecycle = createLifecycleService({ db: ctx.db, keyring: ctx.keyring });
      expect((await createErasureService({ db: ctx.db, lifecycle, blobs: ctx.blobs, keyring: ctx.keyring }).sweep()).erased).toContain(blocked);
    } finally {
      await api.call({ method: 'PUT', url: '/v1/policy', body: {} });
    }
    expect(await caps(biz)).toMatchObject({
      capabilities: { deposits: { allowed: false, reason: 'related_party_blocked' } },
      related_parties: [
        { user_id: blocked, status: 'blocked', closed: true, ownership_percent: 60 },
        { user_id: suspended, status: 'suspended', closed: true, ownership_percent: 30 },
      ],
    });
    expect((await caps(biz)).related_parties).toHaveLength(2);
  });

  it('holds a business whose beneficial owner, recorded without a percent, is blocked (held as a controller)', async () => {
    const [biz, owner] = [await company(), await person()];
    expect((await api.post(`/v1/users/${biz}/relationships`, { type: 'beneficial_owner', related_user_id: owner })).statusCode).toBe(201);
    expect((await verify(biz)).statusCode).toBe(201);
    await api.post(`/v1/users/${owner}/block`, { reason: 'fraud_suspected' });
    // Before, counted as 0 % without control: the business kept every capability.
    expect(await caps(biz)).toMatchObject({
      capabilities: { withdrawals: { allowed: false, reason: 'related_party_blocked' } },
      related_parties: [{ user_id: owner, status: 'blocked', control: true, ownership_percent: 0, closed: false }],
    });
  });

  it('closing a business never closes its people; erasing a person keeps the relationship with the tombstone', async () => {
    const [biz, owner] = [await company(), await person()];
    const rel = await owns(biz, owner, 40, 'beneficial_owner');
    expect((await api.delete(`/v1/users/${biz}`, { origin: 'operator', reason: 'user_request' })).statusCode).toBe(200);
    expect((await api.get(`/v1/users/${owner}`)).json().status).toBe('active');
    expect((await api.get(`/v1/users/${owner}/relationships`)).json().data).toEqual([expect.objectContaining({ id: rel, ended_at: null })]);
    // A closed business changes no more, relationships included.
    expect((await api.post(`/v1/users/${biz}/relationships/${rel}/end`)).json()).toMatchObject({ status: 409, code: 'user.closed' });

    const biz2 = await company();
    const rel2 = await owns(biz2, owner, 40, 'beneficial_owner');
    await api.call({ method: 'PUT', url: '/v1/policy', body: { retention: { erasure_after_days: 0 } } });
    expect((await api.post(`/v1/users/${owner}/erasure`, { requested_by: 'user' })).statusCode).toBe(202);
    const lifecycle = createLifecycleService({ db: ctx.db, keyring: ctx.keyring });
    const { erased } = await createErasureService({ db: ctx.db, lifecycle, blobs: ctx.blobs, keyring: ctx.keyring }).sweep();
    expect(erased).toContain(owner);
    expect((await api.get(`/v1/users/${owner}`)).json()).toMatchObject({ id: owner, status: 'closed', first_name: null });
    expect((await api.get(`/v1/users/${biz2}/relationships`)).json().data).toEqual([expect.objectContaining({ id: rel2, related_user_id: owner })]);
    expect((await api.get(`/v1/users/${biz2}/ownership`)).json().owners).toEqual([{ user_id: owner, percent: 40, paths: [[biz2, owner]] }]);
    // Both records hold it: the GDPR export of the business and of the (erased) person.
    expect((await api.get(`/v1/users/${biz2}/export`)).json().relationships).toEqual([expect.objectContaining({ id: rel2, related_user_id: owner })]);
    expect((await api.get(`/v1/users/${owner}/export`)).json().relationships.map((r: { id: string }) => r.id)).toEqual([rel, rel2]);
    // A closed person takes no new relationship.
    expect((await api.post(`/v1/users/${await company()}/relationships`, { type: 'director', related_user_id: owner })).json()).toMatchObject({ status: 422, code: 'relationship.related_user_closed' });
    await api.call({ method: 'PUT', url: '/v1/policy', body: {} });
  });
});
