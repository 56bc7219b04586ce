// The instants Kyclo can hold: years 0001 to 9999 in UTC. RFC 3339 and JavaScript accept more — a
// leap second (…T23:59:60Z, which `Date` cannot parse: NaN), year 0000 and times whose offset moves
// them out of those years (`9999-12-31T23:30:00-01:00`, whose toISOString() is `+010000-…`, not
// RFC 3339; `0001-01-01T00:00:00+01:00`, year 0 in UTC) — which PostgreSQL refuses, or which would
// be answered in a form the API's own contract refuses. The API's validation and the import's row
// checks both ask this.
const FIRST_INSTANT = Date.parse('0001-01-01T00:00:00Z');
const END_OF_INSTANTS = Date.parse('+010000-01-01T00:00:00Z');

/** True when `written`, parsed as `ms` (Date.parse), is of years 0001 to 9999 as written and in UTC. */
export const isHoldableInstant = (written: string, ms: number): boolean =>
  !written.startsWith('0000') && !Number.isNaN(ms) && ms >= FIRST_INSTANT && ms < END_OF_INSTANTS;
