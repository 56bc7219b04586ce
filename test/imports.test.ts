// Bulk import: rows checked as POST /v1/users checks a body, written in batches, idempotent by
// external_ref, resumable after a kill, audited per user, one import.completed event.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { client, createKey, createTenant, createTestContext, type TestContext } from './helpers/app.js';
import { cliEnv, runCli } from './helpers/processes.js';
import { importText as runImport, servicesFor, sha256 as sha } from './helpers/imports.js';
import type { Services } from '../src/services.js';
import { cliActor } from '../src/modules/audit/actor.js';
import type { Format } from '../src/modules/imports/formats.js';

let ctx: TestContext;
let services: Services;
let tmp: string;

beforeAll(async () => {
  ctx = await createTestContext();
  services = servicesFor(ctx);
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'kyclo-import-'));
});
afterAll(async () => {
  await ctx.close();
  await fs.rm(tmp, { recursive: true, force: true });
});

const person = (i: number, extra: Record<string, unknown> = {}) => ({
  type: 'individual', external_ref: `cust-${i}`, country: 'FR', first_name: `Ann${i}`, last_name: 'Oak', email: `ann${i}@example.com`, ...extra,
});
const ndjson = (rows: unknown[]) => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';

async function importText(tenantId: string, text: string, format: Format = 'ndjson', opts: { profile?: string; dryRun?: boolean; userEvents?: boolean } = {}) {
  const rows: unknown[] = [];
  const { job, resumed } = await runImport(services, tenantId, text, { ...opts, format, onRows: (o) => rows.push(...o) });
  return { job, resumed, rows };
}

describe('kyclo import (service)', () => {
  it('imports valid rows, rejects bad ones with line, field and code, and keeps going', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const text = ndjson([
      person(1),
      person(2, { country: 'XX' }),
      '{"type": "individual", not json',
      person(3, { last_name: undefined }),
      person(4, { tax_number: 'FR123', address: { line1: '33 rosewood road', city: 'Paris', postcode: '75017' } }),
    ]);
    const { job } = await importText(tenantId, text);
    expect(job).toMatchObject({ state: 'completed', counts: { read: 5, imported: 2, existing: 0, rejected: 3 } });
    const users = await ctx.db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).orderBy('external_ref').execute();
    expect(users.map((u) => u.external_ref)).toEqual(['cust-1', 'cust-4']);
    expect(users[1]!.profile).toMatchObject({ first_name: 'Ann4', tax_number: 'FR123', address: { line1: '33 rosewood road', city: 'Paris' } });
    // Each has its data key and one user.imported audit entry naming the import.
    const keys = await ctx.db.selectFrom('user_keys').select('user_id').where('tenant_id', '=', tenantId).execute();
    expect(keys).toHaveLength(2);
    const audit = await ctx.db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId).where('action', '=', 'user.imported').execute();
    expect(audit.map((a) => a.user_id).sort()).toEqual(users.map((u) => u.id).sort());
    expect(audit[0]!.details).toMatchObject({ import_id: job.id, profile: 'kyclo' });
    // One import.completed event with the counts, no per-user event unless asked.
    const events = await ctx.db.selectFrom('events').selectAll().where('tenant_id', '=', tenantId).execute();
    expect(events.map((e) => e.type)).toEqual(['import.completed']);
    expect(events[0]!.data).toMatchObject({ import_id: job.id, read: 5, imported: 2, rejected: 3 });
    const errors = await services.imports.errors(cliActor(tenantId), job.id, {});
    expect(errors.data).toEqual([
      { line: 2, field: 'country', code: 'invalid_country', message: expect.any(String) },
      { line: 3, field: 'record', code: 'malformed', message: 'not valid JSON' },
      { line: 4, field: 'last_name', code: 'required', message: expect.any(String) },
    ]);
  });

  it('checks tenant-defined values against the tenant\'s definitions and stores personal ones sealed, as a create does', async () => {
    const { tenantId, ownerKey } = await createTenant(ctx.db);
    const api = client(ctx.app, ownerKey);
    const policy = await api.call({ method: 'PUT', url: '/v1/policy', body: { custom_fields: {
      account_no: { schema: { type: 'string', pattern: '^[A-Z]{2}[0-9]{6,10}$', maxLength: 12 }, personal: true, searchable: true },
      segment: { schema: { type: 'string', enum: ['gold', 'silver'] } },
    } } });
    expect(policy.statusCode).toBe(200);
    const text = ndjson([
      person(1, { custom: { account_no: 'FR12345678', segment: 'gold' } }),
      person(2, { custom: { segment: 'bronze' } }),
      person(3, { custom: { undeclared: 'x' } }),
    ]);
    const { job } = await importText(tenantId, text);
    expect(job).toMatchObject({ state: 'completed', counts: { read: 3, imported: 1, rejected: 2 } });
    const errors = await services.imports.errors(cliActor(tenantId), job.id, {});
    expect(errors.data.map((e) => [e.line, e.field])).toEqual([[2, 'custom.segment'], [3, 'custom.undeclared']]);
    // Stored as a create stores it: the personal value only sealed (and its search token), the other in the clear.
    const [row] = await ctx.db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).execute();
    expect(JSON.stringify(row!.profile)).not.toContain('FR12345678');
    expect(row!.profile).toMatchObject({ custom: { segment: 'gold' }, custom_sealed: expect.any(String), custom_index: [expect.any(String)] });
    // Read back opened, and found by the searchable field.
    expect((await api.get(`/v1/users/${row!.id}`)).json().custom).toEqual({ account_no: 'FR12345678', segment: 'gold' });
    expect((await api.get('/v1/users?custom=account_no:FR12345678')).json().data.map((u: { id: string }) => u.id)).toEqual([row!.id]);
  });

  it('running the same file twice creates nothing the second time and says so per row', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const text = ndjson([person(1), person(2), person(2)]);
    const first = await importText(tenantId, text);
    expect(first.job.counts).toEqual({ read: 3, imported: 2, existing: 1, rejected: 0 });
    const auditBefore = await ctx.db.selectFrom('audit_entries').select('id').where('tenant_id', '=', tenantId).execute();
    const second = await importText(tenantId, text);
    expect(second.job.id).not.toBe(first.job.id);
    expect(second.job.counts).toEqual({ read: 3, imported: 0, existing: 3, rejected: 0 });
    expect(second.rows).toEqual([1, 2, 3].map((line) => expect.objectContaining({ line, outcome: 'existing', user_id: expect.stringMatching(/^usr_/) })));
    expect(await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).execute()).toHaveLength(2);
    // Only the second import's import.completed entry is new: no user.imported twice.
    const auditAfter = await ctx.db.selectFrom('audit_entries').select(['id', 'action']).where('tenant_id', '=', tenantId).execute();
    expect(auditAfter.length - auditBefore.length).toBe(1);
  });

  it('the same file read again after an erasure does not bring the erased user back: its row is rejected as erased', async () => {
    const { tenantId, ownerKey } = await createTenant(ctx.db);
    const api = client(ctx.app, ownerKey);
    const text = ndjson([person(1), person(2)]);
    expect((await importText(tenantId, text)).job.counts).toMatchObject({ imported: 2 });
    const erased = await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).where('external_ref', '=', 'cust-1').executeTakeFirstOrThrow();
    await api.call({ method: 'PUT', url: '/v1/policy', body: { retention: { erasure_after_days: 0 } } });
    expect((await api.post(`/v1/users/${erased.id}/erasure`, { requested_by: 'user' })).statusCode).toBe(202);
    expect((await services.erasure.sweep()).erased).toContain(erased.id);

    // Before, the nightly sync made a new active user of cust-1 with the erased person's whole profile.
    const again = await importText(tenantId, text);
    expect(again.job.counts).toEqual({ read: 2, imported: 0, existing: 1, rejected: 1 });
    expect(again.rows).toEqual([
      expect.objectContaining({ line: 1, outcome: 'rejected', errors: [expect.objectContaining({ field: 'external_ref', code: 'erased' })] }),
      expect.objectContaining({ line: 2, outcome: 'existing' }),
    ]);
    const left = await ctx.db.selectFrom('users').select(['id', 'external_ref']).where('tenant_id', '=', tenantId).execute();
    expect(left).toHaveLength(2);
    expect(left.map((u) => u.external_ref).filter((r) => r !== null)).toEqual(['cust-2']);
    // A ref the platform gives a user again through the API is that user's: found, not refused.
    const back = await api.post('/v1/users', person(1));
    expect(back.statusCode, back.body).toBe(201);
    expect((await importText(tenantId, text)).job.counts).toEqual({ read: 2, imported: 0, existing: 2, rejected: 0 });
  });

  it("the tombstone keeps a keyed hash of external_ref, never the plain SHA-256 of tenant:ref; an import refuses refs of tombstones of either form", async () => {
    const { tenantId, ownerKey } = await createTenant(ctx.db);
    const api = client(ctx.app, ownerKey);
    const text = ndjson([person(1), person(2), person(3)]);
    expect((await importText(tenantId, text)).job.counts).toMatchObject({ imported: 3 });
    const ids = await ctx.db.selectFrom('users').select(['id', 'external_ref']).where('tenant_id', '=', tenantId).where('external_ref', 'in', ['cust-1', 'cust-2']).orderBy('external_ref').execute();
    await api.call({ method: 'PUT', url: '/v1/policy', body: { retention: { erasure_after_days: 0 } } });
    for (const u of ids) expect((await api.post(`/v1/users/${u.id}/erasure`, { requested_by: 'user' })).statusCode).toBe(202);
    expect((await services.erasure.sweep()).erased).toEqual(expect.arrayContaining(ids.map((u) => u.id)));
    const plain = (ref: string) => crypto.createHash('sha256').update(`${tenantId}:${ref}`).digest('hex');
    const tombstone = await ctx.db.selectFrom('users').select(['external_ref', 'external_ref_hash']).where('id', '=', ids[0]!.id).executeTakeFirstOrThrow();
    // Before, a dump and 100,000 guesses of a five-digit customer number gave the person's ref back.
    expect(tombstone).toEqual({ external_ref: null, external_ref_hash: ctx.keyring.mac('erased_external_ref', `${tenantId}:cust-1`) });
    expect(tombstone.external_ref_hash).not.toBe(plain('cust-1'));
    // cust-2's tombstone as the code before the keyed hash wrote it.
    await ctx.db.updateTable('users').set({ external_ref_hash: plain('cust-2') }).where('id', '=', ids[1]!.id).execute();
    const again = await importText(tenantId, text);
    expect(again.job.counts).toEqual({ read: 3, imported: 0, existing: 1, rejected: 2 });
    for (const line of [1, 2]) {
      expect(again.rows).toContainEqual(expect.objectContaining({ line, outcome: 'rejected', errors: [expect.objectContaining({ field: 'external_ref', code: 'erased' })] }));
    }
  });

  it('an interrupted import resumes after the last committed batch and ends with every row once', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const rows = Array.from({ length: 2500 }, (_, i) => person(i));
    const text = ndjson(rows);
    const actor = cliActor(tenantId);
    const { job } = await services.imports.open(actor, { profile: 'kyclo', format: 'ndjson', sha256: sha(text) });
    // The source dies after 1,500 lines: the first batch of 1,000 is committed, the rest is not.
    async function* dying() {
      yield Buffer.from(ndjson(rows.slice(0, 1500)));
      throw new Error('killed');
    }
    await expect(services.imports.run(actor, job, Readable.from(dying()))).rejects.toThrow('killed');
    const stopped = await services.imports.get(actor, job.id);
    expect(stopped).toMatchObject({ state: 'running', resume_line: 1000, counts: { imported: 1000 } });
    const again = await importText(tenantId, text);
    expect(again.resumed).toBe(true);
    expect(again.job).toMatchObject({ id: job.id, state: 'completed', counts: { read: 2500, imported: 2500, existing: 0, rejected: 0 } });
    expect(again.rows).toHaveLength(1500);
    const count = await ctx.db.selectFrom('users').select((eb) => eb.fn.countAll<string>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(2500);
  });

  it('completes with its import.completed entry and event or not at all: when they cannot be written, the job stays to resume, and the rerun completes and announces it', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const text = ndjson(Array.from({ length: 30 }, (_, i) => person(i)));
    // Fault injection: the audit insert of import.completed fails (as a lost connection or a crash would).
    await sql`create table if not exists fail_import_completed (tenant_id text primary key)`.execute(ctx.db);
    await sql`create or replace function fail_import_completed() returns trigger language plpgsql as $$
      begin if exists (select 1 from fail_import_completed f where f.tenant_id = new.tenant_id) and new.action = 'import.completed'
        then raise exception 'injected audit failure'; end if; return new; end $$`.execute(ctx.db);
    await sql`create or replace trigger fail_import_completed before insert on audit_entries for each row execute function fail_import_completed()`.execute(ctx.db);
    await sql`insert into fail_import_completed values (${tenantId})`.execute(ctx.db);
    const completedEvents = () => ctx.db.selectFrom('events').select('data').where('tenant_id', '=', tenantId).where('type', '=', 'import.completed').execute();
    try {
      await expect(importText(tenantId, text)).rejects.toThrow('injected audit failure');
      const job = await ctx.db.selectFrom('import_jobs').select(['id', 'state', 'leased_until']).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
      expect(job).toMatchObject({ state: 'running', leased_until: null });
      expect(await completedEvents()).toEqual([]);
    } finally {
      await sql`delete from fail_import_completed where tenant_id = ${tenantId}`.execute(ctx.db);
    }
    const again = await importText(tenantId, text);
    expect(again.job).toMatchObject({ state: 'completed', counts: { read: 30, imported: 30 } });
    expect(await completedEvents()).toEqual([{ data: expect.objectContaining({ import_id: again.job.id, imported: 30 }) }]);
  });

  it('brings the state a vendor established: status with reason and origin, KYC, created_at', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const text = ndjson([
      person(1, { status: 'suspended', status_reason: 'fraud_suspected', status_origin: 'operator', kyc: { status: 'verified', level: 2, verified_at: '2024-03-01T10:00:00Z' }, created_at: '2023-10-23T12:28:00Z' }),
      person(2, { status: 'frozen' }),
    ]);
    const { job } = await importText(tenantId, text);
    expect(job.counts).toMatchObject({ imported: 1, rejected: 1 });
    const u = await ctx.db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
    expect(u).toMatchObject({ status: 'suspended', status_reason: 'fraud_suspected', kyc_status: 'verified', kyc_level: 2 });
    expect(u.created_at.toISOString()).toBe('2023-10-23T12:28:00.000Z');
    expect(u.kyc_verified_at!.toISOString()).toBe('2024-03-01T10:00:00.000Z');
    const history = await ctx.db.selectFrom('status_changes').selectAll().where('tenant_id', '=', tenantId).execute();
    expect(history).toEqual([expect.objectContaining({ user_id: u.id, from_status: 'active', to_status: 'suspended', reason: 'fraud_suspected', origin: 'operator' })]);
  });

  it('reads CSV (dotted headers, quoted cells) and JSON arrays as well as NDJSON', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const csv = 'type,external_ref,country,first_name,last_name,address.line1,address.city,pep,tags\r\n' +
      'individual,c-1,FR,Ann,"Oak, Jr",33 rosewood road,Paris,true,vip;early\r\n' +
      'individual,c-2,FR,"Bo ""B""",Lee,"a line\nbroken in two",Lyon,,\r\n' +
      'individual,c-3,FR,"Bo ""B""",Lee,"a line, with a comma",Lyon,,\r\n';
    const a = await importText(tenantId, csv, 'csv');
    expect(a.job.counts).toMatchObject({ imported: 2, rejected: 1 });
    // A quoted cell may span lines (no text field may hold one): the next record's line is still right.
    const csvErrors = await services.imports.errors(cliActor(tenantId), a.job.id, {});
    expect(csvErrors.data).toEqual([expect.objectContaining({ line: 3, field: 'address.line1' })]);
    const json = JSON.stringify({ users: [person(10), person(11, { country: 'nope' })] }, null, 2);
    const b = await importText(tenantId, json, 'json');
    expect(b.job.counts).toMatchObject({ imported: 1, rejected: 1 });
    const errors = await services.imports.errors(cliActor(tenantId), b.job.id, {});
    expect(errors.data[0]).toMatchObject({ field: 'country', line: 11 });
    const users = await ctx.db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).orderBy('external_ref').execute();
    expect(users.find((u) => u.external_ref === 'c-1')).toMatchObject({ tags: ['vip', 'early'], profile: expect.objectContaining({ last_name: 'Oak, Jr', pep: true }) });
    expect(users.find((u) => u.external_ref === 'c-3')!.profile).toMatchObject({ first_name: 'Bo "B"', address: { line1: 'a line, with a comma', city: 'Lyon' } });
    const c3 = await services.imports.errors(cliActor(tenantId), a.job.id, {});
    expect(c3.next_cursor).toBeNull();
  });

  it('a run that created 10,000 users refreshes the planner’s statistics of users (ANALYZE), so the next keyset page is an index scan', async () => {
    const t = await createTenant(ctx.db);
    const reltuples = async () => Number((await sql<{ n: number }>`select reltuples as n from pg_class where relname = 'users'`.execute(ctx.db)).rows[0]!.n);
    const before = Math.max(0, await reltuples());
    const { job } = await importText(t.tenantId, ndjson(Array.from({ length: 10_000 }, (_x, i) => person(i))));
    expect(job.counts.imported).toBe(10_000);
    // Only ANALYZE (or VACUUM) moves reltuples; the 10,000 inserts alone leave it where it was.
    expect(await reltuples()).toBeGreaterThanOrEqual(before + 10_000);
    const page = await sql<{ plan: string }>`explain select id from users where tenant_id = ${t.tenantId} and id > 'usr_0' order by id limit 1000`.execute(ctx.db);
    expect(page.rows.map((r) => Object.values(r)[0]).join('\n')).toMatch(/Index (Only )?Scan/);
  }, 60_000);

  it('a dry run checks every row and writes no user', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const { job } = await importText(tenantId, ndjson([person(1), person(2, { country: 'XX' })]), 'ndjson', { dryRun: true });
    expect(job).toMatchObject({ dry_run: true, counts: { read: 2, imported: 1, rejected: 1 } });
    expect(await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).execute()).toHaveLength(0);
    expect(await ctx.db.selectFrom('events').select('id').where('tenant_id', '=', tenantId).execute()).toHaveLength(0);
  });

  it('asked for per-user events, emits one user.created per created user, carrying the import id', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const { job } = await importText(tenantId, ndjson([person(1), person(2)]), 'ndjson', { userEvents: true });
    const events = await ctx.db.selectFrom('events').selectAll().where('tenant_id', '=', tenantId).orderBy('seq').execute();
    expect(events.map((e) => e.type)).toEqual(['user.created', 'user.created', 'import.completed']);
    expect(events[0]!.data).toMatchObject({ import_id: job.id, type: 'individual' });
    expect(events[0]!.personal_enc).toMatch(/^kc1\./);
  });
});

describe('kyclo import (CLI)', () => {
  it('exits 0 when every row was imported or already present, 1 when some were rejected, 2 when it cannot run', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const env = cliEnv({ DATABASE_URL: ctx.databaseUrl });
    const good = path.join(tmp, 'good.ndjson');
    await fs.writeFile(good, ndjson([person(1), person(2)]));
    const ok = await runCli(['import', good, '--tenant', tenantId], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/completed: 2 read, 2 imported, 0 already present, 0 rejected/);
    const again = await runCli(['import', good, '--tenant', tenantId, '--json'], env);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).counts).toEqual({ read: 2, imported: 0, existing: 2, rejected: 0 });

    const bad = path.join(tmp, 'bad.ndjson');
    const report = path.join(tmp, 'report.ndjson');
    await fs.writeFile(bad, ndjson([person(3), person(4, { country: 'XX' })]));
    const some = await runCli(['import', bad, '--tenant', tenantId, '--report', report], env);
    expect(some.code).toBe(1);
    expect(some.stderr).toContain('line 2: country invalid_country');
    const lines = (await fs.readFile(report, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual([
      expect.objectContaining({ line: 1, outcome: 'created' }),
      expect.objectContaining({ line: 2, outcome: 'rejected', errors: [expect.objectContaining({ field: 'country' })] }),
    ]);

    const missing = await runCli(['import', path.join(tmp, 'nope.ndjson'), '--tenant', tenantId], env);
    expect(missing.code).toBe(2);
    const noTenant = await runCli(['import', good, '--tenant', 'ten_00000000000000000000000000'], env);
    expect(noTenant.code).toBe(2);
    expect(noTenant.stderr).toContain('No tenant');
    const noProfile = await runCli(['import', good, '--tenant', tenantId, '--profile', 'nope'], env);
    expect(noProfile.code).toBe(2);
  }, 120_000);

  it('a kyclo import killed (SIGKILL) after its first batches resumes on the next run, every row once', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const env = cliEnv({ DATABASE_URL: ctx.databaseUrl });
    const file = path.join(tmp, 'big.ndjson');
    const n = 20_000;
    await fs.writeFile(file, ndjson(Array.from({ length: n }, (_, i) => person(i))));
    const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(import.meta.dirname, '../src/cli/main.ts'), 'import', file, '--tenant', tenantId], { env, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    // Killed as soon as a batch is committed (or, on a fast machine, whenever it is seen).
    for (let i = 0; i < 600; i++) {
      const job = await ctx.db.selectFrom('import_jobs').select(['resume_line', 'state']).where('tenant_id', '=', tenantId).executeTakeFirst();
      if (job && (Number(job.resume_line) >= 1000 || job.state !== 'running')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    await exited;
    const stopped = await ctx.db.selectFrom('import_jobs').selectAll().where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
    expect(stopped.state).toBe('running');
    expect(Number(stopped.resume_line)).toBeGreaterThanOrEqual(1000);
    expect(Number(stopped.resume_line)).toBeLessThan(n);
    // The killed run's lease would keep a rerun out for a minute: as if that minute had passed.
    await ctx.db.updateTable('import_jobs').set({ leased_until: null }).where('tenant_id', '=', tenantId).execute();
    const again = await runCli(['import', file, '--tenant', tenantId, '--json'], env);
    expect(again.code, again.stderr).toBe(0);
    const job = JSON.parse(again.stdout);
    expect(job.id).toBe(stopped.id);
    expect(again.stderr).toContain(`resuming import ${stopped.id} after line ${stopped.resume_line}`);
    expect(job.counts.read).toBe(n);
    expect(job.counts.imported + job.counts.existing).toBe(n);
    const count = await ctx.db.selectFrom('users').select((eb) => eb.fn.countAll<string>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(n);
  }, 180_000);
});

describe('POST /v1/imports', () => {
  const waitFor = async (api: ReturnType<typeof client>, id: string) => {
    for (let i = 0; i < 100; i++) {
      const res = await api.get(`/v1/imports/${id}`);
      if (res.json().state !== 'running') return res;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the import did not finish');
  };

  it('answers 202 with the job and its Location; the rows follow, the errors are listed by line', async () => {
    const t = await createTenant(ctx.db);
    const api = client(ctx.app, t.ownerKey);
    const res = await api.call({ method: 'POST', url: '/v1/imports?name=customers.ndjson', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([person(1), person(2, { country: 'XX' })]) });
    expect(res.statusCode, res.body).toBe(202);
    expect(res.headers.location).toBe(`/v1/imports/${res.json().id}`);
    expect(res.json()).toMatchObject({ profile: 'kyclo', format: 'ndjson', source_name: 'customers.ndjson' });
    const done = await waitFor(api, res.json().id);
    expect(done.json()).toMatchObject({ state: 'completed', counts: { read: 2, imported: 1, existing: 0, rejected: 1 } });
    const errors = await api.get(`/v1/imports/${res.json().id}/errors`);
    expect(errors.json()).toEqual({ data: [expect.objectContaining({ line: 2, field: 'country', code: 'invalid_country' })], next_cursor: null });
    const users = await api.get('/v1/users?external_ref=cust-1');
    expect(users.json().data).toEqual([expect.objectContaining({ first_name: 'Ann1', status: 'active' })]);
  });

  it('takes CSV by its content type, and refuses an unknown profile with 400 and no job', async () => {
    const t = await createTenant(ctx.db);
    const api = client(ctx.app, t.ownerKey);
    const res = await api.call({ method: 'POST', url: '/v1/imports', headers: { 'content-type': 'text/csv' }, body: 'type,external_ref,country,first_name,last_name\nindividual,x-1,FR,Ann,Oak\n' });
    expect(res.statusCode, res.body).toBe(202);
    expect((await waitFor(api, res.json().id)).json()).toMatchObject({ format: 'csv', counts: { imported: 1 } });
    const bad = await api.call({ method: 'POST', url: '/v1/imports?profile=nope', headers: { 'content-type': 'text/csv' }, body: 'a\n1\n' });
    expect(bad.statusCode).toBe(400);
    expect(await ctx.db.selectFrom('import_jobs').select('id').where('tenant_id', '=', t.tenantId).execute()).toHaveLength(1);
  });

  it('with an Idempotency-Key, a retry of the same upload answers the same job and starts nothing', async () => {
    const t = await createTenant(ctx.db);
    const api = client(ctx.app, t.ownerKey);
    const call = () => api.call({ method: 'POST', url: '/v1/imports', headers: { 'content-type': 'application/x-ndjson', 'idempotency-key': 'import-1' }, body: ndjson([person(1)]) });
    const first = await call();
    expect(first.statusCode, first.body).toBe(202);
    await waitFor(api, first.json().id);
    const retry = await call();
    expect(retry.statusCode).toBe(202);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.json().id).toBe(first.json().id);
    expect(await ctx.db.selectFrom('import_jobs').select('id').where('tenant_id', '=', t.tenantId).execute()).toHaveLength(1);
  });

  it('takes the file as the file part of a multipart form, its format from the part’s name', async () => {
    const t = await createTenant(ctx.db);
    const api = client(ctx.app, t.ownerKey);
    const boundary = 'kyclo-import-boundary';
    const csvText = 'type,external_ref,country,first_name,last_name\nindividual,m-1,FR,Ann,Oak\nindividual,m-2,XX,Bo,Lee\n';
    const body = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="crm.csv"\r\nContent-Type: application/octet-stream\r\n\r\n${csvText}\r\n--${boundary}--\r\n`;
    const res = await api.call({ method: 'POST', url: '/v1/imports', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body });
    expect(res.statusCode, res.body).toBe(202);
    expect(res.json()).toMatchObject({ format: 'csv', source_name: 'crm.csv' });
    expect((await waitFor(api, res.json().id)).json()).toMatchObject({ state: 'completed', counts: { imported: 1, rejected: 1 } });
  });

  it('lists the tenant’s imports newest first, by state, in pages; another tenant’s never', async () => {
    const t = await createTenant(ctx.db);
    const other = await createTenant(ctx.db);
    const api = client(ctx.app, t.ownerKey);
    const ids: string[] = [];
    for (const n of [1, 2, 3]) {
      const res = await api.call({ method: 'POST', url: `/v1/imports?name=file-${n}.ndjson`, headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([person(n, n === 3 ? { country: 'XX' } : {})]) });
      expect(res.statusCode, res.body).toBe(202);
      await waitFor(api, res.json().id);
      ids.push(res.json().id);
    }
    await client(ctx.app, other.ownerKey).call({ method: 'POST', url: '/v1/imports', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([person(7)]) });
    const first = await api.get('/v1/imports?limit=2');
    expect(first.statusCode).toBe(200);
    expect(first.json().data.map((j: { id: string }) => j.id)).toEqual([ids[2], ids[1]]);
    expect(first.json().data[0]).toMatchObject({ source_name: 'file-3.ndjson', state: 'completed', counts: { imported: 0, rejected: 1 } });
    const second = await api.get(`/v1/imports?limit=2&cursor=${first.json().next_cursor}`);
    expect(second.json()).toEqual({ data: [expect.objectContaining({ id: ids[0], source_name: 'file-1.ndjson' })], next_cursor: null });
    expect((await api.get('/v1/imports?state=running')).json().data).toEqual([]);
    const bad = await api.get('/v1/imports?state=done');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors[0]).toMatchObject({ field: 'state' });
  });

  it('is refused to a DEVELOPER and a READER key (403), and another tenant cannot read a job (404)', async () => {
    const t = await createTenant(ctx.db);
    const other = await createTenant(ctx.db);
    const res = await client(ctx.app, t.ownerKey).call({ method: 'POST', url: '/v1/imports', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([person(1)]) });
    for (const role of ['DEVELOPER', 'READER'] as const) {
      const key = await createKey(ctx.db, t.tenantId, role);
      const refused = await client(ctx.app, key.key).call({ method: 'POST', url: '/v1/imports', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([person(9)]) });
      expect(refused.statusCode).toBe(403);
    }
    expect((await client(ctx.app, other.ownerKey).get(`/v1/imports/${res.json().id}`)).statusCode).toBe(404);
    await waitFor(client(ctx.app, t.ownerKey), res.json().id);
    expect(await ctx.db.selectFrom('users').select('external_ref').where('tenant_id', '=', t.tenantId).execute()).toEqual([{ external_ref: 'cust-1' }]);
  });
});
