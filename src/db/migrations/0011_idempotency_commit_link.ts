// Frozen once released. An idempotency claim learns, inside the very transaction that makes the
// change, that the change committed and which users it concerns: a trigger on audit_entries (every
// write records one, in its own transaction) marks the claim of the request that wrote it. So a
// process killed between the commit and storing the response leaves a claim that says "applied,
// target X" (never re-executed), and erasure finds every stored response about a user, whatever the
// route. Verifications' provider_ref and change requests' decision texts move to sealed columns.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table idempotency_keys
      add column request_id text,
      add column subject_user_ids text[] not null default '{}',
      add column committed_at timestamptz,
      add column committed_target_type text,
      add column committed_target_id text`.execute(db);
  await sql`update idempotency_keys set subject_user_ids = array[subject_user_id] where subject_user_id is not null`.execute(db);
  await sql`drop index if exists idempotency_keys_subject`.execute(db);
  await sql`alter table idempotency_keys drop column subject_user_id`.execute(db);
  await sql`create index idempotency_keys_subjects on idempotency_keys using gin (subject_user_ids)`.execute(db);
  await sql`create index idempotency_keys_claims on idempotency_keys (tenant_id, request_id) where state = 'in_progress'`.execute(db);
  // The claim is matched by tenant, API key and request id; an applied entry marks it committed,
  // any entry (a refused attempt too) links the user its response may speak of.
  await sql`
    create function kyclo_idempotency_link() returns trigger language plpgsql as $$
    begin
      if new.request_id is null or new.actor_key_id is null then return null; end if;
      update idempotency_keys k
         set committed_at = case when new.outcome = 'applied' then coalesce(k.committed_at, now()) else k.committed_at end,
             committed_target_type = case when new.outcome = 'applied' and k.committed_at is null then new.target_type else k.committed_target_type end,
             committed_target_id = case when new.outcome = 'applied' and k.committed_at is null then new.target_id else k.committed_target_id end,
             subject_user_ids = case when new.user_id is null or new.user_id = any(k.subject_user_ids) then k.subject_user_ids
                                     else k.subject_user_ids || new.user_id end
       where k.tenant_id = new.tenant_id and k.request_id = new.request_id and k.state = 'in_progress'
         and k.api_key_id = new.actor_key_id;
      return null;
    end $$`.execute(db);
  await sql`
    create trigger audit_entries_idempotency_link after insert on audit_entries
      for each row execute function kyclo_idempotency_link()`.execute(db);

  await sql`alter table verifications add column provider_ref_enc text`.execute(db);
  // Verifications stay immutable, except for the one change erasure makes: forgetting the plaintext
  // provider_ref and identity of rows written before they were sealed (the sealed ones die with the key).
  await sql`
    create or replace function kyclo_refuse_verification_update() returns trigger language plpgsql as $$
    begin
      if new.provider_ref is null and new.provider_ref_enc is null and new.identity = '{}'::jsonb
         and (to_jsonb(new) - 'provider_ref' - 'provider_ref_enc' - 'identity') = (to_jsonb(old) - 'provider_ref' - 'provider_ref_enc' - 'identity') then
        return new;
      end if;
      raise exception 'verification % is an immutable record and cannot be updated', old.id
        using errcode = 'KY001';
    end $$`.execute(db);
  await sql`alter table change_requests add column decision_enc text`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table change_requests drop column if exists decision_enc`.execute(db);
  await sql`
    create or replace function kyclo_refuse_verification_update() returns trigger language plpgsql as $$
    begin
      raise exception 'verification % is an immutable record and cannot be updated', old.id
        using errcode = 'KY001';
    end $$`.execute(db);
  await sql`alter table verifications drop column if exists provider_ref_enc`.execute(db);
  await sql`drop trigger if exists audit_entries_idempotency_link on audit_entries`.execute(db);
  await sql`drop function if exists kyclo_idempotency_link()`.execute(db);
  await sql`drop index if exists idempotency_keys_claims`.execute(db);
  await sql`drop index if exists idempotency_keys_subjects`.execute(db);
  await sql`alter table idempotency_keys add column subject_user_id text`.execute(db);
  await sql`update idempotency_keys set subject_user_id = subject_user_ids[1]`.execute(db);
  await sql`
    alter table idempotency_keys drop column request_id, drop column subject_user_ids, drop column committed_at,
      drop column committed_target_type, drop column committed_target_id`.execute(db);
}
