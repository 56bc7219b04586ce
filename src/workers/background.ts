// Everything a Kyclo process does besides answering HTTP: deliver webhooks, seal the audit log,
// sweep due erasures. `kyclo serve` runs it by default; `kyclo worker` runs only this. Each piece is
// safe to run in any number of processes at once.
import type { Db } from '../db/database.js';
import type { Keyring } from '../crypto/keyring.js';
import type { ErasureService } from '../modules/erasure/erasure.service.js';
import type { TargetPolicy } from '../modules/webhooks/ssrf.js';
import { createDispatcher, startDispatcher } from './dispatcher.js';
import { startAuditSealer, type SealerHealth } from './sealer.js';
import { startRetentionSweeper } from './retention.js';
import type { Log } from './every.js';

export function startBackgroundWork(deps: {
  db: Db;
  keyring: Keyring;
  erasure: ErasureService;
  webhookTargets: TargetPolicy;
  retentionIntervalSeconds: number;
  /** The least time between two signed checkpoints of one tenant's audit head. */
  checkpointEveryMs?: number;
  /** Where the sealer says how it fares (read by /metrics and /readyz). */
  sealerHealth?: SealerHealth;
  log: Log;
}): () => Promise<void> {
  const stops = [
    startDispatcher(createDispatcher({ db: deps.db, keyring: deps.keyring, targets: deps.webhookTargets, log: deps.log }), { log: deps.log }),
    startAuditSealer(deps.db, { log: deps.log, checkpointEveryMs: deps.checkpointEveryMs, health: deps.sealerHealth }),
    startRetentionSweeper(deps.erasure, { intervalSeconds: deps.retentionIntervalSeconds, log: deps.log }),
  ];
  return async () => {
    await Promise.all(stops.map((stop) => stop()));
  };
}
