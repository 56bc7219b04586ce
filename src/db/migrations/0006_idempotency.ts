// Frozen once released. Stored responses of POSTs made with an Idempotency-Key, per API key: the
// body sealed by the master key, and the user it concerns so that erasure can remove it.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table idempotency_keys (
      tenant_id text not null,
      api_key_id text not null,
      key text not null,
      request_hash text not null,
      state text not null check (state in ('in_progress','completed')),
      response_status integer,
      response_headers jsonb,
      response_body_enc text,
      subject_user_id text,
      created_at timestamptz not null default now(),
      expires_at timestamptz not null default now() + interval '24 hours',
      primary key (api_key_id, key)
    )`.execute(db);
  await sql`create index idempotency_keys_expiry on idempotency_keys (expires_at)`.execute(db);
  await sql`create index idempotency_keys_subject on idempotency_keys (tenant_id, subject_user_id) where subject_user_id is not null`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table if exists idempotency_keys`.execute(db);
}
