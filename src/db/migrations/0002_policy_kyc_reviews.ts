// Frozen once released. Verification records (immutable), change requests (the review queue), and the
// user's pending changes kept on the row so reading a user stays one query.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table users add column pending_changes jsonb not null default '[]'::jsonb`.execute(db);

  await sql`
    create table change_requests (
      tenant_id text not null,
      id text not null,
      user_id text not null,
      status text not null check (status in ('pending','approved','rejected','cancelled')),
      changes jsonb not null,
      requested_by_key_id text,
      requested_by_role text,
      request_id text,
      created_at timestamptz not null default now(),
      decided_at timestamptz,
      decided_by_key_id text,
      decided_by_role text,
      decision_reason text,
      decision_note text,
      primary key (tenant_id, id),
      foreign key (tenant_id, user_id) references users (tenant_id, id)
    )`.execute(db);
  await sql`create index change_requests_queue on change_requests (tenant_id, status, id)`.execute(db);
  await sql`create index change_requests_user on change_requests (tenant_id, user_id, id)`.execute(db);

  await sql`
    create table verifications (
      tenant_id text not null,
      id text not null,
      user_id text not null,
      result text not null check (result in ('approved','rejected','review')),
      level integer,
      provider text not null,
      provider_ref text,
      identity jsonb not null default '{}'::jsonb,
      kyc_status_before text not null,
      kyc_status_after text not null,
      recorded_by_key_id text,
      request_id text,
      created_at timestamptz not null default now(),
      primary key (tenant_id, id),
      foreign key (tenant_id, user_id) references users (tenant_id, id)
    )`.execute(db);
  await sql`create index verifications_user on verifications (tenant_id, user_id, id)`.execute(db);

  // The identity snapshot is evidence: it is superseded by a later verification, never edited.
  await sql`
    create function kyclo_refuse_verification_update() returns trigger language plpgsql as $$
    begin
      raise exception 'verification % is an immutable record and cannot be updated', old.id
        using errcode = 'KY001';
    end $$`.execute(db);
  await sql`
    create trigger verifications_immutable before update on verifications
    for each row execute function kyclo_refuse_verification_update()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table if exists verifications`.execute(db);
  await sql`drop function if exists kyclo_refuse_verification_update`.execute(db);
  await sql`drop table if exists change_requests`.execute(db);
  await sql`alter table users drop column if exists pending_changes`.execute(db);
}
