// The bare baselines: the fastest a hand-written Fastify + pg app gets at the same database work as
// Kyclo. Named prepared statements (parsed once per connection), the same pool size and timeouts as
// Kyclo's (src/db/database.ts), and the same SQL shapes, with no auth, validation, policy,
// encryption or logging. The audited writes are one transaction of separate statements: BEGIN,
// the row, the audit entry, the event, COMMIT (five round trips), rows shaped like Kyclo's
// (src/modules/audit/write-path.ts); the personal part is base64 of the same JSON, not encrypted.
// Run: BENCH_DATABASE_URL=… BENCH_TENANT_ID=ten_… [BENCH_WRITE_TENANT_ID=ten_…] PORT=… node --import tsx bench/baseline.ts
// (POSTs go to the write tenant, as Kyclo's do in the bench, so the seeded tenant stays as seeded.)
import crypto from 'node:crypto';
import Fastify from 'fastify';
import pg from 'pg';
import { newId } from '../src/lib/ids.js';

const url = process.env.BENCH_DATABASE_URL;
const tenantId = process.env.BENCH_TENANT_ID;
const writeTenantId = process.env.BENCH_WRITE_TENANT_ID || tenantId;
const port = Number(process.env.PORT ?? 0);
if (!url || !tenantId) {
  process.stderr.write('BENCH_DATABASE_URL and BENCH_TENANT_ID are required\n');
  process.exit(2);
}

// The columns Kyclo reads for a user (users.repo.ts COLUMNS).
const COLUMNS =
  'tenant_id, id, external_ref, type, country, status, status_reason, status_changed_at, kyc_status, kyc_level, kyc_verified_at, ' +
  'profile, metadata, tags, pending_changes, version, created_at, updated_at, external_ref_hash, legal_hold, legal_hold_reason, ' +
  'erasure_requested_at, erasure_scheduled_for, erased_at';

const SQL = {
  get: `select ${COLUMNS} from users where tenant_id = $1 and id = $2`,
  update:
    `update users set metadata = metadata || $3::jsonb, version = version + 1, updated_at = now() ` +
    `where tenant_id = $1 and id = $2 returning ${COLUMNS}`,
  insert:
    `insert into users (tenant_id, id, external_ref, type, country, profile, metadata, tags, updated_at) ` +
    `values ($1, $2, null, $3, $4, $5::jsonb, '{}'::jsonb, '{}', now()) ` +
    `on conflict (tenant_id, external_ref) where external_ref is not null do nothing returning ${COLUMNS}`,
  audit:
    `insert into audit_entries (tenant_id, id, actor_type, actor_key_id, actor_role, action, outcome, target_type, target_id, user_id, ` +
    `changed_fields, request_id, ip, details, personal_enc) values ($1, $2, 'api_key', 'key_bench_baseline', 'OWNER', $3, 'applied', ` +
    `'user', $4, $4, $5, $6, $7, $8::jsonb, $9)`,
  event:
    `insert into events (tenant_id, id, type, user_id, actor_key_id, request_id, data, personal_enc) ` +
    `values ($1, $2, $3, $4, 'key_bench_baseline', $5, $6::jsonb, $7)`,
  first: `select ${COLUMNS} from users where tenant_id = $1 order by id desc limit $2`,
  after: `select ${COLUMNS} from users where tenant_id = $1 and id < $2 order by id desc limit $3`,
} as const;
type Name = keyof typeof SQL;

const pool = new pg.Pool({
  connectionString: url, max: 10, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 10_000,
  statement_timeout: 15_000, idle_in_transaction_session_timeout: 30_000,
});
pool.on('error', () => undefined);

const q = (c: pg.Pool | pg.PoolClient, name: Name, values: unknown[]) => c.query({ name, text: SQL[name], values });
const opaque = (v: unknown) => `b64.${Buffer.from(JSON.stringify(v)).toString('base64url')}`;

async function inTransaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('begin');
    const out = await fn(c);
    await c.query('commit');
    return out;
  } catch (err) {
    await c.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}

const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
app.addContentTypeParser('application/merge-patch+json', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));
const requestId = () => `req_${crypto.randomUUID()}`;

app.get('/healthz', async () => ({ status: 'ok' }));

app.get<{ Params: { id: string } }>('/users/:id', async (req, reply) => {
  const r = await q(pool, 'get', [tenantId, req.params.id]);
  if (!r.rows[0]) return reply.code(404).send({ code: 'user.not_found' });
  return r.rows[0];
});

app.patch<{ Params: { id: string }; Body: { metadata?: Record<string, unknown> } }>('/users/:id', async (req, reply) => {
  const id = req.params.id;
  const patch = req.body?.metadata ?? {};
  const rid = requestId();
  const row = await inTransaction(async (c) => {
    const u = (await q(c, 'update', [tenantId, id, JSON.stringify(patch)])).rows[0] as { version: number } | undefined;
    if (!u) return undefined;
    const personal = opaque({ previous: { metadata: {} }, current: { metadata: patch } });
    await q(c, 'audit', [tenantId, newId('aud'), 'user.updated', id, ['metadata'], rid, req.ip, '{"review_required":false}', personal]);
    await q(c, 'event', [tenantId, newId('evt'), 'user.updated', id, rid, JSON.stringify({ user_id: id, version: u.version, changed_fields: ['metadata'] }), personal]);
    return u;
  });
  if (!row) return reply.code(404).send({ code: 'user.not_found' });
  return row;
});

app.post<{ Body: { type: string; country: string } & Record<string, unknown> }>('/users', async (req, reply) => {
  const { type, country, ...profile } = req.body;
  const id = newId('usr');
  const rid = requestId();
  const row = await inTransaction(async (c) => {
    const u = (await q(c, 'insert', [writeTenantId, id, type, country, JSON.stringify(profile)])).rows[0];
    await q(c, 'audit', [writeTenantId, newId('aud'), 'user.created', id, [], rid, req.ip, '{}', null]);
    await q(c, 'event', [writeTenantId, newId('evt'), 'user.created', id, rid, JSON.stringify({ user_id: id, type }), opaque({ user: u })]);
    return u;
  });
  return reply.code(201).header('location', `/users/${id}`).send(row);
});

app.get<{ Querystring: { limit?: string; after?: string } }>('/users', async (req) => {
  const limit = Math.min(200, Math.max(1, Number(req.query.limit ?? 50)));
  const r = req.query.after ? await q(pool, 'after', [tenantId, req.query.after, limit + 1]) : await q(pool, 'first', [tenantId, limit + 1]);
  const rows = r.rows as Array<{ id: string }>;
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { data: page, next_cursor: rows.length > limit && last ? last.id : null };
});

await app.listen({ port, host: '127.0.0.1' });
const addr = app.server.address();
process.stdout.write(`baseline listening on ${typeof addr === 'object' && addr ? addr.port : port}\n`);
const stop = async () => {
  await app.close();
  await pool.end();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
