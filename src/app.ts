// buildApp(deps): the HTTP application with every plugin and router, and nothing that listens.
// Tests import this and drive it through app.inject(); main.ts adds the socket and the signals.
import crypto from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type preValidationHookHandler } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { sql } from 'kysely';
import type { Db } from './db/database.js';
import type { Keyring } from './crypto/keyring.js';
import { registerProblemHandlers, sendProblem } from './http/problem.js';
import { AppError } from './http/errors.js';
import { registerAuth } from './http/auth.js';
import { AUTH_FAILURES_PER_MINUTE, keyGuessingGuard, memoryLimiter, registerRateLimit, type Limiter } from './http/rate-limit.js';
import { registerIdempotency } from './http/idempotency.js';
import { registerIfMatchGuard } from './http/conditional.js';
import { lazyRequestLogger, loggerOptions } from './http/log-redaction.js';
import type { DestinationStream } from 'pino';
import { registerMetrics } from './http/metrics.js';
import { validatorCompiler } from './http/validation.js';
import { depthCheckedJsonParser } from './http/json-body.js';
import { buildSerializer } from './http/serialization.js';
import { Problem } from './http/schemas.js';
import { completeDocument, OPTIONAL_BODY } from './http/openapi.js';
import { BusinessUser, IndividualUser, PatchDryRun, RequiredAction, Risk, User } from './modules/users/users.schemas.js';
import { registerCustomFieldViews } from './modules/custom-fields/custom-fields.service.js';
import { userRoutes } from './modules/users/users.routes.js';
import { apiKeyRoutes } from './modules/api-keys/api-keys.routes.js';
import { enumerationRoutes } from './modules/reference/enumerations.routes.js';
import { auditRoutes } from './modules/audit/audit.routes.js';
import { eventRoutes } from './modules/events/events.routes.js';
import { policyRoutes } from './modules/policy/policy.routes.js';
import { kycRoutes } from './modules/kyc/kyc.routes.js';
import { changeRequestRoutes } from './modules/reviews/change-requests.routes.js';
import { relationshipRoutes } from './modules/relationships/relationships.routes.js';
import { lifecycleRoutes } from './modules/lifecycle/lifecycle.routes.js';
import { complianceRoutes } from './modules/compliance/compliance.routes.js';
import { erasureRoutes } from './modules/erasure/erasure.routes.js';
import { documentRoutes } from './modules/documents/documents.routes.js';
import { DEFAULT_MAX_DOCUMENT_BYTES } from './modules/documents/document-rules.js';
import { DEFAULT_UPLOAD_LIMITS, type UploadLimits } from './modules/documents/upload-slots.js';
import type { BlobStore } from './storage/blob-store.js';
import { startBackgroundWork } from './workers/background.js';
import { webhookRoutes } from './modules/webhooks/webhooks.routes.js';
import { importRoutes } from './modules/imports/imports.routes.js';
import { exportRoutes } from './modules/exports/exports.routes.js';
import { createServices, type Services } from './services.js';
import type { TargetPolicy } from './modules/webhooks/ssrf.js';
import { openApiWebhooks, WebhookPayloadSchema } from './modules/events/catalog.js';
import { installAuditKeys } from './modules/audit/authentication.js';
import { backlogReader, registerAuditMetrics, sealerState } from './modules/audit/backlog.js';
import { newSealerHealth } from './workers/sealer.js';
import { consoleRoutes } from './http/console.js';

export interface AppDeps {
  db: Db;
  keyring: Keyring;
  logLevel?: string;
  /** Where the logs go (stdout by default); tests pass a stream to search what was logged. */
  logStream?: DestinationStream;
  /** Where webhooks may go (the SSRF guard). */
  webhookTargets?: TargetPolicy;
  /**
   * Background work in this process: the webhook dispatcher, the audit sealer and the retention
   * sweeper (every `retentionIntervalSeconds`). `kyclo serve` runs it by default; tests drive each
   * piece by hand.
   */
  background?: { retentionIntervalSeconds: number; checkpointEveryMs?: number } | null;
  /** Where rate-limit windows are counted: Redis (shared by all processes) or this process. */
  limiter?: Limiter;
  /** Requests without a valid key one client address may make a minute (30); null: no limit (tests). */
  authFailuresPerMinute?: number | null;
  /** Fastify's trustProxy: only then is X-Forwarded-For believed for the client address. */
  trustProxy?: boolean | string[];
  /** Where document files are kept (sealed); the default store is a folder under KYCLO_DATA_DIR. */
  blobs: BlobStore;
  /** The largest document file accepted, in bytes. */
  documentMaxBytes?: number;
  /** Upload slots (per tenant, per process), the wait for one, and the body's read deadline. */
  uploads?: Partial<UploadLimits>;
  /** The services (services.ts); built from the deps above when not given. */
  services?: Services;
}

export const REQUEST_TIMEOUT_MS = 30_000;

// Security headers on every response; the interactive docs need their own scripts and styles.
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'cross-origin-resource-policy': 'same-origin',
};

/** The interactive docs' pages and assets, which carry their own Content-Security-Policy (below). */
const isDocsPath = (url: string) => {
  const path = url.split('?', 1)[0]!;
  return path === '/docs' || path.startsWith('/docs/');
};

/**
 * The docs' policy: Swagger UI's own (scripts from this origin or by hash), never framed, styles from
 * this origin or inline (Swagger UI sets style attributes as it renders: refused, chromium reports a
 * violation per page; a style cannot run code), no fonts or styles from elsewhere, and without
 * `upgrade-insecure-requests` (a local server answers plain http). Before, the docs had no policy: a
 * third-party app on the console's origin, free to run any script, beside the console's key in the
 * tab's sessionStorage.
 */
const docsPolicy = (csp: string) =>
  csp.replace("frame-ancestors 'self'", "frame-ancestors 'none'").replace(/\s*upgrade-insecure-requests;?/, '').replace(' validator.swagger.io', '')
    .replace("font-src 'self' https: data:", "font-src 'self' data:").replace(/style-src 'self' https:/, "style-src 'self' 'unsafe-inline'");

/** The request id and the security headers, on every answer. */
function withEdgeHeaders(req: FastifyRequest, reply: FastifyReply) {
  reply.header('x-request-id', req.id);
  reply.headers(SECURITY_HEADERS);
  if (!isDocsPath(req.url)) {
    reply.header('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
  }
}

export const BODY_LIMIT = 1024 * 1024;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export async function buildApp({
  db, keyring, logLevel = 'info', logStream, webhookTargets = { allowHttp: false, allowPrivate: false }, background = null,
  limiter = memoryLimiter(), authFailuresPerMinute = AUTH_FAILURES_PER_MINUTE, trustProxy = false, blobs, documentMaxBytes = DEFAULT_MAX_DOCUMENT_BYTES, uploads,
  services = createServices({ db, keyring, blobs, webhookTargets, documentMaxBytes }),
}: AppDeps): Promise<FastifyInstance> {
  const uploadLimits: UploadLimits = { ...DEFAULT_UPLOAD_LIMITS, ...uploads };
  // Every audit entry this process writes carries a MAC under the master key (audit/authentication.ts).
  installAuditKeys(keyring.auditKeys);
  const app = Fastify({
    logger: loggerOptions(logLevel, logStream),
    childLoggerFactory: lazyRequestLogger as never,
    bodyLimit: BODY_LIMIT,
    requestIdHeader: false,
    // A caller's own X-Request-Id is echoed when it is sane, so both sides log the same id.
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : `req_${crypto.randomUUID()}`;
    },
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    // Longer when the upload slot wait and read deadline need it: they answer before Node's own cut.
    requestTimeout: Math.max(REQUEST_TIMEOUT_MS, uploadLimits.slotWaitMs + uploadLimits.readTimeoutMs + 5_000),
    trustProxy,
    schemaController: { compilersFactory: { buildSerializer: buildSerializer as never } },
    // A path parameter is an id or an external ref (128 printable characters, each up to three when
    // percent-encoded); Fastify's default of 100 refused valid refs with a bare 414.
    routerOptions: { maxParamLength: 384 },
    // What the router refuses before any hook (a broken percent escape, an over-long parameter) is
    // a problem too, with the request id and the headers every answer carries.
    frameworkErrors: (err, req, reply) => {
      withEdgeHeaders(req, reply);
      sendProblem(req, reply, err.code === 'FST_ERR_BAD_URL' ? new AppError(400, 'request.bad_url', 'The path is not a valid URL: a percent escape is broken.')
        : err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? new AppError(414, 'request.uri_too_long', 'A path segment is longer than any id or reference this API takes.')
        : new AppError(500, 'internal', `An unexpected error occurred; quote request id ${req.id}.`));
    },
  });
  app.setValidatorCompiler(validatorCompiler);
  registerProblemHandlers(app);

  // JSON only: a text/plain body is a 415, not a string handed to a JSON schema.
  app.removeContentTypeParser('text/plain');
  // JSON and JSON Merge Patch bodies: Fastify's parser behind a nesting-depth check (http/json-body.ts).
  const jsonParser = depthCheckedJsonParser(app.getDefaultJsonParser('error', 'error'));
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, jsonParser);
  app.addContentTypeParser('application/merge-patch+json', { parseAs: 'string' }, jsonParser);
  // A callback hook (no promise per response); the payload goes on unchanged.
  app.addHook('onSend', (req, reply, _payload, done) => {
    withEdgeHeaders(req, reply);
    done();
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Kyclo',
        version: '0.1.0',
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
        description:
          'User lifecycle service for regulated platforms: customer records after onboarding, updates under a KYC-aware field policy, ' +
          'an audit log and an event log for every change.',
      },
      servers: [{ url: 'http://127.0.0.1:3000', description: 'A local `npm start` (set your deployment\'s base URL in the client)' }],
      components: {
        securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key: kyclo_live_…' } },
        schemas: { WebhookPayload: WebhookPayloadSchema },
      },
      webhooks: openApiWebhooks(),
    } as never,
    // What the shared plugins make every route answer, and the named components (http/openapi.ts).
    transformObject: (d) => completeDocument(('openapiObject' in d ? d.openapiObject : d.swaggerObject) as Record<string, unknown>) as never,
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  app.addHook('onRoute', (route) => {
    const permission = (route.config as { permission?: string } | undefined)?.permission;
    if (route.url.startsWith('/v1') && permission !== 'public' && route.schema) {
      (route.schema as Record<string, unknown>).security = [{ bearerAuth: [] }];
    }
    // A body declared Type.Optional (every field of it optional: the status shorthands, approve)
    // may be left out, or sent as an empty JSON body (http/json-body.ts): it is then validated and
    // handled as {}. The document says the body is not required.
    if ((route.schema?.body as { '~optional'?: boolean } | undefined)?.['~optional'] === true) {
      (route.schema as Record<string, unknown>)[OPTIONAL_BODY] = true;
      const absentIsEmpty: preValidationHookHandler = (req, _reply, done) => {
        if (req.body === undefined || req.body === null) req.body = {};
        done();
      };
      route.preValidation = [...(route.preValidation ? [route.preValidation].flat() : []), absentIsEmpty];
    }
  });
  for (const s of [Problem, Risk, RequiredAction, IndividualUser, BusinessUser, User, PatchDryRun]) app.addSchema(s);
  registerAuth(app, db, authFailuresPerMinute === null ? null : keyGuessingGuard(limiter, authFailuresPerMinute));
  registerRateLimit(app, limiter);
  registerIdempotency(app, db, keyring);
  // After the idempotency hooks: each prepends to a route's preValidation, so the refusal runs first.
  registerIfMatchGuard(app);

  registerCustomFieldViews(app, keyring);
  // One line per router, each given the services it calls (services.ts builds them all once).
  const svc = services;
  await app.register(userRoutes(svc.users));
  await app.register(apiKeyRoutes(svc.apiKeys));
  await app.register(enumerationRoutes);
  await app.register(auditRoutes(svc.audit));
  await app.register(eventRoutes(svc.events));
  await app.register(policyRoutes(svc.policy));
  await app.register(kycRoutes(svc.kyc));
  await app.register(relationshipRoutes(svc.relationships));
  await app.register(changeRequestRoutes(svc.changeRequests));
  await app.register(lifecycleRoutes(svc.lifecycle, svc.erasure));
  await app.register(complianceRoutes(svc.risk, svc.requiredActions));
  await app.register(documentRoutes(svc.documents, documentMaxBytes, uploadLimits));
  await app.register(erasureRoutes(svc.erasure, svc.gdprExport));
  await app.register(webhookRoutes(svc.webhooks));
  await app.register(importRoutes(svc.imports));
  await app.register(exportRoutes(svc.exports));
  const sealerHealth = background ? newSealerHealth() : null;
  const auditBacklog = backlogReader(db);
  if (background) {
    const stops = startBackgroundWork({ db, keyring, erasure: svc.erasure, webhookTargets, log: app.log, sealerHealth: sealerHealth!, ...background });
    app.addHook('onClose', stops);
  }

  const ops = { tags: ['Operations'], security: [] };
  app.get('/healthz', { schema: { ...ops, operationId: 'health', summary: 'The process is up', response: { 200: { type: 'object', properties: { status: { type: 'string' } } } } } }, async () => ({ status: 'ok' }));
  app.get('/readyz', {
    schema: {
      ...ops,
      operationId: 'ready',
      summary: 'The database answers (and, in a process that seals the audit log, whether sealing is stuck)',
      response: {
        200: {
          type: 'object',
          properties: {
            status: { type: 'string' },
            audit_sealer: {
              type: 'object',
              properties: {
                state: { type: 'string', enum: ['ok', 'stuck'] },
                problems: { type: 'array', items: { type: 'string' } },
                unsealed_entries: { type: 'integer' },
                oldest_unsealed_seconds: { type: 'integer' },
                rejected_entries: { type: 'integer' },
                failures_total: { type: 'integer' },
              },
            },
          },
        },
        503: { $ref: 'Problem' },
      },
    },
  }, async () => {
    await sql`select 1`.execute(db);
    // A stuck sealer is said, not answered with 503: the API still serves every tenant, and one
    // tenant's bad row must not take the service out of its load balancer (metrics alert on it).
    return sealerHealth ? { status: 'ready', audit_sealer: await sealerState(auditBacklog, sealerHealth) } : { status: 'ready' };
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  registerMetrics(app, (registry) => registerAuditMetrics(registry, auditBacklog, sealerHealth));
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { url: '/openapi.json', validatorUrl: null } as never, staticCSP: true, transformStaticCSP: docsPolicy });
  // The operator console (console/), same origin, under its own Content-Security-Policy.
  await app.register(consoleRoutes());
  return app;
}
