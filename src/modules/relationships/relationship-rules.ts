// What a relationship may be, as data (product.md, "Relationships"). Pure: no I/O, no framework.
// The service checks a request against RELATIONSHIP_TYPES before it takes any lock, and the
// capability check folds related parties in with `relatedPartyReason`.
import type { UserType } from '../users/field-policy.js';

export const RELATIONSHIP_TYPES = ['beneficial_owner', 'director', 'legal_representative', 'authorised_signatory', 'shareholder', 'parent'] as const;
export type RelationshipType = (typeof RELATIONSHIP_TYPES)[number];

export interface TypeRule {
  /** Who may hold the relationship (the `user_id` side). */
  holder: readonly UserType[];
  /** Who may be the related user. */
  related: readonly UserType[];
  /** Whether ownership_percent may be given; such relationships are the edges of ownership. */
  ownership: boolean;
  /** The graph the relationship is an edge of, where no cycle may form (null: none). */
  graph: 'ownership' | 'parenthood' | null;
}

const BOTH: readonly UserType[] = ['individual', 'business'];
const BUSINESS: readonly UserType[] = ['business'];

// A beneficial owner is a natural person (EU AML directives); a shareholder may be a person or a
// business; directors may be corporate directors (UK), so any type. Only a business has owners,
// officers and signatories; any account may have a parent account (Treezor's parentUserId).
export const TYPE_RULES: Record<RelationshipType, TypeRule> = {
  beneficial_owner: { holder: BUSINESS, related: ['individual'], ownership: true, graph: 'ownership' },
  shareholder: { holder: BUSINESS, related: BOTH, ownership: true, graph: 'ownership' },
  director: { holder: BUSINESS, related: BOTH, ownership: false, graph: null },
  legal_representative: { holder: BUSINESS, related: BOTH, ownership: false, graph: null },
  authorised_signatory: { holder: BUSINESS, related: BOTH, ownership: false, graph: null },
  parent: { holder: BOTH, related: BOTH, ownership: false, graph: 'parenthood' },
};

/** Relationship types whose percentages are ownership (summed per business, multiplied along chains). */
export const OWNERSHIP_TYPES = RELATIONSHIP_TYPES.filter((t) => TYPE_RULES[t].ownership);

/**
 * Bounds of the ownership walk (capability checks, GET /ownership): links followed above a user
 * (the walk's work is at most this × the relationships above the user), and chains listed per
 * ultimate owner — the strongest ones, with `path_count` saying how many there are.
 */
export const MAX_CHAIN_DEPTH = 32;
export const MAX_PATHS_PER_OWNER = 20;

export interface RuleError {
  field: string;
  code: string;
  message: string;
}

/** The checks one request can fail on its own, before any other row is read. */
export function checkShape(input: { type: RelationshipType; ownership_percent?: number | null }, holder: UserType, related: UserType): RuleError[] {
  const rule = TYPE_RULES[input.type];
  const errors: RuleError[] = [];
  if (!rule.holder.includes(holder)) {
    errors.push({ field: 'type', code: 'holder_type', message: `a ${holder} user cannot have a ${input.type}` });
  }
  if (!rule.related.includes(related)) {
    errors.push({ field: 'related_user_id', code: 'related_type', message: `a ${input.type} must be ${rule.related.map((t) => `a ${t}`).join(' or ')} user` });
  }
  // Stored as numeric(7,4): a fifth decimal would be rounded away silently, so it is refused.
  if (input.ownership_percent != null && Math.abs(input.ownership_percent * 1e4 - Math.round(input.ownership_percent * 1e4)) > 1e-6) {
    errors.push({ field: 'ownership_percent', code: 'too_precise', message: 'at most 4 decimals' });
  }
  if (input.ownership_percent != null && !rule.ownership) {
    errors.push({ field: 'ownership_percent', code: 'not_ownership', message: `only ${OWNERSHIP_TYPES.join(' and ')} relationships carry an ownership percent` });
  }
  return errors;
}

// Propagation (tenant policy): while a related party that ultimately owns at least the threshold of
// a user, or controls it, is in one of these statuses, the user's capabilities are denied.
export const PROPAGATING_STATUSES = ['blocked', 'suspended', 'flagged'] as const;
export type PropagatingStatus = (typeof PROPAGATING_STATUSES)[number];
export interface Propagation {
  ownership_threshold_percent: number;
  statuses: PropagatingStatus[];
}
export const DEFAULT_PROPAGATION: Propagation = { ownership_threshold_percent: 25, statuses: ['blocked', 'suspended'] };

export const effectivePropagation = (o: Partial<Propagation> | undefined): Propagation => ({ ...DEFAULT_PROPAGATION, ...(o ?? {}) });

// The most serious status speaks first when several related parties are held.
const SEVERITY: Record<PropagatingStatus, number> = { blocked: 3, suspended: 2, flagged: 1 };

export interface RelatedParty {
  user_id: string;
  /** For a closed party, the status it was closed from (its freeze still holds). */
  status: string;
  closed: boolean;
  /** Ultimate ownership of the user, in percent (0 when the party only controls it). */
  ownership_percent: number;
  control: boolean;
  /** From the user to the party: [user, intermediate…, party]. */
  path: string[];
}

/** The parties the policy holds against the user, most serious first. */
export function heldParties(parties: RelatedParty[], p: Propagation): RelatedParty[] {
  return parties
    .filter((r) => (p.statuses as readonly string[]).includes(r.status) && (r.control || r.ownership_percent >= p.ownership_threshold_percent))
    .sort((a, b) => SEVERITY[b.status as PropagatingStatus] - SEVERITY[a.status as PropagatingStatus] || a.user_id.localeCompare(b.user_id));
}

/** related_party_blocked, related_party_suspended…, or null when no party is held. */
export const relatedPartyReason = (held: RelatedParty[]): string | null => (held[0] ? `related_party_${held[0].status}` : null);

export function validatePropagation(o: unknown): RuleError[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(o)) return [{ field: 'propagation', code: 'invalid_type', message: 'must be an object' }];
  const errors: RuleError[] = [];
  for (const k of Object.keys(o)) {
    if (k !== 'ownership_threshold_percent' && k !== 'statuses') errors.push({ field: `propagation.${k}`, code: 'unknown_field', message: 'not a propagation setting' });
  }
  const t = o.ownership_threshold_percent;
  if (t !== undefined && (typeof t !== 'number' || !(t > 0 && t <= 100))) {
    errors.push({ field: 'propagation.ownership_threshold_percent', code: 'out_of_range', message: 'must be a number above 0 and at most 100' });
  }
  const s = o.statuses;
  if (s !== undefined && (!Array.isArray(s) || s.some((x) => !(PROPAGATING_STATUSES as readonly unknown[]).includes(x)) || new Set(s).size !== s.length)) {
    errors.push({ field: 'propagation.statuses', code: 'invalid_value', message: `must be distinct values of ${PROPAGATING_STATUSES.join(', ')} (empty: propagation off)` });
  }
  return errors;
}
