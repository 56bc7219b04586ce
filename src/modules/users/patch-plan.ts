// What a merge patch would do to a user, decided field by field by the policy. Pure: the service
// turns a plan into one transaction, the dry run returns it as it is.
import type { UserViewRow } from './users.repo.js';
import { decideFieldChanges, policyState, type FieldDecision, type FieldPolicy, type UserType } from './field-policy.js';
import { changedFields, mergePatch, setAt, valueAt, type JsonObject } from './merge-patch.js';
import { documentOf, splitDocument } from './user-view.js';

export interface PatchPlan {
  decisions: FieldDecision[];
  denied: FieldDecision[];
  /** Fields applied now (allow and allow_with_review), with the columns to write. */
  applied: { fields: string[]; next: ReturnType<typeof splitDocument>; previous: JsonObject; current: JsonObject } | null;
  /** True when an applied field asks for a new KYC review of a verified user. */
  review: boolean;
  /** The applied fields that caused that review. */
  reviewFields: string[];
  /**
   * Fields held for approval: proposed values and the values they were proposed against; `listed`,
   * when set, the proposed values the row's pending_changes may show (users.service.ts sealPlan).
   */
  approval: { fields: string[]; proposed: JsonObject; base: JsonObject; listed?: JsonObject } | null;
}

const pick = (doc: JsonObject, fields: string[]) => Object.fromEntries(fields.map((f) => [f, valueAt(doc, f)]));

export function planPatch(row: UserViewRow, patch: JsonObject, policy: FieldPolicy): PatchPlan {
  const before = documentOf(row);
  const after = mergePatch(before, patch) as JsonObject;
  // Cleared metadata and tags are stored as {} and [] (splitDocument): compared as stored.
  const compared = { ...after };
  compared.metadata = after.metadata ?? {};
  compared.tags = after.tags ?? [];
  const changed = changedFields(before, compared, Object.keys(patch));
  const kyc = policyState(row);
  const decisions = decideFieldChanges({ policy, userType: row.type as UserType, kyc, fields: changed });
  const by = (...outcomes: string[]) => decisions.filter((d) => outcomes.includes(d.outcome)).map((d) => d.field);
  const denied = decisions.filter((d) => d.outcome === 'deny');
  const now = by('allow', 'allow_with_review');
  const later = by('approval');

  let applied: PatchPlan['applied'] = null;
  if (now.length) {
    let doc = before;
    for (const f of now) doc = setAt(doc, f, valueAt(after, f));
    applied = { fields: now, next: splitDocument(doc), previous: pick(before, now), current: pick(after, now) };
  }
  // Only a verified user has a verification to review again.
  const reviewFields = row.kyc_status === 'verified' ? by('allow_with_review') : [];
  return {
    decisions,
    denied,
    applied,
    review: reviewFields.length > 0,
    reviewFields,
    approval: later.length ? { fields: later, proposed: pick(after, later), base: pick(before, later) } : null,
  };
}

/** Applies approved values (dotted paths) to a row's document, for the columns to write. */
export function applyValues(row: UserViewRow, values: JsonObject) {
  let doc = documentOf(row);
  for (const [f, v] of Object.entries(values)) doc = setAt(doc, f, v);
  return splitDocument(doc);
}
