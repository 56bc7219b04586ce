import { describe, expect, it } from 'vitest';
import { checkTransition, initialStatusProblem, STATUSES, TRANSITIONS } from './user-status.js';
import { DEFAULT_CAPABILITIES, effectiveCapabilities, evaluate, OPERATIONS, validateCapabilityOverrides } from './capabilities.js';

describe('the status transition table', () => {
  it('is product.md’s graph', () => {
    expect(TRANSITIONS).toEqual({
      active: ['flagged', 'suspended', 'blocked', 'closed'],
      flagged: ['active', 'suspended', 'blocked', 'closed'],
      suspended: ['active', 'flagged', 'blocked', 'closed'],
      blocked: ['active', 'closed'],
      closed: [],
    });
  });

  it('allows exactly the listed moves, never a move to the same status, never out of closed', () => {
    for (const from of STATUSES) {
      for (const to of STATUSES) {
        const r = checkTransition(from, to, 'other');
        if (from === 'closed') expect(r).toEqual({ ok: false, code: 'user.closed', allowed: [] });
        else if (TRANSITIONS[from].includes(to)) expect(r).toEqual({ ok: true });
        else expect(r).toEqual({ ok: false, code: 'user.transition_not_allowed', allowed: TRANSITIONS[from] });
      }
    }
  });

  it('requires a reason for every allowed move, out of a freeze as into one', () => {
    for (const from of STATUSES) {
      for (const to of TRANSITIONS[from]) {
        for (const none of [null, undefined, '']) expect(checkTransition(from, to, none)).toEqual({ ok: false, code: 'reason_required', allowed: TRANSITIONS[from] });
        expect(checkTransition(from, to, 'review_cleared')).toEqual({ ok: true });
      }
    }
  });

  it('gives a first status a reason only when it is not active (POST /v1/users and an import alike)', () => {
    expect(initialStatusProblem('active', 'fraud_suspected')).toMatchObject({ field: 'status_reason', code: 'without_status' });
    expect([initialStatusProblem('active', null), initialStatusProblem('flagged', 'fraud_suspected'), initialStatusProblem('closed', 'other')]).toEqual([undefined, undefined, undefined]);
  });

  it('lets unsuspend leave only suspended and unblock only blocked', () => {
    expect(checkTransition('flagged', 'active', 'review_cleared', 'suspended')).toMatchObject({ ok: false, code: 'user.transition_not_allowed' });
    expect(checkTransition('suspended', 'active', 'review_cleared', 'suspended')).toEqual({ ok: true });
    expect(checkTransition('flagged', 'active', 'review_cleared', 'blocked')).toMatchObject({ ok: false });
  });
});

describe('the capability matrix', () => {
  const verified = (status: (typeof STATUSES)[number]) => evaluate(effectiveCapabilities(), status, 'verified');

  it('allows everything to an active verified (or under-review) user', () => {
    for (const kyc of ['verified', 'review_required']) {
      for (const op of OPERATIONS) expect(evaluate(effectiveCapabilities(), 'active', kyc)[op]).toEqual({ allowed: true, reason: null });
    }
  });

  it('denies everything to an unverified user, whatever its KYC stage', () => {
    for (const kyc of ['unverified', 'pending', 'rejected']) {
      for (const op of OPERATIONS) expect(evaluate(effectiveCapabilities(), 'active', kyc)[op]).toEqual({ allowed: false, reason: 'kyc_not_verified' });
    }
  });

  it('lets a flagged user deposit and pay by card, not withdraw or exchange', () => {
    expect(verified('flagged')).toEqual({
      deposits: { allowed: true, reason: null },
      withdrawals: { allowed: false, reason: 'under_review' },
      exchanges: { allowed: false, reason: 'under_review' },
      card_transactions: { allowed: true, reason: null },
    });
  });

  it('freezes everything for suspended, blocked and closed users, the status naming the reason', () => {
    for (const [status, reason] of [['suspended', 'account_suspended'], ['blocked', 'account_blocked'], ['closed', 'account_closed']] as const) {
      for (const op of OPERATIONS) {
        expect(verified(status)[op]).toEqual({ allowed: false, reason });
        expect(evaluate(effectiveCapabilities(), status, 'unverified')[op]).toEqual({ allowed: false, reason });
      }
    }
  });

  it('takes tenant overrides for active and flagged, but a frozen or closed account never transacts', () => {
    const m = effectiveCapabilities({ flagged: { withdrawals: true }, active: { exchanges: false } });
    expect(evaluate(m, 'flagged', 'verified').withdrawals.allowed).toBe(true);
    expect(evaluate(m, 'active', 'verified').exchanges).toEqual({ allowed: false, reason: 'not_allowed' });
    expect(evaluate(m, 'flagged', 'pending').deposits).toEqual({ allowed: false, reason: 'kyc_not_verified' });
    expect(DEFAULT_CAPABILITIES.flagged.withdrawals).toBe(false);
    // An override of a frozen row stored before the rule: ignored, never applied.
    const stale = effectiveCapabilities({ suspended: { deposits: true }, blocked: { withdrawals: true } } as never);
    expect(evaluate(stale, 'suspended', 'verified').deposits).toEqual({ allowed: false, reason: 'account_suspended' });
    expect(evaluate(stale, 'blocked', 'verified').withdrawals).toEqual({ allowed: false, reason: 'account_blocked' });
    for (const status of ['suspended', 'blocked', 'closed']) {
      expect(validateCapabilityOverrides({ [status]: { deposits: true } })).toContainEqual(expect.objectContaining({ field: `capabilities.${status}`, code: 'immutable' }));
    }
    expect(validateCapabilityOverrides({ frozen: {} })).toContainEqual(expect.objectContaining({ code: 'unknown_status' }));
    expect(validateCapabilityOverrides({ active: { loans: true } })).toContainEqual(expect.objectContaining({ code: 'unknown_operation' }));
    expect(validateCapabilityOverrides({ active: { deposits: 'yes' } })).toContainEqual(expect.objectContaining({ code: 'invalid_type' }));
  });
});
