import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, Cursor, errors, Id, IdParam, Limit, ListOf, Nullable, Token, Note } from '../../http/schemas.js';
import { ROLES } from '../api-keys/roles.js';
import { OPERATIONS, VERDICT_REASONS } from './capabilities.js';
import { PROPAGATING_STATUSES } from '../relationships/relationship-rules.js';
import { codes } from '../reference/enumerations.js';
import { ETagHeader, IfMatch, parseIfMatch } from '../../http/conditional.js';
import { toUserView } from '../users/user-view.js';
import { ORIGINS, SHORTHANDS, STATUSES, type Shorthand } from './user-status.js';
import type { LifecycleService } from './lifecycle.service.js';
import type { ErasureService } from '../erasure/erasure.service.js';
import { roleAllows } from '../api-keys/roles.js';
import { AppError } from '../../http/errors.js';

const Reason = Type.Enum(codes('reason_codes'), { description: 'See GET /v1/enumerations/reason_codes' });
const Origin = Type.Enum([...ORIGINS], { description: 'Who initiated it; operator by default' });

const StatusChange = Type.Object({
  id: Id('stc'),
  user_id: Id('usr'),
  from: Type.Enum([...STATUSES]),
  to: Type.Enum([...STATUSES]),
  reason: Nullable(Type.String({ description: 'A reason code (GET /v1/enumerations/reason_codes)' })),
  note: Nullable(Type.String()),
  origin: Type.Enum([...ORIGINS]),
  actor: Type.Object({ key_id: Nullable(Id('key')), role: Nullable(Type.Unsafe<string>(Type.Enum([...ROLES]))) }, { title: 'Actor', description: 'The API key that did it (null for the CLI and the system)' }),
  request_id: Nullable(Type.String()),
  created_at: Type.String({ format: 'date-time' }),
}, { title: 'StatusChange', description: 'One move of a user\'s status' });
const Verdict = Type.Object(
  { allowed: Type.Boolean(), reason: Nullable(Type.Unsafe<string>(Type.Enum([...VERDICT_REASONS], { description: 'Why not (null when allowed)' }))) },
  { title: 'CapabilityVerdict' },
);
const RelatedParty = Type.Object({
  user_id: Id('usr'),
  status: Type.Unsafe<string>(Type.Enum([...PROPAGATING_STATUSES], { description: 'For a closed party, the status it was closed from' })),
  closed: Type.Boolean({ description: 'The party is closed (or erased): closed in a status the policy propagates, it still holds' }),
  ownership_percent: Type.Number({ description: 'Ultimate ownership of this user (chains multiplied); 0 when it only controls it' }),
  control: Type.Boolean(),
  path: Type.Array(Id('usr'), { description: 'From this user to the party' }),
}, { title: 'RelatedParty' });
const Capabilities = Type.Object({
  user_id: Id('usr'),
  status: Type.Enum([...STATUSES]),
  kyc_status: Type.Unsafe<string>(Type.Enum(codes('kyc_statuses'))),
  capabilities: Type.Object(Object.fromEntries(OPERATIONS.map((o) => [o, Verdict])) as Record<(typeof OPERATIONS)[number], typeof Verdict>),
  related_parties: Type.Array(RelatedParty, {
    description: 'The related parties the propagation policy holds against this user now (most serious first); empty when none. The first one gives the related_party_* reason.',
  }),
  propagation: Type.Object(
    { ownership_threshold_percent: Type.Number(), statuses: Type.Array(Type.String()) },
    { description: 'The tenant’s propagation policy this answer was evaluated with' },
  ),
  risk_rating: Nullable(Type.Unsafe<string>(Type.Enum(codes('risk_ratings'), { description: 'The user’s risk rating (prohibited denies every operation: risk_prohibited); null when never assessed' }))),
  evaluated_at: Type.String({ format: 'date-time' }),
}, { title: 'Capabilities', description: 'What the user may do now, from its live status and KYC status' });
const CloseBody = Type.Object(
  { origin: Type.Enum(['operator', 'user'], { description: 'Who asked for the closure (Treezor: operator or user)' }), reason: Reason, note: Type.Optional(Note) },
  { additionalProperties: false },
);
const tags = ['Lifecycle'];

export function lifecycleRoutes(service: LifecycleService, erasure: ErasureService) {
  return async (app: FastifyInstance) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();
    r.post('/v1/users/:id/status-changes', {
      config: { permission: 'users:change_status' },
      schema: {
        operationId: 'changeUserStatus',
        tags,
        summary: 'Move a user to another status',
        description:
          'A move the transition table forbids answers 409 user.transition_not_allowed with the allowed next states; ' +
          'every move takes a reason code (lifting a freeze as much as making one). With If-Match, a stale version answers 412.',
        params: IdParam('usr'),
        headers: IfMatch,
        body: Type.Object(
          { status: Type.Enum([...STATUSES]), reason: Reason, note: Type.Optional(Note), origin: Type.Optional(Origin) },
          { additionalProperties: false },
        ),
        response: { 201: { ...StatusChange, description: 'The status change, made' }, ...errors(...AUTH_ERRORS, 404, 409, 412, 413, 415) },
      },
      handler: async (req, reply) => {
        // Closing is its own permission (OWNER, ADMIN), whichever route asks for it.
        if (req.body.status === 'closed' && req.actor.role && !roleAllows(req.actor.role, 'users:close')) {
          throw new AppError(403, 'auth.forbidden', `A ${req.actor.role} key cannot close users (users:close).`);
        }
        const { change } = await service.transition(req.actor, req.params.id, req.body, { ifMatch: parseIfMatch(req.headers['if-match']) });
        reply.code(201);
        return change;
      },
    });

    for (const [name, move] of Object.entries(SHORTHANDS) as Array<[Shorthand, (typeof SHORTHANDS)[Shorthand]]>) {
      r.post(`/v1/users/:id/${name}`, {
        config: { permission: 'users:change_status' },
        schema: {
          operationId: `${name}User`,
          tags,
          summary: `${name[0]!.toUpperCase()}${name.slice(1)} a user (→ ${move.to}${move.from ? `, only from ${move.from}` : ''})`,
          params: IdParam('usr'),
          headers: IfMatch,
          body: Type.Object({ reason: Reason, note: Type.Optional(Note), origin: Type.Optional(Origin) }, { additionalProperties: false }),
          response: { 201: { ...StatusChange, description: 'The status change, made' }, ...errors(...AUTH_ERRORS, 404, 409, 412, 413, 415) },
        },
        handler: async (req, reply) => {
          const { change } = await service.transition(
            req.actor, req.params.id, { ...req.body, status: move.to },
            { requiredFrom: move.from, ifMatch: parseIfMatch(req.headers['if-match']) },
          );
          reply.code(201);
          return change;
        },
      });
    }

    r.get('/v1/users/:id/status-changes', {
      config: { permission: 'users:read' },
      schema: {
        operationId: 'listUserStatusChanges',
        tags,
        summary: 'Status history, newest first',
        params: IdParam('usr'),
        querystring: Type.Object({ limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) }, { additionalProperties: false }),
        response: { 200: { ...ListOf(StatusChange, 'StatusChangeList'), description: 'A page of status changes, newest first' }, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req) => service.history(req.actor, req.params.id, req.query),
    });

    r.get('/v1/users/:id/capabilities', {
      config: { permission: 'users:read' },
      schema: {
        operationId: 'getUserCapabilities',
        tags,
        summary: 'What the user may do now: deposits, withdrawals, exchanges, card transactions',
        params: IdParam('usr'),
        response: { 200: { ...Capabilities, description: 'The verdict per operation' }, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req, reply) => {
        reply.header('cache-control', 'no-store');
        return service.capabilities(req.actor, req.params.id);
      },
    });

    r.delete('/v1/users/:id', {
      config: { permission: 'users:close' },
      schema: {
        operationId: 'closeUser',
        tags,
        summary: 'Close a user for good (the record is kept); idempotent',
        description:
          'Closing again answers 200 with no new event or audit entry. Pending change requests are cancelled. ' +
          'With If-Match, an open user whose version is not that one answers 412 and nothing changes; ' +
          'a user already closed answers 200 as it is (the change was already applied).',
        params: IdParam('usr'),
        headers: IfMatch,
        body: CloseBody,
        response: { 200: { $ref: 'User', description: 'The user, closed (or as it was, if already closed)', headers: ETagHeader }, ...errors(...AUTH_ERRORS, 404, 409, 412, 413, 415) },
      },
      handler: async (req, reply) => {
        const { user } = await service.close(req.actor, req.params.id, req.body, { ifMatch: parseIfMatch(req.headers['if-match']) });
        reply.header('etag', `"${user.version}"`);
        return toUserView(user);
      },
    });

    r.post('/v1/users/delete', {
      config: { permission: 'users:close' },
      schema: {
        operationId: 'closeUsers',
        tags,
        summary: 'Close up to 1,000 users; a result per id',
        description:
          'With "erase": true, each user’s erasure is requested as POST /v1/users/{id}/erasure would (Didit’s batch delete): closed at once ' +
          '(reason erasure_requested, the origin as requested_by), personal data kept for the retention period, then destroyed; ' +
          'each result then carries erasure_scheduled_for.',
        body: Type.Object(
          {
            ids: Type.Array(Token(64), { minItems: 1, maxItems: 1000 }), origin: CloseBody.properties.origin, reason: Reason, note: Type.Optional(Note),
            erase: Type.Optional(Type.Boolean({ default: false, description: 'Also request each user’s erasure (GDPR), as POST /v1/users/{id}/erasure' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            results: Type.Array(Type.Object({
              id: Type.String({ description: 'As sent' }),
              result: Type.Enum(['closed', 'already_closed', 'not_found', 'failed'], { description: 'failed: refused for this id (kept changing under the close); retry it' }),
              erasure_scheduled_for: Type.Optional(Type.String({ format: 'date-time', description: 'With erase: when the personal data will be destroyed (closure + retention)' })),
            })),
          }, { title: 'CloseUsersResult', description: 'A result per id, in the order sent' }),
          ...errors(...AUTH_ERRORS, 413, 415),
        },
      },
      handler: async (req) => {
        const { ids, erase, ...input } = req.body;
        if (!erase) return service.closeMany(req.actor, ids, input);
        return service.closeMany(req.actor, ids, input, async (id) => {
          const out = await erasure.request(req.actor, id, { requested_by: input.origin, ...(input.note ? { note: input.note } : {}) });
          return { closed: out.closedNow, extra: { erasure_scheduled_for: out.schedule.scheduled_for } };
        });
      },
    });
  };
}
