// Required actions as pure data: what the user must still provide (a field or a document), each
// open until it arrives (fulfilled) or an operator cancels it. They live on the user row, a small
// bounded list shown on every read; the rules here decide, the service writes.
import type { RequiredAction } from '../../db/database.js';

/** Open actions one user may have at once; a platform that needs more is asking for a different process. */
export const MAX_OPEN = 20;
/** Resolved actions kept on the row beside the open ones; older ones live on in the audit log and events. */
export const KEEP_RESOLVED = 30;

/** Codes that name what they need: a field, or a document. The others may name either, or neither. */
export const NEEDS: Record<string, 'field' | 'document_type' | null> = {
  provide_field: 'field',
  provide_document: 'document_type',
  renew_document: 'document_type',
  confirm_information: null,
  complete_questionnaire: null,
  other: null,
};

export interface NewAction {
  code: string;
  field?: string | null;
  document_type?: string | null;
  message?: string | null;
  due_at?: string | null;
}

export interface RuleError {
  field: string;
  code: string;
  message: string;
}

/** The checks a new action must pass; `knownFields` are the fields of the user's type the policy names. */
export function checkNew(input: NewAction, knownFields: readonly string[], open: number, now = new Date()): RuleError[] {
  const errors: RuleError[] = [];
  const need = NEEDS[input.code];
  if (input.field && input.document_type) {
    errors.push({ field: 'document_type', code: 'one_of', message: 'name a field or a document_type, not both' });
  }
  if (need && !input[need]) errors.push({ field: need, code: 'required', message: `${input.code} needs ${need}` });
  if (input.field) {
    // A leaf (`address.line1`) or the object it belongs to (`address`, `employer`).
    const known = knownFields.some((f) => f === input.field || f.startsWith(`${input.field}.`));
    if (!known || ['country', 'type', 'external_ref'].includes(input.field)) {
      errors.push({ field: 'field', code: 'unknown_field', message: `${input.field} is not a field this user can provide` });
    }
  }
  if (input.due_at && new Date(input.due_at) <= now) errors.push({ field: 'due_at', code: 'in_the_past', message: 'must be in the future' });
  if (open >= MAX_OPEN) errors.push({ field: 'code', code: 'too_many_open', message: `a user has at most ${MAX_OPEN} open required actions` });
  return errors;
}

/** The list with `added` at the end, and resolved actions beyond KEEP_RESOLVED (oldest first) dropped. */
export function withAction(actions: RequiredAction[], added: RequiredAction): RequiredAction[] {
  const all = [...actions, added];
  const resolved = all.filter((a) => a.status !== 'open');
  const drop = new Set(resolved.slice(0, Math.max(0, resolved.length - KEEP_RESOLVED)).map((a) => a.id));
  return all.filter((a) => !drop.has(a.id));
}

/** Does a value arriving at `path` provide what the action asks for? */
const provides = (action: RequiredAction, arrived: { fields?: readonly string[]; documentType?: string }) =>
  action.status === 'open' &&
  ((action.field !== null && (arrived.fields ?? []).some((f) => f === action.field || f.startsWith(`${action.field}.`))) ||
    (action.document_type !== null && action.document_type === arrived.documentType));

/**
 * The open actions the arrival of these fields (with a value) or this document fulfils, and the list
 * with them marked fulfilled; `fulfilled` is empty when nothing changes.
 */
export function fulfil(
  actions: RequiredAction[], arrived: { fields?: readonly string[]; documentType?: string }, at = new Date().toISOString(),
): { next: RequiredAction[]; fulfilled: RequiredAction[] } {
  const fulfilled: RequiredAction[] = [];
  const next = actions.map((a) => {
    if (!provides(a, arrived)) return a;
    const done = { ...a, status: 'fulfilled' as const, resolved_at: at };
    fulfilled.push(done);
    return done;
  });
  return { next, fulfilled };
}
