// The export's reads, all on one connection inside one REPEATABLE READ, READ ONLY transaction: every
// page sees the same snapshot, so an export is the tenant as it was at one instant, however long it
// takes. Pages are keyset pages on the user id (ascending), never OFFSET.
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
}

export interface Snapshot {
  /** The transaction's start: everything committed before it is in the export, nothing after. */
  at: Date;
  /** A page of users; their timestamps as ISO strings (they only become lines). */
  users(tenantId: string, afterId: string | null, f: ExportFilters, limit: number): Promise<ViewedRow[]>;
  /** Rows of `table` for these users, in user then id order. */
  ofUsers<R>(table: 'verifications' | 'status_changes' | 'documents', tenantId: string, userIds: string[]): Promise<R[]>;
  close(): Promise<void>;
}

export async function openSnapshot(db: Db): Promise<Snapshot> {
  const pool = poolOf(db);
  if (!pool) throw new Error('an export needs the pool behind the database handle');
  const client: pg.PoolClient = await pool.connect();
  let released = false;
  try {
    await client.query('begin isolation level repeatable read read only');
    // A client reading slowly leaves this transaction idle between pages: longer than the pool's
    // default allowance, still bounded.
    await client.query("set local idle_in_transaction_session_timeout = '5min'");
    const at = (await client.query<{ now: Date }>('select now() as now')).rows[0]!.now;
    return {
      at,
      async users(tenantId, afterId, f, limit) {
        const params: unknown[] = [tenantId];
        const where = ['tenant_id = $1'];
        const add = (cond: (n: number) => string, v: unknown) => {
          params.push(v);
          where.push(cond(params.length));
        };
        if (afterId) add((n) => `id > $${n}`, afterId);
        if (f.updatedSince) add((n) => `updated_at >= $${n}`, new Date(f.updatedSince));
        if (f.status?.length) add((n) => `status = any($${n})`, f.status);
        if (f.kycStatus) add((n) => `kyc_status = $${n}`, f.kycStatus);
        if (f.type) add((n) => `type = $${n}`, f.type);
        if (f.tag) add((n) => `tags @> array[$${n}]::text[]`, f.tag);
        params.push(limit);
        const text = `select ${VIEW_COLUMN_LIST} from users where ${where.join(' and ')} order by id limit $${params.length}`;
        return (await client.query<ViewedRow>({ text, values: params, types: isoTimestampTypes })).rows;
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
