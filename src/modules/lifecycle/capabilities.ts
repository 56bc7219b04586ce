// What a user can do now, per money operation (product.md, "Capabilities"). Pure: status and KYC
// status in, one verdict with a reason code per operation out. The status matrix is tenant policy
// for the statuses that trade (active, flagged); a suspension and a block are freezes and a closed
// account is over, so those rows deny everything whatever the policy says: a compliance officer's
// freeze must not be thawed by a policy edit that names no user and leaves every status unchanged.
import type { Status } from './user-status.js';
import { PROPAGATING_STATUSES } from '../relationships/relationship-rules.js';

export const OPERATIONS = ['deposits', 'withdrawals', 'exchanges', 'card_transactions'] as const;
export type Operation = (typeof OPERATIONS)[number];
export type CapabilityMatrix = Record<Status, Record<Operation, boolean>>;
/** The statuses that deny every operation, whatever the tenant's matrix says. */
export const FROZEN_STATUSES = ['suspended', 'blocked', 'closed'] as const satisfies readonly Status[];
type Frozen = (typeof FROZEN_STATUSES)[number];
const isFrozen = (status: string): status is Frozen => (FROZEN_STATUSES as readonly string[]).includes(status);
export type CapabilityOverrides = Partial<Record<Exclude<Status, Frozen>, Partial<Record<Operation, boolean>>>>;

const all = (allowed: boolean): Record<Operation, boolean> =>
  Object.fromEntries(OPERATIONS.map((o) => [o, allowed])) as Record<Operation, boolean>;

export const DEFAULT_CAPABILITIES: CapabilityMatrix = {
  active: all(true),
  flagged: { deposits: true, withdrawals: false, exchanges: false, card_transactions: true },
  suspended: all(false),
  blocked: all(false),
  closed: all(false),
};

const STATUS_REASON: Record<Status, string> = {
  active: 'not_allowed',
  flagged: 'under_review',
  suspended: 'account_suspended',
  blocked: 'account_blocked',
  closed: 'account_closed',
};

/** Every reason a verdict can give: the OpenAPI enum. */
export const VERDICT_REASONS = [...new Set([...Object.values(STATUS_REASON), 'risk_prohibited', 'kyc_not_verified', ...PROPAGATING_STATUSES.map((st) => `related_party_${st}`)])];

export interface Verdict {
  allowed: boolean;
  reason: string | null;
}

export function effectiveCapabilities(overrides: CapabilityOverrides = {}): CapabilityMatrix {
  const out = {} as CapabilityMatrix;
  for (const [status, ops] of Object.entries(DEFAULT_CAPABILITIES) as Array<[Status, Record<Operation, boolean>]>) {
    // A frozen row stored before freezes were fixed is ignored, not applied.
    out[status] = { ...ops, ...(isFrozen(status) ? {} : (overrides[status as Exclude<Status, Frozen>] ?? {})) };
  }
  return out;
}

/**
 * The user's own status decides first (a freeze is the actionable reason); then a prohibited risk
 * rating denies everything the status left (`risk_prohibited`: no tenant policy can open it); then a
 * related party the propagation policy holds against it (`related_party_blocked`…,
 * relationships/relationship-rules.ts); then KYC must be verified.
 */
export function evaluate(
  matrix: CapabilityMatrix, status: Status, kycStatus: string, relatedReason: string | null = null, riskRating: string | null = null,
): Record<Operation, Verdict> {
  const kycOk = kycStatus === 'verified' || kycStatus === 'review_required';
  const out = {} as Record<Operation, Verdict>;
  for (const op of OPERATIONS) {
    if (isFrozen(status) || !matrix[status][op]) out[op] = { allowed: false, reason: STATUS_REASON[status] };
    else if (riskRating === 'prohibited') out[op] = { allowed: false, reason: 'risk_prohibited' };
    else if (relatedReason) out[op] = { allowed: false, reason: relatedReason };
    else if (!kycOk) out[op] = { allowed: false, reason: 'kyc_not_verified' };
    else out[op] = { allowed: true, reason: null };
  }
  return out;
}

export function validateCapabilityOverrides(overrides: unknown): Array<{ field: string; code: string; message: string }> {
  const errors: Array<{ field: string; code: string; message: string }> = [];
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(overrides)) return [{ field: 'capabilities', code: 'invalid_type', message: 'must be an object' }];
  for (const [status, ops] of Object.entries(overrides)) {
    const at = `capabilities.${status}`;
    if (isFrozen(status)) errors.push({ field: at, code: 'immutable', message: `a ${status} account can never transact` });
    else if (!Object.hasOwn(DEFAULT_CAPABILITIES, status)) errors.push({ field: at, code: 'unknown_status', message: 'not an account status' });
    else if (!isObj(ops)) errors.push({ field: at, code: 'invalid_type', message: 'must be an object' });
    else {
      for (const [op, v] of Object.entries(ops)) {
        if (!(OPERATIONS as readonly string[]).includes(op)) errors.push({ field: `${at}.${op}`, code: 'unknown_operation', message: `must be one of ${OPERATIONS.join(', ')}` });
        else if (typeof v !== 'boolean') errors.push({ field: `${at}.${op}`, code: 'invalid_type', message: 'must be true or false' });
      }
    }
  }
  return errors;
}
