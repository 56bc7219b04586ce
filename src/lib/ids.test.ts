import { describe, expect, it } from 'vitest';
import { newId, ulid } from './ids.js';

describe('ids', () => {
  it('are type-prefixed 26-character ULIDs', () => {
    expect(newId('usr')).toMatch(/^usr_[0-9A-HJKMNP-TV-Z]{26}$/);
  });

  it('sort in creation order, even within one millisecond', () => {
    const ids = Array.from({ length: 10_000 }, () => ulid(1_700_000_000_000));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('encode the creation time in the first ten characters, and never go back in time', () => {
    const decode = (id: string) =>
      [...id.slice(0, 10)].reduce((n, c) => n * 32 + '0123456789ABCDEFGHJKMNPQRSTVWXYZ'.indexOf(c), 0);
    const t = Date.now() + 60_000;
    expect(decode(ulid(t))).toBe(t);
    expect(decode(ulid(t - 120_000))).toBe(t); // a clock step backwards keeps the order
  });
});
