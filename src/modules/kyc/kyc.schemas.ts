import { Type, type Static } from 'typebox';
import { CountryCode } from '../users/users.schemas.js';
import { codes } from '../reference/enumerations.js';
import { Id, Nullable, Text } from '../../http/schemas.js';


/** What a KYC provider extracted: kept as an immutable snapshot, superseded only by a later verification. */
export const Identity = Type.Object(
  {
    first_name: Type.Optional(Text(100)),
    middle_name: Type.Optional(Text(100)),
    last_name: Type.Optional(Text(100)),
    legal_name: Type.Optional(Text(200)),
    date_of_birth: Type.Optional(Type.String({ format: 'date' })),
    place_of_birth: Type.Optional(Text(100)),
    nationality: Type.Optional(CountryCode),
    gender: Type.Optional(Text(32)),
    document_type: Type.Optional(Text(64)),
    document_number: Type.Optional(Text(64)),
    document_country: Type.Optional(CountryCode),
    document_expiry: Type.Optional(Type.String({ format: 'date' })),
    registration_number: Type.Optional(Text(64)),
    address: Type.Optional(Text(500)),
  },
  { additionalProperties: false, description: 'Identity data as the provider extracted it' },
);

export const RecordVerificationBody = Type.Object(
  {
    result: Type.Enum(['approved', 'rejected', 'review'], { description: 'approved → verified; rejected → rejected; review → pending' }),
    level: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
    provider: Text(100),
    provider_ref: Type.Optional(Text(200)),
    identity: Type.Optional(Identity),
  },
  { additionalProperties: false },
);
export type RecordVerificationInput = Static<typeof RecordVerificationBody>;

const KycStatus = Type.Unsafe<string>(Type.Enum(codes('kyc_statuses')));

export const Verification = Type.Object({
  id: Id('vrf'),
  user_id: Id('usr'),
  result: Type.Enum(['approved', 'rejected', 'review']),
  level: Nullable(Type.Integer()),
  provider: Type.String(),
  provider_ref: Nullable(Type.String({ description: "The provider's reference of the check; sealed with the user's key, null once the user is erased" })),
  identity: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'The identity snapshot, document_number masked (*****1234; unmasked only in the GDPR export); null once the user is erased' })),
  kyc_status_before: KycStatus,
  kyc_status_after: KycStatus,
  recorded_by_key_id: Nullable(Id('key')),
  request_id: Nullable(Type.String()),
  created_at: Type.String({ format: 'date-time' }),
}, { title: 'Verification', description: 'A recorded KYC outcome: immutable' });
