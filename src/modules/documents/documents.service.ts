// Documents of a user: files (sealed with the user's data key, kept in the blob store) and identifier
// numbers (sealed in the row). A new document of a type the user already has archives the old one,
// which stays listable and readable. Numbers leave masked, except in the GDPR export.
//
// Write order: the sealed blob is written and synced first, then the row that points at it commits
// with its audit entry and events; a failed transaction deletes the blob it wrote. So a committed
// document always has its content, and an orphan blob (a crash in between) is ciphertext that
// erasure removes with the user's folder.
import { sql, type Selectable } from 'kysely';
import type { Db, DocumentsTable, Tx } from '../../db/database.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { BlobStore } from '../../storage/blob-store.js';
import { AppError, notFound, validationFailed, type FieldError } from '../../http/errors.js';
import { decodeCursor, toPage } from '../../lib/cursor.js';
import { newId } from '../../lib/ids.js';
import { isCountry } from '../reference/enumerations.js';
import type { Actor } from '../audit/actor.js';
import { recordAttempt, recordChange } from '../audit/write-path.js';
import * as users from '../users/users.repo.js';
import { userClosed } from '../lifecycle/lifecycle.service.js';
import { loadOverrides, lockedWhenVerified } from '../policy/policy.service.js';
import {
  contentProblem, isLocked, isVirtualType, maskNumber, normalizeNumber, NUMBER_FORMATS, parseDataUri, type ContentType,
} from './document-rules.js';
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

export const tooLarge = (max: number) =>
  new AppError(413, 'document.too_large', `A document file may be at most ${max.toLocaleString('en')} bytes.`, { max_bytes: max });

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

/** Checks everything that needs no database: formats, country, sizes, file contents. */
function checkUpload(input: NewDocument, maxBytes: number): { details: Details; files: Array<{ side: Side; bytes: Buffer; type: ContentType }> } {
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

  const files: Array<{ side: Side; bytes: Buffer; type: ContentType }> = [];
  if (input.kind === 'physical') {
    for (const [side, file] of [['front', input.front], ['back', input.back]] as const) {
      if (!file) continue;
      if (file.bytes.length > maxBytes) throw tooLarge(maxBytes);
      if (file.bytes.length === 0) throw validationFailed([{ field: side === 'front' ? 'content' : 'content_back', code: 'empty', message: 'The file is empty.' }]);
      const checked = contentProblem(file.bytes, file.declared);
      if (typeof checked !== 'string') throw new AppError(checked.status, checked.code, `${side === 'back' ? 'Back side: ' : ''}${checked.message}`);
      files.push({ side, bytes: file.bytes, type: checked });
    }
    if (!files.some((f) => f.side === 'front')) throw validationFailed([{ field: 'content', code: 'required', message: 'A physical document needs its file.' }]);
  }
  return { details: { number, country, issuing_authority: input.issuing_authority ?? null, expiry_date: input.expiry_date ?? null }, files };
}

export function createDocumentsService({ db, keyring, blobs, maxBytes }: { db: Db; keyring: Keyring; blobs: BlobStore; maxBytes: number }) {
  /**
   * Refuses an upload to a closed user; answers the current document a replacement would break the
   * lock of (null when there is none). Run before the upload and again under the row lock.
   */
  async function lockedBy(executor: Db | Tx, actor: Actor, user: users.UserRow, type: string, lockTypes: readonly string[]): Promise<string | null> {
    if (user.status === 'closed') throw userClosed(user.id);
    if (!isLocked(type, user.kyc_status, lockTypes)) return null;
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
    throw new AppError(422, 'document.locked', `The user is verified: their ${type} (${currentId}) can no longer be replaced.`, {
      errors: [{ field: 'type', code: 'locked', message: `${type} is locked once the user is verified (tenant policy documents.locked_when_verified).` }],
      document_id: currentId,
    });
  }

  return {
    async add(actor: Actor, userId: string, input: NewDocument): Promise<DocumentView> {
      const t = actor.tenantId;
      const { details, files } = checkUpload(input, maxBytes);
      const lockTypes = lockedWhenVerified(await loadOverrides(db, t));
      const lockedNow = await lockedBy(db, actor, await users.getOrThrow(db, t, userId), input.type, lockTypes);
      if (lockedNow) return refuseLocked(actor, userId, input.type, lockedNow);

      const id = newId('doc');
      const written: string[] = [];
      try {
        for (const f of files) {
          const key = blobKey(t, userId, id, f.side);
          await blobs.put(key, await keyring.sealBytes(db, t, userId, CONTENT_FIELD(id, f.side), f.bytes));
          written.push(key);
        }
        const front = files.find((f) => f.side === 'front');
        const back = files.find((f) => f.side === 'back');
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
              details_enc: await keyring.seal(tx, t, userId, DETAILS_FIELD(id), details),
              content_type: front?.type ?? null, size: front?.bytes.length ?? null, blob_key: front ? blobKey(t, userId, id, 'front') : null,
              back_content_type: back?.type ?? null, back_size: back?.bytes.length ?? null, back_blob_key: back ? blobKey(t, userId, id, 'back') : null,
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
          return { view: toView(row, details) };
        });
        // Locked meanwhile: the catch below deletes the blobs written for nothing.
        if (outcome.locked) return await refuseLocked(actor, userId, input.type, outcome.locked);
        return outcome.view!;
      } catch (err) {
        await Promise.allSettled(written.map((k) => blobs.delete(k)));
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
      const views = await documentViews(keyring, t, rows);
      return toPage(views, q.limit, (v) => v, (v) => ({ id: v.id }));
    },

    /** The decrypted file; reading it is recorded in the audit log (who looked at which identity document). */
    async content(actor: Actor, docId: string, side: Side): Promise<{ bytes: Buffer; contentType: string; filename: string }> {
      const t = actor.tenantId;
      const row = await db.selectFrom('documents').selectAll().where('tenant_id', '=', t).where('id', '=', docId).executeTakeFirst();
      if (!row) throw notFound('document', docId);
      if (row.destroyed_at) throw new AppError(410, 'document.destroyed', `Document ${docId} was destroyed by erasure on ${row.destroyed_at.toISOString()}.`);
      const key = side === 'front' ? row.blob_key : row.back_blob_key;
      const contentType = side === 'front' ? row.content_type : row.back_content_type;
      if (!key || !contentType) {
        throw new AppError(404, 'document.no_content', row.kind === 'virtual' ? `Document ${docId} is an identifier number: it has no file.` : `Document ${docId} has no ${side} side.`);
      }
      const sealed = await blobs.get(key);
      const bytes = sealed && (await keyring.openBytes(t, row.user_id, CONTENT_FIELD(docId, side), sealed));
      if (!bytes) throw new AppError(410, 'document.destroyed', `The content of document ${docId} no longer exists.`);
      await recordChange(db, actor, { action: 'document.content_read', targetType: 'document', targetId: docId, userId: row.user_id, details: { side } });
      const ext = contentType === 'application/pdf' ? 'pdf' : contentType === 'image/png' ? 'png' : 'jpg';
      return { bytes, contentType, filename: `${docId}${side === 'back' ? '-back' : ''}.${ext}` };
    },
  };
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
