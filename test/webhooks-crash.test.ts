// Crash test: a real `kyclo serve` doing status changes is killed with SIGKILL several times and
// restarted. Afterwards every committed change has exactly one event and at least one successful,
// correctly signed delivery; no event exists for a change that did not commit; duplicates (the
// price of at-least-once) share their webhook-id.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { client, createTenant, createTestContext, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';
import { cliEnv, startServer, type Server } from './helpers/processes.js';

let ctx: TestContext;
let receiver: Receiver;

beforeAll(async () => {
  ctx = await createTestContext();
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver.close();
  await ctx.close();
});

const TARGET_CHANGES = 1000;
const KILLS = 4;

describe('webhooks across crashes', () => {
  it(`${TARGET_CHANGES}+ status changes, ${KILLS} SIGKILLs: every committed change has one event and a verified delivery`, async () => {
    const { tenantId, ownerKey } = await createTenant(ctx.db);
    const api = client(ctx.app, ownerKey);
    const hook = (await api.post('/v1/webhook-endpoints', { url: receiver.url, event_types: ['user.status_changed'] })).json();
    const users: string[] = [];
    for (let i = 0; i < 40; i++) users.push((await api.post('/v1/users', individual())).json().id);

    const env = cliEnv({ DATABASE_URL: ctx.databaseUrl, PORT: '0', KYCLO_WEBHOOKS_ALLOW_HTTP: 'true', KYCLO_WEBHOOKS_ALLOW_PRIVATE: 'true' });
    let server: Server = await startServer(env);
    const committed = async () =>
      Number((await sql<{ n: string }>`select count(*) as n from status_changes where tenant_id = ${tenantId}`.execute(ctx.db)).rows[0]!.n);

    let stop = false;
    const load = async (worker: number) => {
      let i = worker;
      while (!stop) {
        const user = users[(i++ * 7) % users.length]!;
        // Either move may be refused (409, the user is already there): only committed moves count.
        const body = Math.random() < 0.5 ? { status: 'flagged', reason: 'aml_alert' } : { status: 'active', reason: 'review_cleared' };
        try {
          await fetch(`${server.baseUrl}/v1/users/${user}/status-changes`, {
            method: 'POST', headers: { authorization: `Bearer ${ownerKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
            signal: AbortSignal.timeout(5000),
          });
        } catch {
          await new Promise((r) => setTimeout(r, 50)); // the server is down or restarting
        }
      }
    };
    const workers = Array.from({ length: 8 }, (_, w) => load(w));
    for (let kill = 1; kill <= KILLS; kill++) {
      while ((await committed()) < (TARGET_CHANGES * kill) / (KILLS + 1)) await new Promise((r) => setTimeout(r, 100));
      await server.stop('SIGKILL');
      server = await startServer(env);
    }
    while ((await committed()) < TARGET_CHANGES) await new Promise((r) => setTimeout(r, 100));
    stop = true;
    await Promise.all(workers);

    // Let the restarted server's dispatcher finish, leases of killed processes included.
    const undelivered = async () =>
      Number((await sql<{ n: string }>`
        select count(*) as n from events e where e.tenant_id = ${tenantId} and e.type = 'user.status_changed'
        and not exists (select 1 from webhook_deliveries d where d.tenant_id = e.tenant_id and d.event_id = e.id and d.status = 'succeeded')`.execute(ctx.db)).rows[0]!.n);
    const deadline = Date.now() + 120_000;
    while ((await undelivered()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    await server.stop('SIGTERM');

    const changes = await ctx.db.selectFrom('status_changes').select('id').where('tenant_id', '=', tenantId).execute();
    const events = await ctx.db.selectFrom('events').select(['id', 'data']).where('tenant_id', '=', tenantId).where('type', '=', 'user.status_changed').execute();
    expect(changes.length).toBeGreaterThanOrEqual(TARGET_CHANGES);
    // One event per committed change, and none for a change that did not commit.
    const eventChangeIds = events.map((e) => (e.data as { status_change_id: string }).status_change_id).sort();
    expect(eventChangeIds).toEqual(changes.map((c) => c.id).sort());

    // Every event delivered at least once; every request signed correctly; duplicates share ids.
    const mine = receiver.received.filter((r) => r.json.type === 'user.status_changed');
    const byId = new Map<string, number>();
    for (const r of mine) byId.set(r.id, (byId.get(r.id) ?? 0) + 1);
    expect([...events.map((e) => e.id)].filter((id) => !byId.has(id))).toEqual([]);
    const valid = mine.filter((r) => receiver.verifies(r, hook.secret)).length;
    const duplicates = mine.length - byId.size;
    console.log(
      `crash test: ${changes.length} committed changes, ${events.length} events, ${mine.length} deliveries received, ` +
        `${byId.size} distinct webhook-ids, ${duplicates} duplicates (${((100 * duplicates) / byId.size).toFixed(2)} %), ` +
        `${((100 * valid) / mine.length).toFixed(1)} % signatures valid, ${KILLS} SIGKILLs`,
    );
    expect(valid).toBe(mine.length);
    for (const r of mine) expect(r.id).toBe(r.json.id);
  }, 300_000);
});

describe('kyclo worker', () => {
  it('delivers webhooks and seals the audit log on its own, then stops on SIGTERM with exit 0', async () => {
    const { spawn } = await import('node:child_process');
    const path = await import('node:path');
    const { tenantId, ownerKey } = await createTenant(ctx.db);
    const api = client(ctx.app, ownerKey);
    const hook = (await api.post('/v1/webhook-endpoints', { url: receiver.url, event_types: ['user.created'] })).json();
    const env = cliEnv({ DATABASE_URL: ctx.databaseUrl, KYCLO_WEBHOOKS_ALLOW_HTTP: 'true', KYCLO_WEBHOOKS_ALLOW_PRIVATE: 'true' });
    const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(import.meta.dirname, '../src/cli/main.ts'), 'worker'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    try {
      const user = (await api.post('/v1/users', individual())).json();
      const deadline = Date.now() + 30_000;
      const arrived = () => receiver.received.find((r) => r.json.type === 'user.created' && r.json.data.user_id === user.id);
      while (!arrived() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(receiver.verifies(arrived()!, hook.secret)).toBe(true);
      const unsealed = async () =>
        Number((await sql<{ n: string }>`select count(*) as n from audit_unsealed where tenant_id = ${tenantId}`.execute(ctx.db)).rows[0]!.n);
      while ((await unsealed()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await unsealed()).toBe(0);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 60_000);
});
