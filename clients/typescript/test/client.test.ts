// @kyclo/client against a running Kyclo: the app listening on a socket, over the test PostgreSQL.
// The seed stories as an integrator writes them, and each helper the client adds to the generated
// types: idempotency keys reused on retry, Retry-After, If-Match, cursors, problems, webhooks.
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, createTestContext, type TestContext } from '../../../test/helpers/app.js';
import { individual } from '../../../test/helpers/factories.js';
import { createKycloClient, createWebhookVerifier, KycloProblem, WebhookVerificationError, type CreateUserInput, type KycloClientOptions, type User } from '../src/index.js';
import { retryingFetch } from '../src/retry.js';

let ctx: TestContext;
let baseUrl: string;
let apiKey: string;

beforeAll(async () => {
  ctx = await createTestContext();
  await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  baseUrl = `http://127.0.0.1:${(ctx.app.server.address() as AddressInfo).port}`;
  apiKey = (await createTenant(ctx.db)).ownerKey;
});
afterAll(() => ctx.close());

const kyclo = (opts: Partial<KycloClientOptions> = {}) => createKycloClient({ baseUrl, apiKey, baseDelayMs: 10, ...opts });
const newUser = () => individual() as CreateUserInput;
const firstName = (u: User) => (u.type === 'individual' ? u.first_name : null);

describe('the seed stories, written with the client', () => {
  it('updates contact details conditionally on the version it read', async () => {
    const client = kyclo();
    const created = await client.users.create(newUser());
    expect(client.etagOf(created.id)).toBe('"1"');
    const updated = await client.users.update(created.id, { email: 'alex@example.org', phone: '+33622222222' });
    expect(updated).toMatchObject({ id: created.id, email: 'alex@example.org', phone: '+33622222222', version: 2 });
    expect(client.etagOf(created.id)).toBe('"2"');
  });

  it('suspends a user and checks its capabilities', async () => {
    const client = kyclo();
    const { id } = await client.users.create(newUser());
    const change = await client.users.suspend(id, { reason: 'fraud_suspected', note: 'card testing pattern' });
    expect(change).toMatchObject({ user_id: id, from: 'active', to: 'suspended', reason: 'fraud_suspected' });
    const caps = await client.users.capabilities(id);
    expect(caps.status).toBe('suspended');
    expect(caps.capabilities.withdrawals).toEqual({ allowed: false, reason: 'account_suspended' });
  });

  it('closes a user with an origin, after a status move made its ETag stale (the client forgets it)', async () => {
    const client = kyclo();
    const { id } = await client.users.create(newUser());
    await client.users.flag(id, { reason: 'compliance_review' });
    expect(client.etagOf(id)).toBeUndefined();
    const closed = await client.users.close(id, { origin: 'user', reason: 'user_request' });
    expect(closed).toMatchObject({ id, status: 'closed', status_reason: 'user_request' });
    const history = (await client.ok(client.api.GET('/v1/users/{id}/status-changes', { params: { path: { id } } }))).data;
    expect(history.map((c) => [c.to, c.origin])).toEqual([['closed', 'user'], ['flagged', 'operator']]);
  });
});

describe('what the client adds', () => {
  it('sends an Idempotency-Key per POST and reuses it when it retries after a lost answer: one user is made', async () => {
    const keys: string[] = [];
    let dropped = false;
    const client = kyclo({
      fetch: async (req) => {
        keys.push(req.headers.get('idempotency-key') ?? '');
        const res = await fetch(req);
        if (!dropped) {
          dropped = true;
          throw new TypeError('fetch failed: the connection was reset');
        }
        return res;
      },
    });
    const body = newUser();
    const user = await client.users.create(body);
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(keys[1]).toBe(keys[0]);
    const same = await ctx.db.selectFrom('users').select('id').where('external_ref', '=', String(body.external_ref)).execute();
    expect(same.map((u) => u.id)).toEqual([user.id]);
  });

  it('retries a 429 after its Retry-After, with the same Idempotency-Key', async () => {
    const seen: Array<{ key: string | null; at: number }> = [];
    const client = kyclo({
      fetch: async (req) => {
        seen.push({ key: req.headers.get('idempotency-key'), at: Date.now() });
        if (seen.length === 1) return new Response(JSON.stringify({ type: 'x', title: 'Too Many Requests', status: 429, detail: 'slow down', code: 'rate_limit.exceeded', request_id: 'r1' }), { status: 429, headers: { 'retry-after': '1', 'content-type': 'application/problem+json' } });
        return fetch(req);
      },
    });
    await client.users.create(newUser());
    expect(seen).toHaveLength(2);
    expect(seen[1]!.key).toBe(seen[0]!.key);
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it('gives up when Retry-After is longer than it may wait, answering the 503 as a problem', async () => {
    let calls = 0;
    const client = kyclo({
      maxDelayMs: 1000,
      fetch: async () => {
        calls++;
        return new Response(JSON.stringify({ type: 'x', title: 'Service Unavailable', status: 503, detail: 'down', code: 'service.unavailable', request_id: 'r2' }), { status: 503, headers: { 'retry-after': '120', 'content-type': 'application/problem+json' } });
      },
    });
    await expect(client.users.get('usr_x')).rejects.toMatchObject({ status: 503, code: 'service.unavailable', requestId: 'r2' });
    expect(calls).toBe(1);
  });

  it('sends If-Match from the last ETag: a change made meanwhile by someone else answers 412, nothing applied', async () => {
    const mine = kyclo();
    const theirs = kyclo();
    const { id } = await mine.users.create(newUser());
    await theirs.users.update(id, { first_name: 'Theirs' });
    const err = await mine.users.update(id, { first_name: 'Mine' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KycloProblem);
    expect(err).toMatchObject({ status: 412, code: 'precondition_failed' });
    expect(firstName(await mine.users.get(id))).toBe('Theirs');
    // Having read it again, the write goes through.
    expect(firstName(await mine.users.update(id, { first_name: 'Mine' }))).toBe('Mine');
  });

  it('keeps the ETag it read across a dry run: the write after it is still conditional (412 when someone wrote meanwhile)', async () => {
    const mine = kyclo();
    const theirs = kyclo();
    const { id } = await mine.users.create(newUser());
    const preview = await mine.users.dryRun(id, { first_name: 'Mine' });
    expect(preview).toMatchObject({ dry_run: true, version: 1 });
    // Before, the dry run's answer (no ETag) made the client forget it, and the update went unconditional.
    expect(mine.etagOf(id)).toBe('"1"');
    await theirs.users.update(id, { first_name: 'Theirs' });
    await expect(mine.users.update(id, { first_name: 'Mine' })).rejects.toMatchObject({ status: 412, code: 'precondition_failed' });
    expect(firstName(await theirs.users.get(id))).toBe('Theirs');
  });

  it('keeps the ETag of a user read by its external_ref: a write after it is conditional on that read', async () => {
    const body = newUser();
    const { id } = await kyclo().users.create(body);
    const reader = kyclo();
    const found = await reader.users.byExternalRef(String(body.external_ref));
    expect(found.id).toBe(id);
    // Before, the read's ETag was not kept (its path names no usr_ id): the update went unconditional.
    expect(reader.etagOf(id)).toBe('"1"');
    await kyclo().users.update(id, { first_name: 'Theirs' });
    await expect(reader.users.update(id, { first_name: 'Mine' })).rejects.toMatchObject({ status: 412 });
  });

  it('waits out a 409 that carries Retry-After (the same key still running), with the same Idempotency-Key', async () => {
    const keys: Array<string | null> = [];
    const client = kyclo({
      fetch: async (req) => {
        keys.push(req.headers.get('idempotency-key'));
        if (keys.length === 1) return new Response(JSON.stringify({ type: 'x', title: 'Conflict', status: 409, detail: 'running', code: 'idempotency.in_progress', request_id: 'r3' }), { status: 409, headers: { 'retry-after': '0', 'content-type': 'application/problem+json' } });
        return fetch(req);
      },
    });
    const body = newUser();
    const user = await client.users.create(body);
    expect(user.id).toMatch(/^usr_/);
    expect(keys).toHaveLength(2);
    expect(keys[1]).toBe(keys[0]);
    // A 409 without Retry-After (the external_ref taken) is an answer, not a reason to wait.
    await expect(client.users.create({ ...newUser(), external_ref: body.external_ref })).rejects.toMatchObject({ status: 409 });
    expect(keys).toHaveLength(3);
  });

  it('does not resend a PATCH after a 503: the server may have committed it before its connection died', async () => {
    let calls = 0;
    const client = kyclo({
      fetch: async (req) => {
        calls++;
        const res = await fetch(req);
        if (req.method !== 'PATCH') return res;
        await res.body?.cancel();
        return new Response(JSON.stringify({ type: 'x', title: 'Service Unavailable', status: 503, detail: 'db gone', code: 'service.unavailable', request_id: 'r4' }), { status: 503, headers: { 'retry-after': '0', 'content-type': 'application/problem+json' } });
      },
    });
    const { id } = await client.users.create(newUser());
    calls = 0;
    // Before, it was resent and answered 412 against its own, applied change.
    await expect(client.users.update(id, { first_name: 'Applied' })).rejects.toMatchObject({ status: 503, code: 'service.unavailable' });
    expect(calls).toBe(1);
    const row = await ctx.db.selectFrom('users').select(['version', 'profile']).where('id', '=', id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ version: 2, profile: expect.objectContaining({ first_name: 'Applied' }) });
  });

  it('retries a POST without a key (a multipart upload) after 503 document.uploads_busy only, not after service.unavailable', async () => {
    const problem = (code: string) => new Response(JSON.stringify({ type: 'x', title: 'Service Unavailable', status: 503, detail: 'busy', code, request_id: 'r5' }), {
      status: 503, headers: { 'retry-after': '0', 'content-type': 'application/problem+json' },
    });
    for (const [code, expected] of [['document.uploads_busy', [503, 201]], ['service.unavailable', [503]]] as const) {
      const seen: number[] = [];
      const send = retryingFetch(async () => {
        const res = seen.length === 0 ? problem(code) : new Response('{}', { status: 201 });
        seen.push(res.status);
        return res;
      }, { baseDelayMs: 1 });
      const form = new FormData();
      form.set('type', 'selfie');
      const res = await send(new Request(`${baseUrl}/v1/users/usr_x/documents`, { method: 'POST', body: form }));
      expect(seen, code).toEqual(expected);
      expect(res.status).toBe(expected.at(-1));
    }
  });

  it('iterates a list across pages with for await', async () => {
    const client = kyclo();
    const tag = `page-${Date.now()}`;
    const made = [];
    for (let i = 0; i < 5; i++) made.push((await client.users.create({ ...newUser(), tags: [tag] } as CreateUserInput)).id);
    const seen = [];
    for await (const user of client.users.list({ tag, limit: 2 })) seen.push(user.id);
    expect(seen).toEqual([...made].reverse());
  });

  it('throws typed problems carrying the problem document', async () => {
    const client = kyclo();
    const notFound = await client.users.get('usr_00000000000000000000000000').then(() => null, (e: unknown) => e as KycloProblem);
    expect(notFound).toMatchObject({ status: 404, code: 'user.not_found', requestId: expect.stringMatching(/^req_/) });
    const invalid = (await client.users.create({ ...newUser(), country: 'XX', phone: '+33000000000' } as CreateUserInput).then(() => null, (e: unknown) => e)) as KycloProblem;
    expect(invalid.code).toBe('request.validation_failed');
    expect(invalid.errors.map((e) => [e.field, e.code]).sort()).toEqual([['country', 'invalid_country'], ['phone', 'invalid_phone']]);
  });

  it('verifies a webhook and returns the event typed by its type; a forged one is refused', async () => {
    const client = kyclo();
    const endpoint = await client.ok(client.api.POST('/v1/webhook-endpoints', { body: { url: 'http://127.0.0.1:9/hook' } }));
    const { id } = await client.users.create(newUser());
    let sent: Awaited<ReturnType<typeof client.events.get>> | undefined;
    for await (const e of client.events.list({ user_id: id, type: 'user.created' })) sent = e;
    const body = JSON.stringify({ id: sent!.id, type: sent!.type, timestamp: sent!.created_at, data: sent!.data });
    const headers = { 'webhook-id': sent!.id, 'webhook-timestamp': String(Math.floor(Date.now() / 1000)) };
    const signature = new Webhook(endpoint.secret).sign(sent!.id, new Date(), body);
    const event = createWebhookVerifier(endpoint.secret).verify(body, { ...headers, 'webhook-signature': signature });
    if (event.type !== 'user.created') throw new Error(`unexpected ${event.type}`);
    expect(event.data.user_id).toBe(id);
    expect(() => createWebhookVerifier(endpoint.secret).verify(body.replace(id, 'usr_forged'), { ...headers, 'webhook-signature': signature })).toThrow(WebhookVerificationError);
  });
});
