// Values of tenant-defined fields, checked against their definitions. Pure. Errors name the field at
// fault as the policy does (`custom.<name>`, `custom.<name>.<property>`), in the API's problem format.
import type { FieldError } from '../../http/errors.js';
import type { RE2JS } from 're2js';
import { compilePattern, CUSTOM_LIMITS, customPath, type CustomFieldDefinitions, type FieldSchema } from './definitions.js';
import { mergePatch, type JsonObject } from '../users/merge-patch.js';

const isObj = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v) ?? '');

// Compiled patterns, by source: definitions change rarely and a tenant has at most 50 fields, so
// this stays small; it is bounded anyway, since pattern sources come from tenants.
const patterns = new Map<string, RE2JS>();
function pattern(source: string): RE2JS | undefined {
  let re = patterns.get(source);
  if (!re) {
    const compiled = compilePattern(source);
    if ('error' in compiled) return undefined;
    if (patterns.size >= 1000) patterns.clear();
    patterns.set(source, (re = compiled.re));
  }
  return re;
}

function isDate(s: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(s)) return false;
  const d = new Date(`${s}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === s;
}

function checkValue(s: FieldSchema, v: unknown, at: string, errors: FieldError[]): void {
  const err = (code: string, message: string, field = at): void => void errors.push({ field, code, message });
  switch (s.type) {
    case 'string': {
      if (typeof v !== 'string') return err('invalid_type', 'must be a string');
      const max = s.maxLength ?? CUSTOM_LIMITS.defaultMaxLength;
      if (v.length > max) return err('too_long', `at most ${max} characters`);
      if (s.minLength !== undefined && v.length < s.minLength) return err('too_short', `at least ${s.minLength} characters`);
      // eslint-disable-next-line no-control-regex
      if (/[\u0000-\u001f\u007f]/.test(v)) return err('invalid_characters', 'control characters are not allowed');
      if (s.enum && !s.enum.includes(v)) return err('not_in_enum', `must be one of ${s.enum.join(', ')}`);
      if (s.format === 'date' && !isDate(v)) return err('invalid_date', 'must be a real date, YYYY-MM-DD');
      if (s.pattern !== undefined && !pattern(s.pattern)?.matcher(v).find()) return err('pattern_mismatch', `must match ${s.pattern}`);
      return;
    }
    case 'number':
    case 'integer': {
      if (typeof v !== 'number' || !Number.isFinite(v)) return err('invalid_type', `must be a${s.type === 'integer' ? 'n integer' : ' number'}`);
      if (s.type === 'integer' && !Number.isSafeInteger(v)) return err('invalid_type', 'must be an integer');
      if (s.minimum !== undefined && v < s.minimum) return err('below_minimum', `must be at least ${s.minimum}`);
      if (s.maximum !== undefined && v > s.maximum) return err('above_maximum', `must be at most ${s.maximum}`);
      return;
    }
    case 'boolean':
      if (typeof v !== 'boolean') err('invalid_type', 'must be a boolean');
      return;
    case 'object': {
      if (!isObj(v)) return err('invalid_type', 'must be an object');
      for (const [k, sub] of Object.entries(v)) {
        if (!Object.hasOwn(s.properties, k)) err('unknown_field', 'not a declared property', `${at}.${k}`);
        else checkValue(s.properties[k]!, sub, `${at}.${k}`, errors);
      }
      for (const r of s.required ?? []) if (!Object.hasOwn(v, r)) err('required', 'is required', `${at}.${r}`);
    }
  }
}

/**
 * Checks the values a create or patch would leave for the fields it names: `current` is what is
 * stored (plain), `input` the body's `custom` (a merge patch; on create, merged over nothing). A name
 * without a definition is refused (unknown_field), even when a value is stored under it: a removed
 * definition's values stay readable but frozen. Nothing here is thrown: the caller decides.
 */
export function checkCustomInput(defs: CustomFieldDefinitions, current: JsonObject, input: JsonObject): FieldError[] {
  const errors: FieldError[] = [];
  for (const [name, value] of Object.entries(input)) {
    const at = customPath(name);
    if (!Object.hasOwn(defs, name)) {
      errors.push({
        field: at, code: 'unknown_field',
        message: Object.hasOwn(current, name)
          ? 'its definition was removed from the policy: the stored value is kept, read-only, until the definition is restored'
          : 'no such field is defined in the tenant policy (custom_fields)',
      });
      continue;
    }
    if (value === null) continue; // cleared
    if (bytes(value) > CUSTOM_LIMITS.valueBytes) {
      errors.push({ field: at, code: 'too_large', message: `at most ${CUSTOM_LIMITS.valueBytes} bytes serialised` });
      continue;
    }
    checkValue(defs[name]!.schema, mergePatch(current[name], value), at, errors);
  }
  return errors;
}

/** All of a user's custom values together, after a change: one bound, as metadata has. */
export function customTooLarge(merged: unknown): FieldError | undefined {
  const n = bytes(merged ?? {});
  return n > CUSTOM_LIMITS.allValuesBytes
    ? { field: 'custom', code: 'too_large', message: `all custom values together would be ${n} bytes serialised; at most ${CUSTOM_LIMITS.allValuesBytes}` }
    : undefined;
}

/**
 * The typed value a search string stands for (`?custom=name:value`), or an error: strings and dates
 * as they are, numbers and booleans parsed, so `tier:3` finds the integer 3.
 */
export function searchValue(defs: CustomFieldDefinitions, name: string, raw: string): { value: unknown } | { error: FieldError } {
  const bad = (code: string, message: string) => ({ error: { field: 'custom', code, message } });
  if (!Object.hasOwn(defs, name)) return bad('unknown_field', `no custom field ${name} is defined`);
  const d = defs[name]!;
  if (!d.searchable) return bad('not_searchable', `custom field ${name} is not searchable (set searchable: true in its definition)`);
  const type = d.schema.type;
  if (type === 'string') return { value: raw };
  if (type === 'boolean') return raw === 'true' || raw === 'false' ? { value: raw === 'true' } : bad('invalid_type', `${name} is a boolean: true or false`);
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || (type === 'integer' && !Number.isSafeInteger(n))) return bad('invalid_type', `${name} is a ${type}`);
  return { value: n };
}
