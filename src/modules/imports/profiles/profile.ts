// What a profile is: a pure function from one vendor record to what Kyclo imports, plus the names of
// the vendor's fields that had no Kyclo home and where they went (the import's report lists them).
// No I/O, no database: each profile is tested on its vendor's own example records.
import type { FieldError } from '../../../http/errors.js';

export interface ImportedState {
  status?: string;
  status_reason?: string | null;
  status_origin?: string;
  status_changed_at?: string | null;
  kyc_status?: string;
  kyc_level?: number | null;
  kyc_verified_at?: string | null;
  /**
   * The vendor's records hold no verification date (Treezor, SEND; MatchMove's may not): a verified
   * user without one is verified as of the import. Kyclo's own rows always carry it: there a
   * verified user without one is refused.
   */
  kyc_verified_at_from_import?: boolean;
  /** The finer KYC step (kyc_sub_statuses), as the vendor had it. */
  kyc_sub_status?: string | null;
  created_at?: string | null;
}

export interface MappedRow {
  /** The platform's own reference (the idempotency key of an import). */
  external_ref?: string;
  /** The vendor's id of the record, always kept (in the audit entry and in metadata.source). */
  source_id: string | null;
  /** A POST /v1/users body: validated exactly as the API validates one. */
  user: Record<string, unknown>;
  /** The state the vendor had established: status, KYC, dates. */
  state: ImportedState;
  /** Vendor field → where it went (`metadata.<profile>.<field>`), for the report. */
  moved: Record<string, string>;
  /** Values that could not be converted unambiguously: the row is rejected with these. */
  problems: FieldError[];
}

export interface ImportProfile {
  name: string;
  /** One line for the CLI's help and the README. */
  summary: string;
  map(record: Record<string, unknown>): MappedRow;
  /** A record that is no user (an export's trailer line): skipped, not counted. */
  skip?(record: Record<string, unknown>): boolean;
}

/** Vendors write absent values as "", null, 0000-00-00 or 0000-00-00 00:00:00: all absent here. */
export function present(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'string') {
    const t = v.trim();
    return t !== '' && !/^0000-00-00( 00:00:00)?$/.test(t);
  }
  return true;
}

export const str = (v: unknown): string | undefined => (present(v) ? String(v).trim() : undefined);

/** Copies the present entries of `pairs` into `into`, leaving absent ones out. */
export function assign(into: Record<string, unknown>, pairs: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(pairs)) if (present(v)) into[k] = v;
}
