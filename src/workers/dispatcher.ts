// The webhook dispatcher: turns committed events into deliveries (fan-out), then sends due
// deliveries, signed per Standard Webhooks. Each step claims its rows with FOR UPDATE SKIP LOCKED in
// a short transaction and sends outside any transaction, under a lease: any number of dispatchers in
// any number of processes never send one attempt twice; a dispatcher that dies mid-send leaves a
// lease that expires, and the attempt is made again (at least once, same webhook-id).
//
// Tenants are isolated from each other's receivers: a dispatcher has SEND_CONCURRENCY senders, of
// which one tenant holds TENANT_SENDS at most, and a send still running after a few seconds gives
// its sender back to the others (senders.ts); a claim takes each tenant's due deliveries within its
// room (so one tenant's backlog never fills a claim); sends outlive the round that started them, and
// each that ends makes room for the next claim at once; no send outlives its deadline (send.ts).
// The attacks: test/webhooks-isolation.test.ts.
import { sql, type Selectable } from 'kysely';
import { Agent } from 'undici';
import type { Db, EventsTable, WebhookEndpointsTable } from '../db/database.js';
import { retainedWithheld, type Keyring } from '../crypto/keyring.js';
import { prepared } from '../db/prepared.js';
import { newId } from '../lib/ids.js';
import { eventViews } from '../modules/events/events.service.js';
import { takesEventType } from '../modules/webhooks/webhooks.service.js';
import { guardedLookup, type TargetPolicy } from '../modules/webhooks/ssrf.js';
import { createAttemptRecorder, type Result } from './attempts.js';
import { createSender, SEND_DEADLINE_MS } from './send.js';
import { createSenderPool, SLOW_SEND_MS, TENANT_SENDS } from './senders.js';
import type { Log } from './every.js';

// Longer than a send can last (SEND_DEADLINE_MS), short enough that a killed dispatcher's work resumes soon.
const LEASE_SECONDS = 30;
/** Events one round takes off the outbox; a round that started this many sends goes again at once. */
export const FAN_OUT_BATCH = 500;
export const SEND_BATCH = 50;
/**
 * Sends in flight in one dispatcher (SEND_CONCURRENCY), and of them one tenant's at most
 * (TENANT_SENDS). A tenant's share is what one dispatcher gave any tenant before (10 at once); the
 * rest is room for the others while one tenant's receivers are slow. Per process: n dispatchers give
 * a tenant n shares. Sends that hang stop holding shared senders after SLOW_SEND_MS (senders.ts).
 */
export { SEND_CONCURRENCY, TENANT_SENDS } from './senders.js';
/** Delivery rows per INSERT: 7 parameters at most each, under PostgreSQL's 65,535 a statement. */
export const DELIVERIES_PER_INSERT = 5000;

/**
 * The claim, in three steps. Each tenant with pending deliveries: a skip scan of
 * webhook_deliveries_pending (one index probe a tenant, however long its queue), only when some
 * delivery is due at all (one probe of webhook_deliveries_due: idle rounds stop there). Its oldest
 * due deliveries within its room ($2/$3, else $4) and the claim's size ($5), locked as they are
 * taken (the literal inner limit keeps the planner's estimate small). Then the claim's $5 picked by
 * the sends the tenant would then have in flight, and by age: a tenant with nothing in flight goes
 * before another's tenth send, so tenants with a backlog never keep the others' new deliveries
 * waiting. Rows locked and not picked are left as they were (their lock ends with the statement).
 * Its cost grows with the tenants that have pending deliveries, due or not: ≈ 7 µs each (20 ms a
 * claim with 2,000 tenants whose endpoints fail, in a review's run), not with their queues' length.
 */
const claimDue = prepared<{
  tenant_id: string; id: string; endpoint_id: string; event_id: string; attempts: number;
  endpoint: (Pick<Selectable<WebhookEndpointsTable>, 'id' | 'url' | 'enabled' | 'secret_enc' | 'previous_secret_enc'> & { previous_secret_expires_at: string | null }) | null;
  event: (Omit<Selectable<EventsTable>, 'occurred_at'> & { occurred_at: string }) | null;
}>('webhooks_claim_due', `
  with recursive tenants(tenant_id) as (
    (select tenant_id from webhook_deliveries
      where status = 'pending' and exists (select 1 from webhook_deliveries x where x.status = 'pending' and x.next_attempt_at <= now())
      order by tenant_id limit 1)
    union all
    select (select w.tenant_id from webhook_deliveries w where w.status = 'pending' and w.tenant_id > t.tenant_id order by w.tenant_id limit 1)
      from tenants t where t.tenant_id is not null
  ), rooms as (
    select t.tenant_id, coalesce((select r.n from unnest($2::text[], $3::int[]) as r(tenant_id, n) where r.tenant_id = t.tenant_id), $4) as room
      from tenants t where t.tenant_id is not null
  ), taken as (
    select p.tenant_id, p.id, p.next_attempt_at, r.room, row_number() over (partition by p.tenant_id order by p.next_attempt_at) as nth
      from rooms r
      cross join lateral (
        select q.* from (
          select d.tenant_id, d.id, d.next_attempt_at from webhook_deliveries d
           where d.tenant_id = r.tenant_id and d.status = 'pending' and d.next_attempt_at <= now()
             and (d.leased_until is null or d.leased_until < now())
           order by d.next_attempt_at limit ${TENANT_SENDS}
           for update skip locked) q
        limit least(r.room, $5)) p
     where r.room > 0
  ), picked as (
    select tenant_id, id from taken order by ($4 - room) + nth, next_attempt_at limit $5
  )
  update webhook_deliveries d set attempts = d.attempts + 1, leased_until = now() + make_interval(secs => $1)
    from picked where d.tenant_id = picked.tenant_id and d.id = picked.id
  returning d.tenant_id, d.id, d.endpoint_id, d.event_id, d.attempts,
    (select to_jsonb(w) from webhook_endpoints w where w.tenant_id = d.tenant_id and w.id = d.endpoint_id) as endpoint,
    (select to_jsonb(e) from events e where e.tenant_id = d.tenant_id and e.id = d.event_id) as event`);

export function createDispatcher({ db, keyring, targets, log, sendDeadlineMs = SEND_DEADLINE_MS, slowSendMs = SLOW_SEND_MS }: {
  db: Db; keyring: Keyring; targets: TargetPolicy; log: Log; sendDeadlineMs?: number; slowSendMs?: number;
}) {
  const agent = new Agent({ connect: { lookup: guardedLookup(targets), timeout: 5000 } });
  const record = createAttemptRecorder({ db, log });
  const sendTo = createSender({ agent, keyring, targets, deadlineMs: sendDeadlineMs });
  // What payloads are opened with. An endpoint is not a compliance role: the events of a user awaiting
  // erasure go out redacted, as after destruction (erasure/retained.ts) — else a DEVELOPER key could
  // add an endpoint and ask for a redelivery of what GET /v1/events withholds from it.
  const endpointKeyring = retainedWithheld(keyring);
  /**
   * Every send in flight, whichever round started it; the senders they hold (from before a send's
   * payload is built until its attempt is recorded), each tenant's counted. Slow sends give their
   * sender back: claim for it at once.
   */
  const inFlight = new Set<Promise<void>>();
  const senders = createSenderPool({ onFreed: () => pump(), slowAfterMs: slowSendMs });
  let started = 0;
  let failures = 0;
  let lastFailure: unknown = null;
  let closing = false;

  /**
   * Committed events → one delivery per enabled endpoint that takes their type. The events wait in
   * event_outbox (written with them, see audit/write-path.ts); taking them off it is the claim
   * (DELETE … RETURNING under SKIP LOCKED), in the transaction that inserts their deliveries: the
   * events themselves are never rewritten. Up to `lease` of the new deliveries are inserted already
   * leased to this dispatcher (attempt 1), with their endpoint and event, to be sent at once: the
   * usual delivery is then written twice (inserted leased, marked done) instead of three times
   * (inserted, claimed, marked done), within each tenant's room (TENANT_SENDS). The rest wait as
   * pending for `claim`.
   */
  async function fanOut(limit = FAN_OUT_BATCH, lease = 0): Promise<{ events: number; leased: Delivery[] }> {
    return db.transaction().execute(async (tx) => {
      // Every event taken comes back as one row, but only an event some enabled endpoint takes comes
      // with its columns, and with the ids of the endpoints that take it: most tenants have no
      // endpoint, and each event was read whole (on a create its sealed personal part is the whole
      // user) to be delivered nowhere. Fan-out of 500 such events: 20.7 → 6.0 µs of Node CPU an
      // event (bench/README.md). The statement alone decides which endpoint gets which event; an
      // event no endpoint takes also skips the endpoints query.
      const taken = (await sql<(Selectable<EventsTable> & { endpoint_ids: string[] }) | { [K in keyof Selectable<EventsTable> | 'endpoint_ids']: null }>`
        with taken as (
          delete from event_outbox where seq in (
            select seq from event_outbox order by seq limit ${limit} for update skip locked)
          returning seq, tenant_id
        )
        select e.* from taken
          left join lateral (
            select e.*, w.endpoint_ids from events e
             cross join lateral (
               select array_agg(w.id order by w.id) as endpoint_ids from webhook_endpoints w
                where w.tenant_id = e.tenant_id and w.enabled and ${takesEventType(sql.ref('e.type'))}) w
             where e.tenant_id = taken.tenant_id and e.seq = taken.seq and w.endpoint_ids is not null
          ) e on true
         order by taken.seq`.execute(tx)).rows;
      const events = taken.filter((e): e is Selectable<EventsTable> & { endpoint_ids: string[] } => e.id !== null);
      if (events.length === 0) return { events: taken.length, leased: [] };
      const tenants = [...new Set(events.map((e) => e.tenant_id))];
      const ids = [...new Set(events.flatMap((e) => e.endpoint_ids))];
      const endpoints = new Map(
        (await tx.selectFrom('webhook_endpoints')
          .select(['tenant_id', 'id', 'url', 'enabled', 'secret_enc', 'previous_secret_enc', 'previous_secret_expires_at'])
          .where('tenant_id', 'in', tenants).where('id', 'in', ids).where('enabled', '=', true).execute()).map((w) => [`${w.tenant_id}/${w.id}`, w]),
      );
      // An endpoint deleted or disabled since the statement above (read committed) is not in the map: no delivery.
      const planned = events.flatMap(({ endpoint_ids, ...event }) =>
        endpoint_ids.flatMap((id) => {
          const endpoint = endpoints.get(`${event.tenant_id}/${id}`);
          return endpoint ? [{ event, endpoint, id: newId('dlv') }] : [];
        }),
      );
      if (planned.length === 0) return { events: taken.length, leased: [] };
      // Leased now: the first `lease` planned, skipping a tenant whose room is used up.
      const leasing = new Map<string, number>();
      let leasedTotal = 0;
      const leasedNow = planned.filter((p) => {
        const n = leasing.get(p.event.tenant_id) ?? 0;
        if (leasedTotal >= lease || n >= senders.roomOf(p.event.tenant_id)) return false;
        leasing.set(p.event.tenant_id, n + 1);
        leasedTotal++;
        return true;
      });
      const leased = new Set(leasedNow);
      const row = (p: (typeof planned)[number], leased: boolean) => ({
        tenant_id: p.event.tenant_id, id: p.id, endpoint_id: p.endpoint.id, event_id: p.event.id, status: 'pending',
        ...(leased ? { attempts: 1, leased_until: sql<Date>`now() + make_interval(secs => ${LEASE_SECONDS})` } : {}),
      });
      // Kysely writes DEFAULT where a row leaves a column out (attempts 0, no lease). A round can plan
      // 500 events × 50 endpoints, 25,000 rows of 5 parameters: over PostgreSQL's 65,535 a statement,
      // which failed the round and every one after it (the same events first in the outbox), stopping
      // every tenant's webhooks. So at most DELIVERIES_PER_INSERT rows a statement, one transaction.
      const rows = planned.map((p) => row(p, leased.has(p)));
      for (let i = 0; i < rows.length; i += DELIVERIES_PER_INSERT) {
        await tx.insertInto('webhook_deliveries').values(rows.slice(i, i + DELIVERIES_PER_INSERT)).execute();
      }
      return {
        events: taken.length,
        leased: leasedNow.map((p): Delivery => ({
          tenant_id: p.event.tenant_id, id: p.id, endpoint_id: p.endpoint.id, event_id: p.event.id, attempts: 1,
          endpoint: p.endpoint, event: p.event,
        })),
      };
    });
  }

  /** Leases due deliveries (`claimDue`), each tenant's within its room: the attempt number is taken here, once. */
  async function claim(limit: number) {
    const { tenants, rooms } = senders.rooms();
    const rows = await claimDue(db, [LEASE_SECONDS, tenants, rooms, TENANT_SENDS, limit]);
    // The endpoint and the event come with the claim (one round trip instead of three per delivery).
    return rows.map(({ endpoint, event, ...d }) => ({
      ...d,
      endpoint: endpoint && {
        ...endpoint,
        previous_secret_expires_at: endpoint.previous_secret_expires_at ? new Date(endpoint.previous_secret_expires_at) : null,
      },
      event: event && { ...event, occurred_at: new Date(event.occurred_at) },
    }));
  }

  type Delivery = Awaited<ReturnType<typeof claim>>[number];

  type View = Awaited<ReturnType<typeof eventViews>>[number];

  /** The payloads of a batch of claims: one key lookup per tenant, not one per delivery. */
  async function viewsOf(claimed: Delivery[]): Promise<Map<string, View>> {
    const out = new Map<string, View>();
    const byTenant = new Map<string, Delivery[]>();
    for (const d of claimed) if (d.event) byTenant.set(d.tenant_id, [...(byTenant.get(d.tenant_id) ?? []), d]);
    for (const [tenantId, list] of byTenant) {
      const views = await eventViews(endpointKeyring, tenantId, list.map((d) => d.event as Selectable<EventsTable>), { freeText: false });
      list.forEach((d, i) => out.set(d.id, views[i]!));
    }
    return out;
  }

  async function send(d: Delivery, view: View | undefined): Promise<Result> {
    const { endpoint } = d;
    if (!endpoint || !d.event || !view) return { status: null, error: 'endpoint or event no longer exists', retryAfter: null, ms: 0, final: true };
    if (!endpoint.enabled) return { status: null, error: 'endpoint disabled', retryAfter: null, ms: 0, final: true };
    return sendTo(d.tenant_id, endpoint, view);
  }

  /**
   * Starts each send. Its sender is taken before its payload is built and given back once its
   * attempt is recorded; then the next due deliveries are claimed at once (`pump`), so a tenant's
   * senders stay busy while it has work, round or no round. A failure to record an attempt is
   * logged (the attempt is made again when its lease ends) and thrown by `runOnce` when it settles.
   */
  async function start(claimed: Delivery[]): Promise<void> {
    const held = claimed.map((d) => senders.take(d.tenant_id));
    let views: Map<string, View>;
    try {
      views = await viewsOf(claimed);
    } catch (err) {
      held.forEach(senders.release);
      throw err;
    }
    claimed.forEach((d, i) => {
      started++;
      const h = held[i]!;
      senders.sending(h);
      const p: Promise<void> = send(d, views.get(d.id))
        .then((r) => {
          senders.sent(h);
          return record(d, r);
        })
        .catch((err: unknown) => {
          failures++;
          lastFailure = err;
          log.error({ err, delivery: d.id }, 'recording a webhook attempt failed; it is made again when its lease ends');
        })
        .finally(() => {
          inFlight.delete(p);
          senders.release(h);
          pump();
        });
      inFlight.add(p);
    });
  }

  // Fan-out's leases and the claims run one at a time (a round's, and the pumps'), so the rooms they
  // read are the rooms they fill.
  let turn: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(f: () => Promise<T>): Promise<T> => {
    const r = turn.then(f);
    turn = r.catch(() => undefined);
    return r;
  };

  /** Claims for the free senders, each tenant within its room, until no sender is free or nothing more is due. */
  async function fill(): Promise<void> {
    for (;;) {
      const room = senders.free();
      if (room <= 0 || closing) return;
      const claimed = await claim(room);
      await start(claimed);
      if (claimed.length < room) return;
    }
  }

  /** After a send ends: one claim queued behind the current one at most (every ending send asks). */
  let pumpQueued = false;
  function pump() {
    if (pumpQueued || closing) return;
    pumpQueued = true;
    exclusive(async () => {
      pumpQueued = false;
      await fill();
    }).catch((err: unknown) => log.error({ err }, 'claiming webhook deliveries failed; tried again next round'));
  }

  /** Until nothing is in flight and no claim is queued or running. */
  async function settled(): Promise<void> {
    for (;;) {
      await turn;
      if (inFlight.size === 0 && !pumpQueued) return;
      await Promise.allSettled([...inFlight]);
    }
  }

  /**
   * One round: fan out (leasing the new deliveries there is room for, sent at once), then claim due
   * deliveries for the free senders. The loop passes `settle: false`: the round returns once its
   * sends have started, and they go on beside the next rounds. With `settle` (the default, what tests
   * want) it returns when the dispatcher is idle — every send recorded, the claims they made ended —
   * and throws the last failure to record an attempt, if any happened meanwhile.
   */
  async function runOnce({ settle = true } = {}): Promise<{ fannedOut: number; sent: number }> {
    const before = { started, failures };
    let fannedOut: number;
    try {
      fannedOut = await exclusive(async () => {
        const fanned = await fanOut(FAN_OUT_BATCH, senders.free());
        await start(fanned.leased);
        await fill();
        return fanned.events;
      });
    } finally {
      if (settle) await settled(); // the sends it started, even when a claim failed after them
    }
    if (settle && failures > before.failures) throw lastFailure;
    return { fannedOut, sent: started - before.started };
  }

  /** Stops claiming, waits for every send in flight (each ends by its deadline), then closes the connections; once. */
  let closed: Promise<void> | null = null;
  const close = () =>
    (closed ??= (async () => {
      closing = true;
      await turn;
      await Promise.allSettled([...inFlight]);
      await agent.close();
    })());

  return { fanOut, claim, runOnce, close };
}

export type Dispatcher = ReturnType<typeof createDispatcher>;

/**
 * How long the loop waits before its next round. None after a full batch: more is waiting. `busyMs`
 * after a partial one: under a steady stream of writes every round found a few events, so rounds
 * ran back to back (≈ 40 a second at 2,000 writes a second), each a transaction, two statements
 * planned anew and a claim — per write, more PostgreSQL time than the events themselves (bench/README.md).
 * Waiting a little lets the next round take what arrived meanwhile, at the cost of at most `busyMs`
 * more before a webhook goes out (an idle dispatcher already waits `idleMs`). `idleMs` after nothing.
 */
export function nextRoundIn({ fannedOut, sent }: { fannedOut: number; sent: number }, { busyMs, idleMs }: { busyMs: number; idleMs: number }): number {
  if (fannedOut >= FAN_OUT_BATCH || sent >= SEND_BATCH) return 0;
  return fannedOut > 0 || sent > 0 ? busyMs : idleMs;
}

/** Runs rounds while there is work (nextRoundIn), and every `idleMs` otherwise. */
export function startDispatcher(dispatcher: Dispatcher, { idleMs = 250, busyMs = 100, log }: { idleMs?: number; busyMs?: number; log: Log }) {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const loop = () => {
    running = dispatcher
      .runOnce({ settle: false })
      .then((round) => nextRoundIn(round, { busyMs, idleMs }))
      .catch((err) => {
        log.error({ err }, 'webhook dispatch round failed; retrying');
        return idleMs * 4;
      })
      .then((wait) => {
        if (!stopped) timer = setTimeout(loop, wait);
      });
  };
  loop();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
    await dispatcher.close();
  };
}
