// Frozen once released. Per-user data keys (wrapped by the master key) and the ciphertext columns
// that hold personal values; the erasure schedule and legal hold on the user. Nothing of this was
// released before: change requests written earlier lose their plaintext values here on purpose.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table user_keys (
      tenant_id text not null,
      user_id text not null,
      key_id text not null,
      wrapped_key bytea,
      master_key_id text not null,
      created_at timestamptz not null default now(),
      destroyed_at timestamptz,
      primary key (tenant_id, user_id),
      foreign key (tenant_id, user_id) references users (tenant_id, id)
    )`.execute(db);

  await sql`alter table verifications add column identity_enc text`.execute(db);
  await sql`alter table events add column personal_enc text`.execute(db);
  await sql`alter table audit_entries add column personal_enc text`.execute(db);
  await sql`alter table change_requests add column fields text[] not null default '{}'`.execute(db);
  await sql`alter table change_requests add column changes_enc text`.execute(db);
  await sql`update change_requests set fields = array(select jsonb_object_keys(changes))`.execute(db);
  await sql`alter table change_requests drop column changes`.execute(db);

  await sql`alter table users add column external_ref_hash text`.execute(db);
  await sql`alter table users add column legal_hold boolean not null default false`.execute(db);
  await sql`alter table users add column legal_hold_reason text`.execute(db);
  await sql`alter table users add column erasure_requested_at timestamptz`.execute(db);
  await sql`alter table users add column erasure_scheduled_for timestamptz`.execute(db);
  await sql`alter table users add column erased_at timestamptz`.execute(db);
  await sql`create index users_erasure_due on users (erasure_scheduled_for) where erased_at is null and erasure_scheduled_for is not null`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('0004 cannot be reverted: it drops plaintext columns');
}
