import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalJson, canonicalJsonDeep, canonicalPick } from './canonical-json.js';

describe('RFC 8785 canonical JSON', () => {
  it('sorts keys by UTF-16 code units at every depth and drops whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
    // RFC 8785 §3.2.3: sorting is by UTF-16 code units, not code points.
    expect(canonicalJson({ '\u20ac': 1, '\r': 2, '\ud83d\ude00': 3, '1': 4, '\u0080': 5, 'ö': 6 }))
      .toBe('{"\\r":2,"1":4,"\u0080":5,"ö":6,"\u20ac":1,"\ud83d\ude00":3}');
  });

  it('writes numbers and strings as ECMAScript does (RFC 8785 §3.2.2)', () => {
    expect(canonicalJson([1e21, 1e-7, 0.000001, -0, Number('333333333.33333329'), 'a\u2028b"\\'])).toBe('[1e+21,1e-7,0.000001,0,333333333.3333333,"a\u2028b\\"\\\\"]');
    expect(() => canonicalJson(NaN)).toThrow();
  });
});

describe('canonical JSON without recursion', () => {
  it('writes what JSON.stringify writes for key-sorted values, at every shape (undefined, functions, Dates, nesting)', () => {
    const sorted = (v: unknown): unknown =>
      v !== null && typeof v === 'object' && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => [k, sorted(x)]))
        : Array.isArray(v) ? v.map(sorted) : v;
    const samples: unknown[] = [
      {}, [], [[]], { a: [] }, { b: { a: { c: [1, 'x', null, true, { z: 0, y: [{}] }] } }, a: -1.5 },
      [1, undefined, 3], { a: undefined, b: 1 }, 'text', 0, null, true,
    ];
    for (const s of samples) expect(canonicalJson(s)).toBe(JSON.stringify(sorted(s)));
    // Values JSON.stringify would handle differently keep the earlier recursive behaviour.
    expect(canonicalJson({ f: () => 1 })).toBe('{"f":null}');
    expect(canonicalJson([() => 1])).toBe('[null]');
    expect(canonicalJson({ d: new Date(0) })).toBe('{"d":{}}');
    expect(canonicalJson(undefined)).toBe('null');
  });
});

describe('a fixed set of keys', () => {
  it('writes what canonicalJson writes for the object of those keys, at any depth, absent keys and undefined values left out', () => {
    const key = fc.constantFrom('b', 'a', 'ä', 'B', 'a1', '_', 'zz', '');
    fc.assert(
      fc.property(fc.dictionary(key, fc.jsonValue()), fc.uniqueArray(key), (o, keys) => {
        const sorted = [...keys].sort();
        return canonicalPick(o, sorted) === canonicalJson(Object.fromEntries(sorted.map((k) => [k, o[k]])));
      }),
      { numRuns: 2000 },
    );
    let deep: unknown = 1;
    for (let i = 0; i < 200; i++) deep = { z: deep };
    expect(canonicalPick({ a: deep, b: undefined }, ['a', 'b'])).toBe(canonicalJson({ a: deep }));
  });
});

describe('the two writers', () => {
  it('write the same text for any JSON value, and for values nested past the fast writer\'s depth', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => canonicalJson(v) === canonicalJsonDeep(v)), { numRuns: 2000 });
    let deep: unknown = { leaf: ['x', { b: 1, a: 2 }] };
    for (let i = 0; i < 5000; i++) deep = i % 2 ? [deep, i] : { z: deep, a: i };
    expect(canonicalJson(deep)).toBe(canonicalJsonDeep(deep));
    expect(canonicalJson(deep).length).toBeGreaterThan(30_000);
  });
});
