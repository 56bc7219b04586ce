// The user record's shapes, each field defined once; create, patch and response schemas are
// derived from the same field maps so they cannot disagree.
import { Type, type TSchema, type TProperties, type TUnion, type TNull, type TOptional, type Static } from 'typebox';
import { codes } from '../reference/enumerations.js';
import { Cursor, Id, Limit, Text } from '../../http/schemas.js';

const Enum = (name: Parameters<typeof codes>[0]) => Type.Enum(codes(name), { description: `See GET /v1/enumerations/${name}` });
export const CountryCode = Type.String({ format: 'country', pattern: '^[A-Z]{2}$', title: 'CountryCode', description: 'An ISO 3166-1 alpha-2 code that exists (format country); otherwise 400 invalid_country' });
const Phone = Type.String({ format: 'phone', pattern: '^\\+[1-9][0-9]{6,14}$', title: 'PhoneNumber', description: 'A dialable number in E.164 form (format phone); otherwise 400 invalid_phone' });
const Email = Type.String({ format: 'email', maxLength: 254 });
const DateOnly = Type.String({ format: 'date', description: 'YYYY-MM-DD, a real calendar date' });

export const ADDRESS_FIELDS = {
  line1: Text(200), line2: Text(200), line3: Text(200), city: Text(100), state: Text(100), postcode: Text(20),
};
const MAILING_FIELDS = { ...ADDRESS_FIELDS, country: CountryCode };

// The compliance profile's plain fields, on both user types (issue 16 §2).
export const COMPLIANCE_FIELDS = {
  purpose_of_account: Enum('account_purposes'),
  terms_accepted_at: Type.String({ format: 'date-time', description: 'When the user accepted the platform’s terms' }),
  email_verified: Type.Boolean({ description: 'The platform verified the email address (set by the platform)' }),
  phone_verified: Type.Boolean({ description: 'The platform verified the phone number (set by the platform)' }),
  mobile: Phone,
  display_name: Text(100, { description: 'The name shown in the platform (Didit)' }),
};

export const INDIVIDUAL_FIELDS = {
  title: Enum('titles'),
  first_name: Text(100),
  middle_name: Text(100),
  last_name: Text(100),
  maiden_name: Text(100),
  preferred_name: Text(100),
  gender: Enum('genders'),
  date_of_birth: DateOnly,
  place_of_birth: Text(100),
  birth_country: CountryCode,
  nationality: CountryCode,
  occupation: Text(100),
  employment_type: Enum('employment_types'),
  income_range: Enum('income_ranges'),
  source_of_funds: Enum('sources_of_funds'),
  tax_residence: CountryCode,
  tax_number: Text(64),
  pep: Type.Boolean({ description: 'Politically exposed person (self-declared)' }),
  language: Type.String({ pattern: '^[a-z]{2}(-[A-Z]{2})?$', description: 'ISO 639-1, optionally with a region' }),
  timezone: Type.String({ maxLength: 64, format: 'timezone', description: 'IANA time zone, e.g. Europe/Paris (format timezone); otherwise 400 invalid_timezone' }),
  // Compliance profile (issue 16 §2): MatchMove's marital status, SEND's user_scope.
  marital_status: Enum('marital_statuses'),
  business_scope: Text(100, { description: "The individual's line of business (SEND user_scope, e.g. COMPUTER_TECHNOLOGY)" }),
  ...COMPLIANCE_FIELDS,
};

export const BUSINESS_FIELDS = {
  legal_name: Text(200),
  registration_number: Text(64),
  vat_number: Text(64),
  incorporation_date: DateOnly,
  legal_form: Text(100),
  website: Type.String({ format: 'uri', maxLength: 2048, pattern: '^https?://' }),
  employees_range: Enum('employees_ranges'),
  monthly_transactions: Type.Integer({ minimum: 0, maximum: 1_000_000_000, description: 'Expected transactions per month' }),
  transaction_frequency: Enum('transaction_frequencies'),
  sector: Text(100),
  ...COMPLIANCE_FIELDS,
};


// Compliance fields that are small objects: merged and decided leaf by leaf (`employer.name`), like addresses.
export const EMPLOYER_FIELDS = { name: Text(200), address: Text(300), phone: Phone };
export const FATCA_CRS_FIELDS = {
  relevant: Type.Boolean({ description: 'The user is a US person (FATCA) or reportable under the CRS' }),
  confirmed_at: Type.String({ format: 'date-time', description: 'When the user confirmed the declaration' }),
};
export const SANCTIONS_FIELDS = {
  activity_outside_eu: Type.Boolean({ description: 'Has activity outside the EU' }),
  economic_sanctions: Type.Boolean({ description: 'Is subject to economic sanctions' }),
  resident_countries_sanctions: Type.Boolean({ description: 'Resides in a country under sanctions' }),
  involved_sanctions: Type.Boolean({ description: 'Is involved with sanctioned parties' }),
};
/** The object fields of each user type, with their leaves: what merge-patch and the policy walk by leaf. */
export const OBJECT_FIELDS = {
  individual: { employer: EMPLOYER_FIELDS, fatca_crs: FATCA_CRS_FIELDS, sanctions: SANCTIONS_FIELDS },
  business: { fatca_crs: FATCA_CRS_FIELDS, sanctions: SANCTIONS_FIELDS },
} as const;

const CONTACT_FIELDS = { email: Email, phone: Phone };
const Metadata = Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), {
  description: 'Free JSON, at most 16 KiB serialised',
});
// Tenant-defined fields (policy custom_fields): checked against their definitions by the custom-fields
// module, which names the field at fault as custom.<name>.
const CustomValues = Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), {
  maxProperties: 50,
  description: 'Values of the tenant-defined fields (GET /v1/policy custom_fields), by name',
});
const Tags = Type.Array(Text(64), { maxItems: 20, uniqueItems: true, description: 'At most 20 tags of at most 64 characters' });

type NullableAll<P extends TProperties> = { [K in keyof P]: TUnion<[P[K], TNull]> };
type OptionalNullable<P extends TProperties> = { [K in keyof P]: TOptional<TUnion<[P[K], TNull]>> };

function nullableAll<P extends TProperties>(props: P): NullableAll<P> {
  return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, Type.Union([v, Type.Null()])])) as NullableAll<P>;
}
function optionalNullable<P extends TProperties>(props: P): OptionalNullable<P> {
  return Object.fromEntries(
    Object.entries(props).map(([k, v]) => [k, Type.Optional(Type.Union([v as TSchema, Type.Null()]))]),
  ) as OptionalNullable<P>;
}

const strict = { additionalProperties: false } as const;
export const Address = Type.Object(nullableAll(ADDRESS_FIELDS), { ...strict, title: 'Address' });
export const MailingAddress = Type.Object(nullableAll(MAILING_FIELDS), { ...strict, title: 'MailingAddress' });
const AddressInput = Type.Object(optionalNullable(ADDRESS_FIELDS), strict);
const MailingAddressInput = Type.Object(optionalNullable(MAILING_FIELDS), strict);

const objectOut = <P extends TProperties>(props: P, title: string, description: string) =>
  Type.Union([Type.Object(nullableAll(props), { ...strict, title }), Type.Null()], { description });
const objectIn = <P extends TProperties>(props: P) => Type.Optional(Type.Union([Type.Object(optionalNullable(props), strict), Type.Null()]));
const Employer = objectOut(EMPLOYER_FIELDS, 'Employer', 'The individual’s employer (SEND, MatchMove)');
const FatcaCrs = objectOut(FATCA_CRS_FIELDS, 'FatcaCrs', 'FATCA/CRS self-declaration (Treezor, MatchMove)');
const Sanctions = objectOut(SANCTIONS_FIELDS, 'SanctionsQuestionnaire', 'Treezor’s sanctions questionnaire; a change never re-opens review');
const sharedObjectsIn = { fatca_crs: objectIn(FATCA_CRS_FIELDS), sanctions: objectIn(SANCTIONS_FIELDS) };

const Kyc = Type.Object({
  status: Enum('kyc_statuses'),
  level: Type.Union([Type.Integer(), Type.Null()]),
  verified_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  sub_status: Type.Union([Enum('kyc_sub_statuses'), Type.Null()], { description: 'The finer KYC step (MatchMove); null when not set' }),
}, { title: 'KycState' });

const ExternalRef = Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$', description: "The platform's own id: unique per tenant, case-sensitive, immutable" });

// Key order follows the contract's user object: identity, lifecycle, profile, record metadata.
const head = {
  id: Id('usr'),
  external_ref: Type.Union([Type.String(), Type.Null()]),
};
const lifecycle = {
  country: CountryCode,
  status: Enum('statuses'),
  status_reason: Type.Union([Type.String({ description: 'The reason code of the last move (GET /v1/enumerations/reason_codes)' }), Type.Null()]),
  status_changed_at: Type.String({ format: 'date-time' }),
  kyc: Kyc,
};
const RISK_FIELDS = {
  rating: Type.Enum(codes('risk_ratings'), { description: 'See GET /v1/enumerations/risk_ratings; prohibited denies every capability (risk_prohibited)' }),
  status: Type.Enum(codes('risk_statuses'), { description: 'See GET /v1/enumerations/risk_statuses (MatchMove’s risk status)' }),
  reason: Type.Union([Type.String(), Type.Null()], { description: 'Why, as the officer wrote it (null once the user is erased)' }),
  updated_at: Type.String({ format: 'date-time' }),
  set_by: Type.Object({ key_id: Type.Union([Type.String(), Type.Null()]), role: Type.Union([Type.String(), Type.Null()]) }, { description: 'The API key that set it' }),
};
const RISK_DESCRIPTION = 'The current risk assessment; set by PUT /v1/users/{id}/risk';
export const Risk = Type.Object(RISK_FIELDS, { $id: 'Risk', description: RISK_DESCRIPTION });

export const REQUIRED_ACTION_STATUSES = ['open', 'fulfilled', 'cancelled'] as const;
const REQUIRED_ACTION_FIELDS = {
  id: Id('rqa'),
  code: Enum('required_action_codes'),
  field: Type.Union([Type.String(), Type.Null()], { description: 'The field the user must provide (dotted, as the field policy names it)' }),
  document_type: Type.Union([Type.String(), Type.Null()], { description: 'The document the user must provide (GET /v1/enumerations/document_types)' }),
  message: Type.Union([Type.String(), Type.Null()]),
  due_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  status: Type.Enum([...REQUIRED_ACTION_STATUSES], { description: 'open until the field or document arrives (fulfilled) or an operator cancels it' }),
  created_at: Type.String({ format: 'date-time' }),
  resolved_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
};
const REQUIRED_ACTION_DESCRIPTION = 'Something the user must still provide';
export const RequiredAction = Type.Object(REQUIRED_ACTION_FIELDS, { $id: 'RequiredAction', description: REQUIRED_ACTION_DESCRIPTION });

const contact = {
  email: Type.Union([Type.String(), Type.Null()]),
  phone: Type.Union([Type.String(), Type.Null()]),
  address: Type.Union([Address, Type.Null()]),
  mailing_address: Type.Union([MailingAddress, Type.Null()]),
};
// After the contact fields come the object fields, in OBJECT_FIELDS order (user-view.ts writes them so).
const tail = {
  fatca_crs: FatcaCrs,
  sanctions: Sanctions,
  // Risk and required actions inline, not Type.Ref: a nullable $ref is a union the response serializer
  // can only write by validating each user's risk with Ajv on every response (serialization.ts
  // rewrites object | null), and a user schema with no $ref inside is what the serializer's one
  // Ajv check (PATCH's answer: a user or a dry run, told apart by `dry_run`) can compile.
  risk: Type.Union([Type.Object(RISK_FIELDS, { description: RISK_DESCRIPTION }), Type.Null()], { description: 'null until a risk assessment is set' }),
  required_actions: Type.Array(Type.Object(REQUIRED_ACTION_FIELDS, { description: REQUIRED_ACTION_DESCRIPTION }), { description: 'Every required action of the user, newest last' }),
  metadata: Metadata,
  tags: Type.Array(Type.String()),
  custom: Type.Record(Type.String(), Type.Unknown(), { description: 'Values of the tenant-defined fields (GET /v1/policy custom_fields); personal ones included' }),
  pending_changes: Type.Array(
    Type.Object({
      id: Id('chg', 'The change request'),
      fields: Type.Array(Type.String()),
      proposed: Type.Record(Type.String(), Type.Unknown(), {
        description: 'Proposed values by dotted field name; a personal tenant-defined field is named in `fields` only (its value: GET /v1/change-requests/{id})',
      }),
      requested_at: Type.String({ format: 'date-time' }),
    }, { title: 'PendingChange' }),
    { description: 'Changes held for a compliance officer’s approval' },
  ),
  legal_hold: Type.Boolean({ description: 'While true, no erasure destroys this user’s data' }),
  erasure: Type.Union([
    Type.Object({
      requested_at: Type.String({ format: 'date-time' }),
      scheduled_for: Type.String({ format: 'date-time', description: 'Closure + the tenant’s retention period' }),
      erased_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    }),
    Type.Null(),
  ], { description: 'Set once erasure is requested; erased_at once personal data is destroyed (the record is then a tombstone)' }),
  version: Type.Integer({ description: 'Increments on every change; served as the strong ETag' }),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
};

export const IndividualUser = Type.Object(
  { ...head, type: Type.Literal('individual'), ...lifecycle, ...nullableAll(INDIVIDUAL_FIELDS), ...contact, employer: Employer, ...tail },
  { $id: 'IndividualUser' },
);
export const BusinessUser = Type.Object(
  { ...head, type: Type.Literal('business'), ...lifecycle, ...nullableAll(BUSINESS_FIELDS), ...contact, ...tail },
  { $id: 'BusinessUser' },
);
export const User = Type.Union([Type.Ref('IndividualUser'), Type.Ref('BusinessUser')], {
  $id: 'User',
  discriminator: { propertyName: 'type' },
});
export type UserView = Static<typeof IndividualUser> | Static<typeof BusinessUser>;

const createCommon = {
  external_ref: Type.Optional(ExternalRef),
  // Didit creates users as flagged while onboarding reviews their documents: one atomic call.
  status: Type.Optional(Type.Enum(['active', 'flagged'], { description: 'The initial status (active by default); flagged is recorded as the first status change, in the same statement' })),
  status_reason: Type.Optional(Enum('reason_codes')),
  country: CountryCode,
  ...optionalNullable(CONTACT_FIELDS),
  address: Type.Optional(Type.Union([AddressInput, Type.Null()])),
  mailing_address: Type.Optional(Type.Union([MailingAddressInput, Type.Null()])),
  ...sharedObjectsIn,
  metadata: Type.Optional(Metadata),
  tags: Type.Optional(Tags),
  custom: Type.Optional(CustomValues),
};

const IndividualCreate = Type.Object(
  {
    type: Type.Literal('individual'),
    ...createCommon,
    ...optionalNullable(INDIVIDUAL_FIELDS),
    employer: objectIn(EMPLOYER_FIELDS),
    first_name: INDIVIDUAL_FIELDS.first_name,
    last_name: INDIVIDUAL_FIELDS.last_name,
  },
  { ...strict, title: 'IndividualUserCreate' },
);
const BusinessCreate = Type.Object(
  { type: Type.Literal('business'), ...createCommon, ...optionalNullable(BUSINESS_FIELDS), legal_name: BUSINESS_FIELDS.legal_name },
  { ...strict, title: 'BusinessUserCreate' },
);
// oneOf + discriminator: validation reports only the errors of the branch `type` selects.
export const CreateUserBody = Type.Unsafe<Static<typeof IndividualCreate> | Static<typeof BusinessCreate>>({
  type: 'object', // without it Ajv's discriminator lets strings, arrays and null through
  oneOf: [IndividualCreate, BusinessCreate],
  discriminator: { propertyName: 'type' },
  description: 'An individual or a business; `type` selects which',
  title: 'UserCreate',
});
export type CreateUserInput = Static<typeof IndividualCreate> | Static<typeof BusinessCreate>;

/** Fields the patch schema accepts for some user type; the service refuses those of the other type. */
export const PatchUserBody = Type.Object(
  {
    // Immutable fields are accepted by the schema so the field policy can refuse them with 422.
    type: Type.Optional(Enum('user_types')),
    external_ref: Type.Optional(Type.Union([ExternalRef, Type.Null()])),
    country: Type.Optional(CountryCode),
    ...optionalNullable(CONTACT_FIELDS),
    address: Type.Optional(Type.Union([AddressInput, Type.Null()])),
    mailing_address: Type.Optional(Type.Union([MailingAddressInput, Type.Null()])),
    metadata: Type.Optional(Type.Union([Metadata, Type.Null()])),
    tags: Type.Optional(Type.Union([Tags, Type.Null()])),
    custom: Type.Optional(Type.Union([CustomValues, Type.Null()])),
    ...optionalNullable(INDIVIDUAL_FIELDS),
    ...optionalNullable(BUSINESS_FIELDS),
    ...sharedObjectsIn,
    employer: objectIn(EMPLOYER_FIELDS),
    // Required at creation, so they can be changed but not cleared.
    first_name: Type.Optional(INDIVIDUAL_FIELDS.first_name),
    last_name: Type.Optional(INDIVIDUAL_FIELDS.last_name),
    legal_name: Type.Optional(BUSINESS_FIELDS.legal_name),
  },
  { ...strict, minProperties: 1, description: 'JSON Merge Patch (RFC 7396): absent = unchanged, null = cleared' },
);
export type PatchUserInput = Static<typeof PatchUserBody>;

/** Fields a body may never set: they belong to the service. Sent anyway → 400 and a flagged audit entry. */
export const READ_ONLY_FIELDS = [
  'id', 'status', 'status_reason', 'status_changed_at', 'kyc', 'version', 'created_at', 'updated_at', 'pending_changes',
  // Set through their own routes (PUT …/risk, …/required-actions), never by a patch.
  'risk', 'required_actions',
] as const;

export const ListUsersQuery = Type.Object(
  {
    status: Type.Optional(Type.Array(Enum('statuses'), { maxItems: 5, description: 'Repeatable' })),
    kyc_status: Type.Optional(Enum('kyc_statuses')),
    risk: Type.Optional(Type.Array(Type.Enum([...codes('risk_ratings'), 'unrated']), {
      maxItems: 5,
      description: 'Repeatable: the risk rating (GET /v1/enumerations/risk_ratings), or unrated for a user never assessed (risk null)',
    })),
    type: Type.Optional(Enum('user_types')),
    tag: Type.Optional(Text(64)),
    external_ref: Type.Optional(ExternalRef),
    created_from: Type.Optional(Type.String({ format: 'date-time' })),
    created_to: Type.Optional(Type.String({ format: 'date-time' })),
    updated_since: Type.Optional(Type.String({ format: 'date-time' })),
    q: Type.Optional(Text(100, { description: 'Search over name, email, phone and external_ref' })),
    custom: Type.Optional(Type.String({
      maxLength: 300, pattern: '^[a-z][a-z0-9_]{0,39}:',
      description: 'A searchable tenant-defined field equal to a value: <name>:<value> (exact match; numbers and booleans parsed)',
    })),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Cursor),
  },
  strict,
);
export type ListUsersFilters = Static<typeof ListUsersQuery>;

export const PatchDryRun = Type.Object(
  {
    dry_run: Type.Literal(true),
    user_id: Id('usr'),
    version: Type.Integer(),
    outcomes: Type.Array(
      Type.Object({
        field: Type.String(),
        outcome: Type.Enum(['allow', 'allow_with_review', 'approval', 'deny']),
        reason: Type.String(),
      }),
      { description: 'One per field the patch would change (a value equal to the current one is no change)' },
    ),
    would_apply: Type.Array(Type.String()),
    would_require_review: Type.Boolean(),
    would_request_approval: Type.Array(Type.String()),
    refused: Type.Array(Type.String({ description: 'Denied fields: with any of them the request would answer 422' })),
  },
  { $id: 'PatchDryRun', description: 'What a merge patch would do under the field policy; nothing was changed' },
);
