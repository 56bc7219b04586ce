// A lone UTF-16 surrogate in a body is refused up front (400), never handed to PostgreSQL — which
// refused it in jsonb with an error quoting the value, logged at error level with the person's data —
// and a database error is never logged with the fields that quote values.
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { errWithoutData } from '../src/http/log-redaction.js';
import { openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;
beforeAll(async () => {
  ({ ctx, api, tenantId } = await openTenantContext());
});
afterAll(() => ctx.close());

const count = async (table: 'users' | 'audit_entries' | 'events') =>
  Number((await ctx.db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow()).n);

it('a lone surrogate in any string or key answers 400 request.invalid_unicode and writes nothing; a paired one is text like any other', async () => {
  const user = (await api.post('/v1/users', individual())).json();
  const before = { users: await count('users'), audit: await count('audit_entries'), events: await count('events') };
  const bodies: Array<[string, string, string]> = [
    ['POST', '/v1/users', JSON.stringify(individual()).replace(/}$/, ',"metadata":{"note":"Jane Doe \\ud800"}}')],
    ['POST', '/v1/users', JSON.stringify(individual()).replace(/}$/, ',"metadata":{"\\udc00key":"x"}}')],
    ['PATCH', `/v1/users/${user.id}`, '{"metadata":{"deep":{"list":["ok","\\uDBFF then no pair"]}}}'],
  ];
  for (const [method, url, payload] of bodies) {
    for (const type of ['application/json', 'application/merge-patch+json']) {
      if (method === 'POST' && type !== 'application/json') continue;
      const res = await api.call({ method: method as 'POST', url, body: payload, headers: { 'content-type': type } });
      expect(res.statusCode, `${method} ${type} ${res.body}`).toBe(400);
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
      expect(res.json()).toMatchObject({ code: 'request.invalid_unicode', errors: [{ field: 'body', code: 'invalid_unicode' }] });
    }
  }
  expect({ users: await count('users'), audit: await count('audit_entries'), events: await count('events') }).toEqual(before);

  const ok = await api.call({ method: 'PATCH', url: `/v1/users/${user.id}`, body: '{"metadata":{"mood":"\\ud83d\\ude00"}}', headers: { 'content-type': 'application/merge-patch+json' } });
  expect(ok.statusCode, ok.body).toBe(200);
  expect(ok.json().metadata).toEqual({ mood: '😀' });
});

it('a database error is logged without the fields in which PostgreSQL quotes the data it refused', async () => {
  const err = await sql`select ${'{"note":"CANARY Jane Doe \\ud800"}'}::jsonb`.execute(ctx.db).then(() => null, (e: Error) => e);
  expect(err).toBeInstanceOf(Error);
  expect(JSON.stringify({ ...err })).toContain('CANARY'); // pg's error carries the value...
  const logged = JSON.stringify(errWithoutData(err!));
  expect(logged).not.toContain('CANARY'); // ...the log does not
  expect(logged).toContain('"code":"22P02"');
});
