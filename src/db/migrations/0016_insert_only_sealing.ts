// Frozen once released. Sealing and webhook fan-out stop rewriting the rows they process.
// Sealing used to UPDATE every audit entry (~1 KB) to set its chain columns: a new row version, an
// entry in each of its five indexes (chain_seq is indexed, so never a HOT update), and a dead row for
// vacuum, per entry. Fan-out did the same to every event to set fanned_out. Measured under the bench,
// the two were the largest part of PostgreSQL's extra work per write over the baselines.
// Now:
// - audit_entries are immutable: no UPDATE at all (stronger than "only the sealing update").
// - the chain lives in audit_seals, append-only narrow rows (entry position → chain position, hash).
// - what waits for the sealer is a work queue, audit_unsealed (tenant, entry position), written by
//   the one write path (audit/write-path.ts) in the statement that writes the entry; the sealer
//   deletes what it sealed. Removing a queue row, or writing an entry around it, cannot hide the
//   entry: verify finds every entry that is neither sealed nor queued.
// - events waiting for fan-out are the work queue event_outbox, written the same way; fan-out deletes
//   what it fanned out (DELETE … RETURNING under SKIP LOCKED: any number of dispatchers).
// The queues are written by the write path's CTEs rather than by triggers: no trigger call per
// write on the hottest path, and only what goes through the write path is queued (verify, not the
// queue, is what proves every entry was sealed).
import { sql, type Kysely } from 'kysely';
import * as sealCheck from './0015_audit_seal_check.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table audit_seals (
      tenant_id text not null,
      chain_seq bigint not null,
      entry_seq bigint not null,
      prev_hash text not null,
      hash text not null,
      primary key (tenant_id, chain_seq)
    )`.execute(db);
  await sql`
    insert into audit_seals (tenant_id, chain_seq, entry_seq, prev_hash, hash)
    select tenant_id, chain_seq, seq, prev_hash, hash from audit_entries where chain_seq is not null`.execute(db);
  await sql`create unique index audit_seals_entry on audit_seals (tenant_id, entry_seq)`.execute(db);
  await sql`
    create function kyclo_audit_seals_append_only() returns trigger language plpgsql as $$
    begin raise exception 'audit seals are append-only: % refused', tg_op using errcode = 'KY002'; end $$`.execute(db);
  await sql`create trigger audit_seals_append_only before update or delete or truncate on audit_seals
    for each statement execute function kyclo_audit_seals_append_only()`.execute(db);

  await sql`create table audit_unsealed (tenant_id text not null, seq bigint not null, primary key (tenant_id, seq))`.execute(db);
  // Only the sealer ever set the chain columns, all three at once; a row with some but not a
  // position was never on the chain, and is queued like any unsealed entry (its MAC decides).
  await sql`insert into audit_unsealed (tenant_id, seq) select tenant_id, seq from audit_entries where chain_seq is null`.execute(db);

  // Entries never change again: the chain columns go (their indexes with them), and the trigger
  // refuses every UPDATE and DELETE.
  await sql`
    create or replace function kyclo_audit_append_only() returns trigger language plpgsql as $$
    begin raise exception 'audit entries are append-only: % refused', tg_op using errcode = 'KY002'; end $$`.execute(db);
  await sql`alter table audit_entries drop column chain_seq, drop column prev_hash, drop column hash`.execute(db);

  await sql`create table event_outbox (seq bigint primary key, tenant_id text not null)`.execute(db);
  await sql`insert into event_outbox (seq, tenant_id) select seq, tenant_id from events where not fanned_out`.execute(db);
  await sql`alter table events drop column fanned_out`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table events add column fanned_out boolean not null default true`.execute(db);
  await sql`update events set fanned_out = false where seq in (select seq from event_outbox)`.execute(db);
  await sql`create index events_unfanned on events (seq) where fanned_out = false`.execute(db);
  await sql`drop table if exists event_outbox`.execute(db);

  await sql`drop table if exists audit_unsealed`.execute(db);
  await sql`alter table audit_entries add column chain_seq bigint, add column prev_hash text, add column hash text`.execute(db);
  await sql`alter table audit_entries disable trigger audit_entries_append_only`.execute(db);
  await sql`
    update audit_entries e set chain_seq = s.chain_seq, prev_hash = s.prev_hash, hash = s.hash
    from audit_seals s where s.tenant_id = e.tenant_id and s.entry_seq = e.seq`.execute(db);
  await sql`alter table audit_entries enable trigger audit_entries_append_only`.execute(db);
  await sql`create unique index audit_entries_chain on audit_entries (tenant_id, chain_seq) where chain_seq is not null`.execute(db);
  await sql`create index audit_entries_unsealed on audit_entries (tenant_id, seq) where hash is null`.execute(db);
  // The trigger function as 0015 left it (it permits the sealing update again).
  await sealCheck.up(db);
  await sql`drop trigger if exists audit_seals_append_only on audit_seals`.execute(db);
  await sql`drop function if exists kyclo_audit_seals_append_only()`.execute(db);
  await sql`drop table if exists audit_seals`.execute(db);
}
