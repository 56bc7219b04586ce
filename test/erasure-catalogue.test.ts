// Erasure leaves nothing, checked against the database's own catalogue: every text, jsonb, bytea and
// array column of every table is classified, so a new column fails this test until someone says
// whether it can hold personal data; then canaries are written through every free-text field a
// request can reach, the user is erased, and a dump of the whole database must hold none of them.
import crypto from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { business, individual } from './helpers/factories.js';
import { dumpDatabase } from './helpers/dump.js';
import { importText, servicesFor } from './helpers/imports.js';
import { createErasureService } from '../src/modules/erasure/erasure.service.js';
import { createLifecycleService } from '../src/modules/lifecycle/lifecycle.service.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;

beforeAll(async () => ({ ctx, api, tenantId } = await openTenantContext()));
afterAll(() => ctx.close());

/**
 * `personal`: may hold a user's values; erasure destroys them (nulled, or sealed with the user's key
 * that erasure destroys), and the canary dump below checks it. `non-personal`: by design only ids,
 * codes, hashes, ciphertext of the master key, or tenant configuration, bounded by their schema.
 */
const COLUMNS: Record<string, 'personal' | 'non-personal'> = {
  'users.external_ref': 'personal', 'users.profile': 'personal', 'users.metadata': 'personal', 'users.tags': 'personal',
  'users.pending_changes': 'personal', 'users.search_text': 'personal', 'users.legal_hold_reason': 'personal',
  'users.id': 'non-personal', 'users.tenant_id': 'non-personal', 'users.type': 'non-personal', 'users.country': 'non-personal',
  'users.status': 'non-personal', 'users.status_reason': 'non-personal', 'users.kyc_status': 'non-personal', 'users.external_ref_hash': 'non-personal',
  'verifications.identity': 'personal', 'verifications.identity_enc': 'personal', 'verifications.provider_ref': 'personal', 'verifications.provider_ref_enc': 'personal',
  'verifications.id': 'non-personal', 'verifications.tenant_id': 'non-personal', 'verifications.user_id': 'non-personal', 'verifications.result': 'non-personal',
  'verifications.provider': 'non-personal', 'verifications.kyc_status_before': 'non-personal', 'verifications.kyc_status_after': 'non-personal',
  'verifications.recorded_by_key_id': 'non-personal', 'verifications.request_id': 'non-personal',
  'change_requests.changes_enc': 'personal', 'change_requests.decision_enc': 'personal', 'change_requests.decision_note': 'personal', 'change_requests.decision_reason': 'personal',
  'change_requests.id': 'non-personal', 'change_requests.tenant_id': 'non-personal', 'change_requests.user_id': 'non-personal', 'change_requests.status': 'non-personal',
  'change_requests.fields': 'non-personal', 'change_requests.requested_by_key_id': 'non-personal', 'change_requests.requested_by_role': 'non-personal',
  'change_requests.decided_by_key_id': 'non-personal', 'change_requests.decided_by_role': 'non-personal', 'change_requests.request_id': 'non-personal',
  'status_changes.note': 'personal',
  'status_changes.id': 'non-personal', 'status_changes.tenant_id': 'non-personal', 'status_changes.user_id': 'non-personal', 'status_changes.from_status': 'non-personal',
  'status_changes.to_status': 'non-personal', 'status_changes.reason': 'non-personal', 'status_changes.origin': 'non-personal', 'status_changes.actor_key_id': 'non-personal',
  'status_changes.actor_role': 'non-personal', 'status_changes.request_id': 'non-personal',
  'events.data': 'personal', 'events.personal_enc': 'personal',
  'events.id': 'non-personal', 'events.tenant_id': 'non-personal', 'events.user_id': 'non-personal', 'events.type': 'non-personal', 'events.actor_key_id': 'non-personal', 'events.request_id': 'non-personal',
  'audit_entries.details': 'personal', 'audit_entries.personal_enc': 'personal',
  'audit_entries.id': 'non-personal', 'audit_entries.tenant_id': 'non-personal', 'audit_entries.user_id': 'non-personal', 'audit_entries.action': 'non-personal',
  'audit_entries.actor_type': 'non-personal', 'audit_entries.actor_key_id': 'non-personal', 'audit_entries.actor_role': 'non-personal', 'audit_entries.outcome': 'non-personal',
  'audit_entries.target_type': 'non-personal', 'audit_entries.target_id': 'non-personal', 'audit_entries.changed_fields': 'non-personal', 'audit_entries.request_id': 'non-personal',
  'audit_entries.ip': 'non-personal', 'audit_entries.mac': 'non-personal',
  'audit_seals.tenant_id': 'non-personal', 'audit_seals.prev_hash': 'non-personal', 'audit_seals.hash': 'non-personal',
  'audit_unsealed.tenant_id': 'non-personal', 'event_outbox.tenant_id': 'non-personal',
  'audit_entries.idempotency_claim': 'non-personal', 'idempotency_keys.claim_id': 'non-personal', 'audit_legacy.unsealed_ids': 'non-personal', 'audit_legacy.tenant_id': 'non-personal',
  'documents.details_enc': 'personal',
  'documents.id': 'non-personal', 'documents.tenant_id': 'non-personal', 'documents.user_id': 'non-personal', 'documents.kind': 'non-personal', 'documents.type': 'non-personal',
  'documents.status': 'non-personal', 'documents.content_type': 'non-personal', 'documents.blob_key': 'non-personal', 'documents.back_content_type': 'non-personal',
  'documents.back_blob_key': 'non-personal', 'documents.replaces_id': 'non-personal', 'documents.created_by_key_id': 'non-personal', 'documents.request_id': 'non-personal',
  'idempotency_keys.response_body_enc': 'personal', 'idempotency_keys.response_headers': 'personal',
  'idempotency_keys.tenant_id': 'non-personal', 'idempotency_keys.api_key_id': 'non-personal', 'idempotency_keys.key': 'non-personal', 'idempotency_keys.request_hash': 'non-personal',
  'idempotency_keys.state': 'non-personal', 'idempotency_keys.subject_user_ids': 'non-personal', 'idempotency_keys.request_id': 'non-personal',
  'idempotency_keys.committed_target_type': 'non-personal', 'idempotency_keys.committed_target_id': 'non-personal',
  'users.risk': 'personal', 'users.required_actions': 'personal', 'users.kyc_sub_status': 'non-personal',
  'risk_changes.reason': 'personal',
  'risk_changes.tenant_id': 'non-personal', 'risk_changes.id': 'non-personal', 'risk_changes.user_id': 'non-personal', 'risk_changes.from_rating': 'non-personal',
  'risk_changes.from_status': 'non-personal', 'risk_changes.to_rating': 'non-personal', 'risk_changes.to_status': 'non-personal',
  'risk_changes.actor_key_id': 'non-personal', 'risk_changes.actor_role': 'non-personal', 'risk_changes.request_id': 'non-personal',
  'relationships.title': 'personal',
  'relationships.tenant_id': 'non-personal', 'relationships.id': 'non-personal', 'relationships.user_id': 'non-personal', 'relationships.related_user_id': 'non-personal',
  'relationships.type': 'non-personal', 'relationships.created_by_key_id': 'non-personal', 'relationships.ended_by_key_id': 'non-personal',
  'relationships.request_id': 'non-personal', 'relationships.change_request_id': 'non-personal',
  'user_keys.wrapped_key': 'personal',
  'user_keys.tenant_id': 'non-personal', 'user_keys.user_id': 'non-personal', 'user_keys.key_id': 'non-personal', 'user_keys.master_key_id': 'non-personal',
  // Tenant configuration and machinery: written by operators about their platform, never about a user.
  'tenants.id': 'non-personal', 'tenants.name': 'non-personal', 'tenants.policy': 'non-personal',
  'api_keys.id': 'non-personal', 'api_keys.tenant_id': 'non-personal', 'api_keys.name': 'non-personal', 'api_keys.role': 'non-personal', 'api_keys.prefix': 'non-personal',
  'api_keys.key_hash': 'non-personal', 'api_keys.created_by': 'non-personal',
  'audit_heads.tenant_id': 'non-personal', 'audit_heads.hash': 'non-personal',
  'audit_checkpoints.id': 'non-personal', 'audit_checkpoints.tenant_id': 'non-personal', 'audit_checkpoints.hash': 'non-personal', 'audit_checkpoints.key_id': 'non-personal',
  'audit_checkpoints.signature': 'non-personal',
  'audit_rejections.tenant_id': 'non-personal', 'audit_rejections.entry_id': 'non-personal', 'audit_rejections.reason': 'non-personal',
  // What the last `kyclo audit verify` found: chain positions and entry ids, never an entry's content.
  'audit_verifications.tenant_id': 'non-personal', 'audit_verifications.reason': 'non-personal', 'audit_verifications.broken_at': 'non-personal',
  'audit_verifications.entry_id': 'non-personal', 'audit_verifications.mac': 'non-personal',
  'webhook_endpoints.id': 'non-personal', 'webhook_endpoints.tenant_id': 'non-personal', 'webhook_endpoints.url': 'non-personal', 'webhook_endpoints.description': 'non-personal',
  'webhook_endpoints.event_types': 'non-personal', 'webhook_endpoints.secret_enc': 'non-personal', 'webhook_endpoints.previous_secret_enc': 'non-personal',
  'webhook_endpoints.disabled_reason': 'non-personal',
  'webhook_deliveries.id': 'non-personal', 'webhook_deliveries.tenant_id': 'non-personal', 'webhook_deliveries.endpoint_id': 'non-personal', 'webhook_deliveries.event_id': 'non-personal',
  'webhook_deliveries.status': 'non-personal',
  'webhook_attempts.tenant_id': 'non-personal', 'webhook_attempts.delivery_id': 'non-personal', 'webhook_attempts.endpoint_id': 'non-personal', 'webhook_attempts.event_id': 'non-personal',
  'webhook_attempts.error': 'non-personal',
  // Import jobs: a file's name, hash and counts, and the names of fields that moved (never values);
  // a rejected row is kept as its line number, field name and problem code only.
  'import_jobs.tenant_id': 'non-personal', 'import_jobs.id': 'non-personal', 'import_jobs.profile': 'non-personal', 'import_jobs.format': 'non-personal',
  'import_jobs.state': 'non-personal', 'import_jobs.source_name': 'non-personal', 'import_jobs.source_sha256': 'non-personal',
  'import_jobs.moved_fields': 'non-personal', 'import_jobs.failure': 'non-personal', 'import_jobs.created_by_key_id': 'non-personal',
  'import_errors.tenant_id': 'non-personal', 'import_errors.import_id': 'non-personal', 'import_errors.field': 'non-personal',
  'import_errors.code': 'non-personal', 'import_errors.message': 'non-personal',
};

const canary = (tag: string) => `cnry${tag}${crypto.randomBytes(5).toString('hex')}`;

describe('the erasure canary, against the catalogue', () => {
  it('classifies every text, jsonb, bytea and array column of every table (a new column fails until classified)', async () => {
    const { rows } = await sql<{ col: string }>`
      select c.table_name || '.' || c.column_name as col
        from information_schema.columns c join information_schema.tables t using (table_schema, table_name)
       where c.table_schema = current_schema() and t.table_type = 'BASE TABLE' and c.table_name not like 'kyclo_migrations%'
         and c.data_type in ('text', 'character varying', 'character', 'jsonb', 'json', 'bytea', 'ARRAY', 'USER-DEFINED')
       order by 1`.execute(ctx.db);
    const unknown = rows.map((r) => r.col).filter((c) => !(c in COLUMNS));
    console.log(`catalogue: ${rows.length} columns, ${rows.filter((r) => COLUMNS[r.col] === 'personal').length} personal, ${unknown.length} unclassified`);
    expect(unknown, 'classify these columns in test/erasure-catalogue.test.ts').toEqual([]);
  });

  it('no canary written through any free-text field a request can reach survives erasure anywhere in the database', async () => {
    await api.call({ method: 'PUT', url: '/v1/policy', body: { retention: { erasure_after_days: 0 }, rate_limit: { requests_per_minute: 6000 } } });
    const officer = client(ctx.app, (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key);
    const c: string[] = [];
    const mk = (tag: string) => (c.push(canary(tag)), c.at(-1)!);
    const ok = (res: { statusCode: number; body: string }, status: number) => expect(res.statusCode, res.body).toBe(status);
    const user = (await api.post('/v1/users', individual({
      external_ref: mk('ref'), first_name: mk('first'), tax_number: mk('tax'), metadata: { n: mk('meta') },
      employer: { name: mk('employer'), address: mk('employeraddr') }, display_name: mk('display'), business_scope: mk('scope'),
    }), { 'idempotency-key': mk('idem') })).json();
    ok(await api.post(`/v1/users/${user.id}/verifications`, { result: 'approved', provider: 'acme-kyc', provider_ref: mk('pref'), identity: { document_number: mk('docno') } }), 201);
    const first = (await officer.patch(`/v1/users/${user.id}`, { last_name: mk('proposed') })).json().pending_changes[0].id;
    ok(await api.post(`/v1/change-requests/${first}/approve`, { note: mk('approvenote') }, { 'idempotency-key': mk('idemapprove') }), 200);
    const second = (await officer.patch(`/v1/users/${user.id}`, { last_name: mk('proposed2') })).json().pending_changes[0].id;
    ok(await api.post(`/v1/change-requests/${second}/reject`, { reason: mk('rejectreason'), note: mk('rejectnote') }), 200);
    ok(await api.post(`/v1/users/${user.id}/status-changes`, { status: 'suspended', reason: 'fraud_suspected', note: mk('suspendnote') }), 201);
    ok(await api.post(`/v1/users/${user.id}/status-changes`, { status: 'active', reason: 'review_cleared', note: mk('reactivatenote') }), 201);
    ok(await officer.call({ method: 'PUT', url: `/v1/users/${user.id}/risk`, body: { rating: 'high', status: 'pending', reason: mk('riskreason') } }), 200);
    ok(await officer.call({ method: 'PUT', url: `/v1/users/${user.id}/risk`, body: { rating: 'medium', status: 'cleared', reason: mk('riskreason2') } }), 200);
    ok(await api.post(`/v1/users/${user.id}/required-actions`, { code: 'provide_field', field: 'occupation', message: mk('actionmessage') }), 201);
    ok(await api.post(`/v1/users/${user.id}/legal-hold`, { reason: mk('holdreason') }), 200);
    ok(await api.delete(`/v1/users/${user.id}/legal-hold`), 200);
    // The user is a director of a business: the relationship stays with the tombstone, its title goes.
    const company = (await api.post('/v1/users', business())).json();
    const directorship = await api.post(`/v1/users/${company.id}/relationships`, { type: 'director', related_user_id: user.id, title: mk('title') });
    ok(directorship, 201);
    ok(await api.post(`/v1/users/${user.id}/erasure`, { requested_by: 'user', note: mk('erasenote') }), 202);
    const bystander = (await api.post('/v1/users', individual({ first_name: canary('bystander') }))).json();

    const before = await dumpDatabase(ctx.databaseUrl);
    const seenBefore = c.filter((x) => before.text.includes(x));
    const swept = await createErasureService({ db: ctx.db, lifecycle: createLifecycleService({ db: ctx.db, keyring: ctx.keyring }), blobs: ctx.blobs, keyring: ctx.keyring }).sweep();
    expect(swept.erased).toEqual([user.id]);
    const after = await dumpDatabase(ctx.databaseUrl);
    const found = c.filter((x) => after.text.includes(x));
    console.log(`canaries (${after.method}): ${c.length} written, ${seenBefore.length} in the clear before erasure, ${found.length} after`);
    // Status-change notes included: their audit copy is sealed with the user's key, the history row's nulled.
    expect(found).toEqual([]);
    expect(after.text).toContain(bystander.first_name);
    const kept = await ctx.db.selectFrom('relationships').selectAll().where('id', '=', directorship.json().id).executeTakeFirstOrThrow();
    expect(kept).toMatchObject({ user_id: company.id, related_user_id: user.id, title: null, ended_at: null });
    // The risk decision stays with the tombstone (like its status), without the officer's words.
    const tomb = await ctx.db.selectFrom('users').select(['risk']).where('id', '=', user.id).executeTakeFirstOrThrow();
    expect(tomb.risk).toMatchObject({ rating: 'medium', status: 'cleared', reason: null });
  });

  it("an imported user's vendor id goes with its erasure (it was kept in the clear in the user.imported entry)", async () => {
    const ref = canary('vendordata');
    const { job } = await importText(servicesFor(ctx), tenantId, `${JSON.stringify({ vendor_data: ref, full_name: 'Ann Oak', country: 'ES' })}\n`, { profile: 'didit' });
    expect(job.counts).toMatchObject({ imported: 1 });
    const { id } = await ctx.db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).where('external_ref', '=', ref).executeTakeFirstOrThrow();
    await api.call({ method: 'PUT', url: '/v1/policy', body: { retention: { erasure_after_days: 0 }, rate_limit: { requests_per_minute: 6000 } } });
    const erasure = await api.post(`/v1/users/${id}/erasure`, { requested_by: 'user' });
    expect(erasure.statusCode, erasure.body).toBe(202);
    expect((await dumpDatabase(ctx.databaseUrl)).text).toContain(ref);
    const swept = await createErasureService({ db: ctx.db, lifecycle: createLifecycleService({ db: ctx.db, keyring: ctx.keyring }), blobs: ctx.blobs, keyring: ctx.keyring }).sweep();
    expect(swept.erased).toEqual([id]);
    expect((await dumpDatabase(ctx.databaseUrl)).text).not.toContain(ref);
  });
});
