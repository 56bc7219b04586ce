// The pooled draws: the right length, never the same bytes twice, across refills of the pool.
import { describe, expect, it } from 'vitest';
import { randomBytes } from './random.js';

describe('randomBytes', () => {
  it('answers fresh bytes of the asked length on every draw, across many refills of the pool', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const n = [10, 12, 32, 8, 255][i % 5]!;
      const b = randomBytes(n);
      expect(b.length).toBe(n);
      // A 10-byte or larger draw repeating would mean a slice of the pool was handed out twice.
      if (n >= 10) {
        expect(seen.has(b.toString('hex'))).toBe(false);
        seen.add(b.toString('hex'));
      }
    }
  });

  it('hands out copies: changing a draw changes no later one', () => {
    const a = randomBytes(32);
    a.fill(0);
    expect(randomBytes(32).equals(Buffer.alloc(32))).toBe(false);
  });

  it('draws above 256 bytes straight from the CSPRNG', () => {
    expect(randomBytes(4097).length).toBe(4097);
  });
});
