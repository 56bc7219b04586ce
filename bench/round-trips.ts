// What each benchmarked request sends to PostgreSQL, statement by statement, Kyclo's and the
// baseline's: the bench database logs every statement (log_statement = all, set for the sessions
// opened from now on only) while a Kyclo server, started as the bench starts it (background work
// on, a webhook receiver registered), and the compiled baseline answer one request of each kind.
// After a write, the statements of the background work it caused (sealing, fan-out, delivery) are
// printed with it. With --explain, auto_explain logs each statement's EXPLAIN (ANALYZE, BUFFERS,
// WAL) with its triggers and nested statements instead. Needs the seeded bench database (`npm run
// bench` once) and no bench running:
//   tsx bench/round-trips.ts [--explain]
import path from 'node:path';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startBenchPostgres } from './pg.js';
import { DATABASE, type SeedState } from './seed.js';
import { buildBaseline, startBaseline, startKyclo, startReceiver } from './servers.js';
import { registerWebhooks } from './scenarios.js';

const explain = process.argv.includes('--explain');

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIR = path.join(ROOT, 'scratch', 'bench');

const state = JSON.parse(await fs.readFile(path.join(DIR, 'seed.json'), 'utf8').catch(() => 'null')) as SeedState | null;
if (!state) {
  process.stderr.write('no seeded bench database: run `npm run bench` first\n');
  process.exit(2);
}

let lines: string[] = [];
let buffered = '';
const onServerLog = (chunk: string) => {
  buffered += chunk;
  const parts = buffered.split('\n');
  buffered = parts.pop() ?? '';
  lines.push(...parts);
};
const server = await startBenchPostgres(DIR, { sharedBuffers: '2GB', log: (m) => process.stdout.write(m + '\n'), onServerLog });
const url = server.urlFor(DATABASE);
const admin = new pg.Client({ connectionString: url });
await admin.connect();
// Only the sessions opened from now on (the servers') log; reset below.
const SETTINGS: Array<[string, string]> = explain
  ? [
      ['session_preload_libraries', 'auto_explain'], ['auto_explain.log_min_duration', '0'], ['auto_explain.log_analyze', 'on'],
      ['auto_explain.log_buffers', 'on'], ['auto_explain.log_wal', 'on'], ['auto_explain.log_triggers', 'on'],
      ['auto_explain.log_nested_statements', 'on'], ['auto_explain.log_timing', 'on'],
    ]
  : [['log_statement', 'all']];
for (const [k, v] of SETTINGS) await admin.query(`alter role postgres in database kyclo_bench set ${k} = '${v}'`);
buildBaseline(ROOT);
const receiver = await startReceiver();
const kyclo = await startKyclo({ root: ROOT, databaseUrl: url, masterKey: state.masterKey, logLevel: 'warn', dataDir: path.join(DIR, 'kyclo') });
const baseline = await startBaseline({ root: ROOT, databaseUrl: url, tenantId: state.tenantId, writeTenantId: state.writeTenantId ?? state.tenantId });
await registerWebhooks(kyclo.base, [state.apiKey, ...(state.writeApiKey ? [state.writeApiKey] : [])], receiver.url);

try {
  const { rows } = await admin.query<{ id: string }>("select id from users where tenant_id = $1 and status = 'active' and type = 'individual' limit 1", [state.tenantId]);
  const id = rows[0]!.id;
  const auth = { authorization: `Bearer ${state.apiKey}` };
  const person = { type: 'individual', first_name: 'Round', last_name: 'Trip', country: 'FR', email: 'round.trip@example.com', phone: '+33612345678' };
  const k = kyclo.base;
  const b = baseline.base;
  const cases: Array<{ name: string; base: string; method: string; url: string; body?: object; ct?: string; writes?: boolean }> = [
    { name: 'Kyclo GET /v1/users/{id}', base: k, method: 'GET', url: `/v1/users/${id}` },
    { name: 'bare GET /users/{id}', base: b, method: 'GET', url: `/users/${id}` },
    { name: 'Kyclo GET /v1/users/{id}/capabilities', base: k, method: 'GET', url: `/v1/users/${id}/capabilities` },
    { name: 'bare GET /users/{id}/capabilities', base: b, method: 'GET', url: `/users/${id}/capabilities` },
    { name: 'Kyclo PATCH /v1/users/{id} (metadata), and the background work it causes', base: k, method: 'PATCH', url: `/v1/users/${id}`, body: { metadata: { bench: `rt-${Date.now()}` } }, ct: 'application/merge-patch+json', writes: true },
    { name: 'bare PATCH /users/{id} (read + 1 statement)', base: b, method: 'PATCH', url: `/users/${id}`, body: { metadata: { bench: `rt-${Date.now()}` } }, ct: 'application/merge-patch+json' },
    { name: 'bare PATCH /floor/users/{id} (1 statement)', base: b, method: 'PATCH', url: `/floor/users/${id}`, body: { metadata: { bench: `rt-${Date.now()}` } }, ct: 'application/merge-patch+json' },
    { name: 'Kyclo POST /v1/users, and the background work it causes', base: k, method: 'POST', url: '/v1/users', body: person, ct: 'application/json', writes: true },
    { name: 'bare POST /users', base: b, method: 'POST', url: '/users', body: person, ct: 'application/json' },
    { name: 'Kyclo GET /v1/users?limit=50', base: k, method: 'GET', url: '/v1/users?limit=50' },
    { name: 'bare GET /users?limit=50', base: b, method: 'GET', url: '/users?limit=50' },
    { name: 'Kyclo GET /v1/users?q=… (search)', base: k, method: 'GET', url: '/v1/users?q=towuwim' },
  ];
  const settle = (ms = 300) => new Promise((r) => setTimeout(r, ms));
  // Once unmeasured, so last_used_at (touched at most once a minute) and pool connects do not count.
  for (let i = 0; i < 12; i++) await fetch(`${kyclo.base}/v1/users/${id}/capabilities`, { headers: auth });
  for (let i = 0; i < 12; i++) await fetch(`${baseline.base}/users/${id}/capabilities`);
  // Whatever the background work had left (the previous run's last deliveries) goes first.
  await settle(5000);
  for (const c of cases) {
    lines = [];
    const res = await fetch(`${c.base}${c.url}`, {
      method: c.method, headers: { ...(c.base === k ? (c.writes && c.method === 'POST' && state.writeApiKey ? { authorization: `Bearer ${state.writeApiKey}` } : auth) : {}), ...(c.ct ? { 'content-type': c.ct } : {}) },
      body: c.body ? JSON.stringify(c.body) : undefined,
    });
    await res.arrayBuffer();
    // After a Kyclo write, long enough for a sealer round (every 1 s) and the dispatcher's fan-out and delivery.
    await settle(c.writes ? 2500 : 300);
    if (explain) {
      process.stdout.write(`\n==== ${c.name} → ${res.status} ====\n${lines.join('\n')}\n`);
      continue;
    }
    const statements = lines
      .map((l) => /LOG:\s+(?:statement|execute [^:]*):\s+(.*)$/.exec(l)?.[1])
      .filter((s): s is string => Boolean(s));
    process.stdout.write(`\n${c.name} → ${res.status}: ${statements.length} statements (each a round trip; ones sent in parallel overlap)\n`);
    statements.forEach((s, i) => process.stdout.write(`  ${String(i + 1).padStart(2)}. ${s.length > 200 ? `${s.slice(0, 197)}...` : s}\n`));
  }
} finally {
  await kyclo.stop();
  await baseline.stop();
  await receiver.stop();
  for (const [key] of SETTINGS) await admin.query(`alter role postgres in database kyclo_bench reset ${key}`).catch(() => undefined);
  await admin.end();
  await server.stop();
}
