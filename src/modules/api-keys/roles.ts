// The role matrix of product.md as pure data. Every route names one permission; this table is the
// only place that says which roles hold it.
export const ROLES = ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER', 'READER'] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = {
  // Every key may ask who it is (GET /v1/me): the console decides what to show from the answer.
  'session:read': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER', 'READER'],
  'users:read': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER', 'READER'],
  'users:create': ['OWNER', 'ADMIN', 'DEVELOPER'],
  'users:update': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  'users:change_status': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  'kyc:record': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER'],
  // Verification records hold identity data: the roles that may record them may read them, not READER.
  'kyc:read': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER'],
  // Documents: the platform's backend uploads them; numbers are served masked to the roles that read
  // KYC records; the files themselves (passport scans) open only for the roles that review people.
  'documents:write': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER'],
  'documents:read': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER', 'DEVELOPER'],
  'documents:read_content': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  'changes:review': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  // The risk assessment is compliance's own decision (issue 16 §2): not the platform's backend.
  'risk:set': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  // From an erasure request until destruction, personal data is "readable only by compliance roles"
  // (product.md): the others read such a user as destruction will leave it (erasure/retained.ts).
  'users:read_retained': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  'users:close': ['OWNER', 'ADMIN'],
  // GDPR access: compliance reads everything held about a user, decrypted.
  'users:export': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  // A bulk import sets what no single call lets one role set at once (status, KYC state, created_at):
  // it is for the roles that administer the tenant.
  'users:import': ['OWNER', 'ADMIN'],
  'audit:read': ['OWNER', 'ADMIN', 'COMPLIANCE_OFFICER'],
  'events:manage': ['OWNER', 'ADMIN', 'DEVELOPER'],
  'tenant:admin': ['OWNER', 'ADMIN'],
} as const satisfies Record<string, readonly Role[]>;

export type Permission = keyof typeof PERMISSIONS;

export function roleAllows(role: Role, permission: Permission): boolean {
  return (PERMISSIONS[permission] as readonly Role[]).includes(role);
}

/** Which roles a key of `role` may mint or revoke: an ADMIN cannot create (or revoke) OWNER keys. */
export function canManageKeyOfRole(actor: Role, target: Role): boolean {
  if (actor === 'OWNER') return true;
  return actor === 'ADMIN' && target !== 'OWNER';
}

/** The permissions a role holds, in the table's order (what GET /v1/me answers). */
export function permissionsOf(role: Role): Permission[] {
  return (Object.keys(PERMISSIONS) as Permission[]).filter((p) => roleAllows(role, p));
}
