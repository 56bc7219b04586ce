// The three file formats an import reads, each as a stream of records with the line each starts on
// (what a report names). Nothing holds more than one chunk and one record: the file's size does not
// matter. A record that cannot be parsed is a rejected row (its line, code malformed), never the end
// of the import.
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { AppError } from '../../http/errors.js';
import { LONE_SURROGATE } from '../../http/json-body.js';

export const FORMATS = ['ndjson', 'csv', 'json'] as const;
export type Format = (typeof FORMATS)[number];

export type SourceRecord =
  | { line: number; record: Record<string, unknown> }
  | { line: number; malformed: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Keys that reach a prototype when code copies or walks an object by name (`out[k] = v`,
 * `at = at[k]`): `out['__proto__']` is Object.prototype, shared by every tenant's requests. No field
 * is called so; a CSV header segment with one makes the file malformed (400, before any row), a
 * record holding one at any depth is a rejected row. What an import builds never takes one.
 */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * What makes a parsed record unusable as a whole, at any depth (walked with a stack: a record may
 * nest deeply): a reserved key (`metadata.__proto__`), or a key or string holding a lone UTF-16
 * surrogate, which the API refuses (400 request.invalid_unicode) and PostgreSQL cannot store — caught
 * here, a dry run reports the row as the real run does.
 */
export function recordProblem(record: unknown): { field: string; code: string; message: string } | undefined {
  const stack: Array<[unknown, string]> = [[record, '']];
  while (stack.length) {
    const [value, path] = stack.pop()!;
    if (typeof value === 'string' && LONE_SURROGATE.test(value)) return { field: path || 'record', code: 'invalid_unicode', message: 'strings must be valid Unicode' };
    if (typeof value !== 'object' || value === null) continue;
    for (const [k, v] of Object.entries(value)) {
      const at = path ? `${path}.${k}` : k;
      if (RESERVED_KEYS.has(k)) return { field: at, code: 'reserved_name', message: 'no field is called __proto__, constructor or prototype' };
      if (LONE_SURROGATE.test(k)) return { field: path || 'record', code: 'invalid_unicode', message: 'keys must be valid Unicode' };
      stack.push([v, at]);
    }
  }
  return undefined;
}

/** Refuses a header that names a reserved key in any segment (`__proto__.x`): the file is malformed, nothing of it is imported. */
function checkHeader(headers: string[]): void {
  headers.forEach((h, i) => {
    const bad = h.split('.').find((p) => RESERVED_KEYS.has(p));
    if (bad === undefined) return;
    const message = `names ${bad}, which is no field: rename or remove the column`;
    throw new AppError(400, 'import.malformed_header', `The CSV header's column ${i + 1} (${h}) ${message}.`, {
      errors: [{ field: h, code: 'reserved_name', message }],
    });
  });
}

function parseObject(line: number, text: string): SourceRecord {
  try {
    const v: unknown = JSON.parse(text);
    return isObject(v) ? { line, record: v } : { line, malformed: 'not a JSON object' };
  } catch {
    return { line, malformed: 'not valid JSON' };
  }
}

async function* text(source: Readable): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  for await (const chunk of source) yield typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer);
  const rest = decoder.end();
  if (rest) yield rest;
}

/** One JSON object per line; blank lines are skipped (they still count as lines). */
export async function* ndjson(source: Readable): AsyncGenerator<SourceRecord> {
  let pending = '';
  let line = 0;
  for await (const chunk of text(source)) {
    pending += chunk;
    let start = 0;
    for (let nl = pending.indexOf('\n', start); nl !== -1; nl = pending.indexOf('\n', start)) {
      line++;
      const one = pending.slice(start, nl).trim();
      start = nl + 1;
      if (one) yield parseObject(line, one);
    }
    pending = pending.slice(start);
  }
  line++;
  if (pending.trim()) yield parseObject(line, pending.trim());
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
  let quoted = false;
  let afterQuote = false;
  let line = 1;
  let recordLine = 1;
  let prevCr = false;
  const finish = function* (): Generator<SourceRecord> {
    fields.push(field);
    field = '';
    const row = fields;
    fields = [];
    if (!headers) {
      headers = row.map((h) => h.trim());
      checkHeader(headers);
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
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (quoted) {
        if (c === '"') {
          quoted = false;
          afterQuote = true;
        } else {
          if (c === '\n') line++;
          field += c;
        }
        continue;
      }
      if (c === '"') {
        if (afterQuote) field += '"';
        quoted = true;
        afterQuote = false;
        continue;
      }
      afterQuote = false;
      if (c === ',') {
        fields.push(field);
        field = '';
      } else if (c === '\n') {
        if (!prevCr) {
          yield* finish();
        }
        line++;
        recordLine = line;
      } else if (c === '\r') {
        yield* finish();
        prevCr = true;
        continue;
      } else {
        field += c;
      }
      prevCr = false;
    }
  }
  if (quoted) yield { line: recordLine, malformed: 'a quoted cell is never closed' };
  else if (field !== '' || fields.length) yield* finish();
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
 * element is cut out of the stream by its brackets and parsed alone.
 */
export async function* json(source: Readable): AsyncGenerator<SourceRecord> {
  let depth = 0;
  let inString = false;
  let escaped = false;
  // The depth the records sit at: 1 in a top-level array, 2 in an array inside a top-level object.
  let recordDepth = 0;
  let buf = '';
  let collecting = false;
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
        }
      } else if (c === ']' || c === '}') {
        depth--;
        if (collecting && depth === recordDepth) {
          collecting = false;
          yield parseObject(startLine, buf + chunk.slice(from, i + 1));
          buf = '';
        }
      }
    }
    if (collecting) buf += chunk.slice(from);
  }
  if (collecting) yield { line: startLine, malformed: 'the file ends inside this record' };
}

export const readers: Record<Format, (source: Readable) => AsyncGenerator<SourceRecord>> = { ndjson, csv, json };

/** The format a file name implies, if any. */
export function formatOf(name: string): Format | undefined {
  const ext = name.toLowerCase().split('.').pop();
  return ext === 'ndjson' || ext === 'jsonl' ? 'ndjson' : ext === 'csv' ? 'csv' : ext === 'json' ? 'json' : undefined;
}
