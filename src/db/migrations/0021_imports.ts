// Frozen once released. Import jobs and their rejected rows. A job is its file's progress: the
// lines already committed (resume_line) let a run that was killed start again where it stopped,
// and the source's SHA-256 lets a second submission of the same file find the unfinished job.
// A lease (leased_until) keeps two runs off one job; it is renewed with every batch.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table import_jobs (
      tenant_id text not null references tenants (id),
      id text not null,
      profile text not null,
      format text not null check (format in ('ndjson','csv','json')),
      state text not null check (state in ('running','completed','failed')),
      dry_run boolean not null default false,
      user_events boolean not null default false,
      source_name text,
      source_sha256 text not null,
      resume_line bigint not null default 0,
      rows_read bigint not null default 0,
      rows_imported bigint not null default 0,
      rows_existing bigint not null default 0,
      rows_rejected bigint not null default 0,
      moved_fields jsonb not null default '{}'::jsonb,
      failure text,
      leased_until timestamptz,
      created_by_key_id text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      completed_at timestamptz,
      primary key (tenant_id, id)
    )`.execute(db);
  // At most one unfinished job per tenant, file and profile: a second submission resumes it.
  await sql`create unique index import_jobs_unfinished on import_jobs (tenant_id, source_sha256, profile, dry_run) where state = 'running'`.execute(db);
  await sql`
    create table import_errors (
      tenant_id text not null,
      import_id text not null,
      line bigint not null,
      n smallint not null,
      field text not null,
      code text not null,
      message text not null,
      primary key (tenant_id, import_id, line, n),
      foreign key (tenant_id, import_id) references import_jobs (tenant_id, id)
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table if exists import_errors`.execute(db);
  await sql`drop table if exists import_jobs`.execute(db);
}
