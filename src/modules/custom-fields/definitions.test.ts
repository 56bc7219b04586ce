// The pure rules of tenant-defined fields: what a definition may say, and how values are judged.
import { describe, expect, it } from 'vitest';
import { normaliseDefinitions, validateDefinitions } from './definitions.js';
import { checkCustomInput, customTooLarge, searchValue } from './values.js';
import { plainRow, storeProfile } from './storage.js';

const defs = normaliseDefinitions({
  code: { schema: { type: 'string', pattern: '^(a+)+$', maxLength: 2000 } },
  tier: { schema: { type: 'integer', minimum: 1, maximum: 5 }, searchable: true },
  secret: { schema: { type: 'string' }, personal: true, searchable: true },
  flag: { schema: { type: 'boolean' }, searchable: true },
});

describe('definitions', () => {
  it('accept the documented subset, objects of objects included', () => {
    expect(validateDefinitions({
      a: { schema: { type: 'object', properties: { b: { type: 'object', properties: { c: { type: 'string', format: 'date' } }, required: ['c'] } } }, personal: true },
      n: { schema: { type: 'number', minimum: -1.5, maximum: 2 }, description: 'a ratio' },
    })).toEqual([]);
  });

  it('refuse keywords outside the subset, even harmless-looking ones', () => {
    const errors = validateDefinitions({ a: { schema: { type: 'string', format: 'email', default: 'x', minimum: 1 } } });
    expect(errors.map((e) => [e.field, e.code])).toEqual([
      ['custom_fields.a.schema.default', 'unsupported_keyword'], ['custom_fields.a.schema.minimum', 'unsupported_keyword'],
      ['custom_fields.a.schema.format', 'unsupported_keyword'],
    ]);
  });

  it('refuse inverted bounds and a required property that is not declared', () => {
    expect(validateDefinitions({ a: { schema: { type: 'integer', minimum: 5, maximum: 1 } } })[0]).toMatchObject({ code: 'bad_bound' });
    expect(validateDefinitions({ a: { schema: { type: 'object', properties: { b: { type: 'string' } }, required: ['c'] } } })[0])
      .toMatchObject({ field: 'custom_fields.a.schema.required', code: 'invalid_type' });
  });
});

describe('values', () => {
  it('a catastrophic pattern runs in linear time on RE2: 100,000 characters in well under a second', () => {
    const long = { schema: { type: 'string' as const, pattern: '^(a+)+$', maxLength: 2000 }, personal: false, searchable: false };
    const started = performance.now();
    // maxLength is checked first; the pattern itself is what is timed here.
    const errors = checkCustomInput({ code: { ...long, schema: { ...long.schema, maxLength: undefined } } } as never, {}, { code: `${'a'.repeat(100_000)}!` });
    expect(errors[0]).toMatchObject({ field: 'custom.code' });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('read definitions by own property only: constructor or toString are no definitions', () => {
    for (const name of ['constructor', 'toString', 'hasOwnProperty']) {
      expect(checkCustomInput(defs, {}, { [name]: 'x' })).toEqual([expect.objectContaining({ field: `custom.${name}`, code: 'unknown_field' })]);
    }
  });

  it('bound all of a user’s values together', () => {
    expect(customTooLarge({ a: 'x'.repeat(9000) })).toMatchObject({ field: 'custom', code: 'too_large' });
    expect(customTooLarge({ a: 'x' })).toBeUndefined();
  });

  it('search strings are typed by the definition', () => {
    expect(searchValue(defs, 'tier', '3')).toEqual({ value: 3 });
    expect(searchValue(defs, 'tier', '3.5')).toMatchObject({ error: { code: 'invalid_type' } });
    expect(searchValue(defs, 'flag', 'true')).toEqual({ value: true });
    expect(searchValue(defs, 'code', 'a')).toMatchObject({ error: { code: 'not_searchable' } });
    expect(searchValue(defs, 'constructor', 'a')).toMatchObject({ error: { code: 'unknown_field' } });
  });
});

describe('stored form', () => {
  const keyring = { sealWith: (_k: unknown, _t: string, _u: string, _f: string, v: unknown) => `sealed:${JSON.stringify(v)}`, mac: (c: string, d: string) => `${c}|${d}`.padEnd(40, '.') };
  it('keeps clear values in the clear, seals personal and orphaned ones, and indexes searchable personal ones', () => {
    const stored = storeProfile(keyring as never, { keyId: 'k', key: Buffer.alloc(32) }, 't1', 'u1', { first_name: 'A', custom: { tier: 2, secret: 's', gone: 'x' } }, defs);
    expect(stored).toEqual({ first_name: 'A', custom: { tier: 2 }, custom_sealed: 'sealed:{"secret":"s","gone":"x"}', custom_index: [expect.stringContaining('custom-search:t1|secret')] });
    expect(plainRow({ profile: stored }, { tier: 2, secret: 's' })).toEqual({ profile: { first_name: 'A', custom: { tier: 2, secret: 's' } } });
    expect(storeProfile(keyring as never, { keyId: 'k', key: Buffer.alloc(32) }, 't1', 'u1', { first_name: 'A', custom: {} }, defs)).toEqual({ first_name: 'A' });
  });
});
