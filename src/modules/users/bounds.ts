// Size bounds on what a user row stores, checked on the value that would be stored (a merge patch's
// result), not on the request that asked for it. Migration 0012 repeats them in the database (loosely,
// by trigger), the last line of defence for a write path that forgets to ask, such as approving a
// change request made before these bounds existed.
import { AppError, type FieldError } from '../../http/errors.js';
import { METADATA_MAX_BYTES } from '../reference/validate.js';
import type { UserViewRow } from './users.repo.js';
import type { PatchPlan } from './patch-plan.js';
import type { JsonObject } from './merge-patch.js';

export { METADATA_MAX_BYTES };
/** Change requests a user may have pending at once, and the stored size of them all (each holds its proposed values). */
export const MAX_PENDING_CHANGES = 10;
export const PENDING_CHANGES_MAX_BYTES = 64 * 1024;

export const jsonBytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v ?? null));

const tooLarge = (errors: FieldError[]) =>
  new AppError(422, 'user.value_too_large', `The change would exceed a size bound: ${errors.map((e) => e.field).join(', ')}.`, { errors });

const metadataError = (bytes: number): FieldError => ({
  field: 'metadata', code: 'too_large', message: `merged with the current metadata it would be ${bytes} bytes serialised; at most ${METADATA_MAX_BYTES}`,
});

/**
 * A merge patch is bounded by what it produces, not by what it sends: 15 KiB patches that each add
 * new keys are each valid, and 70 of them grew one user's metadata to 1 MB, repeated in every
 * event, audit entry and export after. So the merged metadata (applied now, or proposed for
 * approval) is measured, and a change request is refused when the user's pending ones would pass
 * their bound: 422, nothing written. Only a field the patch changes is measured, so a record
 * already over a bound can still be corrected.
 */
export function checkMergedBounds(row: UserViewRow, plan: PatchPlan): void {
  const errors: FieldError[] = [];
  const merged = [
    plan.applied?.fields.includes('metadata') ? plan.applied.next.metadata : undefined,
    plan.approval?.fields.includes('metadata') ? plan.approval.proposed.metadata : undefined,
  ];
  for (const m of merged) {
    const bytes = m === undefined ? 0 : jsonBytes(m);
    if (bytes > METADATA_MAX_BYTES) errors.push(metadataError(bytes));
  }
  if (plan.approval) errors.push(...pendingChangeErrors(row, plan.approval.proposed));
  if (errors.length) throw tooLarge(errors);
}

/** Whether one more change request, proposing `proposed`, still fits the user's pending ones. */
function pendingChangeErrors(row: Pick<UserViewRow, 'pending_changes'>, proposed: JsonObject): FieldError[] {
  if (row.pending_changes.length >= MAX_PENDING_CHANGES) {
    return [{ field: 'pending_changes', code: 'too_many', message: `at most ${MAX_PENDING_CHANGES} change requests may be pending for one user; decide one first` }];
  }
  if (jsonBytes(row.pending_changes) + jsonBytes(proposed) > PENDING_CHANGES_MAX_BYTES) {
    return [{ field: 'pending_changes', code: 'too_large', message: `the pending change requests would hold more than ${PENDING_CHANGES_MAX_BYTES} bytes; decide one first` }];
  }
  return [];
}

/** A change request made elsewhere than a PATCH (a relationship held for approval): the same bounds, 422, nothing written. */
export function checkPendingChange(row: Pick<UserViewRow, 'pending_changes'>, proposed: JsonObject): void {
  const errors = pendingChangeErrors(row, proposed);
  if (errors.length) throw tooLarge(errors);
}

/**
 * A user's weight in a list page, cheaply: its metadata, pending changes and required actions (the parts that can be
 * large) measured, the rest counted at a typical 2 KiB. The rest is bounded field by field by the
 * schema (about 5 KiB of text at most), so a page stays within about twice its byte budget even in
 * the worst case, while serialising every user twice would cost the list a fifth of its time.
 */
export function userPageSize(row: { metadata: unknown; pending_changes: unknown[]; required_actions?: unknown[] }): number {
  return 2048 + JSON.stringify(row.metadata).length + (row.pending_changes.length ? JSON.stringify(row.pending_changes).length : 0) +
    // Up to 50 required actions (20 open, 30 resolved) of up to ~800 bytes each.
    (row.required_actions?.length ? JSON.stringify(row.required_actions).length : 0);
}
