// Imports under attack: file keys that reach Object.prototype (a CSV header `__proto__.x`, a record's
// `__proto__` key), and rows PostgreSQL cannot store (year 0000, a lone surrogate, a row a constraint
// refuses) that stopped the whole import on every run, a row nested 100,000 levels that did the same, a
// 32 MiB CSV header that held the process for 10 s, NDJSON lines of any length kept whole and searched
// again for every chunk, rows in a state no API call leaves a user in (a reason on an active user, a
// verified user without its date, a closure before the creation), and a --report file other local
// users could read.
// Outcomes asserted: the rows in the database, the job's counts and errors, Object.prototype
// untouched, another tenant still served.
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { client, createTenant, createTestContext, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { importText, servicesFor } from './helpers/imports.js';
import { cliEnv, runCli } from './helpers/processes.js';
import type { Services } from '../src/services.js';
import { json, ndjson, type Format } from '../src/modules/imports/formats.js';

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

describe('a record nested deeper than a request body may be', () => {
  const deepArray = (n: number) => '['.repeat(n) + ']'.repeat(n);
  const good = (ref: string) => JSON.stringify(individual({ external_ref: ref }));
  const withField = (ref: string, json: string) => good(ref).replace(/}$/, `,${json}}`);
  const TOO_DEEP = { code: 'too_deep', message: 'nests objects or arrays more than 32 levels deep' };

  it('NDJSON and JSON: metadata nested 100,000 levels is that row’s too_deep naming the field; the rows around it are imported, the job completes, and the same file again creates nothing', async () => {
    for (const format of ['ndjson', 'json'] as const) {
      const { tenantId } = await createTenant(ctx.db);
      const records = [
        good('dp-1'),
        withField('dp-2', `"metadata":{"a":${deepArray(100_000)}}`),
        withField('dp-3', `"address":{"line1":${deepArray(100_000)}}`),
        // Just past the bound (the record is the first level): as deep a body as the API refuses.
        withField('dp-4', `"metadata":${'{"a":'.repeat(32)}1${'}'.repeat(32)}`),
        good('dp-5'),
      ];
      const text = format === 'ndjson' ? records.join('\n') + '\n' : `[\n${records.join(',\n')}\n]\n`;
      const line = (n: number) => (format === 'ndjson' ? n : n + 1);
      const job = await run(tenantId, text, { format });
      expect(job, format).toMatchObject({ state: 'completed', failure: null, counts: { read: 5, imported: 2, existing: 0, rejected: 3 } });
      expect((await usersOf(tenantId)).map((u) => u.external_ref)).toEqual(['dp-1', 'dp-5']);
      expect((await errorsOf(tenantId)).map(({ line, field, code, message }) => ({ line, field, code, message }))).toEqual([
        { line: line(2), field: 'metadata', ...TOO_DEEP },
        { line: line(3), field: 'address', ...TOO_DEEP },
        { line: line(4), field: 'metadata', ...TOO_DEEP },
      ]);
      expect(await run(tenantId, text, { format })).toMatchObject({ state: 'completed', counts: { imported: 0, existing: 2, rejected: 3 } });
    }
  }, 60_000);

  it('CSV: a cell holding JSON nested 20,000 levels is that row’s too_deep naming its column; a header nesting past the bound is a malformed file', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const head = 'type,external_ref,country,first_name,last_name,metadata';
    const text = `${head}\nindividual,dc-1,FR,Ann,Oak,\nindividual,dc-2,FR,Bo,Lee,"{""a"":${deepArray(20_000)}}"\nindividual,dc-3,FR,Cy,Elm,\n`;
    const job = await run(tenantId, text, { format: 'csv' });
    expect(job).toMatchObject({ state: 'completed', failure: null, counts: { read: 3, imported: 2, rejected: 1 } });
    expect((await usersOf(tenantId)).map((u) => u.external_ref)).toEqual(['dc-1', 'dc-3']);
    expect((await errorsOf(tenantId)).map(({ line, field, code, message }) => ({ line, field, code, message }))).toEqual([{ line: 3, field: 'metadata', ...TOO_DEEP }]);
    const deepHeader = Array.from({ length: 40 }, (_, i) => `m${i}`).join('.');
    const refused = await run(tenantId, `type,${deepHeader}\nindividual,x\n`, { format: 'csv' });
    expect(refused).toEqual({ threw: expect.stringContaining('has more than 32 dotted segments') });
  }, 60_000);

  it('over POST /v1/imports the job completes with the row rejected; another tenant is served meanwhile', async () => {
    const t = await createTenant(ctx.db);
    const api = client(ctx.app, t.ownerKey);
    const other = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    const body = [withField('dh-1', `"metadata":{"x":${deepArray(100_000)}}`), good('dh-2')].join('\n') + '\n';
    const res = await api.call({ method: 'POST', url: '/v1/imports', headers: { 'content-type': 'application/x-ndjson' }, body });
    expect(res.statusCode, res.body).toBe(202);
    let job = res.json();
    for (let i = 0; i < 100 && job.state === 'running' && !job.failure; i++) {
      await new Promise((r) => setTimeout(r, 50));
      job = (await api.get(`/v1/imports/${job.id}`)).json();
    }
    expect(job).toMatchObject({ state: 'completed', failure: null, counts: { read: 2, imported: 1, rejected: 1 } });
    expect((await api.get(`/v1/imports/${job.id}/errors`)).json().data).toEqual([{ line: 1, field: 'metadata', ...TOO_DEEP }]);
    expect((await other.post('/v1/users', individual())).statusCode).toBe(201);
  }, 60_000);
});

describe('a CSV record longer than any user', () => {
  const HEAD = 'type,external_ref,country,first_name,last_name,occupation';

  it('a header of one 32 MiB cell answers 400 import.malformed_header (too_long) before any job, and another tenant’s requests wait under a second meanwhile', async () => {
    const t = await createTenant(ctx.db);
    const api = client(ctx.app, t.ownerKey);
    const other = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
    const body = Buffer.from(`${'a'.repeat(32 * 1024 * 1024 - 16)}\n`);
    let settled = false;
    const posting = api.call({ method: 'POST', url: '/v1/imports', headers: { 'content-type': 'text/csv' }, body }).finally(() => {
      settled = true;
    });
    // Before: the header was read a character at a time (and again by the run): the other tenant waited 10 s.
    let waited = 0;
    const until = Date.now() + 3000;
    while (!settled || Date.now() < until) {
      const t0 = Date.now();
      expect((await other.get('/v1/users?limit=1')).statusCode).toBe(200);
      waited = Math.max(waited, Date.now() - t0);
      if (Date.now() > until + 30_000) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const res = await posting;
    expect(res.statusCode, res.body.slice(0, 300)).toBe(400);
    expect(res.json()).toMatchObject({ code: 'import.malformed_header', errors: [{ field: 'header', code: 'too_long' }] });
    expect(await jobsOf(t.tenantId)).toEqual([]);
    expect(waited).toBeLessThan(1000);
  }, 90_000);

  it('a record longer than 64 KiB is a malformed row, quoted line breaks and all; the rows after it keep their line numbers and are imported', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const long = `"${'x'.repeat(40_000)}\n""quoted""\n${'y'.repeat(40_000)}"`;
    const text = `${HEAD}\nindividual,cl-1,FR,Ann,Oak,Pilot\nindividual,cl-2,FR,Bo,Lee,${long}\nindividual,cl-3,FR,Cy,Elm,"Baker, ""head"" cook"\nindividual,cl-4,FR,Di,Ash,Clerk\n`;
    const job = await run(tenantId, text, { format: 'csv' });
    expect(job).toMatchObject({ state: 'completed', counts: { read: 4, imported: 3, rejected: 1 } });
    expect((await usersOf(tenantId)).map((u) => [u.external_ref, (u.profile as { occupation?: string }).occupation])).toEqual([
      ['cl-1', 'Pilot'], ['cl-3', 'Baker, "head" cook'], ['cl-4', 'Clerk'],
    ]);
    expect(await errorsOf(tenantId)).toEqual([{ line: 3, field: 'record', code: 'malformed', message: 'is longer than 65536 characters' }]);
    // The lines after it are counted right: its quoted line breaks put cl-3 on line 6 and cl-5 on line 8.
    const t2 = (await createTenant(ctx.db)).tenantId;
    expect(await run(t2, `${text}individual,cl-5,XX,Ed,Fir,Clerk\n`, { format: 'csv' })).toMatchObject({ counts: { rejected: 2 } });
    expect((await errorsOf(t2)).map(({ line, field, code }) => [line, field, code])).toEqual([[3, 'record', 'malformed'], [8, 'country', 'invalid_country']]);
  }, 60_000);
});

describe('an NDJSON line longer than any user', () => {
  const line = (ref: string, extra = '') => `{"type":"individual","external_ref":"${ref}","country":"FR","first_name":"Ann","last_name":"Oak"${extra}}`;
  const long = (ref: string, chars: number) => line(ref, `,"occupation":"${'x'.repeat(chars)}"`);
  const MAX = 4 * 1024 * 1024;
  /** What a reader yields for `text` cut into 64 KiB chunks, as kyclo import reads a file: [line, external_ref or why malformed]. */
  const readChunked = async (reader: typeof ndjson, text: string) => {
    const bytes = Buffer.from(text);
    const chunks = Array.from({ length: Math.ceil(bytes.length / 65_536) }, (_, i) => bytes.subarray(i * 65_536, (i + 1) * 65_536));
    const read = [];
    for await (const r of reader(Readable.from(chunks))) read.push('malformed' in r ? [r.line, r.malformed] : [r.line, 'record' in r && r.record.external_ref]);
    return read;
  };

  it('a line longer than 4 MiB is a malformed row, skipped without being kept; the lines after it keep their numbers and are imported, read whole or in 64 KiB chunks', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const text = [line('nl-1'), long('nl-2', MAX), '', line('nl-4'), line('nl-5', ',"country":"XX"')].join('\n') + '\n';
    expect(await run(tenantId, text)).toMatchObject({ state: 'completed', counts: { read: 4, imported: 2, rejected: 2 } });
    expect((await usersOf(tenantId)).map((u) => u.external_ref)).toEqual(['nl-1', 'nl-4']);
    // Before: the line was parsed whole and reported as its occupation's maxLength.
    expect((await errorsOf(tenantId)).map(({ line: l, field, code, message }) => [l, field, code, message])).toEqual([
      [2, 'record', 'malformed', `is longer than ${MAX} characters`], [5, 'country', 'invalid_country', expect.any(String)],
    ]);
    expect(await readChunked(ndjson, text)).toEqual([[1, 'nl-1'], [2, `is longer than ${MAX} characters`], [4, 'nl-4'], [5, 'nl-5']]);
  }, 60_000);

  it('four 8 MiB lines among 20,000 rows, read from a file in 64 KiB chunks as kyclo import reads it, take the reader under 3 s (before: 10 s, every chunk searched the line again from its start)', async () => {
    const file = path.join(tmp, 'long-lines.ndjson');
    const out = await fs.open(file, 'w');
    for (let i = 0; i < 20_000; i++) await out.write(`${i % 5000 === 2500 ? long(`ll-${i}`, 8 * 1024 * 1024) : line(`ll-${i}`)}\n`);
    await out.close();
    const started = performance.now();
    let rows = 0;
    const malformed: number[] = [];
    for await (const r of ndjson(createReadStream(file))) {
      rows++;
      if ('malformed' in r) malformed.push(r.line);
    }
    expect(performance.now() - started).toBeLessThan(3000);
    expect({ rows, malformed }).toEqual({ rows: 20_000, malformed: [2501, 7501, 12501, 17501] });
  }, 120_000);

  it('in a JSON array, an element longer than 4 MiB is likewise a malformed row, never kept whole; the elements after it are imported, read whole or in 64 KiB chunks', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const text = `{"users": [\n${[line('ja-1'), long('ja-2', MAX), line('ja-3'), line('ja-4', ',"country":"XX"')].join(',\n')}\n]}\n`;
    expect(await run(tenantId, text, { format: 'json' })).toMatchObject({ state: 'completed', counts: { read: 4, imported: 2, rejected: 2 } });
    expect((await usersOf(tenantId)).map((u) => u.external_ref)).toEqual(['ja-1', 'ja-3']);
    // Before: the element was collected whole, however long, and reported as its occupation's maxLength.
    expect((await errorsOf(tenantId)).map(({ line: l, field, code, message }) => [l, field, code, message])).toEqual([
      [3, 'record', 'malformed', `is longer than ${MAX} characters`], [5, 'country', 'invalid_country', expect.any(String)],
    ]);
    expect(await readChunked(json, text)).toEqual([[2, 'ja-1'], [3, `is longer than ${MAX} characters`], [4, 'ja-3'], [5, 'ja-4']]);
    // An element that is exactly at the bound is still read.
    const atBound = line('ja-5', `,"occupation":"${'x'.repeat(MAX - line('ja-5', ',"occupation":""').length)}"`);
    expect(atBound.length).toBe(MAX);
    const one = [];
    for await (const r of json(Readable.from([`[${atBound}]`]))) one.push('malformed' in r ? r.malformed : 'record' in r && r.record.external_ref);
    expect(one).toEqual(['ja-5']);
  }, 60_000);
});

describe('a row in a state no API call leaves a user in', () => {
  const rowsOf = (rows: Array<Record<string, unknown>>) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  const errorList = async (tenantId: string) => (await errorsOf(tenantId)).map(({ line, field, code }) => [line, field, code]);

  it('status_reason on an active user is that row’s without_status, as POST /v1/users answers it (400); a reason with another status is imported', async () => {
    const t = await createTenant(ctx.db);
    const viaApi = await client(ctx.app, t.ownerKey).post('/v1/users', individual({ status_reason: 'fraud_suspected' }));
    expect([viaApi.statusCode, viaApi.json().errors]).toEqual([400, [expect.objectContaining({ field: 'status_reason', code: 'without_status' })]]);
    const job = await run(t.tenantId, rowsOf([
      individual({ external_ref: 'sr-1', status_reason: 'fraud_suspected' }),
      individual({ external_ref: 'sr-2', status: 'suspended', status_reason: 'fraud_suspected' }),
    ]));
    expect(job).toMatchObject({ counts: { imported: 1, rejected: 1 } });
    expect(await errorList(t.tenantId)).toEqual([[1, 'status_reason', 'without_status']]);
    expect((await usersOf(t.tenantId)).map((u) => u.external_ref)).toEqual(['sr-2']);
  });

  it('verified without verified_at, verified_at or a level on an unverified user, a status changed before creation: each that row’s error naming the field; consistent rows are imported', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const job = await run(tenantId, rowsOf([
      individual({ external_ref: 'ks-1', kyc: { status: 'verified', level: 2, verified_at: '2024-03-01T10:00:00Z' } }),
      individual({ external_ref: 'ks-2', kyc: { status: 'verified', level: 2 } }),
      individual({ external_ref: 'ks-3', kyc: { status: 'unverified', level: 3, verified_at: '2020-01-01T00:00:00Z' } }),
      individual({ external_ref: 'ks-4', status: 'closed', status_reason: 'other', created_at: '2024-01-01T00:00:00Z', status_changed_at: '1990-01-01T00:00:00Z' }),
      // Verified once, a new verification pending: the API leaves a user so. A status without its date counts from the import.
      individual({ external_ref: 'ks-5', kyc: { status: 'pending', level: 1, verified_at: '2023-01-01T00:00:00Z' } }),
      individual({ external_ref: 'ks-6', status: 'closed', status_reason: 'other', created_at: '2024-01-01T00:00:00Z' }),
      // A status dated, the creation not: created at the change, never after its own history.
      individual({ external_ref: 'ks-7', status: 'suspended', status_reason: 'fraud_suspected', status_changed_at: '2021-06-01T00:00:00Z' }),
    ]));
    expect(job).toMatchObject({ counts: { imported: 4, rejected: 3 } });
    expect(await errorList(tenantId)).toEqual([
      [2, 'kyc.verified_at', 'required'], [3, 'kyc.verified_at', 'without_verification'], [3, 'kyc.level', 'without_verification'], [4, 'status_changed_at', 'before_created_at'],
    ]);
    const users = await usersOf(tenantId);
    expect(users.map((u) => u.external_ref)).toEqual(['ks-1', 'ks-5', 'ks-6', 'ks-7']);
    const undated = await ctx.db.selectFrom('users').select(['id', 'created_at', 'status_changed_at']).where('tenant_id', '=', tenantId).where('external_ref', '=', 'ks-7').executeTakeFirstOrThrow();
    expect([undated.created_at.toISOString(), undated.status_changed_at.toISOString()]).toEqual(['2021-06-01T00:00:00.000Z', '2021-06-01T00:00:00.000Z']);
    const history = await ctx.db.selectFrom('status_changes').select(['to_status', 'created_at']).where('tenant_id', '=', tenantId).where('user_id', '=', undated.id).execute();
    expect(history).toEqual([{ to_status: 'suspended', created_at: new Date('2021-06-01T00:00:00Z') }]);
  });
});

describe('the files kyclo import writes', () => {
  it('--report is readable by its owner alone (0600): a new file, and an existing 0644 file made 0600 and emptied before the report is written', async () => {
    const { tenantId } = await createTenant(ctx.db);
    const env = cliEnv({ DATABASE_URL: ctx.databaseUrl });
    const file = path.join(tmp, 'rows.ndjson');
    await fs.writeFile(file, [individual({ external_ref: 'rp-1' }), individual({ external_ref: 'rp-2', country: 'XX' })].map((r) => JSON.stringify(r)).join('\n') + '\n');
    const fresh = path.join(tmp, 'report-new.ndjson');
    const shared = path.join(tmp, 'report-shared.ndjson');
    await fs.writeFile(shared, `${'{"an":"older, longer report"}\n'.repeat(1000)}`);
    await fs.chmod(shared, 0o644);
    for (const [report, first] of [[fresh, 'created'], [shared, 'existing']] as const) {
      const res = await runCli(['import', file, '--tenant', tenantId, '--report', report], env);
      expect(res.code, res.stderr).toBe(1);
      // The report lists each row's reference and user id: not for the machine's other users.
      expect({ report: path.basename(report), mode: ((await fs.stat(report)).mode & 0o777).toString(8) }).toEqual({ report: path.basename(report), mode: '600' });
      const lines = (await fs.readFile(report, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
      expect(lines).toEqual([expect.objectContaining({ line: 1, outcome: first }), expect.objectContaining({ line: 2, outcome: 'rejected' })]);
    }
  }, 60_000);
});
