// Frozen once released. The append-only trigger's check that a sealing UPDATE touches nothing but the
// chain columns, without turning both row versions into jsonb (two to_jsonb a row: ~54 µs of every
// audit entry's sealing under load). The new version with its chain columns put back must equal the
// old one, column for column — every column, whatever is added later.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create or replace function kyclo_audit_append_only() returns trigger language plpgsql as $$
    declare
      probe audit_entries;
    begin
      if tg_op = 'UPDATE' and old.hash is null and new.hash is not null then
        probe := new;
        probe.chain_seq := old.chain_seq;
        probe.prev_hash := old.prev_hash;
        probe.hash := old.hash;
        if probe is not distinct from old then
          return new;
        end if;
      end if;
      raise exception 'audit entries are append-only: % refused', tg_op using errcode = 'KY002';
    end $$`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    create or replace function kyclo_audit_append_only() returns trigger language plpgsql as $$
    begin
      if tg_op = 'UPDATE' and old.hash is null and new.hash is not null
         and (to_jsonb(new) - 'chain_seq' - 'prev_hash' - 'hash') = (to_jsonb(old) - 'chain_seq' - 'prev_hash' - 'hash') then
        return new;
      end if;
      raise exception 'audit entries are append-only: % refused', tg_op using errcode = 'KY002';
    end $$`.execute(db);
}
