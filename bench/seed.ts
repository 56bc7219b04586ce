// The bench database: migrated with the project's migrator, one tenant and its OWNER key made by the
// project's tenants service, then 1,000,000 users (and their data keys) loaded with COPY. A seeded
// database is kept under scratch/bench and reused while its schema (the applied migrations) and
// the bench's data version are unchanged; --fresh always seeds again.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { Kysely } from 'kysely';
import { createDb } from '../src/db/database.js';
import { migrateToLatest, migrations } from '../src/db/migrate.js';
import { createTenantsService } from '../src/modules/tenants/tenants.service.js';
import { masterKeyId } from '../src/crypto/keyring.js';
import { deriveAuditKeys, installAuditKeys } from '../src/modules/audit/authentication.js';
import { GENESIS, sealAuditLog } from '../src/modules/audit/chain.js';
import { copyFrom } from './copy.js';
import { AUDIT_COPY_COLUMNS, EVENT_COPY_COLUMNS, History, SEAL_COPY_COLUMNS, KEY_COPY_COLUMNS, keyLine, linesOf, seededUsers, USER_COPY_COLUMNS, userLine } from './data.js';
import type { BenchPostgres } from './pg.js';

/** Bump when the generated data changes shape, so a cached database is seeded again. */
const DATA_VERSION = 4;
export const DATABASE = 'kyclo_bench';

export interface SeedState {
  dataVersion: number;
  migrations: string[];
  tenantId: string;
  apiKey: string;
  /** The id of that OWNER key (the seeded audit entries name it as their actor). */
  keyId: string;
  /** A second tenant that takes the POSTs, so the 1M-user tenant stays exactly as seeded. */
  writeTenantId?: string;
  writeApiKey?: string;
  masterKey: string;
  users: number;
  seededAt: string;
}

export interface SeedReport {
  reused: boolean;
  state: SeedState;
  /** Seconds: the COPY of users alone, of data keys, index rebuild, ANALYZE, the whole seeding. */
  timings?: { copyUsers: number; copyKeys: number; indexes: number; history: number; analyze: number; total: number };
}

const secs = (t0: number) => (performance.now() - t0) / 1000;

async function appliedMigrations(url: string): Promise<string[] | null> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    const r = await client.query<{ name: string }>('select name from kyclo_migrations order by name');
    return r.rows.map((x) => x.name);
  } catch {
    return null;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function ensureSeeded(
  server: BenchPostgres,
  dir: string,
  { fresh, users, log }: { fresh: boolean; users: number; log: (m: string) => void },
): Promise<SeedReport> {
  const stateFile = path.join(dir, 'seed.json');
  const state = JSON.parse(await fs.readFile(stateFile, 'utf8').catch(() => 'null')) as SeedState | null;
  if (!fresh && state && state.dataVersion === DATA_VERSION && state.users === users) {
    const have = await appliedMigrations(server.urlFor(DATABASE));
    // Any migration this checkout adds means another schema: seed again rather than guess (and
    // rather than apply it to a million rows first, only to drop them).
    if (have && have.join() === state.migrations.join() && have.join() === Object.keys(migrations).sort().join()) {
      log(`reusing the seeded database (${users.toLocaleString('en')} users, seeded ${state.seededAt}; --fresh to seed again)`);
      return { reused: true, state };
    }
    log('the schema or the seeded data changed since the last seeding: seeding again');
  }
  await fs.rm(stateFile, { force: true });
  const t0 = performance.now();
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${DATABASE} with (force)`);
  await admin.query(`create database ${DATABASE}`);
  await admin.end();

  const url = server.urlFor(DATABASE);
  const masterKey = crypto.randomBytes(32);
  // The tenants service authenticates its audit entries, as `kyclo tenants create` does.
  const auditKeys = deriveAuditKeys(masterKey);
  installAuditKeys(auditKeys);
  const db = createDb(url, { max: 2 });
  await migrateToLatest(db as unknown as Kysely<unknown>);
  const { tenant, key } = await createTenantsService({ db }).create('bench');
  // Its creation and its key's, sealed first: a tenant's history begins with its creation (verify).
  const sealed = await sealAuditLog(db);
  if (sealed.failures.length) throw new Error(`sealing the bench tenant's creation failed: ${String(sealed.failures[0]!.error)}`);
  await db.destroy();
  const appliedNames = (await appliedMigrations(url)) ?? [];

  const client = new pg.Client({ connectionString: url });
  const keysClient = new pg.Client({ connectionString: url });
  const logClient = new pg.Client({ connectionString: url });
  await Promise.all([client.connect(), keysClient.connect(), logClient.connect()]);
  try {
    for (const c of [client, keysClient, logClient]) await c.query("set maintenance_work_mem = '512MB'");
    await client.query('begin');
    // Truncated in this transaction, the table takes COPY ... FREEZE: rows land frozen and
    // all-visible, as after a VACUUM, so the first reads do not rewrite every page.
    await client.query('truncate users cascade');
    // Bulk-load practice: drop the secondary indexes, load, build them once. Their definitions are
    // read from the catalogue, so whatever the migrations declare is rebuilt exactly.
    const usersIdx = await dropSecondaryIndexes(client, 'users');
    let t = performance.now();
    const n = await copyFrom(
      client, `copy users (${USER_COPY_COLUMNS}) from stdin with (freeze)`,
      linesOf(seededUsers(users), (u) => userLine(tenant.id, u)),
    );
    await client.query('commit');
    const copyUsers = secs(t);
    log(`COPY users: ${n.toLocaleString('en')} rows in ${copyUsers.toFixed(1)} s`);

    // Two cores: the users indexes build on one connection while the data keys, then each user's
    // audit entry and event, load on the others.
    t = performance.now();
    const mkId = masterKeyId(masterKey);
    const building = (async () => {
      for (const r of usersIdx) await client.query(r.def);
      return secs(t);
    })();
    const loadingKeys = (async () => {
      await keysClient.query('begin');
      await keysClient.query('truncate user_keys');
      // Every key's user was just loaded: skip the per-row foreign-key check (replica mode turns
      // off the RI triggers for this session only; superuser, bench database only).
      await keysClient.query("set local session_replication_role = 'replica'");
      const k = await copyFrom(
        keysClient, `copy user_keys (${KEY_COPY_COLUMNS}) from stdin with (freeze)`,
        linesOf(seededUsers(users), (u) => keyLine(tenant.id, u.id, masterKey, mkId)),
      );
      await keysClient.query('commit');
      return { k, seconds: secs(t) };
    })();
    // The audit entries and events (tables of their own, no reference to users) load on a third
    // connection meanwhile. Not during the users' COPY: that one is timed alone (the < 60 s target).
    const loadingHistory = loadHistory(logClient, { tenantId: tenant.id, keyId: key.id, masterKey, macKey: auditKeys.macKey, chainKey: auditKeys.chainKey, users });
    loadingHistory.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
    const [indexes, keys] = await Promise.all([building, loadingKeys]);
    log(`COPY user_keys: ${keys.k.toLocaleString('en')} rows in ${keys.seconds.toFixed(1)} s (alongside the index builds)`);
    log(`users indexes rebuilt (${usersIdx.map((r) => r.name).join(', ')}) in ${indexes.toFixed(1)} s`);
    const history = await loadingHistory;
    log(`audit entries (sealed, chain head ${history.head}) and events (fanned out): ${history.rows.toLocaleString('en')} each in ${history.seconds.toFixed(1)} s`);
    t = performance.now();
    // The append-only logs were loaded without FREEZE (their TRUNCATE is refused by design): frozen
    // here, so no autovacuum of a million new rows lands in a measured window.
    await client.query('vacuum (freeze, analyze) audit_entries, events');
    await client.query('analyze');
    await client.query('checkpoint');
    const analyze = secs(t);
    const total = secs(t0);
    const next: SeedState = {
      dataVersion: DATA_VERSION, migrations: appliedNames, tenantId: tenant.id, apiKey: key.key, keyId: key.id,
      masterKey: masterKey.toString('base64'), users, seededAt: new Date().toISOString(),
    };
    await fs.writeFile(stateFile, JSON.stringify(next, null, 2) + '\n', { mode: 0o600 });
    return { reused: false, state: next, timings: { copyUsers, copyKeys: keys.seconds, indexes, history: history.seconds, analyze, total } };
  } catch (err) {
    for (const c of [client, keysClient, logClient]) await c.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    await Promise.all([client.end(), keysClient.end(), logClient.end()]);
  }
}

/** Drops a table's secondary indexes (not those behind a constraint); returns their definitions. */
async function dropSecondaryIndexes(client: pg.Client, table: string): Promise<Array<{ name: string; def: string }>> {
  const idx = await client.query<{ name: string; def: string }>(
    `select i.relname as name, pg_get_indexdef(i.oid) as def
       from pg_index x join pg_class i on i.oid = x.indexrelid join pg_class t on t.oid = x.indrelid
      where t.relname = $1 and not x.indisprimary
        and not exists (select 1 from pg_constraint c where c.conindid = i.oid)`,
    [table],
  );
  for (const r of idx.rows) await client.query(`drop index ${client.escapeIdentifier(r.name)}`);
  return idx.rows;
}

/**
 * One sealed `user.created` audit entry and one fanned-out `user.created` event per seeded user, so
 * the logs are at a realistic size when a run starts and the database verifies (`kyclo audit
 * verify`): the chain is computed here with the project's own entryMac and entryHash, the seq values
 * are given explicitly (COPY writes identity columns as given; the sequence is moved past them), and
 * the tenant's head is set to the last entry. They are chained on the tenant's head: the entries made
 * before (the tenant's creation, its key) were sealed first, since a history begins with the creation.
 */
async function loadHistory(
  client: pg.Client,
  o: { tenantId: string; keyId: string; masterKey: Buffer; macKey: Buffer; chainKey: Buffer; users: number },
): Promise<{ rows: number; head: string; seconds: number }> {
  const t = performance.now();
  const { rows } = await client.query<{ next: string }>(
    "select nextval(pg_get_serial_sequence('audit_entries', 'seq'))::text as next",
  );
  const head = (await client.query<{ chain_seq: string; hash: string }>('select chain_seq::text as chain_seq, hash from audit_heads where tenant_id = $1', [o.tenantId])).rows[0];
  const history = new History({
    tenantId: o.tenantId, masterKey: o.masterKey, macKey: o.macKey, chainKey: o.chainKey, keyId: o.keyId, firstSeq: BigInt(rows[0]!.next), users: o.users,
    head: head ? { chainSeq: BigInt(head.chain_seq), hash: head.hash } : undefined,
  });
  await client.query('begin');
  const auditIdx = await dropSecondaryIndexes(client, 'audit_entries');
  const eventIdx = await dropSecondaryIndexes(client, 'events');
  const sealIdx = await dropSecondaryIndexes(client, 'audit_seals');
  const n = await copyFrom(client, `copy audit_entries (${AUDIT_COPY_COLUMNS}) from stdin`, linesOf(seededUsers(o.users), (u) => history.auditLine(u)));
  await copyFrom(client, `copy audit_seals (${SEAL_COPY_COLUMNS}) from stdin`, linesOf(history.sealLines(), (line) => line));
  await client.query("select setval(pg_get_serial_sequence('audit_entries', 'seq'), $1::bigint)", [history.chain.seq.toString()]);
  await client.query('insert into audit_heads (tenant_id, chain_seq, hash) values ($1, 0, $2) on conflict do nothing', [o.tenantId, GENESIS]);
  await client.query('update audit_heads set chain_seq = $2::bigint, hash = $3, sealed_at = now() where tenant_id = $1', [
    o.tenantId, history.chain.chainSeq.toString(), history.chain.hash,
  ]);
  await copyFrom(client, `copy events (${EVENT_COPY_COLUMNS}) from stdin`, linesOf(seededUsers(o.users), (u) => history.eventLine(u)));
  for (const r of [...auditIdx, ...eventIdx, ...sealIdx]) await client.query(r.def);
  await client.query('commit');
  return { rows: n, head: history.chain.chainSeq.toString(), seconds: secs(t) };
}

/**
 * Append-only logs: the runs only add to the last pages of their tables, so those are not loaded up
 * front; their indexes are (a write adds to audit_entries_user and events_user at the user's place,
 * anywhere in the index, on both sides).
 */
const NOT_PREWARMED = ['audit_entries', 'events'];

/**
 * Loads every table the runs read, with its indexes and TOAST, into shared_buffers with pg_prewarm
 * (or, when the extension is not shipped, reads the tables through once so at least the OS cache
 * holds them). The append-only logs grow with every run and are left out, so what is loaded stays
 * the same size and keeps fitting in shared_buffers.
 */
export async function prewarm(server: BenchPostgres): Promise<{ method: string; mb: number; skippedMb: number; sharedBuffersMb: number; seconds: number }> {
  const t0 = performance.now();
  const client = new pg.Client({ connectionString: server.urlFor(DATABASE) });
  await client.connect();
  try {
    const rels = await client.query<{ oid: number; name: string; kind: string; bytes: string; warm: boolean }>(
      `with t as (
         select c.oid, c.reltoastrelid, not (c.relname = any($1)) as warm
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'public' and c.relkind = 'r'
       ), rels as (
         select oid, warm from t
         union all select x.indexrelid, true from pg_index x join t on x.indrelid = t.oid
         union all select reltoastrelid, warm from t where reltoastrelid <> 0
         union all select x.indexrelid, t.warm from t join pg_index x on x.indrelid = t.reltoastrelid where t.reltoastrelid <> 0
       )
       select r.oid, c.relname as name, c.relkind as kind, pg_relation_size(r.oid) as bytes, r.warm
         from rels r join pg_class c on c.oid = r.oid where pg_relation_size(r.oid) > 0`,
      [NOT_PREWARMED],
    );
    const warm = rels.rows.filter((r) => r.warm);
    const size = (xs: typeof warm) => xs.reduce((n, r) => n + Number(r.bytes), 0) / 2 ** 20;
    const sb = await client.query<{ bytes: string }>("select pg_size_bytes(current_setting('shared_buffers')) as bytes");
    const out = { mb: size(warm), skippedMb: size(rels.rows.filter((r) => !r.warm)), sharedBuffersMb: Number(sb.rows[0]!.bytes) / 2 ** 20 };
    if (server.prewarmAvailable) {
      await client.query('create extension if not exists pg_prewarm');
      for (const r of warm) await client.query('select pg_prewarm($1::regclass)', [r.oid]);
      return { method: 'pg_prewarm (shared_buffers)', ...out, seconds: secs(t0) };
    }
    for (const r of warm.filter((x) => x.kind === 'r')) await client.query(`select count(*) from ${client.escapeIdentifier(r.name)}`);
    return { method: 'sequential read (pg_prewarm not shipped: OS cache only, indexes not warmed)', ...out, seconds: secs(t0) };
  } finally {
    await client.end();
  }
}

/** Seeded users are all created before this date; anything later was made by a bench run. */
export const SEEDED_BEFORE = '2025-01-01T00:00:00Z';

/**
 * The write tenant (made on first use, also for databases seeded before it existed), and a clean
 * slate: every user a previous run created through the API (POSTs, smoke tests) is deleted with
 * what depends on it, so each run measures the same 1,000,000 users and the table does not grow
 * run after run. Audit entries and events stay: they are append-only, here as in production.
 */
export async function prepareRun(server: BenchPostgres, dir: string, state: SeedState): Promise<{ state: SeedState; removed: number }> {
  let next = state;
  installAuditKeys(deriveAuditKeys(Buffer.from(state.masterKey, 'base64')));
  if (!state.writeTenantId || !state.writeApiKey) {
    const db = createDb(server.urlFor(DATABASE), { max: 1 });
    const { tenant, key } = await createTenantsService({ db }).create('bench-writes').finally(() => db.destroy());
    next = { ...state, writeTenantId: tenant.id, writeApiKey: key.key };
    await fs.writeFile(path.join(dir, 'seed.json'), JSON.stringify(next, null, 2) + '\n', { mode: 0o600 });
  }
  const client = new pg.Client({ connectionString: server.urlFor(DATABASE) });
  await client.connect();
  try {
    await client.query(`alter role postgres in database ${DATABASE} reset all`);
    await client.query('begin');
    await client.query('create temporary table made (tenant_id text, id text) on commit drop');
    const made = await client.query('insert into made select tenant_id, id from users where created_at >= $1', [SEEDED_BEFORE]);
    // Whatever references users (data keys, change requests, documents…), read from the catalogue.
    const fks = await client.query<{ tbl: string; cols: string[]; refs: string[] }>(
      `select c.conrelid::regclass::text as tbl,
              array(select a.attname from unnest(c.conkey) with ordinality k(n, i) join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.n order by k.i)::text[] as cols,
              array(select a.attname from unnest(c.confkey) with ordinality k(n, i) join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.n order by k.i)::text[] as refs
         from pg_constraint c where c.contype = 'f' and c.confrelid = 'users'::regclass`,
    );
    for (const fk of fks.rows) {
      const on = fk.cols.map((c, i) => `x.${client.escapeIdentifier(c)} = m.${client.escapeIdentifier(fk.refs[i]!)}`).join(' and ');
      await client.query(`delete from ${fk.tbl} x using made m where ${on}`);
    }
    await client.query('delete from users u using made m where u.tenant_id = m.tenant_id and u.id = m.id');
    await client.query('commit');
    if (made.rowCount) await client.query('vacuum (analyze) users, user_keys');
    return { state: next, removed: made.rowCount ?? 0 };
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    await client.end();
  }
}
