// Imports under attack: file keys that reach Object.prototype (a CSV header `__proto__.x`, a record's
// `__proto__` key), and rows PostgreSQL cannot store (year 0000, a lone surrogate, a row a constraint
// refuses) that stopped the whole import on every run. Outcomes asserted: the rows in the database, the job's counts and errors,
// Object.prototype untouched, another tenant still served.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { client, createTenant, createTestContext, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { importText, servicesFor } from './helpers/imports.js';
import { cliEnv, runCli } from './helpers/processes.js';
import type { Services } from '../src/services.js';
import type { Format } from '../src/modules/imports/formats.js';

let ctx: TestContext;
let services: Services;
let tmp: string;
const PROTO_KEYS = Object.getOwnPropertyNames(Object.prototype).sort();

beforeAll(async () => {
  ctx = await createTestContext();
  services = servicesFor(ctx);
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'kyclo-import-adv-'));
});
afterEach(() => {
  // Before the fix the attack did land: cleaned so one test's pollution never fails the next.
  for (const k of Object.getOwnPropertyNames(Object.prototype)) if (!PROTO_KEYS.includes(k)) delete (Object.prototype as Record<string, unknown>)[k];
});
afterAll(async () => {
  await ctx.close();
  await fs.rm(tmp, { recursive: true, force: true });
});

const pristine = () => ({ protoKeys: Object.getOwnPropertyNames(Object.prototype).sort(), polluted: ({} as Record<string, unknown>).kyclo_polluted });
const usersOf = async (tenantId: string) =>
  (await ctx.db.selectFrom('users').select(['external_ref', 'profile', 'metadata']).where('tenant_id', '=', tenantId).orderBy('external_ref').execute());
const jobsOf = async (tenantId: string) => ctx.db.selectFrom('import_jobs').selectAll().where('tenant_id', '=', tenantId).execute();
const errorsOf = async (tenantId: string) =>
  (await ctx.db.selectFrom('import_errors').select(['line', 'field', 'code', 'message']).where('tenant_id', '=', tenantId).orderBy('line').orderBy('n').execute())
    .map((e) => ({ ...e, line: Number(e.line) }));
const run = async (tenantId: string, text: string, opts: { format?: Format; profile?: string } = {}) =>
  importText(services, tenantId, text, opts).then((r) => r.job, (e: Error) => ({ threw: e.message }));

describe('a key that names a prototype', () => {
  const CSV_HEAD = 'type,external_ref,country,first_name,last_name';

  it('a CSV header __proto__.x / constructor.prototype.x / prototype answers 400 naming the column; no job, no user, Object.prototype untouched, another tenant served', async () => {
    const t = await createTenant(ctx.db);
    const other = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    const api = client(ctx.app, t.ownerKey);
    for (const column of ['__proto__.kyclo_polluted', 'constructor.prototype.kyclo_polluted', 'address.__proto__', 'prototype']) {
      const csv = `${CSV_HEAD},${column}\nindividual,pp-1,FR,Ann,Oak,yes\n`;
      const res = await api.call({ method: 'POST', url: '/v1/imports', headers: { 'content-type': 'text/csv' }, body: csv });
      // Give a run that was (wrongly) started the time to write its rows.
      if (res.statusCode === 202) await new Promise((r) => setTimeout(r, 500));
      const otherTenant = (await other.post('/v1/users', individual())).statusCode;
      expect({ column, ...pristine(), otherTenant }).toEqual({ column, protoKeys: PROTO_KEYS, polluted: undefined, otherTenant: 201 });
      expect(res.statusCode, `${column}: ${res.body}`).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json()).toMatchObject({ code: 'import.malformed_header', errors: [{ field: column, code: 'reserved_name' }] });
      expect(res.json().detail).toContain(`column 6 (${column})`);
    }
    expect({ jobs: await jobsOf(t.tenantId), users: await usersOf(t.tenantId) }).toEqual({ jobs: [], users: [] });
  });

  it('the imports service (what kyclo import runs) refuses such a CSV before its first row: nothing imported, Object.prototype untouched', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const job = await run(tenantId, `${CSV_HEAD},__proto__.kyclo_polluted\nindividual,pp-1,FR,Ann,Oak,yes\nindividual,pp-2,FR,Bo,Lee,yes\n`, { format: 'csv' });
    expect({ job, ...pristine() }).toEqual({ job: { threw: expect.stringContaining('column 6 (__proto__.kyclo_polluted)') }, protoKeys: PROTO_KEYS, polluted: undefined });
    expect(await usersOf(tenantId)).toEqual([]);
  });

  it('kyclo import refuses such a CSV (exit 2, the column named) and opens no job', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const file = path.join(tmp, 'proto.csv');
    await fs.writeFile(file, `${CSV_HEAD},__proto__.kyclo_polluted\nindividual,pp-1,FR,Ann,Oak,yes\n`);
    const res = await runCli(['import', file, '--tenant', tenantId], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
    expect({ code: res.code, jobs: await jobsOf(tenantId), users: await usersOf(tenantId) }).toEqual({ code: 2, jobs: [], users: [] });
    expect(res.stderr).toContain('column 6 (__proto__.kyclo_polluted)');
  }, 60_000);

  it('a JSON/NDJSON record holding __proto__, constructor or prototype at any depth is a rejected row naming the key; the other rows are imported', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const good = (ref: string) => JSON.stringify(individual({ external_ref: ref }));
    // Written as text: JSON.stringify never writes a __proto__ key, JSON.parse does make one.
    const withKey = (ref: string, json: string) => good(ref).replace(/}$/, `,${json}}`);
    const lines = [
      good('ok-1'),
      withKey('bad-2', '"__proto__":{"kyclo_polluted":"yes","first_name":"Eve"}'),
      withKey('bad-3', '"metadata":{"note":{"__proto__":{"kyclo_polluted":"yes"}}}'),
      withKey('bad-4', '"constructor":{"prototype":{"kyclo_polluted":"yes"}}'),
      good('bad-5').replace('"address":{', '"address":{"prototype":"x",'),
      good('ok-6'),
    ];
    const job = await run(tenantId, lines.join('\n') + '\n');
    expect({ job, ...pristine() }).toMatchObject({ job: { state: 'completed', counts: { read: 6, imported: 2, existing: 0, rejected: 4 } }, protoKeys: PROTO_KEYS, polluted: undefined });
    expect((await usersOf(tenantId)).map((u) => u.external_ref)).toEqual(['ok-1', 'ok-6']);
    expect((await errorsOf(tenantId)).map(({ line, field, code }) => ({ line, field, code }))).toEqual([
      { line: 2, field: '__proto__', code: 'reserved_name' },
      { line: 3, field: 'metadata.note.__proto__', code: 'reserved_name' },
      { line: 4, field: 'constructor', code: 'reserved_name' },
      { line: 5, field: 'address.prototype', code: 'reserved_name' },
    ]);
  });

  it('a vendor record (treezor, JSON) with a __proto__ key is rejected, not imported with the key silently dropped', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const person = { userTypeId: 1, userStatus: 'VALIDATED', country: 'FR', firstname: 'Alex', lastname: 'Oak' };
    const users = [JSON.stringify({ ...person, userId: 1 }), JSON.stringify({ ...person, userId: 2 }).replace(/}$/, ',"__proto__":{"kyclo_polluted":"yes"}}')];
    const job = await run(tenantId, `{"users": [${users.join(',')}]}`, { profile: 'treezor', format: 'json' });
    expect({ job, ...pristine() }).toMatchObject({ job: { counts: { read: 2, imported: 1, rejected: 1 }, moved_fields: {} }, protoKeys: PROTO_KEYS, polluted: undefined });
    expect((await usersOf(tenantId)).map((u) => u.external_ref)).toEqual(['treezor:1']);
    expect(await errorsOf(tenantId)).toEqual([expect.objectContaining({ field: '__proto__', code: 'reserved_name' })]);
  });
});

describe('a row PostgreSQL cannot store', () => {
  it('a date of year 0000 (as written, or once in UTC) is the row’s invalid_date_time; the other rows are imported', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const rows = [
      individual({ external_ref: 'y0-1' }),
      { ...individual({ external_ref: 'y0-2' }), created_at: '0000-01-01T00:00:00Z' },
      { ...individual({ external_ref: 'y0-3' }), status_changed_at: '0001-01-01T00:00:00+05:00' },
      { ...individual({ external_ref: 'y0-4' }), kyc: { status: 'verified', verified_at: '0000-06-01 10:00:00' } },
      { ...individual({ external_ref: 'y0-5' }), created_at: '0001-01-01T00:00:00Z' },
    ];
    const text = rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
    const job = await run(tenantId, text);
    expect(job).toMatchObject({ state: 'completed', counts: { read: 5, imported: 2, existing: 0, rejected: 3 } });
    const users = await ctx.db.selectFrom('users').select(['external_ref', 'created_at']).where('tenant_id', '=', tenantId).orderBy('external_ref').execute();
    expect(users.map((u) => [u.external_ref, u.created_at.getUTCFullYear()])).toEqual([['y0-1', new Date().getUTCFullYear()], ['y0-5', 1]]);
    expect((await errorsOf(tenantId)).map(({ line, field, code }) => ({ line, field, code }))).toEqual([
      { line: 2, field: 'created_at', code: 'invalid_date_time' },
      { line: 3, field: 'status_changed_at', code: 'invalid_date_time' },
      { line: 4, field: 'kyc.verified_at', code: 'invalid_date_time' },
    ]);
    // The same file again: nothing stops it either, nothing is created twice.
    expect(await run(tenantId, text)).toMatchObject({ state: 'completed', counts: { read: 5, imported: 0, existing: 2, rejected: 3 } });
  });

  it('a lone surrogate is the row\'s invalid_unicode, in a dry run as in the real run (the API refuses it too)', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const lines = ['us-1', 'us-2', 'us-3'].map((ref) => JSON.stringify(individual({ external_ref: ref })));
    lines[1] = lines[1]!.replace(/}$/, ',"metadata":{"note":"Jane Doe \\ud800"}}');
    const text = lines.join('\n') + '\n';
    // Before, the dry run counted the row as imported and the real run refused it (its batch fallback).
    const dry = await importText(services, tenantId, text, { dryRun: true });
    expect(dry.job).toMatchObject({ state: 'completed', counts: { read: 3, imported: 2, rejected: 1 } });
    const job = await run(tenantId, text);
    expect(job).toMatchObject({ state: 'completed', counts: { read: 3, imported: 2, existing: 0, rejected: 1 } });
    expect((await usersOf(tenantId)).map((u) => u.external_ref)).toEqual(['us-1', 'us-3']);
    expect((await errorsOf(tenantId)).filter((e) => e.code === 'invalid_unicode').map(({ line, field }) => ({ line, field }))).toEqual([{ line: 2, field: 'metadata.note' }, { line: 2, field: 'metadata.note' }]);
  });

  it('a row the checks let through but PostgreSQL refuses is written alone and rejected alone: its batch’s other rows are imported, audited once', async () => {
    const { tenantId } = await createTenant(ctx.db);
    // A refusal no row check knows of: a check constraint of this test's own database.
    await sql`alter table users add constraint refuse_ls_2 check (external_ref is distinct from 'ls-2')`.execute(ctx.db);
    try {
      const lines = ['ls-1', 'ls-2', 'ls-3', 'ls-4'].map((ref) => JSON.stringify(individual({ external_ref: ref, first_name: 'Jane' })));
      const job = await run(tenantId, lines.join('\n') + '\n');
      expect(job).toMatchObject({ state: 'completed', counts: { read: 4, imported: 3, existing: 0, rejected: 1 } });
      expect((await usersOf(tenantId)).map((u) => u.external_ref)).toEqual(['ls-1', 'ls-3', 'ls-4']);
      const errors = await errorsOf(tenantId);
      expect(errors).toEqual([{ line: 2, field: 'record', code: 'not_storable', message: expect.stringMatching(/^the database cannot store this row: .*\(SQLSTATE 23514\)$/) }]);
      // PostgreSQL's own message quotes the row (personal data): never kept in the error.
      expect(errors[0]!.message).not.toContain('Jane');
      const audit = await ctx.db.selectFrom('audit_entries').select('user_id').where('tenant_id', '=', tenantId).where('action', '=', 'user.imported').execute();
      expect(audit).toHaveLength(3);
    } finally {
      await sql`alter table users drop constraint refuse_ls_2`.execute(ctx.db);
    }
  });
});
