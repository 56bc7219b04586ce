// The attack: a key lookup that read the key before its revocation committed, and answered after,
// put the key back in the one-second key cache after the revocation cleared it, so a request made
// *after* DELETE /v1/api-keys/{id} answered was still admitted by the same process ("no later
// request in this process may see the key as valid", api-keys.repo.ts forgetCachedKeys). A Kysely
// plugin holds the lookup's answer back (what a slow database does) while the key is revoked.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type KyselyPlugin, type PluginTransformQueryArgs, type PluginTransformResultArgs, type QueryResult, type UnknownRow, type RootOperationNode } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.js';
import { createKeyring } from '../src/crypto/keyring.js';
import { createDb, type Db } from '../src/db/database.js';
import { memoryLimiter } from '../src/http/rate-limit.js';
import { defaultBlobStore } from '../src/storage/blob-store.js';
import { client, createKey, createTenant } from './helpers/app.js';
import { createDatabaseFromTemplate } from './helpers/databases.js';

// Holds back the answer of the next key lookup (select … from api_keys join tenants) until released.
let armed = false;
let held: Promise<void> | null = null;
let release: () => void = () => undefined;
let caught: () => void = () => undefined;
const lookups = new Set<unknown>();
const isKeyLookup = (node: RootOperationNode) =>
  node.kind === 'SelectQueryNode' && JSON.stringify(node).includes('"api_keys"') && JSON.stringify(node).includes('"tenants"') && JSON.stringify(node).includes('key_hash');
const delay: KyselyPlugin = {
  transformQuery(args: PluginTransformQueryArgs) {
    if (armed && isKeyLookup(args.node)) {
      armed = false;
      lookups.add(args.queryId);
    }
    return args.node;
  },
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    if (lookups.delete(args.queryId)) {
      held = new Promise<void>((r) => (release = r));
      caught();
      await held;
    }
    return args.result;
  },
};

let app: FastifyInstance;
let base: Db;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  const database = await createDatabaseFromTemplate(inject('pgServerUrl'), inject('templateDb'));
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kyclo-keys-'));
  base = createDb(database.url, { max: 6 });
  app = await buildApp({ db: base.withPlugin(delay) as Db, keyring: createKeyring({ db: base, masterKey: Buffer.from(inject('masterKey'), 'base64') }), logLevel: 'silent', limiter: memoryLimiter(), authFailuresPerMinute: null, blobs: defaultBlobStore(dataDir) });
  await app.ready();
  cleanup = async () => {
    await app.close();
    await base.destroy();
    await database.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
  };
});
afterAll(() => cleanup());

describe('key revocation and the key cache', () => {
  it('a request sent after the revocation answered is refused', async () => {
    const t = await createTenant(base);
    const owner = client(app, t.ownerKey);
    const victim = await createKey(base, t.tenantId, 'READER');
    const asVictim = client(app, victim.key);
    expect((await owner.get('/v1/me')).statusCode).toBe(200); // the owner's key is cached: its lookup is not the held one

    // A request with the victim key whose lookup has read the row but not answered yet.
    const lookupCaught = new Promise<void>((r) => (caught = r));
    armed = true;
    const inFlight = asVictim.get('/v1/users');
    await lookupCaught;

    const revoked = await owner.delete(`/v1/api-keys/${victim.id}`);
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json().revoked_at).not.toBeNull();

    release(); // the lookup that began before the revocation answers now
    await inFlight;

    // Sent after the revocation was answered: must be refused.
    const after = await asVictim.get('/v1/users');
    expect(after.statusCode, 'a revoked key admitted after its revocation answered').toBe(401);
  });
});
