// An Idempotency-Key never runs a write twice: a real server process killed (SIGKILL) after its
// write committed and before it stored the response, then the same request with the same key sent
// to a second process → the original user, and exactly one user in the database. The first process
// dies through KYCLO_TEST_CRASH_AFTER_COMMIT, a test-only switch read at start (inert in production).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, openTenantContext, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { cliEnv, startServer, type Server } from './helpers/processes.js';

let ctx: TestContext;
let tenantId: string;
const servers: Server[] = [];

beforeAll(async () => ({ ctx, tenantId } = await openTenantContext()));
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop('SIGKILL')));
  await ctx.close();
});

const env = (extra: Record<string, string> = {}) => cliEnv({ DATABASE_URL: ctx.databaseUrl, PORT: '0', KYCLO_SERVE_WORKERS: 'false', ...extra });

async function post(server: Server, key: string, path: string, body: unknown, idempotencyKey: string) {
  const res = await fetch(`${server.baseUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

describe('a process killed between commit and response', () => {
  it('the retry on another process answers the user the first one created: one user, never two', async () => {
    const key = (await createKey(ctx.db, tenantId, 'ADMIN')).key;
    const body = individual();
    const dying = await startServer(env({ KYCLO_TEST_CRASH_AFTER_COMMIT: '1' }));
    servers.push(dying);
    const exited = new Promise<NodeJS.Signals | null>((r) => dying.child.on('exit', (_code, signal) => r(signal)));
    await expect(post(dying, key, '/v1/users', body, 'crash-1')).rejects.toThrow();
    expect(await exited).toBe('SIGKILL');
    const made = await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).where('external_ref', '=', body.external_ref).execute();
    expect(made).toHaveLength(1); // the write committed before the process died

    const survivor = await startServer(env());
    servers.push(survivor);
    const retry = await post(survivor, key, '/v1/users', body, 'crash-1');
    expect(retry.status).toBe(201);
    expect(retry.json).toMatchObject({ id: made[0]!.id, external_ref: body.external_ref, version: 1 });
    expect(retry.headers.get('location')).toBe(`/v1/users/${made[0]!.id}`);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    const again = await post(survivor, key, '/v1/users', body, 'crash-1');
    expect(again).toMatchObject({ status: 201, json: retry.json });
    const users = await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).where('external_ref', '=', body.external_ref).execute();
    expect(users).toHaveLength(1);
    const created = await ctx.db.selectFrom('audit_entries').select('id').where('tenant_id', '=', tenantId).where('action', '=', 'user.created').where('user_id', '=', made[0]!.id).execute();
    expect(created).toHaveLength(1);
  }, 120_000);

  it('a change request approved by a process that died answers the approved request, and the values are applied once', async () => {
    const admin = (await createKey(ctx.db, tenantId, 'ADMIN')).key;
    const officer = (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key;
    const survivor = servers.at(-1)!;
    const user = (await client(ctx.app, admin).post('/v1/users', individual())).json();
    await client(ctx.app, admin).post(`/v1/users/${user.id}/verifications`, { result: 'approved', provider: 'acme-kyc' });
    const proposed = await client(ctx.app, officer).patch(`/v1/users/${user.id}`, { last_name: 'Rowan' });
    const change = proposed.json().pending_changes[0].id as string;
    const dying = await startServer(env({ KYCLO_TEST_CRASH_AFTER_COMMIT: '1' }));
    servers.push(dying);
    await expect(post(dying, admin, `/v1/change-requests/${change}/approve`, {}, 'approve-1')).rejects.toThrow();
    const retry = await post(survivor, admin, `/v1/change-requests/${change}/approve`, {}, 'approve-1');
    expect(retry.status).toBe(200);
    expect(retry.json).toMatchObject({ id: change, status: 'approved' });
    const approvals = await ctx.db.selectFrom('audit_entries').select('id').where('tenant_id', '=', tenantId).where('action', '=', 'change_request.approved').where('target_id', '=', change).execute();
    expect(approvals).toHaveLength(1);
    expect((await ctx.db.selectFrom('users').select('profile').where('id', '=', user.id).executeTakeFirstOrThrow()).profile).toMatchObject({ last_name: 'Rowan' });
  }, 120_000);
});
