// Database faults under load: the server's PostgreSQL connections are killed again and again
// (pg_terminate_backend). Every answer must be 2xx, 4xx or 503 with Retry-After — never a 500 —
// every committed change keeps its audit entry, and the server recovers without a restart.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { cliEnv, startServer, type Server } from './helpers/processes.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;
let ownerKey: string;
let server: Server;

beforeAll(async () => {
  ({ ctx, api, tenantId, ownerKey } = await openTenantContext());
  server = await startServer(cliEnv({ DATABASE_URL: ctx.databaseUrl, PORT: '0', KYCLO_SERVE_WORKERS: 'false' }));
}, 60_000);
afterAll(async () => {
  await server.stop('SIGTERM');
  await ctx.close();
});

describe('killed database connections', () => {
  it('never produce a 500; audit entries equal committed changes; the server recovers', async () => {
    const users: string[] = [];
    for (let i = 0; i < 20; i++) users.push((await api.post('/v1/users', individual())).json().id);
    const dbName = new URL(ctx.databaseUrl).pathname.slice(1);
    const killer = new pg.Client({ connectionString: ctx.databaseUrl });
    await killer.connect();
    const statuses = new Map<number, number>();
    const bad: string[] = [];
    let stop = false;
    let kills = 0;
    const load = async (w: number) => {
      for (let i = w; !stop; i += 8) {
        const user = users[i % users.length]!;
        const body = Math.random() < 0.5 ? { status: 'flagged', reason: 'aml_alert' } : { status: 'active', reason: 'review_cleared' };
        let res: Response;
        try {
          res = await fetch(`${server.baseUrl}/v1/users/${user}/status-changes`, {
            method: 'POST', headers: { authorization: `Bearer ${ownerKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
          });
        } catch (err) {
          bad.push(`no answer at all (did the server die?): ${(err as Error).message}`);
          stop = true;
          return;
        }
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const text = await res.text();
        if (res.status >= 500 && !(res.status === 503 && res.headers.get('retry-after'))) bad.push(`${res.status} ${text.slice(0, 200)}`);
      }
    };
    const workers = Array.from({ length: 8 }, (_, w) => load(w));
    const started = Date.now();
    while (Date.now() - started < 8000) {
      const r = await killer.query(
        'select count(pg_terminate_backend(pid)) as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
        [dbName],
      );
      kills += Number(r.rows[0].n);
      await new Promise((res) => setTimeout(res, 150));
    }
    stop = true;
    await Promise.all(workers);
    await killer.end();
    console.log(`db faults: ${kills} connections killed; answers ${JSON.stringify(Object.fromEntries(statuses))}`);
    if (bad.length) console.log([...new Set(server.output().match(/"message":"[^"]{0,160}/g) ?? [])].join('\n'));
    expect(bad).toEqual([]);
    expect(kills).toBeGreaterThan(10);
    expect((statuses.get(201) ?? 0) > 0 && (statuses.get(503) ?? 0) > 0).toBe(true);

    // Recovered, without a restart. Asked with a key the load did not use: fast 503s can take the
    // load's key past its per-minute limit (6,000), and a 429 would say nothing about recovery.
    const fresh = await createKey(ctx.db, tenantId, 'READER');
    const after = await fetch(`${server.baseUrl}/v1/users/${users[0]}`, { headers: { authorization: `Bearer ${fresh.key}` } });
    expect(after.status).toBe(200);

    // Every committed change has its audit entry and its event; nothing without one.
    const changes = await ctx.db.selectFrom('status_changes').select(['user_id', 'id']).where('tenant_id', '=', tenantId).execute();
    const audits = await ctx.db.selectFrom('audit_entries').select('id').where('tenant_id', '=', tenantId).where('action', '=', 'user.status_changed').execute();
    const events = await ctx.db.selectFrom('events').select('data').where('tenant_id', '=', tenantId).where('type', '=', 'user.status_changed').execute();
    expect(audits).toHaveLength(changes.length);
    expect(events.map((e) => (e.data as { status_change_id: string }).status_change_id).sort()).toEqual(changes.map((c) => c.id).sort());
  }, 120_000);
});
