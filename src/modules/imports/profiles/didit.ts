// The `didit` profile: Didit's user objects (GET /v3/users/).
// - external_ref: vendor_data, the platform's own reference (case-sensitive, as Didit keeps it).
// - status ACTIVE / FLAGGED / BLOCKED → active / flagged / blocked.
// - full_name of exactly two words becomes first and last name; any other shape is ambiguous and
//   the row is rejected (first_name and last_name given alongside win).
// - display_name → display_name (the compliance profile's, mutable in Didit as in Kyclo).
// - Didit's metadata becomes the user's metadata; its tags the user's tags; portrait_image (a
//   biometric) is not imported; everything else Didit knows goes to metadata.didit.
// - Didit has no country: a record must carry `country` (added to the export) or it is rejected.
import type { FieldError } from '../../../http/errors.js';
import type { ImportProfile, MappedRow } from './profile.js';
import { present, str } from './profile.js';
import { mapping, toE164, vendorTime } from './convert.js';

const STATUSES: Record<string, string> = { ACTIVE: 'active', FLAGGED: 'flagged', BLOCKED: 'blocked' };

export const diditProfile: ImportProfile = {
  name: 'didit',
  summary: 'Didit user objects (vendor_data, display_name, status, metadata, tags)',
  map(r): MappedRow {
    const m = mapping('didit', r);
    const problems: FieldError[] = [];
    const ref = str(r.vendor_data);
    const sourceId = present(r.id) ? String(r.id) : ref ?? null;
    m.take('vendor_data', 'id');
    m.set('type', 'individual');
    const country = str(r.country);
    m.set('country', country);
    m.take('country');
    let first = str(r.first_name);
    let last = str(r.last_name);
    m.take('first_name', 'last_name');
    if ((!first || !last) && present(r.full_name)) {
      const words = String(r.full_name).trim().split(/\s+/);
      if (words.length === 2) [first, last] = words as [string, string];
      else problems.push({ field: 'full_name', code: 'ambiguous_name', message: 'only a name of two words splits into first and last name unambiguously: give first_name and last_name' });
      m.take('full_name');
    }
    m.set('first_name', first);
    m.set('last_name', last);
    m.set('display_name', r.display_name);
    m.set('date_of_birth', str(r.date_of_birth));
    m.set('email', r.email);
    m.take('display_name', 'date_of_birth', 'email');
    const phone = toE164(r.phone, country);
    if (phone) {
      m.set('phone', phone);
      m.take('phone');
    } else m.keep('phone', r.phone, 'not a valid phone number');
    if (r.metadata && typeof r.metadata === 'object' && !Array.isArray(r.metadata)) m.set('metadata', r.metadata);
    if (Array.isArray(r.tags)) m.set('tags', r.tags.map((t) => (typeof t === 'object' && t ? String((t as { name?: unknown }).name ?? '') : String(t))).filter(Boolean));
    m.take('metadata', 'tags');
    m.drop('portrait_image', 'a biometric image: not kept in metadata');
    const status = STATUSES[String(r.status ?? 'ACTIVE').toUpperCase()];
    if (!status) problems.push({ field: 'status', code: 'not_allowed_value', message: 'must be ACTIVE, FLAGGED or BLOCKED' });
    m.take('status', 'created_at');
    m.finish(sourceId);
    return {
      external_ref: ref ?? (sourceId ? `didit:${sourceId}` : undefined),
      source_id: sourceId,
      user: m.user,
      state: { status: status ?? 'active', status_reason: status === 'blocked' || status === 'flagged' ? 'other' : null, status_origin: 'operator', created_at: vendorTime(r.created_at) ?? null },
      moved: m.moved,
      problems,
    };
  },
};
