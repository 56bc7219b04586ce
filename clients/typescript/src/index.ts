// @kyclo/client: requests typed from Kyclo's OpenAPI document (openapi-typescript + openapi-fetch),
// plus what every integrator otherwise writes by hand: an Idempotency-Key per POST reused by its
// retries, retries after Retry-After when that is safe (retry.ts), If-Match from the last ETag seen of a user,
// cursor iteration, errors as KycloProblem, and a Standard Webhooks verifier returning typed events.
import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema.js';
import { KycloProblem } from './problem.js';
import { retryingFetch, type RetryOptions } from './retry.js';

export type { components, paths, operations } from './schema.js';
export { KycloProblem, type FieldError, type ProblemDocument } from './problem.js';
export { retryAfterMs, type RetryOptions } from './retry.js';
export { createWebhookVerifier, WebhookVerificationError, type WebhookEvent, type WebhookEventOf, type WebhookEventType } from './webhooks.js';

type Schemas = components['schemas'];
export type User = Schemas['User'];
export type PatchDryRun = Schemas['PatchDryRun'];
export type StatusChange = Schemas['StatusChange'];
export type Capabilities = Schemas['Capabilities'];
export type Event = Schemas['Event'];
export type Verification = Schemas['Verification'];
export type ChangeRequest = Schemas['ChangeRequest'];
export type Document = Schemas['Document'];
export type WebhookEndpoint = Schemas['WebhookEndpoint'];
export type AuditEntry = Schemas['AuditEntry'];
export type ApiKey = Schemas['ApiKey'];
export type Me = Schemas['Me'];

type JsonBody<Op> = Op extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never;
type Query<Op> = Op extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;
export type CreateUserInput = JsonBody<paths['/v1/users']['post']>;
export type UserPatch = JsonBody<paths['/v1/users/{id}']['patch']>;
export type StatusMoveInput = NonNullable<JsonBody<paths['/v1/users/{id}/suspend']['post']>>;
export type StatusChangeInput = JsonBody<paths['/v1/users/{id}/status-changes']['post']>;
export type CloseInput = JsonBody<paths['/v1/users/{id}']['delete']>;
export type ListUsersQuery = Omit<Query<paths['/v1/users']['get']>, 'cursor'>;
export type ListEventsQuery = Omit<Query<paths['/v1/events']['get']>, 'cursor'>;

export interface KycloClientOptions extends RetryOptions {
  /** Where the API is, e.g. http://127.0.0.1:3000 (no /v1). */
  baseUrl: string;
  /** An API key: kyclo_live_… */
  apiKey: string;
  /** Send If-Match with the last ETag seen of a user on writes to it (default true): a stale one answers 412. */
  conditionalWrites?: boolean;
  /** Makes the Idempotency-Key of each POST (default: a random UUID). */
  idempotencyKey?: () => string;
  /** The fetch to use (default: the global one). */
  fetch?: (request: Request) => Promise<Response>;
}

/** Operations that take If-Match on a user: PATCH and DELETE of the user, and status moves. */
const CONDITIONAL = /^\/v1\/users\/([^/]+)(?:\/(?:status-changes|suspend|unsuspend|flag|block|unblock))?$/;
const USER_PATH = /^\/v1\/users\/(usr_[^/?]+)/;
const DRY_RUN = /^\/v1\/users\/[^/]+\/dry-run$/;
const BY_REF = /^\/v1\/users\/by-external-ref\/[^/]+$/;
const STATUS_MOVES = ['suspend', 'unsuspend', 'flag', 'block', 'unblock'] as const;

/** Iterates every item of a cursor-paginated list, fetching pages as it goes. */
export async function* paginate<T>(page: (cursor: string | undefined) => Promise<{ data: T[]; next_cursor: string | null }>): AsyncGenerator<T> {
  let cursor: string | undefined;
  do {
    const p = await page(cursor);
    yield* p.data;
    cursor = p.next_cursor ?? undefined;
  } while (cursor);
}

export function createKycloClient(options: KycloClientOptions) {
  const etags = new Map<string, string>();
  const conditional = options.conditionalWrites ?? true;
  const newKey = options.idempotencyKey ?? (() => crypto.randomUUID());
  const base = options.fetch ?? ((request: Request) => globalThis.fetch(request));
  const api = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ''),
    headers: { authorization: `Bearer ${options.apiKey}` },
    fetch: retryingFetch(base, options),
  });

  const pathOf = (request: Request) => new URL(request.url).pathname;
  const middleware: Middleware = {
    onRequest({ request }) {
      // One key per POST, made before the first attempt: every retry of it carries the same key.
      const multipart = (request.headers.get('content-type') ?? '').startsWith('multipart/');
      if (request.method === 'POST' && !multipart && !request.headers.has('idempotency-key')) request.headers.set('idempotency-key', newKey());
      const target = CONDITIONAL.exec(pathOf(request));
      if (conditional && target && request.method !== 'GET' && !request.headers.has('if-match')) {
        const tag = etags.get(decodeURIComponent(target[1]!));
        if (tag) request.headers.set('if-match', tag);
      }
      return request;
    },
    async onResponse({ request, response }) {
      const location = response.headers.get('location') ?? '';
      const path = pathOf(request);
      // A dry run changes nothing and is not a read of the user: the ETag last read stays the one
      // the write after it is conditional on (forgetting it sent that write without If-Match).
      if (DRY_RUN.test(path)) return response;
      const tag = response.headers.get('etag');
      // A read by the platform's own id answers the user's ETag too: kept under the user's id.
      if (BY_REF.test(path) && tag && response.ok) {
        const { id } = (await response.clone().json()) as { id?: unknown };
        if (typeof id === 'string') etags.set(id, tag);
        return response;
      }
      const id = USER_PATH.exec(path)?.[1] ?? USER_PATH.exec(location)?.[1];
      if (!id) return response;
      // A write that changed the user without answering its ETag (a status move) makes ours stale.
      if (tag) etags.set(id, tag);
      else if (request.method !== 'GET' && (response.ok || response.status === 412)) etags.delete(id);
      return response;
    },
  };
  api.use(middleware);

  /** The data of a 2xx, or the problem thrown. */
  async function ok<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
    const { data, error, response } = await call;
    if (!response.ok) throw new KycloProblem(response.status, error, response.headers.get('x-request-id'));
    return data as T;
  }
  const user = (id: string) => ({ params: { path: { id } } });

  const users = {
    create: (body: CreateUserInput) => ok(api.POST('/v1/users', { body })),
    get: (id: string) => ok(api.GET('/v1/users/{id}', user(id))),
    /** The user the platform knows by this id of its own (exact, case-sensitive); its ETag is kept like get's. */
    byExternalRef: (ref: string) => ok(api.GET('/v1/users/by-external-ref/{external_ref}', { params: { path: { external_ref: ref } } })),
    /** JSON Merge Patch: absent = unchanged, null = cleared. If-Match as the options say unless given. */
    update: (id: string, patch: UserPatch, opts: { ifMatch?: string } = {}) =>
      ok(api.PATCH('/v1/users/{id}', {
        ...user(id), body: patch as never,
        params: { path: { id }, header: opts.ifMatch ? { 'If-Match': opts.ifMatch } : undefined } as never,
        headers: { 'content-type': 'application/merge-patch+json' },
      })),
    /** What a patch would do, field by field; nothing changes. */
    dryRun: (id: string, patch: UserPatch) => ok(api.POST('/v1/users/{id}/dry-run', { ...user(id), body: patch as never })),
    /** Every user matching the filters, newest first: `for await (const u of client.users.list({ status: ['active'] }))`. */
    list: (query: ListUsersQuery = {}) =>
      paginate<User>((cursor) => ok(api.GET('/v1/users', { params: { query: { ...query, cursor } } }))),
    changeStatus: (id: string, body: StatusChangeInput) => ok(api.POST('/v1/users/{id}/status-changes', { ...user(id), body })),
    capabilities: (id: string) => ok(api.GET('/v1/users/{id}/capabilities', user(id))),
    /** Close for good, saying who asked (origin) and why (a reason code). */
    close: (id: string, body: CloseInput) => ok(api.DELETE('/v1/users/{id}', { ...user(id), body })),
    ...(Object.fromEntries(
      STATUS_MOVES.map((move) => [move, (id: string, body: StatusMoveInput) => ok(api.POST(`/v1/users/{id}/${move}`, { ...user(id), body }))]),
    ) as Record<(typeof STATUS_MOVES)[number], (id: string, body: StatusMoveInput) => Promise<StatusChange>>),
  };

  const events = {
    list: (query: ListEventsQuery = {}) => paginate<Event>((cursor) => ok(api.GET('/v1/events', { params: { query: { ...query, cursor } } }))),
    get: (id: string) => ok(api.GET('/v1/events/{id}', { params: { path: { id } } })),
  };

  return {
    /** Every operation, typed from the document (openapi-fetch): `{ data, error, response }`. */
    api,
    users,
    events,
    /** The ETag last seen of a user, if any. */
    etagOf: (id: string) => etags.get(id),
    ok,
  };
}

export type KycloClient = ReturnType<typeof createKycloClient>;
