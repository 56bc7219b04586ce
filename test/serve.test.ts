import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { createTenant, createTestContext, type TestContext } from './helpers/app.js';
import { cliEnv, runCli, startServer } from './helpers/processes.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const json = async (url: string, init: RequestInit = {}) => {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.json() };
};

describe('kyclo serve', () => {
  it('with DATABASE_URL: serves, creates no tenant by itself, and exits 0 on SIGTERM', async () => {
    const server = await startServer(cliEnv({ DATABASE_URL: ctx.databaseUrl, PORT: '0' }));
    try {
      expect(await json(`${server.baseUrl}/healthz`)).toEqual({ status: 200, body: { status: 'ok' } });
      // The server runs the audit sealer: its readiness says how sealing fares.
      expect(await json(`${server.baseUrl}/readyz`)).toMatchObject({ status: 200, body: { status: 'ready', audit_sealer: { state: 'ok', unsealed_entries: 0 } } });
      expect(server.output()).not.toContain('First run');
      expect(await ctx.db.selectFrom('tenants').selectAll().execute()).toEqual([]);
    } finally {
      expect(await server.stop('SIGTERM')).toBe(0);
    }
  });

  it('with DATABASE_URL and no master key: refuses to start, exit 1, with a message that says what to do', async () => {
    const run = await runCli(['serve'], cliEnv({ DATABASE_URL: ctx.databaseUrl, PORT: '0', KYCLO_MASTER_KEY: undefined }));
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('KYCLO_MASTER_KEY');
    expect(run.stderr).toContain('openssl rand -base64 32');
  });

  it('on SIGTERM, finishes a request already in flight before exiting 0', async () => {
    const { ownerKey, tenantId } = await createTenant(ctx.db);
    const server = await startServer(cliEnv({ DATABASE_URL: ctx.databaseUrl, PORT: '0' }));
    const { hostname, port } = new URL(server.baseUrl);
    const body = JSON.stringify({ type: 'individual', country: 'FR', first_name: 'In', last_name: 'Flight', external_ref: 'in-flight' });
    const socket = net.connect(Number(port), hostname);
    await new Promise((r) => socket.once('connect', r));
    let response = '';
    socket.on('data', (d) => (response += d));
    const closed = new Promise((r) => socket.once('close', r));
    // Headers and half the body now; the rest after the server has been told to stop.
    socket.write(
      `POST /v1/users HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${ownerKey}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n` +
        body.slice(0, 20),
    );
    await new Promise((r) => setTimeout(r, 300));
    const exit = server.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    socket.write(body.slice(20));
    await closed;
    expect(response).toMatch(/^HTTP\/1.1 201/);
    expect(await exit).toBe(0);
    const rows = await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).where('external_ref', '=', 'in-flight').execute();
    expect(rows).toHaveLength(1);
  });

  it('without DATABASE_URL: starts an embedded PostgreSQL, prints an OWNER key once, keeps data across restarts, exits 0', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kyclo-serve-'));
    const env = cliEnv({ DATABASE_URL: undefined, KYCLO_DATA_DIR: dataDir, PORT: '0', KYCLO_MASTER_KEY: undefined });
    try {
      const first = await startServer(env);
      let key: string;
      let userId: string;
      try {
        expect(first.output()).toContain('First run: created tenant "default"');
        expect(first.output()).toContain('/docs');
        key = /(kyclo_live_[A-Za-z0-9]{32})/.exec(first.output())![1]!;
        // Every link the banner prints answers (the API one with the key it printed).
        const links = [...first.output().matchAll(/(?:API|Docs|OpenAPI) +(http:\/\/\S+)/g)].map((m) => m[1]!);
        expect(links).toHaveLength(3);
        for (const link of links) {
          const res = await fetch(link, { headers: { authorization: `Bearer ${key}` } });
          expect(res.status, link).toBe(200);
        }
        const created = await json(`${first.baseUrl}/v1/users`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ type: 'individual', country: 'FR', first_name: 'Alex', last_name: 'Oak', external_ref: 'crm-4711' }),
        });
        expect(created.status).toBe(201);
        userId = created.body.id;
      } finally {
        expect(await first.stop('SIGINT')).toBe(0);
      }
      // The embedded PostgreSQL was stopped with the server.
      await expect(fs.stat(path.join(dataDir, 'pg', 'postmaster.pid'))).rejects.toThrow();
      for (const secret of ['pg-password', 'master.key']) {
        expect((await fs.stat(path.join(dataDir, secret))).mode & 0o777, secret).toBe(0o600);
      }
      const masterKey = await fs.readFile(path.join(dataDir, 'master.key'), 'utf8');
      expect(Buffer.from(masterKey.trim(), 'base64')).toHaveLength(32);

      const second = await startServer(env);
      try {
        expect(second.output()).not.toContain('First run');
        const again = await json(`${second.baseUrl}/v1/users/${userId}`, { headers: { authorization: `Bearer ${key}` } });
        expect(again.status).toBe(200);
        expect(again.body.external_ref).toBe('crm-4711');
      } finally {
        expect(await second.stop('SIGTERM')).toBe(0);
      }
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
