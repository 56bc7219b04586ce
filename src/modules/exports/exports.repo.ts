// The export's reads, all inside one REPEATABLE READ, READ ONLY transaction: every page sees the same
// snapshot, so an export is the tenant as it was at one instant, however long it takes. Pages are
// keyset pages on the user id (ascending), never OFFSET. An export written by worker threads
// (parallel.ts) shares that snapshot: the coordinating transaction exports it
// (`pg_export_snapshot()`), and each worker's transaction adopts it (`SET TRANSACTION SNAPSHOT`)
// before its first read, so every connection sees exactly the same rows.
import type pg from 'pg';
import { poolOf, type Db } from '../../db/database.js';
import { VIEW_COLUMN_LIST, type ViewedRow } from '../users/users.repo.js';
import { isoTimestampTypes } from '../../db/iso-timestamps.js';

export interface ExportFilters {
  updatedSince?: string;
  status?: string[];
  kycStatus?: string;
  type?: string;
  tag?: string;
  /** Risk ratings, `unrated` for a user never assessed: users.repo.ts riskCondition's expression. */
  risk?: string[];
  externalRef?: string;
  createdFrom?: string;
  createdTo?: string;
}

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

/** The WHERE clause of a page: the tenant, the keyset bounds and the list filters. */
function pageWhere(tenantId: string, afterId: string | null, f: ExportFilters, throughId?: string) {
  const params: unknown[] = [tenantId];
  const where = ['tenant_id = $1'];
  const add = (cond: (n: number) => string, v: unknown) => {
    params.push(v);
    where.push(cond(params.length));
  };
  if (afterId) add((n) => `id > $${n}`, afterId);
  if (throughId) add((n) => `id <= $${n}`, throughId);
  if (f.updatedSince) add((n) => `updated_at >= $${n}`, new Date(f.updatedSince));
  if (f.status?.length) add((n) => `status = any($${n})`, f.status);
  if (f.kycStatus) add((n) => `kyc_status = $${n}`, f.kycStatus);
  if (f.type) add((n) => `type = $${n}`, f.type);
  if (f.tag) add((n) => `tags @> array[$${n}]::text[]`, f.tag);
  if (f.risk?.length) {
    const rated = f.risk.filter((r) => r !== 'unrated');
    const unrated = f.risk.includes('unrated') ? `(risk ->> 'rating') is null` : null;
    if (rated.length) add((n) => (unrated ? `((risk ->> 'rating') = any($${n}) or ${unrated})` : `(risk ->> 'rating') = any($${n})`), rated);
    else where.push(unrated!);
  }
  if (f.externalRef) add((n) => `external_ref = $${n}`, f.externalRef);
  if (f.createdFrom) add((n) => `created_at >= $${n}`, new Date(f.createdFrom));
  if (f.createdTo) add((n) => `created_at < $${n}`, new Date(f.createdTo));
  return { params, where: where.join(' and ') };
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
      async users(tenantId, afterId, f, limit, throughId) {
        const { params, where } = pageWhere(tenantId, afterId, f, throughId);
        let text = `select ${VIEW_COLUMN_LIST} from users where ${where} order by id`;
        if (limit !== null) text += ` limit $${params.push(limit)}`;
        return (await client.query<ViewedRow>({ text, values: params, types: isoTimestampTypes })).rows;
      },
      async ids(tenantId, afterId, f, limit) {
        const { params, where } = pageWhere(tenantId, afterId, f);
        const text = `select id from users where ${where} order by id limit $${params.push(limit)}`;
        return (await client.query<[string]>({ text, values: params, rowMode: 'array' })).rows.map((r) => r[0]);
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
