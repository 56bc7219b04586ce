// The last `kyclo audit verify` result per tenant: written by the command, read by
// GET /v1/audit/verification (the console's audit page). The row is MACed with the audit MAC key,
// so only a process holding the master key can write one the API calls authentic: a database
// superuser cannot forge an OK, nor turn a BROKEN into one. It says what the last run found; the
// proof stays the command itself, run against checkpoints kept outside the database.
import crypto from 'node:crypto';
import { Type, type Static } from 'typebox';
import type { Db } from '../../db/database.js';
import { canonicalJson } from '../../lib/canonical-json.js';
import { macTimestamp, sameMac } from './authentication.js';
import type { VerifyResult } from './verify.js';

/** What the API answers for a tenant's last run (GET /v1/audit/verification). */
export const AuditVerification = Type.Object({
  verified_at: Type.String({ format: 'date-time', description: 'When `kyclo audit verify` ran' }),
  ok: Type.Boolean({ description: 'true: OK; false: BROKEN (reason, broken_at, entry_id say where)' }),
  sealed: Type.Integer({ description: 'Entries chained and checked' }),
  pending: Type.Integer({ description: 'Entries waiting to be sealed at the time' }),
  checkpoints: Type.Integer({ description: 'Checkpoints in the database checked' }),
  kept_checkpoints: Type.Integer({ description: 'Checkpoints kept outside the database it was given (--checkpoints); 0: none' }),
  reason: Type.Union([Type.String(), Type.Null()]),
  broken_at: Type.Union([Type.String(), Type.Null()], { description: 'The first chain position that does not hold' }),
  entry_id: Type.Union([Type.String(), Type.Null()], { description: 'The entry at fault' }),
  authentic: Type.Boolean({ description: 'false: the stored record does not carry this deployment’s MAC (written or changed in the database by hand): do not trust it' }),
}, { title: 'AuditVerification' });
export type VerificationView = Static<typeof AuditVerification>;

type Content = Omit<VerificationView, 'authentic' | 'verified_at'> & { tenant_id: string; verified_at: string };

const macOf = (macKey: Buffer, c: Content) =>
  crypto.createHmac('sha256', macKey).update(canonicalJson({ kind: 'audit.verification', ...c })).digest('base64url');

function contentOf(r: VerifyResult, verifiedAt: string, kept: number): Content {
  return {
    tenant_id: r.tenantId, verified_at: verifiedAt, ok: r.ok, sealed: r.sealed, pending: r.pending, checkpoints: r.checkpoints,
    kept_checkpoints: kept, reason: r.ok ? null : r.reason, broken_at: r.ok ? null : (r.brokenAt ?? null), entry_id: r.ok ? null : (r.entryId ?? null),
  };
}

/** Records each result of a run for the tenants the database has (a deleted tenant has no row to keep it). */
export async function recordVerifications(db: Db, macKey: Buffer, results: VerifyResult[], kept: number, at = new Date()): Promise<void> {
  const verifiedAt = macTimestamp(at);
  const known = new Set((await db.selectFrom('tenants').select('id').execute()).map((t) => t.id));
  for (const r of results) {
    if (!known.has(r.tenantId)) continue;
    const c = contentOf(r, verifiedAt, kept);
    const row = { ...c, sealed: String(c.sealed), pending: String(c.pending), verified_at: at, mac: macOf(macKey, c) };
    await db.insertInto('audit_verifications').values(row).onConflict((oc) => oc.column('tenant_id').doUpdateSet(row)).execute();
  }
}

/** The tenant's last recorded run, or null when `kyclo audit verify` never ran for it. */
export async function lastVerification(db: Db, macKey: Buffer, tenantId: string): Promise<VerificationView | null> {
  const row = await db.selectFrom('audit_verifications').selectAll().where('tenant_id', '=', tenantId).executeTakeFirst();
  if (!row) return null;
  const c: Content = {
    tenant_id: row.tenant_id, verified_at: macTimestamp(row.verified_at), ok: row.ok, sealed: Number(row.sealed), pending: Number(row.pending),
    checkpoints: row.checkpoints, kept_checkpoints: row.kept_checkpoints, reason: row.reason, broken_at: row.broken_at, entry_id: row.entry_id,
  };
  const { tenant_id: _t, ...view } = c;
  return { ...view, verified_at: row.verified_at.toISOString(), authentic: sameMac(macOf(macKey, c), row.mac) };
}
