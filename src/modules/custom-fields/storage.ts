// How tenant-defined values are stored, inside the user's `profile` column (so every path that
// already reads, writes, bounds and erases the profile carries them without a change):
//   profile.custom         the values of non-personal fields, in the clear (searchable by containment)
//   profile.custom_sealed  the values of personal fields, one envelope sealed with the user's data
//                          key: once erasure destroys the key, no copy of them (backups included)
//                          can be read again
//   profile.custom_index   keyed hashes (HMAC under the master key, per tenant) of searchable
//                          personal values: an exact-match search without storing the value in the clear
// The field policy, the patch planner and the change requests see one plain `custom` object
// (`plainRow`); a write turns it back into this form (`storeProfile`) just before it is stored.
// A value whose definition was removed is sealed like a personal one when the user is next
// written: without a definition nothing says it is not personal.
import type { DataKey, Keyring } from '../../crypto/keyring.js';
import type { Db, Tx } from '../../db/database.js';
import type { JsonObject } from '../users/merge-patch.js';
import type { CustomFieldDefinitions } from './definitions.js';

export const CUSTOM_FIELD = 'user.custom';
/** On a user view's `custom` object: the sealed personal values still to be opened (custom-fields.hook.ts). */
export const SEALED = Symbol('kyclo.custom.sealed');

const isObj = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface StoredCustom {
  custom?: JsonObject;
  custom_sealed?: string;
  custom_index?: string[];
}

/** The `custom` of a view before its personal values are opened: the clear ones, the envelope beside them. */
export function customView(profile: StoredCustom): JsonObject {
  const out: JsonObject = isObj(profile.custom) ? { ...profile.custom } : {};
  if (typeof profile.custom_sealed === 'string') Object.defineProperty(out, SEALED, { value: profile.custom_sealed, enumerable: false });
  return out;
}

/** A search token: the tenant and field bind it, so equal values of two tenants or fields never share one. */
export function searchToken(keyring: Pick<Keyring, 'mac'>, tenantId: string, name: string, value: unknown): string {
  return keyring.mac(`custom-search:${tenantId}`, `${name}\n${JSON.stringify(value)}`).slice(0, 32);
}

/** The plain values of a stored profile; personal ones opened with the user's key (none once it is destroyed). */
export async function openCustom(keyring: Keyring, tenantId: string, userId: string, profile: unknown, executor?: Db | Tx): Promise<JsonObject> {
  const p = (profile ?? {}) as StoredCustom;
  const clear = isObj(p.custom) ? p.custom : {};
  if (typeof p.custom_sealed !== 'string') return { ...clear };
  const opened = await keyring.open(tenantId, userId, CUSTOM_FIELD, p.custom_sealed, executor);
  return { ...clear, ...(isObj(opened) ? opened : {}) };
}

/** A row whose profile holds the plain `custom` object (what the field policy and the planner read). */
export function plainRow<R extends { profile: unknown }>(row: R, custom: JsonObject): R {
  const { custom: _c, custom_sealed: _s, custom_index: _i, ...rest } = (row.profile ?? {}) as JsonObject;
  return { ...row, profile: Object.keys(custom).length ? { ...rest, custom } : rest };
}

/**
 * A profile with a plain `custom` back into its stored form: personal values sealed with `key`,
 * search tokens for searchable personal ones. Non-personal values stay in the clear.
 */
export function storeProfile(
  keyring: Pick<Keyring, 'sealWith' | 'mac'>, key: DataKey, tenantId: string, userId: string, profile: JsonObject, defs: CustomFieldDefinitions,
): JsonObject {
  const { custom, custom_sealed: _s, custom_index: _i, ...rest } = profile;
  if (!isObj(custom) || Object.keys(custom).length === 0) return rest;
  const clear: JsonObject = {};
  const personal: JsonObject = {};
  const index: string[] = [];
  for (const [name, value] of Object.entries(custom)) {
    if (value === null || value === undefined) continue;
    const def = Object.hasOwn(defs, name) ? defs[name] : undefined;
    if (def && !def.personal) {
      clear[name] = value;
      continue;
    }
    personal[name] = value;
    if (def?.searchable) index.push(searchToken(keyring, tenantId, name, value));
  }
  const out: JsonObject = { ...rest };
  if (Object.keys(clear).length) out.custom = clear;
  if (Object.keys(personal).length) out.custom_sealed = keyring.sealWith(key, tenantId, userId, CUSTOM_FIELD, personal);
  if (index.length) out.custom_index = index.sort();
  return out;
}
