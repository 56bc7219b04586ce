// Every route that takes an id, driven from the OpenAPI document: tenant B's OWNER key on tenant A's
// ids answers 404 (never 403, never data) and leaves every row of tenant A as it was. A new id
// route that this table does not cover fails the suite.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, createTenant, createTestContext, type Client, type TestContext } from './helpers/app.js';
import { individual, physicalDocument } from './helpers/factories.js';

let ctx: TestContext;
let tenantA: string;
let B: Client;
const idOf: Record<string, string> = {};

// A valid body for each id operation that needs one (so a 404 cannot hide behind a 400).
const BODIES: Record<string, unknown> = {
  getUser: undefined, updateUser: { occupation: 'x' }, dryRunUserUpdate: { occupation: 'x' }, closeUser: { origin: 'operator', reason: 'other' },
  changeUserStatus: { status: 'flagged', reason: 'other' }, suspendUser: { reason: 'other' }, unsuspendUser: { reason: 'other' }, flagUser: { reason: 'other' },
  blockUser: { reason: 'other' }, unblockUser: { reason: 'other' }, listUserStatusChanges: undefined, getUserCapabilities: undefined,
  recordVerification: { result: 'approved', provider: 'x' }, listVerifications: undefined, listUserChangeRequests: undefined,
  requestErasure: { requested_by: 'user' }, setLegalHold: { reason: 'x' }, clearLegalHold: undefined, exportUser: undefined,
  getChangeRequest: undefined, approveChangeRequest: {}, rejectChangeRequest: { reason: 'x' },
  revokeApiKey: undefined, getEvent: undefined, redeliverEvent: undefined,
  getWebhookEndpoint: undefined, updateWebhookEndpoint: { enabled: false }, deleteWebhookEndpoint: undefined,
  rotateWebhookSecret: undefined, listWebhookDeliveries: undefined,
  addDocument: physicalDocument(), listDocuments: undefined, getDocumentContent: undefined,
  addRelationship: { type: 'director', related_user_id: 'usr_none' }, listRelationships: undefined, endRelationship: undefined, getOwnership: undefined,
  setUserRisk: { rating: 'prohibited', status: 'rejected', reason: 'x' }, listUserRiskChanges: undefined,
  addRequiredAction: { code: 'other' }, cancelRequiredAction: undefined, setKycSubStatus: { sub_status: 'submitted' },
  getImport: undefined, listImportErrors: undefined,
};
const RESOURCE: Record<string, string> = { imports: 'import', documents: 'document', users: 'user', 'api-keys': 'key', events: 'event', 'change-requests': 'change', 'webhook-endpoints': 'hook' };

/** Every row tenant A holds, table by table (last_used_at aside: bookkeeping of its own keys' use). */
async function holdings() {
  const tables = ['import_jobs', 'users', 'relationships', 'risk_changes', 'documents', 'api_keys', 'change_requests', 'status_changes', 'verifications', 'webhook_endpoints', 'webhook_deliveries', 'events', 'audit_entries'];
  return Promise.all(
    tables.map(async (table) => {
      const rows = (await sql<Record<string, unknown>>`select * from ${sql.table(table)} where tenant_id = ${tenantA}`.execute(ctx.db)).rows;
      return rows.map(({ last_used_at: _l, ...r }) => r).sort((a, b) => String(a.id).localeCompare(String(b.id)));
    }),
  );
}

beforeAll(async () => {
  ctx = await createTestContext();
  const a = await createTenant(ctx.db);
  tenantA = a.tenantId;
  const A = client(ctx.app, a.ownerKey);
  const requester = client(ctx.app, (await createKey(ctx.db, tenantA, 'ADMIN')).key);
  const user = (await A.post('/v1/users', individual())).json();
  await A.post(`/v1/users/${user.id}/verifications`, { result: 'approved', provider: 'x' });
  idOf.user = user.id;
  idOf.change = (await requester.patch(`/v1/users/${user.id}`, { last_name: 'Elm' })).json().pending_changes[0].id;
  idOf.document = (await A.post(`/v1/users/${user.id}/documents`, physicalDocument())).json().id;
  idOf.key = (await createKey(ctx.db, tenantA, 'DEVELOPER')).id;
  idOf.hook = (await A.post('/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/a' })).json().id;
  idOf.rel = (await A.post(`/v1/users/${user.id}/relationships`, { type: 'parent', related_user_id: (await A.post('/v1/users', individual())).json().id })).json().id;
  await A.call({ method: 'PUT', url: `/v1/users/${user.id}/risk`, body: { rating: 'low', status: 'cleared', reason: 'onboarding' } });
  idOf.action = (await A.post(`/v1/users/${user.id}/required-actions`, { code: 'provide_field', field: 'occupation' })).json().id;
  idOf.event = (await ctx.db.selectFrom('events').select('id').where('tenant_id', '=', tenantA).executeTakeFirstOrThrow()).id;
  idOf.import = (await A.post('/v1/imports', JSON.stringify(individual({ external_ref: 'imported-1' })), { 'content-type': 'application/x-ndjson' })).json().id;
  // The rows follow the 202: wait for them, so the holdings compared below stand still.
  while ((await A.get(`/v1/imports/${idOf.import}`)).json().state === 'running') await new Promise((r) => setTimeout(r, 20));
  B = client(ctx.app, (await createTenant(ctx.db)).ownerKey);
});
afterAll(() => ctx.close());

describe('another tenant’s ids', () => {
  it('answer 404 on every id route, and nothing of tenant A changes', async () => {
    const doc = (await client(ctx.app, null).get('/openapi.json')).json();
    const before = await holdings();
    const uncovered: string[] = [];
    let checked = 0;
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, { operationId: string }>>)) {
      if (!path.startsWith('/v1/') || !path.includes('{id}')) continue;
      for (const [method, op] of Object.entries(item)) {
        if (!Object.hasOwn(BODIES, op.operationId)) {
          uncovered.push(op.operationId);
          continue;
        }
        const resource = RESOURCE[path.split('/')[2]!]!;
        const url = path.replace('{id}', idOf[resource]!).replace('{rel_id}', idOf.rel!).replace('{action_id}', idOf.action!);
        const res = await B.call({ method: method.toUpperCase() as never, url, body: BODIES[op.operationId] });
        expect(res.statusCode, `${op.operationId} ${method} ${url}: ${res.body}`).toBe(404);
        expect(res.json().status).toBe(404);
        for (const id of Object.values(idOf)) expect(res.body.includes(id) && !url.includes(id), op.operationId).toBe(false);
        checked++;
      }
    }
    expect(uncovered, 'id routes missing from test/cross-tenant-routes.test.ts').toEqual([]);
    expect(checked).toBeGreaterThanOrEqual(29);
    expect(await holdings()).toEqual(before);
  });

  it('show nothing of tenant A in any list', async () => {
    const doc = (await client(ctx.app, null).get('/openapi.json')).json();
    const aIds = [...Object.values(idOf), tenantA];
    let lists = 0;
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, { operationId: string }>>)) {
      if (!path.startsWith('/v1/') || path.includes('{') || !item.get) continue;
      const res = await B.get(path === '/v1/change-requests' ? `${path}?status=pending` : path);
      expect(res.statusCode, path).toBe(200);
      for (const id of aIds) expect(res.body.includes(id), `${path} shows ${id}`).toBe(false);
      lists++;
    }
    expect(lists).toBeGreaterThanOrEqual(8);
  });
});
