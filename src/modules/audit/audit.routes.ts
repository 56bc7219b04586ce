import { Type, type Static } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Selectable } from 'kysely';
import type { AuditEntriesTable, Db } from '../../db/database.js';
import { AUTH_ERRORS, Cursor, Token, errors, Limit, ListOf, Nullable } from '../../http/schemas.js';
import { decodeCursor, toPage } from '../../lib/cursor.js';
import type { Keyring } from '../../crypto/keyring.js';
import { openPersonal } from '../events/personal.js';

const AuditEntry = Type.Object({
  id: Type.String(),
  seq: Type.String({ description: 'Position in the tenant’s log' }),
  occurred_at: Type.String({ format: 'date-time' }),
  actor: Type.Object({ type: Type.Enum(['api_key', 'cli', 'system']), key_id: Nullable(Type.String()), role: Nullable(Type.String()) }),
  action: Type.String({ description: 'e.g. user.created, user.updated, user.update_denied, api_key.revoked' }),
  outcome: Type.Enum(['applied', 'denied', 'flagged'], { description: 'denied/flagged: a refused attempt, nothing changed' }),
  target: Type.Object({ type: Type.String(), id: Nullable(Type.String()) }),
  user_id: Nullable(Type.String()),
  changed_fields: Type.Array(Type.String()),
  request_id: Nullable(Type.String()),
  ip: Nullable(Type.String()),
  details: Type.Record(Type.String(), Type.Unknown()),
  values: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'Personal values the change carried (previous/current…), decrypted; null after erasure' })),
});

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
    app.withTypeProvider<TypeBoxTypeProvider>().get('/v1/audit-events', {
      config: { permission: 'audit:read' },
      schema: {
        operationId: 'listAuditEvents',
        tags: ['Audit'],
        summary: 'The audit log, newest first',
        querystring: AuditQuery,
        response: { 200: ListOf(AuditEntry), ...errors(...AUTH_ERRORS) },
      },
      handler: async (req) => listAudit(db, keyring, req.actor.tenantId, req.query) as never,
    });
  };
}
