// Writes the OpenAPI document the server serves at /openapi.json to a file (default: stdout), without
// a database: building the app opens no connection, and the document needs none. Used by
// `npm run lint:openapi` (Redocly) and by the client's type generation (clients/typescript).
import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { buildApp } from '../src/app.js';
import { createDb } from '../src/db/database.js';
import { createKeyring } from '../src/crypto/keyring.js';
import { memoryLimiter } from '../src/http/rate-limit.js';
import { defaultBlobStore } from '../src/storage/blob-store.js';

export async function openApiDocument(): Promise<Record<string, unknown>> {
  // A pool that is never used: nothing here runs a query.
  const db = createDb('postgres://unused@127.0.0.1:1/unused', { max: 1 });
  const app = await buildApp({
    db, keyring: createKeyring({ db, masterKey: crypto.randomBytes(32) }), logLevel: 'silent',
    limiter: memoryLimiter(), blobs: defaultBlobStore('/nonexistent'),
  });
  await app.ready();
  const doc = app.swagger() as unknown as Record<string, unknown>;
  await app.close();
  await db.destroy();
  return structuredClone(doc);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const text = JSON.stringify(await openApiDocument(), null, 2) + '\n';
  const out = process.argv[2];
  if (out) {
    await fs.mkdir(path.dirname(out), { recursive: true });
    await fs.writeFile(out, text);
  }
  else process.stdout.write(text);
}
