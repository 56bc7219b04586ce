// The contract, enforced: every response a test receives from an app is checked against the OpenAPI
// document that app serves — the status is declared for that operation, the media type is declared
// for that status, the API's own headers it sends are declared (and the required ones sent), and the
// body matches the declared schema. A mismatch fails the test that caused it (test/helpers/setup.ts),
// so an undeclared answer cannot reach CI green. Validators are compiled once per response.
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { addReferenceFormats } from '../../src/http/validation.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
type Json = Record<string, unknown>;
interface Response { description?: string; headers?: Record<string, Json>; content?: Record<string, { schema?: Json }> }

/** The headers this API sets on purpose: sending one the operation does not declare is a mismatch. */
const API_HEADERS = ['x-request-id', 'etag', 'location', 'retry-after', 'ratelimit', 'ratelimit-policy', 'idempotent-replayed', 'content-disposition'];
const JSON_TYPES = /^application\/([a-z.+-]*\+)?json$/;

export const contractStats = { checked: 0, bodies: 0, mismatches: [] as string[] };

const escapePointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** `/v1/users/:id` → `/v1/users/{id}` */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

function headerName(doc: Json, name: string, h: Json): { name: string; required: boolean } {
  const target = typeof h.$ref === 'string' ? ((doc.components as Json).headers as Record<string, Json>)[h.$ref.split('/').pop()!]! : h;
  return { name: name.toLowerCase(), required: target.required === true };
}

export function checkContract(app: FastifyInstance): void {
  let doc: Json | null = null;
  let ajv: Ajv2020;
  const validators = new Map<string, ValidateFunction>();
  const documentFor = () => {
    if (!doc) {
      doc = structuredClone(app.swagger()) as unknown as Json;
      ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false, discriminator: false });
      addFormats(ajv);
      addReferenceFormats(ajv);
      ajv.addSchema({ ...doc, $id: 'openapi' } as Json);
    }
    return doc;
  };

  app.addHook('onSend', (req, reply, payload, done) => {
    const route = req.routeOptions;
    // Unrouted requests (404 route.not_found) and the hidden routes (the document itself, /docs, /metrics) are no operation.
    if (!route.url || (route.schema as { hide?: boolean } | undefined)?.hide || !route.schema || route.url.startsWith('/docs')) {
      done(null, payload);
      return;
    }
    const d = documentFor();
    const path = openApiPath(route.url);
    const method = req.method.toLowerCase();
    const status = String(reply.statusCode);
    const where = `${req.method} ${path} → ${status}`;
    const miss = (why: string) => contractStats.mismatches.push(`${where}: ${why}`);
    contractStats.checked++;
    const op = ((d.paths as Record<string, Record<string, { responses: Record<string, Response> }>>)[path] ?? {})[method];
    if (!op) {
      miss('the operation is not in the document');
      done(null, payload);
      return;
    }
    const statusKey = [status, `${status[0]}XX`, 'default'].find((k) => Object.hasOwn(op.responses, k));
    if (!statusKey) {
      miss(`status not declared (declared: ${Object.keys(op.responses).join(', ')})`);
      done(null, payload);
      return;
    }
    const declared = op.responses[statusKey]!;
    const sent = reply.getHeaders();
    const declaredHeaders = Object.entries(declared.headers ?? {}).map(([n, h]) => headerName(d, n, h));
    for (const name of API_HEADERS) {
      if (sent[name] !== undefined && !declaredHeaders.some((h) => h.name === name)) miss(`header ${name} sent but not declared`);
    }
    for (const h of declaredHeaders) if (h.required && sent[h.name] === undefined) miss(`required header ${h.name} not sent`);

    const mediaType = String(sent['content-type'] ?? '').split(';')[0]!.trim();
    const content = declared.content ?? {};
    const isEmpty = payload === null || payload === undefined || payload === '' || (Buffer.isBuffer(payload) && payload.length === 0);
    if (isEmpty && Object.keys(content).length === 0) {
      done(null, payload);
      return;
    }
    if (!Object.hasOwn(content, mediaType)) {
      miss(`media type ${mediaType || '(none)'} not declared (declared: ${Object.keys(content).join(', ') || 'no body'})`);
      done(null, payload);
      return;
    }
    // Streams (exports, document files) are checked by status, media type and headers only.
    if (payload instanceof Readable || !JSON_TYPES.test(mediaType) || !content[mediaType]!.schema) {
      done(null, payload);
      return;
    }
    const pointer = `openapi#/paths/${escapePointer(path)}/${method}/responses/${statusKey}/content/${escapePointer(mediaType)}/schema`;
    let validate = validators.get(pointer);
    if (!validate) {
      validate = ajv.getSchema(pointer) ?? ajv.compile({ $ref: pointer });
      validators.set(pointer, validate);
    }
    try {
      contractStats.bodies++;
      const body = JSON.parse(Buffer.isBuffer(payload) ? payload.toString('utf8') : String(payload)) as unknown;
      if (!validate(body)) miss(`body does not match: ${ajv.errorsText(validate.errors?.slice(0, 5))}; body: ${String(payload).slice(0, 300)}`);
    } catch (err) {
      miss(`body is not JSON: ${(err as Error).message}`);
    }
    done(null, payload);
  });
}
