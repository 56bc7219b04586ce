import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDispatcher, FAN_OUT_BATCH, nextRoundIn, SEND_BATCH, type Dispatcher } from '../src/workers/dispatcher.js';
import { isPrivateAddress } from '../src/modules/webhooks/ssrf.js';
import { nextDelaySeconds, parseRetryAfter, RETRY_DELAYS_SECONDS } from '../src/modules/webhooks/retry.js';
import { client, createTenant, createTestContext, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { startReceiver, type Receiver, drain, localDispatcher, quiet } from './helpers/receiver.js';

let ctx: TestContext;
let api: Client;
let receiver: Receiver;
let dispatcher: Dispatcher;

beforeAll(async () => {
  ({ ctx, api } = await openTenantContext());
  receiver = await startReceiver();
  dispatcher = localDispatcher(ctx);
});
afterAll(async () => {
  await dispatcher.close();
  await receiver.close();
  await ctx.close();
});
beforeEach(async () => {
  // Each test registers its own endpoint; older ones are removed so they receive nothing.
  for (const e of (await api.get('/v1/webhook-endpoints?limit=200')).json().data) await api.delete(`/v1/webhook-endpoints/${e.id}`);
  await dispatcher.runOnce();
  receiver.received.length = 0;
  receiver.script.length = 0;
});

async function endpoint(body: Record<string, unknown> = {}) {
  const res = await api.post('/v1/webhook-endpoints', { url: receiver.url, ...body });
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as { id: string; secret: string };
}
const deliveriesOf = (endpointId: string) => ctx.db.selectFrom('webhook_deliveries').selectAll().where('endpoint_id', '=', endpointId).orderBy('created_at').execute();
const makeDue = () => sql`update webhook_deliveries set next_attempt_at = now() where status = 'pending'`.execute(ctx.db);

describe('the dispatcher loop', () => {
  const waits = { busyMs: 100, idleMs: 250 };
  it('goes again at once after a full batch, waits a little after a partial one and longer after nothing', () => {
    expect(nextRoundIn({ fannedOut: FAN_OUT_BATCH, sent: 0 }, waits)).toBe(0);
    expect(nextRoundIn({ fannedOut: 3, sent: SEND_BATCH }, waits)).toBe(0);
    expect(nextRoundIn({ fannedOut: 37, sent: 0 }, waits)).toBe(100);
    expect(nextRoundIn({ fannedOut: 0, sent: 4 }, waits)).toBe(100);
    expect(nextRoundIn({ fannedOut: 0, sent: 0 }, waits)).toBe(250);
  });
});

describe('webhook endpoints', () => {
  it('show the secret once, store it sealed, and list without it', async () => {
    const e = await endpoint({ description: 'CRM sync', event_types: ['user.created'] });
    expect(e.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const row = await ctx.db.selectFrom('webhook_endpoints').selectAll().where('id', '=', e.id).executeTakeFirstOrThrow();
    expect(row.secret_enc).toMatch(/^km1\./);
    expect(JSON.stringify(row)).not.toContain(e.secret.slice(6));
    const got = (await api.get(`/v1/webhook-endpoints/${e.id}`)).json();
    expect(got).toMatchObject({ id: e.id, url: receiver.url, description: 'CRM sync', event_types: ['user.created'], enabled: true });
    expect(got).not.toHaveProperty('secret');
    const patched = await api.patch(`/v1/webhook-endpoints/${e.id}`, { event_types: [], description: null });
    expect(patched.json()).toMatchObject({ event_types: [], description: null });
    expect((await api.patch(`/v1/webhook-endpoints/${e.id}`, { event_types: ['user.teleported'] })).statusCode).toBe(400);
  });
});

describe('delivery', () => {
  it('a change reaches the endpoint signed per Standard Webhooks, verified by the standardwebhooks library', async () => {
    const e = await endpoint();
    const user = (await api.post('/v1/users', individual())).json();
    await api.patch(`/v1/users/${user.id}`, { occupation: 'baker' });
    await drain(dispatcher);
    // Deliveries run in parallel: arrival order is not guaranteed (see the README on ordering).
    receiver.received.sort((a, b) => a.id.localeCompare(b.id));
    expect(receiver.received.map((r) => r.json.type)).toEqual(['user.created', 'user.updated']);
    for (const r of receiver.received) {
      expect(receiver.verifies(r, e.secret)).toBe(true);
      expect(r.id).toBe(r.json.id);
      expect(r.id).toMatch(/^evt_/);
      expect(Math.abs(Number(r.timestamp) - Date.now() / 1000)).toBeLessThan(30);
    }
    expect(receiver.received[1]!.json.data).toMatchObject({ user_id: user.id, changed_fields: ['occupation'], current: { occupation: 'baker' } });
    expect(receiver.verifies(receiver.received[0]!, 'whsec_' + Buffer.alloc(32).toString('base64'))).toBe(false);
    const log = (await api.get(`/v1/webhook-endpoints/${e.id}/deliveries`)).json().data;
    expect(log).toHaveLength(2);
    expect(log[0]).toMatchObject({ succeeded: true, status_code: 200, attempt: 1, error: null });
  });

  it('sends only the event types an endpoint asked for', async () => {
    await endpoint({ event_types: ['user.status_changed'] });
    const user = (await api.post('/v1/users', individual())).json();
    await api.post(`/v1/users/${user.id}/flag`, { reason: 'aml_alert' });
    await drain(dispatcher);
    expect(receiver.received.map((r) => r.json.type)).toEqual(['user.status_changed']);
  });

  it('fan-out takes every event off the outbox and counts it, but plans deliveries only where an enabled endpoint takes its type', async () => {
    const wanted = await endpoint({ event_types: ['user.status_changed'] });
    const every = await endpoint({ event_types: ['user.created', 'user.status_changed'] });
    const off = await endpoint();
    await api.patch(`/v1/webhook-endpoints/${off.id}`, { enabled: false });
    const other = client(ctx.app, (await createTenant(ctx.db)).ownerKey); // a tenant without endpoints
    const user = (await api.post('/v1/users', individual())).json();
    await api.post(`/v1/users/${user.id}/flag`, { reason: 'aml_alert' });
    await other.post('/v1/users', individual());
    await other.post('/v1/users', individual());
    // A third tenant with an endpoint of its own: its events go to its endpoint only, and no other's.
    const third = await createTenant(ctx.db);
    const thirdApi = client(ctx.app, third.ownerKey);
    const thirdEndpoint = (await thirdApi.post('/v1/webhook-endpoints', { url: receiver.url, event_types: ['user.status_changed'] })).json() as { id: string };
    const thirdUser = (await thirdApi.post('/v1/users', individual())).json();
    await thirdApi.post(`/v1/users/${thirdUser.id}/flag`, { reason: 'aml_alert' });
    const queued = Number((await sql<{ n: string }>`select count(*) as n from event_outbox`.execute(ctx.db)).rows[0]!.n);
    expect(queued).toBeGreaterThanOrEqual(4);

    const fanned = await dispatcher.fanOut(500, 0);
    expect(fanned.events).toBe(queued);
    expect((await sql<{ n: string }>`select count(*) as n from event_outbox`.execute(ctx.db)).rows[0]!.n).toBe('0');
    const planned = await deliveriesOf(wanted.id);
    const statusChanged = await ctx.db.selectFrom('events').select('id').where('user_id', '=', user.id).where('type', '=', 'user.status_changed').executeTakeFirstOrThrow();
    expect(planned.map((d) => d.event_id)).toEqual([statusChanged.id]);
    const created = await ctx.db.selectFrom('events').select('id').where('user_id', '=', user.id).where('type', '=', 'user.created').executeTakeFirstOrThrow();
    expect((await deliveriesOf(every.id)).map((d) => d.event_id).sort()).toEqual([created.id, statusChanged.id].sort());
    expect(await deliveriesOf(off.id)).toEqual([]);
    const forUser = await sql<{ n: string }>`select count(*) as n from webhook_deliveries d join events e on e.tenant_id = d.tenant_id and e.id = d.event_id where e.user_id = ${user.id}`.execute(ctx.db);
    expect(forUser.rows[0]!.n).toBe('3');
    const thirdChanged = await ctx.db.selectFrom('events').select('id').where('user_id', '=', thirdUser.id).where('type', '=', 'user.status_changed').executeTakeFirstOrThrow();
    const ofThird = await ctx.db.selectFrom('webhook_deliveries').select(['endpoint_id', 'event_id']).where('tenant_id', '=', third.tenantId).execute();
    expect(ofThird).toEqual([{ endpoint_id: thirdEndpoint.id, event_id: thirdChanged.id }]);
    await makeDue();
    await drain(dispatcher);
    await thirdApi.patch(`/v1/webhook-endpoints/${thirdEndpoint.id}`, { enabled: false });
    expect(receiver.received.map((r) => [r.json.type, r.json.data.user_id]).sort()).toEqual(
      [['user.created', user.id], ['user.status_changed', user.id], ['user.status_changed', user.id], ['user.status_changed', thirdUser.id]].sort(),
    );
  });

  it('fans out a full batch to a tenant with 30 endpoints: 15,000 deliveries, more parameters than one statement may bind', async () => {
    const { tenantId, ownerKey } = await createTenant(ctx.db);
    const owner = client(ctx.app, ownerKey);
    for (let i = 0; i < 30; i++) expect((await owner.post('/v1/webhook-endpoints', { url: receiver.url })).statusCode).toBe(201);
    await dispatcher.fanOut(5000, 0); // whatever earlier tests left queued
    await sql`delete from webhook_deliveries where tenant_id = ${tenantId}`.execute(ctx.db);
    await sql`with e as (
                insert into events (tenant_id, id, type, user_id, data)
                select ${tenantId}, 'evt_' || lpad(g::text, 26, '0'), 'user.created', null, '{}'::jsonb from generate_series(1, 500) g
                returning seq, tenant_id)
              insert into event_outbox (seq, tenant_id) select seq, tenant_id from e`.execute(ctx.db);
    try {
      // 15,000 rows of 5 parameters in one INSERT is 75,000: PostgreSQL refuses more than 65,535, and
      // the round failed with every event still first in the outbox, for every tenant, for ever.
      const fanned = await dispatcher.fanOut(500, 0);
      expect(fanned.events).toBe(500);
      const n = await sql<{ n: string; events: string }>`select count(*) as n, count(distinct event_id) as events from webhook_deliveries where tenant_id = ${tenantId}`.execute(ctx.db);
      expect(n.rows[0]).toEqual({ n: '15000', events: '500' });
      expect((await sql<{ n: string }>`select count(*) as n from event_outbox where tenant_id = ${tenantId}`.execute(ctx.db)).rows[0]!.n).toBe('0');
    } finally {
      await sql`delete from webhook_deliveries where tenant_id = ${tenantId}`.execute(ctx.db);
      await sql`delete from event_outbox where tenant_id = ${tenantId}`.execute(ctx.db);
      await sql`update webhook_endpoints set enabled = false where tenant_id = ${tenantId}`.execute(ctx.db);
    }
  });

  it('retries a failure with the same webhook-id and a fresh timestamp, after about 5 seconds; only 2xx is success', async () => {
    const e = await endpoint();
    receiver.script.push({ status: 500 }, { status: 302, headers: { location: 'http://example.com' } });
    await api.post('/v1/users', individual());
    await drain(dispatcher);
    let [d] = await deliveriesOf(e.id);
    expect(d).toMatchObject({ status: 'pending', attempts: 1, last_status_code: 500 });
    const wait = (d!.next_attempt_at.getTime() - d!.last_attempt_at!.getTime()) / 1000;
    expect(wait).toBeGreaterThanOrEqual(4.4);
    expect(wait).toBeLessThanOrEqual(5.6);
    await makeDue();
    await drain(dispatcher);
    [d] = await deliveriesOf(e.id);
    expect(d).toMatchObject({ status: 'pending', attempts: 2, last_status_code: 302 });
    await makeDue();
    await new Promise((r) => setTimeout(r, 1100));
    await drain(dispatcher);
    [d] = await deliveriesOf(e.id);
    expect(d).toMatchObject({ status: 'succeeded', attempts: 3, last_status_code: 200 });
    const ids = new Set(receiver.received.map((r) => r.id));
    expect(ids.size).toBe(1);
    expect(receiver.received[2]!.timestamp).not.toBe(receiver.received[0]!.timestamp);
    expect(receiver.received.every((r) => receiver.verifies(r, e.secret))).toBe(true);
  });

  it('honours Retry-After when it asks for longer than the schedule', async () => {
    const e = await endpoint();
    receiver.script.push({ status: 429, headers: { 'retry-after': '120' } });
    await api.post('/v1/users', individual());
    await drain(dispatcher);
    const [d] = await deliveriesOf(e.id);
    const wait = (d!.next_attempt_at.getTime() - d!.last_attempt_at!.getTime()) / 1000;
    expect(wait).toBeGreaterThanOrEqual(119);
    expect(wait).toBeLessThanOrEqual(121);
  });

  it('a 410 disables the endpoint at once, with an event that says so', async () => {
    const e = await endpoint();
    receiver.script.push({ status: 410 });
    await api.post('/v1/users', individual());
    await drain(dispatcher);
    expect((await api.get(`/v1/webhook-endpoints/${e.id}`)).json()).toMatchObject({ enabled: false, disabled_reason: 'gone' });
    const [d] = await deliveriesOf(e.id);
    expect(d!.status).toBe('failed');
    const ev = await ctx.db.selectFrom('events').selectAll().where('type', '=', 'webhook_endpoint.disabled').orderBy('seq', 'desc').executeTakeFirstOrThrow();
    expect(ev.data).toEqual({ endpoint_id: e.id, reason: 'gone' });
    await api.post('/v1/users', individual());
    await drain(dispatcher);
    expect(await deliveriesOf(e.id)).toHaveLength(1);
    // Re-enabling starts afresh.
    expect((await api.patch(`/v1/webhook-endpoints/${e.id}`, { enabled: true })).json()).toMatchObject({ enabled: true, disabled_reason: null });
  });

  it('an endpoint failing for more than 5 days is disabled; one that exhausts its retries marks the delivery failed', async () => {
    const e = await endpoint();
    await sql`update webhook_endpoints set failing_since = now() - interval '6 days' where id = ${e.id}`.execute(ctx.db);
    receiver.script.push({ status: 503 });
    await api.post('/v1/users', individual());
    await drain(dispatcher);
    expect((await api.get(`/v1/webhook-endpoints/${e.id}`)).json()).toMatchObject({ enabled: false, disabled_reason: 'failing' });

    const f = await endpoint();
    for (let i = 0; i <= RETRY_DELAYS_SECONDS.length; i++) receiver.script.push({ status: 500 });
    await api.post('/v1/users', individual());
    for (let i = 0; i <= RETRY_DELAYS_SECONDS.length; i++) {
      await makeDue();
      await drain(dispatcher);
    }
    const [d] = await deliveriesOf(f.id);
    expect(d).toMatchObject({ status: 'failed', attempts: RETRY_DELAYS_SECONDS.length + 1 });
  });

  it('after a secret rotation, both the old and the new secret verify for 24 hours', async () => {
    const e = await endpoint();
    const rotated = await api.post(`/v1/webhook-endpoints/${e.id}/rotate-secret`);
    expect(rotated.statusCode).toBe(200);
    const fresh = rotated.json();
    expect(fresh.secret).not.toBe(e.secret);
    expect(Date.parse(fresh.secret_rotation_ends_at) - Date.now()).toBeGreaterThan(23.9 * 3600_000);
    await api.post('/v1/users', individual());
    await drain(dispatcher);
    const [r] = receiver.received;
    expect(r!.signature.split(' ')).toHaveLength(2);
    expect(receiver.verifies(r!, fresh.secret)).toBe(true);
    expect(receiver.verifies(r!, e.secret)).toBe(true);
    await sql`update webhook_endpoints set previous_secret_expires_at = now() - interval '1 second' where id = ${e.id}`.execute(ctx.db);
    await api.post('/v1/users', individual());
    await drain(dispatcher);
    expect(receiver.verifies(receiver.received[1]!, e.secret)).toBe(false);
    expect(receiver.verifies(receiver.received[1]!, fresh.secret)).toBe(true);
  });

  it('redelivers an event on request with the same webhook-id, to the enabled endpoints that take its type, audited', async () => {
    const all = await endpoint();
    const user = (await api.post('/v1/users', individual())).json();
    await drain(dispatcher);
    const eventId = receiver.received[0]!.id;
    await endpoint({ event_types: ['user.status_changed'] }); // does not take user.created
    const off = await endpoint();
    await api.patch(`/v1/webhook-endpoints/${off.id}`, { enabled: false });
    const res = await api.post(`/v1/events/${eventId}/redeliver`);
    expect(res.statusCode).toBe(202);
    expect(res.json().deliveries).toEqual([{ id: expect.stringMatching(/^dlv_/), endpoint_id: all.id }]);
    const entry = await ctx.db.selectFrom('audit_entries').select(['details', 'target_id']).where('action', '=', 'event.redelivered').orderBy('seq', 'desc').executeTakeFirstOrThrow();
    expect(entry).toEqual({ target_id: eventId, details: { endpoints: [all.id] } });
    await drain(dispatcher);
    expect(receiver.received.map((r) => r.id)).toEqual([eventId, eventId]);
    expect(receiver.received[1]!.json.data).toMatchObject({ user: expect.objectContaining({ id: user.id }) });
    expect((await api.post('/v1/events/evt_00000000000000000000000000/redeliver')).statusCode).toBe(404);
  });

  it('two dispatchers racing over 60 events never send one attempt twice', async () => {
    const e = await endpoint();
    const users = await Promise.all(Array.from({ length: 60 }, () => api.post('/v1/users', individual())));
    expect(users.every((u) => u.statusCode === 201)).toBe(true);
    const other = localDispatcher(ctx);
    for (let i = 0; i < 6; i++) await Promise.all([dispatcher.runOnce(), other.runOnce(), dispatcher.runOnce()]);
    await drain(dispatcher);
    await other.close();
    const ids = receiver.received.map((r) => r.id);
    expect(ids).toHaveLength(60);
    expect(new Set(ids).size).toBe(60);
    const attempts = await ctx.db.selectFrom('webhook_attempts').select(['delivery_id']).where('endpoint_id', '=', e.id).execute();
    expect(attempts).toHaveLength(60);
    expect(new Set(attempts.map((a) => a.delivery_id)).size).toBe(attempts.length);
  });
});

describe('the SSRF guard', () => {
  it('knows private, loopback, link-local, metadata and reserved addresses', () => {
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fd00:ec2::254', 'fe80::1', '::ffff:127.0.0.1', '224.0.0.1']) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111']) expect(isPrivateAddress(a), a).toBe(false);
  });

  it('refuses, when registering, http and private targets unless the operator allows them', async () => {
    const strict = await createTestContext({ webhookTargets: { allowHttp: false, allowPrivate: false } });
    try {
      const owner = client(strict.app, (await createTenant(strict.db)).ownerKey);
      for (const [url, code] of [
        ['http://hooks.example.com/x', 'webhook.url_scheme'],
        ['https://127.0.0.1/x', 'webhook.url_private'],
        ['https://169.254.169.254/latest/meta-data', 'webhook.url_private'],
        ['https://[::1]/x', 'webhook.url_private'],
        ['https://localhost/x', 'webhook.url_private'],
        ['https://user:pw@hooks.example.com/x', 'webhook.url_invalid'],
        ['https://nowhere.invalid/x', 'webhook.url_unresolvable'],
      ]) {
        const res = await owner.post('/v1/webhook-endpoints', { url });
        expect(res.statusCode, url).toBe(422);
        expect(res.json().code, url).toBe(code);
      }
      expect(await strict.db.selectFrom('webhook_endpoints').select('id').execute()).toEqual([]);
    } finally {
      await strict.close();
    }
  });

  it('refuses again when sending: a target that became private is never contacted', async () => {
    const e = await endpoint();
    const strictDispatcher = createDispatcher({ db: ctx.db, keyring: ctx.keyring, targets: { allowHttp: true, allowPrivate: false }, log: quiet });
    await api.post('/v1/users', individual());
    await strictDispatcher.runOnce();
    await strictDispatcher.close();
    expect(receiver.received).toEqual([]);
    const [d] = await deliveriesOf(e.id);
    expect(d).toMatchObject({ status: 'pending', attempts: 1, last_status_code: null });
    const log = (await api.get(`/v1/webhook-endpoints/${e.id}/deliveries`)).json().data;
    expect(log[0].error).toMatch(/private/);
  });
});

describe('the retry schedule', () => {
  it('is about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h with ±10 % jitter, then stops', () => {
    expect(RETRY_DELAYS_SECONDS).toEqual([5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]);
    expect(nextDelaySeconds(1, null, () => 0)).toBeCloseTo(4.5);
    expect(nextDelaySeconds(1, null, () => 1)).toBeCloseTo(5.5);
    expect(nextDelaySeconds(9, null, () => 0.5)).toBeCloseTo(86400);
    expect(nextDelaySeconds(10, null)).toBeNull();
    expect(nextDelaySeconds(1, '3600', () => 0.5)).toBe(3600);
    expect(parseRetryAfter(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThan(55);
  });
});
