// Frozen once released. The status history: one row per transition, never updated.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table status_changes (
      tenant_id text not null,
      id text not null,
      user_id text not null,
      from_status text not null,
      to_status text not null,
      reason text,
      note text,
      origin text not null check (origin in ('operator','user','system')),
      actor_key_id text,
      actor_role text,
      request_id text,
      created_at timestamptz not null default now(),
      primary key (tenant_id, id),
      foreign key (tenant_id, user_id) references users (tenant_id, id)
    )`.execute(db);
  await sql`create index status_changes_user on status_changes (tenant_id, user_id, id)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table if exists status_changes`.execute(db);
}
