// The `kyclo` profile: rows shaped as POST /v1/users takes them, or as GET /v1/users and the export
// answer them (so an export imports back as it is). Lifecycle fields the API never lets a body set
// (status, kyc, created_at) are the imported state here; the rest is the create body.
import type { ImportProfile, MappedRow } from './profile.js';
import { present } from './profile.js';
import { RESERVED_KEYS } from '../formats.js';

// A user object's fields that are the record's own bookkeeping, not something to import.
// (pending changes are proposals of the source's officers; a legal hold, a risk rating and required
// actions are the source's own compliance decisions, each recorded there with its reason and history:
// this tenant's officers set them again through their routes. `erasure` is never dropped silently:
// a row that carries one is refused, see erasureProblem.)
const DROPPED = new Set([
  'id', 'version', 'updated_at', 'pending_changes', 'erasure', 'legal_hold', 'risk', 'required_actions', 'verifications', 'status_changes', 'documents',
]);

/**
 * A user whose erasure was requested at the source is refused: imported, it would hold its whole
 * profile here with no erasure scheduled (a closed user is not destroyed until erasure is asked), so
 * the person's request would be undone by a copy. One already erased (its tombstone: nothing personal
 * is left) is refused too: it would come back as a user. Erase at the source, or not at all.
 */
function erasureProblem(erasure: unknown): MappedRow['problems'][number] | undefined {
  if (!present(erasure)) return undefined;
  if (typeof erasure === 'object' && present((erasure as Record<string, unknown>).erased_at)) {
    return { field: 'erasure', code: 'erased', message: 'this user was erased at its source: an import does not bring it back' };
  }
  return {
    field: 'erasure', code: 'erasure_pending',
    message: 'this user awaits erasure at its source: imported, it would keep its personal data with no erasure scheduled; it is not imported',
  };
}

export const kycloProfile: ImportProfile = {
  name: 'kyclo',
  summary: "Kyclo's own user objects (the create body, or GET /v1/users and the export's lines)",
  // GET /v1/exports/users ends with a trailer {count, snapshot_at, next_cursor}.
  skip: (record) => !('type' in record) && 'next_cursor' in record && 'snapshot_at' in record,
  map(record): MappedRow {
    const { status, status_reason, status_origin, kyc, kyc_status, kyc_level, kyc_verified_at, kyc_sub_status, created_at, status_changed_at, ...rest } = record;
    const user: Record<string, unknown> = {};
    const problems: MappedRow['problems'] = [];
    const erasure = erasureProblem(record.erasure);
    if (erasure) problems.push(erasure);
    for (const [k, v] of Object.entries(rest)) {
      // A reserved key never gets here (the import rejects its row first); never copied, should one.
      if (DROPPED.has(k) || v === null || RESERVED_KEYS.has(k)) continue;
      // An exported identifier number is masked (*****1234): it is not the number, so it is left out.
      if (k === 'tax_number' && typeof v === 'string' && v.startsWith('*')) continue;
      user[k] = v;
    }
    // The export writes every address field, null where empty: an all-null address is no address.
    for (const a of ['address', 'mailing_address']) {
      const v = user[a];
      if (v && typeof v === 'object' && Object.values(v).every((x) => x === null)) delete user[a];
      else if (v && typeof v === 'object') user[a] = Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null));
    }
    const k = (kyc && typeof kyc === 'object' ? kyc : {}) as Record<string, unknown>;
    const level = k.level ?? kyc_level;
    return {
      // A user without a reference of the platform's gets the source's id as one, as vendors' records do.
      external_ref: typeof record.external_ref === 'string' ? record.external_ref : typeof record.id === 'string' ? `kyclo:${record.id}` : undefined,
      source_id: typeof record.id === 'string' ? record.id : null,
      user,
      state: {
        status: present(status) ? String(status) : undefined,
        status_reason: present(status_reason) ? String(status_reason) : null,
        status_origin: present(status_origin) ? String(status_origin) : undefined,
        status_changed_at: present(status_changed_at) ? String(status_changed_at) : null,
        kyc_status: present(k.status ?? kyc_status) ? String(k.status ?? kyc_status) : undefined,
        kyc_level: present(level) ? (typeof level === 'number' ? level : Number(level)) : null,
        kyc_verified_at: present(k.verified_at ?? kyc_verified_at) ? String(k.verified_at ?? kyc_verified_at) : null,
        kyc_sub_status: present(k.sub_status ?? kyc_sub_status) ? String(k.sub_status ?? kyc_sub_status) : null,
        created_at: present(created_at) ? String(created_at) : null,
      },
      moved: {},
      problems,
    };
  },
};
