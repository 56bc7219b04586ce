// Where the database comes from: DATABASE_URL when set, the embedded PostgreSQL otherwise.
import type { Config } from '../config.js';
import { closeDb, createDb, type Db } from './database.js';
import { startEmbeddedPostgres } from './embedded.js';
import { migrateToLatest } from './migrate.js';
import type { Kysely } from 'kysely';

export interface Connected {
  db: Db;
  embedded: boolean;
  /** Closes the pool, then stops the embedded PostgreSQL if there is one. */
  close(): Promise<void>;
}

export async function connect(config: Config, log: (msg: string) => void, opts: { owner?: boolean } = {}): Promise<Connected> {
  if (config.databaseUrl) {
    const db = createDb(config.databaseUrl);
    return { db, embedded: false, close: () => closeDb(db) };
  }
  const pg = await startEmbeddedPostgres(config.dataDir, log, opts);
  const db = createDb(pg.url);
  return {
    db,
    embedded: true,
    close: async () => {
      await closeDb(db);
      await pg.stop();
    },
  };
}

export async function migrate(db: Db): Promise<string[]> {
  return migrateToLatest(db as unknown as Kysely<unknown>);
}
