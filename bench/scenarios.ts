// What is measured: the runs of each group (Kyclo and its baseline back to back), the rows of the
// report with their targets, the fixtures the runs need (user ids, the deep-page cursor, names to
// search), and a smoke test that every scenario answers 2xx before anything is timed.
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { Mode } from './load.js';
import type { Running } from './servers.js';
import type { SeedState } from './seed.js';
import { LAST_NAMES } from './data.js';

export interface Fixtures {
  tenantId: string;
  ids: string[];
  idsLua: string;
  idsJson: string;
  total: number;
  deepPage: number;
  deepCursor: string;
  q: Array<{ key: string; name: string; matches: number }>;
}

export interface RunDef {
  id: string;
  label: string;
  server: 'kyclo' | 'bare';
  mode: Mode;
  prefix: string;
  suffix?: string;
  /** POSTs go to the write tenant, so the seeded tenant keeps exactly its seeded users. */
  writes?: boolean;
  /** Other than the run's connections (the unsaturated search latency). */
  connections?: number;
  /** Kyclo with one webhook endpoint per written tenant: each write also delivers a signed webhook. */
  webhooks?: boolean;
}

export interface RowSpec {
  endpoint: string;
  short: string;
  kyclo: string;
  against?: string;
  againstName?: string;
  /**
   * rps: Kyclo ÷ baseline req/s ≥ threshold; p50: Kyclo ÷ the other run's p50 ≤ threshold; p99abs:
   * p99 ≤ threshold ms; pgcpu: PostgreSQL CPU µs per request, Kyclo ÷ baseline ≤ threshold; info: shown only.
   */
  kind: 'rps' | 'p50' | 'p99abs' | 'pgcpu' | 'sustained' | 'info';
  threshold?: number;
  target: string;
}

export const PAGE = 50;
const DEEP_PAGE = 20_000;
// Ranks in the Zipf-distributed last names: the middle one is the target's "moderately selective" name.
const Q_RANKS = { q: 99, q_common: 0, q_rare: 2999 } as const;
// With 32 connections on 2 cores a request waits for the ones ahead of it (latency ≈ connections ÷
// throughput); a run at 4 connections shows what the search itself costs.
const Q_LOW_CONCURRENCY = 4;

/** Kyclo's cursor (src/lib/cursor.ts): base64url of the JSON of the last row's sort key. */
const kycloCursor = (id: string) => Buffer.from(JSON.stringify({ id })).toString('base64url');

export async function prepareFixtures(url: string, state: SeedState, dir: string, users: number): Promise<Fixtures> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const t = state.tenantId;
    // PATCH needs users that can be changed (not closed) with the individual field set.
    const ids = (
      await client.query<{ id: string }>(
        "select id from users where tenant_id = $1 and status <> 'closed' and type = 'individual' order by random() limit 10000",
        [t],
      )
    ).rows.map((r) => r.id);
    const total = Number((await client.query<{ n: string }>('select count(*) as n from users where tenant_id = $1', [t])).rows[0]!.n);
    const deepPage = Math.min(DEEP_PAGE, Math.floor(users / PAGE));
    // Page k starts after row (k - 1) * 50 in list order (newest first).
    const deep = await client.query<{ id: string }>('select id from users where tenant_id = $1 order by id desc offset $2 limit 1', [t, (deepPage - 1) * PAGE - 1]);
    const q: Fixtures['q'] = [];
    for (const [key, rank] of Object.entries(Q_RANKS)) {
      const name = LAST_NAMES[rank]!;
      const n = await client.query<{ n: string }>('select count(*) as n from users where tenant_id = $1 and search_text like $2', [t, `%${name.toLowerCase()}%`]);
      q.push({ key, name, matches: Number(n.rows[0]!.n) });
    }
    const idsLua = path.join(dir, 'ids.lua');
    const idsJson = path.join(dir, 'ids.json');
    await fs.writeFile(idsLua, `return {\n${ids.map((id) => `"${id}"`).join(',\n')}\n}\n`);
    await fs.writeFile(idsJson, JSON.stringify(ids));
    return { tenantId: t, ids, idsLua, idsJson, total, deepPage, deepCursor: kycloCursor(deep.rows[0]!.id), q };
  } finally {
    await client.end();
  }
}

export function plan(fx: Fixtures): Array<{ key: string; runs: RunDef[]; rows: RowSpec[] }> {
  const qRun = (key: string, name: string, conns?: number): RunDef => ({
    id: `kyclo_${key}`, label: `Kyclo GET /v1/users?q=${name}${conns ? ` (${conns} connections)` : ''}`, server: 'kyclo', mode: 'static',
    prefix: `/v1/users?q=${encodeURIComponent(name)}`, ...(conns ? { connections: conns } : {}),
  });
  const qOf = (key: string) => fx.q.find((x) => x.key === key)!;
  return [
    {
      key: 'get',
      runs: [
        { id: 'kyclo_get', label: 'Kyclo GET /v1/users/{id}', server: 'kyclo', mode: 'get', prefix: '/v1/users/' },
        { id: 'bare_get', label: 'bare GET /users/{id}', server: 'bare', mode: 'get', prefix: '/users/' },
        { id: 'kyclo_caps', label: 'Kyclo GET /v1/users/{id}/capabilities', server: 'kyclo', mode: 'get', prefix: '/v1/users/', suffix: '/capabilities' },
        { id: 'bare_caps', label: 'bare GET /users/{id}/capabilities', server: 'bare', mode: 'get', prefix: '/users/', suffix: '/capabilities' },
      ],
      rows: [
        { endpoint: 'GET /v1/users/{id}', short: 'get', kyclo: 'kyclo_get', against: 'bare_get', againstName: 'bare GET', kind: 'rps', threshold: 0.85, target: '≥ 0.85 req/s' },
        {
          endpoint: 'GET /v1/users/{id}/capabilities', short: 'caps', kyclo: 'kyclo_caps', against: 'bare_caps', againstName: 'bare capabilities query', kind: 'rps',
          threshold: 0.85, target: '≥ 0.85 req/s',
        },
      ],
    },
    {
      key: 'patch',
      runs: [
        { id: 'kyclo_patch', label: 'Kyclo PATCH /v1/users/{id} (metadata)', server: 'kyclo', mode: 'patch', prefix: '/v1/users/' },
        { id: 'bare_patch', label: 'bare PATCH, read + 1 statement', server: 'bare', mode: 'patch', prefix: '/users/' },
        { id: 'bare_patch_floor', label: 'bare PATCH, 1 statement (floor)', server: 'bare', mode: 'patch', prefix: '/floor/users/' },
        { id: 'kyclo_patch_hooks', label: 'Kyclo PATCH, one webhook endpoint', server: 'kyclo', mode: 'patch', prefix: '/v1/users/', webhooks: true },
      ],
      rows: [
        {
          endpoint: 'PATCH /v1/users/{id} (metadata: allow)', short: 'patch', kyclo: 'kyclo_patch', against: 'bare_patch', againstName: 'bare read + 1 statement',
          kind: 'rps', threshold: 0.8, target: '≥ 0.80 req/s',
        },
        {
          endpoint: '  the same against the one-statement floor', short: 'patch_floor', kyclo: 'kyclo_patch', against: 'bare_patch_floor', againstName: 'bare 1 statement',
          kind: 'info', target: '(context)',
        },
        {
          endpoint: '  sustained: requests ÷ (load + background catch-up)', short: 'patch_sustained', kyclo: 'kyclo_patch', against: 'bare_patch',
          againstName: 'bare read + 1 statement', kind: 'sustained', target: '(context)',
        },
        {
          endpoint: '  PostgreSQL CPU per PATCH', short: 'patch_pg', kyclo: 'kyclo_patch', against: 'bare_patch', againstName: 'bare read + 1 statement',
          kind: 'pgcpu', threshold: 1.25, target: '≤ 1.25× µs/req',
        },
        {
          endpoint: '  with one webhook endpoint (a signed delivery per write)', short: 'patch_hooks', kyclo: 'kyclo_patch_hooks', against: 'bare_patch',
          againstName: 'bare read + 1 statement', kind: 'info', target: '(context)',
        },
      ],
    },
    {
      key: 'post',
      runs: [
        { id: 'kyclo_post', label: 'Kyclo POST /v1/users', server: 'kyclo', mode: 'post', prefix: '/v1/users', writes: true },
        { id: 'bare_post', label: 'bare POST /users, 1 statement', server: 'bare', mode: 'post', prefix: '/users', writes: true },
        { id: 'kyclo_post_hooks', label: 'Kyclo POST, one webhook endpoint', server: 'kyclo', mode: 'post', prefix: '/v1/users', writes: true, webhooks: true },
      ],
      rows: [
        { endpoint: 'POST /v1/users', short: 'post', kyclo: 'kyclo_post', against: 'bare_post', againstName: 'bare 1 statement', kind: 'rps', threshold: 0.75, target: '≥ 0.75 req/s' },
        {
          endpoint: '  sustained: requests ÷ (load + background catch-up)', short: 'post_sustained', kyclo: 'kyclo_post', against: 'bare_post',
          againstName: 'bare 1 statement', kind: 'sustained', target: '(context)',
        },
        {
          endpoint: '  PostgreSQL CPU per POST', short: 'post_pg', kyclo: 'kyclo_post', against: 'bare_post', againstName: 'bare 1 statement',
          kind: 'pgcpu', threshold: 1.25, target: '≤ 1.25× µs/req',
        },
        {
          endpoint: '  with one webhook endpoint (a signed delivery per write)', short: 'post_hooks', kyclo: 'kyclo_post_hooks', against: 'bare_post',
          againstName: 'bare 1 statement', kind: 'info', target: '(context)',
        },
      ],
    },
    {
      key: 'list',
      runs: [
        { id: 'kyclo_list', label: 'Kyclo GET /v1/users?limit=50 (page 1)', server: 'kyclo', mode: 'static', prefix: `/v1/users?limit=${PAGE}` },
        { id: 'bare_list', label: 'bare keyset page GET /users?limit=50', server: 'bare', mode: 'static', prefix: `/users?limit=${PAGE}` },
        {
          id: 'kyclo_deep', label: `Kyclo GET /v1/users?limit=50 page ${fx.deepPage.toLocaleString('en')}`, server: 'kyclo', mode: 'static',
          prefix: `/v1/users?limit=${PAGE}&cursor=${fx.deepCursor}`,
        },
      ],
      rows: [
        { endpoint: 'GET /v1/users?limit=50', short: 'list', kyclo: 'kyclo_list', against: 'bare_list', againstName: 'bare keyset page', kind: 'rps', threshold: 0.85, target: '≥ 0.85 req/s' },
        {
          endpoint: `GET /v1/users?limit=50 page ${fx.deepPage.toLocaleString('en')}`, short: 'deep', kyclo: 'kyclo_deep', against: 'kyclo_list', againstName: 'Kyclo page 1',
          kind: 'p50', threshold: 1.5, target: 'p50 ≤ 1.5× page 1',
        },
      ],
    },
    {
      key: 'search',
      runs: [
        qRun('q', qOf('q').name), qRun('q_c4', qOf('q').name, Q_LOW_CONCURRENCY), qRun('q_common', qOf('q_common').name), qRun('q_rare', qOf('q_rare').name),
      ],
      rows: [
        // The latency target is measured below saturation: at 32 connections on 2 cores the p99 is the
        // queue in front of the search (≈ connections ÷ throughput), not the search; that row is context.
        {
          endpoint: `GET /v1/users?q=${qOf('q').name} (${qOf('q').matches.toLocaleString('en')} matches), ${Q_LOW_CONCURRENCY} connections`, short: 'q',
          kyclo: 'kyclo_q_c4', kind: 'p99abs', threshold: 50, target: 'p99 ≤ 50 ms',
        },
        { endpoint: `  the same at the run's 32 connections (saturated)`, short: 'q_c32', kyclo: 'kyclo_q', kind: 'info', target: '(context)' },
        { endpoint: `GET /v1/users?q=${qOf('q_common').name} (${qOf('q_common').matches.toLocaleString('en')} matches)`, short: 'q_common', kyclo: 'kyclo_q_common', kind: 'info', target: '(context)' },
        { endpoint: `GET /v1/users?q=${qOf('q_rare').name} (${qOf('q_rare').matches.toLocaleString('en')} matches)`, short: 'q_rare', kyclo: 'kyclo_q_rare', kind: 'info', target: '(context)' },
      ],
    },
  ];
}

/**
 * Raises the tenant's rate limit to the most PUT /v1/policy allows (so the bench measures the
 * machinery, not 429s), then sends each scenario's request once: anything but 2xx stops the run.
 */
export async function smokeTest(fx: Fixtures, s: { kyclo: Running; baseline: Running | null; state: SeedState; log?: (m: string) => void }): Promise<void> {
  const auth = { authorization: `Bearer ${s.state.apiKey}` };
  const writeAuth = { authorization: `Bearer ${s.state.writeApiKey}` };
  const call = async (base: string, method: string, p: string, body?: unknown, headers: Record<string, string> = {}) => {
    const r = await fetch(`${base}${p}`, {
      method, headers: { ...headers, ...(body ? { 'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    if (r.status >= 300) throw new Error(`${method} ${base}${p} answered ${r.status}: ${text.slice(0, 400)}`);
    sizes.push(`${method} ${p.replace(/usr_[0-9A-Z]{26}/, '{id}').replace(/cursor=[^&]+/, 'cursor=…')}: ${Buffer.byteLength(text)} B`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  const sizes: string[] = [];
  for (const a of [auth, writeAuth]) await call(s.kyclo.base, 'PUT', '/v1/policy', { rate_limit: { requests_per_minute: 1_000_000 } }, a);
  const id = fx.ids[0]!;
  const person = { type: 'individual', first_name: 'Smoke', last_name: 'Test', country: 'FR', email: 'smoke@example.com' };
  await call(s.kyclo.base, 'GET', `/v1/users/${id}`, undefined, auth);
  await call(s.kyclo.base, 'GET', `/v1/users/${id}/capabilities`, undefined, auth);
  await call(s.kyclo.base, 'PATCH', `/v1/users/${id}`, { metadata: { bench: `smoke-${Date.now()}` } }, auth);
  await call(s.kyclo.base, 'POST', '/v1/users', person, writeAuth);
  const page = await call(s.kyclo.base, 'GET', `/v1/users?limit=${PAGE}&cursor=${fx.deepCursor}`, undefined, auth);
  if ((page.data as unknown[]).length !== PAGE) throw new Error(`the deep page holds ${(page.data as unknown[]).length} users, not ${PAGE}`);
  for (const q of fx.q) await call(s.kyclo.base, 'GET', `/v1/users?q=${encodeURIComponent(q.name)}`, undefined, auth);
  if (!s.baseline) return;
  await call(s.baseline.base, 'GET', `/users/${id}`);
  await call(s.baseline.base, 'GET', `/users/${id}/capabilities`);
  await call(s.baseline.base, 'PATCH', `/users/${id}`, { metadata: { bench: `smoke-${Date.now()}` } });
  await call(s.baseline.base, 'PATCH', `/floor/users/${id}`, { metadata: { bench: `smoke-${Date.now()}` } });
  await call(s.baseline.base, 'POST', '/users', person);
  await call(s.baseline.base, 'GET', `/users?limit=${PAGE}`);
  s.log?.(`response sizes: ${sizes.join('; ')}`);
}

/**
 * One webhook endpoint per tenant the runs write to, pointing at the bench's receiver (the endpoint
 * of an earlier run is pointed at this run's receiver rather than added to): enabled for the runs
 * marked `webhooks`, so every event Kyclo writes is fanned out to a delivery and sent; disabled for
 * the others, which run as `npm start` does (no endpoint: fan-out finds nothing to deliver).
 */
export async function registerWebhooks(base: string, apiKeys: string[], receiverUrl: string, enabled = true): Promise<void> {
  for (const key of apiKeys) {
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const list = (await (await fetch(`${base}/v1/webhook-endpoints`, { headers })).json()) as { data?: Array<{ id: string }> };
    const existing = list.data?.[0];
    const r = existing
      ? await fetch(`${base}/v1/webhook-endpoints/${existing.id}`, { method: 'PATCH', headers: { ...headers, 'content-type': 'application/merge-patch+json' }, body: JSON.stringify({ url: receiverUrl, enabled }) })
      : await fetch(`${base}/v1/webhook-endpoints`, { method: 'POST', headers, body: JSON.stringify({ url: receiverUrl, description: 'bench receiver', enabled }) });
    if (r.status >= 300) throw new Error(`registering the bench webhook endpoint answered ${r.status}: ${(await r.text()).slice(0, 400)}`);
  }
}
