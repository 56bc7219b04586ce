// Migrations are listed statically so a build or a bundle cannot miss one, and they import only Kysely.
import { Migrator, type Kysely, type Migration } from 'kysely';
import * as m0001 from './migrations/0001_init.js';
import * as m0002 from './migrations/0002_policy_kyc_reviews.js';
import * as m0003 from './migrations/0003_lifecycle.js';
import * as m0004 from './migrations/0004_encryption_erasure.js';
import * as m0005 from './migrations/0005_audit_chain_webhooks.js';
import * as m0006 from './migrations/0006_idempotency.js';
import * as m0007 from './migrations/0007_documents.js';
import * as m0008 from './migrations/0008_search_statistics.js';
import * as m0009 from './migrations/0009_search_statistics_default.js';
import * as m0010 from './migrations/0010_audit_authentication.js';
import * as m0011 from './migrations/0011_idempotency_commit_link.js';
import * as m0012 from './migrations/0012_bounded_json.js';
import * as m0013 from './migrations/0013_events_user_index.js';
import * as m0014 from './migrations/0014_audit_keyed_chain.js';
import * as m0015 from './migrations/0015_audit_seal_check.js';
import * as m0016 from './migrations/0016_insert_only_sealing.js';
import * as m0017 from './migrations/0017_relationships.js';
import * as m0019 from './migrations/0019_custom_fields.js';
import * as m0020 from './migrations/0020_compliance_profile.js';
import * as m0021 from './migrations/0021_imports.js';
import * as m0022 from './migrations/0022_users_risk_index.js';
import * as m0023 from './migrations/0023_audit_verifications.js';
import * as m0024 from './migrations/0024_webhook_deliveries_by_tenant.js';
import * as m0025 from './migrations/0025_erased_refs.js';
import * as m0026 from './migrations/0026_users_gin_pending_lists.js';
import * as m0027 from './migrations/0027_users_awaiting_erasure.js';

export const migrations: Record<string, Migration> = {
  '0001_init': m0001,
  '0002_policy_kyc_reviews': m0002,
  '0003_lifecycle': m0003,
  '0004_encryption_erasure': m0004,
  '0005_audit_chain_webhooks': m0005,
  '0006_idempotency': m0006,
  '0007_documents': m0007,
  '0008_search_statistics': m0008,
  '0009_search_statistics_default': m0009,
  '0010_audit_authentication': m0010,
  '0011_idempotency_commit_link': m0011,
  '0012_bounded_json': m0012,
  '0013_events_user_index': m0013,
  '0014_audit_keyed_chain': m0014,
  '0015_audit_seal_check': m0015,
  '0016_insert_only_sealing': m0016,
  '0017_relationships': m0017,
  '0019_custom_fields': m0019,
  '0020_compliance_profile': m0020,
  '0021_imports': m0021,
  '0022_users_risk_index': m0022,
  '0023_audit_verifications': m0023,
  '0024_webhook_deliveries_by_tenant': m0024,
  '0025_erased_refs': m0025,
  '0026_users_gin_pending_lists': m0026,
  '0027_users_awaiting_erasure': m0027,
};

export async function migrateToLatest(db: Kysely<unknown>): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: 'kyclo_migrations',
    migrationLockTableName: 'kyclo_migrations_lock',
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
