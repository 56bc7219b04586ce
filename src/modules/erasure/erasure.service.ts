// GDPR erasure under AML retention. A request closes the user at once and schedules destruction at
// closure + the tenant's retention period; a legal hold postpones it. When due, the retention
// sweeper destroys: profile values nulled, the data key deleted (every sealed copy — identity
// snapshots, change request values, personal parts of events and audit entries — unreadable for
// good), document numbers and files destroyed, event payloads redacted. A tombstone stays: id, a keyed hash of external_ref, dates, status
// history and audit entries without personal values.
import crypto from 'node:crypto';
import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import { AppError, notFound } from '../../http/errors.js';
import type { Actor } from '../audit/actor.js';
import { recordChange } from '../audit/write-path.js';
import { destroyDataKey, type Keyring } from '../../crypto/keyring.js';
import { PERSONAL_FIELD } from '../events/personal.js';
import * as users from '../users/users.repo.js';
import type { UserRow } from '../users/users.repo.js';
import { loadOverrides, retentionDays } from '../policy/policy.service.js';
import type { LifecycleService } from '../lifecycle/lifecycle.service.js';
import type { BlobStore } from '../../storage/blob-store.js';
import { destroyDocuments, eraseDocumentBlobs } from '../documents/documents.service.js';

const DAY_MS = 86_400_000;

/**
 * What the tombstone keeps of external_ref, for imports to refuse the ref: a keyed hash. Refs are
 * guessable (customer numbers, emails) and the tenant id is no secret, so a plain SHA-256 of them,
 * read from a dump, turned the tombstone back into the person's reference in a few guesses.
 */
export const externalRefHash = (keyring: Keyring, tenantId: string, ref: string) =>
  keyring.mac('erased_external_ref', `${tenantId}:${ref}`);

/**
 * The unkeyed form, written by tombstones made before the hash was keyed. Looked up, never written:
 * those tombstones cannot be re-keyed, the reference they hash is gone.
 */
export const unkeyedExternalRefHash = (tenantId: string, ref: string) =>
  crypto.createHash('sha256').update(`${tenantId}:${ref}`).digest('hex');

/**
 * Why a user could not be destroyed, for the operator's log: PostgreSQL's SQLSTATE, with its message
 * unless it is a data or constraint error (classes 22 and 23 quote the value refused: the very data
 * being destroyed).
 */
function sweepError(err: unknown): string {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return message;
  return /^2[23]/.test(code) ? `SQLSTATE ${code}` : `SQLSTATE ${code}: ${message}`;
}

const scheduleView = (u: UserRow) => ({
  user_id: u.id,
  status: u.status,
  requested_at: u.erasure_requested_at!.toISOString(),
  scheduled_for: u.erasure_scheduled_for!.toISOString(),
  legal_hold: u.legal_hold,
  erased_at: u.erased_at?.toISOString() ?? null,
});

export function createErasureService({
  db, lifecycle, blobs, keyring, onBlobFailure = (failed) => process.emitWarning(`erasure: document folders not deleted: ${JSON.stringify(failed)}`),
}: {
  db: Db;
  lifecycle: LifecycleService;
  blobs: BlobStore;
  /** Seals the free text of requests and holds, and keys the tombstone's hash of external_ref. */
  keyring: Keyring;
  /** Folders whose deletion failed (the data in them is already unreadable). */
  onBlobFailure?: (failed: Array<{ user_id: string; error: string }>) => void;
}) {
  /**
   * The reasons the standing hold was set for: those sealed in its `user.legal_hold_set` entries since
   * the last `user.legal_hold_cleared` (read under the user's row lock, so a concurrent setter's
   * committed entry is seen).
   */
  async function holdReasons(tx: Tx, tenantId: string, userId: string): Promise<string[]> {
    const entries = await tx.selectFrom('audit_entries').select(['action', 'personal_enc'])
      .where('tenant_id', '=', tenantId).where('user_id', '=', userId)
      .where('action', 'in', ['user.legal_hold_set', 'user.legal_hold_cleared'])
      .orderBy('seq', 'desc').limit(200).execute();
    const standing = entries.findIndex((e) => e.action === 'user.legal_hold_cleared');
    const sealed = (standing < 0 ? entries : entries.slice(0, standing)).flatMap((e) => (e.personal_enc ? [e.personal_enc] : []));
    const opened = await keyring.openMany(tenantId, sealed.map((envelope) => ({ userId, field: PERSONAL_FIELD, envelope })), undefined, tx);
    return opened.flatMap((o) => (typeof (o as { reason?: unknown } | undefined)?.reason === 'string' ? [(o as { reason: string }).reason] : []));
  }

  /** Destroys one due user inside `tx` (already locked and checked). */
  async function destroy(tx: Tx, actor: Actor, u: UserRow): Promise<void> {
    await tx
      .updateTable('users')
      .set({
        profile: '{}', metadata: '{}', tags: [], pending_changes: '[]', required_actions: '[]',
        // The rating and status stay with the tombstone (a compliance decision, like the status); the reason is free text.
        risk: sql`case when risk is null then null else jsonb_set(risk, '{reason}', 'null'::jsonb) end`,
        external_ref: null, legal_hold_reason: null,
        external_ref_hash: u.external_ref ? externalRefHash(keyring, u.tenant_id, u.external_ref) : null,
        erased_at: sql`now()`, version: sql`version + 1`, updated_at: sql`now()`,
      })
      .where('tenant_id', '=', u.tenant_id).where('id', '=', u.id)
      .execute();
    await destroyDataKey(tx, u.tenant_id, u.id);
    await destroyDocuments(tx, u.tenant_id, u.id);
    // Payloads keep only what was never personal (ids, types, field names, statuses).
    await tx
      .updateTable('events')
      .set({ personal_enc: null, data: sql`data || '{"redacted": true}'::jsonb` })
      .where('tenant_id', '=', u.tenant_id).where('user_id', '=', u.id)
      .execute();
    // Free text written before it was sealed (or outside a sealed column) goes with the values.
    await tx
      .updateTable('change_requests')
      .set({ changes_enc: null, decision_enc: null, decision_note: null, decision_reason: sql`case when status = 'rejected' then null else decision_reason end` })
      .where('tenant_id', '=', u.tenant_id).where('user_id', '=', u.id)
      .execute();
    // Verifications are immutable but for this (migration 0011): plaintext from before sealing.
    await tx
      .updateTable('verifications').set({ provider_ref: null, provider_ref_enc: null, identity: '{}' })
      .where('tenant_id', '=', u.tenant_id).where('user_id', '=', u.id)
      .where(sql<boolean>`(provider_ref is not null or provider_ref_enc is not null or identity <> '{}'::jsonb)`)
      .execute();
    await tx.updateTable('status_changes').set({ note: null }).where('tenant_id', '=', u.tenant_id).where('user_id', '=', u.id).execute();
    await tx.updateTable('risk_changes').set({ reason: null }).where('tenant_id', '=', u.tenant_id).where('user_id', '=', u.id).execute();
    // A relationship stays with the tombstone (its history is the business's record too), but its
    // title is free text about the person's role: gone, whichever side was erased.
    await tx.updateTable('relationships').set({ title: null })
      .where('tenant_id', '=', u.tenant_id).where((w) => w.or([w('user_id', '=', u.id), w('related_user_id', '=', u.id)])).where('title', 'is not', null).execute();
    // Every stored idempotent response that concerns the user, whatever the route that answered it.
    await tx.deleteFrom('idempotency_keys').where('tenant_id', '=', u.tenant_id).where(sql<boolean>`subject_user_ids @> array[${u.id}]::text[]`).execute();
    await recordChange(
      tx, actor,
      { action: 'user.erased', targetType: 'user', targetId: u.id, userId: u.id, details: { scheduled_for: u.erasure_scheduled_for?.toISOString() } },
      { type: 'user.erased', userId: u.id, data: { user_id: u.id, erased_at: new Date().toISOString() } },
    );
  }

  return {
    /**
     * One transaction: the user is locked, closed if open, and the destruction scheduled, so no
     * failure can leave a user closed for erasure with nothing scheduled (or the reverse).
     */
    async request(actor: Actor, userId: string, input: { requested_by: 'user' | 'operator'; note?: string }) {
      const days = retentionDays(await loadOverrides(db, actor.tenantId));
      const row = await db.transaction().execute(async (tx) => {
        const locked = await users.getForUpdate(tx, actor.tenantId, userId);
        if (!locked) throw notFound('user', userId);
        if (locked.erasure_requested_at) return { u: locked, created: false, closedNow: false };
        const closed = locked.status === 'closed'
          ? locked
          // The note goes only to the erasure's own (sealed) record: the closure's history and audit entry keep it in the clear.
          : (await lifecycle.closeLocked(tx, actor, locked, { origin: input.requested_by, reason: 'erasure_requested' }))!.user;
        const scheduled = new Date(closed.status_changed_at.getTime() + days * DAY_MS);
        const updated = await tx
          .updateTable('users')
          .set({ erasure_requested_at: sql`now()`, erasure_scheduled_for: scheduled, version: sql`version + 1`, updated_at: sql`now()` })
          .where('tenant_id', '=', actor.tenantId).where('id', '=', userId)
          .returningAll()
          .executeTakeFirstOrThrow();
        // The note is free text (it may name anyone): sealed with the user's key, gone with it.
        const personal = input.note ? await keyring.seal(tx, actor.tenantId, userId, PERSONAL_FIELD, { note: input.note }) : null;
        await recordChange(
          tx, actor,
          {
            action: 'user.erasure_scheduled', targetType: 'user', targetId: userId, userId, personal,
            details: { requested_by: input.requested_by, scheduled_for: scheduled.toISOString(), retention_days: days },
          },
          { type: 'user.erasure_scheduled', userId, data: { user_id: userId, requested_by: input.requested_by, scheduled_for: scheduled.toISOString(), legal_hold: locked.legal_hold } },
        );
        return { u: updated as UserRow, created: true, closedNow: locked.status !== 'closed' };
      });
      return { created: row.created, closedNow: row.closedNow, schedule: scheduleView(row.u) };
    },

    async setLegalHold(actor: Actor, userId: string, hold: boolean, reason?: string) {
      return db.transaction().execute(async (tx) => {
        const u = await users.getForUpdate(tx, actor.tenantId, userId);
        if (!u) throw notFound('user', userId);
        if (u.erased_at) throw new AppError(409, 'user.erased', `User ${userId} has been erased: there is nothing left to hold.`);
        // A user has one hold, standing for every matter it was set for. Set again with a reason of
        // its own (a second matter), the hold does not change but the matter is recorded: its own
        // audit entry and event, so lifting the hold later is seen against every matter behind it.
        // The same call again (a reason the standing hold was already set for) records nothing.
        const anotherMatter = hold && u.legal_hold && reason !== undefined && reason !== u.legal_hold_reason
          && !(await holdReasons(tx, actor.tenantId, userId)).includes(reason);
        if (u.legal_hold === hold && !anotherMatter) return u;
        const updated = anotherMatter ? u : await tx
          .updateTable('users')
          .set({ legal_hold: hold, legal_hold_reason: hold ? (reason ?? null) : null, version: sql`version + 1`, updated_at: sql`now()` })
          .where('tenant_id', '=', actor.tenantId).where('id', '=', userId)
          .returningAll()
          .executeTakeFirstOrThrow();
        const action = hold ? 'user.legal_hold_set' : 'user.legal_hold_cleared';
        // The reason is free text: its copies in the audit log and the event log are sealed.
        const personal = reason ? await keyring.seal(tx, actor.tenantId, userId, PERSONAL_FIELD, { reason }) : null;
        await recordChange(
          tx, actor,
          { action, targetType: 'user', targetId: userId, userId, details: anotherMatter ? { already_held: true } : {}, personal },
          { type: action, userId, data: anotherMatter ? { user_id: userId, already_held: true } : { user_id: userId }, personal },
        );
        return updated as UserRow;
      });
    },

    /**
     * Destroys every user whose erasure is due and not held, a batch at a time; SKIP LOCKED lets
     * several processes sweep at once without waiting on or repeating each other. A batch that fails
     * is done again one user per transaction: one user whose destruction fails (and is reported in
     * `failed`) held back every other due erasure, of every tenant, sweep after sweep, as the failing
     * user came first in every batch.
     */
    async sweep(now = new Date(), batch = 100): Promise<{ erased: string[]; failed: Array<{ user_id: string; error: string }> }> {
      const erased: string[] = [];
      const failed: Array<{ user_id: string; error: string }> = [];
      // Stored idempotent responses are kept 24 hours, then go with the rest of the sweep.
      await db.deleteFrom('idempotency_keys').where('expires_at', '<', now).execute();
      // The users due now, oldest schedule first, but for those whose destruction failed in this sweep.
      const dueUsers = (executor: Db | Tx) => executor.selectFrom('users')
        .where('erased_at', 'is', null).where('legal_hold', '=', false).where('erasure_scheduled_for', '<=', now)
        .$if(failed.length > 0, (q) => q.where('id', 'not in', failed.map((f) => f.user_id)))
        .orderBy('erasure_scheduled_for');
      const due = (tx: Tx, limit: number, only?: string) =>
        dueUsers(tx).selectAll().$if(only !== undefined, (q) => q.where('id', '=', only!)).limit(limit).forUpdate().skipLocked().execute();
      const destroyAll = async (tx: Tx, rows: Awaited<ReturnType<typeof due>>) => {
        for (const u of rows) await destroy(tx, { type: 'system', tenantId: u.tenant_id, keyId: null, role: null, requestId: null, ip: null }, u as UserRow);
        return rows.map((u) => ({ tenantId: u.tenant_id, id: u.id }));
      };
      for (;;) {
        let done: Array<{ tenantId: string; id: string }>;
        let full: boolean;
        try {
          done = await db.transaction().execute(async (tx) => destroyAll(tx, await due(tx, batch)));
          full = done.length === batch;
        } catch {
          // One by one: the batch's users (as the next batch would pick them), each alone.
          const ids = (await dueUsers(db).select('id').limit(batch).execute()).map((u) => u.id);
          done = [];
          for (const id of ids) {
            try {
              done.push(...(await db.transaction().execute(async (tx) => destroyAll(tx, await due(tx, 1, id)))));
            } catch (err) {
              failed.push({ user_id: id, error: sweepError(err) });
            }
          }
          full = ids.length === batch;
        }
        // After the commit: the files are ciphertext under a key that no longer exists; deleting them
        // removes even that. A failure (or a crash right here) leaves ciphertext nothing can open
        // any more; it is reported, and the other users' folders are still removed.
        const removed = await Promise.allSettled(done.map((u) => eraseDocumentBlobs(blobs, u.tenantId, u.id)));
        const blobFailures = removed.flatMap((r, i) => (r.status === 'rejected' ? [{ user_id: done[i]!.id, error: String(r.reason) }] : []));
        if (blobFailures.length) onBlobFailure(blobFailures);
        erased.push(...done.map((u) => u.id));
        if (!full) return { erased, failed };
      }
    },
  };
}

export type ErasureService = ReturnType<typeof createErasureService>;
