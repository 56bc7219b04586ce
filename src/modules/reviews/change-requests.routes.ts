import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, Cursor, errors, Id, IdParam, Limit, ListOf, Nullable, Note } from '../../http/schemas.js';
import { ROLES } from '../api-keys/roles.js';
import type { ChangeRequestsService } from './change-requests.service.js';

const Status = Type.Enum(['pending', 'approved', 'rejected', 'cancelled']);
const Who = Type.Object({ key_id: Nullable(Id('key')), role: Nullable(Type.Unsafe<string>(Type.Enum([...ROLES]))) }, { title: 'Actor', description: 'The API key that did it (null for the CLI and the system)' });
const ChangeRequest = Type.Object({
  id: Id('chg'),
  user_id: Id('usr'),
  status: Status,
  fields: Type.Array(Type.String()),
  changes: Nullable(
    Type.Record(Type.String(), Type.Object({ from: Type.Unknown(), to: Type.Unknown() }), {
      description: 'By dotted field name: the value when requested and the proposed one; null once the user is erased',
    }),
  ),
  requested_by: Who,
  request_id: Nullable(Type.String()),
  created_at: Type.String({ format: 'date-time' }),
  decided_at: Nullable(Type.String({ format: 'date-time' })),
  decided_by: Nullable(Who),
  decision_reason: Nullable(Type.String()),
  decision_note: Nullable(Type.String()),
}, { title: 'ChangeRequest', description: 'Fields a PATCH held for a second pair of eyes' });
const Query = Type.Object(
  { status: Type.Optional(Status), limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) },
  { additionalProperties: false },
);

export function changeRequestRoutes(service: ChangeRequestsService) {
  return async (app: FastifyInstance) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['Reviews'];
    r.get('/v1/change-requests', {
      config: { permission: 'changes:review' },
      schema: {
        operationId: 'listChangeRequests',
        tags,
        summary: 'The review queue, oldest first (status defaults to pending)',
        querystring: Query,
        response: { 200: { ...ListOf(ChangeRequest, 'ChangeRequestList'), description: 'A page of change requests, oldest first' }, ...errors(...AUTH_ERRORS) },
      },
      handler: async (req) => service.list(req.actor, { ...req.query, status: req.query.status ?? 'pending' }),
    });
    r.get('/v1/change-requests/:id', {
      config: { permission: 'changes:review' },
      schema: {
        operationId: 'getChangeRequest',
        tags,
        summary: 'One change request',
        params: IdParam('chg'),
        response: { 200: { ...ChangeRequest, description: 'The change request' }, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req) => service.get(req.actor, req.params.id),
    });
    r.get('/v1/users/:id/change-requests', {
      config: { permission: 'changes:review' },
      schema: {
        operationId: 'listUserChangeRequests',
        tags,
        summary: "A user's change requests, oldest first (every status unless filtered)",
        params: IdParam('usr'),
        querystring: Query,
        response: { 200: { ...ListOf(ChangeRequest, 'ChangeRequestList'), description: 'A page of change requests, oldest first' }, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req) => service.listForUser(req.actor, req.params.id, req.query),
    });
    r.post('/v1/change-requests/:id/approve', {
      config: { permission: 'changes:review' },
      schema: {
        operationId: 'approveChangeRequest',
        tags,
        summary: 'Approve: apply every proposed value at once',
        description:
          'If any of the fields changed since the request was made → 409 change_request.stale and nothing is applied; a tenant-defined value that no longer fits its field\'s definition (changed or removed since) → 409 change_request.invalid_now, nothing applied; ' +
          'tenant-defined values that would pass their 8 KiB bound together with those applied since → 422 user.value_too_large, nothing applied. ' +
          'The key that made the request cannot approve it (403). Events user.change_approved and user.updated.',
        params: IdParam('chg'),
        body: Type.Optional(Type.Object({ note: Type.Optional(Note) }, { additionalProperties: false })),
        response: { 200: { ...ChangeRequest, description: 'The change request, decided' }, ...errors(...AUTH_ERRORS, 404, 409, 413, 415, 422) },
      },
      handler: async (req) => service.approve(req.actor, req.params.id, req.body ?? {}),
    });
    r.post('/v1/change-requests/:id/reject', {
      config: { permission: 'changes:review' },
      schema: {
        operationId: 'rejectChangeRequest',
        tags,
        summary: 'Reject, with a reason; nothing is applied',
        params: IdParam('chg'),
        body: Type.Object({ reason: Note, note: Type.Optional(Note) }, { additionalProperties: false }),
        response: { 200: { ...ChangeRequest, description: 'The change request, decided' }, ...errors(...AUTH_ERRORS, 404, 409, 413, 415) },
      },
      handler: async (req) => service.reject(req.actor, req.params.id, req.body),
    });
  };
}
