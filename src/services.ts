// The composition root (architecture.md rule 11): every service, built once from the same deps, for
// the HTTP app, the worker and the CLI alike. Routes, workers and commands take what they need from
// here; none builds a service of its own, so each entry point runs the same wiring.
import type { Db } from './db/database.js';
import type { Keyring } from './crypto/keyring.js';
import type { BlobStore } from './storage/blob-store.js';
import type { TargetPolicy } from './modules/webhooks/ssrf.js';
import { DEFAULT_MAX_DOCUMENT_BYTES } from './modules/documents/document-rules.js';
import { createUsersService } from './modules/users/users.service.js';
import { createApiKeysService } from './modules/api-keys/api-keys.service.js';
import { createTenantsService } from './modules/tenants/tenants.service.js';
import { createAuditService } from './modules/audit/audit.service.js';
import { createEventsService } from './modules/events/events.service.js';
import { createPolicyService } from './modules/policy/policy.service.js';
import { createKycService } from './modules/kyc/kyc.service.js';
import { createRelationshipsService } from './modules/relationships/relationships.service.js';
import { createChangeRequestsService } from './modules/reviews/change-requests.service.js';
import { createLifecycleService } from './modules/lifecycle/lifecycle.service.js';
import { createErasureService } from './modules/erasure/erasure.service.js';
import { createExportService } from './modules/erasure/export.service.js';
import { createDocumentsService } from './modules/documents/documents.service.js';
import { createWebhooksService } from './modules/webhooks/webhooks.service.js';
import { createRiskService } from './modules/compliance/risk.service.js';
import { createRequiredActionsService } from './modules/compliance/required-actions.service.js';
import { createImportsService } from './modules/imports/imports.service.js';
import { createExportsService } from './modules/exports/exports.service.js';
import type { ExportThreads } from './modules/exports/parallel.js';

export interface ServiceDeps {
  db: Db;
  keyring: Keyring;
  /** Where document files are kept (sealed). */
  blobs: BlobStore;
  /** Where webhooks may go (the SSRF guard); https to public addresses only unless configured. */
  webhookTargets?: TargetPolicy;
  /** The largest document file accepted, in bytes. */
  documentMaxBytes?: number;
  /** Given by the CLI only: lets `kyclo export --jobs N` render on worker threads (modules/exports/parallel.ts). */
  exportThreads?: ExportThreads;
}

export function createServices({
  db, keyring, blobs, webhookTargets = { allowHttp: false, allowPrivate: false }, documentMaxBytes = DEFAULT_MAX_DOCUMENT_BYTES, exportThreads,
}: ServiceDeps) {
  const relationships = createRelationshipsService({ db, keyring });
  const lifecycle = createLifecycleService({ db, keyring });
  return {
    users: createUsersService({ db, keyring }),
    apiKeys: createApiKeysService({ db }),
    tenants: createTenantsService({ db }),
    audit: createAuditService({ db, keyring }),
    events: createEventsService({ db, keyring }),
    policy: createPolicyService({ db }),
    kyc: createKycService({ db, keyring }),
    relationships,
    changeRequests: createChangeRequestsService({ db, keyring, relationships }),
    lifecycle,
    erasure: createErasureService({ db, lifecycle, blobs, keyring }),
    gdprExport: createExportService({ db, keyring }),
    risk: createRiskService({ db, keyring }),
    requiredActions: createRequiredActionsService({ db, keyring }),
    documents: createDocumentsService({ db, keyring, blobs, maxBytes: documentMaxBytes }),
    webhooks: createWebhooksService({ db, keyring, targets: webhookTargets }),
    imports: createImportsService({ db, keyring }),
    exports: createExportsService({ db, keyring, threads: exportThreads }),
  };
}

export type Services = ReturnType<typeof createServices>;
