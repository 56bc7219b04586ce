// A fetch that retries what is safe to retry: 429 and 503 (the request was not carried out), after
// the server's Retry-After, and network failures of requests that cannot apply twice (reads, and
// writes carrying an Idempotency-Key). Bounded both in attempts and in the wait it accepts.
export interface RetryOptions {
  /** Retries after the first attempt (default 3). */
  retries?: number;
  /** The longest single wait accepted (default 30 s): a longer Retry-After answers at once. */
  maxDelayMs?: number;
  /** The wait when the server gives no Retry-After (default 500 ms, doubled per retry). */
  baseDelayMs?: number;
}

const RETRIED_STATUSES = new Set([429, 503]);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Retry-After as seconds or as an HTTP date; null when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | null {
  if (value === null || value.trim() === '') return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

const replayable = (req: Request) => ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'].includes(req.method) || req.headers.has('idempotency-key');

export function retryingFetch(base: (req: Request) => Promise<Response>, options: RetryOptions = {}) {
  const retries = options.retries ?? 3;
  const maxDelay = options.maxDelayMs ?? 30_000;
  const baseDelay = options.baseDelayMs ?? 500;
  return async (request: Request): Promise<Response> => {
    for (let attempt = 0; ; attempt++) {
      let response: Response | undefined;
      try {
        // A fresh copy each time: a body can be read once.
        response = await base(request.clone());
      } catch (err) {
        if (attempt >= retries || !replayable(request)) throw err;
        await sleep(baseDelay * 2 ** attempt);
        continue;
      }
      if (!RETRIED_STATUSES.has(response.status) || attempt >= retries) return response;
      const wait = retryAfterMs(response.headers.get('retry-after')) ?? baseDelay * 2 ** attempt;
      if (wait > maxDelay) return response;
      await response.body?.cancel();
      await sleep(wait);
    }
  };
}
