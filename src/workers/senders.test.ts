// The sender pool's accounting: a tenant's room counts its slow sends too; only a send whose request
// is on the wire turns slow (a slow database building a payload or recording an attempt frees nothing).
import { describe, expect, it } from 'vitest';
import { createSenderPool, SEND_CONCURRENCY, TENANT_SENDS } from './senders.js';

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('createSenderPool', () => {
  it('gives a slow send\'s sender back to the others, never its tenant\'s room; only while its request is out', async () => {
    let freed = 0;
    const pool = createSenderPool({ onFreed: () => freed++, slowAfterMs: 40 });
    const waiting = pool.take('ten_a'); // its payload is being built: not sending yet
    const out = Array.from({ length: TENANT_SENDS - 1 }, () => pool.take('ten_a'));
    out.forEach((h) => pool.sending(h));
    expect([pool.free(), pool.roomOf('ten_a'), pool.roomOf('ten_b')]).toEqual([SEND_CONCURRENCY - TENANT_SENDS, 0, TENANT_SENDS]);
    await wait(120);
    // The nine on the wire turned slow and freed their senders; the tenant's room is still full.
    expect(freed).toBeGreaterThan(0);
    expect([pool.free(), pool.roomOf('ten_a')]).toEqual([SEND_CONCURRENCY - 1, 0]);
    expect(pool.rooms()).toEqual({ tenants: ['ten_a'], rooms: [0] });
    // The one never sent stayed busy; an answered send stops its clock.
    pool.sending(waiting);
    pool.sent(waiting);
    await wait(120);
    expect(pool.free()).toBe(SEND_CONCURRENCY - 1);
    [waiting, ...out].forEach((h) => pool.release(h));
    pool.release(waiting); // twice: no effect
    expect([pool.free(), pool.roomOf('ten_a'), pool.rooms().tenants]).toEqual([SEND_CONCURRENCY, TENANT_SENDS, []]);
  });
});
