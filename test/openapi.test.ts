// The published contract: /openapi.json is a valid OpenAPI 3.1 document that describes every route
// the way the API behaves (auth, error responses), and the unauthenticated operations endpoints answer.
import SwaggerParser from '@apidevtools/swagger-parser';
import { API_ONLY_FIELDS, type EventType } from '../src/modules/events/catalog.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createTestContext, type Client, type TestContext } from './helpers/app.js';

interface Operation {
  operationId?: string;
  security?: Array<Record<string, string[]>>;
  responses?: Record<string, unknown>;
  parameters?: Array<{ name: string; in: string }>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components?: { securitySchemes?: Record<string, { type: string; scheme?: string }> };
}

const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

let ctx: TestContext;
let anonymous: Client;
let doc: Document;

function operations(d: Document): Array<{ method: string; path: string; op: Operation }> {
  return Object.entries(d.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => METHODS.has(method))
      .map(([method, op]) => ({ method, path, op })),
  );
}

beforeAll(async () => {
  ctx = await createTestContext();
  anonymous = client(ctx.app, null);
  const res = await anonymous.get('/openapi.json');
  expect(res.statusCode).toBe(200);
  doc = res.json();
});
afterAll(() => ctx.close());

describe('the OpenAPI document', () => {
  it('is served at /openapi.json without a key, as OpenAPI 3.1 JSON', async () => {
    const res = await anonymous.get('/openapi.json');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('application/json');
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(Object.keys(doc.paths).length).toBeGreaterThan(0);
  });

  it('validates with swagger-parser (schemas, $refs and structure)', async () => {
    await expect(SwaggerParser.validate(structuredClone(doc) as unknown as Parameters<typeof SwaggerParser.validate>[0])).resolves.toBeTruthy();
  });

  it('declares bearerAuth as an HTTP bearer security scheme', () => {
    expect(doc.components?.securitySchemes?.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('gives every operation a unique operationId', () => {
    const ops = operations(doc);
    expect(ops.length).toBeGreaterThan(0);
    const missing = ops.filter(({ op }) => typeof op.operationId !== 'string' || op.operationId.length === 0);
    expect(missing.map(({ method, path }) => `${method.toUpperCase()} ${path}`)).toEqual([]);
    const ids = ops.map(({ op }) => op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('requires bearerAuth on every /v1 operation', () => {
    const v1 = operations(doc).filter(({ path }) => path.startsWith('/v1'));
    expect(v1.length).toBeGreaterThan(0);
    const unsecured = v1.filter(({ op }) => !(op.security ?? []).some((req) => Object.hasOwn(req, 'bearerAuth')));
    expect(unsecured.map(({ method, path }) => `${method.toUpperCase()} ${path}`)).toEqual([]);
  });

  it('declares 400, 401, 403 and 500 responses on every /v1 operation', () => {
    const gaps: string[] = [];
    for (const { method, path, op } of operations(doc).filter(({ path }) => path.startsWith('/v1'))) {
      for (const status of ['400', '401', '403', '500']) {
        if (!op.responses || !Object.hasOwn(op.responses, status)) gaps.push(`${method.toUpperCase()} ${path} lacks ${status}`);
      }
    }
    expect(gaps).toEqual([]);
  });

  it('declares 404 on every operation with an {id} (or other) path parameter', () => {
    const templated = operations(doc).filter(({ path }) => /\{[^}]+\}/.test(path));
    expect(templated.some(({ path }) => path.includes('{id}'))).toBe(true);
    const gaps = templated
      .filter(({ op }) => !op.responses || !Object.hasOwn(op.responses, '404'))
      .map(({ method, path }) => `${method.toUpperCase()} ${path}`);
    expect(gaps).toEqual([]);
  });

  it('declares each path parameter of a templated path as an `in: path` parameter', () => {
    const gaps: string[] = [];
    for (const { method, path, op } of operations(doc)) {
      for (const [, name] of path.matchAll(/\{([^}]+)\}/g)) {
        if (!(op.parameters ?? []).some((p) => p.in === 'path' && p.name === name)) gaps.push(`${method.toUpperCase()} ${path}: ${name}`);
      }
    }
    expect(gaps).toEqual([]);
  });

  it('marks the operations endpoints as public (no security requirement)', () => {
    for (const path of ['/healthz', '/readyz']) {
      const op = doc.paths[path]?.get;
      expect(op, path).toBeDefined();
      expect(op!.security ?? []).toEqual([]);
    }
  });

  it('does not list itself or the docs UI as API operations', () => {
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/openapi') || p.startsWith('/docs'))).toEqual([]);
  });
});

describe('the document as the whole contract (issue 15)', () => {
  type Full = Document & { components: { schemas: Record<string, Record<string, unknown>> } };
  const full = () => doc as Full;
  const responsesOf = (op: Operation) => (op.responses ?? {}) as Record<string, { description?: string; content?: Record<string, unknown>; headers?: Record<string, unknown> }>;

  it('declares 401, 403 and 429 on every authenticated operation, and every error as application/problem+json', () => {
    const gaps: string[] = [];
    for (const { method, path, op } of operations(doc)) {
      const where = `${method.toUpperCase()} ${path}`;
      if (path.startsWith('/v1')) for (const s of ['401', '403', '429']) if (!responsesOf(op)[s]) gaps.push(`${where} lacks ${s}`);
      for (const [status, r] of Object.entries(responsesOf(op))) {
        if (Number(status) >= 400 && Object.keys(r.content ?? {}).join() !== 'application/problem+json') gaps.push(`${where} ${status} is ${Object.keys(r.content ?? {}).join()}`);
        if (r.description === 'Default Response' || !r.description) gaps.push(`${where} ${status} has no description`);
        if (!r.headers?.['X-Request-Id']) gaps.push(`${where} ${status} lacks X-Request-Id`);
      }
    }
    expect(gaps).toEqual([]);
  });

  it('takes Idempotency-Key on every POST, which may answer 409 idempotency.in_progress and 422 idempotency.key_reused', () => {
    const posts = operations(doc).filter(({ method, path }) => method === 'post' && path.startsWith('/v1'));
    expect(posts.length).toBeGreaterThanOrEqual(18);
    for (const { path, op } of posts) {
      expect(op.parameters, path).toContainEqual({ $ref: '#/components/parameters/IdempotencyKey' });
      expect(responsesOf(op)['409']?.description, path).toContain('idempotency.in_progress');
      expect(responsesOf(op)['422']?.description, path).toContain('idempotency.key_reused');
    }
  });

  it('takes PATCH bodies as JSON Merge Patch, and the update answers a User only (the dry run is its own operation)', () => {
    const patch = doc.paths['/v1/users/{id}']!.patch as Operation & { requestBody: { content: Record<string, unknown> } };
    expect(Object.keys(patch.requestBody.content)).toEqual(['application/merge-patch+json', 'application/json']);
    expect((responsesOf(patch)['200']!.content!['application/json'] as { schema: unknown }).schema).toEqual({ $ref: '#/components/schemas/User' });
    expect(responsesOf(patch)['200']!.headers).toHaveProperty('ETag');
    expect(doc.paths['/v1/users/{id}/dry-run']?.post?.operationId).toBe('dryRunUserUpdate');
  });

  it('names a schema for every resource, and lists events as the union the webhooks section declares', () => {
    const schemas = full().components.schemas;
    for (const name of ['User', 'Verification', 'ChangeRequest', 'StatusChange', 'Document', 'WebhookEndpoint', 'Event', 'AuditEntry', 'ApiKey', 'Problem', 'Capabilities', 'Policy']) {
      expect(schemas, name).toHaveProperty(name);
    }
    const event = schemas.Event as { oneOf: Array<{ $ref: string }>; discriminator: { mapping: Record<string, string> } };
    const webhooks = Object.keys((doc as unknown as { webhooks: Record<string, unknown> }).webhooks);
    expect(Object.keys(event.discriminator.mapping).sort()).toEqual(webhooks.sort());
    for (const type of webhooks) {
      const name = event.discriminator.mapping[type]!.split('/').pop()!;
      const data = (schemas[name] as { properties: { data: unknown } }).properties.data;
      const body = (schemas.WebhookPayload as { discriminator: { mapping: Record<string, string> } }).discriminator.mapping[type]!.split('/').pop()!;
      // The same data, less the free text a webhook never carries (catalog.ts API_ONLY_FIELDS).
      const hidden = API_ONLY_FIELDS[type as EventType] ?? [];
      const bodyData = (schemas[body] as { properties: { data: unknown } }).properties.data;
      if (hidden.length === 0) {
        expect(bodyData, type).toEqual(data);
        continue;
      }
      const resolve = (s: unknown) => ((s as { $ref?: string }).$ref ? schemas[(s as { $ref: string }).$ref.split('/').pop()!] : s) as { properties: Record<string, unknown> };
      const webhookData = resolve(bodyData);
      const eventData = resolve(data);
      expect(Object.keys(eventData.properties), type).toEqual(expect.arrayContaining([...hidden]));
      expect(Object.keys(webhookData.properties), type).toEqual(Object.keys(eventData.properties).filter((k) => !hidden.includes(k)));
      for (const k of Object.keys(webhookData.properties)) expect(webhookData.properties[k], `${type}.${k}`).toEqual(eventData.properties[k]);
    }
    expect((schemas.User as { properties?: unknown; discriminator: unknown }).discriminator).toMatchObject({ propertyName: 'type' });
  });
});

describe('the operations endpoints', () => {
  it('answers /healthz with 200 without a key', async () => {
    const res = await anonymous.get('/healthz');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
    expect(res.headers['x-request-id']).toBeTruthy();
  });

  it('answers /readyz with 200 without a key when the database is reachable', async () => {
    const res = await anonymous.get('/readyz');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ready' });
  });

  it('serves the interactive docs at /docs as HTML, without a key', async () => {
    let res = await anonymous.get('/docs');
    for (let hops = 0; hops < 5 && res.statusCode >= 300 && res.statusCode < 400; hops++) {
      const location = res.headers.location;
      expect(typeof location).toBe('string');
      res = await anonymous.get(new URL(String(location), 'http://localhost/docs').pathname);
    }
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/html');
    expect(res.body.toLowerCase()).toContain('<html');
  });
});

describe('the webhooks section', () => {
  it('documents every event type the service emits, with its payload', async () => {
    const { EVENT_TYPES } = await import('../src/modules/events/catalog.js');
    const doc = (await client(ctx.app, null).get('/openapi.json')).json();
    expect(Object.keys(doc.webhooks).sort()).toEqual([...EVENT_TYPES].sort());
    const named = (s: { $ref?: string }) => (s.$ref ? doc.components.schemas[s.$ref.split('/').pop()!] : s);
    const created = named(doc.webhooks['user.created'].post.requestBody.content['application/json'].schema);
    expect(created.properties).toMatchObject({ id: expect.any(Object), type: { enum: ['user.created'] }, timestamp: expect.any(Object), data: { $ref: '#/components/schemas/UserCreatedData' } });
    // Every type the code writes is in the catalogue.
    const written = await ctx.db.selectFrom('events').select('type').distinct().execute();
    for (const { type } of written) expect(EVENT_TYPES).toContain(type);
  });
});
