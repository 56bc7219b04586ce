import { describe, expect, it } from 'vitest';
import { changedFields, mergePatch, valueAt } from './merge-patch.js';

describe('JSON Merge Patch (RFC 7396)', () => {
  // The examples of RFC 7396 appendix A.
  it.each([
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ])('merges %j with %j into %j', (target, patch, expected) => {
    expect(mergePatch(target, patch)).toEqual(expected);
  });

  it('does not modify its inputs', () => {
    const target = { a: { b: 1 } };
    mergePatch(target, { a: { b: 2 } });
    expect(target).toEqual({ a: { b: 1 } });
  });
});

describe('changed fields', () => {
  it('names addresses leaf by leaf and everything else whole; absent equals null', () => {
    const before = { email: 'a@x', address: { line1: 'x', city: 'P' }, tags: ['a'], metadata: { k: 1 }, phone: null };
    const after = { email: 'a@x', address: { line1: 'y', city: 'P', postcode: '1' }, tags: ['a', 'b'], metadata: { k: 1 } };
    expect(changedFields(before, after)).toEqual(['address.line1', 'address.postcode', 'tags']);
  });

  it('reads values at dotted paths', () => {
    expect(valueAt({ address: { line1: 'x' } }, 'address.line1')).toBe('x');
    expect(valueAt({ address: null }, 'address.line1')).toBeNull();
    expect(valueAt({}, 'email')).toBeNull();
  });
});
