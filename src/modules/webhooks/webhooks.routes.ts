import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, Cursor, errors, Id, IdParam, Limit, ListOf, Nullable, Text } from '../../http/schemas.js';
import { EVENT_TYPES } from '../events/catalog.js';
import type { WebhooksService } from './webhooks.service.js';

const EventType = Type.Enum([...EVENT_TYPES]);
const Endpoint = Type.Object({
  id: Id('whe'),
  url: Type.String(),
  description: Nullable(Type.String()),
  event_types: Type.Array(Type.Unsafe<string>(EventType), { description: 'Empty: every event type' }),
  enabled: Type.Boolean(),
  disabled_reason: Nullable(Type.Unsafe<string>(Type.Enum(['gone', 'failing'], { description: 'gone (the receiver answered 410), failing (5 days without success), or null' }))),
  failing_since: Nullable(Type.String({ format: 'date-time' })),
  secret_rotation_ends_at: Nullable(Type.String({ format: 'date-time', description: 'Until then the previous secret signs too' })),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
}, { title: 'WebhookEndpoint', description: 'Where events are delivered, signed per Standard Webhooks' });
const WithSecret = Type.Object(
  { ...Endpoint.properties, secret: Type.String({ pattern: '^whsec_', description: 'whsec_…: shown this once' }) },
  { title: 'WebhookEndpointWithSecret', description: 'An endpoint and its signing secret, shown this once' },
);
const Url = Type.String({ minLength: 8, maxLength: 2048, description: 'https (http only where the operator allows it); never a private address' });
const Fields = {
  description: Type.Optional(Nullable(Text(500))),
  event_types: Type.Optional(Type.Array(EventType, { maxItems: 50, uniqueItems: true })),
  enabled: Type.Optional(Type.Boolean()),
};
const Attempt = Type.Object({
  delivery_id: Id('dlv', 'The delivery (one event to this endpoint); its attempts share it'),
  event_id: Id('evt'),
  attempt: Type.Integer(),
  attempted_at: Type.String({ format: 'date-time' }),
  succeeded: Type.Boolean(),
  status_code: Nullable(Type.Integer()),
  duration_ms: Type.Integer(),
  error: Nullable(Type.String()),
}, { title: 'WebhookDeliveryAttempt', description: 'One attempt of one delivery, identified by delivery_id and attempt' });
const Page = Type.Object({ limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) }, { additionalProperties: false });
const tags = ['Webhooks'];
const config = { permission: 'events:manage' as const };
// Responses that show a signing secret once are never kept for idempotent replay.
const secretConfig = { ...config, idempotentResponse: 'secret' as const };

export function webhookRoutes(service: WebhooksService) {
  return async (app: FastifyInstance) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();
    r.post('/v1/webhook-endpoints', {
      config: secretConfig,
      schema: {
        operationId: 'createWebhookEndpoint', tags, summary: 'Register an endpoint (its signing secret is returned once)',
        description: 'A tenant registers at most 50 endpoints: past that, 409 webhook_endpoint.limit_reached and nothing is created.',
        body: Type.Object({ url: Url, ...Fields }, { additionalProperties: false }),
        response: { 201: { ...WithSecret, description: 'The endpoint, registered, with its secret', headers: { Location: { type: 'string' } } }, ...errors(...AUTH_ERRORS, 409, 413, 415, 422) },
      },
      handler: async (req, reply) => {
        const created = await service.create(req.actor, req.body);
        reply.code(201).header('location', `/v1/webhook-endpoints/${created.id}`);
        return created;
      },
    });
    r.get('/v1/webhook-endpoints', {
      config,
      schema: { operationId: 'listWebhookEndpoints', tags, summary: 'Endpoints', querystring: Page, response: { 200: { ...ListOf(Endpoint, 'WebhookEndpointList'), description: 'A page of endpoints' }, ...errors(...AUTH_ERRORS) } },
      handler: async (req) => service.list(req.actor, req.query),
    });
    r.get('/v1/webhook-endpoints/:id', {
      config,
      schema: { operationId: 'getWebhookEndpoint', tags, summary: 'One endpoint', params: IdParam('whe'), response: { 200: { ...Endpoint, description: 'The endpoint' }, ...errors(...AUTH_ERRORS, 404) } },
      handler: async (req) => service.get(req.actor, req.params.id),
    });
    r.patch('/v1/webhook-endpoints/:id', {
      config,
      schema: {
        operationId: 'updateWebhookEndpoint', tags, summary: 'Change the URL, event types, description; enable or disable',
        params: IdParam('whe'),
        body: Type.Object({ url: Type.Optional(Url), ...Fields }, { additionalProperties: false, minProperties: 1 }),
        response: { 200: { ...Endpoint, description: 'The endpoint, changed' }, ...errors(...AUTH_ERRORS, 404, 413, 415, 422) },
      },
      handler: async (req) => service.update(req.actor, req.params.id, req.body),
    });
    r.delete('/v1/webhook-endpoints/:id', {
      config,
      schema: { operationId: 'deleteWebhookEndpoint', tags, summary: 'Delete an endpoint and its pending deliveries', params: IdParam('whe'), response: { 200: { ...Endpoint, description: 'The endpoint, deleted' }, ...errors(...AUTH_ERRORS, 404) } },
      handler: async (req) => service.remove(req.actor, req.params.id),
    });
    r.post('/v1/webhook-endpoints/:id/rotate-secret', {
      config: secretConfig,
      schema: {
        operationId: 'rotateWebhookSecret', tags, summary: 'A new secret; the old one keeps signing alongside it for 24 hours',
        params: IdParam('whe'), response: { 200: { ...WithSecret, description: 'The endpoint with its new secret' }, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req) => service.rotateSecret(req.actor, req.params.id),
    });
    r.get('/v1/webhook-endpoints/:id/deliveries', {
      config,
      schema: {
        operationId: 'listWebhookDeliveries', tags, summary: 'Every delivery attempt to this endpoint, newest first',
        params: IdParam('whe'), querystring: Page, response: { 200: { ...ListOf(Attempt, 'WebhookDeliveryAttemptList'), description: 'A page of attempts, newest first' }, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req) => service.deliveries(req.actor, req.params.id, req.query),
    });
    r.post('/v1/events/:id/redeliver', {
      config,
      schema: {
        operationId: 'redeliverEvent', tags, summary: 'Send an event again to every enabled endpoint that takes it (same webhook-id); one already on its way is not queued twice',
        params: IdParam('evt'),
        response: {
          202: Type.Object(
            { event_id: Id('evt'), deliveries: Type.Array(Type.Object({ id: Id('dlv'), endpoint_id: Id('whe') }), { description: 'One per endpoint that takes it, unless one of this event is already queued to it and not yet attempted' }) },
            { title: 'Redelivery', description: 'The new deliveries, queued' },
          ),
          ...errors(...AUTH_ERRORS, 404),
        },
      },
      handler: async (req, reply) => {
        reply.code(202);
        return service.redeliver(req.actor, req.params.id);
      },
    });
  };
}
