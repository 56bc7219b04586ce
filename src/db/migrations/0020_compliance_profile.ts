// Frozen once released. The compliance profile (issue 16 §2): what compliance decides about a user
// beside its identity and contact data.
// - users.risk: the current risk assessment {rating, status, reason, updated_at, set_by}, null until
//   one is set; every change also goes to risk_changes, the history (never updated, but for erasure
//   nulling the free-text reason).
// - users.kyc_sub_status: MatchMove's finer KYC step beside kyc_status.
// - users.required_actions: what the user must still provide, with each action's status. A small
//   bounded list shown on every read of the user, so kept on the row like pending_changes.
// The further profile fields (purpose of account, employer, FATCA/CRS…) live in users.profile with
// the other profile values and need nothing here.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table users add column risk jsonb`.execute(db);
  await sql`
    alter table users add column kyc_sub_status text
      check (kyc_sub_status in ('pending_document_submission','submitted','pending_bank_verification','waiting_for_approval','approved'))`.execute(db);
  await sql`alter table users add column required_actions jsonb not null default '[]'::jsonb`.execute(db);
  // Written only by the service from bounded values (at most 50 actions of bounded fields): a bound in
  // the database behind it, as migration 0012 does for the other columns a request can grow.
  await sql`alter table users add constraint users_required_actions_bounded check (octet_length(required_actions::text) <= 262144)`.execute(db);
  await sql`alter table users add constraint users_risk_bounded check (risk is null or octet_length(risk::text) <= 8192)`.execute(db);
  await sql`
    create table risk_changes (
      tenant_id text not null,
      id text not null,
      user_id text not null,
      from_rating text,
      from_status text,
      to_rating text not null check (to_rating in ('low','medium','high','prohibited')),
      to_status text not null check (to_status in ('cleared','pending','rejected','unknown')),
      reason text,
      actor_key_id text,
      actor_role text,
      request_id text,
      created_at timestamptz not null default now(),
      primary key (tenant_id, id),
      foreign key (tenant_id, user_id) references users (tenant_id, id)
    )`.execute(db);
  await sql`create index risk_changes_user on risk_changes (tenant_id, user_id, id)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table if exists risk_changes`.execute(db);
  await sql`alter table users drop constraint if exists users_risk_bounded`.execute(db);
  await sql`alter table users drop constraint if exists users_required_actions_bounded`.execute(db);
  await sql`alter table users drop column if exists required_actions`.execute(db);
  await sql`alter table users drop column if exists kyc_sub_status`.execute(db);
  await sql`alter table users drop column if exists risk`.execute(db);
}
