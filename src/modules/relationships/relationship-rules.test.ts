import { describe, expect, it } from 'vitest';
import { checkShape, DEFAULT_PROPAGATION, heldParties, RELATIONSHIP_TYPES, relatedPartyReason, validatePropagation, type RelatedParty } from './relationship-rules.js';
import { codes } from '../reference/enumerations.js';
import { decide, effectivePolicy, validateOverrides } from '../users/field-policy.js';

const party = (over: Partial<RelatedParty>): RelatedParty => ({ user_id: 'usr_a', status: 'suspended', closed: false, ownership_percent: 0, control: false, path: [], ...over });

describe('relationship rules', () => {
  it('publish exactly the types the API accepts', () => {
    expect(codes('relationship_types')).toEqual([...RELATIONSHIP_TYPES]);
  });

  it('take only an individual as beneficial owner, give owners only to a business, and percentages only to ownership', () => {
    expect(checkShape({ type: 'beneficial_owner' }, 'business', 'business')).toEqual([expect.objectContaining({ field: 'related_user_id', code: 'related_type' })]);
    expect(checkShape({ type: 'shareholder', ownership_percent: 10 }, 'business', 'business')).toEqual([]);
    expect(checkShape({ type: 'director' }, 'individual', 'individual')).toEqual([expect.objectContaining({ field: 'type', code: 'holder_type' })]);
    expect(checkShape({ type: 'parent' }, 'individual', 'business')).toEqual([]);
    expect(checkShape({ type: 'director', ownership_percent: 1 }, 'business', 'individual')).toEqual([expect.objectContaining({ code: 'not_ownership' })]);
    expect(checkShape({ type: 'shareholder', ownership_percent: 12.34567 }, 'business', 'individual')).toEqual([expect.objectContaining({ code: 'too_precise' })]);
    expect(checkShape({ type: 'shareholder', ownership_percent: 49.98 }, 'business', 'individual')).toEqual([]);
  });

  it('hold a party at the threshold or with control, in a propagating status, the most serious first', () => {
    const p = DEFAULT_PROPAGATION;
    expect(heldParties([party({ ownership_percent: 24.9999 })], p)).toEqual([]);
    expect(heldParties([party({ ownership_percent: 25 })], p)).toHaveLength(1);
    expect(heldParties([party({ control: true })], p)).toHaveLength(1);
    expect(heldParties([party({ control: true, status: 'flagged' })], p)).toEqual([]);
    const held = heldParties([party({ user_id: 'usr_b', control: true }), party({ user_id: 'usr_c', status: 'blocked', ownership_percent: 30 })], p);
    expect(relatedPartyReason(held)).toBe('related_party_blocked');
    expect(relatedPartyReason([])).toBeNull();
    expect(heldParties([party({ control: true })], { ...p, statuses: [] })).toEqual([]);
  });

  it('validate the propagation policy path by path', () => {
    expect(validatePropagation({ ownership_threshold_percent: 10, statuses: ['flagged'] })).toEqual([]);
    expect(validatePropagation({ ownership_threshold_percent: 101, statuses: ['closed', 'closed'], other: 1 }).map((e) => e.field).sort()).toEqual([
      'propagation.other', 'propagation.ownership_threshold_percent', 'propagation.statuses',
    ]);
  });

  it('put `relationships` in the field policy: approval for a verified business, overridable', () => {
    expect(decide(effectivePolicy(), 'business', 'verified', 'relationships').outcome).toBe('approval');
    expect(decide(effectivePolicy(), 'business', 'unverified', 'relationships').outcome).toBe('allow');
    expect(validateOverrides({ business: { verified: { relationships: 'deny' } } })).toEqual([]);
    expect(decide(effectivePolicy({ business: { verified: { relationships: 'allow' } } }), 'business', 'verified', 'relationships').outcome).toBe('allow');
  });
});
