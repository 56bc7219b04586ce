import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, errors } from '../../http/schemas.js';
import { OUTCOMES } from '../users/field-policy.js';
import { DOCUMENT_TYPES } from '../documents/document-rules.js';
import type { PolicyService } from './policy.service.js';

const Outcome = Type.Enum([...OUTCOMES]);
const FieldTable = Type.Record(Type.String(), Outcome, { description: 'field (dotted for addresses) → outcome' });
const ByState = Type.Object({ unverified: FieldTable, verified: FieldTable });
const FieldPolicy = Type.Object({ individual: ByState, business: ByState }, { title: 'FieldPolicy', description: 'user type → KYC state → field → outcome' });

// Overrides are checked cell by cell by the policy module, so its errors name the exact path and
// what is wrong (unknown_user_type, unknown_kyc_state, unknown_field, unknown_outcome).
const Overrides = Type.Record(Type.String(), Type.Record(Type.String(), Type.Record(Type.String(), Type.String({ maxLength: 32, description: OUTCOMES.join(' | ') }))), {
  description: '{ individual|business: { unverified|verified: { field: outcome } } } — any subset',
});
// What the tenant set, as answered: only valid overrides are ever stored.
const StoredOverrides = (() => {
  const byState = Type.Object({ unverified: Type.Optional(Type.Record(Type.String(), Outcome)), verified: Type.Optional(Type.Record(Type.String(), Outcome)) }, { additionalProperties: false });
  return Type.Object({ individual: Type.Optional(byState), business: Type.Optional(byState) }, { additionalProperties: false, title: 'FieldPolicyOverrides' });
})();

const Ops = Type.Object({ deposits: Type.Boolean(), withdrawals: Type.Boolean(), exchanges: Type.Boolean(), card_transactions: Type.Boolean() });
const CapabilityMatrix = Type.Object(
  { active: Ops, flagged: Ops, suspended: Ops, blocked: Ops, closed: Ops },
  { description: 'status → operation → allowed (KYC must also be verified; suspended, blocked and closed never transact)' },
);
const CapabilityOverrides = Type.Record(Type.String(), Type.Record(Type.String(), Type.Boolean()), {
  description: '{ active|flagged: { deposits|withdrawals|exchanges|card_transactions: bool } } — any subset; suspended, blocked and closed are freezes and refuse overrides (400 immutable)',
});

const Retention = Type.Object(
  { erasure_after_days: Type.Integer({ minimum: 0, maximum: 36500, description: 'Days from closure until an erasure request destroys personal data (0 allowed; default 1827: five years, leap days included)' }) },
  { additionalProperties: false },
);

const RateLimit = Type.Object(
  { requests_per_minute: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Per API key, over a 60 s window (default 6000)' }) },
  { additionalProperties: false },
);

const LockList = (description: string) => Type.Array(Type.Enum(DOCUMENT_TYPES), { uniqueItems: true, maxItems: DOCUMENT_TYPES.length, description });
const EVERY_TYPE = 'Document types that cannot be replaced once a user of any type is verified (422 document.locked), unless by_user_type names that type';
const BY_TYPE = 'Per user type (issue 16 §2): the types locked for a verified user of that type; default individual ssn, business ein and certificate_of_incorporation';
const Documents = Type.Object(
  {
    locked_when_verified: Type.Optional(LockList(EVERY_TYPE)),
    by_user_type: Type.Optional(Type.Object({ individual: Type.Optional(LockList('A verified individual')), business: Type.Optional(LockList('A verified business')) }, { additionalProperties: false, description: BY_TYPE })),
  },
  { additionalProperties: false },
);
const EffectiveDocuments = Type.Object({
  locked_when_verified: LockList(`${EVERY_TYPE}; by default the union of the per-type defaults`),
  by_user_type: Type.Object({ individual: LockList('A verified individual'), business: LockList('A verified business') }, { description: `${BY_TYPE}. What applies.` }),
});

const Propagation = Type.Object(
  {
    ownership_threshold_percent: Type.Optional(Type.Number({ description: 'Ultimate ownership (chains multiplied) from which a related party’s status propagates; default 25' })),
    statuses: Type.Optional(Type.Array(Type.String({ maxLength: 32 }), {
      maxItems: 8, description: 'Statuses of a related party that deny the user’s capabilities (related_party_<status>): blocked, suspended, flagged; default blocked and suspended; empty turns propagation off',
    })),
  },
  { additionalProperties: true, description: 'Checked value by value by the policy module, so its errors name the exact path' },
);

// A tenant's own fields. The body is checked keyword by keyword by the custom-fields module (its
// errors name the path: custom_fields.<name>.schema.…), so the schema here only describes the shape.
const CustomFieldSchema = Type.Object({ type: Type.String({ description: 'string | number | integer | boolean | object (a date is a string with format date)' }) }, {
  additionalProperties: true, title: 'CustomFieldSchema',
  description:
    'A subset of JSON Schema: string (minLength, maxLength ≤ 2000 — default 200, pattern in RE2 syntax ≤ 200 characters, enum of ≤ 100, format date), ' +
    'number and integer (minimum, maximum), boolean, and object (properties of those or of one more object level, required; at most 20 properties). ' +
    'description and title anywhere. Any other keyword answers 400 policy.custom_field_invalid.',
});
const CustomFieldDefinition = Type.Object(
  {
    schema: CustomFieldSchema,
    personal: Type.Boolean({ description: 'Sealed with the user’s data key at rest and destroyed by erasure (default false)' }),
    searchable: Type.Boolean({ description: 'Exact-match search with GET /v1/users?custom=<name>:<value>; scalar types only (default false)' }),
    description: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { title: 'CustomFieldDefinition' },
);
const CustomFieldDefinitions = Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_]{0,39}$' }), CustomFieldDefinition, {
  description: 'Tenant-defined fields by name; their values are under `custom` on the user, their outcomes under `fields` as custom.<name> (default allow)',
});
const CustomFieldsInput = Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), {
  maxProperties: 100,
  description: '{ <name>: { schema, personal?, searchable?, description? } }: at most 50 fields, each ≤ 2 KiB, all ≤ 24 KiB. Removing a definition keeps its stored values, readable and frozen.',
});

const PolicyDocument = Type.Object({
  fields: FieldPolicy,
  documents: EffectiveDocuments,
  capabilities: CapabilityMatrix,
  retention: Retention,
  rate_limit: RateLimit,
  propagation: Type.Object({ ownership_threshold_percent: Type.Number(), statuses: Type.Array(Type.String()) }),
  custom_fields: CustomFieldDefinitions,
  overrides: Type.Object(
    {
      fields: Type.Optional(StoredOverrides), documents: Type.Optional(Documents), capabilities: Type.Optional(CapabilityOverrides), retention: Type.Optional(Retention),
      rate_limit: Type.Optional(RateLimit), propagation: Type.Optional(Propagation), custom_fields: Type.Optional(CustomFieldsInput),
    },
    { description: 'What the tenant set; the rest are defaults' },
  ),
}, { title: 'Policy', description: 'The effective tenant policy: defaults merged with the tenant\'s overrides' });

export function policyRoutes(policy: PolicyService) {
  return async (app: FastifyInstance) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();
    r.get('/v1/policy', {
      config: { permission: 'tenant:admin' },
      schema: {
        operationId: 'getPolicy',
        tags: ['Policy'],
        summary: 'The effective tenant policy (defaults merged with overrides)',
        response: { 200: { ...PolicyDocument, description: 'The effective policy' }, ...errors(...AUTH_ERRORS) },
      },
      handler: async (req) => policy.get(req.actor),
    });
    r.put('/v1/policy', {
      config: { permission: 'tenant:admin' },
      schema: {
        operationId: 'putPolicy',
        tags: ['Policy'],
        summary: "Replace the tenant's overrides; answers the new effective policy",
        description:
          'Unknown user types, KYC states, fields or outcomes answer 400 naming the path; country, type and ' +
          'external_ref can never be made writable. Audited, and an event policy.updated is emitted. ' +
          'A custom field definition the service will not run (unknown type or keyword, objects deeper than 2, a pattern RE2 cannot compile, too large) answers 400 policy.custom_field_invalid naming the path.',
        body: Type.Object(
          {
            fields: Type.Optional(Overrides), documents: Type.Optional(Documents), capabilities: Type.Optional(CapabilityOverrides), retention: Type.Optional(Retention),
            rate_limit: Type.Optional(RateLimit), propagation: Type.Optional(Propagation), custom_fields: Type.Optional(CustomFieldsInput),
          },
          { additionalProperties: false },
        ),
        response: { 200: { ...PolicyDocument, description: 'The new effective policy' }, ...errors(...AUTH_ERRORS, 413, 415) },
      },
      handler: async (req) => policy.put(req.actor, req.body as never),
    });
  };
}
