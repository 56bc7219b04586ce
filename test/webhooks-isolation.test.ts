// One tenant's slow receivers must not hold back another tenant's webhooks, and no receiver may hold
// a send for ever. The attacks: a tenant registers an endpoint that accepts connections and never
// answers (each send then waits out the 15 s header timeout) and makes enough events to fill every
// sender — before, a dispatcher round waited for its last send and gave the first ten deliveries it
// met all ten senders, so the other tenant's webhooks left 15 s late, round after round; a tenant
// with a backlog of due deliveries ahead of everyone's — before, it filled every claim; a receiver
// that answers `102 Processing` every few hundred milliseconds, or trickles its body — before, the
// send never ended, nor the round, nor shutdown.
import dgram from 'node:dgram';
import dns from 'node:dns';
import fs from 'node:fs/promises';
import http from 'node:http';
import net, { type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOOKUP_TIMEOUT_MS } from '../src/modules/webhooks/ssrf.js';
import { createDispatcher, startDispatcher, TENANT_SENDS } from '../src/workers/dispatcher.js';
import { SEND_DEADLINE_MS } from '../src/workers/send.js';
import { sql } from 'kysely';
import { client, createTenant, createTestContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { startReceiver, type Receiver, localDispatcher, quiet } from './helpers/receiver.js';

let ctx: TestContext;
let receiver: Receiver;

/** Accepts every request and never answers; counts the requests it holds at once. */
const tarpit = { server: http.createServer(), sockets: new Set<Socket>(), holding: 0, mostHeld: 0, url: '' };

beforeAll(async () => {
  ctx = await createTestContext();
  receiver = await startReceiver();
  tarpit.server.on('connection', (s: Socket) => void tarpit.sockets.add(s));
  tarpit.server.on('request', (req: http.IncomingMessage) => {
    tarpit.holding++;
    tarpit.mostHeld = Math.max(tarpit.mostHeld, tarpit.holding);
    req.socket.on('close', () => tarpit.holding--);
  });
  await new Promise<void>((r) => tarpit.server.listen(0, '127.0.0.1', r));
  tarpit.url = `http://127.0.0.1:${(tarpit.server.address() as { port: number }).port}/hooks`;
});
afterAll(async () => {
  for (const s of tarpit.sockets) s.destroy();
  await new Promise<void>((r) => tarpit.server.close(() => r()));
  await receiver.close();
  await ctx.close();
});

async function until(what: () => boolean, ms: number): Promise<number> {
  const started = Date.now();
  while (!what()) {
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - started;
}

describe('tenant isolation in webhook delivery', () => {
  // Either way a delivery starts: leased by fan-out as it is planned, or claimed later when due.
  it.each([
    ['leased by fan-out', false],
    ['claimed when due', true],
  ])("a tenant whose receiver hangs holds its own sends only (%s): another tenant's webhooks leave at once, round after round", async (_how, planFirst) => {
    const attacker = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    const victim = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    const trap = (await attacker.post('/v1/webhook-endpoints', { url: tarpit.url })).json() as { id: string };
    const fair = (await victim.post('/v1/webhook-endpoints', { url: receiver.url })).json() as { id: string };
    tarpit.mostHeld = 0;
    const dispatcher = localDispatcher(ctx);
    // More of the attacker's events than its share of the senders, all before the victim's.
    for (let i = 0; i < TENANT_SENDS + 5; i++) expect((await attacker.post('/v1/users', individual())).statusCode).toBe(201);
    const first = (await victim.post('/v1/users', individual())).json() as { id: string };
    // Planned without a lease: all sixteen wait as pending, and one claim could take them all.
    if (planFirst) expect((await dispatcher.fanOut(500, 0)).events).toBe(TENANT_SENDS + 6);

    const stop = startDispatcher(dispatcher, { log: quiet, idleMs: 50, busyMs: 20 });
    try {
      await until(() => receiver.received.some((r) => r.json.data.user_id === first.id), 3000);
      // The attacker holds exactly its share, however many of its deliveries are due.
      await until(() => tarpit.holding === TENANT_SENDS, 3000);
      // A later event of the victim's is not held behind the sends of an earlier round.
      const second = (await victim.post('/v1/users', individual())).json() as { id: string };
      await until(() => receiver.received.some((r) => r.json.data.user_id === second.id), 3000);
      expect(tarpit.mostHeld).toBe(TENANT_SENDS);
      const held = await ctx.db.selectFrom('webhook_deliveries').select(['status', 'attempts']).where('endpoint_id', '=', trap.id).execute();
      // Fifteen deliveries planned; ten leased and in flight, five waiting for room, none attempted twice.
      expect(held).toHaveLength(TENANT_SENDS + 5);
      expect(held.filter((a) => a.attempts === 1)).toHaveLength(TENANT_SENDS);
      expect(held.filter((a) => a.attempts === 0)).toHaveLength(5);
      expect(held.every((a) => a.status === 'pending')).toBe(true);
    } finally {
      await attacker.patch(`/v1/webhook-endpoints/${trap.id}`, { enabled: false }); // its retries end, before the next case
      for (const s of tarpit.sockets) s.destroy(); // the held sends fail now, so stop() need not wait 15 s
      await stop(); // closes the dispatcher
    }
    const delivered = await ctx.db.selectFrom('webhook_deliveries').select('status').where('endpoint_id', '=', fair.id).execute();
    expect(delivered.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
  });

  const open = () => localDispatcher(ctx);

  it("one claim takes each tenant's due deliveries within its room, the least busy first: a tenant's backlog ahead of another's does not fill it", async () => {
    const busy = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    const other = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    const busyEndpoint = (await busy.post('/v1/webhook-endpoints', { url: receiver.url })).json() as { id: string };
    const otherEndpoint = (await other.post('/v1/webhook-endpoints', { url: receiver.url })).json() as { id: string };
    for (let i = 0; i < 40; i++) expect((await busy.post('/v1/users', individual())).statusCode).toBe(201);
    expect((await other.post('/v1/users', individual())).statusCode).toBe(201);
    const dispatcher = open();
    try {
      await dispatcher.fanOut(500, 0); // planned, none leased: 40 of one tenant's due before the other's one
      // Only these two tenants' deliveries are due (earlier tests' retries would come due meanwhile).
      await sql`update webhook_deliveries set status = 'failed' where status = 'pending' and endpoint_id not in (${busyEndpoint.id}, ${otherEndpoint.id})`.execute(ctx.db);
      const claimed = await dispatcher.claim(5);
      expect(claimed.filter((d) => d.endpoint_id === otherEndpoint.id)).toHaveLength(1);
      expect(claimed.filter((d) => d.endpoint_id === busyEndpoint.id)).toHaveLength(4);
      const leased = await ctx.db.selectFrom('webhook_deliveries').select(['endpoint_id', 'attempts'])
        .where('endpoint_id', 'in', [busyEndpoint.id, otherEndpoint.id]).where('attempts', '=', 1).execute();
      expect(leased).toHaveLength(5); // rows a claim locked and did not pick were left as they were
    } finally {
      await busy.patch(`/v1/webhook-endpoints/${busyEndpoint.id}`, { enabled: false });
      await other.patch(`/v1/webhook-endpoints/${otherEndpoint.id}`, { enabled: false });
      await dispatcher.close();
    }
  });

  it("five tenants with backlogs keep every sender busy, and another tenant's new webhook still leaves at once", async () => {
    // A receiver answering after 300 ms: nothing hangs, there is only a queue (a bulk import is enough).
    let held = 0;
    const slow = http.createServer((req, res) => {
      held++;
      req.resume();
      setTimeout(() => {
        held--;
        res.writeHead(204).end();
      }, 300);
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const slowUrl = `http://127.0.0.1:${(slow.address() as { port: number }).port}/hooks`;
    const busy: Array<{ tenantId: string; api: Client; endpoint: string }> = [];
    for (let i = 0; i < 5; i++) {
      const t = await createTenant(ctx.db);
      const api = client(ctx.app, t.ownerKey);
      busy.push({ tenantId: t.tenantId, api, endpoint: ((await api.post('/v1/webhook-endpoints', { url: slowUrl })).json() as { id: string }).id });
      await sql`with e as (
                  insert into events (tenant_id, id, type, user_id, data)
                  select ${t.tenantId}, 'evt_' || lpad(g::text, 26, '0'), 'user.created', null, '{}'::jsonb from generate_series(1, 150) g
                  returning seq, tenant_id)
                insert into event_outbox (seq, tenant_id) select seq, tenant_id from e`.execute(ctx.db);
    }
    const other = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    const fair = (await other.post('/v1/webhook-endpoints', { url: receiver.url })).json() as { id: string };
    const stop = startDispatcher(open(), { log: quiet });
    try {
      await until(() => held >= 45, 5000); // the 750 deliveries hold (nearly) every sender, for about 4.5 s
      const user = (await other.post('/v1/users', individual())).json() as { id: string };
      // Before: it waited behind the five backlogs (its delivery was never the oldest due).
      await until(() => receiver.received.some((r) => r.json.data.user_id === user.id), 1500);
    } finally {
      for (const b of busy) await b.api.patch(`/v1/webhook-endpoints/${b.endpoint}`, { enabled: false });
      await sql`update webhook_deliveries set status = 'failed' where status = 'pending' and endpoint_id in (${sql.join(busy.map((b) => b.endpoint))})`.execute(ctx.db);
      await other.patch(`/v1/webhook-endpoints/${fair.id}`, { enabled: false });
      await stop();
      await new Promise<void>((r) => slow.close(() => r()));
    }
  });

  it("five tenants whose receivers hang hold their shares only until their sends are slow: another tenant's webhook still leaves", async () => {
    // Five shares are every sender: before, the other tenant's webhook waited for the hung sends'
    // deadline (20 s here, 25 s deployed), and so did every later one of every tenant.
    tarpit.mostHeld = 0;
    const hung: Array<{ api: Client; endpoint: string }> = [];
    for (let i = 0; i < 5; i++) {
      const t = await createTenant(ctx.db);
      const api = client(ctx.app, t.ownerKey);
      hung.push({ api, endpoint: ((await api.post('/v1/webhook-endpoints', { url: tarpit.url })).json() as { id: string }).id });
      await sql`with e as (
                  insert into events (tenant_id, id, type, user_id, data)
                  select ${t.tenantId}, 'evt_' || lpad(g::text, 26, '0'), 'user.created', null, '{}'::jsonb from generate_series(1, ${TENANT_SENDS + 1}) g
                  returning seq, tenant_id)
                insert into event_outbox (seq, tenant_id) select seq, tenant_id from e`.execute(ctx.db);
    }
    const other = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    const fair = (await other.post('/v1/webhook-endpoints', { url: receiver.url })).json() as { id: string };
    const dispatcher = createDispatcher({
      db: ctx.db, keyring: ctx.keyring, targets: { allowHttp: true, allowPrivate: true }, log: quiet, sendDeadlineMs: 20_000, slowSendMs: 1000,
    });
    const stop = startDispatcher(dispatcher, { log: quiet, idleMs: 50, busyMs: 20 });
    try {
      await until(() => tarpit.holding === 5 * TENANT_SENDS, 5000); // every sender of the dispatcher
      const user = (await other.post('/v1/users', individual())).json() as { id: string };
      await until(() => receiver.received.some((r) => r.json.data.user_id === user.id), 4000);
      // A slow send gives its sender back, not its tenant's room: no tenant got an eleventh send.
      expect(tarpit.mostHeld).toBe(5 * TENANT_SENDS);
    } finally {
      for (const h of hung) await h.api.patch(`/v1/webhook-endpoints/${h.endpoint}`, { enabled: false });
      await sql`update webhook_deliveries set status = 'failed' where status = 'pending' and endpoint_id in (${sql.join(hung.map((h) => h.endpoint))})`.execute(ctx.db);
      await other.patch(`/v1/webhook-endpoints/${fair.id}`, { enabled: false });
      for (const sk of tarpit.sockets) sk.destroy();
      await stop();
    }
  });

  it('keeps a busy tenant\'s senders busy between rounds: 60 webhooks leave in one round, not one round per ten', async () => {
    const only = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    const e = (await only.post('/v1/webhook-endpoints', { url: receiver.url })).json() as { id: string };
    const users: string[] = [];
    for (let i = 0; i < 60; i++) users.push(((await only.post('/v1/users', individual())).json() as { id: string }).id);
    // Rounds a second apart: ten sends a round (its share) would take six seconds.
    const stop = startDispatcher(open(), { log: quiet, idleMs: 1000, busyMs: 1000 });
    try {
      await until(() => users.every((id) => receiver.received.some((r) => r.json.data.user_id === id)), 2500);
    } finally {
      await only.patch(`/v1/webhook-endpoints/${e.id}`, { enabled: false });
      await stop();
    }
    const done = await ctx.db.selectFrom('webhook_deliveries').select('status').where('endpoint_id', '=', e.id).execute();
    expect(done.map((d) => d.status)).toEqual(Array(60).fill('succeeded'));
  });

  // A raw server: every request gets `102 Processing` every 200 ms and nothing more, or a 200 whose
  // body comes a byte every 200 ms.
  it.each([
    ['answers 102 Processing for ever', 'info'],
    ['trickles its body a byte at a time', 'trickle'],
  ])('ends a send by its deadline when the receiver %s', async (_what, how) => {
    const timers = new Set<NodeJS.Timeout>();
    const sockets = new Set<Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.once('data', () => {
        if (how === 'trickle') socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n');
        const t = setInterval(() => socket.write(how === 'info' ? 'HTTP/1.1 102 Processing\r\n\r\n' : 'x'), 200);
        timers.add(t);
        socket.on('close', () => clearInterval(t));
        socket.on('error', () => clearInterval(t));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hooks`;
    const tenant = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    const e = (await tenant.post('/v1/webhook-endpoints', { url })).json() as { id: string };
    expect((await tenant.post('/v1/users', individual())).statusCode).toBe(201);
    const dispatcher = localDispatcher(ctx, { sendDeadlineMs: 1000 });
    const began = Date.now();
    try {
      await dispatcher.runOnce(); // waits for its sends: before, for ever
      expect(Date.now() - began).toBeLessThan(4000);
      const [d] = await ctx.db.selectFrom('webhook_deliveries').select(['id', 'status', 'attempts']).where('endpoint_id', '=', e.id).execute();
      expect(d!.attempts).toBe(1);
      const attempt = await ctx.db.selectFrom('webhook_attempts').select(['status_code', 'error', 'duration_ms']).where('delivery_id', '=', d!.id).executeTakeFirstOrThrow();
      expect(attempt.duration_ms).toBeGreaterThanOrEqual(900);
      if (how === 'info') {
        // No answer: a failed attempt, retried later.
        expect(attempt).toMatchObject({ status_code: null, error: 'no complete answer within 1 s' });
        expect(d!.status).toBe('pending');
      } else {
        // The status came before the deadline: that is the answer; the rest of the body is not waited for.
        expect(attempt).toMatchObject({ status_code: 200, error: null });
        expect(d!.status).toBe('succeeded');
      }
    } finally {
      await tenant.patch(`/v1/webhook-endpoints/${e.id}`, { enabled: false });
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
      await dispatcher.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
    expect(SEND_DEADLINE_MS).toBeLessThan(30_000); // under the lease, whatever the receiver does
  });

  // A name server that never answers. Before, the target check resolved names with getaddrinfo, which
  // holds one of libuv's four threads until the system resolver gives up (10 s and more) and cannot
  // be cancelled: a dozen sends to such a name held every thread, and every other tenant's lookups
  // and the process's file reads waited behind them. Names are now resolved through c-ares on the
  // event loop (ssrf.ts resolveHost), cancelled at the send's deadline.
  it('ends a send by its deadline when the endpoint\'s name server never answers, holding no thread and cancelling the lookup', async () => {
    const hole = dgram.createSocket('udp4');
    let queries = 0;
    hole.on('message', () => queries++);
    await new Promise<void>((r) => hole.bind(0, '127.0.0.1', () => r()));
    const dnsServers = [`127.0.0.1:${hole.address().port}`];
    const tenant = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    const e = (await tenant.post('/v1/webhook-endpoints', { url: 'https://hooks.slow-name.test/in' })).json() as { id: string };
    for (let i = 0; i < 12; i++) expect((await tenant.post('/v1/users', individual())).statusCode).toBe(201);
    const dispatcher = createDispatcher({ db: ctx.db, keyring: ctx.keyring, targets: { allowHttp: false, allowPrivate: false, dnsServers }, log: quiet, sendDeadlineMs: 1000 });
    const began = Date.now();
    try {
      const round = dispatcher.runOnce();
      // While twelve sends wait on the silent name server, the thread pool is free: a getaddrinfo
      // lookup and a file read answer at once.
      await new Promise((r) => setTimeout(r, 300));
      expect(queries).toBeGreaterThan(0);
      const t0 = Date.now();
      await Promise.all([dns.promises.lookup('localhost'), fs.readFile(new URL(import.meta.url))]);
      expect(Date.now() - t0).toBeLessThan(500);
      await round;
      expect(Date.now() - began).toBeLessThan(4000);
      const deliveries = await ctx.db.selectFrom('webhook_deliveries').select(['id', 'status', 'attempts']).where('endpoint_id', '=', e.id).execute();
      expect(deliveries).toHaveLength(12);
      for (const d of deliveries) expect(d).toMatchObject({ status: 'pending', attempts: 1 });
      const attempt = await ctx.db.selectFrom('webhook_attempts').select(['status_code', 'error']).where('delivery_id', '=', deliveries[0]!.id).executeTakeFirstOrThrow();
      expect(attempt).toEqual({ status_code: null, error: 'no complete answer within 1 s' });
      // Cancelled at the deadline: no query is sent again after it (unanswered, c-ares would retry after 2 s).
      const atDeadline = queries;
      await new Promise((r) => setTimeout(r, LOOKUP_TIMEOUT_MS + 500));
      expect(queries).toBe(atDeadline);
    } finally {
      await tenant.patch(`/v1/webhook-endpoints/${e.id}`, { enabled: false });
      await dispatcher.close();
      hole.close();
    }
  });
});
