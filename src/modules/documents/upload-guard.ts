// The upload route's guard: a slot is taken once the request's headers are authenticated (the
// app's onRequest hooks run first) and before any byte of the body is read, within the slot wait;
// from then the body has the read deadline to arrive. A late body is answered 408 and its socket
// closed; the slot is free as soon as the response is done or the client is gone.
import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest, preParsingHookHandler } from 'fastify';
import { AppError } from '../../http/errors.js';
import { JSON_LIMITS, slotPool, type Release, type UploadLimits } from './upload-slots.js';

// A JSON body this small (an identifier number) cannot weigh on memory: it needs no in-memory slot.
const SMALL_JSON = 64 * 1024;

export const bodyTimeout = (ms: number) =>
  new AppError(408, 'request.body_timeout', `The request body did not arrive within ${ms / 1000} s; the upload was abandoned.`, {
    headers: { connection: 'close' },
  });

const clientGone = () => new AppError(400, 'request.aborted', 'The client closed the connection.');

export function uploadGuard(limits: UploadLimits) {
  const uploads = slotPool(limits);
  const inMemory = slotPool(JSON_LIMITS);
  const deadlines = new WeakMap<FastifyRequest, AbortSignal>();

  const mayBeLargeJson = (req: FastifyRequest) => {
    if (!req.headers['content-type']?.toLowerCase().includes('json')) return false;
    const length = Number(req.headers['content-length']);
    return !(Number.isFinite(length) && length <= SMALL_JSON);
  };

  return {
    async onRequest(req: FastifyRequest, reply: FastifyReply): Promise<void> {
      const tenant = req.actor.tenantId;
      const held: Release[] = [];
      const gone = new AbortController();
      const deadline = new AbortController();
      let timer: NodeJS.Timeout | undefined = undefined;
      // Answered, failed or abandoned: the slots are free again and the deadline is moot.
      reply.raw.once('close', () => {
        clearTimeout(timer);
        gone.abort(clientGone());
        for (const release of held.splice(0)) release();
      });
      const hold = (release: Release) => {
        if (gone.signal.aborted) {
          release();
          throw clientGone();
        }
        held.push(release);
      };
      const started = Date.now();
      hold(await uploads.acquire(tenant, limits.slotWaitMs, gone.signal));
      if (mayBeLargeJson(req)) hold(await inMemory.acquire(tenant, Math.max(0, limits.slotWaitMs - (Date.now() - started)), gone.signal));
      // A body that has fully arrived is never cut, however long its processing takes.
      timer = setTimeout(() => {
        if (!req.raw.complete) deadline.abort(bodyTimeout(limits.readTimeoutMs));
      }, limits.readTimeoutMs);
      deadlines.set(req, deadline.signal);
    },

    /** JSON bodies are read by Fastify's parser: the deadline errors the stream it reads. */
    preParsing: ((req, _reply, payload, done) => {
      const signal = deadlines.get(req);
      if (!signal || req.headers['content-type']?.toLowerCase().startsWith('multipart/')) return done(null, payload);
      const guarded = new PassThrough();
      const onAbort = () => {
        payload.unpipe(guarded);
        guarded.destroy(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      guarded.once('close', () => signal.removeEventListener('abort', onAbort));
      payload.once('error', (err) => guarded.destroy(err));
      done(null, payload.pipe(guarded));
    }) as preParsingHookHandler,

    /** The read deadline of this request (multipart reads its body itself and watches it). */
    deadline: (req: FastifyRequest): AbortSignal | undefined => deadlines.get(req),

    stats: () => ({ uploads: uploads.stats(), inMemory: inMemory.stats() }),
  };
}

export type UploadGuard = ReturnType<typeof uploadGuard>;
