// What makes the audit log trustworthy against someone who can write to the database, the superuser
// included: two keys derived from the master key (HKDF-SHA256, never stored in the database).
// - The entry MAC (HMAC-SHA256) is computed by the process that writes an entry, over its canonical
//   content: who, what, when, for which tenant. Without the master key nobody can insert a genuine-
//   looking entry, backdate one or change its actor; the sealer chains only entries whose MAC holds.
// - The checkpoint key (Ed25519) signs each tenant's head after sealing. Checkpoints are published
//   (API, webhook event, CLI) so auditors keep them outside the database; only the public key is
//   needed to check them, and no row in the database can make a signed head go backwards unnoticed.
// A process installs its keys once, at its composition root (the app, the worker, the CLI), before
// it writes: the write path refuses to write an entry it cannot authenticate.
import crypto from 'node:crypto';
import { canonicalJson, canonicalPick } from '../../lib/canonical-json.js';

export interface AuditKeys {
  macKey: Buffer;
  /** Keys the chain's hashes, so the chain cannot be recomputed after an entry is removed. */
  chainKey: Buffer;
  signingKey: crypto.KeyObject;
  publicKey: crypto.KeyObject;
  /** The raw 32-byte Ed25519 public key, base64: what an auditor pins. */
  publicKeyBase64: string;
  /** A short public id of the signing key, carried by every checkpoint. */
  keyId: string;
}

const hkdf = (master: Buffer, info: string) => Buffer.from(crypto.hkdfSync('sha256', master, Buffer.alloc(0), info, 32));
// An Ed25519 private key in PKCS#8 DER is this fixed prefix followed by its 32-byte seed (RFC 8410).
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export function deriveAuditKeys(masterKey: Buffer): AuditKeys {
  if (masterKey.length !== 32) throw new Error('the master key must be 32 bytes');
  const macKey = hkdf(masterKey, 'kyclo audit entry mac v1');
  const chainKey = hkdf(masterKey, 'kyclo audit chain hash v1');
  const seed = hkdf(masterKey, 'kyclo audit checkpoint ed25519 v1');
  const signingKey = crypto.createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const publicKey = crypto.createPublicKey(signingKey);
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return {
    macKey,
    chainKey,
    signingKey,
    publicKey,
    publicKeyBase64: raw.toString('base64'),
    keyId: `ack_${crypto.createHash('sha256').update(raw).digest('hex').slice(0, 16)}`,
  };
}

/** An Ed25519 public key from its raw base64 form (an auditor's pinned key). */
export function publicKeyFromBase64(b64: string): crypto.KeyObject {
  const raw = Buffer.from(b64, 'base64');
  if (raw.length !== 32) throw new Error('an Ed25519 public key is 32 bytes (base64)');
  return crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
}

let installed: AuditKeys | null = null;

export function installAuditKeys(keys: AuditKeys): void {
  installed = keys;
}

export function auditKeys(): AuditKeys {
  if (!installed) throw new Error('audit keys are not installed: a process must installAuditKeys() before it writes or seals audit entries');
  return installed;
}

/**
 * The content an entry's MAC covers: everything but its position in the log and the chain columns.
 * `occurred_at` is RFC 3339 UTC with microseconds, as `to_char(… 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
 * reads it back.
 */
export const MAC_FIELDS = [
  'tenant_id', 'id', 'occurred_at', 'actor_type', 'actor_key_id', 'actor_role', 'action', 'outcome', 'target_type',
  'target_id', 'user_id', 'changed_fields', 'request_id', 'ip', 'details', 'personal_enc',
] as const;
export type MacContent = Record<(typeof MAC_FIELDS)[number], unknown>;

const MAC_KEYS_SORTED = [...MAC_FIELDS].sort();

export function entryMac(macKey: Buffer, e: MacContent): string {
  return crypto.createHmac('sha256', macKey).update(canonicalPick(e, MAC_KEYS_SORTED)).digest('base64url');
}

export function macMatches(macKey: Buffer, e: MacContent, mac: string | null): boolean {
  return mac !== null && sameMac(entryMac(macKey, e), mac);
}

/** Two MACs compared in constant time (a MAC's length is public). */
export function sameMac(expected: string, got: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(got);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

/** The Node clock as PostgreSQL will read the timestamp back (microseconds, UTC). */
export const macTimestamp = (d = new Date()) => `${d.toISOString().slice(0, 23)}000Z`;

/** What a checkpoint signs: a tenant's head at one moment. */
export interface CheckpointContent {
  tenant_id: string;
  chain_seq: string;
  hash: string;
  signed_at: string;
  key_id: string;
}

export interface Checkpoint extends CheckpointContent {
  id: string;
  signature: string;
}

const checkpointPayload = (c: CheckpointContent) =>
  Buffer.from(canonicalJson({ tenant_id: c.tenant_id, chain_seq: c.chain_seq, hash: c.hash, signed_at: c.signed_at, key_id: c.key_id }));

export function signCheckpoint(keys: AuditKeys, c: Omit<CheckpointContent, 'key_id'>): string {
  return crypto.sign(null, checkpointPayload({ ...c, key_id: keys.keyId }), keys.signingKey).toString('base64url');
}

export function checkpointSignatureValid(publicKey: crypto.KeyObject, c: Checkpoint): boolean {
  try {
    return crypto.verify(null, checkpointPayload(c), publicKey, Buffer.from(c.signature, 'base64url'));
  } catch {
    return false;
  }
}
