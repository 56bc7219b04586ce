// Idempotency-Key on every POST: the first completed response is stored (status, body, Location,
// ETag) for 24 hours and replayed byte for byte; the same key with another body is a 422; while the
// first request runs, a 409. Keys are scoped to the API key that sent them. A 5xx stores nothing, so
// the request can be retried. The key is claimed before validation, so a 400 is replayed too.
// Stored bodies are sealed by the master key; a response that shows a secret once (a new API key, a
// webhook secret) is never stored: its replay is a 409 pointing at the resource.
//
// Two facts about a claim are written inside the request's own write transaction, by the audit
// trigger of migrations 0011/0014 (every write records an audit entry, which carries the claim's
// nonce, drawn here per claim):
// - that the change committed, and its target. A process killed after the commit and before the
//   response was stored leaves a claim marked committed: the retry answers the resource the change
//   made (never runs the write again), even before the claim would count as abandoned;
// - every user whose audit entries the request wrote. With the user named by the URL and every user
//   id in the response, they are the stored response's subjects: erasing any of them deletes it.
import crypto from 'node:crypto';
import { sql } from 'kysely';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../db/database.js';
import { canonicalJson } from '../lib/canonical-json.js';
import { AppError } from './errors.js';
import type { Keyring } from '../crypto/keyring.js';

export const IDEMPOTENCY_TTL_HOURS = 24;
export const MAX_KEY_LENGTH = 255;
/** An in-progress claim older than this, with no committed change, belongs to a request that died with its process. */
const ABANDONED_AFTER_SECONDS = 60;
const REPLAYED_HEADERS = ['location', 'etag', 'content-type'] as const;
const USER_ID = /usr_[0-9A-Z]{26}/g;

/**
 * Test-only: the process kills itself (SIGKILL) after the write committed and before its response
 * is stored, the exact window the commit marker closes. Read once at start; ignored in production.
 */
const CRASH_AFTER_COMMIT = process.env.KYCLO_TEST_CRASH_AFTER_COMMIT === '1' && process.env.NODE_ENV !== 'production';

declare module 'fastify' {
  interface FastifyRequest {
    /** The claim this request holds: its row is this claim's only while `claim_id` is still this one. */
    idempotency: { apiKeyId: string; key: string; claimId: string } | null;
  }
  interface FastifyContextConfig {
    /** `secret`: the response shows a secret once and must not be stored. */
    idempotentResponse?: 'secret';
  }
}

/**
 * How a committed change whose response was lost is answered: by reading what it made, with the
 * status the route answers on success. A route absent here answers 409 idempotency.response_lost
 * (the change is applied; the caller reads it) rather than running the write a second time.
 */
const RECOVERY: Record<string, { status: number; read: (target: { type: string; id: string }) => string | null; location?: boolean }> = {
  '/v1/users': { status: 201, read: (t) => (t.type === 'user' ? `/v1/users/${t.id}` : null), location: true },
  '/v1/users/:id/legal-hold': { status: 200, read: (t) => (t.type === 'user' ? `/v1/users/${t.id}` : null) },
  '/v1/change-requests/:id/approve': { status: 200, read: (t) => (t.type === 'change_request' ? `/v1/change-requests/${t.id}` : null) },
  '/v1/change-requests/:id/reject': { status: 200, read: (t) => (t.type === 'change_request' ? `/v1/change-requests/${t.id}` : null) },
};

const sealContext = (apiKeyId: string, key: string) => `idempotency:${apiKeyId}:${key}`;

/** Users a response speaks of besides those the trigger linked: the URL's user and every user id in the body. */
function subjectsOf(req: FastifyRequest, payload: string): string[] {
  const id = (req.params as { id?: string } | undefined)?.id;
  const found = new Set(payload.match(USER_ID) ?? []);
  if (id?.startsWith('usr_')) found.add(id);
  return [...found];
}

// A keyed hash: a plain SHA-256 of a body holding a 9-digit SSN could be brute-forced from a dump.
// A file sent as the body (an import) is hashed as bytes: as canonical JSON a Buffer is an array of
// numbers, several times the file's size in memory.
const bodyText = (body: unknown) => (Buffer.isBuffer(body) ? `bytes:${crypto.createHash('sha256').update(body).digest('hex')}` : canonicalJson(body ?? null));
const hashOf = (req: FastifyRequest, keyring: Keyring) => keyring.mac('idempotency', `${req.method} ${req.url}\n${bodyText(req.body)}`);

export function registerIdempotency(app: FastifyInstance, db: Db, keyring: Keyring): void {
  app.decorateRequest('idempotency', null);

  // Matched by the claim too: a request slow past ABANDONED_AFTER_SECONDS had its claim taken over,
  // and its late answer must not complete (nor, on a 5xx, delete) the newer claim's row, while that
  // request still runs: a delete let a third request claim the key and run the write again.
  async function store(held: { apiKeyId: string; key: string; claimId: string | null }, status: number, headers: Record<string, string>, body: string | null, subjects: string[]) {
    const { apiKeyId, key } = held;
    await db
      .updateTable('idempotency_keys')
      .set({
        state: 'completed', response_status: status, response_headers: JSON.stringify(headers),
        response_body_enc: body === null ? null : keyring.sealSecret(sealContext(apiKeyId, key), body),
        subject_user_ids: sql<string[]>`array(select distinct unnest(subject_user_ids || ${subjects}::text[]))`,
      })
      .where('api_key_id', '=', apiKeyId).where('key', '=', key).where(sql<boolean>`claim_id is not distinct from ${held.claimId}`)
      .execute();
  }

  /** The change committed but its response was never stored: answer what it made, and keep that answer. */
  async function recover(req: FastifyRequest, reply: FastifyReply, held: { apiKeyId: string; key: string; claimId: string | null }, target: { type: string | null; id: string | null }) {
    const how = RECOVERY[req.routeOptions.url ?? ''];
    const path = how && target.type && target.id ? how.read({ type: target.type, id: target.id }) : null;
    const read = path
      ? await app.inject({ method: 'GET', url: path, headers: { authorization: req.headers.authorization ?? '', 'x-request-id': req.id } })
      : null;
    if (!how || !path || !read || read.statusCode !== 200) {
      throw new AppError(409, 'idempotency.response_lost', 'This request was applied, but its response was lost when the process handling it stopped; read the resource instead of sending it again.', {
        target: target.type && target.id ? { type: target.type, id: target.id } : null,
      });
    }
    const headers: Record<string, string> = {};
    for (const h of REPLAYED_HEADERS) if (read.headers[h] !== undefined) headers[h] = String(read.headers[h]);
    if (how.location) headers.location = path;
    await store(held, how.status, headers, read.body, subjectsOf(req, read.body));
    reply.code(how.status).headers({ ...headers, 'idempotent-replayed': 'true' });
    return reply.send(read.body);
  }

  // Only POST routes carry the two hooks: a GET or a PATCH, which never honour the header, pays no
  // promise for them. Placed as the global hooks were: the claim before the route's own
  // preValidation (a body left out is hashed as sent), the store after the app's own onSend.
  app.addHook('onRoute', (route) => {
    if (![route.method].flat().includes('POST')) return;
    route.preValidation = [claim, ...(route.preValidation ? [route.preValidation].flat() : [])];
    route.onSend = [storeResponse, ...(route.onSend ? [route.onSend].flat() : [])];
  });

  async function claim(req: FastifyRequest, reply: FastifyReply) {
    const header = req.headers['idempotency-key'];
    if (req.method !== 'POST' || header === undefined || !req.actor?.keyId) return;
    const key = Array.isArray(header) ? header[0]! : header;
    if (key.length === 0 || key.length > MAX_KEY_LENGTH || !/^[\x21-\x7e]+$/.test(key)) {
      throw new AppError(400, 'idempotency.key_invalid', `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} printable ASCII characters.`, {
        errors: [{ field: 'Idempotency-Key', code: 'invalid', message: `1 to ${MAX_KEY_LENGTH} printable ASCII characters` }],
      });
    }
    // The hash needs the whole request before the handler runs; a multipart stream is read later.
    if (req.headers['content-type']?.toLowerCase().trimStart().startsWith('multipart/')) {
      throw new AppError(400, 'idempotency.not_supported', 'Idempotency-Key is not supported with multipart uploads; send the file as a data URI in JSON to make the upload idempotent.', {
        errors: [{ field: 'Idempotency-Key', code: 'not_supported', message: 'Not with multipart/form-data' }],
      });
    }
    const apiKeyId = req.actor.keyId;
    const hash = hashOf(req, keyring);
    // Not the request id: a client may send the same X-Request-Id with several requests, and another
    // request's write must never mark this claim committed.
    const claimId = crypto.randomUUID();
    // Claim the key, or take over one that expired or was abandoned by a dead process before its
    // change committed (a committed one is never taken over: that would run the write twice).
    const claimed = await sql<{ key: string }>`
      insert into idempotency_keys (tenant_id, api_key_id, key, request_hash, state, request_id, claim_id)
      values (${req.actor.tenantId}, ${apiKeyId}, ${key}, ${hash}, 'in_progress', ${req.id}, ${claimId})
      on conflict (api_key_id, key) do update
        set request_hash = excluded.request_hash, state = 'in_progress', response_status = null, response_headers = null,
            response_body_enc = null, subject_user_ids = '{}', request_id = excluded.request_id, claim_id = excluded.claim_id, committed_at = null,
            committed_target_type = null, committed_target_id = null,
            created_at = now(), expires_at = now() + make_interval(hours => ${IDEMPOTENCY_TTL_HOURS})
        where idempotency_keys.expires_at < now()
           or (idempotency_keys.state = 'in_progress' and idempotency_keys.committed_at is null
               and idempotency_keys.created_at < now() - make_interval(secs => ${ABANDONED_AFTER_SECONDS}))
      returning key`.execute(db);
    if (claimed.rows.length) {
      req.idempotency = { apiKeyId, key, claimId };
      req.actor = { ...req.actor, idempotencyClaim: claimId };
      return;
    }
    const existing = await db.selectFrom('idempotency_keys').selectAll().where('api_key_id', '=', apiKeyId).where('key', '=', key).executeTakeFirst();
    // Gone between the claim and this read means another request just took it over: still running.
    if (existing && existing.request_hash !== hash) {
      throw new AppError(422, 'idempotency.key_reused', 'This Idempotency-Key was used with another request; use a new key.');
    }
    if (existing?.state === 'in_progress' && existing.committed_at) {
      return recover(req, reply, { apiKeyId, key, claimId: existing.claim_id }, { type: existing.committed_target_type, id: existing.committed_target_id });
    }
    if (!existing || existing.state !== 'completed') {
      throw new AppError(409, 'idempotency.in_progress', 'A request with this Idempotency-Key is being processed; retry shortly.', {
        headers: { 'retry-after': '1' },
      });
    }
    if (existing.response_body_enc === null) {
      throw new AppError(409, 'idempotency.not_replayable', 'This request succeeded, but its response showed a secret once and is not kept; the resource is at Location.', {
        headers: existing.response_headers?.location ? { location: existing.response_headers.location } : {},
      });
    }
    reply.code(existing.response_status!).headers({ ...(existing.response_headers ?? {}), 'idempotent-replayed': 'true' });
    return reply.send(keyring.openSecret(sealContext(apiKeyId, key), existing.response_body_enc));
  }

  async function storeResponse(req: FastifyRequest, reply: FastifyReply, payload: unknown) {
    const held = req.idempotency;
    if (!held) return payload;
    req.idempotency = null;
    // An answer that asks for a retry — a 5xx, or an error with Retry-After (a 409 concurrent
    // conflict: the write was rolled back) — is not what the key answers for ever: the retry runs.
    if (reply.statusCode >= 500 || (reply.statusCode >= 400 && reply.hasHeader('retry-after'))) {
      // Only a claim whose change did not commit is released; a committed one stays for the retry to recover.
      await db.deleteFrom('idempotency_keys').where('api_key_id', '=', held.apiKeyId).where('key', '=', held.key).where('claim_id', '=', held.claimId)
        .where('state', '=', 'in_progress').where('committed_at', 'is', null).execute();
      return payload;
    }
    if (CRASH_AFTER_COMMIT) process.kill(process.pid, 'SIGKILL');
    const headers: Record<string, string> = {};
    for (const h of REPLAYED_HEADERS) {
      const v = reply.getHeader(h);
      if (v !== undefined) headers[h] = String(v);
    }
    const body = typeof payload === 'string' ? payload : payload == null ? '' : String(payload);
    const secret = req.routeOptions.config?.idempotentResponse === 'secret' && reply.statusCode < 300;
    await store(held, reply.statusCode, headers, secret ? null : body, subjectsOf(req, body));
    return payload;
  }
}
