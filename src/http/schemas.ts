// Shapes shared by every module: the problem document, list envelopes, error response sets.
import { Type, type TSchema } from 'typebox';

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'Stable dotted error code, e.g. user.field_denied' }),
    request_id: Type.String(),
    errors: Type.Optional(
      Type.Array(Type.Object({ field: Type.String(), code: Type.String(), message: Type.String() })),
    ),
  },
  { $id: 'Problem', additionalProperties: true, description: 'RFC 9457 problem details' },
);

const ProblemRef = Type.Ref('Problem');

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request: malformed JSON, unknown or read-only fields, or values that fail validation',
  401: 'Missing, unknown, revoked or expired API key',
  403: "The key's role does not allow this operation",
  404: 'No such resource in this tenant',
  409: 'Conflict with the current state',
  410: 'Destroyed for good (erasure)',
  412: 'If-Match does not match the current version',
  413: 'Body (or document file) too large',
  415: 'Unsupported content type',
  422: 'Refused by a business rule',
  500: 'Unexpected fault (the detail is in the server log under the request id)',
  503: 'Database unavailable; retry after Retry-After seconds',
};

/** The error responses a route can answer, each a problem document. */
export function errors(...statuses: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const s of [...statuses, 500, 503]) out[s] = { ...ProblemRef, description: ERROR_DESCRIPTIONS[s] } as TSchema;
  return out;
}

/** The errors every authenticated route can answer besides its own. */
export const AUTH_ERRORS = [400, 401, 403] as const;

/** Printable ASCII: what ids, codes and filter values are made of; NUL and friends never reach SQL. */
export const Token = (maxLength = 64, description?: string) =>
  Type.String({ minLength: 1, maxLength, pattern: '^[\\x21-\\x7e]+$', ...(description ? { description } : {}) });

// Ids are opaque: a well-formed but unknown one is simply not found (404), like another tenant's.
export const IdParam = (prefix: string) => Type.Object({ id: Token(64, `A ${prefix}_… id (any other value answers 404)`) });

// No control characters in any text: they have no place in a customer record and break exports.
const NO_CONTROL = '^[^\\u0000-\\u001f\\u007f]*$';
/** A one-line text value of 1..max characters. */
export const Text = (max: number, extra: object = {}) => Type.String({ minLength: 1, maxLength: max, pattern: NO_CONTROL, ...extra });
/** Free text an operator writes (notes, reasons): line breaks allowed, NUL never. */
export const Note = Type.String({ minLength: 1, maxLength: 1000, pattern: '^[^\\u0000]*$' });

export const Limit = Type.Integer({ minimum: 1, maximum: 200, default: 50, description: 'Page size (1–200)' });
export const Cursor = Type.String({ maxLength: 512, description: 'Opaque cursor from next_cursor' });

/** A page of a list; `title` names it in the OpenAPI document (`UserList`). */
export const ListOf = <T extends TSchema>(item: T, title?: string) =>
  Type.Object(
    {
      data: Type.Array(item),
      next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next page; null on the last page' }),
    },
    title ? { title } : {},
  );

/** A resource id as lib/ids.ts makes it: the type prefix and 26 Crockford base32 characters. */
export const idPattern = (prefix: string) => `^${prefix}_[0-9A-HJKMNP-TV-Z]{26}$`;
export const Id = (prefix: string, description?: string) =>
  Type.String({ pattern: idPattern(prefix), ...(description ? { description } : {}) });

export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
