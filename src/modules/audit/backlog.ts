// No silent backlog: how much of the audit log waits unsealed (and so unprotected by the chain), for
// /metrics (every process) and /readyz (a process that runs the sealer says when sealing is stuck).
import { sql } from 'kysely';
import type { Registry } from 'prom-client';
import client from 'prom-client';
import type { Db } from '../../db/database.js';
import type { SealerHealth } from '../../workers/sealer.js';

/** Past this, /readyz reports sealing as stuck: the sealer runs every second. */
export const STUCK_AFTER_SECONDS = 60;

export interface Backlog { entries: number; oldestSeconds: number; rejected: number }

export async function unsealedBacklog(db: Db): Promise<Backlog> {
  const r = (await sql<{ n: string; age: number | null; rejected: string }>`
    select count(*)::text as n, extract(epoch from now() - min(a.recorded_at))::float8 as age,
           count(r.entry_id)::text as rejected
    from audit_unsealed u
      cross join lateral (select id, recorded_at from audit_entries x where x.tenant_id = u.tenant_id and x.seq = u.seq) a
      left join audit_rejections r on r.tenant_id = u.tenant_id and r.entry_id = a.id`.execute(db)).rows[0]!;
  return { entries: Number(r.n), oldestSeconds: Math.max(0, r.age ?? 0), rejected: Number(r.rejected) };
}

/**
 * The backlog read at most once a second however often it is asked: /readyz and /metrics need no
 * key, and a caller hammering them must not turn each request into a count over the audit log.
 */
export function backlogReader(db: Db, maxAgeMs = 1000): () => Promise<Backlog> {
  let last: { at: number; value: Promise<Backlog> } | null = null;
  return () => {
    if (!last || Date.now() - last.at > maxAgeMs) {
      const value = unsealedBacklog(db);
      last = { at: Date.now(), value };
      value.catch(() => (last = null));
    }
    return last.value;
  };
}

export async function sealerState(readBacklog: () => Promise<Backlog>, health: SealerHealth) {
  const backlog = await readBacklog();
  const problems: string[] = [];
  // Counts, never tenant ids or error text: /readyz answers without a key, and the console shows it
  // to every tenant's auditors. The server's log names each tenant with its error.
  if (health.lastError) problems.push('the last round failed (the server log has the error)');
  if (health.failing.length) problems.push(`sealing fails for ${health.failing.length} tenant(s) (the server log names them)`);
  if (health.lastRoundAt !== null && Date.now() - health.lastRoundAt > STUCK_AFTER_SECONDS * 1000) problems.push('no sealing round has ended for over a minute');
  if (backlog.oldestSeconds > STUCK_AFTER_SECONDS) problems.push(`an entry has waited ${Math.round(backlog.oldestSeconds)} s to be sealed`);
  if (backlog.rejected) problems.push(`${backlog.rejected} entries were refused: their MAC does not verify`);
  return {
    state: problems.length ? ('stuck' as const) : ('ok' as const),
    problems,
    unsealed_entries: backlog.entries,
    oldest_unsealed_seconds: Math.round(backlog.oldestSeconds),
    rejected_entries: backlog.rejected,
    failures_total: health.failuresTotal,
  };
}

/** Gauges read at scrape time from the database, counters from this process's sealer (when it runs one). */
export function registerAuditMetrics(registry: Registry, backlog: () => Promise<Backlog>, health: SealerHealth | null): void {
  new client.Gauge({
    name: 'kyclo_audit_unsealed_entries', help: 'Audit entries waiting to be sealed into the hash chain', registers: [registry],
    async collect() { this.set((await backlog()).entries); },
  });
  new client.Gauge({
    name: 'kyclo_audit_oldest_unsealed_seconds', help: 'Age of the oldest audit entry waiting to be sealed (0 when none)', registers: [registry],
    async collect() { this.set((await backlog()).oldestSeconds); },
  });
  new client.Gauge({
    name: 'kyclo_audit_rejected_entries', help: 'Audit entries the sealer refused to chain: their MAC does not verify', registers: [registry],
    async collect() { this.set((await backlog()).rejected); },
  });
  if (!health) return;
  new client.Counter({
    name: 'kyclo_audit_seal_failures_total', help: 'Tenant sealing rounds that failed in this process', registers: [registry],
    collect() { this.reset(); this.inc(health.failuresTotal); },
  });
  new client.Counter({
    name: 'kyclo_audit_checkpoints_total', help: 'Signed checkpoints published by this process', registers: [registry],
    collect() { this.reset(); this.inc(health.checkpointsTotal); },
  });
}
