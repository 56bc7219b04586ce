// What became of a webhook attempt, written down: the attempt itself, the delivery's next state (done,
// retried later or failed) and, when an endpoint has failed too long or answered 410, its disabling.
// Only while the attempt still holds its lease (`attempts` unchanged): a send that outlived its lease
// was claimed again by someone else, whose record counts.
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { prepared } from '../db/prepared.js';
import { DISABLE_AFTER_MS, nextDelaySeconds } from '../modules/webhooks/retry.js';
import { recordChange } from '../modules/audit/write-path.js';
import type { Log } from './every.js';

/** One attempt of one delivery, as claimed (the attempt number is taken at the claim). */
export interface Attempt {
  tenant_id: string;
  id: string;
  endpoint_id: string;
  event_id: string;
  attempts: number;
}

export interface Result {
  status: number | null;
  error: string | null;
  retryAfter: string | null;
  ms: number;
  /** No point retrying: the endpoint or the event is gone, or the endpoint was disabled. */
  final?: boolean;
}

/**
 * The successes of a batch, as parallel arrays. A named statement: its text never changes, and
 * unnamed PostgreSQL planned its three writes on every call (≈ 325 µs of planning a batch in the
 * bench's profile, more than it took to run; bench/README.md, "Planning the deliveries").
 */
const recordSuccesses = prepared('webhook_successes', `
  with v as (
    select * from unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::int[], $7::int[])
      as v(tenant_id, id, attempt, endpoint_id, event_id, status_code, duration_ms)
  ), attempt as (
    insert into webhook_attempts (tenant_id, delivery_id, attempt, endpoint_id, event_id, status_code, duration_ms, error)
    select tenant_id, id, attempt, endpoint_id, event_id, status_code, duration_ms, null from v
    on conflict do nothing
  ), done as (
    update webhook_deliveries d set status = 'succeeded', leased_until = null, last_attempt_at = now(), last_status_code = v.status_code
    from v where d.tenant_id = v.tenant_id and d.id = v.id and d.attempts = v.attempt
  )
  update webhook_endpoints w set failing_since = null
  from (select distinct tenant_id, endpoint_id from v) e
  where w.tenant_id = e.tenant_id and w.id = e.endpoint_id and w.failing_since is not null`);

export function createAttemptRecorder({ db, log }: { db: Db; log: Log }) {
  /**
   * Successful attempts, written together: each sender's success waits at most a few milliseconds
   * for others, then one statement (atomic, no BEGIN/COMMIT) records the attempts, marks the
   * deliveries done (unless their lease was lost meanwhile), and clears `failing_since` only where it
   * was set — an unconditional UPDATE made every success take its endpoint's row lock, so the
   * senders of one endpoint queued behind each other. A round trip per delivery was the largest
   * share of the dispatcher's cost (each write to a socket costs ~0.1 ms of CPU here).
   */
  const successes = (() => {
    let pending: Array<{ d: Attempt; r: Result; done: () => void; fail: (err: unknown) => void }> = [];
    let timer: NodeJS.Timeout | null = null;
    const flush = async () => {
      if (timer) clearTimeout(timer);
      timer = null;
      const batch = pending;
      pending = [];
      if (batch.length === 0) return;
      const col = <T>(f: (x: (typeof batch)[number]) => T) => batch.map(f);
      try {
        await recordSuccesses(db, [
          col((b) => b.d.tenant_id), col((b) => b.d.id), col((b) => b.d.attempts), col((b) => b.d.endpoint_id),
          col((b) => b.d.event_id), col((b) => b.r.status), col((b) => b.r.ms),
        ]);
        for (const b of batch) b.done();
      } catch (err) {
        for (const b of batch) b.fail(err);
      }
    };
    return {
      add: (d: Attempt, r: Result) =>
        new Promise<void>((done, fail) => {
          pending.push({ d, r, done, fail });
          if (pending.length >= 20) void flush();
          else timer ??= setTimeout(() => void flush(), 5);
        }),
    };
  })();

  /** Records the attempt and decides what comes next, unless the lease was lost meanwhile. */
  async function record(d: Attempt, r: Result) {
    const ok = r.status !== null && r.status >= 200 && r.status < 300;
    if (ok) return successes.add(d, r);
    await db.transaction().execute(async (tx) => {
      await tx.insertInto('webhook_attempts').values({
        tenant_id: d.tenant_id, delivery_id: d.id, attempt: d.attempts, endpoint_id: d.endpoint_id, event_id: d.event_id,
        status_code: r.status, duration_ms: r.ms, error: r.error,
      }).onConflict((oc) => oc.doNothing()).execute();
      const base = tx.updateTable('webhook_deliveries').where('tenant_id', '=', d.tenant_id).where('id', '=', d.id).where('attempts', '=', d.attempts);
      const gone = r.status === 410;
      const delay = gone || r.final ? null : nextDelaySeconds(d.attempts, r.retryAfter);
      await base.set({
        status: delay === null ? 'failed' : 'pending',
        next_attempt_at: delay === null ? sql`now()` : sql`now() + make_interval(secs => ${delay})`,
        leased_until: null, last_attempt_at: sql`now()`, last_status_code: r.status,
      }).execute();
      if (r.final) return;
      const ep = await tx.updateTable('webhook_endpoints').set({ failing_since: sql`coalesce(failing_since, now())` })
        .where('tenant_id', '=', d.tenant_id).where('id', '=', d.endpoint_id).returning(['failing_since', 'enabled']).executeTakeFirst();
      const failingTooLong = ep?.failing_since && Date.now() - ep.failing_since.getTime() > DISABLE_AFTER_MS;
      if (ep?.enabled && (gone || failingTooLong)) {
        const reason = gone ? 'gone' : 'failing';
        await tx.updateTable('webhook_endpoints').set({ enabled: false, disabled_reason: reason, updated_at: sql`now()` })
          .where('tenant_id', '=', d.tenant_id).where('id', '=', d.endpoint_id).execute();
        await recordChange(
          tx,
          { type: 'system', tenantId: d.tenant_id, keyId: null, role: null, requestId: null, ip: null },
          { action: 'webhook_endpoint.disabled', targetType: 'webhook_endpoint', targetId: d.endpoint_id, details: { reason, last_status: r.status } },
          { type: 'webhook_endpoint.disabled', userId: null, data: { endpoint_id: d.endpoint_id, reason } },
        );
        log.warn({ endpoint: d.endpoint_id, reason }, 'webhook endpoint disabled');
      }
    });
  }

  return record;
}
