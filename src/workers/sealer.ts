// Seals the audit log every second inside `kyclo serve` and `kyclo worker`, so an entry is part of
// the hash chain moments after its change commits. Sealers in several processes skip each other's
// tenants (SKIP LOCKED) and never fork the chain.
import type { Db } from '../db/database.js';
import { sealAuditLog } from '../modules/audit/chain.js';
import { every, type Log } from './every.js';

export function startAuditSealer(db: Db, { intervalMs = 1000, log }: { intervalMs?: number; log: Log }) {
  return every(intervalMs, () => sealAuditLog(db), { onError: (err) => log.error({ err }, 'audit sealing failed; retrying') });
}
