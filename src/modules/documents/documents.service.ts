// Documents of a user: files (sealed with the user's data key, kept in the blob store) and identifier
// numbers (sealed in the row). A new document of a type the user already has archives the old one,
// which stays listable and readable. Numbers leave masked, except in the GDPR export.
//
// Write order: each file streams into its blob, checked and sealed as it arrives (nothing holds a
// whole file), and is synced; then the row that points at it commits with its audit entry and
// events. Any failure before the commit (a refused file, an aborted or late body, a lock) deletes
// the blobs written. So a committed document always has its content, and an orphan blob (a crash
// in between) is ciphertext that erasure removes with the user's folder.
import { pipeline as pipelineStreams, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { sql, type Selectable } from 'kysely';
import type { Db, DocumentsTable, Tx } from '../../db/database.js';
import type { DataKey, Keyring } from '../../crypto/keyring.js';
import { keyringFor } from '../erasure/retained.js';
import { isFramed } from '../../crypto/framed-stream.js';
import type { BlobStore } from '../../storage/blob-store.js';
import { AppError, notFound, validationFailed, type FieldError } from '../../http/errors.js';
import { decodeCursor, toPage } from '../../lib/cursor.js';
import { newId } from '../../lib/ids.js';
import { isCountry } from '../reference/enumerations.js';
import type { Actor } from '../audit/actor.js';
import { roleAllows } from '../api-keys/roles.js';
import { recordAttempt, recordChange } from '../audit/write-path.js';
import { fulfilled, recordFulfilled } from '../compliance/required-actions.service.js';
import * as users from '../users/users.repo.js';
import { userClosed } from '../lifecycle/lifecycle.service.js';
import { loadOverrides, lockedWhenVerified } from '../policy/policy.service.js';
import type { UserType } from '../users/field-policy.js';
import { isLocked, isVirtualType, maskNumber, normalizeNumber, NUMBER_FORMATS, parseDataUri, type ContentType } from './document-rules.js';
import { fileCheck, tooLarge } from './file-check.js';
import type { DocumentUpload, DocumentView } from './documents.schemas.js';

export type DocumentRow = Selectable<DocumentsTable>;
type Side = 'front' | 'back';

/** A file as received, before its checks: bytes and the media type the caller declared. */
export interface IncomingFile {
  bytes: Buffer;
  declared?: string;
}

/** An upload from either encoding (JSON or multipart), in one shape. */
export interface NewDocument {
  kind: 'physical' | 'virtual';
  type: string;
  number?: string;
  front?: IncomingFile;
  back?: IncomingFile | null;
  country?: string | null;
  issuing_authority?: string | null;
  expiry_date?: string | null;
}

/** What is sealed in the row: only the owner's data key opens it. */
interface Details {
  number: string | null;
  country: string | null;
  issuing_authority: string | null;
  expiry_date: string | null;
}

const DETAILS_FIELD = (docId: string) => `document:${docId}:details`;
const CONTENT_FIELD = (docId: string, side: Side) => `document:${docId}:${side}`;
const blobKey = (t: string, userId: string, docId: string, side: Side) => `${t}/${userId}/${docId}-${side}`;

export { tooLarge };

/** A file written to the blob store (sealed), not yet pointed at by a row. */
interface StoredFile {
  side: Side;
  blobKey: string;
  size: number;
  type: ContentType;
}

/** An upload in progress: its document id, the key its files are sealed with, the blobs written so far. */
export interface Upload {
  docId: string;
  userId: string;
  key: DataKey;
  files: StoredFile[];
}

/** The JSON body, decoded into the common shape (data URIs checked here, so their errors name the field). */
export function fromJson(body: DocumentUpload): NewDocument {
  if (body.kind === 'virtual') return { ...body };
  const errors: FieldError[] = [];
  const decode = (field: string, value: string) => {
    const r = parseDataUri(field, value);
    if (!r.ok) errors.push(r.error);
    return r.ok ? { bytes: r.bytes, declared: r.declared } : undefined;
  };
  const front = decode('content', body.content);
  const back = body.content_back ? decode('content_back', body.content_back) : null;
  if (errors.length) throw validationFailed(errors);
  return { kind: 'physical', type: body.type, front, back, country: body.country, issuing_authority: body.issuing_authority, expiry_date: body.expiry_date };
}

function toView(row: DocumentRow, details: Details | undefined, unmasked = false): DocumentView {
  const number = details?.number ?? null;
  return {
    id: row.id,
    user_id: row.user_id,
    kind: row.kind,
    type: row.type,
    status: row.status,
    number: number === null ? null : unmasked ? number : maskNumber(number),
    content_type: row.content_type as ContentType | null,
    size: row.size,
    back_content_type: row.back_content_type as ContentType | null,
    back_size: row.back_size,
    content_url: row.kind === 'physical' && !row.destroyed_at ? `/v1/documents/${row.id}/content` : null,
    country: details?.country ?? null,
    issuing_authority: details?.issuing_authority ?? null,
    expiry_date: details?.expiry_date ?? null,
    replaces_id: row.replaces_id,
    created_at: row.created_at.toISOString(),
    archived_at: row.archived_at?.toISOString() ?? null,
    destroyed_at: row.destroyed_at?.toISOString() ?? null,
  };
}

/** Views of many documents of one tenant with one key lookup (the export passes unmasked). */
export async function documentViews(keyring: Keyring, tenantId: string, rows: DocumentRow[], unmasked = false): Promise<DocumentView[]> {
  const sealed = rows.filter((r) => r.details_enc);
  const opened = await keyring.openMany(
    tenantId,
    sealed.map((r) => ({ userId: r.user_id, field: DETAILS_FIELD(r.id), envelope: r.details_enc! })),
  );
  const byId = new Map(sealed.map((r, i) => [r.id, opened[i] as Details | undefined]));
  return rows.map((r) => toView(r, byId.get(r.id), unmasked));
}

/** Checks the number, its format and the country: everything but the files, with no database. */
function checkDetails(input: NewDocument): Details {
  const errors: FieldError[] = [];
  let number: string | null = null;
  let country = input.country ?? null;
  if (country !== null && !isCountry(country)) errors.push({ field: 'country', code: 'invalid_country', message: 'Not an ISO 3166-1 alpha-2 country code.' });
  if (input.kind === 'virtual') {
    if (!isVirtualType(input.type)) throw validationFailed([{ field: 'type', code: 'not_allowed_value', message: 'Not an identifier number type.' }]);
    const n = normalizeNumber(input.type, input.number ?? '');
    if (n.ok) number = n.value;
    else errors.push({ field: 'number', code: 'invalid_format', message: n.message });
    const only = NUMBER_FORMATS[input.type].country;
    if (only && country !== null && country !== only) errors.push({ field: 'country', code: 'not_allowed_value', message: `A ${input.type} is issued by ${only} only.` });
    country ??= only ?? null;
  }
  if (errors.length) throw validationFailed(errors);
  return { number, country, issuing_authority: input.issuing_authority ?? null, expiry_date: input.expiry_date ?? null };
}

export function createDocumentsService({ db, keyring, blobs, maxBytes }: { db: Db; keyring: Keyring; blobs: BlobStore; maxBytes: number }) {
  /**
   * Refuses an upload to a closed user; answers the current document a replacement would break the
   * lock of (null when there is none). Run before the upload and again under the row lock.
   */
  async function lockedBy(executor: Db | Tx, actor: Actor, user: users.UserRow, type: string, lockTypes: readonly string[]): Promise<string | null> {
    if (user.status === 'closed') throw userClosed(user.id);
    if (!isLocked(type, user, lockTypes, actor.role === null || roleAllows(actor.role, 'changes:review'))) return null;
    const current = await executor
      .selectFrom('documents').select('id')
      .where('tenant_id', '=', actor.tenantId).where('user_id', '=', user.id).where('type', '=', type).where('status', '=', 'current')
      .executeTakeFirst();
    return current?.id ?? null;
  }

  /** The refusal is audited (outcome denied), outside any transaction, then answered 422. */
  async function refuseLocked(actor: Actor, userId: string, type: string, currentId: string): Promise<never> {
    await recordAttempt(db, actor, {
      action: 'document.add', outcome: 'denied', targetType: 'user', targetId: userId, userId,
      details: { type, reason: 'locked_when_verified', current_document_id: currentId },
    });
    throw new AppError(422, 'document.locked', `The user is or was verified: their ${type} (${currentId}) can no longer be replaced by this key.`, {
      errors: [{
        field: 'type', code: 'locked',
        message: `${type} is locked once the user is verified (tenant policy documents.locked_when_verified); while a new verification is pending or after a rejection, a compliance role may replace it.`,
      }],
      document_id: currentId,
    });
  }

  return {
    /**
     * Starts an upload once the request is known to be allowed and before any byte of a file is
     * read: the user must exist and not be closed, and their data key is made ready for sealing.
     */
    async begin(actor: Actor, userId: string): Promise<Upload> {
      const user = await users.getOrThrow(db, actor.tenantId, userId);
      if (user.status === 'closed') throw userClosed(userId);
      return { docId: newId('doc'), userId, key: await keyring.dataKeyFor(db, actor.tenantId, userId), files: [] };
    },

    /**
     * Streams one side of the file into its blob: checked (first bytes, size) and sealed as it
     * arrives. On any failure (refused bytes, `signal` aborted, the source erroring) the partial blob
     * is gone and the error is thrown. `field` names the part in a 400.
     */
    async storeFile(actor: Actor, upload: Upload, side: Side, source: Readable, declared: string | undefined, field: string, signal?: AbortSignal): Promise<void> {
      const t = actor.tenantId;
      const key = blobKey(t, upload.userId, upload.docId, side);
      const check = fileCheck(maxBytes, declared, field, side === 'back');
      const seal = keyring.sealStream(upload.key, t, upload.userId, CONTENT_FIELD(upload.docId, side));
      await pipeline(source, check.stream, seal, (sealed: AsyncIterable<Buffer>) => blobs.putStream(key, sealed), ...(signal ? [{ signal }] : []));
      upload.files.push({ side, blobKey: key, ...check.result() });
    },

    /** Deletes what an upload wrote; for a caller whose upload failed before commit. */
    async discard(upload: Upload): Promise<void> {
      await Promise.allSettled(upload.files.map((f) => blobs.delete(f.blobKey)));
      upload.files.length = 0;
    },

    /** A JSON upload (files already decoded in memory, or a number): one write path with multipart. */
    async add(actor: Actor, userId: string, input: NewDocument): Promise<DocumentView> {
      checkDetails(input);
      const sides = input.kind === 'physical' ? ([['front', input.front], ['back', input.back]] as const) : [];
      // The cheap checks first, so a refused file costs no database round trip.
      if (sides.some(([, file]) => file && file.bytes.length > maxBytes)) throw tooLarge(maxBytes);
      if (input.kind === 'physical' && !input.front) throw validationFailed([{ field: 'content', code: 'required', message: 'A physical document needs its file.' }]);
      const upload = await this.begin(actor, userId);
      try {
        for (const [side, file] of sides) {
          if (file) await this.storeFile(actor, upload, side, Readable.from([file.bytes]), file.declared, side === 'front' ? 'content' : 'content_back');
        }
      } catch (err) {
        await this.discard(upload);
        throw err;
      }
      return this.commit(actor, upload, input);
    },

    /**
     * Records the upload: details checked and sealed, the lock checked again under the user's row
     * lock, the row, its audit entry and events in one transaction. Deletes the blobs on failure.
     */
    async commit(actor: Actor, upload: Upload, input: NewDocument): Promise<DocumentView> {
      const t = actor.tenantId;
      const { userId, docId: id } = upload;
      try {
        const details = checkDetails(input);
        if (input.kind === 'physical' && !upload.files.some((f) => f.side === 'front')) {
          throw validationFailed([{ field: 'content', code: 'required', message: 'A physical document needs its file.' }]);
        }
        const holder = await users.getOrThrow(db, t, userId);
        const lockTypes = lockedWhenVerified(await loadOverrides(db, t), holder.type as UserType);
        const lockedNow = await lockedBy(db, actor, holder, input.type, lockTypes);
        if (lockedNow) return await refuseLocked(actor, userId, input.type, lockedNow);
        const front = upload.files.find((f) => f.side === 'front');
        const back = upload.files.find((f) => f.side === 'back');
        const outcome = await db.transaction().execute(async (tx) => {
          const user = await users.getForUpdate(tx, t, userId);
          if (!user) throw notFound('user', userId);
          const locked = await lockedBy(tx, actor, user, input.type, lockTypes);
          if (locked) return { locked };
          const archived = await tx
            .updateTable('documents').set({ status: 'archived', archived_at: sql`now()` })
            .where('tenant_id', '=', t).where('user_id', '=', userId).where('type', '=', input.type).where('status', '=', 'current')
            .returning('id')
            .executeTakeFirst();
          const row = await tx
            .insertInto('documents')
            .values({
              tenant_id: t, id, user_id: userId, kind: input.kind, type: input.type,
              details_enc: keyring.sealWith(upload.key, t, userId, DETAILS_FIELD(id), details),
              content_type: front?.type ?? null, size: front?.size ?? null, blob_key: front?.blobKey ?? null,
              back_content_type: back?.type ?? null, back_size: back?.size ?? null, back_blob_key: back?.blobKey ?? null,
              replaces_id: archived?.id ?? null, created_by_key_id: actor.keyId, request_id: actor.requestId,
            })
            .returningAll()
            .executeTakeFirstOrThrow();
          const summary = { document_id: id, user_id: userId, kind: input.kind, type: input.type, content_type: row.content_type, size: row.size, replaces: archived?.id ?? null };
          await recordChange(
            tx, actor,
            { action: 'document.added', targetType: 'document', targetId: id, userId, details: { ...summary, back_size: row.back_size } },
            [
              { type: 'document.added', userId, data: summary },
              ...(archived ? [{ type: 'document.archived', userId, data: { document_id: archived.id, user_id: userId, type: input.type, replaced_by: id } }] : []),
            ],
          );
          // The document a required action asked for has arrived (the user row is locked above).
          const actions = fulfilled(user, { documentType: input.type });
          if (actions.next) {
            await users.updateAtVersion(tx, t, userId, user.version, { required_actions: actions.next });
            await recordFulfilled(tx, actor, userId, actions.fulfilled, { fulfilled_by: 'document.added', document_id: id });
          }
          return { view: toView(row, details) };
        });
        // Locked meanwhile: the catch below deletes the blobs written for nothing.
        if (outcome.locked) return await refuseLocked(actor, userId, input.type, outcome.locked);
        return outcome.view!;
      } catch (err) {
        await this.discard(upload);
        throw err;
      }
    },

    async list(actor: Actor, userId: string, q: { include?: 'archived'; limit: number; cursor?: string }) {
      const t = actor.tenantId;
      await users.getOrThrow(db, t, userId);
      const after = decodeCursor(q.cursor, ['id'] as const);
      let query = db.selectFrom('documents').selectAll().where('tenant_id', '=', t).where('user_id', '=', userId);
      if (q.include !== 'archived') query = query.where('status', '=', 'current');
      if (after) query = query.where('id', '<', after.id);
      const rows = await query.orderBy('id', 'desc').limit(q.limit + 1).execute();
      const views = await documentViews(keyringFor(actor, keyring), t, rows);
      return toPage(views, q.limit, (v) => v, (v) => ({ id: v.id }));
    },

    /**
     * The decrypted file as a stream; reading it is recorded in the audit log (who looked at which
     * identity document). The first frame is opened before anything is answered, so a destroyed key
     * is a 410 and a tampered header a 500 data.integrity; a frame tampered further on cuts the
     * stream short (the client sees fewer bytes than Content-Length).
     */
    async content(actor: Actor, docId: string, side: Side): Promise<{ body: Readable; size: number; contentType: string; filename: string }> {
      const t = actor.tenantId;
      const row = await db.selectFrom('documents').selectAll().where('tenant_id', '=', t).where('id', '=', docId).executeTakeFirst();
      if (!row) throw notFound('document', docId);
      const gone = (why: string) => new AppError(410, 'document.destroyed', why);
      if (row.destroyed_at) throw gone(`Document ${docId} was destroyed by erasure on ${row.destroyed_at.toISOString()}.`);
      const key = side === 'front' ? row.blob_key : row.back_blob_key;
      const contentType = side === 'front' ? row.content_type : row.back_content_type;
      const size = side === 'front' ? row.size : row.back_size;
      if (!key || !contentType || size === null) {
        throw new AppError(404, 'document.no_content', row.kind === 'virtual' ? `Document ${docId} is an identifier number: it has no file.` : `Document ${docId} has no ${side} side.`);
      }
      const field = CONTENT_FIELD(docId, side);
      const destroyed = gone(`The content of document ${docId} no longer exists.`);
      const stored = await blobs.getStream(key);
      const dataKey = await keyring.liveKey(t, row.user_id);
      if (!stored || !dataKey) {
        stored?.destroy();
        throw destroyed;
      }
      const [head, sealed] = await peek(stored);
      let body: Readable;
      if (head && isFramed(head)) {
        // pipeline (callback form) passes a read error on and destroys both ends together.
        const opened = pipelineStreams(sealed, keyring.openStream(dataKey, t, row.user_id, field), () => undefined);
        const [first, plain] = await peek(opened);
        if (first === undefined && size > 0) {
          plain.destroy();
          throw destroyed;
        }
        body = plain;
      } else {
        // A blob written before streaming (kcb1, one GCM message): small enough to open whole.
        const chunks: Buffer[] = [];
        for await (const c of sealed) chunks.push(c as Buffer);
        const bytes = await keyring.openBytes(t, row.user_id, field, Buffer.concat(chunks));
        if (!bytes) throw destroyed;
        body = Readable.from([bytes]);
      }
      try {
        await recordChange(db, actor, { action: 'document.content_read', targetType: 'document', targetId: docId, userId: row.user_id, details: { side } });
      } catch (err) {
        // No download without its audit entry; and the opened file must not wait for the GC to close.
        body.destroy();
        throw err;
      }
      const ext = contentType === 'application/pdf' ? 'pdf' : contentType === 'image/png' ? 'png' : 'jpg';
      return { body, size, contentType, filename: `${docId}${side === 'back' ? '-back' : ''}.${ext}` };
    },
  };
}

/**
 * The first chunk of a stream (undefined when it ends at once), and a stream of everything
 * including that chunk. An error before the first chunk is thrown here, before any answer.
 */
async function peek(stream: Readable): Promise<[Buffer | undefined, Readable]> {
  const it = stream[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) return [undefined, Readable.from([])];
  async function* all() {
    try {
      yield first.value as Buffer;
      for (let next = await it.next(); !next.done; next = await it.next()) yield next.value as Buffer;
    } finally {
      await it.return?.(); // a client gone mid-download: the file is closed, not left to the GC
    }
  }
  return [first.value as Buffer, Readable.from(all(), { objectMode: false })];
}

/**
 * Erasure's part, inside its transaction: the sealed details go (the destroyed key already makes them
 * unreadable; nulling removes the ciphertext too). The caller deletes the user's blob folder after
 * the commit with `eraseDocumentBlobs`.
 */
export async function destroyDocuments(tx: Tx, tenantId: string, userId: string): Promise<void> {
  await tx
    .updateTable('documents')
    .set({ details_enc: null, blob_key: null, back_blob_key: null, destroyed_at: sql`now()` })
    .where('tenant_id', '=', tenantId).where('user_id', '=', userId).where('destroyed_at', 'is', null)
    .execute();
}

export const eraseDocumentBlobs = (blobs: BlobStore, tenantId: string, userId: string) => blobs.deletePrefix(`${tenantId}/${userId}`);

export type DocumentsService = ReturnType<typeof createDocumentsService>;
