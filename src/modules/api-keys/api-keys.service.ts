import crypto from 'node:crypto';
import type { Db } from '../../db/database.js';
import { newId } from '../../lib/ids.js';
import { decodeCursor, toPage } from '../../lib/cursor.js';
import { AppError, notFound, validationFailed } from '../../http/errors.js';
import { hashKey } from '../../http/auth.js';
import { recordChange } from '../audit/write-path.js';
import type { Actor } from '../audit/actor.js';
import { lockTenant } from '../tenants/tenant-lock.js';
import { canManageKeyOfRole, permissionsOf, ROLES, type Role } from './roles.js';
import * as repo from './api-keys.repo.js';

/**
 * Active (not revoked, not expired) keys a tenant may hold. Each key is a row that every lookup
 * may hit and a secret to keep; a tenant that needs more has a leak to fix, not a limit to raise.
 * Revoke one to make room.
 */
export const MAX_ACTIVE_API_KEYS = 500;

const ALPHANUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** 32 characters from 62 (about 190 bits), drawn without modulo bias. */
export function generateSecret(mode: 'live' | 'test' = 'live'): string {
  let out = '';
  while (out.length < 32) {
    for (const b of crypto.randomBytes(48)) {
      if (b < 248 && out.length < 32) out += ALPHANUM[b % 62];
    }
  }
  return `kyclo_${mode}_${out}`;
}

type KeyRow = NonNullable<Awaited<ReturnType<typeof repo.get>>>;

export function toApiKey(row: KeyRow) {
  return {
    id: row.id,
    name: row.name,
    role: row.role as Role,
    prefix: row.prefix,
    created_by: row.created_by,
    created_at: row.created_at.toISOString(),
    expires_at: row.expires_at?.toISOString() ?? null,
    revoked_at: row.revoked_at?.toISOString() ?? null,
    last_used_at: row.last_used_at?.toISOString() ?? null,
  };
}

export function createApiKeysService({ db }: { db: Db }) {
  return {
    async create(actor: Actor, input: { role: Role; name: string; expires_at?: string | null }) {
      if (actor.role && !canManageKeyOfRole(actor.role, input.role)) {
        throw new AppError(403, 'auth.forbidden', `A ${actor.role} key cannot create ${input.role} keys.`);
      }
      const expiresAt = input.expires_at ? new Date(input.expires_at) : null;
      if (expiresAt && expiresAt.getTime() <= Date.now()) {
        throw validationFailed([{ field: 'expires_at', code: 'in_the_past', message: 'must be in the future' }]);
      }
      const secret = generateSecret();
      const row = await db.transaction().execute(async (tx) => {
        await lockTenant(tx, actor.tenantId);
        // A key never outlives the key that made it: a contractor's ADMIN key expiring tomorrow could
        // otherwise mint itself a permanent ADMIN key, and the expiry the OWNER chose would mean nothing.
        const creator = actor.keyId ? await repo.get(tx, actor.tenantId, actor.keyId) : undefined;
        if (creator?.expires_at && (!expiresAt || expiresAt > creator.expires_at)) {
          throw validationFailed([{
            field: 'expires_at', code: 'outlives_creator',
            message: `must be set, at or before ${creator.expires_at.toISOString()}: the key creating it expires then`,
          }]);
        }
        if ((await repo.countActive(tx, actor.tenantId)) >= MAX_ACTIVE_API_KEYS) {
          throw new AppError(409, 'api_key.limit_reached', `A tenant may hold ${MAX_ACTIVE_API_KEYS} active API keys; revoke one first.`, {
            limit: MAX_ACTIVE_API_KEYS,
          });
        }
        const inserted = await repo.insert(tx, {
          tenant_id: actor.tenantId,
          id: newId('key'),
          name: input.name,
          role: input.role,
          prefix: secret.slice(0, 'kyclo_live_'.length + 6),
          key_hash: hashKey(secret),
          created_by: actor.keyId,
          expires_at: expiresAt,
        });
        await recordChange(tx, actor, {
          action: 'api_key.created',
          targetType: 'api_key',
          targetId: inserted.id,
          details: { role: input.role, name: input.name },
        });
        return inserted;
      });
      return { ...toApiKey(row), key: secret };
    },

    async list(actor: Actor, q: { limit: number; cursor?: string; include_revoked?: boolean }) {
      const after = decodeCursor(q.cursor, ['id'] as const);
      const rows = await repo.list(db, actor.tenantId, { afterId: after?.id ?? null, limit: q.limit, includeRevoked: q.include_revoked ?? true });
      return toPage(rows, q.limit, toApiKey, (r) => ({ id: r.id }));
    },

    /** The calling key: who it is, its tenant, what its role may do and which roles' keys it may manage. */
    async me(actor: Actor) {
      const row = actor.keyId ? await repo.whoAmI(db, actor.tenantId, actor.keyId) : undefined;
      // The key authenticated this very request, so it exists; a revocation racing it answers as auth does.
      if (!row) throw new AppError(401, 'auth.key_revoked', 'The API key has been revoked or has expired.', { headers: { 'www-authenticate': 'Bearer' } });
      const role = row.role as Role;
      return {
        id: row.id,
        name: row.name,
        role,
        prefix: row.prefix,
        expires_at: row.expires_at?.toISOString() ?? null,
        tenant: { id: row.tenant_id, name: row.tenant_name },
        permissions: permissionsOf(role),
        manages_roles: ROLES.filter((r) => canManageKeyOfRole(role, r)),
      };
    },

    /** Revoking is idempotent: a second call answers the revoked key and records nothing new. */
    async revoke(actor: Actor, id: string) {
      const existing = await repo.get(db, actor.tenantId, id);
      if (!existing) throw notFound('api_key', id);
      if (actor.role && !canManageKeyOfRole(actor.role, existing.role as Role)) {
        throw new AppError(403, 'auth.forbidden', `A ${actor.role} key cannot revoke ${existing.role} keys.`);
      }
      const revoked = await db.transaction().execute(async (tx) => {
        const row = await repo.revoke(tx, actor.tenantId, id);
        if (row) {
          await recordChange(tx, actor, { action: 'api_key.revoked', targetType: 'api_key', targetId: id, details: { role: row.role } });
        }
        return row;
      });
      repo.forgetCachedKeys();
      return toApiKey(revoked ?? (await repo.get(db, actor.tenantId, id))!);
    },
  };
}

export type ApiKeysService = ReturnType<typeof createApiKeysService>;
