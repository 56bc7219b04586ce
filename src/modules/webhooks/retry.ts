// When to try a failed delivery again: about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h
// (about three days in all), each with ±10 % jitter so a recovering receiver is not hit by a wave;
// a Retry-After from the receiver (429/503) is honoured when it asks for longer. Pure.
export const RETRY_DELAYS_SECONDS = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400] as const;
export const MAX_ATTEMPTS = RETRY_DELAYS_SECONDS.length + 1;
/** An endpoint failing without a single success for this long is disabled. */
export const DISABLE_AFTER_MS = 5 * 86_400_000;

/** Seconds before attempt `attempts + 1`, or null when `attempts` was the last one. */
export function nextDelaySeconds(attempts: number, retryAfter: string | null, random = Math.random): number | null {
  const base = RETRY_DELAYS_SECONDS[attempts - 1];
  if (base === undefined) return null;
  const jittered = base * (0.9 + 0.2 * random());
  return Math.max(jittered, Math.min(parseRetryAfter(retryAfter) ?? 0, 86400));
}

/** Retry-After as seconds (delta-seconds or an HTTP date); null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, (at - now) / 1000);
}
