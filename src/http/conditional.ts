// Conditional writes: the ETag a user-bearing answer declares, the If-Match header a write takes,
// and how that header is read. Shared by the routes that answer or change a user.
import { Type } from 'typebox';
import type { FastifyInstance, preValidationHookHandler } from 'fastify';
import { AppError, preconditionFailed } from './errors.js';

export const ETagHeader = { ETag: { type: 'string', description: 'Strong ETag: the quoted version' } };
export const IfMatch = Type.Object({
  'if-match': Type.Optional(Type.String({ maxLength: 64, description: 'The ETag you last read, or a list of them, or *' })),
});

/** What If-Match asks: `*` (any current version), or the versions its entity tags name. */
export type Precondition = '*' | readonly number[];

// An ETag this API makes: a version in canonical decimal, quoted. RFC 9110 §8.8.3.2: If-Match
// compares strongly, character by character, so `"02"` is not `"2"` and a weak `W/"2"` matches
// nothing; such tags are kept out of the list, which then matches no version (412).
const OUR_TAG = /^"(0|[1-9]\d{0,8})"$/;

/**
 * `"3"` → [3], `"3", "4"` → [3, 4], `*` → '*'. A tag this API never makes (weak, non-canonical,
 * malformed) can never match, so a header of only such tags is stale by definition: [] (412).
 */
export function parseIfMatch(header: string | undefined): Precondition | undefined {
  if (header === undefined) return undefined;
  const h = header.trim();
  if (h === '*') return '*';
  const versions: number[] = [];
  for (const tag of h.split(',')) {
    const m = OUR_TAG.exec(tag.trim());
    if (m) versions.push(Number(m[1]));
  }
  return versions;
}

/**
 * The version a write is pinned to: the current one when If-Match names it; nothing to pin without
 * the header or with `*` (the user exists); 412 with the current version when it is not named.
 */
export function pinnedVersion(ifMatch: Precondition | undefined, current: number): number | undefined {
  if (ifMatch === undefined || ifMatch === '*') return undefined;
  if (!ifMatch.includes(current)) throw preconditionFailed(current);
  return current;
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** What a write that does not take If-Match answers when sent one (openapi.ts declares it). */
export const IF_MATCH_UNSUPPORTED = 'request.if_match_unsupported: this write does not take If-Match; nothing changed';

/**
 * The writes that do not take If-Match refuse it (400 request.if_match_unsupported, nothing done)
 * instead of ignoring it: a caller who sends it counts on a 412 when someone wrote meanwhile, and
 * an ignored header lost that update without a word. The writes that take it declare the IfMatch
 * header schema: PATCH and close of a user, its status changes and moves, its risk.
 */
export function registerIfMatchGuard(app: FastifyInstance): void {
  const refuse: preValidationHookHandler = (req, _reply, done) => {
    if (req.headers['if-match'] === undefined) return done();
    done(new AppError(400, 'request.if_match_unsupported', 'This write does not take If-Match: it would apply whatever the version. Send it without If-Match, or make the change through PATCH /v1/users/{id} where that is how it is made.', {
      errors: [{ field: 'If-Match', code: 'unsupported', message: 'is not taken by this write' }],
    }));
  };
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith('/v1') || ![route.method].flat().some((m) => WRITES.has(m))) return;
    const headers = route.schema?.headers as { properties?: Record<string, unknown> } | undefined;
    if (headers?.properties?.['if-match']) return;
    route.preValidation = [refuse, ...(route.preValidation ? [route.preValidation].flat() : [])];
  });
}
