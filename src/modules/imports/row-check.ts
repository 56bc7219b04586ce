// One imported row checked exactly as POST /v1/users checks a body (the same compiled schema, the
// same reference-data checks), plus the state a vendor had established (status, KYC, dates). Pure:
// no database; a row either becomes what the batch insert writes, or a list of field errors.
import type { FieldError } from '../../http/errors.js';
import { isHoldableInstant } from '../../lib/instants.js';
import { fieldErrors } from '../../http/problem.js';
import { bodyValidator } from '../../http/validation.js';
import { CreateUserBody, type CreateUserInput } from '../users/users.schemas.js';
import { checkReferenceData } from '../reference/validate.js';
import { codes } from '../reference/enumerations.js';
import { compact } from '../users/user-view.js';
import { initialStatusProblem } from '../lifecycle/user-status.js';
import type { JsonObject } from '../users/merge-patch.js';
import type { MappedRow } from './profiles/profile.js';

const validateBody = bodyValidator(CreateUserBody);
const STATUSES = new Set(codes('statuses'));
const KYC_STATUSES = new Set(codes('kyc_statuses'));
const KYC_SUB_STATUSES = new Set(codes('kyc_sub_statuses'));
const REASONS = new Set(codes('reason_codes'));
const ORIGINS = new Set(codes('origins'));

export interface CheckedRow {
  external_ref: string;
  source_id: string | null;
  type: 'individual' | 'business';
  country: string;
  profile: JsonObject;
  metadata: JsonObject;
  tags: string[];
  status: string;
  status_reason: string | null;
  status_origin: string;
  status_changed_at: string;
  kyc_status: string;
  kyc_level: number | null;
  kyc_verified_at: string | null;
  kyc_sub_status: string | null;
  created_at: string;
}

const err = (field: string, code: string, message: string): FieldError => ({ field, code, message });

/** An RFC 3339 time (or `YYYY-MM-DD HH:MM:SS`, read as UTC), of years 0001 to 9999, not in the future: its ISO form. */
function instant(field: string, v: string | null | undefined, now: number, errors: FieldError[]): string | null {
  if (v === null || v === undefined) return null;
  const t = Date.parse(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(v) ? `${v.replace(' ', 'T')}Z` : v);
  // Years 0001 to 9999, as written and in UTC (lib/instants.ts).
  if (!/^\d{4}-\d{2}-\d{2}/.test(v) || !isHoldableInstant(v, t)) {
    errors.push(err(field, 'invalid_date_time', 'must be an RFC 3339 date-time of years 0001 to 9999'));
    return null;
  }
  if (t > now + 60_000) {
    errors.push(err(field, 'in_the_future', 'cannot be in the future'));
    return null;
  }
  return new Date(t).toISOString();
}

/** CSV cells arrive as text: the create body's few non-text fields are read back from it. */
export function coerceCsv(user: Record<string, unknown>): void {
  if (user.pep === 'true' || user.pep === 'false') user.pep = user.pep === 'true';
  if (typeof user.monthly_transactions === 'string' && /^\d{1,10}$/.test(user.monthly_transactions)) user.monthly_transactions = Number(user.monthly_transactions);
  if (typeof user.tags === 'string') user.tags = user.tags.split(';').map((t) => t.trim()).filter(Boolean);
}

/**
 * The state no API call can leave a user in, refused as the row's errors. A verification sets
 * kyc.status verified with its date and level, and nothing returns a user to unverified: so a
 * verified user has a date (without one, a later re-verification would unlock its locked documents,
 * field-policy.ts), and an unverified one has neither date nor level. A status cannot change before
 * the user exists: a closure dated decades before the creation would start an erasure's retention
 * then, and the next sweep would destroy the record. Dates already refused are not compared.
 */
function stateProblems(kyc: string, level: number | null, verifiedAt: string | null, undated: boolean, created: string | null, changed: string | null): FieldError[] {
  const out: FieldError[] = [];
  if (kyc === 'verified' && verifiedAt === null && !undated) out.push(err('kyc.verified_at', 'required', 'a verified user has the date it was verified'));
  if (kyc === 'unverified') {
    const never = 'an unverified user was never verified';
    if (verifiedAt !== null) out.push(err('kyc.verified_at', 'without_verification', `${never}: it has no verification date`));
    if (level !== null) out.push(err('kyc.level', 'without_verification', `${never}: it has no level`));
  }
  if (created !== null && changed !== null && Date.parse(changed) < Date.parse(created)) {
    out.push(err('status_changed_at', 'before_created_at', 'a status cannot change before the user was created (created_at)'));
  }
  return out;
}

export function checkRow(m: MappedRow, now = Date.now()): { row: CheckedRow } | { errors: FieldError[] } {
  const errors: FieldError[] = [...m.problems];
  if (m.external_ref === undefined) errors.push(err('external_ref', 'required', 'an import needs external_ref (or the vendor id) to be idempotent'));
  if (!validateBody(m.user)) errors.push(...fieldErrors((validateBody.errors ?? []) as never, 'body'));
  else {
    // The schema's formats have already checked countries, the phone and the time zone against the
    // reference data; what only checkReferenceData knows is left: past dates and metadata's bounds.
    // (Checking the phone twice cost ~35 µs a row: libphonenumber's full metadata is the slow part.)
    const u = m.user as Record<string, unknown>;
    errors.push(...checkReferenceData({ date_of_birth: u.date_of_birth, incorporation_date: u.incorporation_date, metadata: u.metadata }, new Date(now)));
  }
  const s = m.state;
  const status = s.status ?? 'active';
  if (!STATUSES.has(status)) errors.push(err('status', 'not_allowed_value', `must be one of: ${[...STATUSES].join(', ')}`));
  const reason = s.status_reason ?? null;
  if (reason !== null && !REASONS.has(reason)) errors.push(err('status_reason', 'not_allowed_value', 'must be a reason code (GET /v1/enumerations/reason_codes)'));
  const origin = s.status_origin ?? 'operator';
  if (!ORIGINS.has(origin)) errors.push(err('status_origin', 'not_allowed_value', 'must be operator, user or system'));
  const kyc = s.kyc_status ?? 'unverified';
  if (!KYC_STATUSES.has(kyc)) errors.push(err('kyc.status', 'not_allowed_value', `must be one of: ${[...KYC_STATUSES].join(', ')}`));
  const level = s.kyc_level ?? null;
  if (level !== null && !(Number.isInteger(level) && level >= 0 && level <= 10)) errors.push(err('kyc.level', 'invalid_level', 'must be an integer from 0 to 10'));
  const subStatus = s.kyc_sub_status ?? null;
  if (subStatus !== null && !KYC_SUB_STATUSES.has(subStatus)) errors.push(err('kyc.sub_status', 'not_allowed_value', `must be one of: ${[...KYC_SUB_STATUSES].join(', ')}`));
  const statusProblem = initialStatusProblem(status, reason);
  if (statusProblem) errors.push(statusProblem);
  const created = instant('created_at', s.created_at, now, errors);
  const changed = instant('status_changed_at', s.status_changed_at, now, errors);
  const verified = instant('kyc.verified_at', s.kyc_verified_at, now, errors);
  errors.push(...stateProblems(kyc, level, s.kyc_verified_at ?? null, s.kyc_verified_at_from_import === true, created, changed));
  if (errors.length) return { errors };

  const body = m.user as CreateUserInput;
  const { type, external_ref: _e, country, metadata, tags, ...rest } = body;
  const importedAt = new Date(now).toISOString();
  // A source that dates a status change but not the user's creation: the user existed by then, so it
  // is created no later than that change (the import's time would put its history before its creation).
  const at = created ?? (changed !== null && changed < importedAt ? changed : importedAt);
  // A status other than active that the source gives no date for counts from the import, never from
  // the user's creation: a closed user's status date starts its AML retention, and the creation date
  // (years back) let an erasure destroy the record years early. The import is
  // never before the real closure, so the retention this counts is never short.
  const statusAt = changed ?? (status === 'active' ? at : importedAt);
  // Verified without a date gets here only from a vendor that keeps none: as of the import, likewise.
  return {
    row: {
      external_ref: m.external_ref!, source_id: m.source_id, type, country, profile: compact(rest as JsonObject),
      metadata: (metadata ?? {}) as JsonObject, tags: tags ?? [], status, status_reason: reason, status_origin: origin,
      status_changed_at: statusAt, kyc_status: kyc, kyc_level: level, kyc_verified_at: verified ?? (kyc === 'verified' ? importedAt : null),
      kyc_sub_status: subStatus, created_at: at,
    },
  };
}
