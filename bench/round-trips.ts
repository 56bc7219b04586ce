// What each benchmarked Kyclo request sends to PostgreSQL, statement by statement: the bench
// database logs every statement (log_statement = all, set for this session of the server only) while
// a Kyclo server, started as the bench starts it, answers one request of each kind. Round trips to
// PostgreSQL are the main lever on these endpoints, so this is the first thing to read when a ratio
// misses. Needs the seeded bench database (`npm run bench` once) and no bench running:
//   tsx bench/round-trips.ts
import path from 'node:path';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startBenchPostgres } from './pg.js';
import { DATABASE, type SeedState } from './seed.js';
import { startKyclo } from './servers.js';

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
// Only the sessions opened from now on (Kyclo's) log; reset below.
await admin.query("alter role postgres in database kyclo_bench set log_statement = 'all'");
const kyclo = await startKyclo({ root: ROOT, databaseUrl: url, masterKey: state.masterKey, logLevel: 'warn', dataDir: path.join(DIR, 'kyclo') });

try {
  const { rows } = await admin.query<{ id: string }>("select id from users where tenant_id = $1 and status = 'active' and type = 'individual' limit 1", [state.tenantId]);
  const id = rows[0]!.id;
  const auth = { authorization: `Bearer ${state.apiKey}` };
  const cases: Array<{ name: string; method: string; url: string; body?: object; ct?: string }> = [
    { name: 'GET /v1/users/{id}', method: 'GET', url: `/v1/users/${id}` },
    { name: 'GET /v1/users/{id}/capabilities', method: 'GET', url: `/v1/users/${id}/capabilities` },
    { name: 'PATCH /v1/users/{id} (metadata)', method: 'PATCH', url: `/v1/users/${id}`, body: { metadata: { bench: `rt-${Date.now()}` } }, ct: 'application/merge-patch+json' },
    { name: 'POST /v1/users', method: 'POST', url: '/v1/users', body: { type: 'individual', first_name: 'Round', last_name: 'Trip', country: 'FR' }, ct: 'application/json' },
    { name: 'GET /v1/users?limit=50', method: 'GET', url: '/v1/users?limit=50' },
    { name: 'GET /v1/users?q=… (search)', method: 'GET', url: '/v1/users?q=towuwim' },
  ];
  const settle = () => new Promise((r) => setTimeout(r, 300));
  // Once unmeasured, so last_used_at (touched at most once a minute) and pool connects do not count.
  for (let i = 0; i < 12; i++) await fetch(`${kyclo.base}/v1/users/${id}/capabilities`, { headers: auth });
  await settle();
  for (const c of cases) {
    lines = [];
    const res = await fetch(`${kyclo.base}${c.url}`, {
      method: c.method, headers: { ...auth, ...(c.ct ? { 'content-type': c.ct } : {}) }, body: c.body ? JSON.stringify(c.body) : undefined,
    });
    await res.arrayBuffer();
    await settle();
    const statements = lines
      .map((l) => /LOG:\s+(?:statement|execute [^:]*):\s+(.*)$/.exec(l)?.[1])
      .filter((s): s is string => Boolean(s));
    process.stdout.write(`\n${c.name} → ${res.status}: ${statements.length} statements (each a round trip; ones sent in parallel overlap)\n`);
    statements.forEach((s, i) => process.stdout.write(`  ${String(i + 1).padStart(2)}. ${s.length > 160 ? `${s.slice(0, 157)}...` : s}\n`));
  }
} finally {
  await kyclo.stop();
  await admin.query('alter role postgres in database kyclo_bench reset log_statement').catch(() => undefined);
  await admin.end();
  await server.stop();
}
