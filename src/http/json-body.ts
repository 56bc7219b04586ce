// The JSON body parser for application/json and application/merge-patch+json: Fastify's own
// (secure-json-parse: __proto__ and constructor poisoning refused), behind a nesting-depth check.
//
// JSON.parse itself survives any depth, but everything after it that walks the value recursively
// does not: Ajv's validators, the reference-data checks, the canonical JSON of the idempotency
// fingerprint. A 1 MiB body can nest 500,000 levels; ~3,000 overflowed the stack (a 500). So the
// raw text is scanned first, without recursion and without building anything, and a body nested
// deeper than any schema of this API allows is refused before anything recursive can see it.
import type { FastifyRequest } from 'fastify';
import { AppError } from './errors.js';

/**
 * The deepest nesting a body may have. The deepest the API's own schemas go is a user's metadata
 * (5 levels) under the body object, or the policy's override tables (4); 32 leaves room for any
 * future schema and is far below what any recursive walk in the process can take.
 */
export const MAX_JSON_DEPTH = 32;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * Whether the JSON text nests objects and arrays deeper than `max`: undefined when it does not;
 * otherwise `{ key }`, the key of the top-level object under which it does (as written, escapes
 * included; undefined when the text is no object, or nests before any key). Brackets inside strings
 * do not count. Malformed text is not judged here (JSON.parse does that); the scan stops at the first
 * level past `max`, so a hostile text costs at most one pass over its bytes. An import names the key
 * in the row's rejection (formats.ts); a request body is refused whole.
 */
export function deeperThan(text: string, max: number): { key: string | undefined } | undefined {
  let depth = 0;
  let topIsObject = false;
  let keyFrom = -1;
  let keyTo = -1;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const from = i + 1;
      // Skip the string: to the next quote not escaped by a backslash.
      for (i++; i < n; i++) {
        const s = text.charCodeAt(i);
        if (s === BACKSLASH) i++;
        else if (s === QUOTE) break;
      }
      // In the top-level object, the last string before a nested value is that value's key.
      if (depth === 1 && topIsObject) {
        keyFrom = from;
        keyTo = i;
      }
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (depth === 0) topIsObject = c === OPEN_BRACE;
      if (++depth > max) return { key: keyFrom < 0 ? undefined : text.slice(keyFrom, keyTo) };
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return undefined;
}

/** True when the JSON text nests objects and arrays deeper than `max` (see deeperThan). */
export const nestsDeeperThan = (text: string, max: number): boolean => deeperThan(text, max) !== undefined;

// A \uD800–\uDFFF escape in the text: the only way a lone surrogate reaches a parsed value (raw
// bytes that are not UTF-8 already decode to U+FFFD). Only then is the value walked.
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F][0-9a-fA-F]{2}/;
// With the u flag, a paired surrogate is one code point; only a lone one is \p{Cs}.
export const LONE_SURROGATE = /\p{Cs}/u;

/** True when a string (a key or a value) holds a lone surrogate: text no database or log can hold faithfully. */
export function holdsLoneSurrogate(value: unknown): boolean {
  if (typeof value === 'string') return LONE_SURROGATE.test(value);
  if (Array.isArray(value)) return value.some(holdsLoneSurrogate);
  // Recursion is safe here: the depth was checked before parsing.
  if (value && typeof value === 'object') return Object.entries(value).some(([k, v]) => LONE_SURROGATE.test(k) || holdsLoneSurrogate(v));
  return false;
}

export const invalidUnicode = () =>
  new AppError(400, 'request.invalid_unicode', 'The body holds a string with a lone UTF-16 surrogate (an unpaired \\uD800–\\uDFFF escape): not valid Unicode text.', {
    errors: [{ field: 'body', code: 'invalid_unicode', message: 'strings must be valid Unicode' }],
  });

export const jsonTooDeep = () =>
  new AppError(400, 'request.json_too_deep', `The body nests objects or arrays more than ${MAX_JSON_DEPTH} levels deep.`, {
    errors: [{ field: 'body', code: 'too_deep', message: `must nest at most ${MAX_JSON_DEPTH} levels` }],
  });

type StringParser = (req: FastifyRequest, body: string, done: (err: Error | null, body?: unknown) => void) => void;

/**
 * Wraps Fastify's default JSON parser (app.getDefaultJsonParser) with the depth check, and refuses
 * lone surrogates: PostgreSQL refuses them in jsonb (and quotes the value in its error) and turns
 * them into U+FFFD in text, so such a value would either fail late or be stored as something else.
 */
export function depthCheckedJsonParser(parse: StringParser): StringParser {
  return (req, body, done) => {
    // No body at all under a JSON content type (what many clients send for a POST without one):
    // absent, for the route's schema to accept (an optional body) or refuse (a required one).
    if (body.trim() === '') {
      done(null, undefined);
      return;
    }
    if (nestsDeeperThan(body, MAX_JSON_DEPTH)) {
      done(jsonTooDeep());
      return;
    }
    if (!SURROGATE_ESCAPE.test(body)) {
      parse(req, body, done);
      return;
    }
    parse(req, body, (err, value) => (err ? done(err) : holdsLoneSurrogate(value) ? done(invalidUnicode()) : done(null, value)));
  };
}
