// The audit log against the database's own superuser, attack by attack (issue: "an audit log nobody
// can rewrite quietly"). Each attack below was answered "OK" by `kyclo audit verify` before entries
// carried a MAC, heads could only move forward and signed checkpoints were kept outside the database.
import { checkContract } from './helpers/contract.js';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../src/db/database.js';
import { sealAuditLog } from '../src/modules/audit/chain.js';
import { checkpointSignatureValid, publicKeyFromBase64 } from '../src/modules/audit/authentication.js';
import { verifyAuditLog, verifyTenantChain, type VerifyOptions } from '../src/modules/audit/verify.js';
import { client, createTenant, createTestContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { cliEnv, runCli } from './helpers/processes.js';
import { startReceiver, localDispatcher } from './helpers/receiver.js';


let ctx: TestContext;
let superuser: Db;
let opts: VerifyOptions;
let tmp: string;

beforeAll(async () => {
  ctx = await createTestContext();
  superuser = createDb(ctx.databaseUrl, { max: 1 });
  opts = { ...ctx.keyring.auditKeys };
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'kyclo-audit-'));
});
afterAll(async () => {
  await superuser.destroy();
  await ctx.close();
  await fs.rm(tmp, { recursive: true, force: true });
});

/** A tenant with some history, sealed and checkpointed. */
async function tenantWithHistory(): Promise<{ tenantId: string; api: Client; keyId: string }> {
  const t = await createTenant(ctx.db);
  const api = client(ctx.app, t.ownerKey);
  for (let i = 0; i < 3; i++) {
    const u = (await api.post('/v1/users', individual())).json();
    await api.patch(`/v1/users/${u.id}`, { occupation: `job ${i}` });
  }
  const report = await sealAuditLog(ctx.db);
  expect(report.failures.filter((f) => f.tenantId === t.tenantId)).toEqual([]);
  expect(await verifyTenantChain(ctx.db, t.tenantId, opts)).toMatchObject({ ok: true, pending: 0 });
  return { tenantId: t.tenantId, api, keyId: t.ownerKeyId };
}

/** SQL as a superuser who switched every trigger off (session_replication_role = replica). */
async function tamper(statement: ReturnType<typeof sql>) {
  await superuser.transaction().execute(async (tx) => {
    await sql`set local session_replication_role = replica`.execute(tx);
    await statement.execute(tx);
  });
}

const head = async (tenantId: string) =>
  (await sql<{ chain_seq: string; hash: string }>`select chain_seq::text as chain_seq, hash from audit_heads where tenant_id = ${tenantId}`.execute(ctx.db)).rows[0]!;
const chainHash = async (tenantId: string, seq: number | string) =>
  (await sql<{ hash: string }>`select hash from audit_seals where tenant_id = ${tenantId} and chain_seq = ${String(seq)}::bigint`.execute(ctx.db)).rows[0]!.hash;
/** The seal of each entry named (null: not sealed), in the order asked. */
const sealsOf = async (ids: string[]) => {
  const rows = (await sql<{ id: string; hash: string | null }>`
    select e.id, s.hash from audit_entries e left join audit_seals s on s.tenant_id = e.tenant_id and s.entry_seq = e.seq
    where e.id = any(${ids}::text[])`.execute(ctx.db)).rows;
  return ids.map((id) => rows.find((r) => r.id === id)?.hash ?? null);
};
/** The tenant's entries waiting in the sealing queue. */
const queued = async (tenantId: string) =>
  (await sql<{ id: string }>`
    select e.id from audit_unsealed u join audit_entries e on e.tenant_id = u.tenant_id and e.seq = u.seq
    where u.tenant_id = ${tenantId} order by u.seq`.execute(ctx.db)).rows.map((r) => r.id);
/** Removes the entries sealed past `keep` and their seals, as a superuser would to cut a tail. */
const cutTail = async (tenantId: string, keep: bigint) => {
  await tamper(sql`
    delete from audit_entries e using audit_seals s
    where s.tenant_id = ${tenantId} and e.tenant_id = s.tenant_id and e.seq = s.entry_seq and s.chain_seq > ${keep.toString()}::bigint`);
  await tamper(sql`delete from audit_seals where tenant_id = ${tenantId} and chain_seq > ${keep.toString()}::bigint`);
};

/** What an auditor keeps: the CLI's NDJSON, written to a file. */
async function keptCheckpoints(tenantId?: string): Promise<string> {
  const run = await runCli(['audit', 'checkpoints', ...(tenantId ? ['--tenant', tenantId] : [])], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
  expect(run.code, run.stderr).toBe(0);
  const file = path.join(tmp, `kept-${crypto.randomUUID()}.ndjson`);
  await fs.writeFile(file, run.stdout);
  return file;
}

describe('the audit log against a database superuser', () => {
  it('refuses to move a head backwards, delete or truncate heads and checkpoints (triggers on)', async () => {
    const { tenantId } = await tenantWithHistory();
    await expect(sql`update audit_heads set chain_seq = 1, hash = 'x' where tenant_id = ${tenantId}`.execute(ctx.db)).rejects.toThrow(/only move forward/);
    await expect(sql`delete from audit_heads where tenant_id = ${tenantId}`.execute(ctx.db)).rejects.toThrow(/only move forward/);
    await expect(sql`truncate audit_heads`.execute(ctx.db)).rejects.toThrow(/append-only/);
    await expect(sql`update audit_checkpoints set hash = 'x' where tenant_id = ${tenantId}`.execute(ctx.db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from audit_checkpoints where tenant_id = ${tenantId}`.execute(ctx.db)).rejects.toThrow(/append-only/);
    await expect(sql`insert into audit_legacy (tenant_id, sealed_upto, unsealed_ids) values (${tenantId}, 1000000, '{}')`.execute(ctx.db)).rejects.toThrow(/append-only/);
    // Entries are never updated, not even to seal them (migration 0016); seals are append-only.
    const u = (await client(ctx.app, (await createTenant(ctx.db)).ownerKey).post('/v1/users', individual())).json();
    const fresh = await ctx.db.selectFrom('audit_entries').select('id').where('target_id', '=', u.id).executeTakeFirstOrThrow();
    await expect(sql`update audit_entries set action = 'user.nothing' where id = ${fresh.id}`.execute(ctx.db)).rejects.toThrow(/append-only/);
    await expect(sql`update audit_entries set action = action where id = ${fresh.id}`.execute(ctx.db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from audit_entries where id = ${fresh.id}`.execute(ctx.db)).rejects.toThrow(/append-only/);
    await expect(sql`update audit_seals set hash = ${'a'.repeat(64)} where tenant_id = ${tenantId}`.execute(ctx.db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from audit_seals where tenant_id = ${tenantId}`.execute(ctx.db)).rejects.toThrow(/append-only/);
    await expect(sql`truncate audit_seals`.execute(ctx.db)).rejects.toThrow(/append-only/);
  });

  it('a head rewound with the triggers off is BROKEN: entries are sealed past it', async () => {
    const { tenantId } = await tenantWithHistory();
    await tamper(sql`update audit_heads set chain_seq = 2, hash = ${await chainHash(tenantId, 2)} where tenant_id = ${tenantId}`);
    const r = await verifyTenantChain(ctx.db, tenantId, opts);
    expect(r).toMatchObject({ ok: false, brokenAt: '3' });
    expect(r.ok || r.reason).toMatch(/head was moved back/);
  });

  it('the last entries deleted and the head copied back: the signed checkpoint in the database says BROKEN; with those deleted too, the kept file does', async () => {
    const { tenantId } = await tenantWithHistory();
    const kept = await keptCheckpoints(tenantId);
    const h = await head(tenantId);
    const keep = BigInt(h.chain_seq) - 2n;
    await cutTail(tenantId, keep);
    await tamper(sql`update audit_heads set chain_seq = ${keep.toString()}::bigint, hash = ${await chainHash(tenantId, keep.toString())} where tenant_id = ${tenantId}`);
    const r = await verifyTenantChain(ctx.db, tenantId, opts);
    expect(r).toMatchObject({ ok: false, brokenAt: (keep + 1n).toString() });
    expect(r.ok || r.reason).toMatch(/checkpoint .* signed it up to/);

    await tamper(sql`delete from audit_checkpoints where tenant_id = ${tenantId}`);
    // What the database alone cannot prove (documented): with its checkpoints gone, it looks whole...
    expect(await verifyTenantChain(ctx.db, tenantId, opts)).toMatchObject({ ok: true });
    // ...but not to the checkpoints an auditor kept.
    const run = await runCli(['audit', 'verify', '--tenant', tenantId, '--checkpoints', kept], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(new RegExp(`BROKEN ${tenantId} at sequence ${keep + 1n}: the chain ends at ${keep} but the kept checkpoint`));
  });

  it("a tenant's entries and head deleted together are BROKEN; a tenant deleted whole is BROKEN against the kept checkpoints", async () => {
    const { tenantId } = await tenantWithHistory();
    await tamper(sql`delete from audit_entries where tenant_id = ${tenantId}`);
    await tamper(sql`delete from audit_seals where tenant_id = ${tenantId}`);
    await tamper(sql`delete from audit_heads where tenant_id = ${tenantId}`);
    await tamper(sql`delete from audit_checkpoints where tenant_id = ${tenantId}`);
    const r = await verifyTenantChain(ctx.db, tenantId, opts);
    expect(r).toMatchObject({ ok: false });
    expect(r.ok || r.reason).toMatch(/has no audit entries: its creation is always audited/);

    const other = await tenantWithHistory();
    const kept = await keptCheckpoints(other.tenantId);
    for (const table of ['audit_entries', 'audit_seals', 'audit_unsealed', 'audit_heads', 'audit_checkpoints', 'events', 'users', 'user_keys', 'api_keys', 'tenants']) {
      await tamper(sql`delete from ${sql.table(table)} where ${sql.ref(table === 'tenants' ? 'id' : 'tenant_id')} = ${other.tenantId}`);
    }
    const run = await runCli(['audit', 'verify', '--checkpoints', kept], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`BROKEN ${other.tenantId}: the kept checkpoints name this tenant, but the database no longer has it`);
  });

  // Both answered OK before: the chain's links, hashes and MACs hold; what was missing is that a
  // tenant's history must begin with its own creation.
  it("a tenant's history wiped with the triggers off and its head left at genesis is BROKEN: no creation sealed or waiting", async () => {
    const fresh = await createTenant(ctx.db);
    // A legitimate tenant with nothing sealed yet: its creation waits first in the queue.
    expect(await verifyTenantChain(ctx.db, fresh.tenantId, opts)).toMatchObject({ ok: true, sealed: 0 });
    const { tenantId } = await tenantWithHistory();
    for (const table of ['audit_entries', 'audit_seals', 'audit_unsealed', 'audit_checkpoints']) {
      await tamper(sql`delete from ${sql.table(table)} where tenant_id = ${tenantId}`);
    }
    await tamper(sql`update audit_heads set chain_seq = 0, hash = ${'0'.repeat(64)} where tenant_id = ${tenantId}`);
    const r = await verifyTenantChain(ctx.db, tenantId, opts);
    expect(r).toMatchObject({ ok: false, sealed: 0 });
    expect(r.ok || r.reason).toMatch(/has no audit entries: its creation is always audited/);
  });

  it("a tenant's history wiped whole and chained afresh from its next write is BROKEN: position 1 is not its creation, and the API serves BROKEN", async () => {
    const { tenantId, api } = await tenantWithHistory();
    const userId = (await api.post('/v1/users', individual())).json().id as string;
    await sealAuditLog(ctx.db);
    for (const table of ['audit_entries', 'audit_seals', 'audit_unsealed', 'audit_heads', 'audit_checkpoints']) {
      await tamper(sql`delete from ${sql.table(table)} where tenant_id = ${tenantId}`);
    }
    await api.post(`/v1/users/${userId}/suspend`, { reason: 'fraud_suspected' });
    const waiting = await queued(tenantId);
    expect(waiting).toHaveLength(1);
    // Before sealing: the first entry waiting is not the tenant's creation.
    expect(await verifyTenantChain(ctx.db, tenantId, opts)).toMatchObject({ ok: false, sealed: 0, entryId: waiting[0] });
    // The sealer re-creates the head and chains the write at position 1.
    expect((await sealAuditLog(ctx.db)).failures.filter((f) => f.tenantId === tenantId)).toEqual([]);
    const r = await verifyTenantChain(ctx.db, tenantId, opts);
    expect(r).toMatchObject({ ok: false, sealed: 0, brokenAt: '1', entryId: waiting[0] });
    expect(r.ok || r.reason).toMatch(/the chain begins with entry .* \(user\.status_changed\), not with the tenant's creation/);
    expect((await runCli(['audit', 'verify', '--tenant', tenantId], cliEnv({ DATABASE_URL: ctx.databaseUrl }))).code).toBe(1);
    expect((await api.get('/v1/audit/verification')).json().verification).toMatchObject({ ok: false, broken_at: '1', authentic: true });
  });

  it('a genuine entry copied whole under its own id (unique index dropped) is chained by the sealer, but verify is BROKEN and names the id', async () => {
    const { tenantId } = await tenantWithHistory();
    const victim = (await sql<{ id: string; seq: string }>`
      select id, seq::text as seq from audit_entries where tenant_id = ${tenantId} and action = 'user.updated' limit 1`.execute(ctx.db)).rows[0]!;
    await tamper(sql`drop index audit_entries_id`);
    try {
      await tamper(sql`
        with e as (
          insert into audit_entries (tenant_id, id, occurred_at, actor_type, actor_key_id, actor_role, action, outcome, target_type, target_id,
                                     user_id, changed_fields, request_id, ip, details, personal_enc, mac)
          select tenant_id, id, occurred_at, actor_type, actor_key_id, actor_role, action, outcome, target_type, target_id,
                 user_id, changed_fields, request_id, ip, details, personal_enc, mac
            from audit_entries where tenant_id = ${tenantId} and id = ${victim.id}
          returning tenant_id, seq
        ) insert into audit_unsealed (tenant_id, seq) select tenant_id, seq from e`);
      expect(await sealAuditLog(ctx.db)).toMatchObject({ rejected: 0, failures: [] });
      const sealedCopies = (await sql<{ n: string }>`
        select count(*)::text as n from audit_entries e join audit_seals s on s.tenant_id = e.tenant_id and s.entry_seq = e.seq
        where e.tenant_id = ${tenantId} and e.id = ${victim.id}`.execute(ctx.db)).rows[0]!.n;
      expect(sealedCopies).toBe('2');
      const r = await verifyTenantChain(ctx.db, tenantId, opts);
      expect(r).toMatchObject({ ok: false, entryId: victim.id });
      expect(r.ok || r.reason).toMatch(new RegExp(`entry ${victim.id} is in the log 2 times`));
    } finally {
      // The rest of the file runs with the index as deployed.
      await tamper(sql`delete from audit_entries where tenant_id = ${tenantId} and id = ${victim.id} and seq > ${victim.seq}::bigint`);
      await tamper(sql`create unique index audit_entries_id on audit_entries (tenant_id, id)`);
    }
  });

  it('a plain INSERT of a backdated entry under another key, queued for sealing, is never chained, and verify names it', async () => {
    const { tenantId, api, keyId } = await tenantWithHistory();
    const genuine = await ctx.db.selectFrom('audit_entries').select(['mac', 'user_id']).where('tenant_id', '=', tenantId).where('action', '=', 'user.updated').executeTakeFirstOrThrow();
    const forged = ['aud_01F0RGEDN0MAC0000000000000', 'aud_01F0RGEDC0P1EDMAC000000000'];
    for (const [i, id] of forged.entries()) {
      await sql`
        with e as (
          insert into audit_entries (tenant_id, id, occurred_at, actor_type, actor_key_id, actor_role, action, outcome, target_type, target_id, user_id, mac)
          values (${tenantId}, ${id}, now() - interval '400 days', 'api_key', ${keyId}, 'OWNER', 'user.status_changed', 'applied', 'user',
                  ${genuine.user_id}, ${genuine.user_id}, ${i === 0 ? null : genuine.mac})
          returning tenant_id, seq
        )
        insert into audit_unsealed (tenant_id, seq) select tenant_id, seq from e`.execute(ctx.db);
    }
    await api.post('/v1/users', individual()); // genuine work goes on around the forgery
    const report = await sealAuditLog(ctx.db);
    expect(report).toMatchObject({ rejected: 2, failures: [] });
    expect(await sealsOf(forged)).toEqual([null, null]);
    const rejected = await sql<{ entry_id: string; reason: string }>`select entry_id, reason from audit_rejections where tenant_id = ${tenantId} order by entry_id`.execute(ctx.db);
    expect(rejected.rows.map((r) => r.entry_id).sort()).toEqual([...forged].sort());
    // The genuine entry written meanwhile was sealed past them.
    expect((await queued(tenantId)).sort()).toEqual([...forged].sort());
    // The API marks them: before, a forged entry was listed exactly like a genuine one.
    const listed = (await api.get('/v1/audit-events?limit=100')).json().data as Array<{ id: string; sealed: boolean }>;
    expect(listed.filter((e) => !e.sealed).map((e) => e.id).sort()).toEqual([...forged].sort());
    expect(listed.filter((e) => e.sealed).length).toBeGreaterThan(5);
    // So does the person's GDPR export, which listed them unmarked.
    const exported = (await api.get(`/v1/users/${genuine.user_id}/export`)).json().audit_entries as Array<{ id: string; sealed: boolean; action: string }>;
    // (The export lists its own entry too, written a moment before and not sealed yet.)
    expect(exported.filter((e) => !e.sealed && e.action !== 'user.exported').map((e) => e.id).sort()).toEqual([...forged].sort());
    expect(exported.filter((e) => e.sealed).length).toBeGreaterThan(0);
    const r = await verifyTenantChain(ctx.db, tenantId, opts);
    expect(r).toMatchObject({ ok: false });
    expect(forged).toContain(r.ok ? '' : r.entryId);
    expect(r.ok || r.reason).toMatch(/MAC does not verify/);
    const run = await runCli(['audit', 'verify', '--tenant', tenantId], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/BROKEN .*\(entry aud_01F0RGED.*MAC does not verify/);
  });

  it('the last verify run is served per tenant (GET /v1/audit/verification), MACed: a superuser who turns BROKEN into OK is shown as not authentic', async () => {
    const { tenantId, api } = await tenantWithHistory();
    expect((await api.get('/v1/audit/verification')).json()).toEqual({ verification: null });
    const ok = await runCli(['audit', 'verify', '--tenant', tenantId], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
    expect(ok.code).toBe(0);
    expect((await api.get('/v1/audit/verification')).json().verification).toMatchObject({ ok: true, sealed: expect.any(Number), pending: 0, kept_checkpoints: 0, reason: null, authentic: true });
    // Break the chain, run again: the BROKEN result replaces the OK one, with where it broke.
    const target = (await sql<{ id: string }>`
      select e.id from audit_seals s join audit_entries e on e.tenant_id = s.tenant_id and e.seq = s.entry_seq
      where s.tenant_id = ${tenantId} and s.chain_seq = 2`.execute(ctx.db)).rows[0]!;
    await tamper(sql`update audit_entries set actor_role = 'READER' where id = ${target.id}`);
    expect((await runCli(['audit', 'verify', '--tenant', tenantId], cliEnv({ DATABASE_URL: ctx.databaseUrl }))).code).toBe(1);
    const broken = (await api.get('/v1/audit/verification')).json().verification;
    expect(broken).toMatchObject({ ok: false, broken_at: '2', authentic: true });
    expect(broken.reason).toMatch(/does not match its hash|MAC/);
    // The superuser rewrites the record to OK: it is served, but not as authentic.
    await tamper(sql`update audit_verifications set ok = true, reason = null, broken_at = null, entry_id = null where tenant_id = ${tenantId}`);
    expect((await api.get('/v1/audit/verification')).json().verification).toMatchObject({ ok: true, authentic: false });
  });

  it('a sealed entry edited (actor changed, MAC replaced) is BROKEN: re-hashing the chain needs the chain key, and with it the MAC still fails', async () => {
    const { tenantId } = await tenantWithHistory();
    const target = (await sql<{ id: string }>`
      select e.id from audit_seals s join audit_entries e on e.tenant_id = s.tenant_id and e.seq = s.entry_seq
      where s.tenant_id = ${tenantId} and s.chain_seq = 2`.execute(ctx.db)).rows[0]!;
    await tamper(sql`update audit_entries set actor_role = 'READER', mac = ${crypto.randomBytes(32).toString('base64url')} where id = ${target.id}`);
    const { entryHash, ENTRY_COLUMNS, GENESIS } = await import('../src/modules/audit/chain.js');
    const rehash = async (key: Buffer | null) => {
      const all = (await sql`
        select ${ENTRY_COLUMNS} from audit_seals s join audit_entries e on e.tenant_id = s.tenant_id and e.seq = s.entry_seq
        where s.tenant_id = ${tenantId} order by s.chain_seq`.execute(ctx.db)).rows;
      let prev = GENESIS;
      for (const e of all as Array<{ id: string; chain_seq: string }>) {
        const h = entryHash(e as never, e.chain_seq, prev, key);
        await tamper(sql`update audit_seals set prev_hash = ${prev}, hash = ${h} where tenant_id = ${tenantId} and chain_seq = ${e.chain_seq}::bigint`);
        prev = h;
      }
      await tamper(sql`update audit_heads set hash = ${prev} where tenant_id = ${tenantId}`);
    };
    // The hashing scheme is public, the key is not: a chain recomputed with plain SHA-256 breaks at its first entry.
    await rehash(null);
    expect(await verifyTenantChain(ctx.db, tenantId, opts)).toMatchObject({ ok: false, brokenAt: '1', reason: 'its content does not match its hash' });
    // Even re-hashed with the real chain key (a sealer made to cooperate), the edited entry's MAC gives it away.
    await rehash(ctx.keyring.auditKeys.chainKey);
    const r = await verifyTenantChain(ctx.db, tenantId, opts);
    expect(r).toMatchObject({ ok: false, entryId: target.id });
    expect(r.ok || r.reason).toMatch(/MAC does not verify/);
  });

  it('a MAC-less entry inserted at a chosen low position (OVERRIDING SYSTEM VALUE) is not taken for a legacy entry', async () => {
    const { tenantId, keyId } = await tenantWithHistory();
    for (const seq of [1, -5]) {
      await sql`
        with e as (
          insert into audit_entries (tenant_id, seq, id, occurred_at, actor_type, actor_key_id, actor_role, action, outcome, target_type)
          overriding system value
          values (${tenantId}, ${seq}, ${`aud_01LOWSEQ${String(seq + 10).padStart(18, '0')}`}, now() - interval '2 years', 'api_key', ${keyId}, 'OWNER', 'user.closed', 'applied', 'user')
          returning tenant_id, seq
        )
        insert into audit_unsealed (tenant_id, seq) select tenant_id, seq from e`.execute(ctx.db);
    }
    const report = await sealAuditLog(ctx.db);
    expect(report.rejected).toBeGreaterThanOrEqual(2);
    const closed = await ctx.db.selectFrom('audit_entries').select('id').where('tenant_id', '=', tenantId).where('action', '=', 'user.closed').execute();
    expect(await sealsOf(closed.map((c) => c.id))).toEqual([null, null]);
    const r = await verifyTenantChain(ctx.db, tenantId, opts);
    expect(r).toMatchObject({ ok: false });
    expect(r.ok || r.reason).toMatch(/MAC does not verify/);
  });

  it('a row planted in audit_rejections does not hide a genuine entry from the sealer', async () => {
    const { tenantId, api } = await tenantWithHistory();
    const u = (await api.post('/v1/users', individual())).json();
    const entry = await ctx.db.selectFrom('audit_entries').select('id').where('tenant_id', '=', tenantId).where('target_id', '=', u.id).executeTakeFirstOrThrow();
    await sql`insert into audit_rejections (tenant_id, entry_id, reason) values (${tenantId}, ${entry.id}, 'planted')`.execute(ctx.db);
    await sealAuditLog(ctx.db);
    expect((await sealsOf([entry.id]))[0]).not.toBeNull();
  });

  it('an entry taken off the sealing queue, or written around it, is BROKEN: never sealed, never waiting', async () => {
    const { tenantId, api, keyId } = await tenantWithHistory();
    const u = (await api.post('/v1/users', individual())).json();
    const taken = await ctx.db.selectFrom('audit_entries').select('id').where('tenant_id', '=', tenantId).where('target_id', '=', u.id).executeTakeFirstOrThrow();
    // The queue is a work list, not a protected table: any role that can write may delete from it.
    await sql`delete from audit_unsealed where tenant_id = ${tenantId}`.execute(ctx.db);
    await sealAuditLog(ctx.db);
    expect(await sealsOf([taken.id])).toEqual([null]);
    let r = await verifyTenantChain(ctx.db, tenantId, opts);
    expect(r).toMatchObject({ ok: false, entryId: taken.id });
    expect(r.ok || r.reason).toMatch(/neither sealed nor waiting/);

    const other = await tenantWithHistory();
    await sql`
      insert into audit_entries (tenant_id, id, actor_type, actor_key_id, action, outcome, target_type)
      values (${other.tenantId}, 'aud_01AROUNDTHEQUEUE000000000', 'api_key', ${keyId}, 'user.closed', 'applied', 'user')`.execute(ctx.db);
    expect(await queued(other.tenantId)).toEqual([]);
    r = await verifyTenantChain(ctx.db, other.tenantId, opts);
    expect(r).toMatchObject({ ok: false, entryId: 'aud_01AROUNDTHEQUEUE000000000' });
  });

  it('a seal planted at position 0 (plain INSERT, triggers on) accounts for no forged entry: verify says BROKEN', async () => {
    const { tenantId, keyId } = await tenantWithHistory();
    const user = await ctx.db.selectFrom('audit_entries').select('user_id').where('tenant_id', '=', tenantId).where('action', '=', 'user.updated').executeTakeFirstOrThrow();
    // A backdated entry with a junk MAC, no queue row, and a seal row at chain position 0 naming it.
    await sql`
      with e as (
        insert into audit_entries (tenant_id, id, occurred_at, actor_type, actor_key_id, actor_role, action, outcome, target_type, target_id, user_id, mac)
        values (${tenantId}, 'aud_01PLANTEDSEAL00000000000', now() - interval '400 days', 'api_key', ${keyId}, 'OWNER', 'user.status_changed', 'applied', 'user',
                ${user.user_id}, ${user.user_id}, 'junk')
        returning tenant_id, seq
      )
      insert into audit_seals (tenant_id, chain_seq, entry_seq, prev_hash, hash) select tenant_id, 0, seq, 'x', 'x' from e`.execute(ctx.db);
    // Before, the entry counted as sealed and was never hashed nor MAC-checked: OK, exit 0.
    const r = await verifyTenantChain(ctx.db, tenantId, opts);
    expect(r).toMatchObject({ ok: false, brokenAt: '0' });
    expect(r.ok || r.reason).toMatch(/a seal at position 0 .* lies outside the chain/);
    const run = await runCli(['audit', 'verify', '--tenant', tenantId], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
    expect(run.code).toBe(1);
  });

  it('queue rows naming no entry neither stop the sealing of the entries behind them nor pass verify', async () => {
    const { tenantId, api } = await tenantWithHistory();
    // More orphan queue rows than a sealing round reads, ahead of every genuine entry (plain INSERT, triggers on).
    await sql`insert into audit_unsealed (tenant_id, seq) select ${tenantId}, g from generate_series(-1500, -1) g`.execute(ctx.db);
    const u = (await api.post('/v1/users', individual())).json();
    const genuine = await ctx.db.selectFrom('audit_entries').select('id').where('tenant_id', '=', tenantId).where('target_id', '=', u.id).executeTakeFirstOrThrow();
    const report = await sealAuditLog(ctx.db, { batch: 1000 });
    expect(report.failures).toEqual([]);
    // Before, a page of orphans read as an empty queue: the genuine entry was never sealed, and no one said so.
    expect(await sealsOf([genuine.id])).not.toEqual([null]);
    const r = await verifyTenantChain(ctx.db, tenantId, opts);
    expect(r).toMatchObject({ ok: false });
    expect(r.ok || r.reason).toMatch(/the sealing queue names entry -1500 of the log, which does not exist/);
  });

  it('one conflicting row stops only its own tenant: the others are sealed, the failure is counted, /readyz and /metrics say so, verify fails', async () => {
    const stuck = await tenantWithHistory();
    const fine = await tenantWithHistory();
    const h = await head(stuck.tenantId);
    // A seal planted at the next chain position: sealing that tenant now fails on the primary key.
    // Before, that failure ended the whole round, so no tenant after it was sealed.
    const planted = (BigInt(h.chain_seq) + 1n).toString();
    await sql`
      insert into audit_seals (tenant_id, chain_seq, entry_seq, prev_hash, hash)
      values (${stuck.tenantId}, ${planted}::bigint, -1, ${h.hash}, ${'f'.repeat(64)})`.execute(ctx.db);
    await stuck.api.post('/v1/users', individual());
    await fine.api.post('/v1/users', individual());

    // A process that runs the sealer, as `kyclo serve` does.
    const { buildApp } = await import('../src/app.js');
    const server = await buildApp({
      db: ctx.db, keyring: ctx.keyring, logLevel: 'silent', blobs: ctx.blobs,
      background: { retentionIntervalSeconds: 3600, checkpointEveryMs: 0 },
    });
    checkContract(server);
    try {
      await expect.poll(async () => (await server.inject({ url: '/readyz' })).json().audit_sealer?.failures_total ?? 0, { timeout: 10_000 }).toBeGreaterThan(0);
      expect(await queued(fine.tenantId)).toEqual([]);
      const stuckUnsealed = await queued(stuck.tenantId);
      expect(stuckUnsealed.length).toBeGreaterThanOrEqual(1);

      const ready = await server.inject({ url: '/readyz' });
      expect(ready.statusCode).toBe(200);
      const sealer = ready.json().audit_sealer;
      expect(sealer).toMatchObject({ state: 'stuck' });
      // Said without naming the tenant: /readyz answers anyone, and the console shows it to every tenant.
      expect(sealer.problems.join(' ')).toContain('sealing fails for 1 tenant(s)');
      expect(ready.body).not.toContain(stuck.tenantId);
      expect(sealer.unsealed_entries).toBeGreaterThanOrEqual(1);

      const metrics = (await server.inject({ url: '/metrics' })).body;
      const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
      expect(gauge('kyclo_audit_seal_failures_total')).toBeGreaterThan(0);
      expect(gauge('kyclo_audit_unsealed_entries')).toBeGreaterThanOrEqual(1);
      expect(gauge('kyclo_audit_oldest_unsealed_seconds')).toBeGreaterThanOrEqual(0);
      console.log(`stuck sealer: ${gauge('kyclo_audit_unsealed_entries')} unsealed, oldest ${gauge('kyclo_audit_oldest_unsealed_seconds').toFixed(1)} s, ${gauge('kyclo_audit_seal_failures_total')} tenant-round failures`);
    } finally {
      await server.close();
    }
    const results = await verifyAuditLog(ctx.db, { ...opts, maxUnsealedAgeSeconds: 0 });
    expect(results.find((r) => r.tenantId === stuck.tenantId)).toMatchObject({ ok: false, brokenAt: planted });
    expect(results.find((r) => r.tenantId === fine.tenantId)).toMatchObject({ ok: true });
  });

  it('entries left unsealed past the threshold fail verify (non-zero), whatever else holds', async () => {
    const { tenantId, api } = await tenantWithHistory();
    await api.post('/v1/users', individual());
    const fresh = await verifyTenantChain(ctx.db, tenantId, opts);
    expect(fresh).toMatchObject({ ok: true, pending: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    const late = await verifyTenantChain(ctx.db, tenantId, { ...opts, maxUnsealedAgeSeconds: 1 });
    expect(late).toMatchObject({ ok: false });
    expect(late.ok || late.reason).toMatch(/waited more than 1 s to be sealed/);
    const run = await runCli(['audit', 'verify', '--tenant', tenantId, '--max-unsealed-age', '1'], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/sealing is stuck/);
  });
});

describe('signed checkpoints, published for auditors', () => {
  it('each sealing round signs the new head: the API, the audit.checkpoint event and the CLI carry the same verifiable checkpoint', async () => {
    const { tenantId, api } = await tenantWithHistory();
    const h = await head(tenantId);
    const list = await api.get('/v1/audit/checkpoints');
    expect(list.statusCode).toBe(200);
    const [latest] = list.json().data;
    expect(latest).toMatchObject({ tenant_id: tenantId, chain_seq: h.chain_seq, hash: h.hash, key_id: ctx.keyring.auditKeys.keyId });
    expect(latest.public_key).toBe(ctx.keyring.auditKeys.publicKeyBase64);
    expect(checkpointSignatureValid(publicKeyFromBase64(latest.public_key), latest)).toBe(true);
    expect(checkpointSignatureValid(publicKeyFromBase64(latest.public_key), { ...latest, chain_seq: '1' })).toBe(false);

    const events = (await api.get('/v1/events?type=audit.checkpoint')).json().data;
    expect(events[0].data).toEqual(latest);

    const run = await runCli(['audit', 'checkpoints', '--since', '2000-01-01T00:00:00Z', '--tenant', tenantId], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.at(-1)).toEqual(latest);
    const future = await runCli(['audit', 'checkpoints', '--since', '2999-01-01T00:00:00Z'], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
    expect(future.stdout).toBe('');
  });

  it('a webhook receiver that appends each verified audit.checkpoint body to a file keeps exactly what verify needs', async () => {
    const t = await createTenant(ctx.db);
    const api = client(ctx.app, t.ownerKey);
    const receiver = await startReceiver();
    const dispatcher = localDispatcher(ctx);
    try {
      const endpoint = (await api.post('/v1/webhook-endpoints', { url: receiver.url, event_types: ['audit.checkpoint'] })).json();
      for (let round = 0; round < 3; round++) {
        await api.post('/v1/users', individual());
        await sealAuditLog(ctx.db);
        while ((await dispatcher.runOnce()).sent > 0);
      }
      const mine = receiver.received.filter((r) => r.json.data.tenant_id === t.tenantId);
      expect(mine.length).toBeGreaterThanOrEqual(3);
      expect(mine.every((r) => receiver.verifies(r, endpoint.secret) && r.json.type === 'audit.checkpoint')).toBe(true);
      const kept = path.join(tmp, 'receiver.ndjson');
      await fs.writeFile(kept, mine.map((r) => r.body).join('\n') + '\n');
      const ok = await runCli(['audit', 'verify', '--tenant', t.tenantId, '--checkpoints', kept, '--public-key', ctx.keyring.auditKeys.publicKeyBase64], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(new RegExp(`OK ${t.tenantId}: \\d+ sealed, 0 not sealed yet, \\d+ checkpoints`));

      // The superuser removes the last round's entries, the database's checkpoints and rewinds the head to match.
      const last = mine.at(-1)!.json.data as { chain_seq: string };
      const keep = BigInt(mine.at(-2)!.json.data.chain_seq as string);
      await cutTail(t.tenantId, keep);
      await tamper(sql`delete from audit_checkpoints where tenant_id = ${t.tenantId}`);
      await tamper(sql`update audit_heads set chain_seq = ${keep.toString()}::bigint, hash = ${await chainHash(t.tenantId, keep.toString())} where tenant_id = ${t.tenantId}`);
      expect(await verifyTenantChain(ctx.db, t.tenantId, opts)).toMatchObject({ ok: true });
      const broken = await runCli(['audit', 'verify', '--tenant', t.tenantId, '--checkpoints', kept], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
      expect(broken.code).toBe(1);
      expect(broken.stdout).toContain(`but the kept checkpoint ${mine.at(-1)!.json.data.id} signed it up to ${last.chain_seq}`);
    } finally {
      await dispatcher.close();
      await receiver.close();
    }
  });

  it('a kept checkpoint with a forged signature or a rewritten chain is BROKEN', async () => {
    const { tenantId } = await tenantWithHistory();
    const [c] = (await client(ctx.app, (await createTenant(ctx.db)).ownerKey).get('/v1/audit/checkpoints')).json().data as unknown[];
    expect(c).toBeUndefined(); // another tenant sees none of this one's checkpoints
    const own = (await sql<{ id: string }>`select id from audit_checkpoints where tenant_id = ${tenantId}`.execute(ctx.db)).rows;
    expect(own.length).toBeGreaterThan(0);
    const kept = await keptCheckpoints(tenantId);
    const line = JSON.parse((await fs.readFile(kept, 'utf8')).trim().split('\n')[0]!);
    const forged = path.join(tmp, 'forged.ndjson');
    await fs.writeFile(forged, JSON.stringify({ ...line, hash: 'f'.repeat(64) }) + '\n');
    const run = await runCli(['audit', 'verify', '--tenant', tenantId, '--checkpoints', forged], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/does not carry a valid signature/);
  });

  it('checks every kept checkpoint, the file streamed: a tail cut and sealed again past the highest kept one is BROKEN by the older ones', async () => {
    const { tenantId, api } = await tenantWithHistory();
    const u = (await api.post('/v1/users', individual())).json();
    for (let i = 0; i < 3; i++) await api.patch(`/v1/users/${u.id}`, { occupation: `job ${i}` });
    await sealAuditLog(ctx.db);
    const before = await fs.readFile(await keptCheckpoints(tenantId), 'utf8');
    const keep = BigInt((await head(tenantId)).chain_seq) - 2n;
    // The superuser cuts the last two seals, deletes the entry to hide, re-queues the other, rewinds
    // the head and drops the database's checkpoints; the real sealer then chains on and signs anew.
    const tail = (await sql<{ entry_seq: string }>`
      select entry_seq::text as entry_seq from audit_seals where tenant_id = ${tenantId} and chain_seq > ${keep.toString()}::bigint order by chain_seq`.execute(ctx.db)).rows;
    await tamper(sql`delete from audit_entries where tenant_id = ${tenantId} and seq = ${tail.at(-1)!.entry_seq}::bigint`);
    await tamper(sql`delete from audit_seals where tenant_id = ${tenantId} and chain_seq > ${keep.toString()}::bigint`);
    await tamper(sql`insert into audit_unsealed (tenant_id, seq) values (${tenantId}, ${tail[0]!.entry_seq}::bigint)`);
    await tamper(sql`update audit_heads set chain_seq = ${keep.toString()}::bigint, hash = ${await chainHash(tenantId, keep.toString())} where tenant_id = ${tenantId}`);
    await tamper(sql`delete from audit_checkpoints where tenant_id = ${tenantId}`);
    for (let i = 0; i < 3; i++) await api.patch(`/v1/users/${u.id}`, { occupation: `later ${i}` });
    await sealAuditLog(ctx.db);
    expect(await verifyTenantChain(ctx.db, tenantId, opts)).toMatchObject({ ok: true });
    // The auditor kept both: the checkpoints before the cut, many times over (a long file), and after.
    const after = await fs.readFile(await keptCheckpoints(tenantId), 'utf8');
    const file = path.join(tmp, `regrown-${crypto.randomUUID()}.ndjson`);
    await fs.writeFile(file, before.repeat(300) + '\n' + after);
    const lines = (before.repeat(300) + after).split('\n').filter((l) => l.trim()).length;
    const run = await runCli(['audit', 'verify', '--tenant', tenantId, '--checkpoints', file], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
    expect(run.code, run.stdout).toBe(1);
    expect(run.stdout).toMatch(/is not the one the kept checkpoint .* signed .*: the chain was rewritten/);
    expect(run.stdout).toContain(`checked against ${lines} kept checkpoint(s)`);
    // Against the later checkpoints alone the new chain holds: only the older ones tell.
    const later = path.join(tmp, `later-${crypto.randomUUID()}.ndjson`);
    await fs.writeFile(later, after);
    expect((await runCli(['audit', 'verify', '--tenant', tenantId, '--checkpoints', later], cliEnv({ DATABASE_URL: ctx.databaseUrl }))).code).toBe(0);
  });
});
