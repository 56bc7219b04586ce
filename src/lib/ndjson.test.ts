import { describe, expect, it } from 'vitest';
import { NdjsonPage } from './ndjson.js';

describe('NdjsonPage', () => {
  it('gives the bytes of the lines joined as strings, across growth and pages, with any characters', () => {
    const page = new NdjsonPage(8);
    const values = [
      { name: 'Zoë Ångström', city: 'Åre' },
      { emoji: '🙂🙃', cjk: '東京', lone: '\ud800' },
      'x'.repeat(5_000),
      null,
      [1, 2, { nested: ['é'] }],
    ];
    for (const v of values) page.push(v);
    const first = page.take();
    expect(first.toString('utf8')).toBe(values.map((v) => JSON.stringify(v) + '\n').join(''));
    // The scratch is reused: the first page's bytes are its own, the second holds only its lines.
    page.push({ second: true });
    const second = page.take();
    expect(second.toString('utf8')).toBe('{"second":true}\n');
    expect(first.toString('utf8').startsWith('{"name":"Zoë')).toBe(true);
    expect(page.take().length).toBe(0);
  });
});
