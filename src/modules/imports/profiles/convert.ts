// Conversions the vendor profiles share: each converts only where the result is unambiguous; where
// it is not, the value is kept in metadata and the report says so (never silently dropped, never
// guessed). Pure functions.
import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max';
import { isCountry } from '../../reference/enumerations.js';
import { present } from './profile.js';
import { RESERVED_KEYS } from '../formats.js';

/** A vendor's number as E.164: as written when it already is one, else read in the user's country. */
export function toE164(value: unknown, country: string | undefined): string | undefined {
  if (!present(value)) return undefined;
  const raw = String(value).trim();
  const parsed = raw.startsWith('+') ? parsePhoneNumberFromString(raw) : country && isCountry(country) ? parsePhoneNumberFromString(raw, country as CountryCode) : undefined;
  return parsed && parsed.isValid() ? parsed.number : undefined;
}

/** `www.example.com` → `https://www.example.com`; anything that is not a host name stays unconverted. */
export function toWebsite(value: unknown): string | undefined {
  if (!present(value)) return undefined;
  const raw = String(value).trim();
  if (/^https?:\/\/\S+$/i.test(raw)) return raw;
  return /^[a-z0-9-]+(\.[a-z0-9-]+)+(\/\S*)?$/i.test(raw) ? `https://${raw}` : undefined;
}

const RANGES: Array<[string, number, number]> = [['1_10', 1, 10], ['11_50', 11, 50], ['51_250', 51, 250], ['251_1000', 251, 1000], ['over_1000', 1001, Infinity]];

/** An employee range [low, high] as Kyclo's range that holds all of it; none when it straddles two. */
export function employeesRange(low: number, high: number): string | undefined {
  return RANGES.find(([, a, b]) => low >= a && high <= b)?.[0];
}

// Kyclo's income bands (enumeration income_ranges), each as [from, to) a year. A vendor range that
// ends where a band ends (`50k-100k`) is that band: vendors write the next band's start as the end.
const INCOME_BANDS: Array<[string, number, number]> = [
  ['under_10k', 0, 10_000], ['10k_25k', 10_000, 25_000], ['25k_50k', 25_000, 50_000],
  ['50k_100k', 50_000, 100_000], ['100k_250k', 100_000, 250_000], ['over_250k', 250_000, Infinity],
];

/**
 * A vendor's yearly income range as Kyclo's band that holds all of it: `19-23` (with `unit` 1,000:
 * Treezor writes thousands of euros), `10,000 - 25,000`, `10k–25k`, `57-*`, `<10k`, `over 250000`.
 * None when the range straddles two bands (Treezor's `24-27` is both 10k_25k and 25k_50k) or
 * cannot be read: the caller keeps the value in metadata and says why.
 */
export function incomeBand(value: unknown, unit = 1): string | undefined {
  if (!present(value)) return undefined;
  const v = String(value).trim().toLowerCase().replace(/[,\s]/g, '').replace(/[–—]/g, '-');
  const amount = (n: string, k: string | undefined) => Number(n) * (k ? 1000 : unit);
  let range: [number, number] | undefined;
  let m = /^(\d+(?:\.\d+)?)(k)?-(?:(\d+(?:\.\d+)?)(k)?|\*)$/.exec(v);
  if (m) range = [amount(m[1]!, m[2]), m[3] === undefined ? Infinity : amount(m[3], m[4])];
  else if ((m = /^(?:<|below|under|lessthan)(\d+(?:\.\d+)?)(k)?$/.exec(v))) range = [0, amount(m[1]!, m[2]) - 1];
  else if ((m = /^(?:>|above|over|morethan)(\d+(?:\.\d+)?)(k)?$/.exec(v) ?? /^(\d+(?:\.\d+)?)(k)?\+$/.exec(v))) range = [amount(m[1]!, m[2]), Infinity];
  if (!range || range[0] > range[1]) return undefined;
  return INCOME_BANDS.find(([, low, high]) => range[0] >= low && range[1] <= high)?.[0];
}

/** `2023-10-23 12:28:00` (no zone: read as UTC) or an RFC 3339 time; absent values stay absent. */
export function vendorTime(value: unknown): string | undefined {
  if (!present(value)) return undefined;
  const raw = String(value).trim();
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(\.\d+)?)$/.exec(raw);
  return m ? `${m[1]}T${m[2]}Z` : raw;
}

/** A vendor's yes/no: true/false, 1/0 or "1"/"0"; anything else is no answer Kyclo can read. */
export function toBool(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  const v = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim().toLowerCase() : undefined;
  return v === '1' || v === 'true' ? true : v === '0' || v === 'false' ? false : undefined;
}

/** A vendor time as RFC 3339 (see vendorTime); a date alone, or anything else, is no instant. */
export function toInstant(value: unknown): string | undefined {
  const t = vendorTime(value);
  return t && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(t) && !Number.isNaN(Date.parse(t)) ? t : undefined;
}

/**
 * A vendor's value as one of Kyclo's codes: the code itself once lower-cased with spaces and
 * hyphens as underscores (`Self-Employed` → self_employed), or the code a synonym names.
 */
export function toCode(value: unknown, codes: readonly string[], synonyms: Record<string, string> = {}): string | undefined {
  if (!present(value) || typeof value !== 'string') return undefined;
  const v = value.trim().toLowerCase().replace(/[\s-]+/g, '_');
  return codes.includes(v) ? v : synonyms[v];
}

/**
 * What a profile builds as it maps: the create body, the moved fields (into metadata.<profile>) and
 * the report's lines. `take` marks a vendor field as handled; `finish` moves every field not taken.
 */
export function mapping(profile: string, record: Record<string, unknown>) {
  const user: Record<string, unknown> = {};
  const moved: Record<string, string> = {};
  const kept: Record<string, unknown> = {};
  const taken = new Set<string>();
  return {
    user,
    moved,
    take(...fields: string[]) {
      for (const f of fields) taken.add(f);
    },
    /** Sets a Kyclo field when the value is present. */
    set(field: string, value: unknown) {
      if (present(value)) user[field] = typeof value === 'string' ? value.trim() : value;
    },
    /**
     * Keeps a vendor value in metadata, saying why when it was not converted. A dotted name keeps one
     * part of an object whose other parts found a home (`company_details.phone_number`).
     */
    keep(field: string, value: unknown, why?: string) {
      const [top, part] = field.split('.', 2) as [string, string | undefined];
      taken.add(top);
      if (!present(value) && !(typeof value === 'number')) return;
      if (part === undefined) kept[top] = value;
      else kept[top] = { ...(kept[top] as Record<string, unknown> | undefined), [part]: value };
      moved[field] = `metadata.${profile}.${field}${why ? ` (${why})` : ''}`;
    },
    /** A vendor field deliberately left out (and why), listed in the report. */
    drop(field: string, why: string) {
      taken.add(field);
      if (present(record[field])) moved[field] = `not imported (${why})`;
    },
    finish(sourceId: string | null) {
      for (const [k, v] of Object.entries(record)) {
        // A reserved key never gets here (the import rejects its row first); never copied, should one.
        if (taken.has(k) || !present(v) || RESERVED_KEYS.has(k)) continue;
        kept[k] = v;
        moved[k] = `metadata.${profile}.${k}`;
      }
      if (sourceId !== null) kept.id = sourceId;
      const metadata = { ...(user.metadata as Record<string, unknown> | undefined), [profile]: kept };
      user.metadata = metadata;
    },
  };
}
