import { describe, expect, it } from 'vitest';
import { decodeCursor, toPage } from './cursor.js';

const rows = (n: number, size: number) => Array.from({ length: n }, (_, i) => ({ id: String(1000 + i), blob: 'x'.repeat(size) }));
const key = (r: { id: string }) => ({ id: r.id });

describe('toPage', () => {
  it('stops a page at its byte budget with a cursor on the last row shown', () => {
    const page = toPage(rows(11, 100), 10, (r) => r, key, { budget: 1000 });
    expect(page.data.length).toBeLessThan(10);
    expect(page.data.length).toBeGreaterThan(0);
    expect(JSON.stringify(page.data).length).toBeLessThanOrEqual(1000);
    expect(decodeCursor(page.next_cursor!, ['id'])).toEqual({ id: page.data.at(-1)!.id });
  });

  it('always shows at least one row, however large', () => {
    const page = toPage(rows(2, 5000), 10, (r) => r, key, { budget: 1000 });
    expect(page.data).toHaveLength(1);
    expect(page.next_cursor).not.toBeNull();
  });

  it('within the budget: the count decides, and the last page has no cursor', () => {
    expect(toPage(rows(11, 10), 10, (r) => r, key).data).toHaveLength(10);
    expect(toPage(rows(11, 10), 10, (r) => r, key).next_cursor).not.toBeNull();
    expect(toPage(rows(3, 10), 10, (r) => r, key)).toMatchObject({ next_cursor: null });
  });
});
