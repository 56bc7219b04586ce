// The document's cross-cutting parts, added once to the whole generated document rather than
// repeated in 49 route declarations: what the plugins (auth, rate limit, idempotency, body parsing,
// problem errors) make every route answer, and named components for the schemas that carry a
// PascalCase `title`. Routes declare what is theirs (bodies, their own statuses and headers); this
// file declares what the shared machinery adds, so the two cannot disagree by omission.
// The test suite checks every response it receives against the result (test/helpers/contract.ts).

import { IF_MATCH_UNSUPPORTED } from './conditional.js';

type Json = Record<string, unknown>;
type Operation = {
  operationId?: string;
  summary?: string;
  security?: Array<Record<string, string[]>>;
  parameters?: Json[];
  requestBody?: { content?: Record<string, Json>; required?: boolean };
  responses: Record<string, Json>;
};

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;
const PROBLEM = 'application/problem+json';

const header = (description: string, schema: Json = { type: 'string' }, required = false) => ({ description, schema, ...(required ? { required } : {}) });

export const HEADERS: Record<string, Json> = {
  XRequestId: header('The request id (a sane incoming X-Request-Id is echoed); quote it when reporting a problem', { type: 'string' }, true),
  RateLimit: header('This API key\'s window: `limit=N, remaining=N, reset=S` (IETF RateLimit draft)'),
  RateLimitPolicy: header('The API key\'s quota: `N;w=60` (requests per 60-second window)'),
  RetryAfter: header('Seconds to wait before retrying', { type: 'string', pattern: '^\\d+$' }, true),
  RetryAfterOptional: header('Seconds to wait before retrying (absent when the process is shutting down)', { type: 'string', pattern: '^\\d+$' }),
  IdempotentReplayed: header('`true` when this is the stored answer to an earlier request with the same Idempotency-Key', { type: 'string', enum: ['true'] }),
  ETag: header('Strong ETag: the resource\'s version, quoted (`"3"`); send it back as If-Match', { type: 'string', pattern: '^"\\d+"$' }),
  Location: header('The path of the resource this answer is about', { type: 'string', pattern: '^/v1/' }),
  ContentDisposition: header('`attachment; filename="…"`'),
};

const PARAMETERS: Record<string, Json> = {
  IdempotencyKey: {
    name: 'Idempotency-Key', in: 'header', required: false,
    description:
      'Makes the POST safe to retry: the first completed answer is kept 24 h and replayed (Idempotent-Replayed: true); ' +
      'the same key with another body → 422 idempotency.key_reused; while the first is still running → 409 idempotency.in_progress. ' +
      'Scoped to the API key. Not supported with multipart uploads.',
    schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' },
  },
  IfMatch: {
    name: 'If-Match', in: 'header', required: false,
    description: 'The ETag you last read (`"3"`), a list of them (`"3", "4"`), or `*`: the write applies only to a listed version (compared strongly: `"03"` is not `"3"`), otherwise 412 and nothing changes',
    schema: { type: 'string', maxLength: 64 },
  },
};

const ref = (kind: string, name: string) => ({ $ref: `#/components/${kind}/${name}` });
const problemResponse = (description: string) => ({ description, content: { [PROBLEM]: { schema: ref('schemas', 'Problem') } } });

// What the shared machinery answers, beyond what a route declares.
const SHARED: Record<string, string> = {
  401: 'No key, an unknown key, or a revoked or expired one (auth.missing_key, auth.invalid_key, auth.key_revoked)',
  403: "The key's role does not allow this operation (auth.forbidden)",
  429: "Past the API key's requests per minute (rate_limit.exceeded), or too many failed keys from this address (auth.too_many_failures); retry after Retry-After",
  500: 'Unexpected fault: the detail is in the server log under the request id',
  503: 'The database is unavailable (service.unavailable) or the process is shutting down; retry after Retry-After',
};
const IDEMPOTENCY_409 = 'idempotency.in_progress (the first request with this Idempotency-Key is still running; retry shortly), idempotency.not_replayable or idempotency.response_lost';
const CONFLICT_409 = 'request.concurrent_conflict: collided with a concurrent change; retry';

function addResponse(op: Operation, status: string, description: string) {
  const existing = op.responses[status];
  if (!existing) op.responses[status] = problemResponse(description);
  else if (typeof existing.description === 'string' && !existing.description.includes(description)) existing.description += `; or ${description}`;
}

const MERGE_PATCH_POSTS = new Set(['dryRunUserUpdate']);
/** Set on a route schema whose body is optional (app.ts); swagger passes x- keys to the operation. */
export const OPTIONAL_BODY = 'x-kyclo-optional-body';

const isAuthenticated = (op: Operation) => (op.security ?? []).some((s) => Object.hasOwn(s, 'bearerAuth'));

function success(op: Operation, method: string, status: string): string {
  const what = op.summary ? op.summary.replace(/\s*\(.*$/, '') : 'Done';
  if (status === '201') return `Created: ${what.charAt(0).toLowerCase()}${what.slice(1)}`;
  if (status === '202') return `Accepted: ${what.charAt(0).toLowerCase()}${what.slice(1)}`;
  return method === 'get' ? `OK: ${what.charAt(0).toLowerCase()}${what.slice(1)}` : `Done: ${what.charAt(0).toLowerCase()}${what.slice(1)}`;
}

function completeOperation(op: Operation, method: string) {
  const authenticated = isAuthenticated(op);
  const record = op as Record<string, unknown>;
  if (record[OPTIONAL_BODY]) {
    if (op.requestBody) op.requestBody.required = false;
    delete record[OPTIONAL_BODY];
  }
  const hasBody = op.requestBody !== undefined;
  const ifMatch = (op.parameters ?? []).some((p) => p.in === 'header' && String(p.name).toLowerCase() === 'if-match');
  op.parameters = (op.parameters ?? []).filter((p) => !(p.in === 'header' && String(p.name).toLowerCase() === 'if-match'));
  if (ifMatch) op.parameters.push(ref('parameters', 'IfMatch'));
  const idempotent = authenticated && method === 'post';
  if (idempotent) op.parameters.push(ref('parameters', 'IdempotencyKey'));
  if (op.parameters.length === 0) delete op.parameters;

  if (authenticated) {
    for (const s of ['401', '403', '429'] as const) addResponse(op, s, SHARED[s]!);
  }
  if (hasBody) {
    addResponse(op, '413', 'The body is larger than this operation accepts (request.body_too_large)');
    addResponse(op, '415', 'Unsupported Content-Type (request.unsupported_media_type)');
  }
  if (authenticated && method !== 'get') addResponse(op, '409', CONFLICT_409);
  if (idempotent) {
    addResponse(op, '409', IDEMPOTENCY_409);
    addResponse(op, '422', 'idempotency.key_reused: this Idempotency-Key was used with another request');
  }
  if (ifMatch) addResponse(op, '412', 'If-Match does not match the current version (precondition_failed, with current_version); nothing changed');
  else if (authenticated && method !== 'get' && op.operationId !== undefined) addResponse(op, '400', IF_MATCH_UNSUPPORTED);
  addResponse(op, '500', SHARED[500]!);
  addResponse(op, '503', SHARED[503]!);

  // PATCH bodies (and the dry run of one) are JSON Merge Patch; application/json is accepted as the same thing.
  if ((method === 'patch' || MERGE_PATCH_POSTS.has(op.operationId ?? '')) && op.requestBody?.content?.['application/json']) {
    const json = op.requestBody.content['application/json'];
    op.requestBody.content = { 'application/merge-patch+json': json, 'application/json': json };
  }

  for (const [status, response] of Object.entries(op.responses)) {
    const code = Number(status);
    if (response.description === 'Default Response' || response.description === undefined) response.description = success(op, method, status);
    const content = response.content as Record<string, Json> | undefined;
    if (code >= 400 && content?.['application/json']) {
      response.content = { [PROBLEM]: content['application/json'] };
    }
    const headers: Record<string, Json> = { 'X-Request-Id': ref('headers', 'XRequestId') };
    if (authenticated && code !== 401) {
      headers.RateLimit = ref('headers', 'RateLimit');
      headers['RateLimit-Policy'] = ref('headers', 'RateLimitPolicy');
    }
    if (code === 429) headers['Retry-After'] = ref('headers', 'RetryAfter');
    if (code === 503) headers['Retry-After'] = ref('headers', 'RetryAfterOptional');
    if (code === 409 && authenticated && method !== 'get') headers['Retry-After'] = ref('headers', 'RetryAfterOptional');
    if (idempotent && code < 500) headers['Idempotent-Replayed'] = ref('headers', 'IdempotentReplayed');
    // idempotency.not_replayable points at what the first request made.
    if (idempotent && code === 409) headers.Location = ref('headers', 'Location');
    for (const [name, h] of Object.entries((response.headers ?? {}) as Record<string, Json>)) {
      const named = Object.keys(HEADERS).find((k) => k.toLowerCase() === name.replace(/-/g, '').toLowerCase());
      headers[name] = named ? ref('headers', named) : h;
    }
    response.headers = headers;
  }
}

/** Schemas with a PascalCase `title` become components, referenced wherever they appear. */
function hoistTitled(doc: Json) {
  const components = ((doc.components as Json).schemas ??= {}) as Record<string, Json>;
  const seen = new Map<string, string>();
  const visit = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(visit);
    if (typeof node !== 'object' || node === null) return node;
    const out = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, k === 'enum' || k === 'const' || k === 'example' ? v : visit(v)])) as Json;
    // Fastify's shared schemas are referenced by id (`User`); raw sections (webhooks) name the same components.
    if (typeof out.$ref === 'string') out.$ref = out.$ref.replace(/^(#\/definitions\/)?([A-Z][A-Za-z0-9]*)$/, '#/components/schemas/$2');
    // A record (TypeBox's patternProperties `^.*$`) as swagger writes the routes' (additionalProperties).
    const pattern = out.patternProperties as Json | undefined;
    if (pattern && Object.keys(pattern).length === 1 && Object.hasOwn(pattern, '^.*$')) {
      const { patternProperties: _p, ...rest } = out;
      return visit({ ...rest, additionalProperties: pattern['^.*$'] });
    }
    // One spelling of a single allowed value, as swagger writes the routes' (`enum: [v]`).
    if (Object.hasOwn(out, 'const')) {
      const { const: value, ...rest } = out;
      return visit({ ...rest, enum: [value] });
    }
    const title = out.title;
    if (typeof title === 'string' && /^[A-Z][A-Za-z0-9]*$/.test(title) && (out.type !== undefined || out.anyOf || out.oneOf || out.enum)) {
      const { description, ...schema } = out;
      const text = JSON.stringify(schema);
      const known = seen.get(title);
      if (known !== undefined && known !== text) throw new Error(`Two different schemas are titled ${title}:\n${known}\n${text}`);
      seen.set(title, text);
      components[title] = schema;
      return description === undefined || description === schema.description ? ref('schemas', title) : { ...ref('schemas', title), description };
    }
    return out;
  };
  for (const key of ['paths', 'webhooks'] as const) doc[key] = visit(doc[key]);
  for (const [name, s] of Object.entries(components)) {
    const { title: _t, ...inner } = s;
    components[name] = { ...(visit(inner) as Json), ...(s.title ? { title: s.title } : {}) };
  }
}

/**
 * A discriminator's mapping, from each branch's value of the property: the request schemas cannot
 * carry it (Ajv's discriminator refuses `mapping`), and without it a discriminator would select by
 * component name.
 */
function mapDiscriminators(doc: Json) {
  const schemas = (doc.components as Json).schemas as Record<string, Json>;
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (typeof node !== 'object' || node === null) return;
    const s = node as Json;
    const d = s.discriminator as { propertyName: string; mapping?: Record<string, string> } | undefined;
    const branches = (s.oneOf ?? s.anyOf) as Json[] | undefined;
    if (d && !d.mapping && branches?.every((b) => typeof b.$ref === 'string')) {
      const mapping: Record<string, string> = {};
      for (const b of branches) {
        const target = schemas[String(b.$ref).split('/').pop()!];
        const values = ((target?.properties as Record<string, Json> | undefined)?.[d.propertyName]?.enum ?? []) as string[];
        for (const v of values) mapping[v] = String(b.$ref);
      }
      if (Object.keys(mapping).length === branches.length) d.mapping = mapping;
    }
    Object.values(s).forEach(visit);
  };
  visit(doc);
}

/** The generated document, completed (swagger's transformObject). */
export function completeDocument(generated: Json): Json {
  // A copy: swagger's document shares objects with the route schemas the validators use.
  const doc = structuredClone(generated);
  const components = (doc.components ??= {}) as Json;
  components.headers = { ...(components.headers as Json | undefined), ...HEADERS };
  components.parameters = { ...(components.parameters as Json | undefined), ...PARAMETERS };
  for (const item of Object.values((doc.paths ?? {}) as Record<string, Record<string, Operation>>)) {
    for (const method of METHODS) if (item[method]) completeOperation(item[method], method);
  }
  hoistTitled(doc);
  mapDiscriminators(doc);
  return doc;
}
