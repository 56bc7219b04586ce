// Authentication and the role check, in one onRequest hook so a caller without a valid key learns
// nothing (401) before any body parsing or validation; an address that keeps failing is limited
// (429, the key-guessing guard of rate-limit.ts). Every /v1 route must name its permission:
// a route without one fails at boot, so no route can be public by accident.
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Db } from '../db/database.js';
import { AppError } from './errors.js';
import { roleAllows, type Permission, type Role } from '../modules/api-keys/roles.js';
import * as keysRepo from '../modules/api-keys/api-keys.repo.js';
import type { Actor } from '../modules/audit/actor.js';
import { tooManyFailures, type Hit, type KeyGuessingGuard } from './rate-limit.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    permission?: Permission | 'public';
  }
  interface FastifyRequest {
    actor: Actor;
  }
}

// crypto.hash is one call instead of a Hash object per request (Node ≥ 20.12; engines asks 20.19).
export const hashKey = (key: string): Buffer => crypto.hash('sha256', key, 'buffer');

const KEY_FORMAT = /^kyclo_(live|test)_[A-Za-z0-9]{20,64}$/;

// last_used_at is kept to the minute: a write per request would double the cost of every read.
const TOUCH_INTERVAL_MS = 60_000;

const refusal = (code: 'auth.missing_key' | 'auth.invalid_key' | 'auth.key_revoked') =>
  new AppError(401, code, {
    'auth.missing_key': 'Send an API key as Authorization: Bearer <key>.',
    'auth.invalid_key': 'The API key is not valid.',
    'auth.key_revoked': 'The API key has been revoked or has expired.',
  }[code], { headers: { 'www-authenticate': 'Bearer' } });

/** Why a looked-up key cannot authenticate, or null when it can. */
function denial(row: keysRepo.ApiKeyRow | undefined, now: number): AppError | null {
  if (!row) return refusal('auth.invalid_key');
  if (row.revoked_at || (row.expires_at && row.expires_at.getTime() <= now)) return refusal('auth.key_revoked');
  return null;
}

/** `guard`: key guessing limited per client address (rate-limit.ts); null turns it off (tests). */
export function registerAuth(app: FastifyInstance, db: Db, guard: KeyGuessingGuard | null = null): void {
  const touched = new Map<string, number>();

  app.addHook('onRoute', (route) => {
    const url = route.url ?? '';
    if (!url.startsWith('/v1')) return;
    const permission = (route.config as { permission?: string } | undefined)?.permission;
    if (!permission) throw new Error(`route ${String(route.method)} ${url} declares no permission`);
  });

  app.decorateRequest('actor', null as unknown as Actor);

  /** Lets a valid key's request in as its actor, or refuses it (403) when its role may not do this. */
  function admit(req: FastifyRequest, row: keysRepo.ApiKeyRow, now: number, permission: Permission): void {
    const role = row.role as Role;
    req.actor = {
      type: 'api_key', tenantId: row.tenant_id, keyId: row.id, role, requestId: req.id, ip: req.ip,
      ...(row.requests_per_minute ? { requestsPerMinute: row.requests_per_minute } : {}),
    };
    if (!roleAllows(role, permission)) {
      throw new AppError(403, 'auth.forbidden', `A ${role} key cannot do this (${permission}).`);
    }
    const last = touched.get(row.id) ?? row.last_used_at?.getTime() ?? 0;
    if (now - last > TOUCH_INTERVAL_MS) {
      touched.set(row.id, now);
      keysRepo.touch(db, row.tenant_id, row.id, new Date(now)).catch((err) => req.log.warn({ err }, 'last_used_at not updated'));
    }
  }

  /** 401, or 429 once the address's count `h` is over the failure limit. */
  function decide(req: FastifyRequest, err: AppError, h: Hit, limit: number): never {
    if (h.count <= limit) throw err;
    if (h.count === limit + 1) req.log.warn({ ip: req.ip, limit }, 'API key failures over the limit: unknown keys from this address refused until the window ends');
    throw tooManyFailures(h, limit);
  }

  /** Refuses a request without a valid key, counting it: 401, or 429 once its address is over the failure limit. */
  function refuse(req: FastifyRequest, err: AppError): Promise<never> {
    if (!guard) throw err;
    const hit = guard.fail(req.ip);
    if (hit instanceof Promise) return hit.then((h) => decide(req, err, h, guard.limit));
    return decide(req, err, hit, guard.limit);
  }

  // Lookups in flight, by address and key: requests with a key already being looked up for their
  // address wait for that lookup instead of making (and counting) their own. A platform's burst with
  // its one key into a process that has not seen it yet is one lookup, counted once and given back.
  // The entry is made before anything is awaited: made after the count (a Redis round trip), every
  // request of the burst that arrived meanwhile counted its own, and a burst of 333 into a fresh
  // process went over the failure limit and was refused 429 (test/multi-process.test.ts, now and then).
  const inflight = new Map<string, Promise<Lookup>>();
  type Lookup = { row: keysRepo.ApiKeyRow | undefined; counted: Hit | null };

  /** Counts the lookup as a failure of the address when it must be, looks the key up, gives the count back for a valid key. */
  async function countedLookup(req: FastifyRequest, hash: Buffer, now: number, counts: boolean): Promise<Lookup> {
    const counted = guard && counts ? await guard.fail(req.ip) : null;
    if (counted && guard && counted.count > guard.limit) return { row: undefined, counted };
    let row: keysRepo.ApiKeyRow | undefined;
    try {
      row = await keysRepo.findByHashCached(db, hash, now);
    } catch (err) {
      // The lookup failed (the database): not the key's fault, so not a failure of the address.
      if (counted && guard) await guard.refund(req.ip);
      throw err;
    }
    if (counted && guard && !denial(row, now)) await guard.refund(req.ip);
    return { row, counted };
  }

  /**
   * The key is not in the cache: refuse it unlooked if its address is blocked, else look it up. A
   * lookup of a key not known to work from the address is counted as a failure before it is made
   * (atomically: parallel guesses cannot all pass under the limit) and given back if the key is valid.
   */
  async function lookup(req: FastifyRequest, hash: Buffer, now: number, permission: Permission): Promise<void> {
    const keyId = hash.toString('base64');
    const unknown = guard !== null && !guard.known(req.ip, keyId);
    if (guard && unknown) {
      const blocked = await guard.blocked(req.ip);
      if (blocked) throw tooManyFailures(blocked, guard.limit);
    }
    // A lookup started before a revocation this process saw is not joined: it may read the key as valid.
    const shared = `${keysRepo.revocationEpoch()} ${req.ip} ${keyId}`;
    let pending = inflight.get(shared);
    if (!pending) {
      const started = countedLookup(req, hash, now, unknown);
      pending = started;
      inflight.set(shared, started);
      void started.finally(() => inflight.delete(shared)).catch(() => undefined);
    }
    // Over the limit, countedLookup made no lookup: no row, so auth.invalid_key decided as 429 below.
    const { row, counted } = await pending;
    const refused = denial(row, now);
    if (refused) return counted && guard ? decide(req, refused, counted, guard.limit) : refuse(req, refused);
    guard?.remember(req.ip, keyId);
    admit(req, row!, now, permission);
  }

  /** Nothing when decided from the key cache (most requests), else the lookup to wait for. */
  function authenticate(req: FastifyRequest): Promise<void> | undefined {
    const permission = req.routeOptions.config?.permission;
    if (!permission || permission === 'public') return undefined;
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) return refuse(req, refusal('auth.missing_key'));
    const key = match[1]!;
    const now = Date.now();
    if (!KEY_FORMAT.test(key)) return refuse(req, refusal('auth.invalid_key'));
    const hash = hashKey(key);
    const cached = keysRepo.peekCachedKey(hash, now);
    if (!cached) return lookup(req, hash, now, permission);
    // Only valid keys are cached, but one may have expired since.
    const refused = denial(cached, now);
    if (refused) return refuse(req, refused);
    admit(req, cached, now, permission);
    return undefined;
  }

  // A callback hook: a request whose key is cached is admitted without a promise or a microtask.
  app.addHook('onRequest', (req, _reply, done) => {
    let pending: Promise<void> | undefined;
    try {
      pending = authenticate(req);
    } catch (err) {
      done(err as Error);
      return;
    }
    if (pending) pending.then(() => done(), done);
    else done();
  });
}
