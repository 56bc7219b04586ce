import os from 'node:os';
import crypto from 'node:crypto';
import path from 'node:path';
import fs from 'node:fs/promises';
import type { TestProject } from 'vitest/node';
import type { Kysely } from 'kysely';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { createDb } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { adminQuery, withDatabase } from './databases.js';
import { hasChromium } from './browser.js';
import { buildConsole, consoleIsStale } from '../../bin/build-if-stale.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    pgServerUrl: string;
    templateDb: string;
    masterKey: string;
  }
}

export default async function setup(project: TestProject) {
  // The console's browser tests serve console/dist: built once here, before test files run in
  // parallel, so no file serves a build another is rewriting.
  const root = path.resolve(import.meta.dirname, '../..');
  if (hasChromium && consoleIsStale(root) && !buildConsole(root)) throw new Error('the console (console/) does not build');
  let serverUrl = process.env.DATABASE_URL;
  let stopEmbedded: (() => Promise<void>) | undefined;
  let tmp: string | undefined;
  if (!serverUrl) {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'kyclo-test-'));
    const embedded = await startEmbeddedPostgres(tmp);
    serverUrl = embedded.url;
    stopEmbedded = embedded.stop;
  }
  const templateDb = `kyclo_tpl_${process.pid}`;
  await adminQuery(serverUrl, `drop database if exists ${templateDb} with (force)`);
  await adminQuery(serverUrl, `create database ${templateDb}`);
  const db = createDb(withDatabase(serverUrl, templateDb), { max: 1 });
  await migrateToLatest(db as unknown as Kysely<unknown>);
  await db.destroy();

  project.provide('pgServerUrl', serverUrl);
  project.provide('templateDb', templateDb);
  project.provide('masterKey', crypto.randomBytes(32).toString('base64'));

  return async () => {
    await adminQuery(serverUrl, `drop database if exists ${templateDb} with (force)`).catch(() => undefined);
    await stopEmbedded?.();
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  };
}
