// A fetch that retries what is safe to retry, after the server's Retry-After: a 429 (refused before
// anything ran), a 409 carrying Retry-After (a write rolled back by a concurrent one, or the same
// Idempotency-Key's first request still running), and — only for requests that cannot apply twice
// (reads, PUT, DELETE, and writes carrying an Idempotency-Key) — a 503 and network failures: the
// server answers 503 when its database connection dies, which may be after the COMMIT, so a PATCH
// resent then could apply twice or answer 412 against its own change. A 503
// document.uploads_busy refused the upload before reading it: retried whatever the request. Bounded
// both in attempts and in the wait it accepts.
export interface RetryOptions {
  /** Retries after the first attempt (default 3). */
  retries?: number;
  /** The longest single wait accepted (default 30 s): a longer Retry-After answers at once. */
  maxDelayMs?: number;
  /** The wait when the server gives no Retry-After (default 500 ms, doubled per retry). */
  baseDelayMs?: number;
}

const replayable = (req: Request) => ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'].includes(req.method) || req.headers.has('idempotency-key');
/** Whether a status is worth a retry of this request. */
async function retried(res: Response, req: Request): Promise<boolean> {
  if (res.status === 429) return true;
  if (res.status === 409) return res.headers.has('retry-after');
  if (res.status !== 503) return false;
  if (replayable(req)) return true;
  // A multipart upload carries no Idempotency-Key, but this 503 refused it before anything ran.
  const problem = (await res.clone().json().catch(() => null)) as { code?: unknown } | null;
  return problem?.code === 'document.uploads_busy';
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Retry-After as seconds or as an HTTP date; null when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | null {
  if (value === null || value.trim() === '') return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

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
      if (attempt >= retries || !(await retried(response, request))) return response;
      const wait = retryAfterMs(response.headers.get('retry-after')) ?? baseDelay * 2 ** attempt;
      if (wait > maxDelay) return response;
      await response.body?.cancel();
      await sleep(wait);
    }
  };
}
