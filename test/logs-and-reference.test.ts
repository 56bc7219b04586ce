import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTenantContext, client, createKey, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;

beforeAll(async () => ({ ctx, api, tenantId } = await openTenantContext()));
afterAll(() => ctx.close());

async function pages(url: string, limit: number) {
  const out: Array<Record<string, unknown>> = [];
  let cursor: string | null = null;
  do {
    const res = await api.get(`${url}${url.includes('?') ? '&' : '?'}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    expect(res.statusCode).toBe(200);
    out.push(...res.json().data);
    cursor = res.json().next_cursor;
  } while (cursor);
  return out;
}

describe('enumerations', () => {
  it('lists every published enumeration with codes and labels', async () => {
    const res = await api.get('/v1/enumerations');
    expect(res.statusCode).toBe(200);
    const names = res.json().data.map((e: { name: string }) => e.name);
    for (const n of ['countries', 'nationalities', 'genders', 'titles', 'employment_types', 'income_ranges', 'user_types', 'statuses', 'kyc_statuses', 'reason_codes']) {
      expect(names).toContain(n);
    }
  });

  it('serves real ISO 3166-1 countries and the reason codes of the lifecycle', async () => {
    const countries = (await api.get('/v1/enumerations/countries')).json();
    expect(countries.values.length).toBeGreaterThanOrEqual(249);
    expect(countries.values).toContainEqual({ code: 'FR', label: 'France' });
    const reasons = (await api.get('/v1/enumerations/reason_codes')).json().values.map((v: { code: string }) => v.code);
    expect(reasons).toEqual(expect.arrayContaining(['fraud_suspected', 'sanctions_match', 'aml_alert', 'user_request', 'other']));
    const statuses = (await api.get('/v1/enumerations/statuses')).json().values.map((v: { code: string }) => v.code);
    expect(statuses).toEqual(['active', 'flagged', 'suspended', 'blocked', 'closed']);
  });

  it('accepts exactly the values it publishes', async () => {
    const genders = (await api.get('/v1/enumerations/genders')).json().values.map((v: { code: string }) => v.code);
    for (const g of genders) expect((await api.post('/v1/users', individual({ gender: g }))).statusCode).toBe(201);
  });

  it('answers 404 for an unknown enumeration and for inherited object keys', async () => {
    for (const name of ['planets', 'constructor', '__proto__']) {
      const res = await api.get(`/v1/enumerations/${name}`);
      expect(res.statusCode).toBe(404);
      expect(res.json().code).toBe('enumeration.not_found');
    }
  });
});

describe('the event log and the audit log', () => {
  it('lists events newest first with type and user filters, across pages, one event per change', async () => {
    const user = (await api.post('/v1/users', individual())).json();
    for (let i = 0; i < 5; i++) await api.patch(`/v1/users/${user.id}`, { occupation: `job ${i}` });
    const all = await pages(`/v1/events?user_id=${user.id}`, 2);
    expect(all.map((e) => e.type)).toEqual([...Array(5).fill('user.updated'), 'user.created']);
    const ids = all.map((e) => e.id as string);
    expect([...ids].sort().reverse()).toEqual(ids);
    const created = await pages(`/v1/events?user_id=${user.id}&type=user.created`, 50);
    expect(created).toHaveLength(1);
    const one = await api.get(`/v1/events/${ids[0]}`);
    expect(one.statusCode).toBe(200);
    expect(one.json()).toEqual(all[0]);
    expect((await api.get('/v1/events/evt_00000000000000000000000000')).statusCode).toBe(404);
  });

  it('lists audit entries with user, actor, action and time filters', async () => {
    const dev = await createKey(ctx.db, tenantId, 'DEVELOPER');
    const start = new Date().toISOString();
    const made = (await client(ctx.app, dev.key).post('/v1/users', individual())).json();
    await api.patch(`/v1/users/${made.id}`, { occupation: 'pilot' });
    await api.patch(`/v1/users/${made.id}`, { country: 'DE' });
    const entries = await pages(`/v1/audit-events?user_id=${made.id}`, 1);
    expect(entries.map((e) => [e.action, e.outcome])).toEqual([
      ['user.update_denied', 'flagged'], ['user.updated', 'applied'], ['user.created', 'applied'],
    ]);
    expect(entries[2]).toMatchObject({ actor: { type: 'api_key', key_id: dev.id, role: 'DEVELOPER' }, target: { type: 'user', id: made.id } });
    expect(entries[2]!.ip).toBe('127.0.0.1');
    expect(await pages(`/v1/audit-events?actor=${dev.id}`, 50)).toHaveLength(1);
    expect(await pages(`/v1/audit-events?user_id=${made.id}&action=user.updated`, 50)).toHaveLength(1);
    expect(await pages(`/v1/audit-events?user_id=${made.id}&from=${encodeURIComponent(start)}`, 50)).toHaveLength(3);
    expect(await pages(`/v1/audit-events?user_id=${made.id}&to=${encodeURIComponent(start)}`, 50)).toHaveLength(0);
  });

  it('refuses a cursor it did not issue', async () => {
    for (const url of ['/v1/events?cursor=abc', '/v1/audit-events?cursor=' + Buffer.from('{"seq":"1; drop"}').toString('base64url')]) {
      const res = await api.get(url);
      expect(res.statusCode).toBe(400);
      expect(res.json().errors[0]).toMatchObject({ field: 'cursor', code: 'invalid_cursor' });
    }
  });
});

describe('operations', () => {
  it('answers unknown routes with a 404 problem', async () => {
    const res = await api.get('/v1/nothing-here');
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({ code: 'route.not_found', request_id: res.headers['x-request-id'] });
  });

  // The router answers these before any hook: before, a bare application/json body with Fastify's
  // own code, no request id, none of the security headers; and a valid external ref over 100
  // characters could not be looked up at all (414).
  it('answers a broken percent escape with a 400 problem carrying the request id and the security headers', async () => {
    const res = await api.get('/v1/users/%E0%A4%A', { 'x-request-id': 'probe-1' });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({ code: 'request.bad_url', request_id: 'probe-1' });
    expect(res.headers).toMatchObject({ 'x-request-id': 'probe-1', 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' });
  });

  it('looks up every external ref the API accepts by path, 128 characters percent-encoded included; longer is a 414 problem', async () => {
    const ref = `r${'%'.repeat(127)}`; // three characters each in the path
    const created = await api.post('/v1/users', individual({ external_ref: ref }));
    expect(created.statusCode, created.body).toBe(201);
    const found = await api.get(`/v1/users/by-external-ref/${encodeURIComponent(ref)}`);
    expect([found.statusCode, found.json().id]).toEqual([200, created.json().id]);
    const tooLong = await api.get(`/v1/users/by-external-ref/${'x'.repeat(385)}`);
    expect(tooLong.statusCode).toBe(414);
    expect(tooLong.json()).toMatchObject({ code: 'request.uri_too_long', request_id: tooLong.headers['x-request-id'] });
  });
});

describe('metrics', () => {
  it('serves Prometheus metrics without a key, counted per route pattern, never per id', async () => {
    const user = (await api.post('/v1/users', individual())).json();
    await api.get(`/v1/users/${user.id}`);
    const res = await client(ctx.app, null).get('/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.body).toMatch(/kyclo_http_requests_total\{method="GET",route="\/v1\/users\/:id",status="200"\} \d+/);
    expect(res.body).toContain('kyclo_process_cpu_seconds_total');
    expect(res.body).not.toContain(user.id);
  });

  it('counts each answer once, with a cumulative duration histogram', async () => {
    const user = (await api.post('/v1/users', individual())).json();
    const scrape = async () => (await client(ctx.app, null).get('/metrics')).body;
    const value = (body: string, line: string) => Number(body.split('\n').find((l) => l.startsWith(`${line} `))?.slice(line.length + 1) ?? 0);
    const labels = 'method="GET",route="/v1/users/:id"';
    const before = await scrape();
    for (let i = 0; i < 3; i++) await api.get(`/v1/users/${user.id}`);
    await api.get('/v1/users/usr_01ARZ3NDEKTSV4RRFFQ69G5FAV');
    const after = await scrape();
    expect(value(after, `kyclo_http_requests_total{${labels},status="200"}`) - value(before, `kyclo_http_requests_total{${labels},status="200"}`)).toBe(3);
    expect(value(after, `kyclo_http_requests_total{${labels},status="404"}`) - value(before, `kyclo_http_requests_total{${labels},status="404"}`)).toBe(1);
    const count = value(after, `kyclo_http_request_duration_seconds_count{${labels}}`);
    expect(count - value(before, `kyclo_http_request_duration_seconds_count{${labels}}`)).toBe(4);
    const buckets = after.split('\n').filter((l) => l.startsWith('kyclo_http_request_duration_seconds_bucket{') && l.includes(labels)).map((l) => Number(l.split(' ')[1]));
    expect(buckets).toHaveLength(11);
    expect(buckets.every((n, i) => i === 0 || n >= buckets[i - 1]!)).toBe(true);
    expect(buckets.at(-1)).toBe(count);
    expect(value(after, `kyclo_http_request_duration_seconds_sum{${labels}}`)).toBeGreaterThan(0);
  });
});
