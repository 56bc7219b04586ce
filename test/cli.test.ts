import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createTestContext, type TestContext } from './helpers/app.js';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cliEnv, runCli, runNode } from './helpers/processes.js';

const BIN = path.resolve(import.meta.dirname, '../bin/kyclo.js');

let ctx: TestContext;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  ctx = await createTestContext();
  env = cliEnv({ DATABASE_URL: ctx.databaseUrl });
});
afterAll(() => ctx.close());

describe('the kyclo CLI', () => {
  let tenantId: string;
  let ownerKey: string;

  it('tenants create NAME --json prints exactly one JSON object, and the OWNER key works', async () => {
    const run = await runCli(['tenants', 'create', 'acme', '--json'], env);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const parsed = JSON.parse(lines[0]!);
    expect(Object.keys(parsed).sort()).toEqual(['api_key', 'tenant_id']);
    expect(parsed.api_key).toMatch(/^kyclo_live_[A-Za-z0-9]{32}$/);
    ({ tenant_id: tenantId, api_key: ownerKey } = parsed);
    const row = await ctx.db.selectFrom('tenants').selectAll().where('id', '=', tenantId).executeTakeFirstOrThrow();
    expect(row.name).toBe('acme');
    const res = await client(ctx.app, ownerKey).get('/v1/api-keys');
    expect(res.statusCode).toBe(200);
    expect(res.json().data).toEqual([expect.objectContaining({ role: 'OWNER' })]);
  });

  it('tenants list shows every tenant, as text and as JSON; --version prints the package version', async () => {
    const json = await runCli(['tenants', 'list', '--json'], env);
    expect(json.code, json.stderr).toBe(0);
    const listed = JSON.parse(json.stdout) as Array<{ id: string; name: string; created_at: string }>;
    expect(listed).toContainEqual({ id: tenantId, name: 'acme', created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    const text = await runCli(['tenants', 'list'], env);
    expect(text.stdout).toMatch(new RegExp(`^${tenantId}  \\S+  acme$`, 'm'));
    const version = await runCli(['--version'], env);
    const { version: expected } = JSON.parse(await (await import('node:fs/promises')).readFile(new URL('../package.json', import.meta.url), 'utf8'));
    expect(version.stdout.trim()).toBe(expected);
  });

  it('refuses a second tenant with the same name, with a message and a non-zero exit', async () => {
    const run = await runCli(['tenants', 'create', 'acme'], env);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('already exists');
    expect(await ctx.db.selectFrom('tenants').select('id').where('name', '=', 'acme').execute()).toHaveLength(1);
  });

  it('keys create --json adds key_id; keys list shows it; keys revoke stops it working', async () => {
    const run = await runCli(['keys', 'create', '--tenant', tenantId, '--role', 'READER', '--json'], env);
    expect(run.code, run.stderr).toBe(0);
    const created = JSON.parse(run.stdout);
    expect(Object.keys(created).sort()).toEqual(['api_key', 'key_id', 'tenant_id']);
    expect(created.tenant_id).toBe(tenantId);
    const reader = client(ctx.app, created.api_key);
    expect((await reader.get('/v1/users')).statusCode).toBe(200);

    const list = await runCli(['keys', 'list', '--tenant', tenantId], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(created.key_id);
    expect(list.stdout).toContain('READER');
    expect(list.stdout).not.toContain(created.api_key);

    const revoke = await runCli(['keys', 'revoke', created.key_id], env);
    expect(revoke.code, revoke.stderr).toBe(0);
    const denied = await reader.get('/v1/users');
    expect(denied.statusCode).toBe(401);
    expect(denied.json().code).toBe('auth.key_revoked');
    const audit = await ctx.db.selectFrom('audit_entries').selectAll().where('target_id', '=', created.key_id).orderBy('seq').execute();
    expect(audit.map((a) => [a.action, a.actor_type])).toEqual([['api_key.created', 'cli'], ['api_key.revoked', 'cli']]);
  });

  it('refuses an unknown role, an unknown tenant and an unknown key', async () => {
    const role = await runCli(['keys', 'create', '--tenant', tenantId, '--role', 'GOD'], env);
    expect(role.code).not.toBe(0);
    expect(role.stderr).toMatch(/GOD/);
    const tenant = await runCli(['keys', 'create', '--tenant', 'ten_nope', '--role', 'READER'], env);
    expect(tenant.code).not.toBe(0);
    expect(tenant.stderr).toContain('No tenant ten_nope');
    const key = await runCli(['keys', 'revoke', 'key_nope'], env);
    expect(key.code).not.toBe(0);
    expect(key.stderr).toContain('No API key key_nope');
  });

  it('exits 1 with a clear message when the configuration is invalid', async () => {
    const run = await runCli(['migrate'], cliEnv({ DATABASE_URL: ctx.databaseUrl, PORT: 'eighty', LOG_LEVEL: 'chatty' }));
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('invalid configuration');
    expect(run.stderr).toContain('PORT');
    expect(run.stderr).toContain('LOG_LEVEL');
  });

  it('migrate reports an up-to-date database', async () => {
    const run = await runCli(['migrate'], env);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('up to date');
  });

  it('the kyclo command runs with the heap cap npm start gives the server, unless the caller chose one', async () => {
    // A preload in NODE_OPTIONS runs in every node the command starts: each prints its heap limit.
    // Only main threads print: without a build the command runs through tsx, whose module hooks run
    // in a thread of their own that loads the preload too.
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kyclo-heap-'));
    const preload = path.join(dir, 'heap.cjs');
    await fs.writeFile(preload, "if (require('node:worker_threads').isMainThread) process.stderr.write(`heap ${Math.round(require('v8').getHeapStatistics().heap_size_limit / 2 ** 20)}\\n`);\n");
    const limits = (stderr: string) => [...stderr.matchAll(/^heap (\d+)$/gm)].map((m) => Number(m[1]));
    const run = (nodeArgs: string[]) => runNode([...nodeArgs, BIN, '--version'], { ...env, NODE_OPTIONS: `--require ${preload}` });
    const plain = await run([]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const [outer, inner] = limits(plain.stderr);
    expect(outer).toBeGreaterThan(400); // node's own default
    expect(inner).toBeGreaterThanOrEqual(256);
    expect(inner).toBeLessThan(400); // 256 MB of old generation and the young one
    const chosen = await run(['--max-old-space-size=1024']);
    expect(chosen.code, chosen.stderr).toBe(0);
    expect(limits(chosen.stderr)).toEqual([expect.any(Number)]); // not started again
    expect(limits(chosen.stderr)[0]).toBeGreaterThanOrEqual(1024);
    await fs.rm(dir, { recursive: true });
  });
});
