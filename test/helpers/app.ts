// The test harness: a real PostgreSQL database per test file, the real app, real HTTP via inject().
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inject } from 'vitest';
import { defaultBlobStore, type BlobStore } from '../../src/storage/blob-store.js';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/app.js';
import { checkContract } from './contract.js';
import { createKeyring, type Keyring } from '../../src/crypto/keyring.js';
import { mergePersonal, openPersonal } from '../../src/modules/events/personal.js';
import type { TargetPolicy } from '../../src/modules/webhooks/ssrf.js';
import { memoryLimiter, redisLimiter, type Limiter } from '../../src/http/rate-limit.js';
import { createDb, type Db } from '../../src/db/database.js';
import { createDatabaseFromTemplate } from './databases.js';
import { createTenantsService } from '../../src/modules/tenants/tenants.service.js';
import { createApiKeysService } from '../../src/modules/api-keys/api-keys.service.js';
import { cliActor } from '../../src/modules/audit/actor.js';
import type { Role } from '../../src/modules/api-keys/roles.js';
import type { UploadLimits } from '../../src/modules/documents/upload-slots.js';

export interface TestContext {
  app: FastifyInstance;
  db: Db;
  keyring: Keyring;
  /** This context's KYCLO_DATA_DIR (a fresh folder, removed on close) and its document store. */
  dataDir: string;
  blobs: BlobStore;
  databaseUrl: string;
  close(): Promise<void>;
}

/** Tests reach their own local receivers: private targets and http are allowed unless a test says otherwise. */
export async function createTestContext(
  opts: { webhookTargets?: TargetPolicy; limiter?: Limiter; documentMaxBytes?: number; uploads?: Partial<UploadLimits>; authFailuresPerMinute?: number } = {},
): Promise<TestContext> {
  const database = await createDatabaseFromTemplate(inject('pgServerUrl'), inject('templateDb'));
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kyclo-data-'));
  const blobs = defaultBlobStore(dataDir);
  const db = createDb(database.url, { max: 10 });
  const keyring = createKeyring({ db, masterKey: Buffer.from(inject('masterKey'), 'base64') });
  const app = await buildApp({
    db, keyring, logLevel: process.env.TEST_LOG_LEVEL ?? 'silent',
    webhookTargets: opts.webhookTargets ?? { allowHttp: true, allowPrivate: true },
    // The real shared limiter whenever a Redis is configured (CI), the in-process one otherwise.
    limiter: opts.limiter ?? (process.env.REDIS_URL ? redisLimiter(process.env.REDIS_URL) : memoryLimiter()),
    // Every inject() comes from 127.0.0.1 and test files share one Redis: the per-address key-guessing
    // limit is off unless a test asks for it (test/key-guessing.test.ts).
    authFailuresPerMinute: opts.authFailuresPerMinute ?? null,
    blobs,
    documentMaxBytes: opts.documentMaxBytes,
    uploads: opts.uploads,
  });
  checkContract(app);
  await app.ready();
  return {
    app,
    db,
    keyring,
    blobs,
    dataDir,
    databaseUrl: database.url,
    close: async () => {
      await app.close();
      await db.destroy();
      await database.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

let tenantCounter = 0;

/** A tenant with an OWNER key, made the way the CLI makes them. */
export async function createTenant(db: Db, name = `tenant-${process.pid}-${++tenantCounter}-${Date.now()}`) {
  const { tenant, key } = await createTenantsService({ db }).create(name);
  return { tenantId: tenant.id, ownerKey: key.key, ownerKeyId: key.id };
}

export async function createKey(db: Db, tenantId: string, role: Role): Promise<{ key: string; id: string }> {
  const k = await createApiKeysService({ db }).create(cliActor(tenantId), { role, name: `${role} test key` });
  return { key: k.key, id: k.id };
}

export interface Call {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT';
  url: string;
  body?: unknown;
  headers?: Record<string, string>;
}

// Test bodies are asserted field by field, so json() defaults to any.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Response = LightMyRequestResponse & { body: string; json<T = any>(): T };

/** A client bound to one API key. */
export function client(app: FastifyInstance, key: string | null) {
  const call = async ({ method, url, body, headers = {} }: Call): Promise<Response> => {
    const h: Record<string, string> = { ...headers };
    if (key) h.authorization = `Bearer ${key}`;
    if (body !== undefined && !h['content-type']) h['content-type'] = 'application/json';
    return (await app.inject({
      method,
      url,
      headers: h,
      payload: body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    })) as Response;
  };
  return {
    call,
    get: (url: string, headers?: Record<string, string>) => call({ method: 'GET', url, headers }),
    post: (url: string, body?: unknown, headers?: Record<string, string>) => call({ method: 'POST', url, body, headers }),
    patch: (url: string, body?: unknown, headers?: Record<string, string>) => call({ method: 'PATCH', url, body, headers }),
    put: (url: string, body?: unknown, headers?: Record<string, string>) => call({ method: 'PUT', url, body, headers }),
    delete: (url: string, body?: unknown, headers?: Record<string, string>) => call({ method: 'DELETE', url, body, headers }),
  };
}
export type Client = ReturnType<typeof client>;

/** A test file's usual start: its own database, the app, and one tenant with an OWNER client. */
export async function openTenantContext() {
  const ctx = await createTestContext();
  const t = await createTenant(ctx.db);
  return { ctx, api: client(ctx.app, t.ownerKey), ...t };
}

/** Event (or audit) rows read from the database with their sealed personal part opened, as the API shows them. */
export async function withPersonal<R extends { tenant_id: string; user_id: string | null; personal_enc: string | null; data?: unknown; details?: unknown }>(
  ctx: TestContext,
  rows: R[],
): Promise<Array<R & { data: Record<string, unknown> }>> {
  if (rows.length === 0) return [];
  const opened = await openPersonal(ctx.keyring, rows[0]!.tenant_id, rows);
  return rows.map((r, i) => ({ ...r, data: mergePersonal((r.data ?? {}) as Record<string, unknown>, opened[i]) }));
}
