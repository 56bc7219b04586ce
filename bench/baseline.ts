// The bare baselines (issue 14): the fastest a hand-written Fastify + pg app gets at the SAME database
// work as Kyclo, so that a ratio measures Kyclo's machinery and nothing else. What is the same:
// - the rows and their sizes: the user row, its data key on create, the audit entry with its writer's
//   timestamp and MAC, the event; personal parts are blobs of exactly the encrypted length (the
//   plaintext framed as a kc1 envelope would be, not encrypted);
// - one statement wherever one statement does it (CTEs, like Kyclo's recordCtes), named prepared
//   statements, Kyclo's pool size and timeouts, timestamptz read as ISO text where Kyclo does
//   (src/db/iso-timestamps.ts), a response schema through Fastify's serializer, and compiled
//   JavaScript (run.ts builds this file with tsc, as `npm run build` builds Kyclo);
// - for PATCH, two baselines: the round trips Kyclo needs (the read it plans with, then one write)
//   and the one-statement floor (no read).
// What is not: auth, validation, the field policy, encryption, logging, metrics. Its audit entries
// are written already sealed (the audit_seals row in the same statement, at chain position -seq: no
// head to lock, a floor) and its events already fanned out (not queued in event_outbox): it has no
// background work, so Kyclo's sealer and dispatcher never see them (bench/README.md says why that
// is the fair split). Run: BENCH_DATABASE_URL=… BENCH_TENANT_ID=ten_… BENCH_WRITE_TENANT_ID=ten_…
// PORT=… node scratch/bench/baseline-dist/bench/baseline.js
import crypto from 'node:crypto';
import Fastify from 'fastify';
import pg from 'pg';
import { newId } from '../src/lib/ids.js';
// Random bytes drawn from a pool as Kyclo draws them (src/crypto/random.ts): crypto.randomBytes costs
// ≈ 5 µs a call whatever the size, which Kyclo does not pay.
import { randomBytes } from '../src/crypto/random.js';
import { isoTimestampTypes } from '../src/db/iso-timestamps.js';
import { COLUMNS as USER_COLUMNS, VIEW_COLUMN_LIST, newRow } from '../src/modules/users/users.repo.js';
import { toUserView } from '../src/modules/users/user-view.js';
import { CAPABILITY_INPUTS_SQL } from '../src/modules/relationships/relationships.repo.js';

const url = process.env.BENCH_DATABASE_URL;
const tenantId = process.env.BENCH_TENANT_ID;
const writeTenantId = process.env.BENCH_WRITE_TENANT_ID || tenantId;
const port = Number(process.env.PORT ?? 0);
if (!url || !tenantId || !writeTenantId) {
  process.stderr.write('BENCH_DATABASE_URL and BENCH_TENANT_ID are required\n');
  process.exit(2);
}

// The columns Kyclo reads: the whole row for a write, only what the user object shows for a read.
const COLUMN_NAMES = USER_COLUMNS;
const COLUMNS = COLUMN_NAMES.join(', ');

// The audit entry and the event, as CTEs over the CTE `u` that made the change: nothing is recorded
// when it matched nothing. Plain parameters (Kyclo passes two jsonb documents to jsonb_populate_record).
const AUDIT_COLUMNS =
  'tenant_id, id, occurred_at, actor_type, actor_key_id, actor_role, action, outcome, target_type, target_id, user_id, ' +
  'changed_fields, request_id, ip, details, personal_enc, mac';
const EVENT_COLUMNS = 'tenant_id, id, type, user_id, actor_key_id, request_id, data, personal_enc';
/** $a … $a+12: audit id, occurred_at, actor key, changed_fields, request id, ip, details, personal, mac, hash; event id, data, personal. */
const record = (action: string, a: number) => `
  a as (
    insert into audit_entries (${AUDIT_COLUMNS})
    select u.tenant_id, $${a}, $${a + 1}::timestamptz, 'api_key', $${a + 2}, 'OWNER', '${action}', 'applied', 'user', u.id, u.id,
           $${a + 3}::text[], $${a + 4}, $${a + 5}, $${a + 6}::jsonb, $${a + 7}, $${a + 8} from u
    returning tenant_id, seq
  ),
  s as (
    insert into audit_seals (tenant_id, chain_seq, entry_seq, prev_hash, hash) select a.tenant_id, -a.seq, a.seq, $${a + 9}, $${a + 9} from a
  ),
  e as (
    insert into events (${EVENT_COLUMNS})
    select u.tenant_id, $${a + 10}, '${action}', u.id, $${a + 2}, $${a + 4}, $${a + 11}::jsonb, $${a + 12} from u
  )`;

const SQL = {
  get: `select ${VIEW_COLUMN_LIST} from users where tenant_id = $1 and id = $2`,
  // Kyclo's own statement (user_capabilities): the user, the tenant's overrides, the held related parties.
  capabilities: CAPABILITY_INPUTS_SQL,
  // The read Kyclo plans a patch with (users.repo.ts users_get_for_patch): the user, the tenant's
  // field policy, the data key. The baseline reads the same rows; it uses only the metadata.
  patchRead: `select ${COLUMN_NAMES.map((c) => `u.${c}`).join(', ')}, t.policy -> 'fields' as field_overrides, k.key_id, k.wrapped_key
                from users u join tenants t on t.id = u.tenant_id
                left join user_keys k on k.tenant_id = u.tenant_id and k.user_id = u.id and k.destroyed_at is null
               where u.tenant_id = $1 and u.id = $2`,
  patchWrite: `with u as (
      update users set metadata = $3::jsonb, version = version + 1, updated_at = now()
       where tenant_id = $1 and id = $2 and version = $4
      returning ${COLUMNS}
    ), ${record('user.updated', 5)}
    select * from u`,
  patchFloor: `with u as (
      update users set metadata = metadata || $3::jsonb, version = version + 1, updated_at = now()
       where tenant_id = $1 and id = $2
      returning ${COLUMNS}
    ), ${record('user.updated', 4)}
    select * from u`,
  insert: `with u as (
      insert into users (tenant_id, id, external_ref, type, country, profile, metadata, tags, status, status_reason, kyc_status,
                         kyc_level, kyc_verified_at, pending_changes, version, created_at, updated_at, status_changed_at)
      values ($1, $2, null, $3, $4, $5::jsonb, '{}'::jsonb, '{}'::text[], 'active', null, 'unverified', null, null, '[]'::jsonb, 1, $6, $6, $6)
      on conflict (tenant_id, external_ref) where external_ref is not null do nothing
      returning ${COLUMNS}
    ), k as (
      insert into user_keys (tenant_id, user_id, key_id, wrapped_key, master_key_id) select u.tenant_id, u.id, $7, $8, $9 from u
    ), ${record('user.created', 10)}
    select * from u`,
  first: `select ${VIEW_COLUMN_LIST} from users where tenant_id = $1 order by id desc limit $2`,
  after: `select ${VIEW_COLUMN_LIST} from users where tenant_id = $1 and id < $2 order by id desc limit $3`,
} as const;
type Name = keyof typeof SQL;
/** The statements whose rows only become answers read timestamps as ISO text, as Kyclo's do. */
const AS_VIEW = new Set<Name>(['get', 'patchWrite', 'patchFloor', 'insert', 'first', 'after']);

const pool = new pg.Pool({
  connectionString: url, max: 10, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 10_000,
  statement_timeout: 15_000, idle_in_transaction_session_timeout: 30_000,
});
pool.on('error', () => undefined);

async function q<R>(name: Name, values: unknown[]): Promise<R[]> {
  return (await pool.query<R & object>({ name, text: SQL[name], values, ...(AS_VIEW.has(name) ? { types: isoTimestampTypes } : {}) })).rows;
}

// --- The rows' sizes ---------------------------------------------------------------------------------

// An API key id as Kyclo makes them (key_ + 26 characters): the idempotency trigger matches on it.
const ACTOR_KEY_ID = 'key_BENCHBASELINE0000000000000';
const MAC_KEY = crypto.randomBytes(32);
const FAKE_IV = 'AAAAAAAAAAAAAAAA'; // 12 bytes, base64url
const FAKE_TAG = Buffer.alloc(16);
const SEALED_HASH = '0'.repeat(64);

/** A kc1 envelope's length and shape (kc1.<key id>.<iv>.<ciphertext + tag>), not encrypted. */
const framed = (value: unknown) => `kc1.dk_0000000000000000.${FAKE_IV}.${Buffer.concat([Buffer.from(JSON.stringify(value)), FAKE_TAG]).toString('base64url')}`;

/** The audit entry's parameters: its id, the writer's time, and an HMAC-SHA256 of its content like Kyclo's MAC. */
function auditParams(t: string, userId: string, action: string, changed: string[], details: object, personal: string | null, requestId: string, ip: string) {
  const id = newId('aud');
  const occurredAt = new Date().toISOString();
  const mac = crypto
    .createHmac('sha256', MAC_KEY)
    .update(JSON.stringify({ tenant_id: t, id, occurred_at: occurredAt, actor_key_id: ACTOR_KEY_ID, action, user_id: userId, changed, request_id: requestId, ip, details, personal }))
    .digest('base64url');
  return [id, occurredAt, ACTOR_KEY_ID, changed, requestId, ip, JSON.stringify(details), personal, mac, SEALED_HASH];
}

// --- Response schemas (Fastify's serializer, fast-json-stringify) -------------------------------------

const str = { type: 'string' } as const;
const nstr = { type: 'string', nullable: true } as const;
const address = { type: 'object', nullable: true, properties: { line1: str, city: str, postcode: str }, additionalProperties: true } as const;
const PROFILE_KEYS = [
  'first_name', 'last_name', 'email', 'phone', 'date_of_birth', 'nationality', 'occupation', 'language', 'legal_name',
  'registration_number', 'legal_form', 'sector',
];
const USER = {
  type: 'object',
  properties: {
    tenant_id: str, id: str, external_ref: nstr, type: str, country: str, status: str, status_reason: nstr, status_changed_at: nstr,
    kyc_status: str, kyc_level: { type: 'integer', nullable: true }, kyc_verified_at: nstr,
    profile: { type: 'object', properties: { ...Object.fromEntries(PROFILE_KEYS.map((k) => [k, str])), address }, additionalProperties: true },
    metadata: { type: 'object', additionalProperties: true },
    tags: { type: 'array', items: str },
    pending_changes: { type: 'array', items: { type: 'object', additionalProperties: true } },
    version: { type: 'integer' }, created_at: nstr, updated_at: nstr, external_ref_hash: nstr, legal_hold: { type: 'boolean' },
    legal_hold_reason: nstr, erasure_requested_at: nstr, erasure_scheduled_for: nstr, erased_at: nstr,
  },
} as const;
const VERDICT = { type: 'object', properties: { allowed: { type: 'boolean' }, reason: nstr } } as const;
const OPERATIONS = ['deposits', 'withdrawals', 'exchanges', 'card_transactions'] as const;
const CAPABILITIES = {
  type: 'object',
  properties: {
    user_id: str, status: str, kyc_status: str, evaluated_at: str,
    capabilities: { type: 'object', properties: Object.fromEntries(OPERATIONS.map((o) => [o, VERDICT])) },
    related_parties: {
      type: 'array',
      items: {
        type: 'object',
        properties: { user_id: str, status: str, ownership_percent: { type: 'number' }, control: { type: 'boolean' }, path: { type: 'array', items: str } },
      },
    },
    propagation: { type: 'object', properties: { ownership_threshold_percent: { type: 'number' }, statuses: { type: 'array', items: str } } },
  },
} as const;
const PROPAGATION = { ownership_threshold_percent: 25, statuses: ['blocked', 'suspended'] };
const PAGE = { type: 'object', properties: { data: { type: 'array', items: USER }, next_cursor: nstr } } as const;
const NOT_FOUND = { type: 'object', properties: { code: str } } as const;

// The default capability matrix (lifecycle/capabilities.ts), with the tenant's overrides on top.
const ALLOWED: Record<string, Record<string, boolean>> = {
  active: { deposits: true, withdrawals: true, exchanges: true, card_transactions: true },
  flagged: { deposits: true, withdrawals: false, exchanges: false, card_transactions: true },
};
const REASON: Record<string, string> = { active: 'not_allowed', flagged: 'under_review', suspended: 'account_suspended', blocked: 'account_blocked', closed: 'account_closed' };

// --- Routes --------------------------------------------------------------------------------------------

type UserRow = { id: string; version: number; metadata: Record<string, unknown> };
const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
app.addContentTypeParser('application/merge-patch+json', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));
const requestId = () => `req_${crypto.randomUUID()}`;

app.get('/healthz', async () => ({ status: 'ok' }));

app.get<{ Params: { id: string } }>('/users/:id', { schema: { response: { 200: USER, 404: NOT_FOUND } } }, async (req, reply) => {
  const [row] = await q<UserRow>('get', [tenantId, req.params.id]);
  if (!row) return reply.code(404).send({ code: 'user.not_found' });
  reply.header('etag', `"${row.version}"`);
  return row;
});

app.get<{ Params: { id: string } }>('/users/:id/capabilities', { schema: { response: { 200: CAPABILITIES, 404: NOT_FOUND } } }, async (req, reply) => {
  type Party = { user_id: string; status: string; ownership_percent: number; control: boolean; path: string[] };
  const [row] = await q<{ status: string; kyc_status: string; overrides: Record<string, Record<string, boolean>> | null; parties: Party[] }>('capabilities', [tenantId, req.params.id]);
  if (!row) return reply.code(404).send({ code: 'user.not_found' });
  // The default propagation: a blocked or suspended party owning ≥ 25 % or controlling the user holds it.
  const held = row.parties.filter((p) => (p.status === 'blocked' || p.status === 'suspended') && (p.control || p.ownership_percent >= 25));
  const kycOk = row.kyc_status === 'verified' || row.kyc_status === 'review_required';
  const matrix = { ...ALLOWED[row.status], ...(row.status === 'closed' ? {} : row.overrides?.[row.status]) };
  const capabilities: Record<string, { allowed: boolean; reason: string | null }> = {};
  for (const op of OPERATIONS) {
    capabilities[op] = !matrix[op] ? { allowed: false, reason: REASON[row.status] ?? 'not_allowed' }
      : held[0] ? { allowed: false, reason: `related_party_${held[0].status}` }
      : kycOk ? { allowed: true, reason: null } : { allowed: false, reason: 'kyc_not_verified' };
  }
  return {
    user_id: req.params.id, status: row.status, kyc_status: row.kyc_status, capabilities, related_parties: held,
    propagation: PROPAGATION, evaluated_at: new Date().toISOString(),
  };
});

type PatchReq = { Params: { id: string }; Body: { metadata?: Record<string, unknown> } };
const patchOpts = { schema: { response: { 200: USER, 404: NOT_FOUND } } };

// The round trips Kyclo needs: the read it plans with, then one statement at the version read.
// A write that lost a race (the version moved) reads and tries again, as Kyclo does.
app.patch<PatchReq>('/users/:id', patchOpts, async (req, reply) => {
  const id = req.params.id;
  const patch = req.body?.metadata ?? {};
  const rid = requestId();
  for (let attempt = 0; attempt < 5; attempt++) {
    const [row] = await q<UserRow>('patchRead', [tenantId, id]);
    if (!row) return reply.code(404).send({ code: 'user.not_found' });
    const metadata = { ...row.metadata, ...patch };
    const personal = framed({ previous: { metadata: row.metadata }, current: { metadata } });
    const [written] = await q<UserRow>('patchWrite', [
      tenantId, id, JSON.stringify(metadata), row.version,
      ...auditParams(tenantId, id, 'user.updated', ['metadata'], { review_required: false }, personal, rid, req.ip),
      newId('evt'), JSON.stringify({ user_id: id, version: row.version + 1, changed_fields: ['metadata'] }), personal,
    ]);
    if (written) {
      reply.header('etag', `"${written.version}"`);
      return written;
    }
  }
  return reply.code(409).send({ code: 'user.conflict' });
});

// The floor: one statement, no read (the merge is done by PostgreSQL; the personal part is sized
// from the patch, as no previous value was read).
app.patch<PatchReq>('/floor/users/:id', patchOpts, async (req, reply) => {
  const id = req.params.id;
  const patch = req.body?.metadata ?? {};
  const personal = framed({ previous: { metadata: patch }, current: { metadata: patch } });
  const [written] = await q<UserRow>('patchFloor', [
    tenantId, id, JSON.stringify(patch),
    ...auditParams(tenantId, id, 'user.updated', ['metadata'], { review_required: false }, personal, requestId(), req.ip),
    newId('evt'), JSON.stringify({ user_id: id, changed_fields: ['metadata'] }), personal,
  ]);
  if (!written) return reply.code(404).send({ code: 'user.not_found' });
  reply.header('etag', `"${written.version}"`);
  return written;
});

app.post<{ Body: { type: string; country: string } & Record<string, unknown> }>('/users', { schema: { response: { 201: USER } } }, async (req, reply) => {
  const { type, country, ...profile } = req.body;
  const t = writeTenantId;
  const id = newId('usr');
  const rid = requestId();
  const now = new Date();
  const at = now.toISOString();
  // The user.created event's personal part is the user as Kyclo answers it (every field of its type),
  // framed to the encrypted length: Kyclo's own view function sizes it, so the rows match byte for byte.
  const user = toUserView(newRow({ tenant_id: t, id, external_ref: null, type, country, profile, metadata: {}, tags: [] }, now));
  const [row] = await q<UserRow>('insert', [
    t, id, type, country, JSON.stringify(profile), at,
    `dk_${randomBytes(8).toString('hex')}`, randomBytes(60), 'mk_benchbaseline',
    ...auditParams(t, id, 'user.created', [], {}, null, rid, req.ip),
    newId('evt'), JSON.stringify({ user_id: id, type }), framed({ user }),
  ]);
  if (!row) return reply.code(409).send({ code: 'user.exists' });
  return reply.code(201).header('location', `/users/${id}`).header('etag', '"1"').send(row);
});

// The page sizes Kyclo writes into its statements (users.repo.ts): the same lever, so the same plan work.
const PAGE_SIZES = new Set([10, 20, 25, 50, 100, 200]);
async function pageRows(limit: number, after: string | undefined): Promise<UserRow[]> {
  if (!PAGE_SIZES.has(limit)) return after ? q<UserRow>('after', [tenantId, after, limit + 1]) : q<UserRow>('first', [tenantId, limit + 1]);
  const [name, text] = after
    ? [`after_${limit}`, SQL.after.replace('limit $3', `limit ${limit + 1}`)]
    : [`first_${limit}`, SQL.first.replace('limit $2', `limit ${limit + 1}`)];
  const values = after ? [tenantId, after] : [tenantId];
  return (await pool.query<UserRow>({ name, text, values, types: isoTimestampTypes })).rows;
}

app.get<{ Querystring: { limit?: string; after?: string } }>('/users', { schema: { response: { 200: PAGE } } }, async (req) => {
  const limit = Math.min(200, Math.max(1, Number(req.query.limit ?? 50)));
  const rows = await pageRows(limit, req.query.after);
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
