// Per-API-key rate limits: a window of 60 s opened by the key's first request, counted in Redis
// when REDIS_URL is set (shared by every process) and in memory otherwise. If Redis goes away, each
// process falls back to its own counter at once (no 5xx) and returns to the shared one as soon as
// Redis answers again. Keyed on the API key, never on a client address — except for requests
// without a valid key, counted per client address by the key-guessing guard below.
import net from 'node:net';
import { Redis } from 'ioredis';
import type { FastifyInstance } from 'fastify';
import { AppError } from './errors.js';

export const WINDOW_MS = 60_000;
export const DEFAULT_REQUESTS_PER_MINUTE = 6000;

export interface Hit {
  count: number;
  resetMs: number;
}

export interface Limiter {
  /** The in-memory limiter answers at once; the Redis one with a promise. */
  hit(key: string, windowMs: number): Hit | Promise<Hit>;
  /** The window's count so far, without counting (0 when no window is open). */
  peek(key: string): Hit | Promise<Hit>;
  /** Takes back one hit of the open window (a count reserved for what turned out not to count). */
  refund(key: string): void | Promise<void>;
  close(): Promise<void>;
}

export function memoryLimiter(): Limiter {
  const windows = new Map<string, { count: number; resetAt: number }>();
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [k, w] of windows) if (w.resetAt <= now) windows.delete(k);
  }, WINDOW_MS);
  sweep.unref();
  return {
    hit(key, windowMs) {
      const now = Date.now();
      let w = windows.get(key);
      if (!w || w.resetAt <= now) {
        w = { count: 0, resetAt: now + windowMs };
        windows.set(key, w);
      }
      w.count++;
      return { count: w.count, resetMs: w.resetAt - now };
    },
    peek(key) {
      const now = Date.now();
      const w = windows.get(key);
      return w && w.resetAt > now ? { count: w.count, resetMs: w.resetAt - now } : { count: 0, resetMs: 0 };
    },
    refund(key) {
      const w = windows.get(key);
      if (w && w.resetAt > Date.now() && w.count > 0) w.count--;
    },
    close: async () => clearInterval(sweep),
  };
}

// INCR and set the window's expiry on its first hit, atomically; answer the count and time left.
const HIT_SCRIPT = `
local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {c, ttl}`;
const REFUND_SCRIPT = `
local c = redis.call('GET', KEYS[1])
if c and tonumber(c) > 0 then redis.call('DECR', KEYS[1]) end
return 0`;
const PEEK_SCRIPT = `
local c = redis.call('GET', KEYS[1])
if not c then return {0, 0} end
return {tonumber(c), redis.call('PTTL', KEYS[1])}`;

/** Redis first; the local counter whenever Redis does not answer within 250 ms. */
export function redisLimiter(url: string, onState: (shared: boolean) => void = () => undefined): Limiter {
  const local = memoryLimiter();
  const redis = new Redis(url, {
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    commandTimeout: 250,
    retryStrategy: () => 500, // keep trying every half second: the shared limit resumes quickly
  });
  let shared = true;
  const setShared = (s: boolean) => {
    if (s !== shared) onState((shared = s));
  };
  redis.on('ready', () => setShared(true));
  redis.on('error', () => setShared(false));
  redis.on('close', () => setShared(false));
  return {
    async hit(key, windowMs) {
      if (redis.status === 'ready') {
        try {
          const [count, ttl] = (await redis.eval(HIT_SCRIPT, 1, `kyclo:rl:${key}`, windowMs)) as [number, number];
          setShared(true);
          return { count, resetMs: ttl };
        } catch {
          setShared(false);
        }
      }
      return local.hit(key, windowMs);
    },
    async peek(key) {
      if (redis.status === 'ready') {
        try {
          const [count, ttl] = (await redis.eval(PEEK_SCRIPT, 1, `kyclo:rl:${key}`)) as [number, number];
          setShared(true);
          return { count, resetMs: Math.max(0, ttl) };
        } catch {
          setShared(false);
        }
      }
      return local.peek(key);
    },
    async refund(key) {
      if (redis.status === 'ready') {
        try {
          await redis.eval(REFUND_SCRIPT, 1, `kyclo:rl:${key}`);
          return;
        } catch {
          setShared(false);
        }
      }
      local.refund(key);
    },
    async close() {
      redis.disconnect();
      await local.close();
    },
  };
}

export function registerRateLimit(app: FastifyInstance, limiter: Limiter): void {
  // A callback hook: with the in-memory limiter a request is counted without a promise.
  app.addHook('onRequest', (req, reply, done) => {
    if (!req.actor?.keyId) {
      done();
      return;
    }
    const limit = req.actor.requestsPerMinute ?? DEFAULT_REQUESTS_PER_MINUTE;
    const answer = (hit: Hit) => {
      const reset = Math.max(0, Math.ceil(hit.resetMs / 1000));
      reply.header('ratelimit-policy', `${limit};w=${WINDOW_MS / 1000}`);
      reply.header('ratelimit', `limit=${limit}, remaining=${Math.max(0, limit - hit.count)}, reset=${reset}`);
      if (hit.count <= limit) return done();
      done(new AppError(429, 'rate_limit.exceeded', `This API key may make ${limit} requests a minute; retry in ${reset} s.`, {
        headers: { 'retry-after': String(Math.max(1, reset)) },
      }));
    };
    let hit: Hit | Promise<Hit>;
    try {
      hit = limiter.hit(req.actor.keyId, WINDOW_MS);
    } catch (err) {
      done(err as Error);
      return;
    }
    if (hit instanceof Promise) hit.then(answer, done);
    else answer(hit);
  });
  app.addHook('onClose', async () => limiter.close());
}

/** Requests with a missing, malformed, unknown, revoked or expired key one client address may make per window. */
export const AUTH_FAILURES_PER_MINUTE = 30;
/** How long a key that worked from an address stays usable from it while that address is blocked. */
export const KNOWN_GOOD_MS = 3600_000;
const KNOWN_GOOD_MAX = 10_000;

/**
 * Key guessing, limited per client address (req.ip: the socket's address, or X-Forwarded-For only
 * when the operator trusts the proxy). Failures are counted in the shared limiter (Redis when set,
 * so a block holds across processes). Past the limit the address is blocked for the rest of the
 * window: a key not known to work from it is answered 429 *before* it is looked up, so the guesser
 * learns nothing (no 200-or-429 oracle) and costs no database query. A key that already worked from
 * that address (in this process, within the hour) — or that this process holds as valid in its
 * one-second key cache — still works: one broken or hostile client behind a shared NAT or proxy
 * cannot lock out the working clients behind it.
 */
export interface KeyGuessingGuard {
  readonly limit: number;
  /** Counts a failure; a count over the limit is answered 429 instead of 401. */
  fail(ip: string): Hit | Promise<Hit>;
  /** The open window when the address is over its limit (the next unknown key is refused unlooked). */
  blocked(ip: string): Hit | undefined | Promise<Hit | undefined>;
  known(ip: string, keyId: string): boolean;
  remember(ip: string, keyId: string): void;
  /**
   * Takes back a failure counted before a lookup that found a valid key. A lookup of a key not known
   * to work from the address is counted as a failure *before* it is made: counted after, a burst of
   * parallel guesses from one address each saw a count under the limit and all reached the database
   * (300 lookups, and a 200-or-429 answer for a valid key hidden among them). A valid key gets its
   * count back, so valid keys still never count.
   */
  refund(ip: string): void | Promise<void>;
}

/**
 * Who counts as one client address: an IPv4 address (an IPv4-mapped IPv6 one too), or an IPv6 /64 —
 * the block one subscriber is routinely given, in which a guesser could otherwise take a new address
 * for every try.
 */
export function addressBucket(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) return mapped[1]!;
  const bare = ip.split('%')[0]!;
  if (!net.isIPv6(bare)) return ip;
  const [head, tail] = bare.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}

export function keyGuessingGuard(limiter: Limiter, limit = AUTH_FAILURES_PER_MINUTE): KeyGuessingGuard {
  const good = new Map<string, number>();
  const over = (h: Hit) => (h.count >= limit ? h : undefined);
  return {
    limit,
    fail: (ip) => limiter.hit(`authfail:${addressBucket(ip)}`, WINDOW_MS),
    refund: (ip) => limiter.refund(`authfail:${addressBucket(ip)}`),
    blocked(ip) {
      const h = limiter.peek(`authfail:${addressBucket(ip)}`);
      return h instanceof Promise ? h.then(over) : over(h);
    },
    known(ip, keyId) {
      const until = good.get(`${addressBucket(ip)} ${keyId}`);
      return until !== undefined && until > Date.now();
    },
    remember(ip, keyId) {
      if (good.size >= KNOWN_GOOD_MAX) good.clear();
      good.set(`${addressBucket(ip)} ${keyId}`, Date.now() + KNOWN_GOOD_MS);
    },
  };
}

export const tooManyFailures = (h: Hit, limit: number) => {
  const reset = Math.max(1, Math.ceil(h.resetMs / 1000));
  return new AppError(
    429, 'auth.too_many_failures',
    `More than ${limit} requests without a valid API key came from this address within a minute; retry in ${reset} s.`,
    { headers: { 'retry-after': String(reset) } },
  );
};
