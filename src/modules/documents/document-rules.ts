// What a document may be, as pure data and functions: which types are files and which are numbers,
// the format of each identifier number, how a number is masked, what a file's first bytes say it is,
// and which types lock once the user is verified. No I/O here; the service applies these.
import type { FieldError } from '../../http/errors.js';
import { codes } from '../reference/enumerations.js';
import { kycState, policyState } from '../users/field-policy.js';

export const DOCUMENT_TYPES = codes('document_types');

/** Identifier numbers (virtual documents); every other type in the enumeration is an uploaded file. */
export const VIRTUAL_TYPES = ['ssn', 'passport_number', 'driving_licence_number', 'ein', 'tax_id'] as const;
export type VirtualType = (typeof VIRTUAL_TYPES)[number];
export const PHYSICAL_TYPES = DOCUMENT_TYPES.filter((t) => !(VIRTUAL_TYPES as readonly string[]).includes(t));

export const isVirtualType = (t: string): t is VirtualType => (VIRTUAL_TYPES as readonly string[]).includes(t);

/** SEND's default, per user type: an individual's SSN; a business's EIN and certificate of incorporation. */
export const DEFAULT_LOCKED_BY_USER_TYPE: Readonly<Record<'individual' | 'business', readonly string[]>> = {
  individual: ['ssn'],
  business: ['ein', 'certificate_of_incorporation'],
};
/** The list for every type, as the policy answered it before the lists were per type. */
export const DEFAULT_LOCKED_WHEN_VERIFIED = [...DEFAULT_LOCKED_BY_USER_TYPE.individual, ...DEFAULT_LOCKED_BY_USER_TYPE.business];

export const DEFAULT_MAX_DOCUMENT_BYTES = 10 * 1024 * 1024;

interface NumberFormat {
  /** What separators a caller may send; they are dropped before checking and storing. */
  strip: RegExp;
  pattern: RegExp;
  /** Numbers that match the shape but can never be issued. */
  check?: (digits: string) => string | null;
  example: string;
  /** The only country that issues this type, implied when none is given. */
  country?: string;
}

// SSA: area 000, 666 and 900–999, group 00 and serial 0000 are never issued.
function ssnCheck(n: string): string | null {
  const area = Number(n.slice(0, 3));
  if (area === 0 || area === 666 || area >= 900) return 'The area number (first three digits) is never issued.';
  if (n.slice(3, 5) === '00') return 'The group number (digits 4–5) is never 00.';
  if (n.slice(5) === '0000') return 'The serial number (last four digits) is never 0000.';
  return null;
}

export const NUMBER_FORMATS: Record<VirtualType, NumberFormat> = {
  ssn: { strip: /[-\s]/g, pattern: /^\d{9}$/, check: ssnCheck, example: '9 digits, e.g. 123-45-6789', country: 'US' },
  ein: {
    strip: /[-\s]/g, pattern: /^\d{9}$/, example: '9 digits, e.g. 12-3456789', country: 'US',
    check: (n) => (n.startsWith('00') ? 'An EIN never starts with 00.' : null),
  },
  // ICAO 9303: up to 9 characters, letters and digits.
  passport_number: { strip: /\s/g, pattern: /^[A-Z0-9]{6,9}$/, example: 'X1234567 (6–9 letters or digits)' },
  driving_licence_number: { strip: /[-\s]/g, pattern: /^[A-Z0-9]{4,20}$/, example: '4 to 20 letters or digits' },
  tax_id: { strip: /[-\s./]/g, pattern: /^[A-Z0-9]{4,30}$/, example: '4 to 30 letters or digits' },
};

/** The stored form of a number (upper case, no separators), or the reason it is refused. */
export function normalizeNumber(type: VirtualType, raw: string): { ok: true; value: string } | { ok: false; message: string } {
  const f = NUMBER_FORMATS[type];
  const value = raw.toUpperCase().replace(f.strip, '');
  if (!f.pattern.test(value)) return { ok: false, message: `Not a valid ${type} number (expected ${f.example}).` };
  const problem = f.check?.(value);
  return problem ? { ok: false, message: problem } : { ok: true, value };
}

/**
 * Five stars and at most the last four characters, never more than the length minus four: an SSN
 * shows *****1112, a six-character passport number two characters, a four-character number none.
 * The mask does not tell the number's length.
 */
export const maskNumber = (n: string): string => `*****${n.slice(n.length - Math.max(0, Math.min(4, n.length - 4)))}`;

export const CONTENT_TYPES = ['image/jpeg', 'image/png', 'application/pdf'] as const;
export type ContentType = (typeof CONTENT_TYPES)[number];

/** What the first bytes say the file is; the declared type is never trusted alone. */
export function sniffContentType(bytes: Buffer): ContentType | null {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (bytes.length >= 8 && bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (bytes.length >= 5 && bytes.subarray(0, 5).toString('latin1') === '%PDF-') return 'application/pdf';
  return null;
}

/** Declared media types as clients write them (SEND sends image/jpg). */
export function normalizeDeclaredType(declared: string | undefined): string | undefined {
  if (!declared) return undefined;
  const t = declared.split(';')[0]!.trim().toLowerCase();
  return t === 'image/jpg' || t === 'image/pjpeg' ? 'image/jpeg' : t;
}

const DATA_URI = /^data:([a-z]+\/[a-z0-9.+-]+)?(;[a-z-]+=[^;,]*)*;base64,/i;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A `data:<type>;base64,<content>` value, decoded; the error names the field at fault. */
export function parseDataUri(field: string, value: string): { ok: true; declared?: string; bytes: Buffer } | { ok: false; error: FieldError } {
  const m = DATA_URI.exec(value);
  const fail = (message: string) => ({ ok: false as const, error: { field, code: 'invalid_data_uri', message } });
  if (!m) return fail('Expected a data URI: data:<media type>;base64,<content>.');
  const b64 = value.slice(m[0].length);
  if (b64.length === 0 || b64.length % 4 !== 0 || !BASE64.test(b64)) return fail('The content is not valid base64.');
  return { ok: true, declared: normalizeDeclaredType(m[1]), bytes: Buffer.from(b64, 'base64') };
}

/** Why a file is refused for its content: 415 when it is not a JPEG, PNG or PDF, or not what it claims. */
export function contentProblem(bytes: Buffer, declared: string | undefined): { status: 415; code: string; message: string } | ContentType {
  const sniffed = sniffContentType(bytes);
  if (!sniffed) {
    return { status: 415, code: 'document.unsupported_content', message: 'Only JPEG, PNG and PDF files are accepted (checked by their first bytes).' };
  }
  if (declared && declared !== 'application/octet-stream' && declared !== sniffed) {
    return { status: 415, code: 'document.content_type_mismatch', message: `The file was declared ${declared} but its bytes are ${sniffed}.` };
  }
  return sniffed;
}

/**
 * Whether a user's current document of a locked type may not be replaced: never while the user is
 * verified (under review counts as verified), by anyone; and once the user has been verified, while
 * a new verification is pending or after one was rejected, by a key that does not review changes.
 * Without that, a key that may record verifications and add documents (DEVELOPER) recorded a
 * rejection, replaced the verified SSN and recorded an approval: verified, with a number nobody
 * checked. A compliance role may still correct it then, as it decides held changes.
 */
export function isLocked(type: string, user: { kyc_status: string; kyc_verified_at: unknown }, lockedWhenVerified: readonly string[], reviewer: boolean): boolean {
  if (!lockedWhenVerified.includes(type)) return false;
  if (kycState(user.kyc_status) === 'verified') return true;
  return policyState(user) === 'verified' && !reviewer;
}
