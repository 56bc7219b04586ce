// Frozen once released: a later change gets a new migration, never an edit here.
// Every table is keyed by tenant_id first so it can be distributed by tenant.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create extension if not exists pg_trgm`.execute(db);

  await sql`
    create table tenants (
      id text primary key,
      name text not null unique,
      policy jsonb not null default '{}'::jsonb,
      created_at timestamptz not null default now()
    )`.execute(db);

  await sql`
    create table api_keys (
      tenant_id text not null references tenants (id),
      id text not null,
      name text not null,
      role text not null check (role in ('OWNER','ADMIN','COMPLIANCE_OFFICER','DEVELOPER','READER')),
      prefix text not null,
      key_hash bytea not null,
      created_by text,
      created_at timestamptz not null default now(),
      expires_at timestamptz,
      revoked_at timestamptz,
      last_used_at timestamptz,
      primary key (tenant_id, id)
    )`.execute(db);
  await sql`create unique index api_keys_key_hash on api_keys (key_hash)`.execute(db);

  // Profile values live in one jsonb document so the field policy can address any field by its
  // dotted path; search_text is derived from it for the trigram index behind ?q=.
  await sql`
    create table users (
      tenant_id text not null references tenants (id),
      id text not null,
      external_ref text,
      type text not null check (type in ('individual','business')),
      country text not null,
      status text not null default 'active',
      status_reason text,
      status_changed_at timestamptz not null default now(),
      kyc_status text not null default 'unverified',
      kyc_level integer,
      kyc_verified_at timestamptz,
      profile jsonb not null default '{}'::jsonb,
      metadata jsonb not null default '{}'::jsonb,
      tags text[] not null default '{}',
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      search_text text generated always as (lower(
        coalesce(profile->>'first_name', '') || ' ' || coalesce(profile->>'middle_name', '') || ' ' ||
        coalesce(profile->>'last_name', '') || ' ' || coalesce(profile->>'preferred_name', '') || ' ' ||
        coalesce(profile->>'legal_name', '') || ' ' || coalesce(profile->>'email', '') || ' ' ||
        coalesce(profile->>'phone', '') || ' ' || coalesce(external_ref, '')
      )) stored,
      primary key (tenant_id, id)
    )`.execute(db);
  await sql`create unique index users_external_ref on users (tenant_id, external_ref) where external_ref is not null`.execute(db);
  await sql`create index users_status on users (tenant_id, status, id)`.execute(db);
  await sql`create index users_kyc_status on users (tenant_id, kyc_status, id)`.execute(db);
  await sql`create index users_updated_at on users (tenant_id, updated_at)`.execute(db);
  await sql`create index users_tags on users using gin (tags)`.execute(db);
  await sql`create index users_search on users using gin (search_text gin_trgm_ops)`.execute(db);

  // The audit log: append-only. seq orders a tenant's entries for the hash chain added later.
  await sql`
    create table audit_entries (
      tenant_id text not null references tenants (id),
      seq bigint generated always as identity,
      id text not null,
      occurred_at timestamptz not null default now(),
      actor_type text not null check (actor_type in ('api_key','cli','system')),
      actor_key_id text,
      actor_role text,
      action text not null,
      outcome text not null check (outcome in ('applied','denied','flagged')),
      target_type text not null,
      target_id text,
      user_id text,
      changed_fields text[] not null default '{}',
      request_id text,
      ip text,
      details jsonb not null default '{}'::jsonb,
      primary key (tenant_id, seq)
    )`.execute(db);
  await sql`create unique index audit_entries_id on audit_entries (tenant_id, id)`.execute(db);
  await sql`create index audit_entries_user on audit_entries (tenant_id, user_id, seq) where user_id is not null`.execute(db);

  // Events double as the transactional outbox: written in the same transaction as the change.
  await sql`
    create table events (
      tenant_id text not null references tenants (id),
      seq bigint generated always as identity,
      id text not null,
      type text not null,
      user_id text,
      occurred_at timestamptz not null default now(),
      actor_key_id text,
      request_id text,
      data jsonb not null,
      primary key (tenant_id, seq)
    )`.execute(db);
  await sql`create unique index events_id on events (tenant_id, id)`.execute(db);
  await sql`create index events_type on events (tenant_id, type, seq)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['events', 'audit_entries', 'users', 'api_keys', 'tenants']) {
    await sql`drop table if exists ${sql.table(t)}`.execute(db);
  }
}
