import { describe, expect, it } from 'vitest';
import { decideFieldChanges, kycState } from './field-policy.js';

describe('the foundation field policy', () => {
  it.each(['individual', 'business'] as const)('denies country, type and external_ref for a %s in every KYC state', (userType) => {
    for (const kyc of ['unverified', 'verified'] as const) {
      const d = decideFieldChanges({ userType, kyc, fields: ['country', 'type', 'external_ref'] });
      expect(d.map((x) => x.outcome)).toEqual(['deny', 'deny', 'deny']);
      expect(d.every((x) => typeof x.reason === 'string' && x.reason.length > 0)).toBe(true);
    }
  });

  it('allows every other field, nested ones by their dotted path', () => {
    const d = decideFieldChanges({ userType: 'individual', kyc: 'unverified', fields: ['email', 'address.line1', 'metadata'] });
    expect(d).toEqual([
      { field: 'email', outcome: 'allow', reason: null },
      { field: 'address.line1', outcome: 'allow', reason: null },
      { field: 'metadata', outcome: 'allow', reason: null },
    ]);
  });

  it('folds the five KYC statuses into the two policy states', () => {
    expect(['unverified', 'pending', 'rejected'].map(kycState)).toEqual(['unverified', 'unverified', 'unverified']);
    expect(['verified', 'review_required'].map(kycState)).toEqual(['verified', 'verified']);
  });
});
