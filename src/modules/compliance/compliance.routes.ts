import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, Cursor, errors, Id, IdParam, Limit, ListOf, Note, Nullable } from '../../http/schemas.js';
import { codes } from '../reference/enumerations.js';
import { ETagHeader, IfMatch, parseIfMatch } from '../users/users.routes.js';
import type { RiskService } from './risk.service.js';

const tags = ['Compliance profile'];
const Rating = Type.Enum(codes('risk_ratings'), { description: 'See GET /v1/enumerations/risk_ratings' });
const RiskStatus = Type.Enum(codes('risk_statuses'), { description: 'See GET /v1/enumerations/risk_statuses' });

const RiskChange = Type.Object({
  id: Id('rsk'),
  user_id: Id('usr'),
  from: Nullable(Type.Object({ rating: Rating, status: RiskStatus }, { description: 'null for the first assessment' })),
  to: Type.Object({ rating: Rating, status: RiskStatus }),
  reason: Nullable(Type.String({ description: 'null once the user is erased' })),
  actor: Type.Object({ key_id: Nullable(Type.String()), role: Nullable(Type.String()) }, { description: 'The API key that did it' }),
  request_id: Nullable(Type.String()),
  created_at: Type.String({ format: 'date-time' }),
}, { title: 'RiskChange', description: 'One change of a user’s risk assessment' });

export function complianceRoutes(risk: RiskService) {
  return async (app: FastifyInstance) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.put('/v1/users/:id/risk', {
      config: { permission: 'risk:set' },
      schema: {
        operationId: 'setUserRisk',
        tags,
        summary: 'Set the user’s risk rating and status (compliance roles only)',
        description:
          'Only COMPLIANCE_OFFICER, ADMIN and OWNER keys. The reason is required. Each change is kept in the history (listUserRiskChanges), ' +
          'audited and announced by user.risk_changed; the same rating, status and reason again changes nothing. ' +
          'A prohibited rating denies every capability (risk_prohibited). With If-Match, a stale version answers 412. A closed user answers 409.',
        params: IdParam('usr'),
        headers: IfMatch,
        body: Type.Object({ rating: Rating, status: RiskStatus, reason: Note }, { additionalProperties: false }),
        response: {
          200: { ...Type.Ref('Risk'), description: 'The user’s risk as it is now (the ETag is the user’s new version)', headers: ETagHeader },
          ...errors(...AUTH_ERRORS, 404, 409, 412, 413, 415),
        },
      },
      handler: async (req, reply) => {
        const out = await risk.set(req.actor, req.params.id, req.body, parseIfMatch(req.headers['if-match']));
        reply.header('etag', `"${out.version}"`);
        return out.risk;
      },
    });

    r.get('/v1/users/:id/risk-changes', {
      config: { permission: 'users:read' },
      schema: {
        operationId: 'listUserRiskChanges',
        tags,
        summary: 'The history of the user’s risk assessment, newest first',
        params: IdParam('usr'),
        querystring: Type.Object({ limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) }, { additionalProperties: false }),
        response: { 200: { ...ListOf(RiskChange, 'RiskChangeList'), description: 'A page of risk changes, newest first' }, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req) => risk.history(req.actor, req.params.id, req.query),
    });
  };
}
