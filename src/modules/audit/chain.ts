// The tamper-evident audit log. Entries are written unsealed inside each change's transaction (no
// per-tenant lock on the write path); the sealer then chains them, per tenant, in the order it sees
// them: hash = SHA-256 over the RFC 8785 canonical form of the entry with its position and the
// previous hash. Any later UPDATE, DELETE, swap or backdating of a sealed entry breaks the chain.
import crypto from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import { canonicalJson } from '../../lib/canonical-json.js';

export const GENESIS = '0'.repeat(64);

// Timestamps are hashed as PostgreSQL stores them (microseconds, UTC), never through a JS Date.
// The aliases shadow the columns in ORDER BY, so queries order by the qualified (numeric) columns.
const ENTRY_COLUMNS = sql`tenant_id, seq::text as seq, id,
  to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as occurred_at,
  actor_type, actor_key_id, actor_role, action, outcome, target_type, target_id, user_id, changed_fields,
  request_id, ip, details, personal_enc, chain_seq::text as chain_seq, prev_hash, hash`;

interface EntryRow {
  tenant_id: string; seq: string; id: string; occurred_at: string; actor_type: string; actor_key_id: string | null;
  actor_role: string | null; action: string; outcome: string; target_type: string; target_id: string | null;
  user_id: string | null; changed_fields: string[]; request_id: string | null; ip: string | null;
  details: unknown; personal_enc: string | null; chain_seq: string | null; prev_hash: string | null; hash: string | null;
}

export function entryHash(e: EntryRow, chainSeq: string, prevHash: string): string {
  const { hash: _h, chain_seq: _c, prev_hash: _p, ...content } = e;
  return crypto.createHash('sha256').update(canonicalJson({ ...content, chain_seq: chainSeq, prev_hash: prevHash })).digest('hex');
}

/** Seals up to `batch` unsealed entries of one tenant; a tenant another sealer holds is skipped. */
async function sealTenant(db: Db, tenantId: string, batch: number): Promise<number> {
  return db.transaction().execute(async (tx) => {
    await sql`insert into audit_heads (tenant_id, chain_seq, hash) values (${tenantId}, 0, ${GENESIS}) on conflict do nothing`.execute(tx);
    const head = await sql<{ chain_seq: string; hash: string }>`
      select chain_seq::text as chain_seq, hash from audit_heads where tenant_id = ${tenantId} for update skip locked`.execute(tx);
    if (!head.rows[0]) return 0;
    const rows = await sql<EntryRow>`
      select ${ENTRY_COLUMNS} from audit_entries where tenant_id = ${tenantId} and hash is null order by audit_entries.seq limit ${batch}`.execute(tx);
    if (rows.rows.length === 0) return 0;
    let seq = BigInt(head.rows[0].chain_seq);
    let prev = head.rows[0].hash;
    const seqs: string[] = [];
    const prevs: string[] = [];
    const hashes: string[] = [];
    const ids: string[] = [];
    for (const r of rows.rows) {
      seq += 1n;
      const h = entryHash(r, seq.toString(), prev);
      ids.push(r.id);
      seqs.push(seq.toString());
      prevs.push(prev);
      hashes.push(h);
      prev = h;
    }
    await sql`
      update audit_entries a set chain_seq = v.chain_seq::bigint, prev_hash = v.prev_hash, hash = v.hash
      from unnest(${ids}::text[], ${seqs}::text[], ${prevs}::text[], ${hashes}::text[]) as v(id, chain_seq, prev_hash, hash)
      where a.tenant_id = ${tenantId} and a.id = v.id`.execute(tx);
    await sql`update audit_heads set chain_seq = ${seq.toString()}::bigint, hash = ${prev}, sealed_at = now() where tenant_id = ${tenantId}`.execute(tx);
    return rows.rows.length;
  });
}

/** Seals every unsealed entry of every tenant. */
export async function sealAuditLog(db: Db, batch = 1000): Promise<number> {
  let total = 0;
  const tenants = await sql<{ tenant_id: string }>`select distinct tenant_id from audit_entries where hash is null`.execute(db);
  for (const { tenant_id } of tenants.rows) {
    for (;;) {
      const n = await sealTenant(db, tenant_id, batch);
      total += n;
      if (n < batch) break;
    }
  }
  return total;
}

export type VerifyResult =
  | { tenantId: string; ok: true; sealed: number; pending: number }
  | { tenantId: string; ok: false; brokenAt: string; reason: string; sealed: number; pending: number };

/**
 * Walks one tenant's chain from the start up to its recorded head; reports the first sequence number
 * that does not hold. Entries sealed while it walks lie past that head and wait for the next run, so
 * a live system never looks tampered with.
 */
export async function verifyTenantChain(db: Db, tenantId: string): Promise<VerifyResult> {
  const head = (await sql<{ chain_seq: string; hash: string }>`select chain_seq::text as chain_seq, hash from audit_heads where tenant_id = ${tenantId}`.execute(db)).rows[0];
  const limit = head?.chain_seq ?? '0';
  const pending = Number((await sql<{ n: string }>`
    select count(*) as n from audit_entries where tenant_id = ${tenantId} and (hash is null or audit_entries.chain_seq > ${limit}::bigint)`.execute(db)).rows[0]!.n);
  let expected = 1n;
  let prev = GENESIS;
  let after = '0';
  for (;;) {
    const rows = await sql<EntryRow>`
      select ${ENTRY_COLUMNS} from audit_entries
      where tenant_id = ${tenantId} and audit_entries.chain_seq > ${after}::bigint and audit_entries.chain_seq <= ${limit}::bigint
      order by audit_entries.chain_seq limit 5000`.execute(db);
    for (const r of rows.rows) {
      const at = expected.toString();
      const broken = (reason: string): VerifyResult => ({ tenantId, ok: false, brokenAt: at, reason, sealed: Number(expected - 1n), pending });
      if (r.chain_seq !== at) return broken(`entry ${at} is missing (next is ${r.chain_seq})`);
      if (r.prev_hash !== prev) return broken('its previous-hash link does not match the entry before it');
      if (entryHash(r, at, prev) !== r.hash) return broken('its content does not match its hash');
      prev = r.hash;
      expected += 1n;
    }
    if (rows.rows.length < 5000) break;
    after = rows.rows.at(-1)!.chain_seq!;
  }
  const sealed = expected - 1n;
  if (head && (head.chain_seq !== sealed.toString() || head.hash !== prev)) {
    return { tenantId, ok: false, brokenAt: (sealed + 1n).toString(), reason: `the chain ends at ${sealed} but was sealed up to ${head.chain_seq}: entries were removed`, sealed: Number(sealed), pending };
  }
  return { tenantId, ok: true, sealed: Number(sealed), pending };
}

export async function verifyAuditLog(db: Db, tenantId?: string): Promise<VerifyResult[]> {
  const tenants = tenantId ? [tenantId] : (await db.selectFrom('tenants').select('id').orderBy('id').execute()).map((t) => t.id);
  const out: VerifyResult[] = [];
  for (const t of tenants) out.push(await verifyTenantChain(db, t));
  return out;
}
