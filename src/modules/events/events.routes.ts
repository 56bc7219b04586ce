import { Type, type Static } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Db } from '../../db/database.js';
import type { Selectable } from 'kysely';
import type { EventsTable } from '../../db/database.js';
import { AUTH_ERRORS, Cursor, Token, errors, IdParam, Limit, ListOf } from '../../http/schemas.js';
import { decodeCursor, toPage } from '../../lib/cursor.js';
import { notFound } from '../../http/errors.js';
import type { Keyring } from '../../crypto/keyring.js';
import { mergePersonal, openPersonal } from './personal.js';
import { EVENT_TYPES, EventSchema, type EventType } from './catalog.js';


const Event = EventSchema;

const EventsQuery = Type.Object(
  {
    type: Type.Optional(Type.Enum([...EVENT_TYPES], { description: 'Only events of this type' })),
    user_id: Type.Optional(Token(64, 'Only events about this user (usr_…)')),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Cursor),
  },
  { additionalProperties: false },
);

const toEvent = (r: Selectable<EventsTable>, personal: Record<string, unknown> | undefined | null) => ({
  id: r.id,
  type: r.type as EventType,
  created_at: r.occurred_at.toISOString(),
  user_id: r.user_id,
  actor_key_id: r.actor_key_id,
  request_id: r.request_id,
  data: mergePersonal(r.data, personal),
});

/** Events as the API shows them: the personal part opened with each user's key. */
export async function eventViews(keyring: Keyring, tenantId: string, rows: Array<Selectable<EventsTable>>) {
  const personal = await openPersonal(keyring, tenantId, rows);
  return rows.map((r, i) => toEvent(r, personal[i]));
}

async function listEvents(db: Db, keyring: Keyring, tenantId: string, q: Static<typeof EventsQuery>) {
  const limit = q.limit ?? 50;
  const before = decodeCursor(q.cursor, ['seq'] as const, /^\d{1,18}$/);
  let query = db.selectFrom('events').selectAll().where('tenant_id', '=', tenantId);
  if (before) query = query.where('seq', '<', before.seq as never);
  if (q.type) query = query.where('type', '=', q.type);
  if (q.user_id) query = query.where('user_id', '=', q.user_id);
  const rows = await query.orderBy('seq', 'desc').limit(limit + 1).execute();
  const page = toPage(rows, limit, (r) => r, (r) => ({ seq: String(r.seq) }));
  return { data: await eventViews(keyring, tenantId, page.data), next_cursor: page.next_cursor };
}

export function eventRoutes(db: Db, keyring: Keyring) {
  return async (app: FastifyInstance) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();
    r.get('/v1/events', {
      config: { permission: 'events:manage' },
      schema: {
        operationId: 'listEvents',
        tags: ['Events'],
        summary: 'Events, newest first',
        querystring: EventsQuery,
        response: { 200: ListOf(Event), ...errors(...AUTH_ERRORS) },
      },
      handler: async (req) => listEvents(db, keyring, req.actor.tenantId, req.query),
    });
    r.get('/v1/events/:id', {
      config: { permission: 'events:manage' },
      schema: {
        operationId: 'getEvent',
        tags: ['Events'],
        summary: 'One event',
        params: IdParam('evt'),
        response: { 200: Event, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req) => {
        const row = await db.selectFrom('events').selectAll().where('tenant_id', '=', req.actor.tenantId).where('id', '=', req.params.id).executeTakeFirst();
        if (!row) throw notFound('event', req.params.id);
        return (await eventViews(keyring, req.actor.tenantId, [row]))[0]!;
      },
    });
  };
}
