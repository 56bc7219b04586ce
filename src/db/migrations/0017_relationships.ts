// Frozen once released. Relationships between users of one tenant (a business's owners, directors,
// representatives, signatories and shareholders; any account's parent). A row is ended, never
// deleted: its history is part of the record. Both ends reference users by (tenant_id, id), so a
// relationship can never cross tenants, and an erased user's tombstone row keeps its relationships.
// The rules that span rows (no cycle, ownership ≤ 100 % per business) are checked by the service
// under a per-tenant transaction lock (relationships.repo.ts); what one row can say is said here.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table relationships (
      tenant_id text not null,
      id text not null,
      user_id text not null,
      related_user_id text not null,
      type text not null check (type in ('beneficial_owner','director','legal_representative','authorised_signatory','shareholder','parent')),
      ownership_percent numeric(7,4) check (ownership_percent > 0 and ownership_percent <= 100),
      control boolean not null default false,
      title text,
      starts_on date,
      ended_at timestamptz,
      created_at timestamptz not null default now(),
      created_by_key_id text,
      ended_by_key_id text,
      request_id text,
      change_request_id text,
      primary key (tenant_id, id),
      foreign key (tenant_id, user_id) references users (tenant_id, id),
      foreign key (tenant_id, related_user_id) references users (tenant_id, id),
      check (user_id <> related_user_id),
      check (ownership_percent is null or type in ('beneficial_owner','shareholder'))
    )`.execute(db);
  // A user's current relationships (lists, the ownership walk upwards, the capability check) and
  // the relationships a user holds in others (the walk's cycle check goes the same way).
  await sql`create index relationships_user on relationships (tenant_id, user_id) where ended_at is null`.execute(db);
  await sql`create index relationships_related on relationships (tenant_id, related_user_id) where ended_at is null`.execute(db);
  await sql`create index relationships_history on relationships (tenant_id, user_id, created_at)`.execute(db);
  // The same link twice at once says nothing new; one current parent per account (Treezor's parentUserId).
  await sql`create unique index relationships_current on relationships (tenant_id, user_id, related_user_id, type) where ended_at is null`.execute(db);
  await sql`create unique index relationships_one_parent on relationships (tenant_id, user_id) where ended_at is null and type = 'parent'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table if exists relationships`.execute(db);
}
