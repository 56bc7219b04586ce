// Frozen once released. The audit log holds against the database's own superuser:
// - every entry carries a MAC computed by the process that wrote it (`mac`); entries written before
//   this migration have none, and are recognised by `audit_settings.mac_required_after_seq`;
// - `audit_heads` may only move forward (no rewind, no delete, no truncate);
// - `audit_checkpoints` keeps each signed head, append-only, for auditors to copy out;
// - `audit_rejections` lists the entries the sealer refused to chain (bad MAC, chain columns set
//   before sealing), so it does not trip on them again; verify reports them whatever this table says.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table audit_entries add column mac text`.execute(db);
  await sql`
    create table audit_settings (
      singleton boolean primary key default true check (singleton),
      mac_required_after_seq bigint not null
    )`.execute(db);
  await sql`insert into audit_settings (mac_required_after_seq) select coalesce(max(seq), 0) from audit_entries`.execute(db);

  await sql`
    create function kyclo_audit_refuse() returns trigger language plpgsql as $$
    begin raise exception '% is append-only: % refused', tg_table_name, tg_op using errcode = 'KY002'; end $$`.execute(db);
  await sql`create trigger audit_settings_frozen before update or delete on audit_settings for each row execute function kyclo_audit_refuse()`.execute(db);
  await sql`create trigger audit_settings_no_truncate before truncate on audit_settings execute function kyclo_audit_refuse()`.execute(db);

  // A head starts at the genesis and only ever moves forward; its tenant never changes.
  await sql`
    create function kyclo_audit_head_forward() returns trigger language plpgsql as $$
    begin
      if tg_op = 'INSERT' and new.chain_seq = 0 then return new; end if;
      if tg_op = 'UPDATE' and new.tenant_id = old.tenant_id and new.chain_seq > old.chain_seq then return new; end if;
      raise exception 'audit heads only move forward: % refused', tg_op using errcode = 'KY002';
    end $$`.execute(db);
  await sql`create trigger audit_heads_forward before insert or update or delete on audit_heads for each row execute function kyclo_audit_head_forward()`.execute(db);
  await sql`create trigger audit_heads_no_truncate before truncate on audit_heads execute function kyclo_audit_refuse()`.execute(db);

  await sql`
    create table audit_checkpoints (
      tenant_id text not null references tenants (id),
      id text not null,
      chain_seq bigint not null,
      hash text not null,
      signed_at timestamptz not null,
      key_id text not null,
      signature text not null,
      primary key (tenant_id, chain_seq)
    )`.execute(db);
  await sql`create unique index audit_checkpoints_id on audit_checkpoints (tenant_id, id)`.execute(db);
  await sql`create index audit_checkpoints_signed_at on audit_checkpoints (signed_at)`.execute(db);
  await sql`create trigger audit_checkpoints_append_only before update or delete on audit_checkpoints for each row execute function kyclo_audit_refuse()`.execute(db);
  await sql`create trigger audit_checkpoints_no_truncate before truncate on audit_checkpoints execute function kyclo_audit_refuse()`.execute(db);

  await sql`
    create table audit_rejections (
      tenant_id text not null,
      entry_id text not null,
      reason text not null,
      detected_at timestamptz not null default now(),
      primary key (tenant_id, entry_id)
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['audit_rejections', 'audit_checkpoints', 'audit_settings']) await sql`drop table if exists ${sql.table(t)}`.execute(db);
  await sql`drop trigger if exists audit_heads_forward on audit_heads`.execute(db);
  await sql`drop trigger if exists audit_heads_no_truncate on audit_heads`.execute(db);
  await sql`alter table audit_entries drop column if exists mac`.execute(db);
}
