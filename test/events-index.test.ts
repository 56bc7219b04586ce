// A user's events are found by index (migration 0013, events_user), never by walking the tenant's
// whole event log: the statements the GDPR export and the erasure sweep actually send are captured
// as they run (Kysely's query log), then EXPLAINed with their own parameters on a tenant holding
// 60,000 events of other users, analysed. Each must reach events through events_user and never
// through a Seq Scan (nor through the (tenant_id, seq) primary key, which is the same walk).
import pg from 'pg';
import { Kysely, PostgresDialect, sql, type CompiledQuery } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database, Db } from '../src/db/database.js';
import { createExportService } from '../src/modules/erasure/export.service.js';
import { createErasureService } from '../src/modules/erasure/erasure.service.js';
import { createLifecycleService } from '../src/modules/lifecycle/lifecycle.service.js';
import { openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;
let userId: string;
let pool: pg.Pool;
let logged: Db;
const captured: CompiledQuery[] = [];

const OTHER_EVENTS = 60_000;

beforeAll(async () => {
  ({ ctx, api, tenantId } = await openTenantContext());
  userId = (await api.post('/v1/users', individual())).json().id;
  for (let i = 0; i < 5; i++) await api.patch(`/v1/users/${userId}`, { occupation: `job ${i}` });
  // The tenant's log: many other users' events (and some without a user), as a busy tenant has.
  await sql`insert into events (tenant_id, id, type, user_id, data)
            select ${tenantId}, 'evt_bulk' || i, 'user.updated', case when i % 10 = 0 then null else 'usr_other' || (i % 5000) end,
                   '{"changed_fields": ["occupation"]}'::jsonb
              from generate_series(1, ${OTHER_EVENTS}) i`.execute(ctx.db);
  await sql`analyze events`.execute(ctx.db);
  // The same database through a Kysely that logs every statement it sends.
  pool = new pg.Pool({ connectionString: ctx.databaseUrl, max: 2 });
  logged = new Kysely<Database>({
    dialect: new PostgresDialect({ pool }),
    log: (e) => {
      if (e.level === 'query') captured.push(e.query);
    },
  });
});
afterAll(async () => {
  await logged?.destroy();
  await ctx.close();
});

/** The statements on events that name a user, as captured. */
const userEventStatements = () => captured.filter((q) => /\bfrom "events"|update "events"/.test(q.sql) && /"user_id"/.test(q.sql));

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}
const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)];

async function plan(q: CompiledQuery) {
  const res = await pool.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(`explain (format json) ${q.sql}`, q.parameters as unknown[]);
  const all = nodes(res.rows[0]!['QUERY PLAN'][0]!.Plan);
  return all.filter((n) => n['Relation Name'] === 'events' || (n['Index Name'] ?? '').startsWith('events'));
}

function expectIndexed(q: CompiledQuery, onEvents: PlanNode[]) {
  const where = `${q.sql}\n${JSON.stringify(onEvents.map((n) => [n['Node Type'], n['Index Name']]))}`;
  expect(onEvents.length, where).toBeGreaterThan(0);
  for (const n of onEvents) {
    expect(n['Node Type'], where).not.toBe('Seq Scan');
    if (n['Index Name']) expect(n['Index Name'], where).toBe('events_user');
  }
  expect(onEvents.some((n) => n['Index Name'] === 'events_user'), where).toBe(true);
}

describe('a user’s events are read and erased by index', () => {
  it('the GDPR export’s events statements use events_user', async () => {
    captured.length = 0;
    const doc = await createExportService({ db: logged, keyring: ctx.keyring }).export(
      { type: 'api_key', tenantId, keyId: null, role: 'OWNER', requestId: null, ip: null } as never, userId,
    );
    expect((doc.events as unknown[]).length).toBeGreaterThanOrEqual(6);
    const statements = userEventStatements();
    expect(statements.length).toBeGreaterThan(0);
    for (const q of statements) expectIndexed(q, await plan(q));
  });

  it('the erasure sweep’s events statements use events_user', async () => {
    expect((await api.post(`/v1/users/${userId}/erasure`, { requested_by: 'user' })).statusCode).toBe(202);
    await sql`update users set erasure_scheduled_for = now() - interval '1 day' where tenant_id = ${tenantId} and id = ${userId}`.execute(ctx.db);
    captured.length = 0;
    const erasure = createErasureService({ db: logged, lifecycle: createLifecycleService({ db: logged, keyring: ctx.keyring }), blobs: ctx.blobs, keyring: ctx.keyring });
    expect((await erasure.sweep()).erased).toEqual([userId]);
    const statements = userEventStatements();
    expect(statements.some((q) => /update "events"/.test(q.sql))).toBe(true);
    for (const q of statements) expectIndexed(q, await plan(q));
    // And it did what it says: the user's events lost their personal parts, the others are untouched.
    const left = await sql<{ n: string }>`select count(*) as n from events where tenant_id = ${tenantId} and user_id = ${userId} and personal_enc is not null`.execute(ctx.db);
    expect(Number(left.rows[0]!.n)).toBe(0);
  });
});
