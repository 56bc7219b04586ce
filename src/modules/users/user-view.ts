// The stored row ↔ the API's user object, and the patchable document the field policy speaks of.
import type { UserRow } from './users.repo.js';
import type { UserType } from './field-policy.js';
import type { JsonObject } from './merge-patch.js';
import { ADDRESS_FIELDS, BUSINESS_FIELDS, INDIVIDUAL_FIELDS, type UserView } from './users.schemas.js';

export const TYPE_FIELDS: Record<UserType, string[]> = {
  individual: Object.keys(INDIVIDUAL_FIELDS),
  business: Object.keys(BUSINESS_FIELDS),
};
const ADDRESS_KEYS = Object.keys(ADDRESS_FIELDS);
export const SHARED_PATCH_FIELDS = new Set(['type', 'external_ref', 'country', 'email', 'phone', 'address', 'mailing_address', 'metadata', 'tags']);

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function addressView(v: unknown, withCountry: boolean) {
  if (typeof v !== 'object' || v === null) return null;
  const a = v as JsonObject;
  const keys = withCountry ? [...ADDRESS_KEYS, 'country'] : ADDRESS_KEYS;
  return Object.fromEntries(keys.map((k) => [k, a[k] ?? null]));
}

export function toUserView(row: UserRow): UserView {
  const p = row.profile as JsonObject;
  const typeFields = TYPE_FIELDS[row.type as UserType];
  return {
    id: row.id,
    external_ref: row.external_ref,
    type: row.type,
    country: row.country,
    status: row.status,
    status_reason: row.status_reason,
    status_changed_at: row.status_changed_at.toISOString(),
    kyc: { status: row.kyc_status, level: row.kyc_level, verified_at: iso(row.kyc_verified_at) },
    ...Object.fromEntries(typeFields.map((k) => [k, p[k] ?? null])),
    email: (p.email as string | undefined) ?? null,
    phone: (p.phone as string | undefined) ?? null,
    address: addressView(p.address, false),
    mailing_address: addressView(p.mailing_address, true),
    metadata: row.metadata as JsonObject,
    tags: row.tags,
    pending_changes: row.pending_changes,
    legal_hold: row.legal_hold,
    erasure: row.erasure_requested_at
      ? { requested_at: row.erasure_requested_at.toISOString(), scheduled_for: iso(row.erasure_scheduled_for)!, erased_at: iso(row.erased_at) }
      : null,
    version: row.version,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  } as UserView;
}

/** Drops nulls and empty address objects: the stored profile is sparse, the view fills the gaps. */
export function compact(doc: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(doc)) {
    if (v === null || v === undefined) continue;
    if (k === 'address' || k === 'mailing_address') {
      const inner = compact(v as JsonObject);
      if (Object.keys(inner).length) out[k] = inner;
      continue;
    }
    out[k] = v;
  }
  return out;
}

/** The patchable document of a user: profile plus the record-level fields a patch may name. */
export function documentOf(row: UserRow): JsonObject {
  return {
    ...(row.profile as JsonObject),
    external_ref: row.external_ref,
    type: row.type,
    country: row.country,
    metadata: row.metadata,
    tags: row.tags,
  };
}

/** A document back into the columns a write sets. */
export function splitDocument(doc: JsonObject) {
  const { external_ref: _e, type: _t, country: _c, metadata, tags, ...profile } = doc;
  return { profile: compact(profile), metadata: (metadata as JsonObject | undefined) ?? {}, tags: (tags as string[] | undefined) ?? [] };
}
