import { describe, expect, it } from 'vitest';
import {
  DEFAULT_FIELD_POLICY, decide, effectivePolicy, IMMUTABLE_FIELDS, kycState, policyFields, policyState, validateOverrides,
} from './field-policy.js';
import { BUSINESS_FIELDS, INDIVIDUAL_FIELDS, OBJECT_FIELDS, ADDRESS_FIELDS } from './users.schemas.js';

const defaults = effectivePolicy();

describe('the default field policy', () => {
  it('names exactly the fields a patch can carry, for each user type', () => {
    const address = Object.keys(ADDRESS_FIELDS).map((k) => `address.${k}`);
    const mailing = [...Object.keys(ADDRESS_FIELDS), 'country'].map((k) => `mailing_address.${k}`);
    const common = ['email', 'phone', ...address, ...mailing, 'metadata', 'tags', 'country', 'type', 'external_ref'];
    const leaves = (type: 'individual' | 'business') => Object.entries(OBJECT_FIELDS[type]).flatMap(([o, l]) => Object.keys(l).map((k) => `${o}.${k}`));
    expect(policyFields('individual').sort()).toEqual([...common, ...Object.keys(INDIVIDUAL_FIELDS), ...leaves('individual')].sort());
    expect(policyFields('business').sort()).toEqual([...common, ...Object.keys(BUSINESS_FIELDS), ...leaves('business')].sort());
  });

  it('denies country, type and external_ref for every user type and KYC state, and no override can change that', () => {
    for (const t of ['individual', 'business'] as const) {
      for (const s of ['unverified', 'verified'] as const) {
        for (const f of Object.keys(IMMUTABLE_FIELDS)) {
          expect(decide(defaults, t, s, f).outcome).toBe('deny');
          expect(decide(effectivePolicy({ [t]: { [s]: { [f]: 'allow' } } }), t, s, f).outcome).toBe('deny');
        }
      }
    }
  });

  it('allows every other field while unverified', () => {
    for (const t of ['individual', 'business'] as const) {
      for (const f of policyFields(t).filter((f) => !IMMUTABLE_FIELDS[f])) expect(decide(defaults, t, 'unverified', f).outcome).toBe('allow');
    }
  });

  it('holds identity fields of a verified individual for approval and reviews its address (product.md)', () => {
    const d = (f: string) => decide(defaults, 'individual', 'verified', f).outcome;
    for (const f of ['first_name', 'middle_name', 'last_name', 'date_of_birth', 'place_of_birth', 'gender', 'nationality', 'birth_country']) expect(d(f)).toBe('approval');
    for (const f of ['address.line1', 'address.line2', 'address.city', 'address.state', 'address.postcode']) expect(d(f)).toBe('allow_with_review');
    for (const f of ['address.line3', 'phone', 'occupation', 'employment_type', 'income_range', 'source_of_funds', 'timezone', 'language', 'preferred_name', 'pep', 'metadata', 'tags']) expect(d(f)).toBe('allow');
  });

  it('holds the registry identity of a verified business for approval and allows its contact data (product.md)', () => {
    const d = (f: string) => decide(defaults, 'business', 'verified', f).outcome;
    for (const f of ['legal_name', 'registration_number', 'incorporation_date', 'legal_form', 'sector']) expect(d(f)).toBe('approval');
    for (const f of ['email', 'phone', 'address.line1', 'address.postcode', 'mailing_address.city', 'website', 'employees_range', 'monthly_transactions', 'transaction_frequency']) expect(d(f)).toBe('allow');
  });

  it('never applies directly what SEND refuses for a verified user (seed 003)', () => {
    // SEND's "No when verified" fields, in Kyclo's names. SEND's user_scope, business and
    // user_relationship have no Kyclo field (sector and registration_number stand for the first two).
    const individual = ['first_name', 'middle_name', 'last_name', 'email', 'country', 'date_of_birth', 'gender', 'type'];
    const business = ['legal_name', 'country', 'incorporation_date', 'registration_number', 'legal_form', 'sector', 'type'];
    for (const f of individual) expect(['approval', 'deny']).toContain(decide(defaults, 'individual', 'verified', f).outcome);
    for (const f of business) expect(['approval', 'deny']).toContain(decide(defaults, 'business', 'verified', f).outcome);
  });

  it('gives every decision a reason', () => {
    for (const t of ['individual', 'business'] as const) {
      for (const s of ['unverified', 'verified'] as const) {
        for (const f of policyFields(t)) expect(decide(defaults, t, s, f).reason.length).toBeGreaterThan(0);
      }
    }
  });

  it('folds the five KYC statuses into the two policy states', () => {
    expect(['unverified', 'pending', 'rejected'].map(kycState)).toEqual(['unverified', 'unverified', 'unverified']);
    expect(['verified', 'review_required'].map(kycState)).toEqual(['verified', 'verified']);
  });

  it('decides a change to a user verified once as verified, whatever verification is pending or was rejected since', () => {
    const at = '2026-01-02T03:04:05.000Z';
    expect(['unverified', 'pending', 'rejected'].map((s) => policyState({ kyc_status: s, kyc_verified_at: null }))).toEqual(['unverified', 'unverified', 'unverified']);
    expect(['pending', 'rejected', 'verified', 'review_required'].map((s) => policyState({ kyc_status: s, kyc_verified_at: at }))).toEqual(['verified', 'verified', 'verified', 'verified']);
    expect(policyState({ kyc_status: 'review_required', kyc_verified_at: null })).toBe('verified');
  });

  it('does not let overrides leak into the defaults', () => {
    effectivePolicy({ individual: { verified: { email: 'allow' } } });
    expect(DEFAULT_FIELD_POLICY.individual.verified.email).toBe('approval');
  });

  it('is one shared policy when a tenant has no overrides, which nobody can change', () => {
    const p = effectivePolicy();
    expect(effectivePolicy({}, [])).toBe(p);
    expect(() => {
      (p.individual.verified as Record<string, string>).email = 'allow';
    }).toThrow(TypeError);
    expect(effectivePolicy().individual.verified.email).toBe('approval');
    // Overrides and tenant-defined fields still get a policy of their own, the shared one untouched.
    expect(effectivePolicy({ individual: { verified: { email: 'allow' } } }).individual.verified.email).toBe('allow');
    expect(effectivePolicy({}, ['segment']).individual.verified['custom.segment']).toBe('allow');
    expect(p.individual.verified['custom.segment']).toBeUndefined();
  });
});

describe('tenant overrides', () => {
  it('lay single cells over the defaults', () => {
    const p = effectivePolicy({ individual: { verified: { 'address.line1': 'approval' } } });
    expect(p.individual.verified['address.line1']).toBe('approval');
    expect(p.individual.verified['address.city']).toBe('allow_with_review');
    expect(p.business).toEqual(defaults.business);
  });

  it.each([
    [{ robot: {} }, 'fields.robot', 'unknown_user_type'],
    [{ individual: { frozen: {} } }, 'fields.individual.frozen', 'unknown_kyc_state'],
    [{ individual: { verified: { shoe_size: 'allow' } } }, 'fields.individual.verified.shoe_size', 'unknown_field'],
    [{ business: { verified: { first_name: 'allow' } } }, 'fields.business.verified.first_name', 'unknown_field'],
    [{ individual: { verified: { email: 'maybe' } } }, 'fields.individual.verified.email', 'unknown_outcome'],
    [{ individual: { verified: { country: 'allow' } } }, 'fields.individual.verified.country', 'immutable_field'],
    [{ business: { unverified: { external_ref: 'approval' } } }, 'fields.business.unverified.external_ref', 'immutable_field'],
    [{ individual: [] }, 'fields.individual', 'invalid_type'],
  ])('refuse %j naming %s', (overrides, field, code) => {
    expect(validateOverrides(overrides)).toContainEqual(expect.objectContaining({ field, code }));
  });

  it('accept a valid override, and deny kept for an immutable field', () => {
    expect(validateOverrides({ individual: { verified: { email: 'allow', country: 'deny' } }, business: {} })).toEqual([]);
  });
});
