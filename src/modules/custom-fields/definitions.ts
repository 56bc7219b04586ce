// Tenant-defined fields: what a tenant may declare in its policy (`custom_fields`), checked when the
// policy is set, and compiled into value checkers. Pure: no I/O, no framework.
//
// A definition's schema is a small, closed subset of JSON Schema, not whatever Ajv would take: a
// tenant's schema runs on every write of every user, so each keyword it may use is bounded here
// (string lengths, enum sizes, property counts, depth ≤ 2) and anything else is refused by name.
// Patterns are compiled with RE2 (re2js, a pure JavaScript port): matching is linear in the input
// whatever the pattern, so `^(a+)+$` costs what `^a+$` costs and no pattern can stall the event
// loop; the price is that backreferences and lookarounds, which no linear engine can run, are
// refused when the policy is set (bad_pattern).
import { RE2JS } from 're2js';
import type { FieldError } from '../../http/errors.js';

export interface ScalarSchema {
  type: 'string' | 'number' | 'integer' | 'boolean';
  description?: string;
  title?: string;
  // string
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  enum?: string[];
  format?: 'date';
  // number, integer
  minimum?: number;
  maximum?: number;
}
export interface ObjectSchema {
  type: 'object';
  description?: string;
  title?: string;
  properties: Record<string, FieldSchema>;
  required?: string[];
  additionalProperties?: false;
}
export type FieldSchema = ScalarSchema | ObjectSchema;

export interface CustomFieldDefinition {
  schema: FieldSchema;
  /** Sealed with the user's data key at rest, destroyed with it by erasure. */
  personal: boolean;
  /** May be searched with GET /v1/users?custom=<name>:<value> (exact match). */
  searchable: boolean;
  description?: string;
}
export type CustomFieldDefinitions = Record<string, CustomFieldDefinition>;

export const CUSTOM_LIMITS = {
  /** Definitions per tenant. */
  fields: 50,
  /** One definition, serialised. */
  definitionBytes: 2048,
  /** All definitions, serialised (the tenant row's policy is bounded at 64 KiB of jsonb text). */
  allBytes: 24 * 1024,
  /** Properties of one object. */
  properties: 20,
  /** An object inside a field's object, no deeper. */
  depth: 2,
  /** Default and largest maxLength of a string. */
  defaultMaxLength: 200,
  maxLength: 2000,
  pattern: 200,
  /** RE2 program instructions × the field's maxLength (≈ 25 ms of matching at most, per value). */
  patternCost: 1_000_000,
  enumItems: 100,
  enumItem: 100,
  /** One value, and all of a user's values, serialised. */
  valueBytes: 2048,
  allValuesBytes: 8 * 1024,
} as const;

/** Names of fields and properties: safe as object keys, JSON keys, policy paths and query values. */
export const NAME_PATTERN = /^[a-z][a-z0-9_]{0,39}$/;
// Lower-case names a plain object already has: never a key of stored data (see values.ts, which
// reads definitions by Object.hasOwn only, as defence in depth).
const RESERVED = new Set(['constructor', 'prototype', 'toString', '__proto__']);

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v) ?? '');

const COMMON_KEYS = ['type', 'description', 'title'];
const KEYWORDS: Record<string, string[]> = {
  string: [...COMMON_KEYS, 'minLength', 'maxLength', 'pattern', 'enum', 'format'],
  number: [...COMMON_KEYS, 'minimum', 'maximum'],
  integer: [...COMMON_KEYS, 'minimum', 'maximum'],
  boolean: COMMON_KEYS,
  object: [...COMMON_KEYS, 'properties', 'required', 'additionalProperties'],
};
export const SCHEMA_TYPES = Object.keys(KEYWORDS);

/**
 * What a pattern costs per write. RE2 is linear in the input, but the factor is the size of the
 * compiled program, and counted repetitions make that large: `[\s\S]{1000}[\s\S]{1000}` is a
 * 2,002-instruction program that takes ~100 ms on a 2,000-character value, on every write. So the
 * budget is instructions × the longest value the field allows; ordinary patterns are tens of
 * instructions. The program's size is read from re2js's compiled form; should a later version not
 * expose it, one timed compile-and-match on a value of that length stands in.
 */
function patternCost(pattern: string, maxLength: number): { cost: number; instructions: number | null } | { error: string } {
  const length = Math.min(Math.max(maxLength, 1), CUSTOM_LIMITS.maxLength);
  const started = performance.now();
  const compiled = compilePattern(pattern);
  if ('error' in compiled) return compiled;
  const inst = (compiled.re as unknown as { re2Input?: { prog?: { inst?: unknown[] } } }).re2Input?.prog?.inst?.length;
  if (typeof inst === 'number') return { cost: inst * length, instructions: inst };
  compiled.re.matcher('a'.repeat(length)).find();
  // Measured: ~25 ns per instruction and character; the budget in the same unit.
  return { cost: ((performance.now() - started) * 1e6) / 25, instructions: null };
}

/** Compiles a pattern for RE2, or the reason it cannot be. */
export function compilePattern(pattern: string): { re: RE2JS } | { error: string } {
  try {
    return { re: RE2JS.compile(pattern) };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

function checkSchema(s: unknown, at: string, depth: number, errors: FieldError[]): void {
  const err = (field: string, code: string, message: string): void => void errors.push({ field, code, message });
  if (!isObj(s)) return err(at, 'invalid_type', 'must be a JSON Schema object');
  const type = s.type;
  if (typeof type !== 'string' || !Object.hasOwn(KEYWORDS, type)) {
    return err(`${at}.type`, 'unknown_type', `must be one of ${SCHEMA_TYPES.join(', ')} (a date is a string with format date)`);
  }
  for (const k of Object.keys(s)) if (!KEYWORDS[type]!.includes(k)) err(`${at}.${k}`, 'unsupported_keyword', `not supported for type ${type}`);
  for (const k of ['description', 'title'] as const) {
    if (s[k] !== undefined && (typeof s[k] !== 'string' || (s[k] as string).length > 500)) err(`${at}.${k}`, 'invalid_type', 'must be a string of at most 500 characters');
  }
  const count = (k: string, max: number) => {
    const v = s[k];
    if (v !== undefined && !(Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max)) err(`${at}.${k}`, 'bad_bound', `must be an integer from 0 to ${max}`);
  };
  if (type === 'string') {
    count('minLength', CUSTOM_LIMITS.maxLength);
    count('maxLength', CUSTOM_LIMITS.maxLength);
    if (s.format !== undefined && s.format !== 'date') err(`${at}.format`, 'unsupported_keyword', 'the only format is date (YYYY-MM-DD)');
    if (s.pattern !== undefined) {
      if (typeof s.pattern !== 'string' || s.pattern.length === 0 || s.pattern.length > CUSTOM_LIMITS.pattern) {
        err(`${at}.pattern`, 'bad_pattern', `must be a non-empty string of at most ${CUSTOM_LIMITS.pattern} characters`);
      } else {
        const cost = patternCost(s.pattern, typeof s.maxLength === 'number' ? s.maxLength : CUSTOM_LIMITS.defaultMaxLength);
        if ('error' in cost) err(`${at}.pattern`, 'bad_pattern', `not a pattern this service runs (RE2 syntax: no backreferences or lookarounds): ${cost.error}`);
        else if (cost.cost > CUSTOM_LIMITS.patternCost) {
          err(`${at}.pattern`, 'bad_pattern', `costs too much to run on values this long${cost.instructions ? ` (${cost.instructions} RE2 instructions)` : ''}: use fewer counted repetitions or a smaller maxLength`);
        }
      }
    }
    if (s.enum !== undefined) {
      const e = s.enum;
      if (!Array.isArray(e) || e.length === 0 || e.length > CUSTOM_LIMITS.enumItems || new Set(e).size !== e.length
        || !e.every((x) => typeof x === 'string' && x.length > 0 && x.length <= CUSTOM_LIMITS.enumItem)) {
        err(`${at}.enum`, 'bad_enum', `must be 1 to ${CUSTOM_LIMITS.enumItems} distinct strings of 1 to ${CUSTOM_LIMITS.enumItem} characters`);
      }
    }
  }
  if (type === 'number' || type === 'integer') {
    for (const k of ['minimum', 'maximum']) {
      if (s[k] !== undefined && !(typeof s[k] === 'number' && Number.isFinite(s[k]))) err(`${at}.${k}`, 'bad_bound', 'must be a finite number');
    }
    if (typeof s.minimum === 'number' && typeof s.maximum === 'number' && s.minimum > s.maximum) err(`${at}.minimum`, 'bad_bound', 'is greater than maximum');
  }
  if (typeof s.minLength === 'number' && typeof s.maxLength === 'number' && s.minLength > s.maxLength) err(`${at}.minLength`, 'bad_bound', 'is greater than maxLength');
  if (type === 'object') {
    if (depth > CUSTOM_LIMITS.depth) return err(at, 'too_deep', `objects nest at most ${CUSTOM_LIMITS.depth} deep (an object of objects of values)`);
    if (s.additionalProperties !== undefined && s.additionalProperties !== false) {
      err(`${at}.additionalProperties`, 'unsupported_keyword', 'may only be false: an object holds its declared properties and no others');
    }
    const props = s.properties;
    if (!isObj(props) || Object.keys(props).length === 0) return err(`${at}.properties`, 'invalid_type', 'must be an object with at least one property');
    if (Object.keys(props).length > CUSTOM_LIMITS.properties) err(`${at}.properties`, 'too_many', `at most ${CUSTOM_LIMITS.properties} properties`);
    for (const [name, sub] of Object.entries(props)) {
      if (!NAME_PATTERN.test(name) || RESERVED.has(name)) err(`${at}.properties.${name}`, 'invalid_name', 'must match ^[a-z][a-z0-9_]{0,39}$ and not be a reserved name');
      else checkSchema(sub, `${at}.properties.${name}`, depth + 1, errors);
    }
    if (s.required !== undefined) {
      const r = s.required;
      if (!Array.isArray(r) || new Set(r).size !== r.length || !r.every((x) => typeof x === 'string' && Object.hasOwn(props, x))) {
        err(`${at}.required`, 'invalid_type', 'must list distinct names of declared properties');
      }
    }
  }
}

/** Checks a tenant's definitions; each error names the exact path (custom_fields.<name>.schema…). */
export function validateDefinitions(defs: unknown): FieldError[] {
  const errors: FieldError[] = [];
  if (!isObj(defs)) return [{ field: 'custom_fields', code: 'invalid_type', message: 'must be an object of name → definition' }];
  const names = Object.keys(defs);
  if (names.length > CUSTOM_LIMITS.fields) errors.push({ field: 'custom_fields', code: 'too_many', message: `at most ${CUSTOM_LIMITS.fields} fields` });
  if (bytes(defs) > CUSTOM_LIMITS.allBytes) errors.push({ field: 'custom_fields', code: 'too_large', message: `at most ${CUSTOM_LIMITS.allBytes} bytes serialised` });
  for (const name of names) {
    const at = `custom_fields.${name}`;
    const d = defs[name];
    if (!NAME_PATTERN.test(name) || RESERVED.has(name)) {
      errors.push({ field: at, code: 'invalid_name', message: 'must match ^[a-z][a-z0-9_]{0,39}$ and not be a reserved name' });
      continue;
    }
    if (!isObj(d)) {
      errors.push({ field: at, code: 'invalid_type', message: 'must be an object { schema, personal?, searchable?, description? }' });
      continue;
    }
    if (bytes(d) > CUSTOM_LIMITS.definitionBytes) {
      errors.push({ field: at, code: 'too_large', message: `at most ${CUSTOM_LIMITS.definitionBytes} bytes serialised` });
      continue;
    }
    for (const k of Object.keys(d)) {
      if (!['schema', 'personal', 'searchable', 'description'].includes(k)) errors.push({ field: `${at}.${k}`, code: 'unsupported_keyword', message: 'not part of a definition' });
    }
    for (const k of ['personal', 'searchable']) {
      if (d[k] !== undefined && typeof d[k] !== 'boolean') errors.push({ field: `${at}.${k}`, code: 'invalid_type', message: 'must be a boolean' });
    }
    if (d.description !== undefined && (typeof d.description !== 'string' || d.description.length > 500)) {
      errors.push({ field: `${at}.description`, code: 'invalid_type', message: 'must be a string of at most 500 characters' });
    }
    checkSchema(d.schema, `${at}.schema`, 1, errors);
    if (d.searchable === true && isObj(d.schema) && d.schema.type === 'object') {
      errors.push({ field: `${at}.searchable`, code: 'not_searchable', message: 'only a string, number, integer, boolean or date field can be searchable' });
    }
  }
  return errors;
}

/** Definitions as stored (already valid), with their flags filled in. */
export function normaliseDefinitions(defs: Record<string, Partial<CustomFieldDefinition>> | undefined): CustomFieldDefinitions {
  const out: CustomFieldDefinitions = {};
  for (const [name, d] of Object.entries(defs ?? {})) {
    out[name] = { schema: d.schema!, personal: d.personal ?? false, searchable: d.searchable ?? false, ...(d.description ? { description: d.description } : {}) };
  }
  return out;
}

/** The policy's name for a custom field (outcomes under `fields`, errors, changed_fields). */
export const customPath = (name: string) => `custom.${name}`;
