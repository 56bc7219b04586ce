// Frozen once released. The audit log becomes tamper-evident: each tenant's entries are sealed into
// a SHA-256 chain, and a trigger makes rows append-only (the one permitted update is the sealing of
// an unsealed row, which touches nothing but the chain columns). Webhook endpoints and deliveries.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table audit_entries add column chain_seq bigint, add column prev_hash text, add column hash text`.execute(db);
  await sql`create unique index audit_entries_chain on audit_entries (tenant_id, chain_seq) where chain_seq is not null`.execute(db);
  await sql`create index audit_entries_unsealed on audit_entries (tenant_id, seq) where hash is null`.execute(db);
  await sql`
    create table audit_heads (
      tenant_id text primary key references tenants (id),
      chain_seq bigint not null,
      hash text not null,
      sealed_at timestamptz not null default now()
    )`.execute(db);
  await sql`
    create function kyclo_audit_append_only() returns trigger language plpgsql as $$
    begin
      if tg_op = 'UPDATE' and old.hash is null and new.hash is not null
         and (to_jsonb(new) - 'chain_seq' - 'prev_hash' - 'hash') = (to_jsonb(old) - 'chain_seq' - 'prev_hash' - 'hash') then
        return new;
      end if;
      raise exception 'audit entries are append-only: % refused', tg_op using errcode = 'KY002';
    end $$`.execute(db);
  await sql`create trigger audit_entries_append_only before update or delete on audit_entries for each row execute function kyclo_audit_append_only()`.execute(db);
  await sql`
    create function kyclo_audit_no_truncate() returns trigger language plpgsql as $$
    begin raise exception 'audit entries are append-only: TRUNCATE refused' using errcode = 'KY002'; end $$`.execute(db);
  await sql`create trigger audit_entries_no_truncate before truncate on audit_entries execute function kyclo_audit_no_truncate()`.execute(db);

  await sql`
    create table webhook_endpoints (
      tenant_id text not null references tenants (id),
      id text not null,
      url text not null,
      description text,
      event_types text[] not null default '{}',
      enabled boolean not null default true,
      secret_enc text not null,
      previous_secret_enc text,
      previous_secret_expires_at timestamptz,
      disabled_reason text,
      failing_since timestamptz,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      primary key (tenant_id, id)
    )`.execute(db);
  // Fan-out: an event is turned into deliveries once, by whichever dispatcher claims it first.
  await sql`alter table events add column fanned_out boolean not null default false`.execute(db);
  await sql`create index events_unfanned on events (seq) where fanned_out = false`.execute(db);
  await sql`
    create table webhook_deliveries (
      tenant_id text not null,
      id text not null,
      endpoint_id text not null,
      event_id text not null,
      status text not null check (status in ('pending','succeeded','failed')),
      attempts integer not null default 0,
      next_attempt_at timestamptz not null default now(),
      leased_until timestamptz,
      last_attempt_at timestamptz,
      last_status_code integer,
      created_at timestamptz not null default now(),
      primary key (tenant_id, id),
      foreign key (tenant_id, endpoint_id) references webhook_endpoints (tenant_id, id) on delete cascade
    )`.execute(db);
  await sql`create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where status = 'pending'`.execute(db);
  await sql`create index webhook_deliveries_endpoint on webhook_deliveries (tenant_id, endpoint_id, id)`.execute(db);
  await sql`create index webhook_deliveries_event on webhook_deliveries (tenant_id, event_id)`.execute(db);
  await sql`
    create table webhook_attempts (
      tenant_id text not null,
      delivery_id text not null,
      attempt integer not null,
      endpoint_id text not null,
      event_id text not null,
      attempted_at timestamptz not null default now(),
      status_code integer,
      duration_ms integer not null,
      error text,
      primary key (tenant_id, delivery_id, attempt)
    )`.execute(db);
  await sql`create index webhook_attempts_endpoint on webhook_attempts (tenant_id, endpoint_id, attempted_at)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['webhook_attempts', 'webhook_deliveries', 'webhook_endpoints', 'audit_heads']) await sql`drop table if exists ${sql.table(t)}`.execute(db);
  await sql`drop trigger if exists audit_entries_append_only on audit_entries`.execute(db);
  await sql`drop trigger if exists audit_entries_no_truncate on audit_entries`.execute(db);
}
