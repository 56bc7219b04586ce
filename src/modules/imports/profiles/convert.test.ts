// The income band conversion: a vendor range becomes a band only when one band holds all of it.
import { describe, expect, it } from 'vitest';
import { incomeBand } from './convert.js';

describe('incomeBand', () => {
  it.each([
    ['19-23', 1000, '10k_25k'], ['28-35', 1000, '25k_50k'], ['0-18', 1000, undefined], ['24-27', 1000, undefined], ['36-56', 1000, undefined], ['57-*', 1000, undefined],
    ['50k-100k', 1, '50k_100k'], ['10,000 - 25,000', 1, '10k_25k'], ['100k–250k', 1, '100k_250k'], ['<10k', 1, 'under_10k'], ['below 10000', 1, 'under_10k'],
    ['>250k', 1, 'over_250k'], ['over 250000', 1, 'over_250k'], ['250k+', 1, 'over_250k'], ['300000-*', 1, 'over_250k'],
    ['20k-60k', 1, undefined], ['60-20', 1, undefined], ['high', 1, undefined], ['', 1, undefined], [null, 1, undefined],
  ])('%s (unit %d) → %s', (value, unit, band) => {
    expect(incomeBand(value, unit)).toBe(band);
  });
});
