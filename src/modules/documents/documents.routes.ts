import type { Readable } from 'node:stream';
import { Type } from 'typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import multipart from '@fastify/multipart';
import { AUTH_ERRORS, Cursor, errors, IdParam, Limit, ListOf } from '../../http/schemas.js';
import { bodyValidator } from '../../http/validation.js';
import { fieldErrors } from '../../http/problem.js';
import { AppError, validationFailed } from '../../http/errors.js';
import { normalizeDeclaredType } from './document-rules.js';
import { Document, DocumentJsonBody, MultipartFields, MultipartForm, type DocumentUpload } from './documents.schemas.js';
import { fromJson, tooLarge, type DocumentsService } from './documents.service.js';
import { uploadGuard } from './upload-guard.js';
import { DEFAULT_UPLOAD_LIMITS, type UploadLimits } from './upload-slots.js';

const tags = ['Documents'];
const FILE_PARTS = { file: 'front', file_back: 'back' } as const;
const checkFields = bodyValidator(MultipartFields);

const malformedMultipart = () =>
  new AppError(400, 'request.malformed_multipart', 'The multipart body could not be read: check its boundary and parts.');

// Whether the parser pushed the end of this file (its consumer may still be reading what is left).
// Streams expose no public flag for it before 'end' is emitted. A parser that gives up on a form
// destroys the file's stream instead (readableAborted).
const endedByParser = (file: Readable) => (file as Readable & { _readableState: { ended: boolean } })._readableState.ended;

/** Settles with `p`, or rejects with the signal's reason once it aborts (the read deadline). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  p.catch(() => undefined); // abandoned after an abort: its own failure is of no interest
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Reads a multipart form, streaming each file part into the blob store as it arrives (checked and
 * sealed on the way), then records the document. Every part is bounded, unknown parts are 400s, and
 * whatever was written is deleted when anything fails.
 */
async function addFromMultipart(req: FastifyRequest, userId: string, service: DocumentsService, maxBytes: number, signal: AbortSignal | undefined) {
  const fields: Record<string, string> = {};
  const upload = await service.begin(req.actor, userId);
  try {
    try {
      const parts = req.parts()[Symbol.asyncIterator]();
      const nextPart = () => {
        const p = untilAborted(parts.next(), signal);
        p.catch(() => undefined); // awaited below, or abandoned once the upload failed
        return p;
      };
      let pending = nextPart();
      for (let next = await pending; !next.done; next = await pending) {
        const part = next.value;
        if (part.type === 'file') {
          const side = FILE_PARTS[part.fieldname as keyof typeof FILE_PARTS];
          if (!side) throw validationFailed([{ field: part.fieldname, code: 'unknown_field', message: 'Files go in the parts file and file_back.' }]);
          if (upload.files.some((f) => f.side === side)) throw validationFailed([{ field: part.fieldname, code: 'duplicate', message: 'Send this part once.' }]);
          // Destroyed by the parser before its turn came (the form ended inside it): never readable.
          if (part.file.readableAborted) throw malformedMultipart();
          const storing = service.storeFile(req.actor, upload, side, part.file, normalizeDeclaredType(part.mimetype), part.fieldname, signal);
          storing.catch(() => undefined);
          // A form that breaks inside a file (a truncated body) ends or fails the list of parts
          // without ever ending the file's stream: ask for the next part meanwhile. Once the parser
          // has moved on, a file stream it did not end will never end.
          pending = nextPart();
          try {
            const first = await Promise.race([storing.then(() => 'stored'), pending.then(() => 'moved on')]);
            if (first === 'moved on' && (!endedByParser(part.file) || part.file.readableAborted)) throw malformedMultipart();
            await storing;
          } catch (err) {
            part.file.destroy();
            await storing.catch(() => undefined); // its partial blob is removed before answering
            throw err;
          }
        } else {
          if (part.valueTruncated) throw validationFailed([{ field: part.fieldname, code: 'too_large', message: 'This field is too long.' }]);
          fields[part.fieldname] = String(part.value);
          pending = nextPart();
        }
      }
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if ((err as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') throw tooLarge(maxBytes);
      if (err instanceof AppError) throw err;
      const status = (err as { statusCode?: number }).statusCode;
      if (status && status >= 400 && status < 500) throw err;
      // No boundary, a truncated body, broken part headers: the parser's own errors carry no status.
      throw malformedMultipart();
    }
    if (!checkFields(fields)) throw validationFailed(fieldErrors(checkFields.errors ?? [], 'body'));
    if (!upload.files.some((f) => f.side === 'front')) throw validationFailed([{ field: 'file', code: 'required', message: 'The form needs a file part named file.' }]);
  } catch (err) {
    await service.discard(upload);
    throw err;
  }
  const f = fields as { type: string; country?: string; issuing_authority?: string; expiry_date?: string };
  return service.commit(req.actor, upload, { kind: 'physical', type: f.type, country: f.country, issuing_authority: f.issuing_authority, expiry_date: f.expiry_date });
}

export function documentRoutes(service: DocumentsService, maxBytes: number, limits: UploadLimits = DEFAULT_UPLOAD_LIMITS) {
  const guard = uploadGuard(limits);
  return async (app: FastifyInstance) => {
    // Multipart is parsed in this plugin only: every other route still answers 415 to a form. A
    // file part may pass the limit by one byte, so the size check (413) sees it rather than a
    // silently truncated file.
    await app.register(multipart, { limits: { fileSize: maxBytes + 1, files: 2, fields: 8, parts: 10, fieldSize: 1024 } });
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.post('/v1/users/:id/documents', {
      config: { permission: 'documents:write' },
      // A data URI is base64 (4/3 of the file), and a card may have a back side too.
      bodyLimit: 2 * Math.ceil(maxBytes / 3) * 4 + 64 * 1024,
      // After authentication (the app's onRequest hooks run first), before the body is read.
      onRequest: guard.onRequest,
      preParsing: guard.preParsing,
      schema: {
        operationId: 'addDocument',
        tags,
        summary: 'Add a document: a file (multipart, or a data URI in JSON) or an identifier number',
        description:
          'A document of a type the user already has archives the previous one (event document.archived). Files are checked by ' +
          'their first bytes (JPEG, PNG, PDF; otherwise 415) and limited in size (413). A verified user cannot replace a type ' +
          'the tenant policy locks for its type (documents.by_user_type: by default an individual\'s ssn, a business\'s ein and certificate_of_incorporation) → 422 ' +
          'document.locked. Numbers are answered masked. Idempotency-Key works with JSON uploads; with multipart it is a 400. ' +
          'Uploads in flight are limited per tenant and per process: past the slot wait, 429 document.too_many_uploads (this ' +
          'tenant) or 503 document.uploads_busy (the server), with Retry-After. A body that does not arrive within the read ' +
          'deadline is answered 408 request.body_timeout and nothing is stored.',
        params: IdParam('usr'),
        body: { content: { 'application/json': { schema: DocumentJsonBody }, 'multipart/form-data': { schema: MultipartForm } } },
        response: { 201: { ...Document, description: 'The document, added', headers: { Location: { type: 'string' } } }, ...errors(...AUTH_ERRORS, 404, 408, 409, 413, 415, 422, 429, 503) },
      },
      handler: async (req, reply) => {
        // The body schema is per media type; any other type that has a parser (merge-patch JSON)
        // would reach here unvalidated, so only these two are taken.
        if (req.mediaType !== 'application/json' && req.mediaType !== 'multipart/form-data') {
          throw new AppError(415, 'request.unsupported_media_type', 'Send a document as application/json or multipart/form-data.');
        }
        let doc;
        try {
          doc = req.isMultipart()
            ? await addFromMultipart(req, req.params.id, service, maxBytes, guard.deadline(req))
            : await service.add(req.actor, req.params.id, fromJson(req.body as DocumentUpload));
        } catch (err) {
          // Refused before the whole body arrived: close rather than read the rest for nothing.
          if (!req.raw.complete) reply.header('connection', 'close');
          throw err;
        }
        reply.code(201).header('location', `/v1/documents/${doc.id}`);
        return doc;
      },
    });

    r.get('/v1/users/:id/documents', {
      config: { permission: 'documents:read' },
      schema: {
        operationId: 'listDocuments',
        tags,
        summary: "A user's documents, newest first: current ones, or all versions with include=archived",
        params: IdParam('usr'),
        querystring: Type.Object(
          { include: Type.Optional(Type.Literal('archived')), limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) },
          { additionalProperties: false },
        ),
        response: { 200: { ...ListOf(Document, 'DocumentList'), description: 'A page of documents, newest first' }, ...errors(...AUTH_ERRORS, 404) },
      },
      handler: async (req) => service.list(req.actor, req.params.id, { include: req.query.include, limit: req.query.limit ?? 50, cursor: req.query.cursor }),
    });

    r.get('/v1/documents/:id/content', {
      config: { permission: 'documents:read_content' },
      // A HEAD would decrypt the file and audit a read that sends nothing.
      exposeHeadRoute: false,
      schema: {
        operationId: 'getDocumentContent',
        tags,
        summary: 'The file, decrypted (each read is audited)',
        description: 'side=back for the back of a two-sided card. 404 document.no_content for identifier numbers; 410 once erasure destroyed it.',
        params: IdParam('doc'),
        querystring: Type.Object({ side: Type.Optional(Type.Enum(['front', 'back'])) }, { additionalProperties: false }),
        response: {
          200: {
            description: 'The file as uploaded',
            headers: { 'Content-Disposition': { type: 'string' } },
            content: Object.fromEntries(['image/jpeg', 'image/png', 'application/pdf'].map((t) => [t, { schema: Type.String({ format: 'binary' }) }])),
          },
          ...errors(...AUTH_ERRORS, 404, 410),
        },
      },
      handler: async (req, reply) => {
        // Streamed: opened frame by frame as the client reads, never held whole.
        const file = await service.content(req.actor, req.params.id, req.query.side ?? 'front');
        return reply
          .type(file.contentType)
          .header('content-disposition', `attachment; filename="${file.filename}"`)
          .header('content-length', file.size)
          .send(file.body as never); // a stream is sent as is; the schema only documents it
      },
    });
  };
}
