// GDPR access and portability: everything Kyclo holds about one user, decrypted, as one document.
import type { Db } from '../../db/database.js';
import type { Actor } from '../audit/actor.js';
import type { Keyring } from '../../crypto/keyring.js';
import * as users from '../users/users.repo.js';
import { toUserView } from '../users/user-view.js';
import { verificationViews } from '../kyc/kyc.service.js';
import { changeRequestViews } from '../reviews/change-requests.service.js';
import { eventViews } from '../events/events.routes.js';
import { auditViews } from '../audit/audit.routes.js';
import { toStatusChange } from '../lifecycle/lifecycle.service.js';
import { documentViews } from '../documents/documents.service.js';

export function createExportService({ db, keyring }: { db: Db; keyring: Keyring }) {
  return {
    async export(actor: Actor, userId: string) {
      const t = actor.tenantId;
      const row = await users.getOrThrow(db, t, userId);
      const [verifications, statusChanges, changeRequests, events, audit, documents] = await Promise.all([
        db.selectFrom('verifications').selectAll().where('tenant_id', '=', t).where('user_id', '=', userId).orderBy('id').execute(),
        db.selectFrom('status_changes').selectAll().where('tenant_id', '=', t).where('user_id', '=', userId).orderBy('id').execute(),
        db.selectFrom('change_requests').selectAll().where('tenant_id', '=', t).where('user_id', '=', userId).orderBy('id').execute(),
        db.selectFrom('events').selectAll().where('tenant_id', '=', t).where('user_id', '=', userId).orderBy('seq').execute(),
        db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', t).where('user_id', '=', userId).orderBy('seq').execute(),
        db.selectFrom('documents').selectAll().where('tenant_id', '=', t).where('user_id', '=', userId).orderBy('id').execute(),
      ]);
      return {
        exported_at: new Date().toISOString(),
        tenant_id: t,
        user: toUserView(row),
        verifications: await verificationViews(keyring, t, verifications, true),
        // The one place numbers leave unmasked: the data subject's own copy. Files are linked, not inlined.
        documents: await documentViews(keyring, t, documents, true),
        status_changes: statusChanges.map(toStatusChange),
        change_requests: await changeRequestViews(keyring, t, changeRequests),
        events: await eventViews(keyring, t, events),
        audit_entries: await auditViews(keyring, t, audit),
      };
    },
  };
}

export type ExportService = ReturnType<typeof createExportService>;
