import type { Role } from '../api-keys/roles.js';

/** Who is acting: an API key over HTTP, an operator at the CLI, or the service itself. */
export interface Actor {
  type: 'api_key' | 'cli' | 'system';
  tenantId: string;
  keyId: string | null;
  role: Role | null;
  requestId: string | null;
  ip: string | null;
  /**
   * The nonce of the Idempotency-Key claim this request holds: its audit entries carry it, so the
   * claim learns in the write's own transaction that the change committed (migration 0014).
   */
  idempotencyClaim?: string;
  /** The tenant's rate limit, read with the key (API callers only). */
  requestsPerMinute?: number;
}

export const cliActor = (tenantId: string): Actor => ({
  type: 'cli',
  tenantId,
  keyId: null,
  role: null,
  requestId: null,
  ip: null,
});
