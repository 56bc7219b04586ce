// The tamper-evident audit log. Entries are written unsealed inside each change's transaction (no
// per-tenant lock on the write path), each with the MAC of the process that wrote it, and queued in
// audit_unsealed by a trigger; the sealer then chains them, per tenant, in the order it sees them,
// into audit_seals (entries themselves are never updated): hash = HMAC-SHA256 (a key derived from the
// master key) over the RFC 8785 canonical form of the entry with its position and the previous hash
// (plain SHA-256 for the legacy prefix sealed before migration 0014). Any later UPDATE, DELETE, swap
// or backdating of a sealed entry breaks the chain, and without the key nobody can recompute it; an
// entry nobody with the master key wrote is never chained.
// After sealing, each tenant's new head is signed (a checkpoint) and published for auditors to keep
// outside the database: what the database alone cannot prove, the checkpoints do (see verify.ts).
import crypto from 'node:crypto';
import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import { canonicalJson } from '../../lib/canonical-json.js';
import { newId } from '../../lib/ids.js';
import { auditKeys, macMatches, macTimestamp, signCheckpoint, type Checkpoint } from './authentication.js';

export const GENESIS = '0'.repeat(64);

// Timestamps are hashed, MACed and signed as PostgreSQL stores them (microseconds, UTC), never
// through a JS Date. Queries order by the qualified (numeric) columns, which the aliases shadow.
const utcMicros = (column: string, alias: string) =>
  sql`to_char(${sql.ref(column)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as ${sql.ref(alias)}`;

/**
 * An entry (alias e) with its seal (alias s) when it has one. Since migration 0016 entries are never
 * updated: the chain lives in audit_seals, one append-only row per sealed entry.
 */
export const ENTRY_COLUMNS = sql`e.tenant_id, e.seq::text as seq, e.id, ${utcMicros('e.occurred_at', 'occurred_at')},
  e.actor_type, e.actor_key_id, e.actor_role, e.action, e.outcome, e.target_type, e.target_id, e.user_id, e.changed_fields,
  e.request_id, e.ip, e.details, e.personal_enc, e.mac, s.chain_seq::text as chain_seq, s.prev_hash, s.hash`;

/**
 * A tenant's queued entries past `after` (a position in the log), oldest first, as ENTRY_COLUMNS
 * reads them (their seal columns null): a page of the queue, then each entry by its primary key.
 * Written as a LATERAL lookup so no plan can turn it into a scan of the tenant's whole log, whatever
 * the statistics of the young, fast-changing queue say (a hash join read ≈ 90,000 buffers a call).
 * A queue row whose entry does not exist comes back with a null entry (select `u.seq as queue_seq`
 * to page on): paged past by the sealer, reported by verify. Joined away, a page of such rows (the
 * queue has no foreign key) read as an empty queue and stopped the tenant's sealing for good.
 */
export const queuedEntries = (tenantId: string, after: string, limit: number) => sql`
  (select tenant_id, seq from audit_unsealed where tenant_id = ${tenantId} and seq > ${after}::bigint order by seq limit ${limit}) u
  left join lateral (select * from audit_entries x where x.tenant_id = u.tenant_id and x.seq = u.seq) e on true
  left join audit_seals s on false`;

export interface EntryRow {
  tenant_id: string; seq: string; id: string; occurred_at: string; actor_type: string; actor_key_id: string | null;
  actor_role: string | null; action: string; outcome: string; target_type: string; target_id: string | null;
  user_id: string | null; changed_fields: string[]; request_id: string | null; ip: string | null;
  details: unknown; personal_enc: string | null; mac: string | null; chain_seq: string | null; prev_hash: string | null; hash: string | null;
}

/** `chainKey` null: the legacy prefix, hashed with plain SHA-256 before the chain was keyed. */
export function entryHash(e: EntryRow, chainSeq: string, prevHash: string, chainKey: Buffer | null): string {
  // The MAC is not hashed: entries sealed before it existed must keep their hashes.
  // A copy with the chain columns set and the hash and MAC left out (canonical JSON skips undefined):
  // the same text as the entry less those four plus its position, without rest-and-spread, whose
  // added properties V8 makes slow map transitions (≈ 20 µs an entry sealed, here).
  const content: Record<string, unknown> = { ...e };
  content.chain_seq = chainSeq;
  content.prev_hash = prevHash;
  content.hash = undefined;
  content.mac = undefined;
  const text = canonicalJson(content);
  return (chainKey ? crypto.createHmac('sha256', chainKey) : crypto.createHash('sha256')).update(text).digest('hex');
}

/**
 * What a tenant's log held before entries carried a MAC (migration 0014 named it, exactly): the chain
 * positions sealed by then (plain SHA-256 hashes, no MAC) and the ids still unsealed (no MAC).
 */
export interface Legacy {
  sealedUpto: bigint;
  unsealedIds: Set<string>;
}

export async function legacyOf(db: Db | Tx, tenantId: string): Promise<Legacy> {
  const row = (await sql<{ sealed_upto: string; unsealed_ids: string[] }>`
    select sealed_upto::text as sealed_upto, unsealed_ids from audit_legacy where tenant_id = ${tenantId}`.execute(db)).rows[0];
  // A deleted row only makes every entry need its MAC and keyed hash: stricter, never looser.
  return { sealedUpto: row ? BigInt(row.sealed_upto) : 0n, unsealedIds: new Set(row?.unsealed_ids ?? []) };
}

/** Why an unsealed entry must not be chained, or null when it may be. */
export function unsealable(e: EntryRow, legacy: Legacy, macKey: Buffer): string | null {
  if (e.mac === null && legacy.unsealedIds.has(e.id)) return null;
  return macMatches(macKey, e, e.mac) ? null : 'its MAC does not verify: no Kyclo process with the master key wrote it';
}

/**
 * Seals up to `batch` unsealed entries of one tenant past `after` (a position in the log); a tenant
 * another sealer holds is skipped. Entries it refuses are recorded in audit_rejections and looked at
 * again each round (cheap, and a row planted in that table cannot hide a genuine entry).
 */
async function sealTenant(db: Db, tenantId: string, batch: number, after: string): Promise<{ sealed: number; rejected: number; seen: number; last: string }> {
  const { macKey, chainKey } = auditKeys();
  return db.transaction().execute(async (tx) => {
    const none = { sealed: 0, rejected: 0, seen: 0, last: after };
    await sql`insert into audit_heads (tenant_id, chain_seq, hash) values (${tenantId}, 0, ${GENESIS}) on conflict do nothing`.execute(tx);
    const head = await sql<{ chain_seq: string; hash: string }>`
      select chain_seq::text as chain_seq, hash from audit_heads where tenant_id = ${tenantId} for update skip locked`.execute(tx);
    if (!head.rows[0]) return none;
    // The queued entries (ENTRY_COLUMNS reads their seal columns as null). A seal planted for one of
    // them makes the insert below fail: the tenant's sealing stops, and says so, rather than chain around it.
    const page = await sql<EntryRow & { queue_seq: string }>`
      select ${ENTRY_COLUMNS}, u.seq::text as queue_seq from ${queuedEntries(tenantId, after, batch)} order by u.seq`.execute(tx);
    if (page.rows.length === 0) return none;
    const seen = { seen: page.rows.length, last: page.rows.at(-1)!.queue_seq };
    // A queue row with no entry is left for verify to report (an unsealed entry was deleted).
    // (queue_seq left out: the entry's hash covers the row as read.)
    const rows = { rows: page.rows.filter((r) => r.id !== null).map(({ queue_seq: _q, ...r }): EntryRow => r) };
    if (rows.rows.length === 0) return { ...none, ...seen };
    const legacy = await legacyOf(tx, tenantId);
    let seq = BigInt(head.rows[0].chain_seq);
    let prev = head.rows[0].hash;
    const chained: { ids: string[]; entrySeqs: string[]; seqs: string[]; prevs: string[]; hashes: string[] } = { ids: [], entrySeqs: [], seqs: [], prevs: [], hashes: [] };
    const rejected: { ids: string[]; reasons: string[] } = { ids: [], reasons: [] };
    for (const r of rows.rows) {
      const why = unsealable(r, legacy, macKey);
      if (why) {
        rejected.ids.push(r.id);
        rejected.reasons.push(why);
        continue;
      }
      seq += 1n;
      const h = entryHash(r, seq.toString(), prev, chainKey);
      chained.ids.push(r.id);
      chained.entrySeqs.push(r.seq);
      chained.seqs.push(seq.toString());
      chained.prevs.push(prev);
      chained.hashes.push(h);
      prev = h;
    }
    if (rejected.ids.length) {
      await sql`
        insert into audit_rejections (tenant_id, entry_id, reason)
        select ${tenantId}, v.id, v.reason from unnest(${rejected.ids}::text[], ${rejected.reasons}::text[]) as v(id, reason)
        on conflict do nothing`.execute(tx);
    }
    if (chained.ids.length) {
      // One statement: the seals (narrow inserts; the entries stay as written), the queue rows gone,
      // the head moved.
      await sql`
        with sealed as (
          insert into audit_seals (tenant_id, chain_seq, entry_seq, prev_hash, hash)
          select ${tenantId}, v.chain_seq, v.entry_seq, v.prev_hash, v.hash
          from unnest(${chained.seqs}::bigint[], ${chained.entrySeqs}::bigint[], ${chained.prevs}::text[], ${chained.hashes}::text[])
            as v(chain_seq, entry_seq, prev_hash, hash)
        ), dequeued as (
          delete from audit_unsealed where tenant_id = ${tenantId} and seq = any(${chained.entrySeqs}::bigint[])
        )
        update audit_heads set chain_seq = ${seq.toString()}::bigint, hash = ${prev}, sealed_at = now() where tenant_id = ${tenantId}`.execute(tx);
    }
    return { sealed: chained.ids.length, rejected: rejected.ids.length, ...seen };
  });
}

export const CHECKPOINT_COLUMNS = sql`tenant_id, id, chain_seq::text as chain_seq, hash, ${utcMicros('signed_at', 'signed_at')}, key_id, signature`;

/**
 * Signs the tenant's head if it moved past its last checkpoint, and publishes it: the checkpoint row
 * and an `audit.checkpoint` event (delivered by webhooks). The event has no audit entry of its own:
 * one would need sealing, which would need a checkpoint, without end.
 */
async function checkpointTenant(db: Db, tenantId: string): Promise<Checkpoint | null> {
  const keys = auditKeys();
  return db.transaction().execute(async (tx) => {
    const head = (await sql<{ chain_seq: string; hash: string }>`
      select chain_seq::text as chain_seq, hash from audit_heads where tenant_id = ${tenantId} and chain_seq > 0 for update skip locked`.execute(tx)).rows[0];
    if (!head) return null;
    const content = { tenant_id: tenantId, chain_seq: head.chain_seq, hash: head.hash, signed_at: macTimestamp() };
    const checkpoint: Checkpoint = { id: newId('ckp'), ...content, key_id: keys.keyId, signature: signCheckpoint(keys, content) };
    const inserted = await sql`
      insert into audit_checkpoints (tenant_id, id, chain_seq, hash, signed_at, key_id, signature)
      values (${tenantId}, ${checkpoint.id}, ${head.chain_seq}::bigint, ${head.hash}, ${checkpoint.signed_at}, ${checkpoint.key_id}, ${checkpoint.signature})
      on conflict do nothing`.execute(tx);
    if (!inserted.numAffectedRows) return null;
    await sql`
      with e as (
        insert into events (tenant_id, id, type, user_id, data)
        values (${tenantId}, ${newId('evt')}, 'audit.checkpoint', null, ${JSON.stringify({ ...checkpoint, public_key: keys.publicKeyBase64 })}::jsonb)
        returning seq, tenant_id
      )
      insert into event_outbox (seq, tenant_id) select seq, tenant_id from e`.execute(tx);
    return checkpoint;
  });
}

/** Tenants whose head moved past their last checkpoint, and whose last checkpoint is old enough. */
async function checkpointsDue(db: Db, everyMs: number): Promise<string[]> {
  const rows = await sql<{ tenant_id: string }>`
    select h.tenant_id from audit_heads h
    left join lateral (
      select c.chain_seq, c.signed_at from audit_checkpoints c where c.tenant_id = h.tenant_id order by c.chain_seq desc limit 1
    ) last on true
    where h.chain_seq > coalesce(last.chain_seq, 0)
      and (last.signed_at is null or last.signed_at <= now() - make_interval(secs => ${everyMs / 1000}))`.execute(db);
  return rows.rows.map((r) => r.tenant_id);
}

export interface SealReport {
  sealed: number;
  rejected: number;
  checkpoints: Checkpoint[];
  /** Tenants whose sealing or checkpoint failed this round; the others went on. */
  failures: Array<{ tenantId: string; error: unknown }>;
}

export interface SealOptions {
  batch?: number;
  /** The least time between two checkpoints of one tenant (0: one per round that moved its head). */
  checkpointEveryMs?: number;
}

/** Seals every unsealed entry of every tenant, then checkpoints the heads that moved; one tenant's failure stops no other. */
export async function sealAuditLog(db: Db, { batch = 1000, checkpointEveryMs = 0 }: SealOptions = {}): Promise<SealReport> {
  const report: SealReport = { sealed: 0, rejected: 0, checkpoints: [], failures: [] };
  const tenants = await sql<{ tenant_id: string }>`select distinct tenant_id from audit_unsealed`.execute(db);
  for (const { tenant_id } of tenants.rows) {
    try {
      for (let after = '-9223372036854775808'; ;) {
        const n = await sealTenant(db, tenant_id, batch, after);
        report.sealed += n.sealed;
        report.rejected += n.rejected;
        if (n.seen < batch) break;
        after = n.last;
      }
    } catch (error) {
      report.failures.push({ tenantId: tenant_id, error });
    }
  }
  for (const tenantId of await checkpointsDue(db, checkpointEveryMs)) {
    try {
      const c = await checkpointTenant(db, tenantId);
      if (c) report.checkpoints.push(c);
    } catch (error) {
      report.failures.push({ tenantId, error });
    }
  }
  return report;
}

/** Checkpoints as published, oldest first: one tenant's, or every tenant's (the CLI). */
export async function listCheckpoints(
  db: Db,
  q: { tenantId?: string; since?: string; afterId?: { signedAt: string; id: string }; limit: number },
): Promise<Checkpoint[]> {
  const rows = await sql<Checkpoint>`
    select ${CHECKPOINT_COLUMNS} from audit_checkpoints
    where true
      ${q.tenantId ? sql`and tenant_id = ${q.tenantId}` : sql``}
      ${q.since ? sql`and audit_checkpoints.signed_at >= ${q.since}::timestamptz` : sql``}
      ${q.afterId ? sql`and (audit_checkpoints.signed_at, audit_checkpoints.id) > (${q.afterId.signedAt}::timestamptz, ${q.afterId.id})` : sql``}
    order by audit_checkpoints.signed_at, audit_checkpoints.id
    limit ${q.limit}`.execute(db);
  return rows.rows;
}

/** One tenant's checkpoints, newest first, keyed by chain position (the API's list). */
export async function tenantCheckpoints(db: Db, tenantId: string, q: { since?: string; beforeSeq?: string; limit: number }): Promise<Checkpoint[]> {
  const rows = await sql<Checkpoint>`
    select ${CHECKPOINT_COLUMNS} from audit_checkpoints
    where tenant_id = ${tenantId}
      ${q.since ? sql`and audit_checkpoints.signed_at >= ${q.since}::timestamptz` : sql``}
      ${q.beforeSeq ? sql`and audit_checkpoints.chain_seq < ${q.beforeSeq}::bigint` : sql``}
    order by audit_checkpoints.chain_seq desc
    limit ${q.limit}`.execute(db);
  return rows.rows;
}
