// The audit log is tamper-evident: sealed entries that are updated, deleted, swapped or backdated
// directly in SQL — by a superuser who can switch the append-only trigger off — are each detected.
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../src/db/database.js';
import { sealAuditLog } from '../src/modules/audit/chain.js';
import { verifyTenantChain as verifyChain } from '../src/modules/audit/verify.js';
import { client, createTenant, createTestContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { cliEnv, runCli } from './helpers/processes.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;
let superuser: Db;

beforeAll(async () => {
  ctx = await createTestContext();
  superuser = createDb(ctx.databaseUrl, { max: 1 });
});
const verifyTenantChain = (db: Db, tenant: string) =>
  verifyChain(db, tenant, { ...ctx.keyring.auditKeys });
afterAll(async () => {
  await superuser.destroy();
  await ctx.close();
});

/** A fresh tenant's worth of history: a few users, updated, flagged, then sealed. */
async function history(): Promise<Array<{ id: string; chain_seq: string }>> {
  for (let i = 0; i < 3; i++) {
    const u = (await api.post('/v1/users', individual())).json();
    await api.patch(`/v1/users/${u.id}`, { occupation: `job ${i}` });
    await api.post(`/v1/users/${u.id}/flag`, { reason: 'aml_alert' });
  }
  await sealAuditLog(ctx.db);
  return (await sql<{ id: string; chain_seq: string }>`
    select e.id, s.chain_seq::text as chain_seq from audit_seals s join audit_entries e on e.tenant_id = s.tenant_id and e.seq = s.entry_seq
    where s.tenant_id = ${tenantId} order by s.chain_seq`.execute(ctx.db)).rows;
}

/** Runs SQL with the append-only trigger switched off, as only a superuser can. */
async function tamper(statement: ReturnType<typeof sql>) {
  await superuser.transaction().execute(async (tx) => {
    await sql`set local session_replication_role = replica`.execute(tx);
    await statement.execute(tx);
  });
}

describe('the audit hash chain', () => {
  let entries: Array<{ id: string; chain_seq: string }>;
  beforeEach(async () => {
    // A tenant per case: a log wiped in place is no clean slate, it is a history removed (BROKEN).
    const t = await createTenant(ctx.db);
    ({ tenantId } = t);
    api = client(ctx.app, t.ownerKey);
    entries = await history();
    const result = await verifyTenantChain(ctx.db, tenantId);
    expect(result, JSON.stringify(result)).toMatchObject({ ok: true });
  });

  it('seals every entry into one chain that verifies, through the CLI too', async () => {
    const result = await verifyTenantChain(ctx.db, tenantId);
    expect(result, JSON.stringify(result)).toMatchObject({ ok: true, pending: 0 });
    const run = await runCli(['audit', 'verify', '--tenant', tenantId], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^OK ${tenantId}: \\d+ sealed, 0 not sealed yet`));
  });

  it('refuses UPDATE, DELETE and TRUNCATE of audit rows through the trigger', async () => {
    const id = entries[0]!.id;
    await expect(sql`update audit_entries set action = 'nothing' where id = ${id}`.execute(ctx.db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from audit_entries where id = ${id}`.execute(ctx.db)).rejects.toThrow(/append-only/);
    await expect(sql`truncate audit_entries`.execute(ctx.db)).rejects.toThrow(/append-only/);
    // Nor an unsealed one: entries are never updated (sealing writes audit_seals).
    const u = (await api.post('/v1/users', individual())).json();
    const fresh = await ctx.db.selectFrom('audit_entries').select('id').where('target_id', '=', u.id).executeTakeFirstOrThrow();
    await expect(sql`update audit_entries set action = 'x' where id = ${fresh.id}`.execute(ctx.db)).rejects.toThrow(/append-only/);
  });

  const tampers: Array<[string, (e: Array<{ id: string; chain_seq: string }>) => ReturnType<typeof sql>, (e: Array<{ chain_seq: string }>) => string]> = [
    ['an updated entry', (e) => sql`update audit_entries set changed_fields = '{"email"}' where id = ${e[3]!.id}`, (e) => e[3]!.chain_seq],
    ['a deleted entry', (e) => sql`delete from audit_entries where id = ${e[4]!.id}`, (e) => e[4]!.chain_seq],
    ['the last entry deleted', (e) => sql`delete from audit_entries where id = ${e.at(-1)!.id}`, (e) => e.at(-1)!.chain_seq],
    ['two entries swapped', (e) => sql`
      update audit_entries a set action = b.action, target_id = b.target_id, user_id = b.user_id, changed_fields = b.changed_fields, details = b.details
      from audit_entries b where (a.id, b.id) in ((${e[2]!.id}, ${e[5]!.id}), (${e[5]!.id}, ${e[2]!.id}))`, (e) => e[2]!.chain_seq],
    ['a backdated entry', (e) => sql`update audit_entries set occurred_at = occurred_at - interval '3 days' where id = ${e[6]!.id}`, (e) => e[6]!.chain_seq],
    ['an entry re-hashed without its successor', (e) => sql`
      with edited as (update audit_entries set actor_role = 'READER' where id = ${e[1]!.id})
      update audit_seals set hash = repeat('a', 64) where tenant_id = ${tenantId} and chain_seq = ${e[1]!.chain_seq}::bigint`, (e) => e[1]!.chain_seq],
  ];
  it.each(tampers)('detects %s, naming the first broken sequence number, and the CLI exits non-zero', async (_label, statement, brokenAt) => {
    await tamper(statement(entries));
    const result = await verifyTenantChain(ctx.db, tenantId);
    expect(result).toMatchObject({ ok: false, brokenAt: brokenAt(entries) });
    const run = await runCli(['audit', 'verify'], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`BROKEN ${tenantId} at sequence ${brokenAt(entries)}`);
  });
});
