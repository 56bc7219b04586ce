// KYC verification records: each outcome a provider (or the platform) reports is kept as an
// immutable record, and moves the user's KYC status. One transaction: the record, the user's KYC
// fields, the audit entry and the events.
import type { Selectable } from 'kysely';
import type { Db, VerificationsTable } from '../../db/database.js';
import { newId } from '../../lib/ids.js';
import { userHistoryPage } from '../../db/user-history.js';
import { notFound } from '../../http/errors.js';
import type { Actor } from '../audit/actor.js';
import { recordChange, type EventInput } from '../audit/write-path.js';
import * as users from '../users/users.repo.js';
import type { RecordVerificationInput } from './kyc.schemas.js';
import { userClosed } from '../lifecycle/lifecycle.service.js';
import type { Keyring } from '../../crypto/keyring.js';
import { keyringFor, withheldFrom } from '../erasure/retained.js';
import { IDENTITY_FIELD, maskIdentifiers, PERSONAL_FIELD, PROVIDER_REF_FIELD } from '../events/personal.js';

const NEXT_STATUS = { approved: 'verified', rejected: 'rejected', review: 'pending' } as const;

/** identity and provider_ref are null once the user's data key is destroyed (erased). */
const toVerification = (r: Selectable<VerificationsTable>, identity: Record<string, unknown> | undefined, providerRef: string | null, unmasked: boolean) => ({
  id: r.id,
  user_id: r.user_id,
  result: r.result as 'approved' | 'rejected' | 'review',
  level: r.level,
  provider: r.provider,
  provider_ref: providerRef,
  identity: identity ? (unmasked ? identity : maskIdentifiers(identity)) : null,
  kyc_status_before: r.kyc_status_before,
  kyc_status_after: r.kyc_status_after,
  recorded_by_key_id: r.recorded_by_key_id,
  request_id: r.request_id,
  created_at: r.created_at.toISOString(),
});

/**
 * A verification of a user awaiting erasure, to a caller who may not read it (erasure/retained.ts):
 * sealed values do not open for it, and a row written before sealing holds them in the clear.
 */
export const withheldVerification = <V extends { identity: unknown; provider_ref: unknown }>(v: V): V => ({ ...v, identity: null, provider_ref: null });

/**
 * Verifications as the API shows them: identity snapshots and provider references opened with each
 * user's key (one lookup); identifier numbers masked unless `unmasked` (the GDPR export).
 */
export async function verificationViews(keyring: Keyring, tenantId: string, rows: Array<Selectable<VerificationsTable>>, unmasked = false) {
  const opened = await keyring.openMany(tenantId, rows.flatMap((r) => [
    { userId: r.user_id, field: IDENTITY_FIELD, envelope: r.identity_enc ?? '' },
    { userId: r.user_id, field: PROVIDER_REF_FIELD, envelope: r.provider_ref_enc ?? '' },
  ]));
  return rows.map((r, i) => {
    const identity = r.identity_enc ? (opened[2 * i] as Record<string, unknown> | undefined) : r.identity;
    const ref = r.provider_ref_enc ? ((opened[2 * i + 1] as string | undefined) ?? null) : r.provider_ref;
    return toVerification(r, identity, ref, unmasked);
  });
}

export function createKycService({ db, keyring }: { db: Db; keyring: Keyring }) {
  return {
    async record(actor: Actor, userId: string, input: RecordVerificationInput) {
      return db.transaction().execute(async (tx) => {
        const user = await users.getForUpdate(tx, actor.tenantId, userId);
        if (!user) throw notFound('user', userId);
        if (user.status === 'closed') throw userClosed(userId);
        const to = NEXT_STATUS[input.result];
        const id = newId('vrf');
        const row = await tx
          .insertInto('verifications')
          .values({
            tenant_id: actor.tenantId, id, user_id: userId, result: input.result, level: input.level ?? null,
            // provider_ref names the person at the provider: sealed like the identity, gone with the key.
            provider: input.provider, provider_ref: null,
            provider_ref_enc: input.provider_ref === undefined ? null : await keyring.seal(tx, actor.tenantId, userId, PROVIDER_REF_FIELD, input.provider_ref),
            identity: '{}', identity_enc: await keyring.seal(tx, actor.tenantId, userId, IDENTITY_FIELD, input.identity ?? {}),
            kyc_status_before: user.kyc_status, kyc_status_after: to, recorded_by_key_id: actor.keyId, request_id: actor.requestId,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        const approved = input.result === 'approved';
        const updated = await users.updateAtVersion(tx, actor.tenantId, userId, user.version, {
          kyc_status: to,
          ...(approved ? { kyc_level: input.level ?? null, kyc_verified_at: new Date() } : {}),
        });
        const events: EventInput[] = [
          { type: 'user.verification_recorded', userId, data: { user_id: userId, verification_id: id, result: input.result, provider: input.provider, level: input.level ?? null } },
        ];
        if (user.kyc_status !== to) {
          events.push({ type: 'user.kyc_status_changed', userId, data: { user_id: userId, from: user.kyc_status, to, reason: 'verification', verification_id: id } });
        }
        await recordChange(
          tx, actor,
          {
            action: 'user.verification_recorded', targetType: 'verification', targetId: id, userId,
            changedFields: user.kyc_status !== to ? ['kyc.status'] : [],
            details: { result: input.result, provider: input.provider, from: user.kyc_status, to, version: updated?.version },
            personal: input.provider_ref === undefined ? null : await keyring.seal(tx, actor.tenantId, userId, PERSONAL_FIELD, { provider_ref: input.provider_ref }),
          },
          events,
        );
        return toVerification(row, input.identity ?? {}, input.provider_ref ?? null, false);
      });
    },

    async list(actor: Actor, userId: string, q: { limit?: number; cursor?: string }) {
      const user = await users.getOrThrow(db, actor.tenantId, userId);
      const page = await userHistoryPage(db, 'verifications', actor.tenantId, userId, q, (r) => r);
      const views = await verificationViews(keyringFor(actor, keyring), actor.tenantId, page.data);
      return { data: withheldFrom(actor, user) ? views.map(withheldVerification) : views, next_cursor: page.next_cursor };
    },
  };
}

export type KycService = ReturnType<typeof createKycService>;
