// The account lifecycle as a pure transition table (product.md, "Account status"). `closed` is
// terminal: no transition leaves it. Every move says why with a reason code (product.md: "every change
// carries a reason code"): lifting a freeze or a block lets money move again, and the officer who
// reads the history must see why as surely as for the freeze itself (`review_cleared`, …).

export const STATUSES = ['active', 'flagged', 'suspended', 'blocked', 'closed'] as const;
export type Status = (typeof STATUSES)[number];
export const ORIGINS = ['operator', 'user', 'system'] as const;
export type Origin = (typeof ORIGINS)[number];

export const TRANSITIONS: Readonly<Record<Status, readonly Status[]>> = {
  active: ['flagged', 'suspended', 'blocked', 'closed'],
  flagged: ['active', 'suspended', 'blocked', 'closed'],
  suspended: ['active', 'flagged', 'blocked', 'closed'],
  blocked: ['active', 'closed'],
  closed: [],
};

/**
 * A user's first status (POST /v1/users, an imported row): a reason says why the user left active, so
 * a user that starts active has none — stored, it would show a fraud suspicion on an account no one
 * ever moved.
 */
export function initialStatusProblem(status: string, reason: string | null): { field: 'status_reason'; code: 'without_status'; message: string } | undefined {
  if (status !== 'active' || reason === null) return undefined;
  return { field: 'status_reason', code: 'without_status', message: 'a reason goes with an initial status other than active' };
}

/** The shorthand routes: each names its target, and unsuspend/unblock also the only state they leave. */
export const SHORTHANDS = {
  suspend: { to: 'suspended', from: null },
  unsuspend: { to: 'active', from: 'suspended' },
  flag: { to: 'flagged', from: null },
  block: { to: 'blocked', from: null },
  unblock: { to: 'active', from: 'blocked' },
} as const satisfies Record<string, { to: Status; from: Status | null }>;
export type Shorthand = keyof typeof SHORTHANDS;

export type TransitionCheck =
  | { ok: true }
  | { ok: false; code: 'user.closed' | 'user.transition_not_allowed'; allowed: readonly Status[] }
  | { ok: false; code: 'reason_required'; allowed: readonly Status[] };

export function checkTransition(from: Status, to: Status, reason: string | null | undefined, requiredFrom: Status | null = null): TransitionCheck {
  if (from === 'closed') return { ok: false, code: 'user.closed', allowed: [] };
  if (!TRANSITIONS[from].includes(to) || (requiredFrom !== null && from !== requiredFrom)) {
    return { ok: false, code: 'user.transition_not_allowed', allowed: TRANSITIONS[from] };
  }
  if (!reason) return { ok: false, code: 'reason_required', allowed: TRANSITIONS[from] };
  return { ok: true };
}
