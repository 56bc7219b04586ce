// One tenant's slow receivers must not hold back another tenant's webhooks. The attack: a tenant
// registers an endpoint that accepts connections and never answers (each send then waits out the 15 s
// header timeout), and makes enough events to fill every sender. Before the fix, a dispatcher round
// waited for its last send and gave the first ten deliveries it met all ten senders: the other
// tenant's webhooks left 15 s late, and every round after was held again.
import http from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDispatcher, startDispatcher, TENANT_SENDS } from '../src/workers/dispatcher.js';
import { client, createTenant, createTestContext, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';

let ctx: TestContext;
let receiver: Receiver;
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

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
    const dispatcher = createDispatcher({ db: ctx.db, keyring: ctx.keyring, targets: { allowHttp: true, allowPrivate: true }, log: quiet });
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
});
