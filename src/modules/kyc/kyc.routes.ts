import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, Cursor, errors, IdParam, Limit, ListOf } from '../../http/schemas.js';
import { RecordVerificationBody, Verification } from './kyc.schemas.js';
import type { KycService } from './kyc.service.js';

export function kycRoutes(kyc: KycService) {
  return async (app: FastifyInstance) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();
    r.post('/v1/users/:id/verifications', {
      config: { permission: 'kyc:record' },
      schema: {
        operationId: 'recordVerification',
        tags: ['KYC'],
        summary: 'Record a KYC verification outcome',
        description:
          'approved → kyc.status verified (level, verified_at) and the identity data kept as an immutable snapshot; ' +
          'rejected → rejected; review → pending. Events user.verification_recorded and, when the status moves, user.kyc_status_changed.',
        params: IdParam('usr'),
        body: RecordVerificationBody,
        response: { 201: { ...Verification, description: 'The verification, recorded' }, ...errors(...AUTH_ERRORS, 404, 413, 415) },
      },
      handler: async (req, reply) => {
        const v = await kyc.record(req.actor, req.params.id, req.body);
        reply.code(201);
        return v;
      },
    });
    r.get('/v1/users/:id/verifications', {
      config: { permission: 'kyc:read' },
      schema: {
        operationId: 'listVerifications',
        tags: ['KYC'],
        summary: "A user's verification history, newest first",
        params: IdParam('usr'),
        querystring: Type.Object({ limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) }, { additionalProperties: false }),
        response: { 200: { ...ListOf(Verification, 'VerificationList'), description: 'A page of verifications, newest first' }, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req) => kyc.list(req.actor, req.params.id, req.query),
    });
  };
}
