// Timestamps straight from PostgreSQL's text to the API's ISO 8601 form, for the statements whose rows
// only ever become responses (a user read, a page of users, a patch's written row). pg's default
// turns each timestamptz into a Date (a regular expression and a Date per value) and the view turns
// it back with toISOString (about 0.9 µs here); four per user, fifty users a page, that was a third
// of a page's time. Everywhere else rows keep their Dates.
import pg from 'pg';

const TIMESTAMPTZ = 1184;
const toDate = pg.types.getTypeParser(TIMESTAMPTZ, 'text') as (text: string) => Date;

/**
 * `2026-11-22 04:56:04.433123+00` → `2026-11-22T04:56:04.433Z`: milliseconds truncated, as a Date
 * would hold them. Output in another time zone (the session's TimeZone is not UTC), a year past
 * 9999 or BC takes the Date path, so the answer is the same either way.
 */
export function isoFromPg(text: string): string {
  const n = text.length;
  if (n >= 22 && n <= 29 && text.charCodeAt(4) === 45 && text.charCodeAt(10) === 32 && text.endsWith('+00') && (n === 22 || text.charCodeAt(19) === 46)) {
    const fraction = text.slice(19, n - 3); // '' or '.4' … '.433123'
    const ms = fraction === '' ? '.000' : fraction.length >= 4 ? fraction.slice(0, 4) : fraction.padEnd(4, '0');
    return `${text.slice(0, 10)}T${text.slice(11, 19)}${ms}Z`;
  }
  return toDate(text).toISOString();
}

/** pg's per-query `types`: timestamptz as ISO strings, every other type as pg parses it. */
export const isoTimestampTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === TIMESTAMPTZ && format !== 'binary' ? isoFromPg : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
};
