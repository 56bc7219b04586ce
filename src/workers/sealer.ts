// Seals the audit log every second inside `kyclo serve` and `kyclo worker`, so an entry is part of
// the hash chain moments after its change commits, and signs each tenant's head at most every
// `checkpointEveryMs`. Sealers in several processes skip each other's tenants (SKIP LOCKED) and never
// fork the chain. One tenant's failure is logged and counted and never stops the others; what the
// process saw is kept in `SealerHealth`, which /metrics and /readyz read.
import type { Db } from '../db/database.js';
import { sealAuditLog } from '../modules/audit/chain.js';
import { every, type Log } from './every.js';

export interface SealerHealth {
  rounds: number;
  sealedTotal: number;
  rejectedTotal: number;
  checkpointsTotal: number;
  /** Tenant rounds that failed (a tenant counts once per round). */
  failuresTotal: number;
  /** When the last round ended (ms since the epoch), whatever its outcome. */
  lastRoundAt: number | null;
  /** The tenants that failed in the last round, with what went wrong. */
  failing: Array<{ tenantId: string; error: string }>;
  /** The last round that could not run at all (the database did not answer). */
  lastError: string | null;
}

export const newSealerHealth = (): SealerHealth => ({
  rounds: 0, sealedTotal: 0, rejectedTotal: 0, checkpointsTotal: 0, failuresTotal: 0, lastRoundAt: null, failing: [], lastError: null,
});

export function startAuditSealer(
  db: Db,
  { intervalMs = 1000, checkpointEveryMs = 10_000, log, health = newSealerHealth() }: { intervalMs?: number; checkpointEveryMs?: number; log: Log; health?: SealerHealth },
) {
  const round = async () => {
    try {
      const r = await sealAuditLog(db, { checkpointEveryMs });
      health.sealedTotal += r.sealed;
      health.rejectedTotal += r.rejected;
      health.checkpointsTotal += r.checkpoints.length;
      health.failuresTotal += r.failures.length;
      health.failing = r.failures.map((f) => ({ tenantId: f.tenantId, error: f.error instanceof Error ? f.error.message : String(f.error) }));
      health.lastError = null;
      for (const f of r.failures) log.error({ err: f.error, tenant_id: f.tenantId }, 'audit sealing failed for this tenant; the others went on');
      if (r.rejected) log.error({ rejected: r.rejected }, 'audit entries refused by the sealer: their MAC does not verify (see kyclo audit verify)');
    } catch (err) {
      health.lastError = err instanceof Error ? err.message : String(err);
      log.error({ err }, 'audit sealing failed; retrying');
    } finally {
      health.rounds += 1;
      health.lastRoundAt = Date.now();
    }
  };
  return every(intervalMs, round, { onError: (err) => log.error({ err }, 'audit sealing failed; retrying') });
}
