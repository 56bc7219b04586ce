// The tenant policy: defaults merged with the tenant's overrides, stored on the tenant row.
// Sections: the field policy, the document locks, the capability matrix, the retention period and the rate limit.
import type { Db } from '../../db/database.js';
import { validationFailed } from '../../http/errors.js';
import type { Actor } from '../audit/actor.js';
import { recordChange } from '../audit/write-path.js';
import { effectivePolicy, USER_TYPES, validateOverrides, type FieldOverrides, type FieldPolicy, type UserType } from '../users/field-policy.js';
import { DEFAULT_LOCKED_BY_USER_TYPE, DEFAULT_LOCKED_WHEN_VERIFIED } from '../documents/document-rules.js';
import { DEFAULT_REQUESTS_PER_MINUTE } from '../../http/rate-limit.js';
import { effectiveCapabilities, validateCapabilityOverrides, type CapabilityOverrides } from '../lifecycle/capabilities.js';
import { effectivePropagation, validatePropagation, type Propagation } from '../relationships/relationship-rules.js';
import { normaliseDefinitions, validateDefinitions, type CustomFieldDefinition } from '../custom-fields/definitions.js';
import { AppError } from '../../http/errors.js';

export interface TenantOverrides {
  fields?: FieldOverrides;
  documents?: { locked_when_verified?: string[]; by_user_type?: Partial<Record<UserType, string[]>> };
  capabilities?: CapabilityOverrides;
  retention?: { erasure_after_days: number };
  rate_limit?: { requests_per_minute: number };
  propagation?: Partial<Propagation>;
  custom_fields?: Record<string, Partial<CustomFieldDefinition>>;
}

/**
 * AML retention: personal data of a closed user is kept this long before erasure destroys it. Five
 * years, never fewer: five calendar years hold up to two 29 Februaries, so 1,825 days ended a day or
 * two early whenever one fell inside (a user closed on 2024-03-01 was destroyed on 2029-02-28).
 */
export const DEFAULT_ERASURE_AFTER_DAYS = 1827;
/**
 * The document types a verified user of this type can no longer replace: the tenant's list for the
 * type, else its list for every type (locked_when_verified, as before the lists were per type), else
 * the default for the type.
 */
export const lockedWhenVerified = (o: TenantOverrides, type: UserType): readonly string[] =>
  o.documents?.by_user_type?.[type] ?? o.documents?.locked_when_verified ?? DEFAULT_LOCKED_BY_USER_TYPE[type];
const documentLocks = (o: TenantOverrides) => ({
  locked_when_verified: o.documents?.locked_when_verified ?? DEFAULT_LOCKED_WHEN_VERIFIED,
  by_user_type: Object.fromEntries(USER_TYPES.map((t) => [t, [...lockedWhenVerified(o, t)]])) as Record<UserType, string[]>,
});
export const retentionDays = (o: TenantOverrides) => o.retention?.erasure_after_days ?? DEFAULT_ERASURE_AFTER_DAYS;

const customNames = (o: TenantOverrides) => Object.keys(o.custom_fields ?? {});

const effective = (o: TenantOverrides) => ({
  fields: effectivePolicy(o.fields, customNames(o)),
  documents: documentLocks(o),
  capabilities: effectiveCapabilities(o.capabilities),
  retention: { erasure_after_days: retentionDays(o) },
  rate_limit: { requests_per_minute: o.rate_limit?.requests_per_minute ?? DEFAULT_REQUESTS_PER_MINUTE },
  propagation: effectivePropagation(o.propagation),
  custom_fields: normaliseDefinitions(o.custom_fields),
  overrides: o,
});

export async function loadOverrides(db: Db, tenantId: string): Promise<TenantOverrides> {
  const row = await db.selectFrom('tenants').select('policy').where('id', '=', tenantId).executeTakeFirst();
  return (row?.policy ?? {}) as TenantOverrides;
}

export async function loadFieldPolicy(db: Db, tenantId: string): Promise<FieldPolicy> {
  const o = await loadOverrides(db, tenantId);
  return effectivePolicy(o.fields, customNames(o));
}

export function createPolicyService({ db }: { db: Db }) {
  return {
    async get(actor: Actor) {
      return effective(await loadOverrides(db, actor.tenantId));
    },

    /** Replaces the tenant's overrides (PUT semantics) and answers the new effective policy. */
    async put(actor: Actor, body: TenantOverrides) {
      // A bad definition is its own problem code: the tenant is told which keyword of which field.
      const customErrors = validateDefinitions(body.custom_fields ?? {});
      if (customErrors.length) {
        throw new AppError(400, 'policy.custom_field_invalid', `These custom field definitions are refused: ${customErrors.map((e) => e.field).join(', ')}.`, { errors: customErrors });
      }
      const errors = [
        ...validateOverrides(body.fields ?? {}, customNames(body)), ...validateCapabilityOverrides(body.capabilities ?? {}),
        ...(body.propagation === undefined ? [] : validatePropagation(body.propagation)),
      ];
      if (errors.length) throw validationFailed(errors);
      const overrides: TenantOverrides = {
        fields: body.fields ?? {},
        capabilities: body.capabilities ?? {},
        ...(body.documents ? { documents: body.documents } : {}),
        ...(body.retention ? { retention: body.retention } : {}),
        ...(body.rate_limit ? { rate_limit: body.rate_limit } : {}),
        ...(body.propagation ? { propagation: body.propagation } : {}),
        ...(body.custom_fields ? { custom_fields: body.custom_fields } : {}),
      };
      await db.transaction().execute(async (tx) => {
        const before = await tx.selectFrom('tenants').select('policy').where('id', '=', actor.tenantId).forUpdate().executeTakeFirstOrThrow();
        await tx.updateTable('tenants').set({ policy: JSON.stringify(overrides) }).where('id', '=', actor.tenantId).execute();
        await recordChange(
          tx, actor,
          { action: 'policy.updated', targetType: 'tenant', targetId: actor.tenantId, details: { before: before.policy, after: overrides } },
          { type: 'policy.updated', userId: null, data: { overrides } },
        );
      });
      return effective(overrides);
    },
  };
}

export type PolicyService = ReturnType<typeof createPolicyService>;
