import { Type } from 'typebox';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, errors, Id, IdParam, Nullable, Note } from '../../http/schemas.js';
import { ETagHeader } from '../../http/conditional.js';
import { toUserView } from '../users/user-view.js';
import type { ErasureService } from './erasure.service.js';
import type { ExportService } from './export.service.js';
import { Document } from '../documents/documents.schemas.js';
import { Relationship } from '../relationships/relationships.routes.js';

const Schedule = Type.Object({
  user_id: Id('usr'),
  status: Type.Unsafe<string>(Type.Enum(['closed'], { description: 'The user\'s status: closed from the request on' })),
  requested_at: Type.String({ format: 'date-time' }),
  scheduled_for: Type.String({ format: 'date-time', description: 'Closure + the tenant’s retention period' }),
  legal_hold: Type.Boolean(),
  erased_at: Nullable(Type.String({ format: 'date-time' })),
}, { title: 'ErasureSchedule', description: 'When the user\'s personal data will be (or was) destroyed' });
const Any = Type.Array(Type.Record(Type.String(), Type.Unknown()));
const Export = Type.Object({
  exported_at: Type.String({ format: 'date-time' }),
  tenant_id: Id('ten'),
  user: Type.Ref('User'),
  verifications: Any,
  documents: Type.Array(Document, { description: 'Every version, numbers unmasked; files at content_url' }),
  status_changes: Any,
  risk_changes: Type.Array(Type.Record(Type.String(), Type.Unknown()), { description: 'The history of the user’s risk assessment' }),
  relationships: Type.Array(Relationship, { description: 'Every relationship the user holds or is party to, ended ones included' }),
  change_requests: Any,
  events: Any,
  audit_entries: Any,
}, { title: 'UserExport', description: 'Everything held about one user (GDPR access)' });
const tags = ['Erasure'];

// Legal holds change the user's version like any write: the answer carries its ETag.
const withETag = (reply: FastifyReply, user: Parameters<typeof toUserView>[0]) => {
  reply.header('etag', `"${user.version}"`);
  return toUserView(user);
};

export function erasureRoutes(erasure: ErasureService, exporter: ExportService) {
  return async (app: FastifyInstance) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();
    r.post('/v1/users/:id/erasure', {
      config: { permission: 'users:close' },
      schema: {
        operationId: 'requestErasure',
        tags,
        summary: 'GDPR erasure: close now, destroy personal data when AML retention ends',
        description:
          'Closes the user at once and schedules destruction at closure + the tenant’s retention period (policy ' +
          'retention.erasure_after_days; default 1827: five years, leap days included; 0 allowed). Asking again answers the same schedule. A legal hold postpones it.',
        params: IdParam('usr'),
        body: Type.Object({ requested_by: Type.Enum(['user', 'operator']), note: Type.Optional(Note) }, { additionalProperties: false }),
        response: { 202: { ...Schedule, description: 'The user is closed; destruction is scheduled' }, ...errors(...AUTH_ERRORS, 404, 413, 415) },
      },
      handler: async (req, reply) => {
        const { schedule } = await erasure.request(req.actor, req.params.id, req.body);
        reply.code(202);
        return schedule;
      },
    });
    r.post('/v1/users/:id/legal-hold', {
      config: { permission: 'tenant:admin' },
      schema: {
        operationId: 'setLegalHold',
        tags,
        summary: 'Set a legal hold: no erasure destroys this user’s data while it stands',
        params: IdParam('usr'),
        body: Type.Object({ reason: Note }, { additionalProperties: false }),
        response: { 200: { ...Type.Ref('User'), description: 'The user, on legal hold', headers: ETagHeader }, ...errors(...AUTH_ERRORS, 404, 409, 413, 415) },
      },
      handler: async (req, reply) => withETag(reply, await erasure.setLegalHold(req.actor, req.params.id, true, req.body.reason)),
    });
    r.delete('/v1/users/:id/legal-hold', {
      config: { permission: 'tenant:admin' },
      schema: {
        operationId: 'clearLegalHold',
        tags,
        summary: 'Clear the legal hold (a due erasure then proceeds at the next sweep)',
        params: IdParam('usr'),
        response: { 200: { ...Type.Ref('User'), description: 'The user, without legal hold', headers: ETagHeader }, ...errors(...AUTH_ERRORS, 404, 409) },
      },
      handler: async (req, reply) => withETag(reply, await erasure.setLegalHold(req.actor, req.params.id, false)),
    });
    r.get('/v1/users/:id/export', {
      config: { permission: 'users:export' },
      schema: {
        operationId: 'exportUser',
        tags,
        summary: 'Everything held about the user, decrypted, as one document (GDPR access)',
        description:
          'Identifier numbers whole and every sealed value opened. Each export writes an audit entry user.exported (who read which user) before the document is sent.',
        params: IdParam('usr'),
        response: { 200: { ...Export, description: 'The export, streamed as one JSON document' }, ...errors(...AUTH_ERRORS, 404) },
      },
      // Streamed with bounded memory (export.service.ts); the schema above documents the document.
      handler: async (req, reply) => {
        const body = await exporter.stream(req.actor, req.params.id);
        return reply.header('cache-control', 'no-store').type('application/json; charset=utf-8').send(body as never);
      },
    });
  };
}
