// What a PATCH may change, as one pure decision over (user type, KYC state, changed field).
// This is the default of the foundation: the immutable fields are denied, everything else applies.
// The full policy (allow_with_review, approval, per-tenant overrides) replaces `decideFieldChanges`
// without touching its callers: they act on the outcome of each field, nothing else.

export type Outcome = 'allow' | 'deny';
export type UserType = 'individual' | 'business';
export type KycState = 'unverified' | 'verified';

export interface FieldDecision {
  field: string;
  outcome: Outcome;
  reason: string | null;
}

/** Fields no update can ever change (seed 000: country; SEND and Didit: identifiers and type). */
export const IMMUTABLE_FIELDS: Readonly<Record<string, string>> = {
  country: 'The country of residence cannot change once the user is created.',
  type: 'A user cannot change between individual and business.',
  external_ref: 'external_ref is the platform’s own id and cannot change.',
};

/** KYC statuses fold into the two states the policy is written for. */
export function kycState(kycStatus: string): KycState {
  return kycStatus === 'verified' || kycStatus === 'review_required' ? 'verified' : 'unverified';
}

export function decideFieldChanges(input: { userType: UserType; kyc: KycState; fields: readonly string[] }): FieldDecision[] {
  return input.fields.map((field) => {
    const top = field.split('.')[0]!;
    const reason = IMMUTABLE_FIELDS[top];
    return reason ? { field, outcome: 'deny', reason } : { field, outcome: 'allow', reason: null };
  });
}
