import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, Cursor, Token, errors, IdParam, Limit, ListOf } from '../../http/schemas.js';
import { EVENT_TYPES, EventSchema } from './catalog.js';
import type { EventsService } from './events.service.js';

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

export function eventRoutes(events: EventsService) {
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
      handler: async (req) => events.list(req.actor, req.query),
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
      handler: async (req) => events.get(req.actor, req.params.id),
    });
  };
}
