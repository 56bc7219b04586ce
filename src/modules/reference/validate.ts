// Checks against real reference data that a JSON schema cannot express: ISO country codes,
// dialable E.164 numbers, IANA time zones, dates that are not in the future.
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import type { FieldError } from '../../http/errors.js';
import { isCountry } from './enumerations.js';

const TIME_ZONES = new Set(Intl.supportedValuesOf('timeZone'));
TIME_ZONES.add('UTC');

export const METADATA_MAX_BYTES = 16 * 1024;
export const METADATA_MAX_DEPTH = 5;

const COUNTRY_FIELDS = new Set(['country', 'birth_country', 'nationality', 'tax_residence', 'mailing_address.country']);
const PAST_DATE_FIELDS = new Set(['date_of_birth', 'incorporation_date']);

// PostgreSQL's jsonb cannot hold U+0000 in a key or a string.
function hasNul(v: unknown): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (typeof v !== 'object' || v === null) return false;
  if (Array.isArray(v)) return v.some(hasNul);
  return Object.entries(v).some(([k, x]) => k.includes('\u0000') || hasNul(x));
}

function depth(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  const children = Array.isArray(v) ? v : Object.values(v);
  return 1 + children.reduce<number>((m, c) => Math.max(m, depth(c)), 0);
}

// The last number checked and its answer: a POST or PATCH body's phone is checked twice, by the
// route schema's `phone` format and by the users service's checkReferenceData after it (which also
// guards callers that bypass HTTP), and libphonenumber's parse with full metadata is the dearest
// check of a body (≈ 25–35 µs). An import row is checked once already: row-check.ts hands
// checkReferenceData only what its schema did not check.
let lastPhone = '';
let lastPhoneValid = false;

/** A dialable number written exactly in E.164 form. */
export function isPhone(value: string): boolean {
  if (value === lastPhone) return lastPhoneValid;
  const parsed = parsePhoneNumberFromString(value);
  lastPhoneValid = !!parsed && parsed.isValid() && parsed.number === value;
  lastPhone = value;
  return lastPhoneValid;
}

export const isTimeZone = (value: string): boolean => TIME_ZONES.has(value);

function checkOne(field: string, value: unknown, today: string): FieldError | null {
  if (value === null || value === undefined) return null;
  if (COUNTRY_FIELDS.has(field) && !isCountry(String(value))) {
    return { field, code: 'invalid_country', message: 'must be an ISO 3166-1 alpha-2 country code' };
  }
  if (field === 'phone') {
    if (!isPhone(String(value))) {
      return { field, code: 'invalid_phone', message: 'must be a valid phone number in E.164 form, e.g. +33611111111' };
    }
  }
  if (field === 'timezone' && !isTimeZone(String(value))) {
    return { field, code: 'invalid_timezone', message: 'must be an IANA time zone, e.g. Europe/Paris' };
  }
  if (PAST_DATE_FIELDS.has(field)) {
    const d = String(value);
    if (d > today) return { field, code: 'in_the_future', message: 'cannot be in the future' };
    if (d < '1850-01-01') return { field, code: 'too_old', message: 'must be after 1850-01-01' };
  }
  if (field === 'metadata') {
    if (Buffer.byteLength(JSON.stringify(value)) > METADATA_MAX_BYTES) {
      return { field, code: 'too_large', message: 'must be at most 16 KiB serialised' };
    }
    if (hasNul(value)) return { field, code: 'invalid_character', message: 'cannot contain the NUL character' };
    if (depth(value) > METADATA_MAX_DEPTH) {
      return { field, code: 'too_deep', message: `must nest at most ${METADATA_MAX_DEPTH} levels` };
    }
  }
  return null;
}

/** Validates the given (already schema-valid) values; nested address fields are checked by path. */
export function checkReferenceData(values: Record<string, unknown>, now = new Date()): FieldError[] {
  const today = now.toISOString().slice(0, 10);
  const errors: FieldError[] = [];
  for (const [field, value] of Object.entries(values)) {
    if (field === 'mailing_address' && value && typeof value === 'object') {
      const e = checkOne('mailing_address.country', (value as Record<string, unknown>).country, today);
      if (e) errors.push(e);
      continue;
    }
    const e = checkOne(field, value, today);
    if (e) errors.push(e);
  }
  return errors;
}
