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
import { fromJson, tooLarge, type DocumentsService, type IncomingFile, type NewDocument } from './documents.service.js';

const tags = ['Documents'];
const FILE_PARTS = { file: 'front', file_back: 'back' } as const;
const checkFields = bodyValidator(MultipartFields);

/** Reads a multipart form into the common upload shape; every part is bounded, unknown parts are 400s. */
async function fromMultipart(req: FastifyRequest, maxBytes: number): Promise<NewDocument> {
  const fields: Record<string, string> = {};
  const files: Partial<Record<'front' | 'back', IncomingFile>> = {};
  try {
    for await (const part of req.parts()) {
      if (part.type === 'file') {
        const side = FILE_PARTS[part.fieldname as keyof typeof FILE_PARTS];
        if (!side) throw validationFailed([{ field: part.fieldname, code: 'unknown_field', message: 'Files go in the parts file and file_back.' }]);
        files[side] = { bytes: await part.toBuffer(), declared: normalizeDeclaredType(part.mimetype) };
      } else {
        if (part.valueTruncated) throw validationFailed([{ field: part.fieldname, code: 'too_large', message: 'This field is too long.' }]);
        fields[part.fieldname] = String(part.value);
      }
    }
  } catch (err) {
    if ((err as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') throw tooLarge(maxBytes);
    if (err instanceof AppError) throw err;
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) throw err;
    // No boundary, a truncated body, broken part headers: the parser's own errors carry no status.
    throw new AppError(400, 'request.malformed_multipart', 'The multipart body could not be read: check its boundary and parts.');
  }
  if (!checkFields(fields)) throw validationFailed(fieldErrors(checkFields.errors ?? [], 'body'));
  if (!files.front) throw validationFailed([{ field: 'file', code: 'required', message: 'The form needs a file part named file.' }]);
  const f = fields as { type: string; country?: string; issuing_authority?: string; expiry_date?: string };
  return { kind: 'physical', type: f.type, front: files.front, back: files.back ?? null, country: f.country, issuing_authority: f.issuing_authority, expiry_date: f.expiry_date };
}

/**
 * A JSON upload is held whole in the V8 heap several times over (the body text, the parsed string,
 * the decoded file): at most JSON_UPLOAD_SLOTS of them are read at once per process, the others wait
 * for a slot before their body is read, so uploads cannot exhaust the heap. Multipart streams.
 */
const JSON_UPLOAD_SLOTS = 2;

function uploadSlots(size: number) {
  let free = size;
  const waiting: Array<() => void> = [];
  return {
    async acquire(): Promise<() => void> {
      if (free > 0) free--;
      else await new Promise<void>((resolve) => waiting.push(resolve));
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const next = waiting.shift();
        if (next) next();
        else free++;
      };
    },
  };
}

export function documentRoutes(service: DocumentsService, maxBytes: number) {
  const slots = uploadSlots(JSON_UPLOAD_SLOTS);
  return async (app: FastifyInstance) => {
    // Multipart is parsed in this plugin only: every other route still answers 415 to a form.
    await app.register(multipart, { limits: { fileSize: maxBytes, files: 2, fields: 8, parts: 10, fieldSize: 1024 } });
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.post('/v1/users/:id/documents', {
      config: { permission: 'documents:write' },
      // A data URI is base64 (4/3 of the file), and a card may have a back side too.
      bodyLimit: 2 * Math.ceil(maxBytes / 3) * 4 + 64 * 1024,
      // After authentication (the app's onRequest hooks run first), before the body is read.
      onRequest: async (req, reply) => {
        if (req.headers['content-type']?.toLowerCase().includes('json')) {
          const release = await slots.acquire();
          reply.raw.once('close', release); // answered, failed or abandoned: the slot is free again
        }
      },
      schema: {
        operationId: 'addDocument',
        tags,
        summary: 'Add a document: a file (multipart, or a data URI in JSON) or an identifier number',
        description:
          'A document of a type the user already has archives the previous one (event document.archived). Files are checked by ' +
          'their first bytes (JPEG, PNG, PDF; otherwise 415) and limited in size (413). A verified user cannot replace a type ' +
          'the tenant policy locks (documents.locked_when_verified: by default ssn, ein, certificate_of_incorporation) → 422 ' +
          'document.locked. Numbers are answered masked. Idempotency-Key works with JSON uploads; with multipart it is a 400.',
        params: IdParam('usr'),
        body: { content: { 'application/json': { schema: DocumentJsonBody }, 'multipart/form-data': { schema: MultipartForm } } },
        response: { 201: Document, ...errors(...AUTH_ERRORS, 404, 409, 413, 415, 422) },
      },
      handler: async (req, reply) => {
        // The body schema is per media type; any other type that has a parser (merge-patch JSON)
        // would reach here unvalidated, so only these two are taken.
        if (req.mediaType !== 'application/json' && req.mediaType !== 'multipart/form-data') {
          throw new AppError(415, 'request.unsupported_media_type', 'Send a document as application/json or multipart/form-data.');
        }
        const input = req.isMultipart() ? await fromMultipart(req, maxBytes) : fromJson(req.body as DocumentUpload);
        const doc = await service.add(req.actor, req.params.id, input);
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
        response: { 200: ListOf(Document), ...errors(...AUTH_ERRORS, 404) },
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
            content: Object.fromEntries(['image/jpeg', 'image/png', 'application/pdf'].map((t) => [t, { schema: Type.String({ format: 'binary' }) }])),
          },
          ...errors(...AUTH_ERRORS, 404, 410),
        },
      },
      handler: async (req, reply) => {
        const file = await service.content(req.actor, req.params.id, req.query.side ?? 'front');
        return reply
          .type(file.contentType)
          .header('content-disposition', `attachment; filename="${file.filename}"`)
          .header('content-length', file.bytes.length)
          .send(file.bytes as never); // a Buffer is sent as is; the schema only documents it
      },
    });
  };
}
