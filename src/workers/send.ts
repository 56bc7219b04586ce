// One webhook attempt on the wire: the payload signed per Standard Webhooks (with the previous secret
// too during a rotation), POSTed through undici, the answer's status kept and its body drained.
//
// Every send ends by its deadline (SEND_DEADLINE_MS), whatever the receiver does. undici's own
// timeouts are per phase and restart: the header timeout on every 1xx answer, the body timeout on
// every chunk, so a receiver answering `102 Processing` every few seconds, or trickling its body a
// byte at a time, kept a send open for ever — past its 30 s lease (then claimed and sent again by
// another dispatcher) and holding its sender. The deadline covers the name lookup of the target
// check too (`unlessAborted`). One timer per sender sweeps the deadlines: an
// AbortSignal.timeout per delivery cost ≈ 40 µs of CPU under the bench; an AbortController ≈ 1.
import type { Selectable } from 'kysely';
import type { Agent } from 'undici';
import { request } from 'undici';
import type { WebhookEndpointsTable } from '../db/database.js';
import type { Keyring } from '../crypto/keyring.js';
import type { eventViews } from '../modules/events/events.service.js';
import { secretContext } from '../modules/webhooks/webhooks.service.js';
import { signWebhook } from '../modules/webhooks/signature.js';
import { checkTarget, describeSendError, type TargetPolicy } from '../modules/webhooks/ssrf.js';
import type { Result } from './attempts.js';

/** The answer's headers (15 s after the request), then its body, each bounded; and the whole send. */
export const SEND_TIMEOUT_MS = 15_000;
const BODY_TIMEOUT_MS = 5_000;
/** No send lasts longer, 1xx answers and a trickled body included: under the 30 s lease. */
export const SEND_DEADLINE_MS = 25_000;

/** What a send reads of its endpoint, and of the event's view (eventViews). */
export type Endpoint = Pick<Selectable<WebhookEndpointsTable>, 'id' | 'url' | 'secret_enc' | 'previous_secret_enc' | 'previous_secret_expires_at'>;
export type Payload = Pick<Awaited<ReturnType<typeof eventViews>>[number], 'id' | 'type' | 'created_at' | 'data'>;

/**
 * The target check resolves the endpoint's host name: the send stops waiting for it at the deadline,
 * which also cancels the lookup (ssrf.ts resolveHost). No request has started, so nothing is sent twice.
 */
function unlessAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export function createSender({ agent, keyring, targets, deadlineMs = SEND_DEADLINE_MS }: { agent: Agent; keyring: Keyring; targets: TargetPolicy; deadlineMs?: number }) {
  const deadlines = new Map<AbortController, number>();
  let sweeper: NodeJS.Timeout | null = null;
  const sweep = () => {
    const now = Date.now();
    for (const [c, at] of deadlines) {
      if (at <= now) {
        deadlines.delete(c);
        c.abort();
      }
    }
    if (deadlines.size === 0 && sweeper) {
      clearInterval(sweeper);
      sweeper = null;
    }
  };

  /** Sends `view` to `endpoint` for tenant `tenantId`; never throws. */
  async function send(tenantId: string, endpoint: Endpoint, view: Payload): Promise<Result> {
    const started = Date.now();
    const deadline = new AbortController();
    deadlines.set(deadline, started + deadlineMs);
    sweeper ??= setInterval(sweep, Math.min(1000, Math.max(10, deadlineMs / 10))).unref();
    try {
      const url = await unlessAborted(checkTarget(endpoint.url, targets, deadline.signal), deadline.signal);
      const body = JSON.stringify({ id: view.id, type: view.type, timestamp: view.created_at, data: view.data });
      const context = secretContext(tenantId, endpoint.id);
      const secrets = [keyring.openSecret(context, endpoint.secret_enc)];
      if (endpoint.previous_secret_enc && endpoint.previous_secret_expires_at && endpoint.previous_secret_expires_at > new Date()) {
        secrets.push(keyring.openSecret(context, endpoint.previous_secret_enc));
      }
      const now = new Date();
      const signature = secrets.map((s) => signWebhook(s, view.id, now, body)).join(' ');
      // undici's request, not fetch: no Request, Response or Headers per delivery. No redirect is followed.
      const res = await request(url, {
        method: 'POST',
        body,
        dispatcher: agent,
        signal: deadline.signal,
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
      // The answer's body is not read: at most a little of it is drained so the connection can be
      // reused, until the deadline (the request's signal ends its body too; the status is the answer).
      await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
      const retryAfter = res.headers['retry-after'];
      return { status: res.statusCode, error: null, retryAfter: Array.isArray(retryAfter) ? retryAfter[0]! : retryAfter ?? null, ms: Date.now() - started };
    } catch (err) {
      const error = deadline.signal.aborted ? `no complete answer within ${deadlineMs / 1000} s` : describeSendError(err);
      return { status: null, error, retryAfter: null, ms: Date.now() - started };
    } finally {
      deadlines.delete(deadline);
    }
  }

  return send;
}
