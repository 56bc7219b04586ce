// Upload slots: how many uploads may be read at once, per tenant and per process. A tenant that
// fills its own slots (slow sockets, a burst) waits in its own line: the process-wide slots it
// cannot take stay free for other tenants. A wait has a deadline; past it the upload is refused
// with Retry-After rather than queued without end. No I/O, no Fastify: the hooks apply these.
import { AppError } from '../../http/errors.js';

export interface UploadLimits {
  /** Uploads one tenant may have in flight at once in this process. */
  slotsPerTenant: number;
  /** Uploads in flight at once in this process, all tenants together. */
  slots: number;
  /** How long an upload may wait for a slot before it is refused (429 or 503). */
  slotWaitMs: number;
  /** How long the body may take to arrive once the upload has its slot (else 408). */
  readTimeoutMs: number;
}

// Defaults: four uploads per tenant and 32 per process stream in a few MB each; five seconds to
// wait and twenty to send the body stay inside the server's 30-second request timeout.
export const DEFAULT_UPLOAD_LIMITS: UploadLimits = { slotsPerTenant: 4, slots: 32, slotWaitMs: 5_000, readTimeoutMs: 20_000 };

/**
 * A JSON upload is held whole in the V8 heap several times over (body text, parsed string, decoded
 * file, up to ~100 MB for two 10 MiB sides): at most two are read at once per process, and at most
 * one per tenant, so one tenant's slow JSON uploads can never hold both. Multipart streams instead.
 */
export const JSON_LIMITS = { slotsPerTenant: 1, slots: 2 };

export type Release = () => void;

// The body is left unread: the connection closes rather than read the rest only to discard it.
export const tooManyUploads = (retryAfter: number) =>
  new AppError(429, 'document.too_many_uploads', 'This tenant already has as many uploads in flight as it may; retry when one finishes.', {
    headers: { 'retry-after': String(retryAfter), connection: 'close' },
  });
export const uploadsBusy = (retryAfter: number) =>
  new AppError(503, 'document.uploads_busy', 'The server is reading as many uploads as it may; retry shortly.', {
    headers: { 'retry-after': String(retryAfter), connection: 'close' },
  });

interface Waiter {
  tenant: string;
  grant(release: Release): void;
}

export function slotPool({ slotsPerTenant, slots }: { slotsPerTenant: number; slots: number }) {
  let inUse = 0;
  const held = new Map<string, number>();
  // One line for everyone, served in order, skipping waiters whose own tenant is still full.
  const waiting: Waiter[] = [];

  const take = (tenant: string): Release | null => {
    const mine = held.get(tenant) ?? 0;
    if (inUse >= slots || mine >= slotsPerTenant) return null;
    inUse++;
    held.set(tenant, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      inUse--;
      const left = held.get(tenant)! - 1;
      if (left) held.set(tenant, left);
      else held.delete(tenant);
      for (let i = 0; i < waiting.length; i++) {
        const next = take(waiting[i]!.tenant);
        if (next) {
          waiting.splice(i, 1)[0]!.grant(next);
          return;
        }
      }
    };
  };

  return {
    /**
     * A slot for `tenant`, within `waitMs`. Refused with 429 when the tenant's own slots are what
     * stayed full, 503 when the process's were. `signal` withdraws the wait (the client went away).
     */
    acquire(tenant: string, waitMs: number, signal?: AbortSignal): Promise<Release> {
      if (signal?.aborted) return Promise.reject(signal.reason);
      const now = take(tenant);
      if (now) return Promise.resolve(now);
      return new Promise<Release>((resolve, reject) => {
        const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
        const leave = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          const i = waiting.indexOf(waiter);
          if (i >= 0) waiting.splice(i, 1);
        };
        const waiter: Waiter = {
          tenant,
          grant: (release) => {
            leave();
            resolve(release);
          },
        };
        const timer = setTimeout(() => {
          leave();
          reject((held.get(tenant) ?? 0) >= slotsPerTenant ? tooManyUploads(retryAfter) : uploadsBusy(retryAfter));
        }, waitMs);
        const onAbort = () => {
          leave();
          reject(signal!.reason);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        waiting.push(waiter);
      });
    },
    /** In use now, for metrics and tests. */
    stats: () => ({ inUse, waiting: waiting.length, tenants: held.size }),
  };
}

export type SlotPool = ReturnType<typeof slotPool>;
