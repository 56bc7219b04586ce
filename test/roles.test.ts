// The role matrix of product.md, checked over every /v1 operation the app publishes: each of the
// five roles either gets through with a 2xx (and its write lands, audited under its role) or gets
// 403 auth.forbidden with nothing written. A route the table below does not cover fails the suite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, createTenant, createTestContext, type Call, type Response, type TestContext } from './helpers/app.js';
import { business, dataUri, individual, physicalDocument } from './helpers/factories.js';
import { PERMISSIONS, ROLES, type Permission, type Role } from '../src/modules/api-keys/roles.js';

// The matrix as product.md states it, written out independently of roles.ts so a drift in either shows.
const SPEC_MATRIX: Record<Permission, readonly Role[]> = {
  // Not in product.md's table: any key may ask who it is (GET /v1/me, api.md's Session).
  'session:read': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER', 'READER'],
  'users:read': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER', 'READER'],
  'users:create': ['OWNER', 'ADMIN', 'DEVELOPER'],
  'users:update': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  'users:change_status': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  'kyc:record': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER'],
  // Not in product.md's table: reading identity snapshots is given to those who may record them.
  'kyc:read': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER'],
  'changes:review': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  // product.md's compliance profile: only these three set the risk.
  'risk:set': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  // Not in product.md's table: the backend that uploads documents (DEVELOPER) sees them masked but
  // cannot open the files; opening them is for the roles that review people.
  'documents:write': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER'],
  'documents:read': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER'],
  'documents:read_content': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  // product.md: from an erasure request until destruction, personal data is "readable only by compliance roles".
  'users:read_retained': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  'users:close': ['OWNER', 'ADMIN'],
  'users:export': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  // Not in product.md's table: an import sets status and KYC state in bulk, for the tenant's administrators.
  'users:import': ['OWNER', 'ADMIN'],
  'audit:read': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  'events:manage': ['OWNER', 'ADMIN', 'DEVELOPER'],
  'tenant:admin': ['OWNER', 'ADMIN'],
};

interface Fixture {
  userId: string;
  eventId: string;
  /** A proof of address of the user, with a file to download. */
  documentId: string;
  /** A key that only makes change requests, so every role can be the other pair of eyes. */
  requesterKey: string;
  /** An import job of the tenant. */
  importId: string;
}
interface Caller {
  role: Role;
  keyId: string;
}
interface Operation {
  method: Call['method'];
  /** As the OpenAPI document spells it. */
  path: string;
  permission: Permission;
  /** The status an allowed caller gets. */
  success: number;
  /** Builds a valid request; may create the resource it acts on (before the database snapshot). */
  request(caller: Caller): Promise<Call> | Call;
  /** For an allowed caller: what must be true afterwards. */
  verify(res: Response, caller: Caller, call: Call): Promise<void> | void;
}

let ctx: TestContext;
let tenantId: string;
let fx: Fixture;
const keys = {} as Record<Role, { key: string; id: string }>;

const auditOf = (action: string, targetId: string) =>
  ctx.db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId).where('action', '=', action).where('target_id', '=', targetId).execute();

const idOf = (url: string) => url.split('/').at(-1)!;

/** A verified user with a last-name change waiting for approval, made by the requester key. */
async function pendingChangeRequest(): Promise<{ userId: string; changeRequestId: string }> {
  const owner = client(ctx.app, keys.OWNER.key);
  const user = (await owner.post('/v1/users', individual())).json();
  expect((await owner.post(`/v1/users/${user.id}/verifications`, { result: 'approved', provider: 'test', level: 1 })).statusCode).toBe(201);
  const res = await client(ctx.app, fx.requesterKey).patch(`/v1/users/${user.id}`, { last_name: `Elm${Date.now()}` });
  expect(res.statusCode, res.body).toBe(200);
  return { userId: user.id, changeRequestId: res.json().pending_changes[0].id };
}

// Every /v1 operation: operationId → the permission it needs, a valid request and what success means.
const OPERATIONS: Record<string, Operation> = {
  addDocument: {
    method: 'POST', path: '/v1/users/{id}/documents', permission: 'documents:write', success: 201,
    request: (caller) => ({ method: 'POST', url: `/v1/users/${fx.userId}/documents`, body: physicalDocument('proof_of_address', { content: dataUri('png', caller.role) }) }),
    verify: async (res, caller) => {
      const doc = res.json();
      const row = await ctx.db.selectFrom('documents').selectAll().where('tenant_id', '=', tenantId).where('id', '=', doc.id).executeTakeFirstOrThrow();
      expect(row).toMatchObject({ user_id: fx.userId, type: 'proof_of_address', status: 'current', created_by_key_id: caller.keyId });
      expect(await auditOf('document.added', doc.id)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  listDocuments: {
    method: 'GET', path: '/v1/users/{id}/documents', permission: 'documents:read', success: 200,
    request: () => ({ method: 'GET', url: `/v1/users/${fx.userId}/documents?include=archived` }),
    verify: (res) => expect(res.json().data.map((d: { id: string }) => d.id)).toContain(fx.documentId),
  },
  getDocumentContent: {
    method: 'GET', path: '/v1/documents/{id}/content', permission: 'documents:read_content', success: 200,
    request: () => ({ method: 'GET', url: `/v1/documents/${fx.documentId}/content` }),
    verify: async (res, caller) => {
      expect(res.headers['content-type']).toBe('application/pdf');
      expect(res.rawPayload.toString()).toBe('%PDF-1.7\nroles statement');
      const reads = await auditOf('document.content_read', fx.documentId);
      expect(reads.some((a) => a.actor_key_id === caller.keyId && a.actor_role === caller.role)).toBe(true);
    },
  },
  createUser: {
    method: 'POST', path: '/v1/users', permission: 'users:create', success: 201,
    request: () => ({ method: 'POST', url: '/v1/users', body: individual() }),
    verify: async (res, caller, call) => {
      const user = res.json();
      const row = await ctx.db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).where('id', '=', user.id).executeTakeFirstOrThrow();
      expect(row.external_ref).toBe((call.body as { external_ref: string }).external_ref);
      const audit = await auditOf('user.created', user.id);
      expect(audit).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role, outcome: 'applied' })]);
    },
  },
  listUsers: {
    method: 'GET', path: '/v1/users', permission: 'users:read', success: 200,
    request: () => ({ method: 'GET', url: '/v1/users?limit=200' }),
    verify: (res) => expect(res.json().data.map((u: { id: string }) => u.id)).toContain(fx.userId),
  },
  getUser: {
    method: 'GET', path: '/v1/users/{id}', permission: 'users:read', success: 200,
    request: () => ({ method: 'GET', url: `/v1/users/${fx.userId}` }),
    verify: (res) => expect(res.json().id).toBe(fx.userId),
  },
  dryRunUserUpdate: {
    method: 'POST', path: '/v1/users/{id}/dry-run', permission: 'users:update', success: 200,
    request: () => ({ method: 'POST', url: `/v1/users/${fx.userId}/dry-run`, body: { occupation: 'x' } }),
    verify: (res) => expect(res.json()).toMatchObject({ dry_run: true, user_id: fx.userId }),
  },
  updateUser: {
    method: 'PATCH', path: '/v1/users/{id}', permission: 'users:update', success: 200,
    request: (caller) => ({ method: 'PATCH', url: `/v1/users/${fx.userId}`, body: { email: `${caller.role.toLowerCase()}.${Date.now()}@example.com` } }),
    verify: async (res, caller, call) => {
      const email = (call.body as { email: string }).email;
      expect(res.json().email).toBe(email);
      const row = await ctx.db.selectFrom('users').select('profile').where('tenant_id', '=', tenantId).where('id', '=', fx.userId).executeTakeFirstOrThrow();
      expect((row.profile as { email: string }).email).toBe(email);
      const audit = await auditOf('user.updated', fx.userId);
      expect(audit.at(-1)).toMatchObject({ actor_key_id: caller.keyId, actor_role: caller.role, changed_fields: ['email'] });
    },
  },
  createApiKey: {
    method: 'POST', path: '/v1/api-keys', permission: 'tenant:admin', success: 201,
    request: (caller) => ({ method: 'POST', url: '/v1/api-keys', body: { role: 'READER', name: `minted by ${caller.role}` } }),
    verify: async (res, caller) => {
      const created = res.json();
      const row = await ctx.db.selectFrom('api_keys').selectAll().where('tenant_id', '=', tenantId).where('id', '=', created.id).executeTakeFirstOrThrow();
      expect(row).toMatchObject({ role: 'READER', created_by: caller.keyId, revoked_at: null });
      expect(await auditOf('api_key.created', created.id)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  listApiKeys: {
    method: 'GET', path: '/v1/api-keys', permission: 'tenant:admin', success: 200,
    request: () => ({ method: 'GET', url: '/v1/api-keys?limit=200' }),
    verify: (res, caller) => expect(res.json().data.map((k: { id: string }) => k.id)).toContain(caller.keyId),
  },
  revokeApiKey: {
    method: 'DELETE', path: '/v1/api-keys/{id}', permission: 'tenant:admin', success: 200,
    request: async () => ({ method: 'DELETE', url: `/v1/api-keys/${(await createKey(ctx.db, tenantId, 'READER')).id}` }),
    verify: async (res, caller, call) => {
      const id = idOf(call.url);
      expect(res.json()).toMatchObject({ id, revoked_at: expect.any(String) });
      const row = await ctx.db.selectFrom('api_keys').select('revoked_at').where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirstOrThrow();
      expect(row.revoked_at).not.toBeNull();
      expect(await auditOf('api_key.revoked', id)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  getMe: {
    method: 'GET', path: '/v1/me', permission: 'session:read', success: 200,
    request: () => ({ method: 'GET', url: '/v1/me' }),
    verify: (res, caller) => expect(res.json()).toMatchObject({ id: caller.keyId, role: caller.role, tenant: { id: tenantId } }),
  },
  listEnumerations: {
    method: 'GET', path: '/v1/enumerations', permission: 'users:read', success: 200,
    request: () => ({ method: 'GET', url: '/v1/enumerations' }),
    verify: (res) => expect(res.json().data.map((e: { name: string }) => e.name)).toContain('countries'),
  },
  getEnumeration: {
    method: 'GET', path: '/v1/enumerations/{name}', permission: 'users:read', success: 200,
    request: () => ({ method: 'GET', url: '/v1/enumerations/genders' }),
    verify: (res) => expect(res.json()).toMatchObject({ name: 'genders', values: expect.arrayContaining([{ code: 'male', label: 'Male' }]) }),
  },
  listAuditEvents: {
    method: 'GET', path: '/v1/audit-events', permission: 'audit:read', success: 200,
    request: () => ({ method: 'GET', url: `/v1/audit-events?user_id=${fx.userId}` }),
    verify: (res) => expect(res.json().data).toContainEqual(expect.objectContaining({ action: 'user.created', user_id: fx.userId })),
  },
  listAuditCheckpoints: {
    method: 'GET', path: '/v1/audit/checkpoints', permission: 'audit:read', success: 200,
    request: () => ({ method: 'GET', url: '/v1/audit/checkpoints?since=2000-01-01T00:00:00Z' }),
    verify: (res) => expect(res.json()).toMatchObject({ data: expect.any(Array), next_cursor: null }),
  },
  getAuditVerification: {
    method: 'GET', path: '/v1/audit/verification', permission: 'audit:read', success: 200,
    request: () => ({ method: 'GET', url: '/v1/audit/verification' }),
    verify: (res) => expect(res.json()).toHaveProperty('verification'),
  },
  listEvents: {
    method: 'GET', path: '/v1/events', permission: 'events:manage', success: 200,
    request: () => ({ method: 'GET', url: `/v1/events?user_id=${fx.userId}&limit=200` }),
    verify: (res) => expect(res.json().data.map((e: { id: string }) => e.id)).toContain(fx.eventId),
  },
  getEvent: {
    method: 'GET', path: '/v1/events/{id}', permission: 'events:manage', success: 200,
    request: () => ({ method: 'GET', url: `/v1/events/${fx.eventId}` }),
    verify: (res) => expect(res.json()).toMatchObject({ id: fx.eventId, type: 'user.created', user_id: fx.userId }),
  },
  getPolicy: {
    method: 'GET', path: '/v1/policy', permission: 'tenant:admin', success: 200,
    request: () => ({ method: 'GET', url: '/v1/policy' }),
    verify: (res) => expect(res.json().fields.individual.verified.last_name).toBe('approval'),
  },
  putPolicy: {
    method: 'PUT', path: '/v1/policy', permission: 'tenant:admin', success: 200,
    request: () => ({ method: 'PUT', url: '/v1/policy', body: { fields: { individual: { verified: { occupation: 'allow' } } } } }),
    verify: async (res, caller) => {
      expect(res.json().fields.individual.verified.occupation).toBe('allow');
      const row = await ctx.db.selectFrom('tenants').select('policy').where('id', '=', tenantId).executeTakeFirstOrThrow();
      expect(row.policy).toEqual({ fields: { individual: { verified: { occupation: 'allow' } } }, capabilities: {} });
      expect((await auditOf('policy.updated', tenantId)).at(-1)).toMatchObject({ actor_key_id: caller.keyId, actor_role: caller.role });
    },
  },
  recordVerification: {
    method: 'POST', path: '/v1/users/{id}/verifications', permission: 'kyc:record', success: 201,
    request: async () => {
      const user = (await client(ctx.app, keys.OWNER.key).post('/v1/users', individual())).json();
      return { method: 'POST', url: `/v1/users/${user.id}/verifications`, body: { result: 'approved', provider: 'acme-kyc', level: 2 } };
    },
    verify: async (res, caller, call) => {
      const userId = call.url.split('/')[3]!;
      const row = await ctx.db.selectFrom('users').select(['kyc_status', 'kyc_level']).where('tenant_id', '=', tenantId).where('id', '=', userId).executeTakeFirstOrThrow();
      expect(row).toEqual({ kyc_status: 'verified', kyc_level: 2 });
      expect(await auditOf('user.verification_recorded', res.json().id)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  listVerifications: {
    method: 'GET', path: '/v1/users/{id}/verifications', permission: 'kyc:read', success: 200,
    request: () => ({ method: 'GET', url: `/v1/users/${fx.userId}/verifications` }),
    verify: (res) => expect(res.json()).toEqual({ data: [], next_cursor: null }),
  },
  listChangeRequests: {
    method: 'GET', path: '/v1/change-requests', permission: 'changes:review', success: 200,
    request: async () => {
      await pendingChangeRequest();
      return { method: 'GET', url: '/v1/change-requests?status=pending&limit=200' };
    },
    verify: (res) => expect(res.json().data.length).toBeGreaterThan(0),
  },
  getChangeRequest: {
    method: 'GET', path: '/v1/change-requests/{id}', permission: 'changes:review', success: 200,
    request: async () => ({ method: 'GET', url: `/v1/change-requests/${(await pendingChangeRequest()).changeRequestId}` }),
    verify: (res, _c, call) => expect(res.json()).toMatchObject({ id: idOf(call.url), status: 'pending' }),
  },
  listUserChangeRequests: {
    method: 'GET', path: '/v1/users/{id}/change-requests', permission: 'changes:review', success: 200,
    request: async () => ({ method: 'GET', url: `/v1/users/${(await pendingChangeRequest()).userId}/change-requests` }),
    verify: (res) => expect(res.json().data).toEqual([expect.objectContaining({ status: 'pending' })]),
  },
  approveChangeRequest: {
    method: 'POST', path: '/v1/change-requests/{id}/approve', permission: 'changes:review', success: 200,
    request: async () => ({ method: 'POST', url: `/v1/change-requests/${(await pendingChangeRequest()).changeRequestId}/approve`, body: {} }),
    verify: async (res, caller) => {
      const cr = res.json();
      expect(cr).toMatchObject({ status: 'approved', decided_by: { key_id: caller.keyId, role: caller.role } });
      const row = await ctx.db.selectFrom('users').select('profile').where('tenant_id', '=', tenantId).where('id', '=', cr.user_id).executeTakeFirstOrThrow();
      expect((row.profile as { last_name: string }).last_name).toBe(cr.changes.last_name.to);
      expect(await auditOf('change_request.approved', cr.id)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  rejectChangeRequest: {
    method: 'POST', path: '/v1/change-requests/{id}/reject', permission: 'changes:review', success: 200,
    request: async () => ({
      method: 'POST', url: `/v1/change-requests/${(await pendingChangeRequest()).changeRequestId}/reject`, body: { reason: 'name change not evidenced' },
    }),
    verify: async (res, caller) => {
      const cr = res.json();
      expect(cr).toMatchObject({ status: 'rejected', decision_reason: 'name change not evidenced' });
      const row = await ctx.db.selectFrom('users').select(['profile', 'pending_changes']).where('tenant_id', '=', tenantId).where('id', '=', cr.user_id).executeTakeFirstOrThrow();
      expect((row.profile as { last_name: string }).last_name).toBe(cr.changes.last_name.from);
      expect(row.pending_changes).toEqual([]);
      expect(await auditOf('change_request.rejected', cr.id)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
};

/** A fresh user, moved to `status` by the OWNER key first when it is not active. */
async function userIn(status: 'active' | 'suspended' | 'blocked'): Promise<string> {
  const owner = client(ctx.app, keys.OWNER.key);
  const id = (await owner.post('/v1/users', individual())).json().id as string;
  if (status !== 'active') expect((await owner.post(`/v1/users/${id}/status-changes`, { status, reason: 'fraud_suspected' })).statusCode).toBe(201);
  return id;
}

/** A transition made by `caller`: its history row, audit entry and event are there, under its role. */
async function verifyTransition(res: Response, caller: Caller, call: Call, to: string) {
  const userId = call.url.split('/')[3]!;
  expect(res.json()).toMatchObject({ user_id: userId, to, actor: { key_id: caller.keyId, role: caller.role } });
  const row = await ctx.db.selectFrom('users').select('status').where('tenant_id', '=', tenantId).where('id', '=', userId).executeTakeFirstOrThrow();
  expect(row.status).toBe(to);
  const history = await ctx.db.selectFrom('status_changes').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', userId).orderBy('id').execute();
  expect(history.at(-1)).toMatchObject({ to_status: to, actor_key_id: caller.keyId, actor_role: caller.role });
  const audit = await ctx.db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', userId).orderBy('seq').execute();
  expect(audit.at(-1)).toMatchObject({ actor_key_id: caller.keyId, actor_role: caller.role, changed_fields: ['status'] });
}

const transitionOps: Record<string, Operation> = {
  changeUserStatus: {
    method: 'POST', path: '/v1/users/{id}/status-changes', permission: 'users:change_status', success: 201,
    request: async () => ({ method: 'POST', url: `/v1/users/${await userIn('active')}/status-changes`, body: { status: 'flagged', reason: 'aml_alert' } }),
    verify: (res, caller, call) => verifyTransition(res, caller, call, 'flagged'),
  },
  suspendUser: {
    method: 'POST', path: '/v1/users/{id}/suspend', permission: 'users:change_status', success: 201,
    request: async () => ({ method: 'POST', url: `/v1/users/${await userIn('active')}/suspend`, body: { reason: 'fraud_suspected' } }),
    verify: (res, caller, call) => verifyTransition(res, caller, call, 'suspended'),
  },
  unsuspendUser: {
    method: 'POST', path: '/v1/users/{id}/unsuspend', permission: 'users:change_status', success: 201,
    request: async () => ({ method: 'POST', url: `/v1/users/${await userIn('suspended')}/unsuspend`, body: { reason: 'review_cleared' } }),
    verify: (res, caller, call) => verifyTransition(res, caller, call, 'active'),
  },
  flagUser: {
    method: 'POST', path: '/v1/users/{id}/flag', permission: 'users:change_status', success: 201,
    request: async () => ({ method: 'POST', url: `/v1/users/${await userIn('active')}/flag`, body: { reason: 'aml_alert' } }),
    verify: (res, caller, call) => verifyTransition(res, caller, call, 'flagged'),
  },
  blockUser: {
    method: 'POST', path: '/v1/users/{id}/block', permission: 'users:change_status', success: 201,
    request: async () => ({ method: 'POST', url: `/v1/users/${await userIn('active')}/block`, body: { reason: 'sanctions_match' } }),
    verify: (res, caller, call) => verifyTransition(res, caller, call, 'blocked'),
  },
  unblockUser: {
    method: 'POST', path: '/v1/users/{id}/unblock', permission: 'users:change_status', success: 201,
    request: async () => ({ method: 'POST', url: `/v1/users/${await userIn('blocked')}/unblock`, body: { reason: 'review_cleared' } }),
    verify: (res, caller, call) => verifyTransition(res, caller, call, 'active'),
  },
  listUserStatusChanges: {
    method: 'GET', path: '/v1/users/{id}/status-changes', permission: 'users:read', success: 200,
    request: async () => ({ method: 'GET', url: `/v1/users/${await userIn('suspended')}/status-changes` }),
    verify: (res) => expect(res.json().data).toEqual([expect.objectContaining({ from: 'active', to: 'suspended', reason: 'fraud_suspected' })]),
  },
  getUserCapabilities: {
    method: 'GET', path: '/v1/users/{id}/capabilities', permission: 'users:read', success: 200,
    request: async () => ({ method: 'GET', url: `/v1/users/${await userIn('suspended')}/capabilities` }),
    verify: (res) => expect(res.json().capabilities.withdrawals).toEqual({ allowed: false, reason: 'account_suspended' }),
  },
  closeUser: {
    method: 'DELETE', path: '/v1/users/{id}', permission: 'users:close', success: 200,
    request: async () => ({ method: 'DELETE', url: `/v1/users/${await userIn('active')}`, body: { origin: 'user', reason: 'user_request' } }),
    verify: async (res, caller, call) => {
      expect(res.json()).toMatchObject({ id: idOf(call.url), status: 'closed', status_reason: 'user_request' });
      expect(await auditOf('user.closed', idOf(call.url))).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  closeUsers: {
    method: 'POST', path: '/v1/users/delete', permission: 'users:close', success: 200,
    request: async () => ({ method: 'POST', url: '/v1/users/delete', body: { ids: [await userIn('active'), 'usr_missing'], origin: 'operator', reason: 'dormant' } }),
    verify: async (res, caller, call) => {
      const [id] = (call.body as { ids: string[] }).ids;
      expect(res.json().results).toEqual([{ id, result: 'closed' }, { id: 'usr_missing', result: 'not_found' }]);
      expect(await auditOf('user.closed', id!)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
};
const erasureOps: Record<string, Operation> = {
  requestErasure: {
    method: 'POST', path: '/v1/users/{id}/erasure', permission: 'users:close', success: 202,
    request: async () => ({ method: 'POST', url: `/v1/users/${await userIn('active')}/erasure`, body: { requested_by: 'user' } }),
    verify: async (res, caller, call) => {
      const userId = call.url.split('/')[3]!;
      expect(res.json()).toMatchObject({ user_id: userId, status: 'closed', legal_hold: false, erased_at: null });
      expect(await auditOf('user.erasure_scheduled', userId)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  setLegalHold: {
    method: 'POST', path: '/v1/users/{id}/legal-hold', permission: 'tenant:admin', success: 200,
    request: async () => ({ method: 'POST', url: `/v1/users/${await userIn('active')}/legal-hold`, body: { reason: 'litigation 2026-17' } }),
    verify: async (res, caller, call) => {
      const userId = call.url.split('/')[3]!;
      expect(res.json()).toMatchObject({ id: userId, legal_hold: true });
      expect(await auditOf('user.legal_hold_set', userId)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  clearLegalHold: {
    method: 'DELETE', path: '/v1/users/{id}/legal-hold', permission: 'tenant:admin', success: 200,
    request: async () => {
      const id = await userIn('active');
      await client(ctx.app, keys.OWNER.key).post(`/v1/users/${id}/legal-hold`, { reason: 'audit' });
      return { method: 'DELETE', url: `/v1/users/${id}/legal-hold` };
    },
    verify: async (res, caller, call) => {
      const userId = call.url.split('/')[3]!;
      expect(res.json()).toMatchObject({ id: userId, legal_hold: false });
      expect(await auditOf('user.legal_hold_cleared', userId)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  exportUsers: {
    method: 'GET', path: '/v1/exports/users', permission: 'users:read', success: 200,
    request: () => ({ method: 'GET', url: '/v1/exports/users' }),
    verify: (res) => expect(res.body.split('\n').filter(Boolean).map((l) => JSON.parse(l).id)).toContain(fx.userId),
  },
  createImport: {
    method: 'POST', path: '/v1/imports', permission: 'users:import', success: 202,
    request: (caller) => ({
      method: 'POST', url: '/v1/imports', headers: { 'content-type': 'application/x-ndjson' },
      body: JSON.stringify(individual({ external_ref: `import-${caller.role}` })),
    }),
    verify: async (res, caller) => {
      // The rows follow the 202: wait for them, so no later snapshot of the tenant sees them land.
      const jobOf = () => ctx.db.selectFrom('import_jobs').selectAll().where('tenant_id', '=', tenantId).where('id', '=', res.json().id).executeTakeFirstOrThrow();
      while ((await jobOf()).state === 'running') await new Promise((r) => setTimeout(r, 20));
      const job = await jobOf();
      expect(job).toMatchObject({ created_by_key_id: caller.keyId, state: 'completed', rows_imported: '1' });
    },
  },
  getImport: {
    method: 'GET', path: '/v1/imports/{id}', permission: 'users:import', success: 200,
    request: () => ({ method: 'GET', url: `/v1/imports/${fx.importId}` }),
    verify: (res) => expect(res.json()).toMatchObject({ id: fx.importId, profile: 'kyclo' }),
  },
  listImports: {
    method: 'GET', path: '/v1/imports', permission: 'users:import', success: 200,
    request: () => ({ method: 'GET', url: '/v1/imports?state=completed&limit=100' }),
    verify: (res) => expect(res.json().data.map((j: { id: string }) => j.id)).toContain(fx.importId),
  },
  listImportErrors: {
    method: 'GET', path: '/v1/imports/{id}/errors', permission: 'users:import', success: 200,
    request: () => ({ method: 'GET', url: `/v1/imports/${fx.importId}/errors` }),
    verify: (res) => expect(res.json().data).toEqual([]),
  },
  exportUser: {
    method: 'GET', path: '/v1/users/{id}/export', permission: 'users:export', success: 200,
    request: () => ({ method: 'GET', url: `/v1/users/${fx.userId}/export` }),
    verify: (res) => {
      expect(res.json().user.id).toBe(fx.userId);
      expect(res.json().events[0]).toMatchObject({ type: 'user.created', data: { user: expect.objectContaining({ id: fx.userId }) } });
    },
  },
};
/** An endpoint made by the OWNER key, to act on. */
async function hook(): Promise<string> {
  const res = await client(ctx.app, keys.OWNER.key).post('/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/hooks' });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id;
}
const endpointRow = (id: string) => ctx.db.selectFrom('webhook_endpoints').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();

const webhookOps: Record<string, Operation> = {
  createWebhookEndpoint: {
    method: 'POST', path: '/v1/webhook-endpoints', permission: 'events:manage', success: 201,
    request: () => ({ method: 'POST', url: '/v1/webhook-endpoints', body: { url: 'http://127.0.0.1:9/in' } }),
    verify: async (res, caller) => {
      expect(await endpointRow(res.json().id)).toMatchObject({ url: 'http://127.0.0.1:9/in', enabled: true });
      expect(await auditOf('webhook_endpoint.created', res.json().id)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  listWebhookEndpoints: {
    method: 'GET', path: '/v1/webhook-endpoints', permission: 'events:manage', success: 200,
    request: async () => {
      await hook();
      return { method: 'GET', url: '/v1/webhook-endpoints?limit=200' };
    },
    verify: (res) => expect(res.json().data.length).toBeGreaterThan(0),
  },
  getWebhookEndpoint: {
    method: 'GET', path: '/v1/webhook-endpoints/{id}', permission: 'events:manage', success: 200,
    request: async () => ({ method: 'GET', url: `/v1/webhook-endpoints/${await hook()}` }),
    verify: (res, _c, call) => expect(res.json().id).toBe(idOf(call.url)),
  },
  updateWebhookEndpoint: {
    method: 'PATCH', path: '/v1/webhook-endpoints/{id}', permission: 'events:manage', success: 200,
    request: async () => ({ method: 'PATCH', url: `/v1/webhook-endpoints/${await hook()}`, body: { enabled: false } }),
    verify: async (_res, _c, call) => expect(await endpointRow(idOf(call.url))).toMatchObject({ enabled: false }),
  },
  deleteWebhookEndpoint: {
    method: 'DELETE', path: '/v1/webhook-endpoints/{id}', permission: 'events:manage', success: 200,
    request: async () => ({ method: 'DELETE', url: `/v1/webhook-endpoints/${await hook()}` }),
    verify: async (_res, _c, call) => expect(await endpointRow(idOf(call.url))).toBeUndefined(),
  },
  rotateWebhookSecret: {
    method: 'POST', path: '/v1/webhook-endpoints/{id}/rotate-secret', permission: 'events:manage', success: 200,
    request: async () => ({ method: 'POST', url: `/v1/webhook-endpoints/${await hook()}/rotate-secret` }),
    verify: async (res) => {
      expect(res.json().secret).toMatch(/^whsec_/);
      expect((await endpointRow(res.json().id))!.previous_secret_enc).not.toBeNull();
    },
  },
  listWebhookDeliveries: {
    method: 'GET', path: '/v1/webhook-endpoints/{id}/deliveries', permission: 'events:manage', success: 200,
    request: async () => ({ method: 'GET', url: `/v1/webhook-endpoints/${await hook()}/deliveries` }),
    verify: (res) => expect(res.json()).toEqual({ data: [], next_cursor: null }),
  },
  redeliverEvent: {
    method: 'POST', path: '/v1/events/{id}/redeliver', permission: 'events:manage', success: 202,
    request: async () => {
      await hook();
      return { method: 'POST', url: `/v1/events/${fx.eventId}/redeliver` };
    },
    verify: async (res) => {
      expect(res.json().deliveries.length).toBeGreaterThan(0);
      const rows = await ctx.db.selectFrom('webhook_deliveries').select('id').where('event_id', '=', fx.eventId).execute();
      expect(rows.length).toBeGreaterThanOrEqual(res.json().deliveries.length);
    },
  },
};
/** An unverified business with a director, made by the OWNER key (its relationships apply at once). */
async function businessWithDirector(): Promise<{ businessId: string; relationshipId: string }> {
  const owner = client(ctx.app, keys.OWNER.key);
  const businessId = (await owner.post('/v1/users', business())).json().id as string;
  const rel = await owner.post(`/v1/users/${businessId}/relationships`, { type: 'director', related_user_id: fx.userId });
  expect(rel.statusCode, rel.body).toBe(201);
  return { businessId, relationshipId: rel.json().id };
}
const relationshipOps: Record<string, Operation> = {
  addRelationship: {
    method: 'POST', path: '/v1/users/{id}/relationships', permission: 'users:update', success: 201,
    request: async () => ({
      method: 'POST', url: `/v1/users/${(await client(ctx.app, keys.OWNER.key).post('/v1/users', business())).json().id}/relationships`,
      body: { type: 'beneficial_owner', related_user_id: fx.userId, ownership_percent: 25 },
    }),
    verify: async (res, caller) => {
      const rel = res.json();
      const row = await ctx.db.selectFrom('relationships').selectAll().where('tenant_id', '=', tenantId).where('id', '=', rel.id).executeTakeFirstOrThrow();
      expect(row).toMatchObject({ related_user_id: fx.userId, created_by_key_id: caller.keyId, ended_at: null });
      expect(await auditOf('user.relationship_added', rel.id)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  listRelationships: {
    method: 'GET', path: '/v1/users/{id}/relationships', permission: 'users:read', success: 200,
    request: async () => ({ method: 'GET', url: `/v1/users/${(await businessWithDirector()).businessId}/relationships` }),
    verify: (res) => expect(res.json().data).toEqual([expect.objectContaining({ type: 'director', related_user_id: fx.userId })]),
  },
  endRelationship: {
    method: 'POST', path: '/v1/users/{id}/relationships/{rel_id}/end', permission: 'users:update', success: 200,
    request: async () => {
      const { businessId, relationshipId } = await businessWithDirector();
      return { method: 'POST', url: `/v1/users/${businessId}/relationships/${relationshipId}/end` };
    },
    verify: async (res, caller) => {
      const rel = res.json();
      const row = await ctx.db.selectFrom('relationships').selectAll().where('tenant_id', '=', tenantId).where('id', '=', rel.id).executeTakeFirstOrThrow();
      expect(row).toMatchObject({ ended_by_key_id: caller.keyId, ended_at: expect.any(Date) });
      expect(await auditOf('user.relationship_ended', rel.id)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  getOwnership: {
    method: 'GET', path: '/v1/users/{id}/ownership', permission: 'users:read', success: 200,
    request: async () => {
      const owner = client(ctx.app, keys.OWNER.key);
      const businessId = (await owner.post('/v1/users', business())).json().id as string;
      await owner.post(`/v1/users/${businessId}/relationships`, { type: 'beneficial_owner', related_user_id: fx.userId, ownership_percent: 40 });
      return { method: 'GET', url: `/v1/users/${businessId}/ownership` };
    },
    verify: (res) => expect(res.json().owners).toEqual([{ user_id: fx.userId, percent: 40, paths: [[res.json().user_id, fx.userId]] }]),
  },
};
const complianceOps: Record<string, Operation> = {
  setUserRisk: {
    method: 'PUT', path: '/v1/users/{id}/risk', permission: 'risk:set', success: 200,
    request: async () => ({
      method: 'PUT', url: `/v1/users/${(await client(ctx.app, keys.OWNER.key).post('/v1/users', individual())).json().id}/risk`,
      body: { rating: 'high', status: 'pending', reason: 'adverse media' },
    }),
    verify: async (res, caller, call) => {
      const userId = call.url.split('/')[3]!;
      const row = await ctx.db.selectFrom('risk_changes').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', userId).executeTakeFirstOrThrow();
      expect(row).toMatchObject({ to_rating: 'high', to_status: 'pending', actor_key_id: caller.keyId, actor_role: caller.role });
      expect(await auditOf('user.risk_changed', userId)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  listUserRiskChanges: {
    method: 'GET', path: '/v1/users/{id}/risk-changes', permission: 'users:read', success: 200,
    request: async () => {
      const owner = client(ctx.app, keys.OWNER.key);
      const userId = (await owner.post('/v1/users', individual())).json().id as string;
      await owner.call({ method: 'PUT', url: `/v1/users/${userId}/risk`, body: { rating: 'low', status: 'cleared', reason: 'onboarding' } });
      return { method: 'GET', url: `/v1/users/${userId}/risk-changes` };
    },
    verify: (res) => expect(res.json().data).toEqual([expect.objectContaining({ from: null, to: { rating: 'low', status: 'cleared' } })]),
  },
  addRequiredAction: {
    method: 'POST', path: '/v1/users/{id}/required-actions', permission: 'users:update', success: 201,
    request: async () => ({
      method: 'POST', url: `/v1/users/${(await client(ctx.app, keys.OWNER.key).post('/v1/users', individual())).json().id}/required-actions`,
      body: { code: 'provide_document', document_type: 'selfie' },
    }),
    verify: async (res, caller) => {
      expect(res.json()).toMatchObject({ status: 'open', document_type: 'selfie' });
      expect(await auditOf('user.required_action_added', res.json().id)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  cancelRequiredAction: {
    method: 'POST', path: '/v1/users/{id}/required-actions/{action_id}/cancel', permission: 'users:update', success: 200,
    request: async () => {
      const owner = client(ctx.app, keys.OWNER.key);
      const userId = (await owner.post('/v1/users', individual())).json().id as string;
      const action = (await owner.post(`/v1/users/${userId}/required-actions`, { code: 'other' })).json();
      return { method: 'POST', url: `/v1/users/${userId}/required-actions/${action.id}/cancel` };
    },
    verify: async (res, caller) => {
      expect(res.json().status).toBe('cancelled');
      expect(await auditOf('user.required_action_cancelled', res.json().id)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  setKycSubStatus: {
    method: 'PUT', path: '/v1/users/{id}/kyc-sub-status', permission: 'kyc:record', success: 200,
    request: async () => ({
      method: 'PUT', url: `/v1/users/${(await client(ctx.app, keys.OWNER.key).post('/v1/users', individual())).json().id}/kyc-sub-status`,
      body: { sub_status: 'submitted' },
    }),
    verify: async (res, caller) => {
      expect(res.json().kyc.sub_status).toBe('submitted');
      expect(await auditOf('user.kyc_sub_status_changed', res.json().id)).toEqual([expect.objectContaining({ actor_key_id: caller.keyId, actor_role: caller.role })]);
    },
  },
  getUserByExternalRef: {
    method: 'GET', path: '/v1/users/by-external-ref/{external_ref}', permission: 'users:read', success: 200,
    request: async () => {
      const body = individual();
      await client(ctx.app, keys.OWNER.key).post('/v1/users', body);
      return { method: 'GET', url: `/v1/users/by-external-ref/${encodeURIComponent(body.external_ref)}` };
    },
    verify: (res) => expect(res.json().external_ref).toMatch(/^crm-/),
  },
};
Object.assign(OPERATIONS, transitionOps, erasureOps, webhookOps, relationshipOps, complianceOps);

/** What a forbidden call must leave untouched. last_used_at is left out: it is bookkeeping, not a write of the caller's. */
async function snapshot() {
  const [users, apiKeys, audit, events, changeRequests, verifications, tenant, statusChanges, endpoints, deliveries] = await Promise.all([
    ctx.db.selectFrom('users').select(['id', 'version', 'status', 'profile', 'kyc_status', 'pending_changes', 'legal_hold', 'erasure_requested_at', 'updated_at']).where('tenant_id', '=', tenantId).orderBy('id').execute(),
    ctx.db.selectFrom('api_keys').select(['id', 'role', 'revoked_at', 'expires_at']).where('tenant_id', '=', tenantId).orderBy('id').execute(),
    ctx.db.selectFrom('audit_entries').select(['id']).where('tenant_id', '=', tenantId).orderBy('seq').execute(),
    ctx.db.selectFrom('events').select(['id']).where('tenant_id', '=', tenantId).orderBy('seq').execute(),
    ctx.db.selectFrom('change_requests').select(['id', 'status']).where('tenant_id', '=', tenantId).orderBy('id').execute(),
    ctx.db.selectFrom('verifications').select(['id']).where('tenant_id', '=', tenantId).orderBy('id').execute(),
    ctx.db.selectFrom('tenants').select(['policy']).where('id', '=', tenantId).execute(),
    ctx.db.selectFrom('status_changes').select(['id']).where('tenant_id', '=', tenantId).orderBy('id').execute(),
    ctx.db.selectFrom('webhook_endpoints').select(['id', 'enabled', 'secret_enc']).where('tenant_id', '=', tenantId).orderBy('id').execute(),
    ctx.db.selectFrom('webhook_deliveries').select(['id']).where('tenant_id', '=', tenantId).orderBy('id').execute(),
  ]);
  return { users, apiKeys, audit, events, changeRequests, verifications, tenant, statusChanges, endpoints, deliveries };
}

function expectForbidden(res: Response) {
  expect(res.statusCode, res.body).toBe(403);
  expect(res.headers['content-type']).toContain('application/problem+json');
  expect(res.json()).toMatchObject({ status: 403, code: 'auth.forbidden', request_id: res.headers['x-request-id'] });
}

beforeAll(async () => {
  ctx = await createTestContext();
  const t = await createTenant(ctx.db);
  tenantId = t.tenantId;
  keys.OWNER = { key: t.ownerKey, id: t.ownerKeyId };
  for (const role of ROLES.filter((r) => r !== 'OWNER')) keys[role] = await createKey(ctx.db, tenantId, role);
  const created = await client(ctx.app, t.ownerKey).post('/v1/users', individual());
  expect(created.statusCode).toBe(201);
  const userId: string = created.json().id;
  const event = await ctx.db.selectFrom('events').select('id').where('tenant_id', '=', tenantId).where('user_id', '=', userId).executeTakeFirstOrThrow();
  const doc = await client(ctx.app, t.ownerKey).post(`/v1/users/${userId}/documents`, physicalDocument('bank_statement', { content: dataUri('pdf', 'roles statement') }));
  expect(doc.statusCode, doc.body).toBe(201);
  const imported = await client(ctx.app, t.ownerKey).call({ method: 'POST', url: '/v1/imports', headers: { 'content-type': 'application/x-ndjson' }, body: JSON.stringify(individual()) });
  expect(imported.statusCode, imported.body).toBe(202);
  while ((await client(ctx.app, t.ownerKey).get(`/v1/imports/${imported.json().id}`)).json().state === 'running') await new Promise((r) => setTimeout(r, 20));
  fx = { userId, eventId: event.id, documentId: doc.json().id, requesterKey: (await createKey(ctx.db, tenantId, 'ADMIN')).key, importId: imported.json().id };
});
afterAll(() => ctx.close());

describe('the role table', () => {
  it('in roles.ts is the matrix product.md states', () => {
    expect(Object.keys(PERMISSIONS).sort()).toEqual(Object.keys(SPEC_MATRIX).sort());
    for (const [permission, roles] of Object.entries(SPEC_MATRIX)) {
      expect([...PERMISSIONS[permission as Permission]].sort(), permission).toEqual([...roles].sort());
    }
  });

  it('covers every /v1 operation the OpenAPI document publishes, with the same method and path', async () => {
    const res = await client(ctx.app, null).get('/openapi.json');
    expect(res.statusCode).toBe(200);
    const paths = res.json().paths as Record<string, Record<string, { operationId?: string }>>;
    const published = Object.entries(paths)
      .filter(([path]) => path.startsWith('/v1'))
      .flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ id: op.operationId ?? `${method} ${path}`, method: method.toUpperCase(), path })));
    const uncovered = published.filter((p) => !Object.hasOwn(OPERATIONS, p.id)).map((p) => `${p.id} (${p.method} ${p.path})`);
    expect(uncovered, 'operations missing from the role table in test/roles.test.ts').toEqual([]);
    for (const p of published) expect({ method: OPERATIONS[p.id]!.method, path: OPERATIONS[p.id]!.path }, p.id).toEqual({ method: p.method, path: p.path });
    const stale = Object.keys(OPERATIONS).filter((id) => !published.some((p) => p.id === id));
    expect(stale, 'operations in the role table the app no longer publishes').toEqual([]);
  });
});

const cases = ROLES.flatMap((role) =>
  Object.entries(OPERATIONS).map(([operationId, op]) => ({
    role, operationId, op, allowed: SPEC_MATRIX[op.permission].includes(role),
  })),
);

describe.each(ROLES)('role %s', (role) => {
  const mine = cases.filter((c) => c.role === role);

  it.each(mine.filter((c) => c.allowed).map((c) => [c.operationId, c.op.method, c.op.path, c] as const))(
    `may call %s (%s %s): it succeeds and its outcome is there, attributed to ${role} where it writes`,
    async (_id, _m, _p, c) => {
      const caller = { role, keyId: keys[role].id };
      const call = await c.op.request(caller);
      const res = await client(ctx.app, keys[role].key).call(call);
      expect(res.statusCode, res.body).toBe(c.op.success);
      await c.op.verify(res, caller, call);
    },
  );

  const forbidden = mine.filter((c) => !c.allowed);
  if (forbidden.length) {
    it.each(forbidden.map((c) => [c.operationId, c.op.method, c.op.path, c] as const))(
      'cannot call %s (%s %s): 403 auth.forbidden and nothing is written',
      async (_id, _m, _p, c) => {
        const call = await c.op.request({ role, keyId: keys[role].id });
        const before = await snapshot();
        const res = await client(ctx.app, keys[role].key).call(call);
        expectForbidden(res);
        expect(await snapshot()).toEqual(before);
      },
    );
  }
});

describe('key management between roles', () => {
  const countKeys = async () =>
    Number((await ctx.db.selectFrom('api_keys').select((eb) => eb.fn.countAll<string>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow()).n);

  it('an ADMIN cannot create an OWNER key: 403 auth.forbidden, no key row and no audit entry', async () => {
    const before = await snapshot();
    const keyCount = await countKeys();
    const res = await client(ctx.app, keys.ADMIN.key).post('/v1/api-keys', { role: 'OWNER', name: 'escalation' });
    expectForbidden(res);
    expect(res.body).not.toMatch(/kyclo_live_[A-Za-z0-9]{32}/);
    expect(await countKeys()).toBe(keyCount);
    expect(await snapshot()).toEqual(before);
  });

  it('an ADMIN cannot revoke an OWNER key: 403, the key stays active and keeps working', async () => {
    const target = await createKey(ctx.db, tenantId, 'OWNER');
    const before = await snapshot();
    const res = await client(ctx.app, keys.ADMIN.key).delete(`/v1/api-keys/${target.id}`);
    expectForbidden(res);
    expect(await snapshot()).toEqual(before);
    const row = await ctx.db.selectFrom('api_keys').select('revoked_at').where('tenant_id', '=', tenantId).where('id', '=', target.id).executeTakeFirstOrThrow();
    expect(row.revoked_at).toBeNull();
    expect((await client(ctx.app, target.key).get('/v1/api-keys')).statusCode).toBe(200);
  });

  it('an ADMIN cannot revoke the tenant’s original OWNER key either', async () => {
    const res = await client(ctx.app, keys.ADMIN.key).delete(`/v1/api-keys/${keys.OWNER.id}`);
    expectForbidden(res);
    expect((await client(ctx.app, keys.OWNER.key).get('/v1/api-keys')).statusCode).toBe(200);
  });

  it.each(['ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER', 'READER'] as const)(
    'an ADMIN can create a key of role %s and then revoke it, each audited under ADMIN',
    async (target) => {
      const admin = client(ctx.app, keys.ADMIN.key);
      const created = await admin.post('/v1/api-keys', { role: target, name: `${target} by admin` });
      expect(created.statusCode, created.body).toBe(201);
      const { id, key } = created.json();
      expect(created.json().role).toBe(target);
      expect(await auditOf('api_key.created', id)).toEqual([expect.objectContaining({ actor_key_id: keys.ADMIN.id, actor_role: 'ADMIN' })]);
      expect((await client(ctx.app, key).get('/v1/users')).statusCode).toBe(200);

      const revoked = await admin.delete(`/v1/api-keys/${id}`);
      expect(revoked.statusCode, revoked.body).toBe(200);
      expect(revoked.json().revoked_at).toEqual(expect.any(String));
      expect(await auditOf('api_key.revoked', id)).toEqual([expect.objectContaining({ actor_key_id: keys.ADMIN.id, actor_role: 'ADMIN' })]);
      expect((await client(ctx.app, key).get('/v1/users')).json().code).toBe('auth.key_revoked');
    },
  );

  it('an ADMIN can revoke an ADMIN key made by the CLI', async () => {
    const other = await createKey(ctx.db, tenantId, 'ADMIN');
    const res = await client(ctx.app, keys.ADMIN.key).delete(`/v1/api-keys/${other.id}`);
    expect(res.statusCode).toBe(200);
    expect((await client(ctx.app, other.key).get('/v1/users')).statusCode).toBe(401);
  });

  it.each(ROLES)('an OWNER can create and revoke a key of role %s', async (target) => {
    // A fresh OWNER key, so this does not depend on the original one surviving the tests above.
    const acting = await createKey(ctx.db, tenantId, 'OWNER');
    const ownerApi = client(ctx.app, acting.key);
    const created = await ownerApi.post('/v1/api-keys', { role: target, name: `${target} by owner` });
    expect(created.statusCode, created.body).toBe(201);
    const id = created.json().id;
    const row = await ctx.db.selectFrom('api_keys').select(['role', 'created_by']).where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirstOrThrow();
    expect(row).toEqual({ role: target, created_by: acting.id });
    const revoked = await ownerApi.delete(`/v1/api-keys/${id}`);
    expect(revoked.statusCode).toBe(200);
    expect(await auditOf('api_key.revoked', id)).toEqual([expect.objectContaining({ actor_key_id: acting.id, actor_role: 'OWNER' })]);
  });
});

describe('authentication comes before the role check', () => {
  it.each(Object.entries(OPERATIONS).map(([id, op]) => [id, op] as const))('%s without a key is 401 auth.missing_key, not 403', async (_id, op) => {
    const call = await op.request({ role: 'READER', keyId: keys.READER.id });
    const before = await snapshot();
    const res = await client(ctx.app, null).call(call);
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('auth.missing_key');
    expect(await snapshot()).toEqual(before);
  });

  it.each(Object.entries(OPERATIONS).map(([id, op]) => [id, op] as const))('%s with a revoked OWNER key is 401 auth.key_revoked', async (_id, op) => {
    const call = await op.request({ role: 'OWNER', keyId: revokedOwner.id });
    const before = await snapshot();
    const res = await client(ctx.app, revokedOwner.key).call(call);
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('auth.key_revoked');
    expect(await snapshot()).toEqual(before);
  });
});

let revokedOwner: { key: string; id: string };
beforeAll(async () => {
  revokedOwner = await createKey(ctx.db, tenantId, 'OWNER');
  await ctx.db.updateTable('api_keys').set({ revoked_at: new Date() }).where('id', '=', revokedOwner.id).execute();
});
