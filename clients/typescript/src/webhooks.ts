// Verifying what Kyclo sends: Standard Webhooks signatures (webhook-id, webhook-timestamp,
// webhook-signature; two signatures during a secret rotation), then the body as a typed event.
import { Webhook } from 'standardwebhooks';
import type { components } from './schema.js';

/** Every body a receiver can get; switch on `type` to narrow `data`. */
export type WebhookEvent = components['schemas']['WebhookPayload'];
export type WebhookEventType = WebhookEvent['type'];
export type WebhookEventOf<T extends WebhookEventType> = Extract<WebhookEvent, { type: T }>;

type Headers_ = Headers | Record<string, string | string[] | undefined>;

function plainHeaders(h: Headers_): Record<string, string> {
  if (typeof (h as Headers).forEach === 'function' && typeof (h as Headers).get === 'function') {
    const out: Record<string, string> = {};
    (h as Headers).forEach((v, k) => (out[k] = v));
    return out;
  }
  return Object.fromEntries(
    Object.entries(h as Record<string, string | string[] | undefined>)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(', ') : String(v)]),
  );
}

export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError';
}

/**
 * `verify(rawBody, headers)` checks the signature and the timestamp (±5 minutes) against the
 * endpoint's secret (`whsec_…`) and returns the event; anything else throws
 * WebhookVerificationError. Pass the raw body as received, not a re-serialised object.
 */
export function createWebhookVerifier(secret: string) {
  const webhook = new Webhook(secret);
  return {
    verify(rawBody: string | Uint8Array, headers: Headers_): WebhookEvent {
      let event: unknown;
      try {
        event = webhook.verify(typeof rawBody === 'string' ? rawBody : new TextDecoder().decode(rawBody), plainHeaders(headers));
      } catch (err) {
        throw new WebhookVerificationError((err as Error).message);
      }
      const e = event as Partial<WebhookEvent> | null;
      if (!e || typeof e.id !== 'string' || typeof e.type !== 'string' || typeof e.data !== 'object') {
        throw new WebhookVerificationError('The signed body is not a Kyclo event.');
      }
      return e as WebhookEvent;
    },
  };
}
