import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, Cursor, errors, IdParam, Limit, ListOf, Nullable, Text, Token } from '../../http/schemas.js';
import { MAX_CHAIN_DEPTH, MAX_PATHS_PER_OWNER, RELATIONSHIP_TYPES } from './relationship-rules.js';
import type { RelationshipsService } from './relationships.service.js';

const tags = ['Relationships'];
const RelationshipType = Type.Enum([...RELATIONSHIP_TYPES], { description: 'See GET /v1/enumerations/relationship_types' });
// At least 0.0001 (stored as numeric(7,4)): a smaller positive number rounds to 0 there and broke the
// table's check (ownership_percent > 0) as a 500; 1e-11 passed the 4-decimal test within its tolerance.
const Percent = Type.Number({ minimum: 0.0001, maximum: 100, description: 'Percent of the business held (beneficial_owner and shareholder only), 0.0001 to 100, up to 4 decimals' });
const Day = Type.String({ format: 'date', description: 'YYYY-MM-DD' });

export const Relationship = Type.Object({
  id: Type.String({ description: 'rel_… id' }),
  type: RelationshipType,
  user_id: Type.String({ description: 'The business (or the child account) the relationship belongs to' }),
  related_user_id: Type.String({ description: 'The owner, officer, signatory, shareholder or parent' }),
  ownership_percent: Nullable(Type.Number()),
  control: Type.Boolean({ description: 'The related user controls the holder: its block or suspension propagates whatever it owns' }),
  title: Nullable(Type.String()),
  starts_on: Nullable(Type.String({ format: 'date' })),
  ended_at: Nullable(Type.String({ format: 'date-time' })),
  created_at: Type.String({ format: 'date-time' }),
  change_request_id: Nullable(Type.String({ description: 'The approved change request that applied it, if any' })),
});

const Pending = Type.Object({
  status: Type.Literal('pending_approval'),
  change_request_id: Type.String(),
  fields: Type.Array(Type.String()),
  proposal: Type.Object({ action: Type.Enum(['add', 'end']) }, { additionalProperties: true, description: 'What approving applies' }),
}, { description: 'The field policy holds relationships of this user for approval (a verified business, by default): approve or reject it at /v1/change-requests/{id}' });

const AddBody = Type.Object(
  {
    type: RelationshipType,
    related_user_id: Token(64, 'usr_… id of a user of this tenant'),
    ownership_percent: Type.Optional(Nullable(Percent)),
    control: Type.Optional(Type.Boolean({ default: false })),
    title: Type.Optional(Nullable(Text(200))),
    starts_on: Type.Optional(Nullable(Day)),
  },
  { additionalProperties: false },
);

const RelParams = Type.Object({ id: Token(64, 'usr_… id'), rel_id: Token(64, 'rel_… id') });

const Owners = Type.Object({
  user_id: Type.String(),
  owners: Type.Array(Type.Object({
    user_id: Type.String({ description: 'An ultimate owner: no current owner above it' }),
    percent: Type.Number({ description: 'Ultimate ownership: percentages multiplied along each chain, summed over every chain' }),
    paths: Type.Array(Type.Array(Type.String()), {
      description: `Each chain, from the business to the owner, in path order; when more than ${MAX_PATHS_PER_OWNER} chains reach the owner, the ${MAX_PATHS_PER_OWNER} strongest`,
    }),
    path_count: Type.Optional(Type.Integer({ description: `Only when more than ${MAX_PATHS_PER_OWNER} chains reach the owner: how many (percent counts them all)` })),
  })),
  truncated: Type.Boolean({
    description: `True when a chain goes on past ${MAX_CHAIN_DEPTH} links: the owners above that depth are not counted, and the percentages are a lower bound`,
  }),
});

const RULES =
  'Both users must be of this tenant (another tenant’s user answers 404). A beneficial owner is an individual; only a business has owners, ' +
  'officers and signatories; any user may have one parent. No cycle of ownership or parenthood (422 relationship.cycle); the current ' +
  'beneficial owners and shareholders of a business hold at most 100 % together (422 relationship.ownership_over_100). ' +
  'The change follows the field policy as the field `relationships`: applied (201), held for approval (202, a verified business by default) or denied (422 user.field_denied).';

export function relationshipRoutes(service: RelationshipsService) {
  return async (app: FastifyInstance) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();
    r.post('/v1/users/:id/relationships', {
      config: { permission: 'users:update' },
      schema: {
        operationId: 'addRelationship',
        tags,
        summary: 'Relate another user to this one (owner, director, representative, signatory, shareholder, parent)',
        description: RULES,
        params: IdParam('usr'),
        body: AddBody,
        response: { 201: { ...Relationship, description: 'The relationship, in force', headers: { Location: { type: 'string' } } }, 202: Pending, ...errors(...AUTH_ERRORS, 404, 409, 413, 415, 422) },
      },
      handler: async (req, reply) => {
        const out = await service.add(req.actor, req.params.id, req.body);
        if ('pending' in out) {
          reply.code(202);
          return out.pending;
        }
        reply.code(201).header('location', `/v1/users/${req.params.id}/relationships/${out.relationship.id}`);
        return out.relationship;
      },
    });

    r.get('/v1/users/:id/relationships', {
      config: { permission: 'users:read' },
      schema: {
        operationId: 'listRelationships',
        tags,
        summary: 'The user’s relationships, on either side (current ones; ?include=ended for the history too)',
        params: IdParam('usr'),
        querystring: Type.Object(
          { include: Type.Optional(Type.Enum(['ended'])), limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) },
          { additionalProperties: false },
        ),
        response: { 200: ListOf(Relationship), ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req) => service.list(req.actor, req.params.id, req.query),
    });

    r.post('/v1/users/:id/relationships/:rel_id/end', {
      config: { permission: 'users:update' },
      schema: {
        operationId: 'endRelationship',
        tags,
        summary: 'End a relationship (it stays in the history, never deleted)',
        description: 'Through the holder (user_id) of the relationship. Follows the field policy like adding one (200 ended now, 202 held for approval).',
        params: RelParams,
        response: { 200: Relationship, 202: Pending, ...errors(...AUTH_ERRORS, 404, 409, 413, 415, 422) },
      },
      handler: async (req, reply) => {
        const out = await service.end(req.actor, req.params.id, req.params.rel_id);
        if ('pending' in out) {
          reply.code(202);
          return out.pending;
        }
        return out.relationship;
      },
    });

    r.get('/v1/users/:id/ownership', {
      config: { permission: 'users:read' },
      schema: {
        operationId: 'getOwnership',
        tags,
        summary: 'Ultimate owners through chains of businesses, with multiplied percentages and their chains',
        params: IdParam('usr'),
        response: { 200: Owners, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req) => service.ownership(req.actor, req.params.id),
    });
  };
}
