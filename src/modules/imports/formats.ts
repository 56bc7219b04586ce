// The three file formats an import reads, each as a stream of records with the line each starts on
// (what a report names). Nothing holds more than one chunk and one record: the file's size does not
// matter. A record that cannot be parsed is a rejected row (its line, code malformed), never the end
// of the import; so is one nested deeper than a request body may be (code too_deep), an NDJSON line
// longer than NDJSON_LINE_MAX and a CSV record longer than CSV_RECORD_MAX.
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { AppError } from '../../http/errors.js';
import { deeperThan, LONE_SURROGATE, MAX_JSON_DEPTH } from '../../http/json-body.js';

export const FORMATS = ['ndjson', 'csv', 'json'] as const;
export type Format = (typeof FORMATS)[number];

export type SourceRecord =
  | { line: number; record: Record<string, unknown> }
  | { line: number; malformed: string }
  /** Read, but refused whole before it was parsed (nested too deep): the row's one error. */
  | { line: number; refused: { field: string; code: string; message: string } };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Keys that reach a prototype when code copies or walks an object by name (`out[k] = v`,
 * `at = at[k]`): `out['__proto__']` is Object.prototype, shared by every tenant's requests. No field
 * is called so; a CSV header segment with one makes the file malformed (400, before any row), a
 * record holding one at any depth is a rejected row. What an import builds never takes one.
 */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * A record nests objects and arrays at most as deep as a request body may (MAX_JSON_DEPTH, the record
 * itself the first level): the row checks after the reader (the schema's validator, the metadata
 * bounds) recurse, and one row of metadata nested 100,000 levels threw RangeError out of its batch —
 * the job stayed running and every resume died on the same line.
 */
const tooDeepMessage = `nests objects or arrays more than ${MAX_JSON_DEPTH} levels deep`;

/**
 * What makes a parsed record unusable as a whole, at any depth (walked with a stack, never recursion:
 * a record may nest deeply): nesting deeper than MAX_JSON_DEPTH (the top-level field named), a
 * reserved key (`metadata.__proto__`), or a key or string holding a lone UTF-16 surrogate, which the
 * API refuses (400 request.invalid_unicode) and PostgreSQL cannot store — caught here, a dry run
 * reports the row as the real run does.
 */
export function recordProblem(record: unknown): { field: string; code: string; message: string } | undefined {
  const stack: Array<[value: unknown, path: string, depth: number, top: string]> = [[record, '', 0, 'record']];
  while (stack.length) {
    const [value, path, depth, top] = stack.pop()!;
    if (typeof value === 'string' && LONE_SURROGATE.test(value)) return { field: path || 'record', code: 'invalid_unicode', message: 'strings must be valid Unicode' };
    if (typeof value !== 'object' || value === null) continue;
    // Stopped at the first level past the bound: a path is never longer than MAX_JSON_DEPTH names.
    if (depth >= MAX_JSON_DEPTH) return { field: top, code: 'too_deep', message: tooDeepMessage };
    for (const [k, v] of Object.entries(value)) {
      const at = path ? `${path}.${k}` : k;
      if (RESERVED_KEYS.has(k)) return { field: at, code: 'reserved_name', message: 'no field is called __proto__, constructor or prototype' };
      if (LONE_SURROGATE.test(k)) return { field: path || 'record', code: 'invalid_unicode', message: 'keys must be valid Unicode' };
      stack.push([v, at, depth + 1, path ? top : k]);
    }
  }
  return undefined;
}

/**
 * Refuses a header that names a reserved key in any segment (`__proto__.x`), or builds objects nested
 * deeper than a record may (more than MAX_JSON_DEPTH dotted segments): the file is malformed, nothing
 * of it is imported.
 */
function checkHeader(headers: string[]): void {
  headers.forEach((h, i) => {
    const segments = h.split('.');
    const bad = segments.find((p) => RESERVED_KEYS.has(p));
    const deep = segments.length > MAX_JSON_DEPTH;
    if (bad === undefined && !deep) return;
    const message = bad !== undefined ? `names ${bad}, which is no field: rename or remove the column` : `has more than ${MAX_JSON_DEPTH} dotted segments: no field nests so deep`;
    throw new AppError(400, 'import.malformed_header', `The CSV header's column ${i + 1} (${h.length > 200 ? `${h.slice(0, 200)}…` : h}) ${message}.`, {
      errors: [{ field: h.slice(0, 200), code: bad !== undefined ? 'reserved_name' : 'too_deep', message }],
    });
  });
}

function parseObject(line: number, text: string): SourceRecord {
  // Measured before parsing, without building anything: JSON.parse survives any depth, but builds it
  // (a 32 MiB line of `[` is 16 million arrays: 1 GB of heap and 12 s).
  const deep = deeperThan(text, MAX_JSON_DEPTH);
  if (deep !== undefined) return { line, refused: { field: fieldName(deep.key), code: 'too_deep', message: tooDeepMessage } };
  try {
    const v: unknown = JSON.parse(text);
    return isObject(v) ? { line, record: v } : { line, malformed: 'not a JSON object' };
  } catch {
    return { line, malformed: 'not valid JSON' };
  }
}

/** A key as the scan found it (escaped, any length) as a report names a field. */
function fieldName(raw: string | undefined): string {
  if (raw === undefined) return 'record';
  let name = raw;
  try {
    name = JSON.parse(`"${raw}"`) as string;
  } catch {
    // Not valid JSON text: named as written.
  }
  return name.length > 200 ? `${name.slice(0, 200)}…` : name;
}

async function* text(source: Readable): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  for await (const chunk of source) yield typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer);
  const rest = decoder.end();
  if (rest) yield rest;
}

/**
 * The longest NDJSON line read, in characters (4 MiB). A user record is far shorter: a create body is
 * at most 1 MiB (the API's body limit) and its metadata 32 KiB; the rest is room for an export line's
 * `--include`d history, which the import drops. A longer line is a malformed row, skipped to its end
 * without being kept. Before, a line was kept whole however long, and searched again from its start
 * for every 64 KiB the CLI read: four 8 MiB lines took the reader 10 s (and the CLI 335 MB).
 */
export const NDJSON_LINE_MAX = 4 * 1024 * 1024;

/** One JSON object per line; blank lines are skipped (they still count as lines). */
export async function* ndjson(source: Readable): AsyncGenerator<SourceRecord> {
  // The unfinished line's text from earlier chunks (none once it passed the bound), and its length,
  // counted even when not kept. Only each new chunk is searched for a line feed.
  let pending = '';
  let size = 0;
  let line = 0;
  const end = (rest: string): SourceRecord | undefined => {
    line++;
    const long = size > NDJSON_LINE_MAX;
    const one = long ? '' : (pending + rest).trim();
    pending = '';
    size = 0;
    if (long) return { line, malformed: `is longer than ${NDJSON_LINE_MAX} characters` };
    return one ? parseObject(line, one) : undefined;
  };
  for await (const chunk of text(source)) {
    let start = 0;
    for (let nl = chunk.indexOf('\n'); nl !== -1; nl = chunk.indexOf('\n', start)) {
      size += nl - start;
      const rec = end(size > NDJSON_LINE_MAX ? '' : chunk.slice(start, nl));
      start = nl + 1;
      if (rec) yield rec;
    }
    size += chunk.length - start;
    pending = size > NDJSON_LINE_MAX ? '' : pending + chunk.slice(start);
  }
  const last = end('');
  if (last) yield last;
}

/**
 * The longest CSV record read, in characters (about 64 KiB): no user's fields come near it. A longer
 * record is a malformed row, skipped to its end without being kept; a longer header is a malformed
 * file (400), refused as soon as it passes the bound. Before, a 32 MiB header of one cell was read
 * whole, a character at a time, and held the process (every tenant's requests) for 10 s.
 */
export const CSV_RECORD_MAX = 64 * 1024;

// What ends an unquoted run of text. Runs are found with a search and taken with slice: a cell is one
// slice, not a string grown by each of its characters.
const CSV_SPECIAL = /[",\r\n]/g;
const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;

function headerTooLong(): AppError {
  const message = `must be at most ${CSV_RECORD_MAX} characters`;
  return new AppError(400, 'import.malformed_header', `The CSV header is longer than ${CSV_RECORD_MAX} characters: no header of user fields is.`, {
    errors: [{ field: 'header', code: 'too_long', message }],
  });
}

/**
 * RFC 4180 CSV with a header row. Headers with dots build nested objects (`address.line1`); a cell
 * that is a JSON object or array (`{…}`, `[…]`) is parsed as one (metadata, tags); empty cells are
 * absent values. Every other cell stays a string: the profile converts what needs converting.
 */
export async function* csv(source: Readable): AsyncGenerator<SourceRecord> {
  let headers: string[] | null = null;
  let fields: string[] = [];
  let field = '';
  // Characters of the current record so far, delimiters included; past the bound nothing is kept.
  let size = 0;
  let tooLong = false;
  let quoted = false;
  let afterQuote = false;
  let line = 1;
  let recordLine = 1;
  let prevCr = false;
  // The chunk's first line feed at or after the last place asked about (the chunk's length: none).
  // Kept, not searched for again: a search from each quoted cell to a line feed far ahead, or to the
  // end of a chunk without one, would read the chunk again for every cell.
  let nextLf = -1;
  const lineFeeds = (chunk: string, from: number, to: number): number => {
    let count = 0;
    if (nextLf < from) nextLf = chunk.indexOf('\n', from);
    while (nextLf !== -1 && nextLf < to) {
      count++;
      nextLf = chunk.indexOf('\n', nextLf + 1);
    }
    if (nextLf === -1) nextLf = chunk.length;
    return count;
  };
  const grow = (n: number): boolean => {
    size += n;
    if (tooLong) return false;
    if (size <= CSV_RECORD_MAX) return true;
    if (!headers) throw headerTooLong();
    tooLong = true;
    field = '';
    fields = [];
    return false;
  };
  const take = (chunk: string, from: number, to: number) => {
    if (grow(to - from)) field += chunk.slice(from, to);
  };
  const finish = function* (): Generator<SourceRecord> {
    fields.push(field);
    field = '';
    const row = fields;
    const long = tooLong;
    fields = [];
    size = 0;
    tooLong = false;
    if (!headers) {
      headers = row.map((h) => h.trim());
      checkHeader(headers);
      return;
    }
    if (long) {
      yield { line: recordLine, malformed: `is longer than ${CSV_RECORD_MAX} characters` };
      return;
    }
    if (row.length === 1 && row[0] === '') return;
    if (row.length !== headers.length) {
      yield { line: recordLine, malformed: `has ${row.length} cells where the header has ${headers.length}` };
      return;
    }
    yield { line: recordLine, record: csvRecord(headers, row) };
  };
  for await (const chunk of text(source)) {
    const n = chunk.length;
    let i = 0;
    nextLf = -1;
    while (i < n) {
      if (quoted) {
        // To the closing quote (a doubled quote closes and reopens: see below), or the chunk's end.
        const q = chunk.indexOf('"', i);
        const end = q === -1 ? n : q;
        line += lineFeeds(chunk, i, end);
        take(chunk, i, end);
        if (q === -1) break;
        quoted = false;
        afterQuote = true;
        i = q + 1;
        continue;
      }
      CSV_SPECIAL.lastIndex = i;
      const at = CSV_SPECIAL.exec(chunk)?.index ?? n;
      if (at > i) {
        take(chunk, i, at);
        afterQuote = false;
        prevCr = false;
      }
      if (at === n) break;
      i = at + 1;
      const c = chunk.charCodeAt(at);
      if (c === QUOTE) {
        // `""` in a quoted cell is one quote.
        if (afterQuote && grow(1)) field += '"';
        quoted = true;
        afterQuote = false;
        prevCr = false;
        continue;
      }
      afterQuote = false;
      if (c === COMMA) {
        if (grow(1)) {
          fields.push(field);
          field = '';
        }
        prevCr = false;
      } else if (c === LF) {
        if (!prevCr) yield* finish();
        line++;
        recordLine = line;
        prevCr = false;
      } else {
        yield* finish();
        prevCr = true;
      }
    }
  }
  if (quoted) yield { line: recordLine, malformed: 'a quoted cell is never closed' };
  else if (field !== '' || fields.length || tooLong) yield* finish();
}

/**
 * Reads the header row alone (and the first record, at most) and throws import.malformed_header as
 * the reader would: the route and the CLI refuse such a file before they open a job for it.
 */
export async function checkCsvHeader(source: Readable): Promise<void> {
  const records = csv(source);
  try {
    await records.next();
  } finally {
    await records.return(undefined);
  }
}

// The header was checked (checkHeader): no segment is a reserved key, and only own values are walked.
function csvRecord(headers: string[], row: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  headers.forEach((h, i) => {
    const raw = row[i]!;
    if (raw === '' || !h) return;
    let value: unknown = raw;
    if ((raw.startsWith('{') && raw.endsWith('}')) || (raw.startsWith('[') && raw.endsWith(']'))) {
      try {
        value = JSON.parse(raw);
      } catch {
        value = raw;
      }
    }
    const path = h.split('.');
    let at = out;
    for (const p of path.slice(0, -1)) {
      if (!Object.hasOwn(at, p) || !isObject(at[p])) at[p] = {};
      at = at[p] as Record<string, unknown>;
    }
    at[path.at(-1)!] = value;
  });
  return out;
}

/**
 * A JSON array of objects, or an object holding one (Treezor answers `{"users": [...]}`): each
 * element is cut out of the stream by its brackets and parsed alone. An element longer than an NDJSON
 * line may be (NDJSON_LINE_MAX) is a malformed row, scanned to its end without being kept: the HTTP
 * body limit bounds an upload, but the CLI reads files of any size, and one unclosed 2 GB element was
 * held whole in memory before.
 */
export async function* json(source: Readable): AsyncGenerator<SourceRecord> {
  let depth = 0;
  let inString = false;
  let escaped = false;
  // The depth the records sit at: 1 in a top-level array, 2 in an array inside a top-level object.
  let recordDepth = 0;
  let buf = '';
  let collecting = false;
  // The characters of the element being collected in earlier chunks; past the bound none are kept.
  let size = 0;
  let line = 1;
  let startLine = 1;
  for await (const chunk of text(source)) {
    let from = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (c === '\n') line++;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === '\\') escaped = true;
        else if (c === '"') inString = false;
        continue;
      }
      if (c === '"') {
        inString = true;
      } else if (c === '[' || c === '{') {
        if (recordDepth === 0 && c === '[') recordDepth = depth + 1;
        depth++;
        if (depth === recordDepth + 1 && !collecting && recordDepth > 0) {
          collecting = true;
          startLine = line;
          from = i;
          buf = '';
          size = 0;
        }
      } else if (c === ']' || c === '}') {
        depth--;
        if (collecting && depth === recordDepth) {
          collecting = false;
          const long = size + (i + 1 - from) > NDJSON_LINE_MAX;
          yield long ? { line: startLine, malformed: `is longer than ${NDJSON_LINE_MAX} characters` } : parseObject(startLine, buf + chunk.slice(from, i + 1));
          buf = '';
        }
      }
    }
    if (collecting) {
      size += chunk.length - from;
      buf = size > NDJSON_LINE_MAX ? '' : buf + chunk.slice(from);
    }
  }
  if (collecting) yield { line: startLine, malformed: 'the file ends inside this record' };
}

export const readers: Record<Format, (source: Readable) => AsyncGenerator<SourceRecord>> = { ndjson, csv, json };

/** The format a file name implies, if any. */
export function formatOf(name: string): Format | undefined {
  const ext = name.toLowerCase().split('.').pop();
  return ext === 'ndjson' || ext === 'jsonl' ? 'ndjson' : ext === 'csv' ? 'csv' : ext === 'json' ? 'json' : undefined;
}
