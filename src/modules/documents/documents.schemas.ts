// One schema per shape: the JSON upload (physical or virtual), the multipart form, the document view.
import { Type, type Static } from 'typebox';
import { Id, Nullable, Text } from '../../http/schemas.js';
import { CONTENT_TYPES, DOCUMENT_TYPES, PHYSICAL_TYPES, VIRTUAL_TYPES } from './document-rules.js';

const strict = { additionalProperties: false } as const;

const Country = Type.String({ format: 'country', pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2 country that issued the document (format country)' });
const common = {
  country: Type.Optional(Nullable(Country)),
  issuing_authority: Type.Optional(Nullable(Text(100, { description: 'e.g. a state (CA) or an agency' }))),
  expiry_date: Type.Optional(Nullable(Type.String({ format: 'date' }))),
};

// The data URI is checked (and decoded) by the service, so its errors can be 413 and 415, not 400.
const DataUri = Type.String({ minLength: 5, pattern: '^data:', description: 'data:<image/jpeg|image/png|application/pdf>;base64,<content>' });

export const PhysicalUpload = Type.Object(
  {
    kind: Type.Literal('physical'),
    type: Type.Enum(PHYSICAL_TYPES),
    content: DataUri,
    content_back: Type.Optional(Nullable(DataUri)),
    ...common,
  },
  { ...strict, title: 'PhysicalDocumentUpload' },
);

export const VirtualUpload = Type.Object(
  {
    kind: Type.Literal('virtual'),
    type: Type.Enum([...VIRTUAL_TYPES]),
    number: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9 ./-]+$', description: 'The identifier number; separators are dropped' }),
    ...common,
  },
  { ...strict, title: 'VirtualDocumentUpload' },
);

export type DocumentUpload = Static<typeof PhysicalUpload> | Static<typeof VirtualUpload>;

export const DocumentJsonBody = Type.Unsafe<DocumentUpload>({
  type: 'object',
  oneOf: [PhysicalUpload, VirtualUpload],
  discriminator: { propertyName: 'kind' },
  description: 'A file as a data URI (kind physical) or an identifier number (kind virtual)',
  title: 'DocumentUpload',
});

/** The text fields of a multipart upload; the file parts are `file` and optionally `file_back`. */
export const MultipartFields = Type.Object(
  { kind: Type.Optional(Type.Literal('physical')), type: Type.Enum(PHYSICAL_TYPES), ...common },
  strict,
);
export const MultipartForm = Type.Object(
  {
    ...MultipartFields.properties,
    file: Type.String({ format: 'binary', description: 'JPEG, PNG or PDF, up to the size limit' }),
    file_back: Type.Optional(Type.String({ format: 'binary', description: 'The back side, for two-sided cards' })),
  },
  strict,
);

const File = { content_type: Nullable(Type.Enum([...CONTENT_TYPES])), size: Nullable(Type.Integer()) };

export const Document = Type.Object({
  id: Id('doc'),
  user_id: Id('usr'),
  kind: Type.Enum(['physical', 'virtual']),
  type: Type.Unsafe<string>(Type.Enum(DOCUMENT_TYPES, { description: 'See GET /v1/enumerations/document_types' })),
  status: Type.Enum(['current', 'archived']),
  number: Nullable(Type.String({ description: 'Masked (*****1112); unmasked only in the GDPR export; null once erased' })),
  ...File,
  back_content_type: File.content_type,
  back_size: File.size,
  content_url: Nullable(Type.String({ description: 'GET it for the decrypted file; null for numbers' })),
  country: Nullable(Type.String()),
  issuing_authority: Nullable(Type.String()),
  expiry_date: Nullable(Type.String({ format: 'date' })),
  replaces_id: Nullable(Id('doc', 'The document this one archived')),
  created_at: Type.String({ format: 'date-time' }),
  archived_at: Nullable(Type.String({ format: 'date-time' })),
  destroyed_at: Nullable(Type.String({ format: 'date-time', description: 'Set when erasure destroyed the number and content' })),
}, { title: 'Document', description: 'A file or an identifier number; numbers masked' });
export type DocumentView = Static<typeof Document>;
