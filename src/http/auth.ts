// Authentication and the role check, in one onRequest hook so a caller without a valid key learns
// nothing (401) before any body parsing or validation. Every /v1 route must name its permission:
// a route without one fails at boot, so no route can be public by accident.
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Db } from '../db/database.js';
import { AppError } from './errors.js';
import { roleAllows, type Permission, type Role } from '../modules/api-keys/roles.js';
import * as keysRepo from '../modules/api-keys/api-keys.repo.js';
import type { Actor } from '../modules/audit/actor.js';

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

export function registerAuth(app: FastifyInstance, db: Db): void {
  const touched = new Map<string, number>();

  app.addHook('onRoute', (route) => {
    const url = route.url ?? '';
    if (!url.startsWith('/v1')) return;
    const permission = (route.config as { permission?: string } | undefined)?.permission;
    if (!permission) throw new Error(`route ${String(route.method)} ${url} declares no permission`);
  });

  app.decorateRequest('actor', null as unknown as Actor);

  /** Lets the request in as the key's actor, or refuses it (401/403). */
  function admit(req: FastifyRequest, row: keysRepo.ApiKeyRow | undefined, now: number, permission: Permission): void {
    if (!row) {
      throw new AppError(401, 'auth.invalid_key', 'The API key is not valid.', { headers: { 'www-authenticate': 'Bearer' } });
    }
    if (row.revoked_at || (row.expires_at && row.expires_at.getTime() <= now)) {
      throw new AppError(401, 'auth.key_revoked', 'The API key has been revoked or has expired.', {
        headers: { 'www-authenticate': 'Bearer' },
      });
    }
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

  /** Nothing when decided from the key cache (most requests), else the lookup to wait for. */
  function authenticate(req: FastifyRequest): Promise<void> | undefined {
    const permission = req.routeOptions.config?.permission;
    if (!permission || permission === 'public') return undefined;
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) {
      throw new AppError(401, 'auth.missing_key', 'Send an API key as Authorization: Bearer <key>.', {
        headers: { 'www-authenticate': 'Bearer' },
      });
    }
    const key = match[1]!;
    const now = Date.now();
    if (!KEY_FORMAT.test(key)) {
      admit(req, undefined, now, permission);
      return undefined;
    }
    const hash = hashKey(key);
    const cached = keysRepo.peekCachedKey(hash, now);
    if (cached) {
      admit(req, cached, now, permission);
      return undefined;
    }
    return keysRepo.findByHashCached(db, hash, now).then((row) => admit(req, row, now, permission));
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
