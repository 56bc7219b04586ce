// Frozen once released. Closes what a review of 0010–0011 found:
// - Legacy entries (written before entries carried a MAC) are named exactly, per tenant: the chain
//   positions sealed by then and the ids still unsealed. 0010's single `seq` bound let anyone who can
//   INSERT pick a low `seq` (OVERRIDING SYSTEM VALUE) and pass a MAC-less entry off as legacy.
// - From here on chain hashes are keyed (HMAC under a key derived from the master key), so the chain
//   cannot be recomputed after a middle entry is deleted; the legacy prefix keeps its SHA-256 hashes.
// - `recorded_at` is the database's own time of the insert: the unsealed backlog is aged by it, so an
//   application host whose clock lags the database's raises no false "stuck".
// - An idempotency claim is matched by a nonce the server draws per claim (`claim_id`, carried by
//   the audit entries of the request that holds it), no longer by the request id, which a client may
//   reuse across requests.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table audit_legacy (
      tenant_id text primary key,
      sealed_upto bigint not null,
      unsealed_ids text[] not null
    )`.execute(db);
  await sql`
    insert into audit_legacy (tenant_id, sealed_upto, unsealed_ids)
    select a.tenant_id,
           coalesce(max(a.chain_seq) filter (where a.hash is not null), 0),
           coalesce(array_agg(a.id order by a.seq) filter (where a.hash is null), '{}')
      from audit_entries a, audit_settings s
     where a.mac is null and a.seq <= s.mac_required_after_seq
     group by a.tenant_id`.execute(db);
  await sql`create trigger audit_legacy_frozen before insert or update or delete on audit_legacy for each row execute function kyclo_audit_refuse()`.execute(db);
  await sql`create trigger audit_legacy_no_truncate before truncate on audit_legacy execute function kyclo_audit_refuse()`.execute(db);
  await sql`drop table audit_settings`.execute(db);

  await sql`alter table audit_entries add column recorded_at timestamptz not null default now(), add column idempotency_claim text`.execute(db);

  await sql`alter table idempotency_keys add column claim_id text`.execute(db);
  await sql`drop index if exists idempotency_keys_claims`.execute(db);
  await sql`create index idempotency_keys_claims on idempotency_keys (tenant_id, claim_id) where state = 'in_progress'`.execute(db);
  await sql`
    create or replace function kyclo_idempotency_link() returns trigger language plpgsql as $$
    begin
      if new.idempotency_claim is null then return null; end if;
      update idempotency_keys k
         set committed_at = case when new.outcome = 'applied' then coalesce(k.committed_at, now()) else k.committed_at end,
             committed_target_type = case when new.outcome = 'applied' and k.committed_at is null then new.target_type else k.committed_target_type end,
             committed_target_id = case when new.outcome = 'applied' and k.committed_at is null then new.target_id else k.committed_target_id end,
             subject_user_ids = case when new.user_id is null or new.user_id = any(k.subject_user_ids) then k.subject_user_ids
                                     else k.subject_user_ids || new.user_id end
       where k.tenant_id = new.tenant_id and k.claim_id = new.idempotency_claim and k.state = 'in_progress';
      return null;
    end $$`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table idempotency_keys drop column if exists claim_id`.execute(db);
  await sql`alter table audit_entries drop column if exists recorded_at, drop column if exists idempotency_claim`.execute(db);
  await sql`drop table if exists audit_legacy`.execute(db);
}
