import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, Cursor, errors, Id, IdParam, Limit, ListOf, Nullable, Text } from '../../http/schemas.js';
import { PERMISSIONS, ROLES } from './roles.js';
import type { ApiKeysService } from './api-keys.service.js';

const Role = Type.Enum([...ROLES]);
const ApiKey = Type.Object({
  id: Id('key'),
  name: Type.String(),
  role: Role,
  prefix: Type.String({ description: 'The first characters of the key, to recognise it' }),
  created_by: Nullable(Type.String({ description: 'The key that created it (key_…), or cli' })),
  created_at: Type.String({ format: 'date-time' }),
  expires_at: Nullable(Type.String({ format: 'date-time' })),
  revoked_at: Nullable(Type.String({ format: 'date-time' })),
  last_used_at: Nullable(Type.String({ format: 'date-time', description: 'To the minute' })),
}, { title: 'ApiKey', description: 'An API key (never its secret)' });
const CreatedApiKey = Type.Object({
  ...ApiKey.properties,
  key: Type.String({ description: 'The secret, shown this once only; store it now' }),
}, { title: 'ApiKeyWithSecret', description: 'A new API key and its secret, shown this once' });

const Me = Type.Object({
  id: Id('key'),
  name: Type.String(),
  role: Role,
  prefix: Type.String({ description: 'The first characters of the key, to recognise it' }),
  expires_at: Nullable(Type.String({ format: 'date-time' })),
  tenant: Type.Object({ id: Type.String(), name: Type.String() }),
  permissions: Type.Array(Type.Enum(Object.keys(PERMISSIONS)), { description: 'What this key\'s role may do; the server still decides each request' }),
  manages_roles: Type.Array(Role, { description: 'The roles of the keys this key may create and revoke (none without tenant:admin)' }),
}, { title: 'Me', description: 'The calling API key, its tenant and what its role may do' });

export function apiKeyRoutes(keys: ApiKeysService) {
  return async (app: FastifyInstance) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();
    r.post('/v1/api-keys', {
      config: { permission: 'tenant:admin', idempotentResponse: 'secret' },
      schema: {
        operationId: 'createApiKey',
        tags: ['API keys'],
        summary: 'Create an API key (the secret is returned once)',
        description: 'A tenant holds at most 500 active keys: past that, 409 api_key.limit_reached and nothing is created.',
        body: Type.Object(
          {
            role: Role,
            name: Text(100),
            expires_at: Type.Optional(Nullable(Type.String({ format: 'date-time' }))),
          },
          { additionalProperties: false },
        ),
        response: { 201: { ...CreatedApiKey, description: 'The key, created, with its secret', headers: { Location: { type: 'string' } } }, ...errors(...AUTH_ERRORS, 409, 413, 415) },
      },
      handler: async (req, reply) => {
        const created = await keys.create(req.actor, req.body);
        reply.code(201).header('location', `/v1/api-keys/${created.id}`);
        return created;
      },
    });
    r.get('/v1/me', {
      config: { permission: 'session:read' },
      schema: {
        operationId: 'getMe',
        tags: ['API keys'],
        summary: 'The calling key: id, name, role, tenant and permissions',
        description: 'What the operator console reads at sign-in to show only what the key\'s role may do. Any valid key may call it.',
        response: { 200: { ...Me, description: 'The calling key' }, ...errors(...AUTH_ERRORS) },
      },
      handler: async (req) => keys.me(req.actor),
    });
    r.get('/v1/api-keys', {
      config: { permission: 'tenant:admin' },
      schema: {
        operationId: 'listApiKeys',
        tags: ['API keys'],
        summary: 'List API keys (never their secrets)',
        querystring: Type.Object(
          { limit: Type.Optional(Limit), cursor: Type.Optional(Cursor), include_revoked: Type.Optional(Type.Boolean({ default: true })) },
          { additionalProperties: false },
        ),
        response: { 200: { ...ListOf(ApiKey, 'ApiKeyList'), description: 'A page of API keys' }, ...errors(...AUTH_ERRORS) },
      },
      handler: async (req) => keys.list(req.actor, { ...req.query, limit: req.query.limit ?? 50 }),
    });
    r.delete('/v1/api-keys/:id', {
      config: { permission: 'tenant:admin' },
      schema: {
        operationId: 'revokeApiKey',
        tags: ['API keys'],
        summary: 'Revoke an API key (idempotent)',
        params: IdParam('key'),
        response: { 200: { ...ApiKey, description: 'The key, revoked' }, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req) => keys.revoke(req.actor, req.params.id),
    });
  };
}
