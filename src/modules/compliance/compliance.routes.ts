import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, Cursor, errors, Id, IdParam, Limit, ListOf, Note, Nullable, Text } from '../../http/schemas.js';
import { codes } from '../reference/enumerations.js';
import { ETagHeader, IfMatch, parseIfMatch } from '../../http/conditional.js';
import type { RiskService } from './risk.service.js';
import type { RequiredActionsService } from './required-actions.service.js';
import { toUserView } from '../users/user-view.js';

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

const NewAction = Type.Object({
  code: Type.Enum(codes('required_action_codes'), { description: 'See GET /v1/enumerations/required_action_codes' }),
  field: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z_]+(\\.[a-z0-9_]+)?$', description: 'A field of the user, dotted as the field policy names it (address.line1), or a whole object (address)' }))),
  document_type: Type.Optional(Nullable(Type.Enum(codes('document_types'), { description: 'See GET /v1/enumerations/document_types' }))),
  message: Type.Optional(Nullable(Text(500, { description: 'What to tell the user' }))),
  due_at: Type.Optional(Nullable(Type.String({ format: 'date-time' }))),
}, { additionalProperties: false });
const ActionParams = Type.Object({ id: IdParam('usr').properties.id, action_id: Type.String({ minLength: 1, maxLength: 64, description: 'rqa_… id' }) });

export function complianceRoutes(risk: RiskService, actions: RequiredActionsService) {
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

    r.post('/v1/users/:id/required-actions', {
      config: { permission: 'users:update' },
      schema: {
        operationId: 'addRequiredAction',
        tags,
        summary: 'Ask the user for a field or a document',
        description:
          'provide_field needs `field`, provide_document and renew_document need `document_type`; never both. The action is open until the field ' +
          'arrives with a value (a PATCH or an approved change request) or the document is added: then it is fulfilled, automatically. ' +
          'At most 20 open at once. Shown on the user as required_actions; announced by user.required_action_added.',
        params: IdParam('usr'),
        body: NewAction,
        response: {
          201: { ...Type.Ref('RequiredAction'), description: 'The action, open (the ETag is the user’s new version)', headers: ETagHeader },
          ...errors(...AUTH_ERRORS, 404, 409, 413, 415),
        },
      },
      handler: async (req, reply) => {
        const out = await actions.add(req.actor, req.params.id, req.body);
        reply.code(201).header('etag', `"${out.version}"`);
        return out.result;
      },
    });

    r.post('/v1/users/:id/required-actions/:action_id/cancel', {
      config: { permission: 'users:update' },
      schema: {
        operationId: 'cancelRequiredAction',
        tags,
        summary: 'Cancel an open required action',
        description: 'An action no longer open (fulfilled or cancelled) answers 409 required_action.not_open.',
        params: ActionParams,
        response: {
          200: { ...Type.Ref('RequiredAction'), description: 'The action, cancelled', headers: ETagHeader },
          ...errors(...AUTH_ERRORS, 404, 409, 413, 415),
        },
      },
      handler: async (req, reply) => {
        const out = await actions.cancel(req.actor, req.params.id, req.params.action_id);
        reply.header('etag', `"${out.version}"`);
        return out.result;
      },
    });

    r.put('/v1/users/:id/kyc-sub-status', {
      config: { permission: 'kyc:record' },
      schema: {
        operationId: 'setKycSubStatus',
        tags,
        summary: 'Set the finer KYC step (MatchMove’s sub-status) beside kyc.status',
        description: 'null clears it. The same value again changes nothing. Announced by user.kyc_sub_status_changed. A closed user answers 409.',
        params: IdParam('usr'),
        body: Type.Object({ sub_status: Nullable(Type.Enum(codes('kyc_sub_statuses'), { description: 'See GET /v1/enumerations/kyc_sub_statuses' })) }, { additionalProperties: false }),
        response: { 200: { $ref: 'User', description: 'The user', headers: ETagHeader }, ...errors(...AUTH_ERRORS, 404, 409, 413, 415) },
      },
      handler: async (req, reply) => {
        const user = await actions.setSubStatus(req.actor, req.params.id, req.body.sub_status);
        reply.header('etag', `"${user.version}"`);
        return toUserView(user);
      },
    });
  };
}
