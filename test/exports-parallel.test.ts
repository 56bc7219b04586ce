// `kyclo export --jobs N`: pages rendered by worker threads inside the export's one snapshot. The
// output must be the one-thread export's, byte for byte; a write made while it runs must not show;
// a thread that fails fails the export with its reason; and nothing stays open afterwards.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { client, createTenant, createTestContext, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { importText } from './helpers/imports.js';
import { cliEnv, runCli } from './helpers/processes.js';
import { createServices, type Services } from '../src/services.js';
import { cliActor } from '../src/modules/audit/actor.js';
import { PAGE_ROWS } from '../src/modules/exports/exports.service.js';
import { openSnapshot } from '../src/modules/exports/exports.repo.js';
import { connectionStringOf, parallelPages } from '../src/modules/exports/parallel.js';
import { poolOf } from '../src/db/database.js';

let ctx: TestContext;
let services: Services;
let tenantId: string;
let ownerKey: string;
const masterKey = () => Buffer.from(inject('masterKey'), 'base64');
const N = PAGE_ROWS * 3 + 17;

beforeAll(async () => {
  ctx = await createTestContext();
  services = createServices({ db: ctx.db, keyring: ctx.keyring, blobs: ctx.blobs, exportThreads: { masterKey: masterKey() } });
  ({ tenantId, ownerKey } = await createTenant(ctx.db));
  const api = client(ctx.app, ownerKey);
  // A personal tenant-defined field, so threads open sealed values with their own keyring.
  const custom_fields = { account_no: { schema: { type: 'string', maxLength: 12 }, personal: true } };
  expect((await api.call({ method: 'PUT', url: '/v1/policy', body: { custom_fields } })).statusCode).toBe(200);
  const rows = Array.from({ length: N }, (_, i) => individual({ external_ref: `par-${i}`, custom: { account_no: `ACC${i}` }, ...(i % 7 === 0 ? { status: 'suspended', status_reason: 'fraud_suspected' } : {}) }));
  const { job } = await importText(services, tenantId, rows.map((r) => JSON.stringify(r)).join('\n'));
  expect(job.counts.imported).toBe(N);
  const [first] = await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).orderBy('id').limit(1).execute();
  await api.post(`/v1/users/${first!.id}/verifications`, { result: 'approved', provider: 'onfido', level: 2 });
}, 120_000);
afterAll(() => ctx.close());

async function collect(stream: AsyncGenerator<Buffer>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const page of stream) parts.push(page);
  return Buffer.concat(parts).toString();
}
/** The lines without the trailer (whose snapshot time differs between two exports), and the trailer. */
function split(text: string) {
  const lines = text.trimEnd().split('\n');
  return { body: lines.slice(0, -1).join('\n'), trailer: JSON.parse(lines.at(-1)!) as { count: number } };
}
/** Connections to this file's database other than the ones this test holds. */
async function backends(): Promise<number> {
  const r = await poolOf(ctx.db)!.query<{ n: string }>('select count(*) as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()');
  return Number(r.rows[0]!.n);
}
async function settled(expected: number): Promise<number> {
  let n = await backends();
  for (let i = 0; i < 50 && n !== expected; i++) {
    await new Promise((r) => setTimeout(r, 100));
    n = await backends();
  }
  return n;
}

describe('an export on worker threads', () => {
  it('writes exactly the bytes of the one-thread export: every part, filter and resume point', async () => {
    const actor = cliActor(tenantId);
    const cases = [
      {},
      { include: ['verifications', 'status_changes', 'documents_meta'] as const },
      { status: ['suspended'] },
      { risk: ['unrated'], created_from: '2000-01-01T00:00:00Z' },
      { after: (await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).orderBy('id').offset(PAGE_ROWS + 3).limit(1).executeTakeFirstOrThrow()).id },
    ];
    for (const q of cases) {
      const one = split(await collect(await services.exports.stream(actor, { ...q, include: q.include ? [...q.include] : undefined }, { jobs: 1 })));
      const three = split(await collect(await services.exports.stream(actor, { ...q, include: q.include ? [...q.include] : undefined }, { jobs: 3 })));
      expect(three.trailer.count).toBe(one.trailer.count);
      expect(three.body === one.body, `the same bytes for ${JSON.stringify(q)}`).toBe(true);
    }
    const all = split(await collect(await services.exports.stream(actor, { include: ['verifications'] }, { jobs: 2 })));
    expect(all.trailer.count).toBe(N);
    const lines = all.body.split('\n').map((l) => JSON.parse(l));
    // Personal values opened by the threads' keyrings, in id order, the verification attached.
    expect(lines.map((l) => l.id)).toEqual([...lines.map((l) => l.id)].sort());
    expect(new Set(lines.map((l) => l.custom.account_no)).size).toBe(N);
    expect(lines[0].verifications).toEqual([expect.objectContaining({ result: 'approved' })]);
  }, 120_000);

  it('is one snapshot: a user created and a user changed after it began are as they were', async () => {
    const api = client(ctx.app, ownerKey);
    const before = await backends();
    // The snapshot is taken here; the threads start, and adopt it, only when the first page is asked
    // for: a thread reading in a snapshot of its own would see the writes made in between.
    const stream = await services.exports.stream(cliActor(tenantId), {}, { jobs: 2 });
    const last = await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).orderBy('id', 'desc').limit(1).executeTakeFirstOrThrow();
    const renamed = await api.patch(`/v1/users/${last.id}`, { first_name: 'Renamed' }, { 'content-type': 'application/merge-patch+json' });
    expect(renamed.statusCode, renamed.body).toBe(200);
    const late = (await api.post('/v1/users', individual())).json();
    const out = split(await collect(stream));
    const lines = out.body.split('\n').map((l) => JSON.parse(l));
    expect(out.trailer.count).toBe(N);
    expect(lines.some((l) => l.id === late.id)).toBe(false);
    const exported = lines.find((l) => l.id === last.id)!;
    expect(exported.first_name).not.toBe('Renamed');
    expect(exported.version).toBe(renamed.json().version - 1);
    // The threads ended their transactions and closed their connections.
    expect(await settled(before)).toBe(before);
  }, 60_000);

  it('cut after its first page, closes its threads and every connection they opened', async () => {
    const before = await backends();
    const stream = await services.exports.stream(cliActor(tenantId), {}, { jobs: 2 });
    await stream.next();
    expect(await backends()).toBeGreaterThan(before);
    await stream.return(undefined);
    expect(await settled(before)).toBe(before);
    expect(poolOf(ctx.db)!.totalCount - poolOf(ctx.db)!.idleCount).toBe(0);
  }, 60_000);

  it('a thread that cannot join the snapshot fails the export with PostgreSQL’s reason', async () => {
    const before = await backends();
    const snap = await openSnapshot(ctx.db);
    try {
      // A well-formed name no transaction exported.
      const pages = parallelPages({
        masterKey: masterKey(), connectionString: connectionStringOf(ctx.db), snap: { ...snap, id: '0000000A-0000000B-1' },
        tenantId, filters: {}, include: [], after: null, jobs: 2, pageRows: PAGE_ROWS,
      });
      await expect(pages.next()).rejects.toThrow(/snapshot/i);
    } finally {
      await snap.close();
    }
    expect(await settled(before)).toBe(before);
  }, 60_000);
});

describe('kyclo export --jobs (CLI)', () => {
  it('--jobs 2 writes the file --jobs 1 writes; --jobs 0 is refused with exit status 2', async () => {
    const env = cliEnv({ DATABASE_URL: ctx.databaseUrl });
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kyclo-export-'));
    const files = [path.join(dir, 'one.ndjson'), path.join(dir, 'two.ndjson')];
    for (const [i, jobs] of ['1', '2'].entries()) {
      const run = await runCli(['export', '--tenant', tenantId, '--jobs', jobs, '--output', files[i]!], env);
      expect(run.code, run.stderr).toBe(0);
    }
    const [one, two] = await Promise.all(files.map(async (f) => split(await fs.readFile(f, 'utf8'))));
    // The tenant's users, and the one the snapshot test created after its export began.
    expect(two!.trailer.count).toBe(N + 1);
    expect(one!.trailer.count).toBe(N + 1);
    expect(two!.body === one!.body).toBe(true);
    const refused = await runCli(['export', '--tenant', tenantId, '--jobs', '0'], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--jobs takes a whole number from 1 to 16');
    await fs.rm(dir, { recursive: true });
  }, 120_000);

  it('--output is readable by its owner alone (0600): a new file, and an existing 0644 file made 0600 and emptied before the export is written', async () => {
    const env = cliEnv({ DATABASE_URL: ctx.databaseUrl });
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kyclo-export-'));
    const fresh = path.join(dir, 'new.ndjson');
    const shared = path.join(dir, 'shared.ndjson');
    await fs.writeFile(shared, '{"an":"older export"}\n'.repeat(100_000));
    await fs.chmod(shared, 0o644);
    for (const file of [fresh, shared]) {
      const run = await runCli(['export', '--tenant', tenantId, '--external-ref', 'par-3', '--jobs', '1', '--output', file], env);
      expect(run.code, run.stderr).toBe(0);
      // Every user's personal data: not for the machine's other users.
      expect({ file: path.basename(file), mode: ((await fs.stat(file)).mode & 0o777).toString(8) }).toEqual({ file: path.basename(file), mode: '600' });
      const { body, trailer } = split(await fs.readFile(file, 'utf8'));
      expect({ refs: body.split('\n').map((l) => JSON.parse(l).external_ref), count: trailer.count }).toEqual({ refs: ['par-3'], count: 1 });
    }
    await fs.rm(dir, { recursive: true });
  }, 120_000);

  it('takes the API’s filters, checked by the API’s own schema: the same users as GET /v1/exports/users', async () => {
    const env = cliEnv({ DATABASE_URL: ctx.databaseUrl });
    const suspended = await runCli(['export', '--tenant', tenantId, '--status', 'suspended', '--type', 'individual', '--jobs', '1'], env);
    expect(suspended.code, suspended.stderr).toBe(0);
    const cli = split(suspended.stdout);
    const lines = cli.body.split('\n').map((l) => JSON.parse(l) as { status: string; external_ref: string });
    expect(cli.trailer.count).toBe(Math.ceil(N / 7));
    expect(lines.every((u) => u.status === 'suspended')).toBe(true);
    const api = await ctx.app.inject({ method: 'GET', url: '/v1/exports/users?status=suspended&type=individual', headers: { authorization: `Bearer ${ownerKey}` } });
    expect(split(api.body).body === cli.body).toBe(true);
    // A repeatable filter takes a list; a single user by its reference.
    const both = await runCli(['export', '--tenant', tenantId, '--status', 'suspended, active', '--external-ref', 'par-7', '--jobs', '1'], env);
    expect(both.code, both.stderr).toBe(0);
    expect(split(both.stdout).body.split('\n').map((l) => JSON.parse(l).external_ref)).toEqual(['par-7']);
    // What the API refuses, the command refuses, naming the option, before it reads anything.
    const refused = await runCli(['export', '--tenant', tenantId, '--status', 'frozen', '--created-from', 'yesterday', '--include', 'everything'], env);
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/--status .*allowed values/);
    expect(refused.stderr).toMatch(/--created-from must match format "date-time"/);
    expect(refused.stderr).toContain('--include must match pattern');
  }, 120_000);
});
