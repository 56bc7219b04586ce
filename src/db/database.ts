// One Kysely instance per process over a pg pool. Tx is a distinct type so that repository
// functions which lock rows can demand a transaction at compile time.
import { Kysely, PostgresDialect, type Generated, type ColumnType, type Transaction } from 'kysely';
import pg from 'pg';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T = Record<string, unknown>> = ColumnType<T, string | T, string | T>;

export interface TenantsTable {
  id: string;
  name: string;
  policy: Json;
  created_at: Generated<Date>;
}

export interface ApiKeysTable {
  tenant_id: string;
  id: string;
  name: string;
  role: string;
  prefix: string;
  key_hash: Buffer;
  created_by: string | null;
  created_at: Generated<Date>;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

export interface UsersTable {
  tenant_id: string;
  id: string;
  external_ref: string | null;
  type: string;
  country: string;
  status: Generated<string>;
  status_reason: string | null;
  status_changed_at: Generated<Date>;
  kyc_status: Generated<string>;
  kyc_level: number | null;
  kyc_verified_at: Date | null;
  profile: Json;
  metadata: Json;
  tags: string[];
  version: Generated<number>;
  created_at: Generated<Date>;
  updated_at: Timestamp;
  search_text: ColumnType<string, never, never>;
  pending_changes: ColumnType<PendingChange[], string | undefined, string>;
  external_ref_hash: string | null;
  legal_hold: Generated<boolean>;
  legal_hold_reason: string | null;
  erasure_requested_at: Date | null;
  erasure_scheduled_for: Date | null;
  erased_at: Date | null;
  /** The current risk assessment (migration 0020); null until one is set. */
  risk: ColumnType<RiskState | null, string | null | undefined, string | null>;
  kyc_sub_status: string | null;
  required_actions: ColumnType<RequiredAction[], string | undefined, string>;
}

export interface RiskState {
  rating: string;
  status: string;
  reason: string | null;
  updated_at: string;
  set_by: { key_id: string | null; role: string | null };
}

/** What the user must still provide (compliance/required-actions.ts). */
export interface RequiredAction {
  id: string;
  code: string;
  field: string | null;
  document_type: string | null;
  message: string | null;
  due_at: string | null;
  status: 'open' | 'fulfilled' | 'cancelled';
  created_at: string;
  resolved_at: string | null;
}

export interface RiskChangesTable {
  tenant_id: string;
  id: string;
  user_id: string;
  from_rating: string | null;
  from_status: string | null;
  to_rating: string;
  to_status: string;
  reason: string | null;
  actor_key_id: string | null;
  actor_role: string | null;
  request_id: string | null;
  created_at: Generated<Date>;
}

/** The summary of a pending change request kept on the user row. */
export interface PendingChange {
  id: string;
  fields: string[];
  proposed: Record<string, unknown>;
  requested_at: string;
}

export interface ChangeRequestsTable {
  tenant_id: string;
  id: string;
  user_id: string;
  status: string;
  fields: string[];
  changes_enc: string | null;
  requested_by_key_id: string | null;
  requested_by_role: string | null;
  request_id: string | null;
  created_at: Generated<Date>;
  decided_at: Date | null;
  decided_by_key_id: string | null;
  decided_by_role: string | null;
  decision_reason: string | null;
  decision_note: string | null;
  /** Reason and note of the decision, sealed with the user's data key (free text may name anyone). */
  decision_enc: string | null;
}

export interface VerificationsTable {
  tenant_id: string;
  id: string;
  user_id: string;
  result: string;
  level: number | null;
  provider: string;
  provider_ref: string | null;
  provider_ref_enc: string | null;
  identity: Json;
  identity_enc: string | null;
  kyc_status_before: string;
  kyc_status_after: string;
  recorded_by_key_id: string | null;
  request_id: string | null;
  created_at: Generated<Date>;
}

export interface AuditEntriesTable {
  tenant_id: string;
  seq: ColumnType<string, never, never>;
  id: string;
  /** Set by the writer (its MAC covers it); the database default only serves old rows. */
  occurred_at: ColumnType<Date, string | undefined, never>;
  actor_type: string;
  actor_key_id: string | null;
  actor_role: string | null;
  action: string;
  outcome: string;
  target_type: string;
  target_id: string | null;
  user_id: string | null;
  changed_fields: string[];
  request_id: string | null;
  ip: string | null;
  details: Json;
  personal_enc: string | null;
  /** HMAC of the entry's content by the process that wrote it (null only before migration 0010). */
  mac: string | null;
  /** The database's time of the insert (ages the unsealed backlog; not part of the entry's content). */
  recorded_at: ColumnType<Date, never, never>;
  /** The Idempotency-Key claim of the request that wrote it (migration 0014's trigger reads it). */
  idempotency_claim: string | null;
}

/** The chain (migration 0016): one append-only row per sealed entry, entry position → chain position. */
export interface AuditSealsTable {
  tenant_id: string;
  chain_seq: string;
  entry_seq: string;
  prev_hash: string;
  hash: string;
}

export interface AuditVerificationsTable {
  tenant_id: string;
  verified_at: Date;
  ok: boolean;
  sealed: string;
  pending: string;
  checkpoints: number;
  kept_checkpoints: number;
  reason: string | null;
  broken_at: string | null;
  entry_id: string | null;
  mac: string;
}

export interface AuditHeadsTable {
  tenant_id: string;
  chain_seq: string;
  hash: string;
  sealed_at: Generated<Date>;
}

export interface WebhookEndpointsTable {
  tenant_id: string;
  id: string;
  url: string;
  description: string | null;
  event_types: string[];
  enabled: Generated<boolean>;
  secret_enc: string;
  previous_secret_enc: string | null;
  previous_secret_expires_at: Date | null;
  disabled_reason: string | null;
  failing_since: Date | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface WebhookDeliveriesTable {
  tenant_id: string;
  id: string;
  endpoint_id: string;
  event_id: string;
  status: string;
  attempts: Generated<number>;
  next_attempt_at: Generated<Date>;
  leased_until: Date | null;
  last_attempt_at: Date | null;
  last_status_code: number | null;
  created_at: Generated<Date>;
}

export interface WebhookAttemptsTable {
  tenant_id: string;
  delivery_id: string;
  attempt: number;
  endpoint_id: string;
  event_id: string;
  attempted_at: Generated<Date>;
  status_code: number | null;
  duration_ms: number;
  error: string | null;
}

export interface UserKeysTable {
  tenant_id: string;
  user_id: string;
  key_id: string;
  wrapped_key: Buffer | null;
  master_key_id: string;
  created_at: Generated<Date>;
  destroyed_at: Date | null;
}

export interface EventsTable {
  tenant_id: string;
  seq: ColumnType<string, never, never>;
  id: string;
  type: string;
  user_id: string | null;
  occurred_at: Generated<Date>;
  actor_key_id: string | null;
  request_id: string | null;
  data: Json;
  personal_enc: string | null;
}

export interface StatusChangesTable {
  tenant_id: string;
  id: string;
  user_id: string;
  from_status: string;
  to_status: string;
  reason: string | null;
  note: string | null;
  origin: string;
  actor_key_id: string | null;
  actor_role: string | null;
  request_id: string | null;
  created_at: Generated<Date>;
}

export interface IdempotencyKeysTable {
  tenant_id: string;
  api_key_id: string;
  key: string;
  request_hash: string;
  state: string;
  response_status: number | null;
  response_headers: Json<Record<string, string>> | null;
  response_body_enc: string | null;
  /** The request that claimed the key (for the logs). */
  request_id: string | null;
  /** A nonce drawn per claim: the audit entries of the request holding it carry it (migration 0014's trigger). */
  claim_id: string | null;
  /** Every user the stored response concerns: erasure deletes it with them. */
  subject_user_ids: ColumnType<string[], string[] | undefined, string[]>;
  /** Set inside the write's own transaction: the change committed, whatever became of the response. */
  committed_at: Date | null;
  committed_target_type: string | null;
  committed_target_id: string | null;
  created_at: Generated<Date>;
  expires_at: Generated<Date>;
}

export interface DocumentsTable {
  tenant_id: string;
  id: string;
  user_id: string;
  kind: 'physical' | 'virtual';
  type: string;
  status: Generated<'current' | 'archived'>;
  details_enc: string | null;
  content_type: string | null;
  size: number | null;
  blob_key: string | null;
  back_content_type: string | null;
  back_size: number | null;
  back_blob_key: string | null;
  replaces_id: string | null;
  created_by_key_id: string | null;
  request_id: string | null;
  created_at: Generated<Date>;
  archived_at: Date | null;
  destroyed_at: Date | null;
}

export interface RelationshipsTable {
  tenant_id: string;
  id: string;
  /** The business (or the child account) the relationship belongs to. */
  user_id: string;
  related_user_id: string;
  type: string;
  /** numeric(7,4): read back as a string. */
  ownership_percent: ColumnType<string | null, number | null, number | null>;
  control: boolean;
  title: string | null;
  starts_on: ColumnType<string | null, string | null, string | null>;
  ended_at: Date | null;
  created_at: Generated<Date>;
  created_by_key_id: string | null;
  ended_by_key_id: string | null;
  request_id: string | null;
  change_request_id: string | null;
}

export interface ImportJobsTable {
  tenant_id: string;
  id: string;
  profile: string;
  format: string;
  state: 'running' | 'completed' | 'failed';
  dry_run: boolean;
  user_events: boolean;
  source_name: string | null;
  source_sha256: string;
  resume_line: ColumnType<string, string | number | undefined, string | number>;
  rows_read: ColumnType<string, string | number | undefined, string | number>;
  rows_imported: ColumnType<string, string | number | undefined, string | number>;
  rows_existing: ColumnType<string, string | number | undefined, string | number>;
  rows_rejected: ColumnType<string, string | number | undefined, string | number>;
  moved_fields: Json;
  failure: string | null;
  leased_until: Date | null;
  created_by_key_id: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
  completed_at: Date | null;
}

export interface ImportErrorsTable {
  tenant_id: string;
  import_id: string;
  line: ColumnType<string, string | number, never>;
  n: number;
  field: string;
  code: string;
  message: string;
}

export interface Database {
  tenants: TenantsTable;
  api_keys: ApiKeysTable;
  users: UsersTable;
  audit_entries: AuditEntriesTable;
  events: EventsTable;
  change_requests: ChangeRequestsTable;
  verifications: VerificationsTable;
  status_changes: StatusChangesTable;
  user_keys: UserKeysTable;
  audit_heads: AuditHeadsTable;
  audit_verifications: AuditVerificationsTable;
  audit_seals: AuditSealsTable;
  webhook_endpoints: WebhookEndpointsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
  idempotency_keys: IdempotencyKeysTable;
  documents: DocumentsTable;
  relationships: RelationshipsTable;
  risk_changes: RiskChangesTable;
  import_jobs: ImportJobsTable;
  import_errors: ImportErrorsTable;
}

export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;

// int8 (bigint) arrives as a string by default; counts and seqs we return stay strings on purpose,
// but COUNT(*) results are parsed where used.
export function createDb(connectionString: string, opts: { max?: number } = {}): Db {
  // No statement may hold a connection for long: 15 s per statement, 30 s idle inside a transaction.
  const pool = new pg.Pool({
    connectionString, max: opts.max ?? 10, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 10_000,
    statement_timeout: 15_000, idle_in_transaction_session_timeout: 30_000,
  });
  // A dropped connection must never crash the process: pg reports it on the pool for idle clients
  // and on the client itself while checked out (the query in flight fails on its own, and the pool
  // discards the broken client and dials a new one on the next checkout).
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  pools.set(db, pool);
  return db;
}

const pools = new WeakMap<Db, pg.Pool>();

/** The pool behind a Db, for the few hot statements run as named prepared statements (db/prepared.ts). */
export function poolOf(db: Db): pg.Pool | undefined {
  return pools.get(db);
}

/**
 * Closes a Db and its pool. Kysely's destroy() ends the pool only if Kysely itself ran a query (its
 * driver takes the pool on first use), and statements sent through poolOf() do not count: a Db used
 * only that way (an export thread's snapshot reads) would otherwise keep its connections, and its
 * thread or process, alive.
 */
export async function closeDb(db: Db): Promise<void> {
  await db.destroy();
  const pool = pools.get(db);
  if (pool && !pool.ended) await pool.end();
}
