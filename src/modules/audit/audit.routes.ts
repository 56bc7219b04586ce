import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, Cursor, Token, errors, Id, Limit, ListOf, Nullable } from '../../http/schemas.js';
import { ROLES } from '../api-keys/roles.js';
import type { AuditService } from './audit.service.js';
import { AuditVerification } from './verification-record.js';

export const CheckpointSchema = Type.Object(
  {
    id: Type.String({ pattern: '^ckp_[0-9A-Z]{26}$' }),
    tenant_id: Id('ten'),
    chain_seq: Type.String({ pattern: '^[0-9]{1,18}$', description: 'The position of the last sealed entry' }),
    hash: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'The hash of the entry at chain_seq' }),
    signed_at: Type.String({ format: 'date-time' }),
    key_id: Type.String({ description: 'Which key signed it (see public_key)' }),
    signature: Type.String({ description: 'Ed25519 over the RFC 8785 canonical JSON of {tenant_id, chain_seq, hash, signed_at, key_id}, base64url' }),
    public_key: Type.String({ description: 'The raw Ed25519 public key, base64; pin it once (kyclo audit public-key), do not trust it from here' }),
  },
  { $id: 'AuditCheckpoint', description: 'A signed head of the tenant’s audit chain: keep these outside Kyclo’s database' },
);

const CheckpointQuery = Type.Object(
  {
    since: Type.Optional(Type.String({ format: 'date-time', description: 'Only checkpoints signed at or after this time' })),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Cursor),
  },
  { additionalProperties: false },
);

const AuditEntry = Type.Object({
  id: Id('aud'),
  seq: Type.String({ description: 'Position in the tenant’s log' }),
  occurred_at: Type.String({ format: 'date-time' }),
  actor: Type.Object({ type: Type.Enum(['api_key', 'cli', 'system']), key_id: Nullable(Id('key')), role: Nullable(Type.Enum([...ROLES])) }, { title: 'AuditActor' }),
  action: Type.String({ description: 'e.g. user.created, user.updated, user.update_denied, api_key.revoked' }),
  outcome: Type.Enum(['applied', 'denied', 'flagged'], { description: 'denied/flagged: a refused attempt, nothing changed' }),
  target: Type.Object({ type: Type.String(), id: Nullable(Type.String()) }),
  user_id: Nullable(Id('usr')),
  changed_fields: Type.Array(Type.String()),
  request_id: Nullable(Type.String()),
  ip: Nullable(Type.String()),
  details: Type.Record(Type.String(), Type.Unknown()),
  values: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'Personal values the change carried (previous/current…), decrypted; null after erasure' })),
  sealed: Type.Boolean({
    description: 'On the tenant’s hash chain. Entries are sealed within seconds of being written: one that stays false was refused by the sealer (not written by a Kyclo process: a forgery) or sealing is stuck — run kyclo audit verify',
  }),
}, { title: 'AuditEntry', description: 'One entry of the append-only audit log: a change, or a refused attempt' });

const AuditQuery = Type.Object(
  {
    user_id: Type.Optional(Token()),
    actor: Type.Optional(Token(64, 'An API key id')),
    action: Type.Optional(Token()),
    from: Type.Optional(Type.String({ format: 'date-time' })),
    to: Type.Optional(Type.String({ format: 'date-time' })),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Cursor),
  },
  { additionalProperties: false },
);

const AuditVerificationAnswer = Type.Object({ verification: Type.Union([AuditVerification, Type.Null()]) }, { title: 'AuditVerificationAnswer' });

export function auditRoutes(audit: AuditService) {
  return async (app: FastifyInstance) => {
    app.withTypeProvider<TypeBoxTypeProvider>().get('/v1/audit/checkpoints', {
      config: { permission: 'audit:read' },
      schema: {
        operationId: 'listAuditCheckpoints',
        tags: ['Audit'],
        summary: 'Signed heads of the audit chain, newest first: for auditors to keep outside the database',
        querystring: CheckpointQuery,
        response: { 200: { ...ListOf(CheckpointSchema, 'AuditCheckpointList'), description: 'A page of checkpoints, newest first' }, ...errors(...AUTH_ERRORS) },
      },
      handler: async (req) => audit.checkpoints(req.actor, req.query) as never,
    });
    app.withTypeProvider<TypeBoxTypeProvider>().get('/v1/audit/verification', {
      config: { permission: 'audit:read' },
      schema: {
        operationId: 'getAuditVerification',
        tags: ['Audit'],
        summary: 'The last `kyclo audit verify` result for this tenant (null when it never ran), and whether its stored record is authentic',
        response: { 200: { ...AuditVerificationAnswer, description: 'The last verification, or null' }, ...errors(...AUTH_ERRORS) },
      },
      handler: async (req) => audit.lastVerification(req.actor),
    });
    app.withTypeProvider<TypeBoxTypeProvider>().get('/v1/audit-events', {
      config: { permission: 'audit:read' },
      schema: {
        operationId: 'listAuditEvents',
        tags: ['Audit'],
        summary: 'The audit log, newest first',
        querystring: AuditQuery,
        response: { 200: { ...ListOf(AuditEntry, 'AuditEntryList'), description: 'A page of audit entries, newest first' }, ...errors(...AUTH_ERRORS) },
      },
      handler: async (req) => audit.list(req.actor, req.query) as never,
    });
  };
}
