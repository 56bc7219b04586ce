// The export's reads, all inside one REPEATABLE READ, READ ONLY transaction: every page sees the same
// snapshot, so an export is the tenant as it was at one instant, however long it takes. Pages are
// keyset pages on the user id (ascending), never OFFSET. An export written by worker threads
// (parallel.ts) shares that snapshot: the coordinating transaction exports it
// (`pg_export_snapshot()`), and each worker's transaction adopts it (`SET TRANSACTION SNAPSHOT`)
// before its first read, so every connection sees exactly the same rows.
import type pg from 'pg';
import { poolOf, type Db } from '../../db/database.js';
import { sql, type RawBuilder } from 'kysely';
import { filterConditions, VIEW_COLUMN_LIST, type UserFilters, type ViewedRow } from '../users/users.repo.js';
import { isoTimestampTypes } from '../../db/iso-timestamps.js';

/** The list's filters but its search (`q`, `custom`): users.repo.ts `filterConditions` turns them into SQL for both. */
export type ExportFilters = Omit<UserFilters, 'q' | 'customMatch' | 'customToken'>;

export interface Snapshot {
  /** The transaction's start: everything committed before it is in the export, nothing after. */
  at: Date;
  /** The snapshot's name for other transactions to adopt; set only when opened to be shared. */
  id: string | null;
  /** A page of users after `afterId` (and up to `throughId` when given); timestamps as ISO strings (they only become lines). */
  users(tenantId: string, afterId: string | null, f: ExportFilters, limit: number | null, throughId?: string): Promise<ViewedRow[]>;
  /** The ids of the next `limit` users after `afterId`: how a parallel export cuts its pages. */
  ids(tenantId: string, afterId: string | null, f: ExportFilters, limit: number): Promise<string[]>;
  /** Rows of `table` for these users, in user then id order. */
  ofUsers<R>(table: 'verifications' | 'status_changes' | 'documents', tenantId: string, userIds: string[]): Promise<R[]>;
  close(): Promise<void>;
}

/** What pg_export_snapshot() answers (e.g. 00000003-0000001B-1): checked, since SET TRANSACTION SNAPSHOT takes no parameter. */
const SNAPSHOT_ID = /^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$/i;

/** The WHERE clause of a page: the tenant, the keyset bounds and the list's own filter conditions. */
function pageWhere(tenantId: string, afterId: string | null, f: ExportFilters, throughId?: string): RawBuilder<unknown> {
  const bounds = [...(afterId ? [sql`id > ${afterId}`] : []), ...(throughId ? [sql`id <= ${throughId}`] : [])];
  return sql.join([sql`tenant_id = ${tenantId}`, ...bounds, ...filterConditions(f)], sql` and `);
}

/** Opens the export's snapshot on a connection of its own; `shared` names it for worker threads to adopt. */
export function openSnapshot(db: Db, opts: { shared?: boolean } = {}): Promise<Snapshot> {
  return onConnection(db, async (client) => {
    await client.query('begin isolation level repeatable read read only');
    const row = (await client.query<{ now: Date; id: string | null }>(`select now() as now, ${opts.shared ? 'pg_export_snapshot()' : 'null'} as id`)).rows[0]!;
    return { at: row.now, id: row.id };
  });
}

/** Adopts a snapshot another transaction exported (and still holds open): the same rows, on this connection. */
export function joinSnapshot(db: Db, snapshotId: string): Promise<Snapshot> {
  if (!SNAPSHOT_ID.test(snapshotId)) throw new Error(`not a snapshot name: ${snapshotId}`);
  return onConnection(db, async (client) => {
    await client.query('begin isolation level repeatable read read only');
    await client.query(`set transaction snapshot '${snapshotId}'`);
    const { now } = (await client.query<{ now: Date }>('select now() as now')).rows[0]!;
    return { at: now, id: snapshotId };
  });
}

async function onConnection(db: Db, begin: (client: pg.PoolClient) => Promise<{ at: Date; id: string | null }>): Promise<Snapshot> {
  const pool = poolOf(db);
  if (!pool) throw new Error('an export needs the pool behind the database handle');
  const client: pg.PoolClient = await pool.connect();
  let released = false;
  try {
    const { at, id } = await begin(client);
    // A client reading slowly leaves this transaction idle between pages: longer than the pool's
    // default allowance, still bounded.
    await client.query("set local idle_in_transaction_session_timeout = '5min'");
    return {
      at,
      id,
      // Compiled by Kysely, run on this connection: the snapshot's transaction is this client's.
      async users(tenantId, afterId, f, limit, throughId) {
        const limited = limit === null ? sql`` : sql` limit ${limit}`;
        const q = sql`select ${sql.raw(VIEW_COLUMN_LIST)} from users where ${pageWhere(tenantId, afterId, f, throughId)} order by id${limited}`.compile(db);
        return (await client.query<ViewedRow>({ text: q.sql, values: q.parameters as unknown[], types: isoTimestampTypes })).rows;
      },
      async ids(tenantId, afterId, f, limit) {
        const q = sql`select id from users where ${pageWhere(tenantId, afterId, f)} order by id limit ${limit}`.compile(db);
        return (await client.query<[string]>({ text: q.sql, values: q.parameters as unknown[], rowMode: 'array' })).rows.map((r) => r[0]);
      },
      async ofUsers<R>(table: string, tenantId: string, userIds: string[]) {
        if (userIds.length === 0) return [];
        return (await client.query(`select * from ${table} where tenant_id = $1 and user_id = any($2) order by user_id, id`, [tenantId, userIds])).rows as R[];
      },
      async close() {
        if (released) return;
        released = true;
        await client.query('commit').catch(() => undefined);
        client.release();
      },
    };
  } catch (err) {
    client.release(err as Error);
    throw err;
  }
}
