// Envelope encryption of personal data. Each user has a data key (AES-256-GCM), stored only wrapped
// by the master key. Every ciphertext carries its key id, and its AAD binds tenant, user and field,
// so a ciphertext copied into another user's row (or another field) fails to open. Destroying a
// user's data key makes every copy of their sensitive values unreadable, backups included.
import crypto from 'node:crypto';
import { randomBytes } from './random.js';
import type { Db, Tx, UserKeysTable } from '../db/database.js';
import { prepared } from '../db/prepared.js';
import { AppError } from '../http/errors.js';
import { openFramed, sealFramed, type FramedKey } from './framed-stream.js';
import { deriveAuditKeys } from '../modules/audit/authentication.js';

const VERSION = 'kc1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const BYTES_MAGIC = Buffer.from('kcb1');

export interface Sealed {
  userId: string;
  field: string;
  envelope: string;
}

export class DecryptError extends Error {}

export interface DataKey {
  keyId: string;
  key: Buffer;
}

function gcmSeal(key: Buffer, plaintext: Buffer, aad: string): { iv: Buffer; body: Buffer } {
  const iv = randomBytes(IV_BYTES);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { iv, body };
}

function gcmOpen(key: Buffer, iv: Buffer, body: Buffer, aad: string): Buffer {
  if (body.length < TAG_BYTES) throw new DecryptError('ciphertext too short');
  const decipher = crypto.createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new DecryptError('ciphertext does not open with this key, tenant, user and field');
  }
}

const dataAad = (tenantId: string, userId: string, field: string) => `kyclo:${tenantId}:${userId}:${field}`;
const wrapAad = (tenantId: string, userId: string, keyId: string) => `kyclo-data-key:${tenantId}:${userId}:${keyId}`;

/** A short public id of the master key, stored with each wrapped key so a rotation can find them. */
export const masterKeyId = (master: Buffer) => `mk_${crypto.createHash('sha256').update(master).digest('hex').slice(0, 12)}`;

/**
 * The user_keys rows of these users, live keys only; with `withhold`, none of a user awaiting erasure.
 * That probe is answered from users_awaiting_erasure (migration 0027), the ids written into it too, so
 * it stays short when the statistics do not know the tenant yet.
 *
 * Named statements with the ids as one array: every page of events, every webhook delivery round and
 * every page of users with tenant fields looks keys up, and as an unnamed statement with one parameter
 * an id (its text changing with the count) PostgreSQL planned it on every call — ≈ 320 µs of planning
 * against ≈ 230 of execution for 8 keys in the bench's profile (bench/README.md, "Planning the
 * deliveries"). One text per variant is planned once per connection; its generic plan reads the same
 * short indexes (test/keyring-withheld-plan.test.ts).
 */
const KEY_ROWS_SQL = `select user_id, key_id, wrapped_key from user_keys
  where tenant_id = $1 and user_id = any($2::text[]) and destroyed_at is null`;
export const KEY_ROWS_WITHHELD_SQL = `${KEY_ROWS_SQL}
  and not exists (select 1 from users u
    where u.tenant_id = user_keys.tenant_id and u.id = any($2::text[]) and u.id = user_keys.user_id and u.erasure_requested_at is not null)`;
type KeyRow = Pick<UserKeysTable, 'user_id' | 'key_id' | 'wrapped_key'>;
const keyRowsAll = prepared<KeyRow>('user_keys_of', KEY_ROWS_SQL);
const keyRowsWithheld = prepared<KeyRow>('user_keys_of_withheld', KEY_ROWS_WITHHELD_SQL);

export const keyRows = (executor: Db | Tx, tenantId: string, ids: string[], withhold: boolean): Promise<KeyRow[]> =>
  (withhold ? keyRowsWithheld : keyRowsAll)(executor, [tenantId, ids]);

export function createKeyring({ db, masterKey }: { db: Db; masterKey: Buffer }) {
  if (masterKey.length !== 32) throw new Error('the master key must be 32 bytes');
  const mkId = masterKeyId(masterKey);
  const macKey = crypto.createHmac('sha256', masterKey).update('kyclo-mac-key').digest();

  const unwrap = (tenantId: string, userId: string, keyId: string, wrapped: Buffer) =>
    gcmOpen(masterKey, wrapped.subarray(0, IV_BYTES), wrapped.subarray(IV_BYTES), wrapAad(tenantId, userId, keyId));

  function newDataKey(tenantId: string, userId: string): DataKey & { wrapped: Buffer; masterKeyId: string } {
    const keyId = `dk_${randomBytes(8).toString('hex')}`;
    const key = randomBytes(32);
    const { iv, body } = gcmSeal(masterKey, key, wrapAad(tenantId, userId, keyId));
    return { keyId, key, wrapped: Buffer.concat([iv, body]), masterKeyId: mkId };
  }

  /** The user's data key, created on first use inside the caller's transaction. */
  async function dataKey(tx: Db | Tx, tenantId: string, userId: string): Promise<{ keyId: string; key: Buffer }> {
    const existing = await tx
      .selectFrom('user_keys').select(['key_id', 'wrapped_key'])
      .where('tenant_id', '=', tenantId).where('user_id', '=', userId).where('destroyed_at', 'is', null)
      .executeTakeFirst();
    if (existing?.wrapped_key) return { keyId: existing.key_id, key: unwrap(tenantId, userId, existing.key_id, existing.wrapped_key) };
    const { keyId, key, wrapped } = newDataKey(tenantId, userId);
    const inserted = await tx
      .insertInto('user_keys')
      .values({ tenant_id: tenantId, user_id: userId, key_id: keyId, wrapped_key: wrapped, master_key_id: mkId })
      .onConflict((oc) => oc.columns(['tenant_id', 'user_id']).doNothing())
      .returning('key_id')
      .executeTakeFirst();
    if (inserted) return { keyId, key };
    // The key exists but was destroyed (the user was erased): a new one must never replace it, and
    // asking again would loop for ever. Anything else means another transaction created it first.
    const destroyed = await tx
      .selectFrom('user_keys').select('destroyed_at')
      .where('tenant_id', '=', tenantId).where('user_id', '=', userId).where('destroyed_at', 'is not', null)
      .executeTakeFirst();
    if (destroyed) throw new AppError(409, 'user.erased', `User ${userId} has been erased: nothing personal can be stored for them any more.`);
    return dataKey(tx, tenantId, userId);
  }

  /**
   * Keys of several users at once (for a page of events); destroyed keys are absent, and so, when
   * `withhold` is set, are the keys of users awaiting erasure (see `retainedWithheld` below).
   */
  async function keysOf(tenantId: string, userIds: string[], executor: Db | Tx = db, withhold = false): Promise<Map<string, { keyId: string; key: Buffer }>> {
    const out = new Map<string, { keyId: string; key: Buffer }>();
    const ids = [...new Set(userIds)];
    if (ids.length === 0) return out;
    const rows = await keyRows(executor, tenantId, ids, withhold);
    for (const r of rows) if (r.wrapped_key) out.set(r.user_id, { keyId: r.key_id, key: unwrap(tenantId, r.user_id, r.key_id, r.wrapped_key) });
    return out;
  }

  function openWith(key: { keyId: string; key: Buffer } | undefined, tenantId: string, userId: string, field: string, envelope: string): unknown {
    const [version, keyId, iv, body] = envelope.split('.');
    if (version !== VERSION || !keyId || !iv || !body) throw new DecryptError('not a Kyclo ciphertext');
    if (!key || key.keyId !== keyId) return undefined; // the key was destroyed: the value is gone for good
    const plain = gcmOpen(key.key, Buffer.from(iv, 'base64url'), Buffer.from(body, 'base64url'), dataAad(tenantId, userId, field));
    return JSON.parse(plain.toString('utf8'));
  }

  function sealWith({ keyId, key }: DataKey, tenantId: string, userId: string, field: string, value: unknown): string {
    const { iv, body } = gcmSeal(key, Buffer.from(JSON.stringify(value)), dataAad(tenantId, userId, field));
    return [VERSION, keyId, iv.toString('base64url'), body.toString('base64url')].join('.');
  }

  /** What opens sealed values: for every reader, or (withhold) for those who may not read a user awaiting erasure. */
  const openers = (withhold: boolean) => ({
    /**
     * Opens one value; undefined when the user's key has been destroyed (erased). Inside a
     * transaction pass it as `executor`: a second pool connection per open transaction can exhaust
     * the pool under load.
     */
    async open(tenantId: string, userId: string, field: string, envelope: string, executor: Db | Tx = db): Promise<unknown> {
      const keys = await keysOf(tenantId, [userId], executor, withhold);
      return openWith(keys.get(userId), tenantId, userId, field, envelope);
    },

    /**
     * Opens many values with one key lookup; each result is undefined where the key is gone, or where
     * the ciphertext does not open (tampered, or copied from another user or field): a list shows such
     * a value as unreadable rather than failing whole. `onError` hears about the latter.
     */
    async openMany(
      tenantId: string,
      items: Sealed[],
      onError: (err: DecryptError, item: Sealed) => void = () => undefined,
      executor: Db | Tx = db,
    ): Promise<unknown[]> {
      const keys = await keysOf(tenantId, items.map((i) => i.userId), executor, withhold);
      return items.map((i) => {
        try {
          return openWith(keys.get(i.userId), tenantId, i.userId, i.field, i.envelope);
        } catch (err) {
          if (!(err instanceof DecryptError)) throw err;
          onError(err, i);
          return undefined;
        }
      });
    },

    /** Opens a binary envelope; undefined when the user's key has been destroyed. */
    async openBytes(tenantId: string, userId: string, field: string, envelope: Buffer, executor: Db | Tx = db): Promise<Buffer | undefined> {
      if (envelope.length < BYTES_MAGIC.length + 1 || !envelope.subarray(0, BYTES_MAGIC.length).equals(BYTES_MAGIC)) {
        throw new DecryptError('not a Kyclo binary envelope');
      }
      const idLen = envelope[BYTES_MAGIC.length]!;
      const idStart = BYTES_MAGIC.length + 1;
      const keyId = envelope.subarray(idStart, idStart + idLen).toString('latin1');
      const iv = envelope.subarray(idStart + idLen, idStart + idLen + IV_BYTES);
      const body = envelope.subarray(idStart + idLen + IV_BYTES);
      const key = (await keysOf(tenantId, [userId], executor, withhold)).get(userId);
      if (!key || key.keyId !== keyId) return undefined;
      return gcmOpen(key.key, iv, body, dataAad(tenantId, userId, field));
    },
  });

  const keyring = {
    ...openers(false),

    async seal(tx: Db | Tx, tenantId: string, userId: string, field: string, value: unknown): Promise<string> {
      return sealWith(await dataKey(tx, tenantId, userId), tenantId, userId, field, value);
    },

    /** Seals with a key the caller already holds (read with the row, or made by newDataKey): no query. */
    sealWith,

    /** A new user's data key, to be stored in the statement that creates the user. */
    newDataKey,

    /** The audit log's MAC and checkpoint keys, derived from the same master key (see audit/authentication.ts). */
    auditKeys: deriveAuditKeys(masterKey),

    /** The data key from its stored (wrapped) form, read in the same query as the user. */
    unwrapDataKey(tenantId: string, userId: string, keyId: string, wrapped: Buffer): DataKey {
      return { keyId, key: unwrap(tenantId, userId, keyId, wrapped) };
    },

    /** Binary content (document files): the same key and AAD scheme, in a compact binary envelope. */
    async sealBytes(tx: Db | Tx, tenantId: string, userId: string, field: string, bytes: Buffer): Promise<Buffer> {
      const { keyId, key } = await dataKey(tx, tenantId, userId);
      const { iv, body } = gcmSeal(key, bytes, dataAad(tenantId, userId, field));
      const id = Buffer.from(keyId, 'latin1');
      return Buffer.concat([BYTES_MAGIC, Buffer.from([id.length]), id, iv, body]);
    },

    /** The user's live data key (created on first use), for a caller that seals a stream with it. */
    dataKeyFor: (executor: Db | Tx, tenantId: string, userId: string): Promise<DataKey> => dataKey(executor, tenantId, userId),

    /** The user's live data key if it still exists (undefined once erasure destroyed it): no key is created. */
    async liveKey(tenantId: string, userId: string, executor: Db | Tx = db): Promise<DataKey | undefined> {
      return (await keysOf(tenantId, [userId], executor)).get(userId);
    },

    /**
     * A stream sealing file content as it passes (the kcb2 framed format, see framed-stream.ts) under
     * the same key and AAD binding as sealBytes: tenant, user and field.
     */
    sealStream: (key: DataKey, tenantId: string, userId: string, field: string) =>
      sealFramed(key as FramedKey, dataAad(tenantId, userId, field)),

    /** The opening counterpart of sealStream; a frame that fails its tag errors the stream with DecryptError. */
    openStream: (key: DataKey, tenantId: string, userId: string, field: string) =>
      openFramed(key as FramedKey, dataAad(tenantId, userId, field), (m) => new DecryptError(m)),

    destroy: destroyDataKey,

    /** A keyed hash (HMAC-SHA256 under a key derived from the master key), for fingerprints of requests. */
    mac(context: string, data: string): string {
      return crypto.createHmac('sha256', macKey).update(`${context}\n${data}`).digest('hex');
    },

    /** Secrets the service itself must use again (webhook signing secrets), sealed by the master key. */
    sealSecret(context: string, secret: string): string {
      const { iv, body } = gcmSeal(masterKey, Buffer.from(secret), `kyclo-secret:${context}`);
      return ['km1', mkId, iv.toString('base64url'), body.toString('base64url')].join('.');
    },

    openSecret(context: string, envelope: string): string {
      const [version, , iv, body] = envelope.split('.');
      if (version !== 'km1' || !iv || !body) throw new DecryptError('not a sealed secret');
      return gcmOpen(masterKey, Buffer.from(iv, 'base64url'), Buffer.from(body, 'base64url'), `kyclo-secret:${context}`).toString('utf8');
    },
  };
  const withheld = { ...keyring, ...openers(true) };
  WITHHELD.set(keyring, withheld);
  WITHHELD.set(withheld, withheld);
  return keyring;
}

const WITHHELD = new WeakMap<object, object>();

/**
 * The keyring as a reader who may not read a user awaiting erasure sees it (product.md: until
 * destruction, personal data is "readable only by compliance roles"; erasure/retained.ts): to it,
 * such a user's sealed values do not open, exactly as after destruction. Everything else, sealing
 * included, is the keyring's own.
 */
export function retainedWithheld(keyring: Keyring): Keyring {
  const withheld = WITHHELD.get(keyring);
  if (!withheld) throw new Error('not a keyring made by createKeyring');
  return withheld as Keyring;
}

/** Crypto-shredding: the wrapped key is deleted; the row stays as a record that it existed. Needs no master key. */
export async function destroyDataKey(tx: Tx, tenantId: string, userId: string): Promise<void> {
  await tx
    .updateTable('user_keys').set({ wrapped_key: null, destroyed_at: new Date() })
    .where('tenant_id', '=', tenantId).where('user_id', '=', userId).where('destroyed_at', 'is', null)
    .execute();
}

export type Keyring = ReturnType<typeof createKeyring>;
