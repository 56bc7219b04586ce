// GET /v1/exports/users: the tenant's users as NDJSON, streamed from one snapshot (exports.service.ts).
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AUTH_ERRORS, errors, Text, Token } from '../../http/schemas.js';
import { codes } from '../reference/enumerations.js';
import { INCLUDES, type ExportsService, type Include } from './exports.service.js';
import { ListUsersQuery } from '../users/users.schemas.js';

const INCLUDE_LIST = `^(${INCLUDES.join('|')})(,(${INCLUDES.join('|')}))*$`;

/** The export's filters and options: the HTTP query string, and `kyclo export`'s options (cli/import-export.ts). */
export const ExportQuery = Type.Object(
  {
    updated_since: Type.Optional(Type.String({ format: 'date-time', description: 'Only users changed at or after this time' })),
    status: Type.Optional(Type.Array(Type.Enum(codes('statuses')), { maxItems: 5, description: 'Repeatable' })),
    kyc_status: Type.Optional(Type.Enum(codes('kyc_statuses'))),
    type: Type.Optional(Type.Enum(codes('user_types'))),
    tag: Type.Optional(Text(64)),
    // The list's own filters, as GET /v1/users takes them (the search `q` and `custom` are the list's alone).
    risk: ListUsersQuery.properties.risk,
    external_ref: ListUsersQuery.properties.external_ref,
    created_from: ListUsersQuery.properties.created_from,
    created_to: ListUsersQuery.properties.created_to,
    include: Type.Optional(Type.String({
      pattern: INCLUDE_LIST,
      description: 'Comma-separated: verifications (needs kyc:read), status_changes, documents_meta (needs documents:read; numbers masked)',
    })),
    cursor: Type.Optional(Token(200, 'next_cursor from the trailer of the previous export: what changed since it')),
    after: Type.Optional(Token(64, 'Resume a cut export after this user id (the last line received)')),
  },
  { additionalProperties: false },
);

export function exportRoutes(exports: ExportsService) {
  return async (app: FastifyInstance) => {
    app.withTypeProvider<TypeBoxTypeProvider>().get('/v1/exports/users', {
      config: { permission: 'users:read' },
      schema: {
        operationId: 'exportUsers',
        tags: ['Users'],
        summary: 'Every user (or those changed since), as NDJSON streamed from one consistent snapshot',
        description:
          'One user object a line, as GET /v1/users/{id} answers it (identifier numbers masked), in id order; the last line is the trailer ' +
          '{count, snapshot_at, next_cursor}: pass next_cursor as cursor next time for what changed since (a minute of overlap: upsert by id). ' +
          'A cut export resumes with after=<the last id received>.',
        querystring: ExportQuery,
        response: {
          200: {
            description: 'NDJSON: user objects, then the trailer',
            content: { 'application/x-ndjson': { schema: Type.String() } },
          },
          ...errors(...AUTH_ERRORS),
        },
      },
      handler: async (req, reply) => {
        const { include, ...q } = req.query;
        const lines = await exports.stream(req.actor, { ...q, include: include ? (include.split(',') as Include[]) : [] });
        return reply.header('cache-control', 'no-store').type('application/x-ndjson; charset=utf-8').send(Readable.from(lines) as never);
      },
    });
  };
}
