import { Type, type Static } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Selectable } from 'kysely';
import type { AuditEntriesTable, Db } from '../../db/database.js';
import { AUTH_ERRORS, Cursor, Token, errors, Id, Limit, ListOf, Nullable } from '../../http/schemas.js';
import { ROLES } from '../api-keys/roles.js';
import { decodeCursor, toPage } from '../../lib/cursor.js';
import type { Keyring } from '../../crypto/keyring.js';
import { openPersonal } from '../events/personal.js';
import { tenantCheckpoints } from './chain.js';

export const CheckpointSchema = Type.Object(
  {
    id: Type.String({ pattern: '^ckp_[0-9A-Z]{26}$' }),
    tenant_id: Id('ten'),
    chain_seq: Type.String({ pattern: '^[0-9]{1,18}$', description: 'The position of the last sealed entry' }),
    hash: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'The hash of the entry at chain_seq' }),
    signed_at: Type.String({ format: 'date-time' }),
    key_id: Type.String({ description: 'Which key signed it (see public_key)' }),
    signature: Type.String({ description: 'Ed25519 over the RFC 8785 canonical JSON of {tenant_id, chain_seq, hash, signed_at, key_id}, base64url' }),
    public_key: Type.String({ description: 'The raw Ed25519 public key, base64; pin it once (kyclo audit public-key), do not trust it from here' }),
  },
  { $id: 'AuditCheckpoint', description: 'A signed head of the tenant’s audit chain: keep these outside Kyclo’s database' },
);

const CheckpointQuery = Type.Object(
  {
    since: Type.Optional(Type.String({ format: 'date-time', description: 'Only checkpoints signed at or after this time' })),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Cursor),
  },
  { additionalProperties: false },
);

const AuditEntry = Type.Object({
  id: Id('aud'),
  seq: Type.String({ description: 'Position in the tenant’s log' }),
  occurred_at: Type.String({ format: 'date-time' }),
  actor: Type.Object({ type: Type.Enum(['api_key', 'cli', 'system']), key_id: Nullable(Id('key')), role: Nullable(Type.Enum([...ROLES])) }, { title: 'AuditActor' }),
  action: Type.String({ description: 'e.g. user.created, user.updated, user.update_denied, api_key.revoked' }),
  outcome: Type.Enum(['applied', 'denied', 'flagged'], { description: 'denied/flagged: a refused attempt, nothing changed' }),
  target: Type.Object({ type: Type.String(), id: Nullable(Type.String()) }),
  user_id: Nullable(Id('usr')),
  changed_fields: Type.Array(Type.String()),
  request_id: Nullable(Type.String()),
  ip: Nullable(Type.String()),
  details: Type.Record(Type.String(), Type.Unknown()),
  values: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'Personal values the change carried (previous/current…), decrypted; null after erasure' })),
}, { title: 'AuditEntry', description: 'One entry of the append-only audit log: a change, or a refused attempt' });

const AuditQuery = Type.Object(
  {
    user_id: Type.Optional(Token()),
    actor: Type.Optional(Token(64, 'An API key id')),
    action: Type.Optional(Token()),
    from: Type.Optional(Type.String({ format: 'date-time' })),
    to: Type.Optional(Type.String({ format: 'date-time' })),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Cursor),
  },
  { additionalProperties: false },
);

const toAuditEntry = (r: Selectable<AuditEntriesTable>, values: Record<string, unknown> | undefined | null) => ({
  id: r.id,
  seq: String(r.seq),
  occurred_at: r.occurred_at.toISOString(),
  actor: { type: r.actor_type, key_id: r.actor_key_id, role: r.actor_role },
  action: r.action,
  outcome: r.outcome,
  target: { type: r.target_type, id: r.target_id },
  user_id: r.user_id,
  changed_fields: r.changed_fields,
  request_id: r.request_id,
  ip: r.ip,
  details: r.details,
  // Old and new personal values: readable while the user's data key exists, null after erasure.
  values: values ?? null,
});

export async function listAudit(db: Db, keyring: Keyring, tenantId: string, q: Static<typeof AuditQuery>) {
  const limit = q.limit ?? 50;
  const before = decodeCursor(q.cursor, ['seq'] as const, /^\d{1,18}$/);
  let query = db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId);
  if (before) query = query.where('seq', '<', before.seq as never);
  if (q.user_id) query = query.where('user_id', '=', q.user_id);
  if (q.actor) query = query.where('actor_key_id', '=', q.actor);
  if (q.action) query = query.where('action', '=', q.action);
  if (q.from) query = query.where('occurred_at', '>=', new Date(q.from));
  if (q.to) query = query.where('occurred_at', '<', new Date(q.to));
  const rows = await query.orderBy('seq', 'desc').limit(limit + 1).execute();
  const page = toPage(rows, limit, (r) => r, (r) => ({ seq: String(r.seq) }));
  return { data: await auditViews(keyring, tenantId, page.data), next_cursor: page.next_cursor };
}

/** Audit entries as the API shows them, personal values opened with each user's key. */
export async function auditViews(keyring: Keyring, tenantId: string, rows: Array<Selectable<AuditEntriesTable>>) {
  const values = await openPersonal(keyring, tenantId, rows);
  return rows.map((r, i) => toAuditEntry(r, values[i]));
}

export function auditRoutes(db: Db, keyring: Keyring) {
  return async (app: FastifyInstance) => {
    app.withTypeProvider<TypeBoxTypeProvider>().get('/v1/audit/checkpoints', {
      config: { permission: 'audit:read' },
      schema: {
        operationId: 'listAuditCheckpoints',
        tags: ['Audit'],
        summary: 'Signed heads of the audit chain, newest first: for auditors to keep outside the database',
        querystring: CheckpointQuery,
        response: { 200: { ...ListOf(CheckpointSchema, 'AuditCheckpointList'), description: 'A page of checkpoints, newest first' }, ...errors(...AUTH_ERRORS) },
      },
      handler: async (req) => {
        const limit = req.query.limit ?? 50;
        const before = decodeCursor(req.query.cursor, ['chain_seq'] as const, /^\d{1,18}$/);
        const rows = await tenantCheckpoints(db, req.actor.tenantId, { since: req.query.since, beforeSeq: before?.chain_seq, limit: limit + 1 });
        const pk = keyring.auditKeys.publicKeyBase64;
        return toPage(rows, limit, (c) => ({ ...c, public_key: pk }), (c) => ({ chain_seq: c.chain_seq })) as never;
      },
    });
    app.withTypeProvider<TypeBoxTypeProvider>().get('/v1/audit-events', {
      config: { permission: 'audit:read' },
      schema: {
        operationId: 'listAuditEvents',
        tags: ['Audit'],
        summary: 'The audit log, newest first',
        querystring: AuditQuery,
        response: { 200: { ...ListOf(AuditEntry, 'AuditEntryList'), description: 'A page of audit entries, newest first' }, ...errors(...AUTH_ERRORS) },
      },
      handler: async (req) => listAudit(db, keyring, req.actor.tenantId, req.query) as never,
    });
  };
}
