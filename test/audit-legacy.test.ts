// Upgrading a log written before entries carried a MAC: what the old code sealed (plain SHA-256
// chain, no MAC) and what it left unsealed still verify, named exactly by migration 0014; anything
// MAC-less written after the upgrade is refused, whatever position it claims.
import crypto from 'node:crypto';
import { Migrator, sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createDb, type Db } from '../src/db/database.js';
import { migrations } from '../src/db/migrate.js';
import { deriveAuditKeys, installAuditKeys } from '../src/modules/audit/authentication.js';
import { entryHash, GENESIS, sealAuditLog, type EntryRow } from '../src/modules/audit/chain.js';
import { verifyTenantChain } from '../src/modules/audit/verify.js';
import { adminQuery, withDatabase } from './helpers/databases.js';

const serverUrl = inject('pgServerUrl');
const name = `kyclo_legacy_${crypto.randomBytes(5).toString('hex')}`;
let db: Db;
const keys = deriveAuditKeys(Buffer.from(inject('masterKey'), 'base64'));
const migrator = () =>
  new Migrator({
    db: db as unknown as Kysely<unknown>,
    provider: { getMigrations: async () => migrations },
    migrationTableName: 'kyclo_migrations',
    migrationLockTableName: 'kyclo_migrations_lock',
  });

beforeAll(async () => {
  await adminQuery(serverUrl, `create database ${name}`);
  db = createDb(withDatabase(serverUrl, name), { max: 2 });
  installAuditKeys(keys);
});
afterAll(async () => {
  await db.destroy();
  await adminQuery(serverUrl, `drop database if exists ${name} with (force)`);
});

/** An entry as the code before migration 0010 wrote it: the database's time, no MAC. */
const oldEntry = (tenantId: string, id: string, action: string) => sql`
  insert into audit_entries (tenant_id, id, actor_type, action, outcome, target_type, target_id)
  values (${tenantId}, ${id}, 'cli', ${action}, 'applied', 'tenant', ${tenantId})`;

it('a pre-MAC log verifies after the upgrade, its unsealed entries are sealed, and a MAC-less newcomer is refused', async () => {
  const upTo9 = await migrator().migrateTo('0009_search_statistics_default');
  expect(upTo9.error).toBeUndefined();
  const tenantId = 'ten_01LEGACYTENANT00000000000';
  await sql`insert into tenants (id, name, policy) values (${tenantId}, 'legacy', '{}')`.execute(db);
  for (let i = 1; i <= 3; i++) await oldEntry(tenantId, `aud_01LEGACYSEALED00000000000${i}`, i === 1 ? 'tenant.created' : 'api_key.created').execute(db);
  // The old sealer: SHA-256 over the canonical entry, its position and the previous hash.
  // (Before 0010 there is no mac column: the same columns as ENTRY_COLUMNS, less that one.)
  const rows = (await sql<EntryRow>`
    select tenant_id, seq::text as seq, id, to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as occurred_at,
           actor_type, actor_key_id, actor_role, action, outcome, target_type, target_id, user_id, changed_fields,
           request_id, ip, details, personal_enc, null as chain_seq, null as prev_hash, null as hash
    from audit_entries order by audit_entries.seq`.execute(db)).rows;
  let prev = GENESIS;
  for (const [i, r] of rows.entries()) {
    const h = entryHash({ ...r, mac: null }, String(i + 1), prev, null);
    await sql`update audit_entries set chain_seq = ${i + 1}, prev_hash = ${prev}, hash = ${h} where id = ${r.id}`.execute(db);
    prev = h;
  }
  await sql`insert into audit_heads (tenant_id, chain_seq, hash) values (${tenantId}, 3, ${prev})`.execute(db);
  await oldEntry(tenantId, 'aud_01LEGACYUNSEALED0000000000', 'api_key.revoked').execute(db);

  const rest = await migrator().migrateToLatest();
  expect(rest.error).toBeUndefined();
  const opts = { ...keys };
  expect(await verifyTenantChain(db, tenantId, opts)).toMatchObject({ ok: true, sealed: 3, pending: 1 });

  // After the upgrade: a MAC-less entry, even one placed before every legacy position, is not legacy.
  await sql`
    with e as (
      insert into audit_entries (tenant_id, seq, id, actor_type, action, outcome, target_type)
      overriding system value values (${tenantId}, -1, 'aud_01FORGEDAFTERUPGRADE00000', 'cli', 'api_key.created', 'applied', 'tenant')
      returning tenant_id, seq
    )
    insert into audit_unsealed (tenant_id, seq) select tenant_id, seq from e`.execute(db);
  const report = await sealAuditLog(db);
  expect(report).toMatchObject({ sealed: 1, rejected: 1, failures: [] });
  const sealed = (await sql<{ id: string }>`
    select e.id from audit_seals s join audit_entries e on e.tenant_id = s.tenant_id and e.seq = s.entry_seq order by s.chain_seq`.execute(db)).rows;
  expect(sealed.map((e) => e.id).at(-1)).toBe('aud_01LEGACYUNSEALED0000000000');
  const r = await verifyTenantChain(db, tenantId, opts);
  expect(r).toMatchObject({ ok: false, entryId: 'aud_01FORGEDAFTERUPGRADE00000' });

  // The legacy list itself is frozen.
  await expect(sql`update audit_legacy set sealed_upto = 1000`.execute(db)).rejects.toThrow(/append-only/);
});
