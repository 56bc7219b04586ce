// GDPR erasure under AML retention. A request closes the user at once and schedules destruction at
// closure + the tenant's retention period; a legal hold postpones it. When due, the retention
// sweeper destroys: profile values nulled, the data key deleted (every sealed copy — identity
// snapshots, change request values, personal parts of events and audit entries — unreadable for
// good), document numbers and files destroyed, event payloads redacted. A tombstone stays: id, a hash of external_ref, dates, status
// history and audit entries without personal values.
import crypto from 'node:crypto';
import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import { AppError, notFound } from '../../http/errors.js';
import type { Actor } from '../audit/actor.js';
import { recordChange } from '../audit/write-path.js';
import { destroyDataKey } from '../../crypto/keyring.js';
import * as users from '../users/users.repo.js';
import type { UserRow } from '../users/users.repo.js';
import { loadOverrides, retentionDays } from '../policy/policy.service.js';
import type { LifecycleService } from '../lifecycle/lifecycle.service.js';
import type { BlobStore } from '../../storage/blob-store.js';
import { destroyDocuments, eraseDocumentBlobs } from '../documents/documents.service.js';

const DAY_MS = 86_400_000;

export const externalRefHash = (tenantId: string, ref: string) =>
  crypto.createHash('sha256').update(`${tenantId}:${ref}`).digest('hex');

const scheduleView = (u: UserRow) => ({
  user_id: u.id,
  status: u.status,
  requested_at: u.erasure_requested_at!.toISOString(),
  scheduled_for: u.erasure_scheduled_for!.toISOString(),
  legal_hold: u.legal_hold,
  erased_at: u.erased_at?.toISOString() ?? null,
});

export function createErasureService({
  db, lifecycle, blobs, onBlobFailure = (failed) => process.emitWarning(`erasure: document folders not deleted: ${JSON.stringify(failed)}`),
}: {
  db: Db;
  lifecycle: LifecycleService;
  blobs: BlobStore;
  /** Folders whose deletion failed (the data in them is already unreadable). */
  onBlobFailure?: (failed: Array<{ user_id: string; error: string }>) => void;
}) {
  const getRow = (tenantId: string, id: string) => users.getOrThrow(db, tenantId, id);

  /** Destroys one due user inside `tx` (already locked and checked). */
  async function destroy(tx: Tx, actor: Actor, u: UserRow): Promise<void> {
    await tx
      .updateTable('users')
      .set({
        profile: '{}', metadata: '{}', tags: [], pending_changes: '[]',
        external_ref: null,
        external_ref_hash: u.external_ref ? externalRefHash(u.tenant_id, u.external_ref) : null,
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
    await tx.updateTable('change_requests').set({ changes_enc: null }).where('tenant_id', '=', u.tenant_id).where('user_id', '=', u.id).execute();
    await tx.deleteFrom('idempotency_keys').where('tenant_id', '=', u.tenant_id).where('subject_user_id', '=', u.id).execute();
    await recordChange(
      tx, actor,
      { action: 'user.erased', targetType: 'user', targetId: u.id, userId: u.id, details: { scheduled_for: u.erasure_scheduled_for?.toISOString() } },
      { type: 'user.erased', userId: u.id, data: { user_id: u.id, erased_at: new Date().toISOString() } },
    );
  }

  return {
    async request(actor: Actor, userId: string, input: { requested_by: 'user' | 'operator'; note?: string }) {
      const before = await getRow(actor.tenantId, userId);
      if (before.erasure_requested_at) return { created: false, schedule: scheduleView(before) };
      await lifecycle.close(actor, userId, { origin: input.requested_by, reason: 'erasure_requested', note: input.note });
      const days = retentionDays(await loadOverrides(db, actor.tenantId));
      const row = await db.transaction().execute(async (tx) => {
        const u = (await users.getForUpdate(tx, actor.tenantId, userId))!;
        if (u.erasure_requested_at) return { u, created: false };
        const scheduled = new Date(u.status_changed_at.getTime() + days * DAY_MS);
        const updated = await tx
          .updateTable('users')
          .set({ erasure_requested_at: sql`now()`, erasure_scheduled_for: scheduled, version: sql`version + 1`, updated_at: sql`now()` })
          .where('tenant_id', '=', actor.tenantId).where('id', '=', userId)
          .returningAll()
          .executeTakeFirstOrThrow();
        await recordChange(
          tx, actor,
          { action: 'user.erasure_scheduled', targetType: 'user', targetId: userId, userId, details: { requested_by: input.requested_by, note: input.note ?? null, scheduled_for: scheduled.toISOString(), retention_days: days } },
          { type: 'user.erasure_scheduled', userId, data: { user_id: userId, requested_by: input.requested_by, scheduled_for: scheduled.toISOString(), legal_hold: u.legal_hold } },
        );
        return { u: updated as UserRow, created: true };
      });
      return { created: row.created, schedule: scheduleView(row.u) };
    },

    async setLegalHold(actor: Actor, userId: string, hold: boolean, reason?: string) {
      return db.transaction().execute(async (tx) => {
        const u = await users.getForUpdate(tx, actor.tenantId, userId);
        if (!u) throw notFound('user', userId);
        if (u.erased_at) throw new AppError(409, 'user.erased', `User ${userId} has been erased: there is nothing left to hold.`);
        if (u.legal_hold === hold) return u;
        const updated = await tx
          .updateTable('users')
          .set({ legal_hold: hold, legal_hold_reason: hold ? (reason ?? null) : null, version: sql`version + 1`, updated_at: sql`now()` })
          .where('tenant_id', '=', actor.tenantId).where('id', '=', userId)
          .returningAll()
          .executeTakeFirstOrThrow();
        const action = hold ? 'user.legal_hold_set' : 'user.legal_hold_cleared';
        await recordChange(
          tx, actor,
          { action, targetType: 'user', targetId: userId, userId, details: { reason: reason ?? null } },
          { type: action, userId, data: { user_id: userId, reason: reason ?? null } },
        );
        return updated as UserRow;
      });
    },

    /**
     * Destroys every user whose erasure is due and not held, a batch at a time; SKIP LOCKED lets
     * several processes sweep at once without waiting on or repeating each other.
     */
    async sweep(now = new Date(), batch = 100): Promise<{ erased: string[] }> {
      const erased: string[] = [];
      // Stored idempotent responses are kept 24 hours, then go with the rest of the sweep.
      await db.deleteFrom('idempotency_keys').where('expires_at', '<', now).execute();
      for (;;) {
        const done = await db.transaction().execute(async (tx) => {
          const due = await tx
            .selectFrom('users').selectAll()
            .where('erased_at', 'is', null).where('legal_hold', '=', false)
            .where('erasure_scheduled_for', '<=', now)
            .orderBy('erasure_scheduled_for').limit(batch)
            .forUpdate().skipLocked()
            .execute();
          for (const u of due) {
            await destroy(tx, { type: 'system', tenantId: u.tenant_id, keyId: null, role: null, requestId: null, ip: null }, u as UserRow);
          }
          return due.map((u) => ({ tenantId: u.tenant_id, id: u.id }));
        });
        // After the commit: the files are ciphertext under a key that no longer exists; deleting them
        // removes even that. A failure (or a crash right here) leaves ciphertext nothing can open
        // any more; it is reported, and the other users' folders are still removed.
        const removed = await Promise.allSettled(done.map((u) => eraseDocumentBlobs(blobs, u.tenantId, u.id)));
        const failed = removed.flatMap((r, i) => (r.status === 'rejected' ? [{ user_id: done[i]!.id, error: String(r.reason) }] : []));
        if (failed.length) onBlobFailure(failed);
        erased.push(...done.map((u) => u.id));
        if (done.length < batch) return { erased };
      }
    },
  };
}

export type ErasureService = ReturnType<typeof createErasureService>;
