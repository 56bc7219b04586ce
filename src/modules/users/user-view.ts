// The stored row ↔ the API's user object, and the patchable document the field policy speaks of.
import type { UserViewRow, ViewedRow } from './users.repo.js';
import type { UserType } from './field-policy.js';
import { NESTED_FIELDS, type JsonObject } from './merge-patch.js';
import { maskNumber } from '../documents/document-rules.js';
import { maskIdentifiers } from '../events/personal.js';
import { customView } from '../custom-fields/storage.js';
import { ADDRESS_FIELDS, BUSINESS_FIELDS, INDIVIDUAL_FIELDS, OBJECT_FIELDS, type UserView } from './users.schemas.js';

/** The scalar profile fields of each type (a view's plain values). */
const SCALAR_FIELDS: Record<UserType, string[]> = {
  individual: Object.keys(INDIVIDUAL_FIELDS),
  business: Object.keys(BUSINESS_FIELDS),
};
/** The small objects of each type's profile (employer, FATCA/CRS, sanctions) with their leaves. */
const OBJECTS: Record<UserType, Record<string, string[]>> = {
  individual: Object.fromEntries(Object.entries(OBJECT_FIELDS.individual).map(([k, v]) => [k, Object.keys(v)])),
  business: Object.fromEntries(Object.entries(OBJECT_FIELDS.business).map(([k, v]) => [k, Object.keys(v)])),
};
/** Every top-level profile field a user of this type has, besides the shared ones. */
export const TYPE_FIELDS: Record<UserType, string[]> = {
  individual: [...SCALAR_FIELDS.individual, ...Object.keys(OBJECTS.individual)],
  business: [...SCALAR_FIELDS.business, ...Object.keys(OBJECTS.business)],
};
const ADDRESS_KEYS = Object.keys(ADDRESS_FIELDS);
export const SHARED_PATCH_FIELDS = new Set(['type', 'external_ref', 'country', 'email', 'phone', 'address', 'mailing_address', 'metadata', 'tags', 'custom']);

const iso = (d: Date | string | null) => (d === null ? null : typeof d === 'string' ? d : d.toISOString());

function addressView(v: unknown, withCountry: boolean) {
  if (typeof v !== 'object' || v === null) return null;
  const a = v as JsonObject;
  const out: JsonObject = {};
  for (const k of ADDRESS_KEYS) out[k] = a[k] ?? null;
  if (withCountry) out.country = a.country ?? null;
  return out;
}

/** A stored object field with every leaf present (null when absent), or null when none is set. */
function objectView(v: unknown, keys: string[]) {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as JsonObject;
  const out: JsonObject = {};
  for (const k of keys) out[k] = o[k] ?? null;
  return out;
}

const key = (k: string) => JSON.stringify(k);

/**
 * The view of one user type as a single object literal, compiled once from the schema's field map.
 * A loop over the fields (`view[k] = p[k]`) cost 3.5 µs a user here, mostly in lookups and stores by
 * computed key, and left each view a slow-mode object that JSON serialisation then crawled; the
 * literal costs well under a tenth of a microsecond and gives every view of a type one shape. The
 * keys come only from TYPE_FIELDS (the schema's own names), quoted with JSON.stringify.
 */
function compileView(type: UserType, unmasked: boolean): (row: ViewedRow) => UserView {
  const fields = SCALAR_FIELDS[type];
  const objects = Object.entries(OBJECTS[type]).map(([k, leaves]) => `${key(k)}: objectView(p[${key(k)}], ${JSON.stringify(leaves)})`);
  const value = (k: string) => (MASKED.has(k) && !unmasked ? `mask(p[${key(k)}])` : `p[${key(k)}] ?? null`);
  const body = `const p = row.profile;
    return {
      id: row.id, external_ref: row.external_ref, type: row.type, country: row.country, status: row.status,
      status_reason: row.status_reason, status_changed_at: iso(row.status_changed_at),
      kyc: { status: row.kyc_status, level: row.kyc_level, verified_at: iso(row.kyc_verified_at), sub_status: row.kyc_sub_status ?? null },
      ${fields.map((k) => `${key(k)}: ${value(k)}`).join(', ')},
      email: p.email ?? null, phone: p.phone ?? null,
      address: addressView(p.address, false), mailing_address: addressView(p.mailing_address, true),
      ${objects.join(', ')},
      risk: row.risk ?? null, required_actions: row.required_actions ?? [],
      metadata: row.metadata, tags: row.tags, custom: customView(p), pending_changes: pending(row.pending_changes), legal_hold: row.legal_hold,
      erasure: row.erasure_requested_at
        ? { requested_at: iso(row.erasure_requested_at), scheduled_for: iso(row.erasure_scheduled_for), erased_at: iso(row.erased_at) }
        : null,
      version: row.version, created_at: iso(row.created_at), updated_at: iso(row.updated_at),
    };`;
  return new Function('iso', 'addressView', 'objectView', 'mask', 'customView', 'pending', `return function userView(row) { ${body} }`)(iso, addressView, objectView, mask, customView, pending);
}

/** Identifier numbers: answered masked (*****1234) everywhere but the GDPR export. */
const MASKED = new Set(['tax_number']);
const mask = (v: unknown) => (typeof v === 'string' ? maskNumber(v) : null);
/** Change requests listed on the user: proposed identifier numbers masked (rows written before they were stored masked). */
const pending = (list: unknown[]) => (list.length ? maskIdentifiers(list) : list);

const VIEWS: Record<UserType, (row: ViewedRow) => UserView> = {
  individual: compileView('individual', false),
  business: compileView('business', false),
};
const UNMASKED_VIEWS: Record<UserType, (row: ViewedRow) => UserView> = {
  individual: compileView('individual', true),
  business: compileView('business', true),
};

/** The API's user object, from a row with Dates or with timestamps already ISO strings; identifier numbers masked. */
export function toUserView(row: ViewedRow): UserView {
  return VIEWS[row.type as UserType](row);
}

/** The user object with identifier numbers whole: the data subject's own copy (GDPR export) only. */
export function toUnmaskedUserView(row: ViewedRow): UserView {
  return UNMASKED_VIEWS[row.type as UserType](row);
}

/**
 * Drops nulls and empty nested objects (addresses, employer…): the stored profile is sparse, the view
 * fills the gaps. Only top-level names are nested fields: the employer's `address` is a string.
 */
const COMPACTED = new Set<string>(NESTED_FIELDS.filter((f) => f !== 'custom')); // custom values are kept as stored (custom-fields/storage.ts)
export function compact(doc: JsonObject, nested = true): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(doc)) {
    if (v === null || v === undefined) continue;
    if (nested && COMPACTED.has(k) && typeof v === 'object') {
      const inner = compact(v as JsonObject, false);
      if (Object.keys(inner).length) out[k] = inner;
      continue;
    }
    out[k] = v;
  }
  return out;
}

/** The patchable document of a user: profile plus the record-level fields a patch may name. */
export function documentOf(row: UserViewRow): JsonObject {
  // The spread comes last and the record fields are set again after it: properties written after a
  // spread are slow map transitions in V8 (≈ 2 µs each here), stores to existing ones are not. The
  // record's own values win, as they must (a stored profile never holds these names anyway).
  const doc: JsonObject = { external_ref: null, type: null, country: null, metadata: null, tags: null, ...(row.profile as JsonObject) };
  doc.external_ref = row.external_ref;
  doc.type = row.type;
  doc.country = row.country;
  doc.metadata = row.metadata;
  doc.tags = row.tags;
  return doc;
}

/** A document back into the columns a write sets. */
export function splitDocument(doc: JsonObject) {
  const { external_ref: _e, type: _t, country: _c, metadata, tags, ...profile } = doc;
  return { profile: compact(profile), metadata: (metadata as JsonObject | undefined) ?? {}, tags: (tags as string[] | undefined) ?? [] };
}
