// `kyclo audit verify`: what the chain proves, checked in one consistent snapshot of the database.
// Inside the database: every sealed entry is in place, unchanged and written by a holder of the master
// key (its MAC); the head is where the chain ends, never behind it; every signed checkpoint still lies
// on the chain; no entry waits unsealed (and so unprotected) longer than the allowed age; no two
// entries share an id; and every tenant's history begins with its creation (the `tenant.created`
// entry is written in the tenant's own transaction, before any other entry of it can exist). What
// the database alone cannot prove (a tail removed with its checkpoints and head, a tenant deleted
// whole) the checkpoints kept outside it do: `--checkpoints FILE` checks each against the chain.
import type crypto from 'node:crypto';
import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import { checkpointSignatureValid, macMatches, type Checkpoint } from './authentication.js';
import { CHECKPOINT_COLUMNS, entryHash, ENTRY_COLUMNS, GENESIS, legacyOf, queuedEntries, unsealable, type EntryRow, type Legacy } from './chain.js';

export const DEFAULT_MAX_UNSEALED_AGE_SECONDS = 300;

export type VerifyResult =
  | { tenantId: string; ok: true; sealed: number; pending: number; checkpoints: number }
  | {
      tenantId: string; ok: false; reason: string; sealed: number; pending: number; checkpoints: number;
      /** The first chain position that does not hold, when the fault has one. */
      brokenAt?: string;
      /** The entry at fault, when the fault is one entry. */
      entryId?: string;
    };

export interface VerifyOptions {
  macKey: Buffer;
  chainKey: Buffer;
  publicKey: crypto.KeyObject;
  /** Entries left unsealed longer than this make the tenant BROKEN. */
  maxUnsealedAgeSeconds?: number;
  /**
   * Checkpoints kept outside the database (an auditor's file), each of which must lie on the chain:
   * a function opening them afresh, read twice as a stream (the tenants they name, then the check).
   */
  kept?: () => AsyncIterable<Checkpoint>;
  /** Told how many kept checkpoints were read. */
  onKept?: (count: number) => void;
}

const PAGE = 5000;

class Broken extends Error {
  constructor(readonly reason: string, readonly at: { brokenAt?: string; entryId?: string } = {}) {
    super(reason);
  }
}

/** The entry the tenants service writes in the tenant's own creating transaction: the first of its history. */
const isCreationOf = (tenantId: string, e: EntryRow) => e.action === 'tenant.created' && e.target_type === 'tenant' && e.target_id === tenantId;

async function walkChain(tx: Tx, tenantId: string, opts: VerifyOptions, legacy: Legacy) {
  let expected = 1n;
  let prev = GENESIS;
  let after = '0';
  for (;;) {
    // From the seals: a seal whose entry was deleted reads with a null entry.
    const rows = await sql<EntryRow>`
      select ${ENTRY_COLUMNS} from audit_seals s
        left join audit_entries e on e.tenant_id = s.tenant_id and e.seq = s.entry_seq
      where s.tenant_id = ${tenantId} and s.chain_seq > ${after}::bigint
      order by s.chain_seq limit ${PAGE}`.execute(tx);
    for (const r of rows.rows) {
      const at = expected.toString();
      if (r.chain_seq !== at) throw new Broken(`entry ${at} is missing (next is ${r.chain_seq})`, { brokenAt: at });
      if (r.id === null) throw new Broken(`the entry sealed at ${at} is missing: it was deleted`, { brokenAt: at });
      if (r.prev_hash !== prev) throw new Broken('its previous-hash link does not match the entry before it', { brokenAt: at, entryId: r.id });
      const legacyPrefix = expected <= legacy.sealedUpto;
      if (entryHash(r, at, prev, legacyPrefix ? null : opts.chainKey) !== r.hash) {
        throw new Broken('its content does not match its hash', { brokenAt: at, entryId: r.id });
      }
      const macLess = r.mac === null && (legacyPrefix || legacy.unsealedIds.has(r.id));
      if (!macLess && !macMatches(opts.macKey, r, r.mac)) {
        throw new Broken(`entry ${r.id}: its MAC does not verify: no Kyclo process with the master key wrote it`, { brokenAt: at, entryId: r.id });
      }
      // Without this, a history wiped whole (head included, or left at genesis) and chained afresh
      // from the tenant's next write was a valid chain: every link, hash and MAC holds.
      if (expected === 1n && !isCreationOf(tenantId, r)) {
        throw new Broken(`the chain begins with entry ${r.id} (${r.action}), not with the tenant's creation: the history before it was removed`, { brokenAt: at, entryId: r.id });
      }
      prev = r.hash!;
      expected += 1n;
    }
    if (rows.rows.length < PAGE) break;
    after = rows.rows.at(-1)!.chain_seq!;
  }
  return { sealed: expected - 1n, last: prev };
}

/** Each checkpoint must be signed by our key and name a hash the chain holds at its position. */
function checkCheckpoint(c: Checkpoint, entryHashAt: string | null, sealed: bigint, publicKey: crypto.KeyObject, where: string) {
  if (!checkpointSignatureValid(publicKey, c)) throw new Broken(`${where} checkpoint ${c.id} at ${c.chain_seq} does not carry a valid signature of this deployment's key`);
  if (BigInt(c.chain_seq) > sealed) {
    throw new Broken(`the chain ends at ${sealed} but ${where} checkpoint ${c.id} signed it up to ${c.chain_seq} on ${c.signed_at}: the head is behind, or the tail was removed`, { brokenAt: (sealed + 1n).toString() });
  }
  if (entryHashAt !== c.hash) {
    throw new Broken(`entry ${c.chain_seq} is not the one ${where} checkpoint ${c.id} signed on ${c.signed_at}: the chain was rewritten`, { brokenAt: c.chain_seq });
  }
}

async function hashesAt(tx: Db | Tx, tenantId: string, seqs: string[]): Promise<Map<string, string>> {
  if (seqs.length === 0) return new Map();
  const rows = await sql<{ chain_seq: string; hash: string }>`
    select chain_seq::text as chain_seq, hash from audit_seals where tenant_id = ${tenantId} and chain_seq = any(${seqs}::bigint[])`.execute(tx);
  return new Map(rows.rows.map((r) => [r.chain_seq, r.hash]));
}

export async function verifyTenantChain(db: Db, tenantId: string, opts: VerifyOptions): Promise<VerifyResult> {
  const maxAge = opts.maxUnsealedAgeSeconds ?? DEFAULT_MAX_UNSEALED_AGE_SECONDS;
  // One snapshot: the sealer writes seals, dequeues and moves the head in one transaction, so within a snapshot a
  // sealed entry past the head, or a head past the chain, can only be tampering.
  return db.transaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute(async (tx) => {
    const counts = { sealed: 0, pending: 0, checkpoints: 0 };
    try {
      const legacy = await legacyOf(tx, tenantId);
      const head = (await sql<{ chain_seq: string; hash: string }>`
        select chain_seq::text as chain_seq, hash from audit_heads where tenant_id = ${tenantId}`.execute(tx)).rows[0];
      const { sealed, last } = await walkChain(tx, tenantId, opts, legacy);
      counts.sealed = Number(sealed);
      counts.pending = Number((await sql<{ n: string }>`
        select count(*)::text as n from audit_unsealed u
        where u.tenant_id = ${tenantId} and exists (select 1 from audit_entries e where e.tenant_id = u.tenant_id and e.seq = u.seq)`.execute(tx)).rows[0]!.n);
      const headSeq = head ? BigInt(head.chain_seq) : 0n;
      if (sealed > headSeq) throw new Broken(`entries are sealed up to ${sealed} but the head says ${headSeq}: the head was moved back`, { brokenAt: (headSeq + 1n).toString() });
      if (sealed < headSeq || (head && head.hash !== last)) {
        throw new Broken(`the chain ends at ${sealed} but was sealed up to ${headSeq}: entries were removed`, { brokenAt: (sealed + 1n).toString() });
      }
      await checkUnsealed(tx, tenantId, opts, legacy, maxAge);
      await checkAccounted(tx, tenantId, sealed);
      await checkUniqueIds(tx, tenantId);
      if (sealed === 0n) await checkCreationQueued(tx, tenantId);
      // The checkpoints the database keeps: a head or a tail rewound past one of them shows here.
      let after = '0';
      for (;;) {
        const page = await sql<Checkpoint & { entry_hash: string | null }>`
          select ${CHECKPOINT_COLUMNS}, (select s.hash from audit_seals s where s.tenant_id = c.tenant_id and s.chain_seq = c.chain_seq) as entry_hash
          from audit_checkpoints c where c.tenant_id = ${tenantId} and c.chain_seq > ${after}::bigint order by c.chain_seq limit ${PAGE}`.execute(tx);
        for (const c of page.rows) checkCheckpoint(c, c.entry_hash, sealed, opts.publicKey, 'the database’s');
        counts.checkpoints += page.rows.length;
        if (page.rows.length < PAGE) break;
        after = page.rows.at(-1)!.chain_seq;
      }
      return { tenantId, ok: true as const, ...counts };
    } catch (err) {
      if (err instanceof Broken) return { tenantId, ok: false as const, reason: err.reason, ...err.at, ...counts };
      throw err;
    }
  });
}

/**
 * Unsealed entries, a page at a time: each must be one a Kyclo process wrote, and none may have waited
 * longer than `maxAge` (aged by the database's own insert time, so a lagging application clock
 * raises no false alarm).
 */
async function checkUnsealed(tx: Tx, tenantId: string, opts: VerifyOptions, legacy: Legacy, maxAge: number) {
  let stale = 0;
  let oldest: { id: string; at: string } | null = null;
  for (let after = '-9223372036854775808'; ;) {
    const page = await sql<EntryRow & { age: number; recorded: string; queue_seq: string }>`
      select ${ENTRY_COLUMNS}, extract(epoch from now() - e.recorded_at)::float8 as age, e.recorded_at::text as recorded, u.seq::text as queue_seq
      from ${queuedEntries(tenantId, after, PAGE)} order by u.seq`.execute(tx);
    for (const e of page.rows) {
      if (e.id === null) throw new Broken(`the sealing queue names entry ${e.queue_seq} of the log, which does not exist: an entry was deleted before it was sealed, or the queue was written to`);
      const why = unsealable(e, legacy, opts.macKey);
      if (why) throw new Broken(`unsealed entry ${e.id}: ${why}`, { entryId: e.id });
      if (e.age > maxAge) {
        stale += 1;
        oldest ??= { id: e.id, at: e.recorded };
      }
    }
    if (page.rows.length < PAGE) break;
    after = page.rows.at(-1)!.queue_seq;
  }
  if (oldest) {
    throw new Broken(`${stale} entries have waited more than ${maxAge} s to be sealed (oldest ${oldest.id}, recorded ${oldest.at}): sealing is stuck`, { entryId: oldest.id });
  }
}

/**
 * Every entry is sealed or queued for sealing. The queue is only a work list: an entry inserted
 * around it (its trigger disabled) or whose queue row was deleted would otherwise never be sealed
 * and never show as waiting.
 */
async function checkAccounted(tx: Tx, tenantId: string, sealed: bigint) {
  // A seal outside the chain walked (1..sealed: the walk follows positions from 1 and stops at the
  // first gap) accounts for nothing: one planted at position 0 or below made a forged entry pass
  // for sealed, never hashed nor MAC-checked.
  const stray = (await sql<{ chain_seq: string; entry_seq: string }>`
    select chain_seq::text as chain_seq, entry_seq::text as entry_seq from audit_seals
    where tenant_id = ${tenantId} and (chain_seq < 1 or chain_seq > ${sealed.toString()}::bigint) limit 1`.execute(tx)).rows[0];
  if (stray) throw new Broken(`a seal at position ${stray.chain_seq} (entry ${stray.entry_seq} of the log) lies outside the chain 1..${sealed}: it was planted`, { brokenAt: stray.chain_seq });
  const lost = (await sql<{ id: string }>`
    select e.id from audit_entries e
    where e.tenant_id = ${tenantId}
      and not exists (select 1 from audit_seals s where s.tenant_id = e.tenant_id and s.entry_seq = e.seq)
      and not exists (select 1 from audit_unsealed u where u.tenant_id = e.tenant_id and u.seq = e.seq)
    limit 1`.execute(tx)).rows[0];
  if (lost) throw new Broken(`entry ${lost.id} is neither sealed nor waiting to be: it was written around the sealing queue, or taken off it`, { entryId: lost.id });
}

/**
 * An entry id names one entry. With the unique index dropped, a genuine entry copied whole (its MAC
 * included: the MAC covers the id, not the row's place in the log) was queued, chained and verified
 * as a second, equally genuine event.
 */
async function checkUniqueIds(tx: Tx, tenantId: string) {
  const twice = (await sql<{ id: string; n: string }>`
    select id, count(*)::text as n from audit_entries where tenant_id = ${tenantId} group by id having count(*) > 1 limit 1`.execute(tx)).rows[0];
  if (twice) throw new Broken(`entry ${twice.id} is in the log ${twice.n} times: copies of an entry were inserted`, { entryId: twice.id });
}

/**
 * Nothing sealed yet: the first entry the sealer will chain must be the tenant's creation. (A
 * tenant's later entries are written after its creating transaction commits, so they come after it
 * in the log.) Otherwise the history was removed, and the sealer would chain what came after.
 */
async function checkCreationQueued(tx: Tx, tenantId: string) {
  const first = (await sql<EntryRow>`
    select ${ENTRY_COLUMNS} from ${queuedEntries(tenantId, '-9223372036854775808', 1)}`.execute(tx)).rows[0];
  if (!first || first.id === null) {
    throw new Broken('the tenant has no audit entries: its creation is always audited, so its history was removed');
  }
  if (!isCreationOf(tenantId, first)) {
    throw new Broken(`nothing is sealed and the first entry waiting, ${first.id} (${first.action}), is not the tenant's creation: the history before it was removed`, { entryId: first.id });
  }
}

/**
 * Every tenant the database has, and every tenant the kept checkpoints name (a deleted tenant is
 * BROKEN). Each chain is walked first; then every kept checkpoint is checked against it, the file
 * read as a stream a batch at a time (positions up to a chain's end never change: seals are
 * append-only), so memory stays the same whatever the file's size. Every one is checked: a tail
 * removed and sealed again from its queue makes a new chain with new checkpoints, which only the
 * older kept ones contradict.
 */
export async function verifyAuditLog(db: Db, opts: VerifyOptions & { tenantId?: string }): Promise<VerifyResult[]> {
  const known = (await db.selectFrom('tenants').select('id').orderBy('id').execute()).map((t) => t.id);
  const named = new Set<string>();
  let read = 0;
  if (opts.kept) {
    for await (const c of opts.kept()) {
      named.add(c.tenant_id);
      read += 1;
    }
    opts.onKept?.(read);
  }
  const tenants = opts.tenantId ? [opts.tenantId] : [...new Set([...known, ...named])].sort();
  const out = new Map<string, VerifyResult>();
  for (const t of tenants) {
    out.set(t, known.includes(t)
      ? await verifyTenantChain(db, t, opts)
      : { tenantId: t, ok: false, reason: 'the kept checkpoints name this tenant, but the database no longer has it', sealed: 0, pending: 0, checkpoints: 0 });
  }
  if (opts.kept) await checkKept(db, opts.kept(), out, opts.publicKey);
  return [...out.values()];
}

/** Each kept checkpoint of a tenant still OK, against its chain, PAGE at a time; the first that fails makes the tenant BROKEN. */
async function checkKept(db: Db, kept: AsyncIterable<Checkpoint>, results: Map<string, VerifyResult>, publicKey: crypto.KeyObject) {
  const check = async (batch: Checkpoint[]) => {
    const byTenant = new Map<string, Checkpoint[]>();
    for (const c of batch) {
      if (!results.get(c.tenant_id)?.ok) continue;
      const mine = byTenant.get(c.tenant_id);
      if (mine) mine.push(c);
      else byTenant.set(c.tenant_id, [c]);
    }
    for (const [tenantId, cs] of byTenant) {
      const r = results.get(tenantId)!;
      const hashes = await hashesAt(db, tenantId, cs.map((c) => c.chain_seq));
      try {
        for (const c of cs) checkCheckpoint(c, hashes.get(c.chain_seq) ?? null, BigInt(r.sealed), publicKey, 'the kept');
      } catch (err) {
        if (!(err instanceof Broken)) throw err;
        results.set(tenantId, { ...r, ok: false, reason: err.reason, ...err.at });
      }
    }
  };
  let batch: Checkpoint[] = [];
  for await (const c of kept) {
    batch.push(c);
    if (batch.length === PAGE) {
      await check(batch);
      batch = [];
    }
  }
  await check(batch);
}

/** One line of kept checkpoints: a checkpoint, or a whole `audit.checkpoint` webhook body. */
function parseCheckpointLine(line: string, lineNo: number): Checkpoint {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new Error(`line ${lineNo}: not JSON`);
  }
  const o = v as Record<string, unknown>;
  const c = (o.type === 'audit.checkpoint' && o.data && typeof o.data === 'object' ? o.data : o) as Record<string, unknown>;
  for (const k of ['id', 'tenant_id', 'chain_seq', 'hash', 'signed_at', 'key_id', 'signature']) {
    if (typeof c[k] !== 'string') throw new Error(`line ${lineNo}: not a checkpoint (no string "${k}")`);
  }
  if (!/^\d{1,18}$/.test(c.chain_seq as string)) throw new Error(`line ${lineNo}: chain_seq is not a position`);
  return { id: c.id, tenant_id: c.tenant_id, chain_seq: c.chain_seq, hash: c.hash, signed_at: c.signed_at, key_id: c.key_id, signature: c.signature } as Checkpoint;
}

/** Kept checkpoints (NDJSON: checkpoints, or whole `audit.checkpoint` webhook bodies), parsed as the lines are read. */
export async function* keptCheckpoints(lines: AsyncIterable<string>): AsyncGenerator<Checkpoint> {
  let lineNo = 0;
  for await (const line of lines) {
    lineNo += 1;
    if (line.trim()) yield parseCheckpointLine(line, lineNo);
  }
}
