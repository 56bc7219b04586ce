// Per-API-key rate limits: a window of 60 s opened by the key's first request, counted in Redis
// when REDIS_URL is set (shared by every process) and in memory otherwise. If Redis goes away, each
// process falls back to its own counter at once (no 5xx) and returns to the shared one as soon as
// Redis answers again. Keyed on the API key, never on a client address.
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
