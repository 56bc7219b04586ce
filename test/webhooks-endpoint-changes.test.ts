// Endpoint changes and their audit entries commit together: a URL moved, an endpoint deleted or a
// secret rotated is never left without its entry (a failed audit insert is injected with a trigger,
// as a dropped connection or a statement timeout between two statements would fail it). And a second
// rotation inside the 24-hour overlap keeps the secret receivers held before the first.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dispatcher } from '../src/workers/dispatcher.js';
import { openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { startReceiver, type Receiver, drain, localDispatcher } from './helpers/receiver.js';

let ctx: TestContext;
let api: Client;
let receiver: Receiver;
let dispatcher: Dispatcher;

beforeAll(async () => {
  ({ ctx, api } = await openTenantContext());
  receiver = await startReceiver();
  dispatcher = localDispatcher(ctx);
  // Fault injection: the audit insert of one action fails (as a dropped connection or a statement
  // timeout between the two statements would).
  await sql`create table fail_action (action text primary key)`.execute(ctx.db);
  await sql`create function fail_audit() returns trigger language plpgsql as $$
    begin if exists (select 1 from fail_action f where f.action = new.action) then raise exception 'injected audit failure'; end if; return new; end $$`.execute(ctx.db);
  await sql`create trigger fail_audit before insert on audit_entries for each row execute function fail_audit()`.execute(ctx.db);
});
afterAll(async () => {
  await dispatcher.close();
  await receiver.close();
  await ctx.close();
});
const failAudit = (action: string | null) =>
  action ? sql`insert into fail_action values (${action})`.execute(ctx.db) : sql`delete from fail_action`.execute(ctx.db);

const auditOf = (id: string) =>
  ctx.db.selectFrom('audit_entries').select(['action', 'details']).where('target_id', '=', id).orderBy('seq').execute();

describe('endpoint changes and their audit entries', () => {
  it('a PATCH of the URL whose audit entry fails changes nothing; one that succeeds records the URL it left and the one it took', async () => {
    const e = (await api.post('/v1/webhook-endpoints', { url: receiver.url })).json();
    await failAudit('webhook_endpoint.updated');
    const res = await api.patch(`/v1/webhook-endpoints/${e.id}`, { url: 'http://127.0.0.1:9/elsewhere' });
    await failAudit(null);
    expect(res.statusCode).toBe(500);
    const row = await ctx.db.selectFrom('webhook_endpoints').select('url').where('id', '=', e.id).executeTakeFirstOrThrow();
    expect(row.url).toBe(receiver.url);
    expect((await auditOf(e.id)).map((a) => a.action)).toEqual(['webhook_endpoint.created']);

    expect((await api.patch(`/v1/webhook-endpoints/${e.id}`, { url: 'http://127.0.0.1:9/elsewhere' })).statusCode).toBe(200);
    const updated = (await auditOf(e.id)).at(-1)!;
    expect(updated.action).toBe('webhook_endpoint.updated');
    expect(updated.details).toEqual({ fields: ['url'], url: { from: receiver.url, to: 'http://127.0.0.1:9/elsewhere' } });
  });

  it('a DELETE whose audit entry fails deletes nothing', async () => {
    const e = (await api.post('/v1/webhook-endpoints', { url: receiver.url })).json();
    await failAudit('webhook_endpoint.deleted');
    const res = await api.delete(`/v1/webhook-endpoints/${e.id}`);
    await failAudit(null);
    expect(res.statusCode).toBe(500);
    expect(await ctx.db.selectFrom('webhook_endpoints').select('id').where('id', '=', e.id).executeTakeFirst()).toBeDefined();
    expect((await auditOf(e.id)).map((a) => a.action)).toEqual(['webhook_endpoint.created']);
  });

  it('a rotation whose audit entry fails keeps the old secret (the new one was never shown)', async () => {
    const e = (await api.post('/v1/webhook-endpoints', { url: receiver.url })).json();
    const before = await ctx.db.selectFrom('webhook_endpoints').select(['secret_enc', 'previous_secret_enc']).where('id', '=', e.id).executeTakeFirstOrThrow();
    await failAudit('webhook_endpoint.secret_rotated');
    const res = await api.post(`/v1/webhook-endpoints/${e.id}/rotate-secret`);
    await failAudit(null);
    expect(res.statusCode).toBe(500);
    const after = await ctx.db.selectFrom('webhook_endpoints').select(['secret_enc', 'previous_secret_enc']).where('id', '=', e.id).executeTakeFirstOrThrow();
    expect(after).toEqual(before);
  });
});

describe('secret rotation', () => {
  it('the secret in use before a rotation keeps signing for 24 h even if the endpoint is rotated again meanwhile; the one in between stops', async () => {
    for (const x of (await api.get('/v1/webhook-endpoints?limit=200')).json().data) await api.delete(`/v1/webhook-endpoints/${x.id}`);
    await drain(dispatcher);
    const e = (await api.post('/v1/webhook-endpoints', { url: receiver.url, event_types: ['user.created'] })).json();
    const s0 = e.secret as string;
    const first = (await api.post(`/v1/webhook-endpoints/${e.id}/rotate-secret`)).json();
    const second = (await api.post(`/v1/webhook-endpoints/${e.id}/rotate-secret`)).json();
    // The overlap is the first rotation's: a second one does not extend it.
    expect(second.secret_rotation_ends_at).toBe(first.secret_rotation_ends_at);
    receiver.received.length = 0;
    await api.post('/v1/users', individual());
    await drain(dispatcher);
    const r = receiver.received.at(-1)!;
    expect(receiver.verifies(r, second.secret)).toBe(true);
    expect(receiver.verifies(r, s0)).toBe(true);
    expect(receiver.verifies(r, first.secret)).toBe(false);
  });
});

describe('redelivery', () => {
  it('queues one delivery per endpoint while one of the event is pending, however many calls race; once it is sent, again', async () => {
    for (const x of (await api.get('/v1/webhook-endpoints?limit=200')).json().data) await api.delete(`/v1/webhook-endpoints/${x.id}`);
    await drain(dispatcher);
    const a = (await api.post('/v1/webhook-endpoints', { url: receiver.url, event_types: ['user.created'] })).json();
    const b = (await api.post('/v1/webhook-endpoints', { url: receiver.url, event_types: ['user.created'] })).json();
    const user = (await api.post('/v1/users', individual())).json();
    await drain(dispatcher);
    const event = (await api.get(`/v1/events?user_id=${user.id}&type=user.created`)).json().data[0];
    const pendingOf = () => ctx.db.selectFrom('webhook_deliveries').select(['endpoint_id']).where('event_id', '=', event.id).where('status', '=', 'pending').execute();

    const calls = await Promise.all(Array.from({ length: 10 }, () => api.post(`/v1/events/${event.id}/redeliver`)));
    expect(calls.map((c) => c.statusCode)).toEqual(Array(10).fill(202));
    expect(calls.flatMap((c) => c.json().deliveries.map((d: { endpoint_id: string }) => d.endpoint_id)).sort()).toEqual([a.id, b.id].sort());
    expect((await pendingOf()).map((d) => d.endpoint_id).sort()).toEqual([a.id, b.id].sort());
    // Every call is audited, with the endpoints it queued (none for the nine that found them on their way).
    const audited = await ctx.db.selectFrom('audit_entries').select('details').where('action', '=', 'event.redelivered').where('target_id', '=', event.id).execute();
    expect(audited).toHaveLength(10);
    expect(audited.flatMap((e) => (e.details as { endpoints: string[] }).endpoints).sort()).toEqual([a.id, b.id].sort());

    receiver.received.length = 0;
    await drain(dispatcher);
    expect(receiver.received.filter((r) => r.json.id === event.id)).toHaveLength(2);
    expect(await pendingOf()).toEqual([]);
    expect((await api.post(`/v1/events/${event.id}/redeliver`)).json().deliveries).toHaveLength(2);
    await drain(dispatcher);
  });

  it('queues again for an endpoint whose delivery of the event failed and waits for its retry: a mended receiver gets it now', async () => {
    for (const x of (await api.get('/v1/webhook-endpoints?limit=200')).json().data) await api.delete(`/v1/webhook-endpoints/${x.id}`);
    await drain(dispatcher);
    const e = (await api.post('/v1/webhook-endpoints', { url: receiver.url, event_types: ['user.created'] })).json();
    receiver.script.push({ status: 500 });
    const user = (await api.post('/v1/users', individual())).json();
    await drain(dispatcher);
    const event = (await api.get(`/v1/events?user_id=${user.id}&type=user.created`)).json().data[0];
    const waiting = await ctx.db.selectFrom('webhook_deliveries').select(['status', 'attempts']).where('event_id', '=', event.id).execute();
    expect(waiting).toEqual([{ status: 'pending', attempts: 1 }]);
    expect((await api.post(`/v1/events/${event.id}/redeliver`)).json().deliveries).toEqual([{ id: expect.any(String), endpoint_id: e.id }]);
    expect((await api.post(`/v1/events/${event.id}/redeliver`)).json().deliveries).toEqual([]);
  });
});
