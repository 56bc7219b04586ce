// Idempotency-Key on every POST: the first completed response is stored (status, body, Location,
// ETag) for 24 hours and replayed byte for byte; the same key with another body is a 422; while the
// first request runs, a 409. Keys are scoped to the API key that sent them. A 5xx stores nothing, so
// the request can be retried. The key is claimed before validation, so a 400 is replayed too.
// Stored bodies are sealed by the master key and deleted when they expire or when the user they
// concern is erased; a response that shows a secret once (a new API key, a webhook secret) is never
// stored: its replay is a 409 pointing at the resource.
import { sql } from 'kysely';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Db } from '../db/database.js';
import { canonicalJson } from '../lib/canonical-json.js';
import { AppError } from './errors.js';
import type { Keyring } from '../crypto/keyring.js';

export const IDEMPOTENCY_TTL_HOURS = 24;
export const MAX_KEY_LENGTH = 255;
/** An in-progress claim older than this belongs to a request that died with its process. */
const ABANDONED_AFTER_SECONDS = 60;
const REPLAYED_HEADERS = ['location', 'etag', 'content-type'] as const;

declare module 'fastify' {
  interface FastifyRequest {
    idempotency: { apiKeyId: string; key: string } | null;
  }
  interface FastifyContextConfig {
    /** `secret`: the response shows a secret once and must not be stored. */
    idempotentResponse?: 'secret';
  }
}

const sealContext = (apiKeyId: string, key: string) => `idempotency:${apiKeyId}:${key}`;

/** The user a stored response concerns, so erasure can delete it with the user's other data. */
function subjectOf(req: FastifyRequest, payload: string): string | null {
  const id = (req.params as { id?: string } | undefined)?.id;
  if (id && req.url.startsWith('/v1/users/')) return id;
  return /^\{"id":"(usr_[0-9A-Z]{26})"/.exec(payload)?.[1] ?? null;
}

// A keyed hash: a plain SHA-256 of a body holding a 9-digit SSN could be brute-forced from a dump.
const hashOf = (req: FastifyRequest, keyring: Keyring) => keyring.mac('idempotency', `${req.method} ${req.url}\n${canonicalJson(req.body ?? null)}`);

export function registerIdempotency(app: FastifyInstance, db: Db, keyring: Keyring): void {
  app.decorateRequest('idempotency', null);

  app.addHook('preValidation', async (req, reply) => {
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
    // Claim the key, or take over one that expired or was abandoned by a dead process.
    const claimed = await sql<{ key: string }>`
      insert into idempotency_keys (tenant_id, api_key_id, key, request_hash, state)
      values (${req.actor.tenantId}, ${apiKeyId}, ${key}, ${hash}, 'in_progress')
      on conflict (api_key_id, key) do update
        set request_hash = excluded.request_hash, state = 'in_progress', response_status = null, response_headers = null,
            response_body_enc = null, subject_user_id = null, created_at = now(), expires_at = now() + make_interval(hours => ${IDEMPOTENCY_TTL_HOURS})
        where idempotency_keys.expires_at < now()
           or (idempotency_keys.state = 'in_progress' and idempotency_keys.created_at < now() - make_interval(secs => ${ABANDONED_AFTER_SECONDS}))
      returning key`.execute(db);
    if (claimed.rows.length) {
      req.idempotency = { apiKeyId, key };
      return;
    }
    const existing = await db.selectFrom('idempotency_keys').selectAll().where('api_key_id', '=', apiKeyId).where('key', '=', key).executeTakeFirst();
    // Gone between the claim and this read means another request just took it over: still running.
    if (existing && existing.request_hash !== hash) {
      throw new AppError(422, 'idempotency.key_reused', 'This Idempotency-Key was used with another request; use a new key.');
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
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const claim = req.idempotency;
    if (!claim) return payload;
    req.idempotency = null;
    if (reply.statusCode >= 500) {
      await db.deleteFrom('idempotency_keys').where('api_key_id', '=', claim.apiKeyId).where('key', '=', claim.key).where('state', '=', 'in_progress').execute();
      return payload;
    }
    const headers: Record<string, string> = {};
    for (const h of REPLAYED_HEADERS) {
      const v = reply.getHeader(h);
      if (v !== undefined) headers[h] = String(v);
    }
    const body = typeof payload === 'string' ? payload : payload == null ? '' : String(payload);
    const secret = req.routeOptions.config?.idempotentResponse === 'secret' && reply.statusCode < 300;
    await db
      .updateTable('idempotency_keys')
      .set({
        state: 'completed', response_status: reply.statusCode, response_headers: JSON.stringify(headers),
        response_body_enc: secret ? null : keyring.sealSecret(sealContext(claim.apiKeyId, claim.key), body),
        subject_user_id: subjectOf(req, body),
      })
      .where('api_key_id', '=', claim.apiKeyId).where('key', '=', claim.key)
      .execute();
    return payload;
  });
}
