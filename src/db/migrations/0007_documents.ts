// Frozen once released. Documents: uploaded files (physical) and identifier numbers (virtual). The
// number, country, issuing authority and expiry are one sealed envelope under the user's data key;
// the file content lives in the blob store, sealed with the same key, and only its blob key is here.
// One current document per user and type; replacing it archives the old one, which is kept.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table documents (
      tenant_id text not null,
      id text not null,
      user_id text not null,
      kind text not null check (kind in ('physical','virtual')),
      type text not null,
      status text not null default 'current' check (status in ('current','archived')),
      details_enc text,
      content_type text,
      size integer,
      blob_key text,
      back_content_type text,
      back_size integer,
      back_blob_key text,
      replaces_id text,
      created_by_key_id text,
      request_id text,
      created_at timestamptz not null default now(),
      archived_at timestamptz,
      destroyed_at timestamptz,
      primary key (tenant_id, id),
      foreign key (tenant_id, user_id) references users (tenant_id, id)
    )`.execute(db);
  // The database, not the application, guarantees a single current version per type.
  await sql`create unique index documents_one_current on documents (tenant_id, user_id, type) where status = 'current'`.execute(db);
  await sql`create index documents_user on documents (tenant_id, user_id, id)`.execute(db);
}
