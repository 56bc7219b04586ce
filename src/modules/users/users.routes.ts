import { Type } from 'typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, errors, IdParam, ListOf } from '../../http/schemas.js';
import { AppError } from '../../http/errors.js';
import { CreateUserBody, ListUsersQuery, PatchUserBody, READ_ONLY_FIELDS, type UserView } from './users.schemas.js';
import type { UsersService } from './users.service.js';
import { ETagHeader, IfMatch, parseIfMatch } from '../../http/conditional.js';

const UserRef = Type.Ref('User');

const withETag = (reply: FastifyReply, user: UserView) => reply.header('etag', `"${user.version}"`);

const PatchQuery = Type.Object(
  {
    dry_run: Type.Optional(Type.Boolean({
      deprecated: true,
      description: 'Moved to dryRunUserUpdate (POST /v1/users/{id}/dry-run): dry_run=true answers 400 request.dry_run_moved and changes nothing.',
    })),
  },
  { additionalProperties: false },
);

export function userRoutes(users: UsersService) {
  return async (app: FastifyInstance) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.post('/v1/users', {
      config: { permission: 'users:create' },
      schema: {
        operationId: 'createUser',
        tags: ['Users'],
        summary: 'Create an individual or business user',
        description: 'An initial `status` of flagged (with an optional `status_reason` code) creates the user under review in the same atomic call, recorded as its first status change.',
        body: CreateUserBody,
        response: {
          201: { ...UserRef, description: 'The user, created', headers: { ...ETagHeader, Location: { type: 'string' } } },
          ...errors(...AUTH_ERRORS, 409, 413, 415),
        },
      },
      handler: async (req, reply) => {
        const user = await users.create(req.actor, req.body);
        withETag(reply, user).header('location', `/v1/users/${user.id}`).code(201);
        return user;
      },
    });

    r.get('/v1/users', {
      config: { permission: 'users:read' },
      schema: {
        operationId: 'listUsers',
        tags: ['Users'],
        summary: 'List and search users (newest first, keyset pagination)',
        querystring: ListUsersQuery,
        response: { 200: { ...ListOf(UserRef, 'UserList'), description: 'A page of users, newest first' }, ...errors(...AUTH_ERRORS) },
      },
      handler: async (req) => users.list(req.actor, req.query),
    });

    r.get('/v1/users/:id', {
      config: { permission: 'users:read' },
      schema: {
        operationId: 'getUser',
        tags: ['Users'],
        summary: 'Get a user',
        params: IdParam('usr'),
        response: { 200: { ...UserRef, description: 'The user', headers: ETagHeader }, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req, reply) => {
        const user = await users.get(req.actor, req.params.id);
        withETag(reply, user);
        return user;
      },
    });

    // Didit reads a user by its vendor_data: the platform's own id, exactly as stored (case-sensitive).
    r.get('/v1/users/by-external-ref/:external_ref', {
      config: { permission: 'users:read' },
      schema: {
        operationId: 'getUserByExternalRef',
        tags: ['Users'],
        summary: 'Get a user by its external_ref (case-sensitive, exact)',
        description: 'URL-encode the reference if it holds reserved characters. Another tenant’s reference answers 404 like one that does not exist.',
        params: Type.Object({ external_ref: Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$', description: 'The platform’s own id' }) }),
        response: { 200: { ...UserRef, description: 'The user', headers: ETagHeader }, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req, reply) => {
        const user = await users.getByExternalRef(req.actor, req.params.external_ref);
        withETag(reply, user);
        return user;
      },
    });

    // Read-only fields are caught before schema validation so the attempt can be audited (not on a dry run).
    const refuseReadOnly = (audit: boolean) => async (req: FastifyRequest) => {
      const body = req.body;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
      const readOnly = READ_ONLY_FIELDS.filter((f) => Object.hasOwn(body, f));
      if (readOnly.length) await users.refuseReadOnly(req.actor, (req.params as { id: string }).id, readOnly, { audit });
    };

    // api.md's `PATCH …?dry_run=true` moved to its own operation (the PATCH answers a User and nothing
    // else). A client still sending it gets a 400 that names the new route, and nothing is written: a
    // dry run that applied the change would be the worst way to learn of the move.
    const refuseMovedDryRun = async (req: FastifyRequest) => {
      const v = (req.query as Record<string, unknown> | undefined)?.dry_run;
      if (v !== undefined && v !== 'false' && v !== false) {
        throw new AppError(400, 'request.dry_run_moved', 'The dry run of a patch is POST /v1/users/{id}/dry-run, with the same body; nothing was changed.', {
          errors: [{ field: 'dry_run', code: 'moved', message: 'use POST /v1/users/{id}/dry-run' }],
        });
      }
    };

    r.patch('/v1/users/:id', {
      config: { permission: 'users:update' },
      schema: {
        operationId: 'updateUser',
        tags: ['Users'],
        summary: 'Update a user (JSON Merge Patch) under the field policy',
        description:
          'Fields the policy denies (country, type, external_ref) answer 422 user.field_denied and nothing is applied. ' +
          'Read-only fields (id, status, kyc, version, timestamps) answer 400 and are recorded as a flagged attempt. ' +
          'Fields that need approval wait in pending_changes (a change request). ' +
          'With If-Match, a stale version answers 412 and nothing changes. To see each field\'s outcome first, use dryRunUserUpdate.',
        params: IdParam('usr'),
        querystring: PatchQuery,
        headers: IfMatch,
        body: PatchUserBody,
        response: {
          200: { ...UserRef, description: 'The user as it is now (fields held for approval in pending_changes)', headers: ETagHeader },
          ...errors(...AUTH_ERRORS, 404, 409, 412, 413, 415, 422),
        },
      },
      // Before anything else, the read-only check's audit included: a dry run must never write.
      preValidation: [refuseMovedDryRun, refuseReadOnly(true)],
      handler: async (req, reply) => {
        const user = await users.update(req.actor, req.params.id, req.body, parseIfMatch(req.headers['if-match']));
        withETag(reply, user);
        return user;
      },
    });

    // The dry run is its own operation so that updateUser answers a User and nothing else.
    r.post('/v1/users/:id/dry-run', {
      config: { permission: 'users:update' },
      schema: {
        operationId: 'dryRunUserUpdate',
        tags: ['Users'],
        summary: 'What a merge patch would do, field by field; nothing is changed',
        description:
          'Takes the body updateUser takes and answers each changed field\'s outcome under the field policy ' +
          '(allow, allow_with_review, approval, deny). Nothing is written, audited or emitted.',
        params: IdParam('usr'),
        body: PatchUserBody,
        response: {
          200: { ...Type.Ref('PatchDryRun'), description: 'The outcome of each field the patch would change' },
          ...errors(...AUTH_ERRORS, 404, 413, 415),
        },
      },
      preValidation: refuseReadOnly(false),
      handler: async (req) => users.dryRun(req.actor, req.params.id, req.body),
    });
  };
}
