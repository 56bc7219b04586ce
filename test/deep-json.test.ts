// Deeply nested JSON bodies: at any depth up to the 1 MiB body limit, on every JSON content type
// and every kind of route, the answer is a 400 problem+json with a stable code and nothing is
// written. Before the body parser counted depth, ~3,000 levels overflowed the stack in validation
// or in the canonical JSON of the idempotency fingerprint: a 500.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { BODY_LIMIT } from '../src/app.js';
import { canonicalJson } from '../src/lib/canonical-json.js';

let ctx: TestContext;
let api: Client;
let userId: string;
beforeAll(async () => {
  ({ ctx, api } = await openTenantContext());
  userId = (await api.post('/v1/users', individual())).json().id;
});
afterAll(() => ctx.close());

/** `{"metadata":{"a":{"a":…1…}}}` style nesting of `depth` levels inside `field`, as raw text. */
function nestedObject(field: string, depth: number, extra = ''): string {
  return `{${extra}"${field}":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;
}
/** Arrays: the deepest nesting a body of a given size can carry (2 bytes a level). */
function nestedArray(field: string, depth: number, extra = ''): string {
  return `{${extra}"${field}":${'['.repeat(depth)}${']'.repeat(depth)}}`;
}

// The deepest array nesting that still fits under the body limit.
const MAX_LEVELS = Math.floor((BODY_LIMIT - 300) / 2);
const DEPTHS = [100, 3_000, 100_000, MAX_LEVELS];

async function counts() {
  const r = await sql<{ users: string; audit: string; events: string; idem: string; policy: string; hooks: string }>`
    select (select count(*) from users) as users, (select count(*) from audit_entries) as audit,
           (select count(*) from events) as events, (select count(*) from idempotency_keys) as idem,
           (select policy::text from tenants limit 1) as policy, (select count(*) from webhook_endpoints) as hooks`.execute(ctx.db);
  return r.rows[0];
}

const userBody = '"type":"individual","country":"FR","first_name":"Deep","last_name":"Json",';
const routes = (depth: number, shape: typeof nestedObject) => [
  { name: 'POST /v1/users', method: 'POST' as const, url: '/v1/users', body: shape('metadata', depth, userBody), type: 'application/json' },
  { name: 'POST /v1/users with Idempotency-Key', method: 'POST' as const, url: '/v1/users', body: shape('metadata', depth, userBody), type: 'application/json', headers: { 'idempotency-key': `deep-${depth}-${shape.name}` } },
  { name: 'PATCH /v1/users/{id} merge-patch', method: 'PATCH' as const, url: `/v1/users/${userId}`, body: shape('metadata', depth), type: 'application/merge-patch+json' },
  { name: 'PATCH /v1/users/{id} json', method: 'PATCH' as const, url: `/v1/users/${userId}`, body: shape('metadata', depth), type: 'application/json' },
  { name: 'PUT /v1/policy', method: 'PUT' as const, url: '/v1/policy', body: shape('fields', depth), type: 'application/json' },
  { name: 'POST /v1/webhook-endpoints', method: 'POST' as const, url: '/v1/webhook-endpoints', body: shape('url', depth), type: 'application/json' },
  { name: 'POST /v1/webhook-endpoints merge-patch', method: 'POST' as const, url: '/v1/webhook-endpoints', body: shape('url', depth), type: 'application/merge-patch+json' },
];

describe('deeply nested JSON bodies', () => {
  for (const shape of [nestedObject, nestedArray]) {
    for (const depth of DEPTHS) {
      const body = shape('x', depth);
      if (body.length > BODY_LIMIT - 200) continue; // objects take 5 bytes a level: the deepest fit is covered by arrays
      it(`${depth.toLocaleString('en')} levels of ${shape === nestedObject ? 'objects' : 'arrays'}: 400 request.json_too_deep on every route and content type, nothing written`, async () => {
        const before = await counts();
        const seen = [];
        for (const r of routes(depth, shape)) {
          const res = await api.call({ method: r.method, url: r.url, body: r.body, headers: { 'content-type': r.type, ...(r.headers ?? {}) } });
          seen.push(`${r.name}: ${res.statusCode} ${String(res.headers['content-type']).split(';')[0]} ${res.json().code}`);
        }
        expect(seen).toEqual(routes(depth, shape).map((r) => `${r.name}: 400 application/problem+json request.json_too_deep`));
        expect(await counts()).toEqual(before);
        const user = await api.get(`/v1/users/${userId}`);
        expect(user.json().version).toBe(1);
      }, 60_000);
    }
  }

  it('nesting the API itself accepts still works: metadata 5 levels deep is stored', async () => {
    const metadata = { a: { b: { c: { d: { e: 1 } } } } };
    const res = await api.call({ method: 'PATCH', url: `/v1/users/${userId}`, body: JSON.stringify({ metadata }), headers: { 'content-type': 'application/merge-patch+json' } });
    expect(res.statusCode).toBe(200);
    expect(res.json().metadata).toEqual(metadata);
  });

  it('brackets inside strings are not nesting: a string of 10,000 "[" is an ordinary value', async () => {
    const res = await api.patch(`/v1/users/${userId}`, { metadata: { note: '['.repeat(10_000).slice(0, 10_000) } });
    expect(res.statusCode).toBe(200);
    expect(res.json().metadata.note).toHaveLength(10_000);
  });
});

describe('canonical JSON at any depth', () => {
  it('writes 200,000 levels without overflowing the stack, the same text as JSON.stringify', () => {
    let v: unknown = 1;
    for (let i = 0; i < 200_000; i++) v = i % 2 ? [v] : { k: v };
    const text = canonicalJson(v);
    expect(text.length).toBeGreaterThan(600_000);
    expect(text.startsWith('[{"k":[{"k":')).toBe(true);
  });
});
