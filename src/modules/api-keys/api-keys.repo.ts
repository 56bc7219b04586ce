import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';

export type ApiKeyRow = Awaited<ReturnType<typeof findByHash>> & object;

/** The key and, in the same query, its tenant's rate limit: one round trip per request for both. */
export async function findByHash(db: Db, keyHash: Buffer) {
  return db
    .selectFrom('api_keys')
    .innerJoin('tenants', 'tenants.id', 'api_keys.tenant_id')
    .select([
      'api_keys.tenant_id', 'api_keys.id', 'api_keys.role', 'api_keys.revoked_at', 'api_keys.expires_at', 'api_keys.last_used_at',
      sql<number | null>`(tenants.policy #>> '{rate_limit,requests_per_minute}')::int`.as('requests_per_minute'),
    ])
    .where('api_keys.key_hash', '=', keyHash)
    .executeTakeFirst();
}

/**
 * How long a key lookup is trusted. The lookup was one database round trip on every request; it is
 * now one per key per second per process, and a revocation (or expiry, or a tenant's new rate limit)
 * made anywhere takes effect on every process within this time. A revocation made by this process
 * clears the cache at once. Only valid keys are kept, so guessing keys still costs a query each.
 */
export const KEY_CACHE_MS = 1000;
const KEY_CACHE_MAX = 10_000;
const keyCache = new Map<string, { row: ApiKeyRow; until: number }>();
/**
 * Bumped by every revocation: a lookup that read a key before a revocation and answers after it must
 * not put the key back in the cache the revocation cleared (test/api-keys-cache.test.ts).
 */
let revocations = 0;

/** The cached row of a valid key, if it is still fresh: no query, no promise (the common case). */
export function peekCachedKey(keyHash: Buffer, now = Date.now()): ApiKeyRow | undefined {
  const hit = keyCache.get(keyHash.toString('base64'));
  return hit && hit.until > now ? hit.row : undefined;
}

export async function findByHashCached(db: Db, keyHash: Buffer, now = Date.now()): Promise<ApiKeyRow | undefined> {
  const id = keyHash.toString('base64');
  const hit = peekCachedKey(keyHash, now);
  if (hit) return hit;
  const seen = revocations;
  const row = await findByHash(db, keyHash);
  if (row && !row.revoked_at && seen === revocations) {
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
    keyCache.set(id, { row, until: now + KEY_CACHE_MS });
  } else {
    keyCache.delete(id);
  }
  return row;
}

/** How many revocations this process has seen: a lookup started before one must not answer a request made after it. */
export const revocationEpoch = () => revocations;

/** After a revocation commits: no later request in this process may see the key as valid. */
export const forgetCachedKeys = () => {
  revocations++;
  keyCache.clear();
};

const PUBLIC_COLUMNS = [
  'id', 'name', 'role', 'prefix', 'created_by', 'created_at', 'expires_at', 'revoked_at', 'last_used_at',
] as const;

export async function insert(
  db: Db | Tx,
  row: { tenant_id: string; id: string; name: string; role: string; prefix: string; key_hash: Buffer; created_by: string | null; expires_at: Date | null },
) {
  return db.insertInto('api_keys').values(row).returning(PUBLIC_COLUMNS).executeTakeFirstOrThrow();
}

export async function list(db: Db, tenantId: string, opts: { afterId: string | null; limit: number; includeRevoked: boolean }) {
  let q = db.selectFrom('api_keys').select(PUBLIC_COLUMNS).where('tenant_id', '=', tenantId);
  if (opts.afterId) q = q.where('id', '>', opts.afterId);
  if (!opts.includeRevoked) q = q.where('revoked_at', 'is', null);
  return q.orderBy('id').limit(opts.limit + 1).execute();
}

/** Keys that can still authenticate: not revoked, not expired. */
export async function countActive(tx: Tx, tenantId: string): Promise<number> {
  const r = await tx
    .selectFrom('api_keys')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('tenant_id', '=', tenantId)
    .where('revoked_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<Date>`now()`)]))
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

export async function get(db: Db | Tx, tenantId: string, id: string) {
  return db.selectFrom('api_keys').select(PUBLIC_COLUMNS).where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
}

export async function findById(db: Db, id: string) {
  return db.selectFrom('api_keys').select([...PUBLIC_COLUMNS, 'tenant_id']).where('id', '=', id).executeTakeFirst();
}

/** Revokes once: a second revoke returns nothing so the caller can answer without a new audit entry. */
export async function revoke(tx: Tx, tenantId: string, id: string) {
  return tx
    .updateTable('api_keys')
    .set({ revoked_at: new Date() })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .returning(PUBLIC_COLUMNS)
    .executeTakeFirst();
}

export async function touch(db: Db, tenantId: string, id: string, at: Date) {
  await db.updateTable('api_keys').set({ last_used_at: at }).where('tenant_id', '=', tenantId).where('id', '=', id).execute();
}

/** The calling key with its tenant's name (GET /v1/me). */
export async function whoAmI(db: Db, tenantId: string, id: string) {
  return db
    .selectFrom('api_keys')
    .innerJoin('tenants', 'tenants.id', 'api_keys.tenant_id')
    .select(['api_keys.id', 'api_keys.name', 'api_keys.role', 'api_keys.prefix', 'api_keys.expires_at', 'tenants.id as tenant_id', 'tenants.name as tenant_name'])
    .where('api_keys.tenant_id', '=', tenantId)
    .where('api_keys.id', '=', id)
    .executeTakeFirst();
}
