// POST /v1/imports takes the file as the body (NDJSON, CSV or a JSON array) and answers 202 with the
// job at once; the rows are written after the answer, in this process, and GET /v1/imports/{id}
// follows them. The same file sent again finds its unfinished job and resumes it (or, finished,
// creates nothing: every row is already present). Files larger than IMPORT_BODY_LIMIT go through
// `kyclo import`, which streams any size.
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AUTH_ERRORS, errors, IdParam, ListOf } from '../../http/schemas.js';
import { AppError } from '../../http/errors.js';
import { checkCsvHeader, type Format } from './formats.js';
import type { ImportsService } from './imports.service.js';
import { ErrorsQuery, ImportError, ImportJobSchema, ImportQuery, ListQuery } from './imports.schemas.js';

export const IMPORT_BODY_LIMIT = 32 * 1024 * 1024;
const MEDIA: Record<string, Format> = { 'application/x-ndjson': 'ndjson', 'application/jsonl': 'ndjson', 'text/csv': 'csv', 'application/json': 'json' };
const tags = ['Imports'];
const File = Type.String({ format: 'binary' });
const Form = Type.Object({ file: Type.String({ format: 'binary', description: 'The file (its part’s Content-Type or name tells the format)' }) });

/** The file of a multipart form (its first file part) as bytes, and the format its part implies. */
async function filePart(req: FastifyRequest): Promise<{ body: Buffer; format?: Format; name?: string }> {
  let part: Awaited<ReturnType<FastifyRequest['file']>>;
  let body: Buffer;
  try {
    part = await req.file();
    if (!part) throw new AppError(400, 'import.empty', 'Send the file as the body, or as the file part of a multipart form.');
    body = await part.toBuffer();
  } catch (err) {
    if (err instanceof AppError) throw err;
    if ((err as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') {
      throw new AppError(413, 'request.body_too_large', `An import file is at most ${IMPORT_BODY_LIMIT / 1024 / 1024} MiB here; larger files: kyclo import.`);
    }
    throw new AppError(400, 'request.malformed_multipart', 'The multipart body could not be read: check its boundary and parts.');
  }
  const byName = /\.(ndjson|jsonl)$/i.test(part.filename) ? 'ndjson' : /\.csv$/i.test(part.filename) ? 'csv' : /\.json$/i.test(part.filename) ? 'json' : undefined;
  return { body, format: MEDIA[part.mimetype] ?? byName, name: part.filename || undefined };
}

export function importRoutes(imports: ImportsService) {
  return async (app: FastifyInstance) => {
    // This plugin's own parsers: the file arrives whole as bytes, whatever its type says.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser(Object.keys(MEDIA), { parseAs: 'buffer', bodyLimit: IMPORT_BODY_LIMIT }, (_req, body, done) => done(null, body));
    // A form's file is read whole too (up to the same limit; one byte more is the 413).
    await app.register(multipart, { limits: { fileSize: IMPORT_BODY_LIMIT, files: 1, fields: 8, parts: 9, fieldSize: 1024 }, throwFileSizeLimit: true });
    const running = new Set<Promise<unknown>>();
    app.addHook('onClose', async () => {
      await Promise.allSettled([...running]);
    });
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.post('/v1/imports', {
      config: { permission: 'users:import' },
      bodyLimit: IMPORT_BODY_LIMIT,
      schema: {
        operationId: 'createImport',
        tags,
        summary: 'Import users from a file (NDJSON, CSV or JSON): answers the job at once, the rows follow',
        description:
          'Each row is checked as POST /v1/users checks a body; a bad row is reported (GET /v1/imports/{id}/errors) and never stops the others. ' +
          'Idempotent by external_ref: a row whose external_ref exists creates nothing. The same file sent again resumes its unfinished job. ' +
          `At most ${IMPORT_BODY_LIMIT / 1024 / 1024} MiB; larger files: kyclo import.`,
        querystring: ImportQuery,
        body: { content: { ...Object.fromEntries(Object.keys(MEDIA).map((m) => [m, { schema: File }])), 'multipart/form-data': { schema: Form } } } as never,
        response: {
          202: { ...ImportJobSchema, description: 'The job, started (or resumed)', headers: { Location: { type: 'string' } } },
          ...errors(...AUTH_ERRORS, 404, 409, 413, 415),
        },
      },
      handler: async (req, reply) => {
        const form = req.isMultipart() ? await filePart(req) : null;
        const body = form ? form.body : (req.body as unknown);
        if (!Buffer.isBuffer(body) || body.length === 0) throw new AppError(400, 'import.empty', 'Send the file as the body, or as the file part of a multipart form.');
        const format = req.query.format ?? form?.format ?? MEDIA[req.mediaType ?? ''] ?? 'ndjson';
        // A header naming a reserved key is a malformed file: 400 before any job exists.
        if (format === 'csv') await checkCsvHeader(Readable.from([body]));
        const sha256 = crypto.createHash('sha256').update(body).digest('hex');
        const { job } = await imports.open(req.actor, {
          profile: req.query.profile ?? 'kyclo', format, dryRun: req.query.dry_run, userEvents: req.query.user_events, sourceName: req.query.name ?? form?.name ?? null, sha256,
        });
        const run = imports.run(req.actor, job, Readable.from([body])).catch((err: unknown) => req.log.warn({ err, import_id: job.id }, 'import stopped; the same file resumes it'));
        running.add(run);
        void run.finally(() => running.delete(run));
        reply.code(202).header('location', `/v1/imports/${job.id}`);
        return imports.get(req.actor, job.id);
      },
    });

    r.get('/v1/imports', {
      config: { permission: 'users:import' },
      schema: {
        operationId: 'listImports',
        tags,
        summary: 'The tenant’s imports, newest first, with their state and counts',
        querystring: ListQuery,
        response: { 200: { ...ListOf(ImportJobSchema, 'ImportJobList'), description: 'A page of import jobs, newest first' }, ...errors(...AUTH_ERRORS) },
      },
      handler: async (req) => imports.list(req.actor, req.query),
    });

    r.get('/v1/imports/:id', {
      config: { permission: 'users:import' },
      schema: {
        operationId: 'getImport',
        tags,
        summary: 'An import job: its state, counts and the fields that moved',
        params: IdParam('imp'),
        response: { 200: { ...ImportJobSchema, description: 'The job' }, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req) => imports.get(req.actor, req.params.id),
    });

    r.get('/v1/imports/:id/errors', {
      config: { permission: 'users:import' },
      schema: {
        operationId: 'listImportErrors',
        tags,
        summary: 'The rows an import rejected, by line, each problem with its field and code',
        params: IdParam('imp'),
        querystring: ErrorsQuery,
        response: { 200: { ...ListOf(ImportError, 'ImportRowErrorList'), description: 'A page of problems, by line' }, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req) => imports.errors(req.actor, req.params.id, req.query),
    });
  };
}
