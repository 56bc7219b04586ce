// The webhook dispatcher: turns committed events into deliveries (fan-out), then sends due
// deliveries, signed per Standard Webhooks. Each step claims its rows with FOR UPDATE SKIP LOCKED in
// a short transaction and sends outside any transaction, under a lease: any number of dispatchers in
// any number of processes never send one attempt twice; a dispatcher that dies mid-send leaves a
// lease that expires, and the attempt is made again (at least once, same webhook-id).
//
// Sends outlive the round that started them, and no tenant holds more than TENANT_SENDS of a
// dispatcher's SEND_CONCURRENCY senders: a tenant whose receivers hang (up to 25 s a send) holds
// its own deliveries back, never another tenant's (test/webhooks-isolation.test.ts).
import { sql, type Selectable } from 'kysely';
import { Agent, request } from 'undici';
import type { Db, EventsTable, WebhookEndpointsTable } from '../db/database.js';
import type { Keyring } from '../crypto/keyring.js';
import { newId } from '../lib/ids.js';
import { eventViews } from '../modules/events/events.service.js';
import { secretContext, takesEventType } from '../modules/webhooks/webhooks.service.js';
import { signWebhook } from '../modules/webhooks/signature.js';
import { checkTarget, describeSendError, guardedLookup, type TargetPolicy } from '../modules/webhooks/ssrf.js';
import { createAttemptRecorder, type Result } from './attempts.js';
import type { Log } from './every.js';

/** Connecting (5 s), then the answer's headers (15 s), then its body, each bounded: under the lease. */
export const SEND_TIMEOUT_MS = 15_000;
const BODY_TIMEOUT_MS = 5_000;
// Longer than a send can take (5 + 15 + 5 s), short enough that a killed dispatcher's work resumes soon.
const LEASE_SECONDS = 30;
/** Events one round takes off the outbox, and deliveries it sends at most. */
export const FAN_OUT_BATCH = 500;
export const SEND_BATCH = 50;
/**
 * Sends in flight in one dispatcher, and of them one tenant's at most. A tenant's share is what one
 * dispatcher gave any tenant before (10 at once); the rest is room for the others while one tenant's
 * receivers are slow. Per process: n dispatchers give a tenant n shares.
 */
export const SEND_CONCURRENCY = 50;
export const TENANT_SENDS = 10;
/** Delivery rows per INSERT: 7 parameters at most each, under PostgreSQL's 65,535 a statement. */
export const DELIVERIES_PER_INSERT = 5000;

export function createDispatcher({ db, keyring, targets, log }: { db: Db; keyring: Keyring; targets: TargetPolicy; log: Log }) {
  const agent = new Agent({ connect: { lookup: guardedLookup(targets), timeout: 5000 } });
  const record = createAttemptRecorder({ db, log });
  /** Every send in flight, whichever round started it, and how many are each tenant's. */
  const inFlight = new Set<Promise<void>>();
  const tenantSends = new Map<string, number>();
  const roomOf = (tenantId: string) => TENANT_SENDS - (tenantSends.get(tenantId) ?? 0);

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
          .select(['tenant_id', 'id', 'event_types', 'url', 'enabled', 'secret_enc', 'previous_secret_enc', 'previous_secret_expires_at'])
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
        if (leasedTotal >= lease || n >= roomOf(p.event.tenant_id)) return false;
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

  /**
   * Leases due deliveries: the attempt number is taken here, once. No more of a tenant's than its
   * room: a tenant with none left is passed over, and of the rows locked, a tenant's beyond its room
   * are left as they were (their lock ends with the statement).
   */
  async function claim(limit: number) {
    const busy = [...tenantSends.keys()];
    const full = busy.filter((t) => roomOf(t) <= 0);
    const res = await sql<{
      tenant_id: string; id: string; endpoint_id: string; event_id: string; attempts: number;
      endpoint: (Pick<Selectable<WebhookEndpointsTable>, 'id' | 'url' | 'enabled' | 'secret_enc' | 'previous_secret_enc'> & { previous_secret_expires_at: string | null }) | null;
      event: (Omit<Selectable<EventsTable>, 'occurred_at'> & { occurred_at: string }) | null;
    }>`
      update webhook_deliveries d
      set attempts = d.attempts + 1, leased_until = now() + make_interval(secs => ${LEASE_SECONDS})
      from (
        select due.tenant_id, due.id, row_number() over (partition by due.tenant_id order by due.next_attempt_at, due.id) as nth
          from (
            select tenant_id, id, next_attempt_at from webhook_deliveries
            where status = 'pending' and next_attempt_at <= now() and (leased_until is null or leased_until < now())
              and tenant_id <> all(${full}::text[])
            order by next_attempt_at limit ${limit}
            for update skip locked
          ) due
      ) due
      left join unnest(${busy}::text[], ${busy.map(roomOf)}::int[]) as room(tenant_id, n) on room.tenant_id = due.tenant_id
      where d.tenant_id = due.tenant_id and d.id = due.id and due.nth <= coalesce(room.n, ${TENANT_SENDS})
      returning d.tenant_id, d.id, d.endpoint_id, d.event_id, d.attempts,
        (select to_jsonb(w) from webhook_endpoints w where w.tenant_id = d.tenant_id and w.id = d.endpoint_id) as endpoint,
        (select to_jsonb(e) from events e where e.tenant_id = d.tenant_id and e.id = d.event_id) as event`.execute(db);
    // The endpoint and the event come with the claim (one round trip instead of three per delivery).
    return res.rows.map(({ endpoint, event, ...d }) => ({
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
      const views = await eventViews(keyring, tenantId, list.map((d) => d.event as Selectable<EventsTable>));
      list.forEach((d, i) => out.set(d.id, views[i]!));
    }
    return out;
  }

  async function send(d: Delivery, view: View | undefined): Promise<Result> {
    const started = Date.now();
    const { endpoint, event: eventRow } = d;
    if (!endpoint || !eventRow || !view) return { status: null, error: 'endpoint or event no longer exists', retryAfter: null, ms: 0, final: true };
    if (!endpoint.enabled) return { status: null, error: 'endpoint disabled', retryAfter: null, ms: 0, final: true };
    try {
      const url = await checkTarget(endpoint.url, targets);
      const body = JSON.stringify({ id: view.id, type: view.type, timestamp: view.created_at, data: view.data });
      const context = secretContext(d.tenant_id, endpoint.id);
      const secrets = [keyring.openSecret(context, endpoint.secret_enc)];
      if (endpoint.previous_secret_enc && endpoint.previous_secret_expires_at && endpoint.previous_secret_expires_at > new Date()) {
        secrets.push(keyring.openSecret(context, endpoint.previous_secret_enc));
      }
      const now = new Date();
      const signature = secrets.map((s) => signWebhook(s, view.id, now, body)).join(' ');
      // undici's request, not fetch: no Request, Response, Headers or AbortSignal.timeout per delivery
      // (the AbortSignal alone cost ~40 µs of CPU a delivery under the bench). No redirect is followed.
      const res = await request(url, {
        method: 'POST',
        body,
        dispatcher: agent,
        headersTimeout: SEND_TIMEOUT_MS,
        bodyTimeout: BODY_TIMEOUT_MS,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Kyclo-Webhooks/1',
          'webhook-id': view.id,
          'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
          'webhook-signature': signature,
        },
      });
      // The answer's body is not read: at most a little of it is drained so the connection can be reused.
      await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
      const retryAfter = res.headers['retry-after'];
      return { status: res.statusCode, error: null, retryAfter: Array.isArray(retryAfter) ? retryAfter[0]! : retryAfter ?? null, ms: Date.now() - started };
    } catch (err) {
      return { status: null, error: describeSendError(err), retryAfter: null, ms: Date.now() - started };
    }
  }

  /** Starts each send; it counts against its tenant's room until its attempt is recorded. */
  async function start(claimed: Delivery[], onFailure: (err: unknown, d: Delivery) => void): Promise<Array<Promise<void>>> {
    const views = await viewsOf(claimed);
    return claimed.map((d) => {
      tenantSends.set(d.tenant_id, (tenantSends.get(d.tenant_id) ?? 0) + 1);
      const p: Promise<void> = send(d, views.get(d.id))
        .then((r) => record(d, r))
        .catch((err: unknown) => onFailure(err, d))
        .finally(() => {
          inFlight.delete(p);
          const n = (tenantSends.get(d.tenant_id) ?? 1) - 1;
          if (n > 0) tenantSends.set(d.tenant_id, n);
          else tenantSends.delete(d.tenant_id);
        });
      inFlight.add(p);
      return p;
    });
  }

  /**
   * One round: fan out, then start up to `batch` due deliveries while senders are free (claimed in
   * one statement as many as there are free senders; no claim waits its turn, its lease could run
   * out). With `settle` (the default, and what tests want) the round returns when its sends are
   * recorded, and a failure to record one is thrown; the loop passes `settle: false`: its round
   * returns once its sends have started, they go on beside the next rounds (still counted against the
   * senders and their tenants' rooms), and a failure to record is logged, the attempt made again when
   * its lease ends. So a receiver that hangs holds one sender, never a round.
   */
  async function runOnce({ batch = SEND_BATCH, settle = true } = {}): Promise<{ fannedOut: number; sent: number }> {
    const mine: Array<Promise<void>> = [];
    let sent = 0;
    let failure: unknown = null;
    const onFailure = (err: unknown, d: Delivery) => {
      if (settle) failure ??= err;
      else log.error({ err, delivery: d.id }, 'recording a webhook attempt failed; it is made again when its lease ends');
    };
    const begin = async (claimed: Delivery[]) => {
      sent += claimed.length;
      mine.push(...(await start(claimed, onFailure)));
    };
    const fanned = await fanOut(FAN_OUT_BATCH, Math.min(SEND_CONCURRENCY - inFlight.size, batch));
    await begin(fanned.leased);
    while (sent < batch && failure === null) {
      const room = Math.min(SEND_CONCURRENCY - inFlight.size, batch - sent);
      if (room <= 0) {
        await Promise.race(inFlight);
        continue;
      }
      const claimed = await claim(room);
      await begin(claimed);
      if (claimed.length < room) break; // nothing more due, or only for tenants without room
    }
    if (settle) await Promise.all(mine);
    if (failure !== null) throw failure;
    return { fannedOut: fanned.events, sent };
  }

  /** Waits for every send in flight (each is bounded, 25 s at most), then closes the connections; once. */
  let closed: Promise<void> | null = null;
  const close = () =>
    (closed ??= (async () => {
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
