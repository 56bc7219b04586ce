// Model-based test of the status machine: long random sequences of operations run against the API
// and against an independent model of product.md's graph. Every answer, every stored history and
// every final status must agree with the model; a closed user never leaves `closed`.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;

beforeAll(async () => ({ ctx, api } = await openTenantContext()));
afterAll(() => ctx.close());

type S = 'active' | 'flagged' | 'suspended' | 'blocked' | 'closed';
// Written out from product.md, independently of src/modules/lifecycle/user-status.ts.
const GRAPH: Record<S, S[]> = {
  active: ['flagged', 'suspended', 'blocked', 'closed'],
  flagged: ['active', 'suspended', 'blocked', 'closed'],
  suspended: ['active', 'flagged', 'blocked', 'closed'],
  blocked: ['active', 'closed'],
  closed: [],
};
const SHORT: Record<string, { to: S; from?: S }> = {
  suspend: { to: 'suspended' }, unsuspend: { to: 'active', from: 'suspended' }, flag: { to: 'flagged' },
  block: { to: 'blocked' }, unblock: { to: 'active', from: 'blocked' },
};

type Command =
  | { kind: 'create' }
  | { kind: 'move'; user: number; to: S; reason: boolean }
  | { kind: 'short'; user: number; name: string; reason: boolean }
  | { kind: 'close'; user: number };

const statusArb = fc.constantFrom<S>('active', 'flagged', 'suspended', 'blocked', 'closed');
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ kind: 'create' as const }) },
  { weight: 12, arbitrary: fc.record({ kind: fc.constant('move' as const), user: fc.nat(), to: statusArb, reason: fc.boolean() }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('short' as const), user: fc.nat(), name: fc.constantFrom(...Object.keys(SHORT)), reason: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('close' as const), user: fc.nat() }) },
);

/** The status code the model expects, and the transition it records when the call succeeds. */
function expected(state: S, to: S, reason: boolean, from?: S): { code: number; moves: boolean } {
  // Every move takes a reason code: a body without one is refused as a body (400), before any state.
  if (!reason) return { code: 400, moves: false };
  if (state === 'closed') return { code: 409, moves: false };
  if (!GRAPH[state].includes(to) || (from && state !== from)) return { code: 409, moves: false };
  return { code: 201, moves: true };
}

describe('the status machine against its model', () => {
  it('1,000-step random sequences: zero divergences in answers, histories and final states; closed is never left', async () => {
    let divergences: string[] = [];
    await fc.assert(
      fc.asyncProperty(fc.array(commandArb, { minLength: 1000, maxLength: 1000 }), async (commands) => {
        const ids: string[] = [];
        const state: S[] = [];
        const modelHistory: Array<Array<[S, S]>> = [];
        const create = async () => {
          const res = await api.post('/v1/users', individual());
          ids.push(res.json().id);
          state.push('active');
          modelHistory.push([]);
        };
        await create();
        for (const [step, c] of commands.entries()) {
          if (c.kind === 'create') {
            await create();
            continue;
          }
          const u = c.user % ids.length;
          const id = ids[u]!;
          const before = state[u]!;
          let res;
          let exp: { code: number; moves: boolean };
          let to: S;
          if (c.kind === 'close') {
            to = 'closed';
            res = await api.delete(`/v1/users/${id}`, { origin: 'operator', reason: 'other' });
            exp = { code: 200, moves: before !== 'closed' };
          } else if (c.kind === 'move') {
            to = c.to;
            res = await api.post(`/v1/users/${id}/status-changes`, { status: c.to, ...(c.reason ? { reason: 'other' } : {}) });
            exp = expected(before, c.to, c.reason);
          } else {
            to = SHORT[c.name]!.to;
            res = await api.post(`/v1/users/${id}/${c.name}`, c.reason ? { reason: 'other' } : {});
            exp = expected(before, to, c.reason, SHORT[c.name]!.from);
          }
          if (res.statusCode !== exp.code) divergences.push(`step ${step}: ${JSON.stringify(c)} from ${before}: API ${res.statusCode}, model ${exp.code}`);
          if (exp.moves) {
            modelHistory[u]!.push([before, to]);
            state[u] = to;
          }
          if (before === 'closed' && res.statusCode < 300 && c.kind !== 'close') divergences.push(`step ${step}: left closed`);
        }
        for (const [u, id] of ids.entries()) {
          const rows = await ctx.db.selectFrom('status_changes').select(['from_status', 'to_status']).where('user_id', '=', id).orderBy('id').execute();
          const stored = rows.map((r) => [r.from_status, r.to_status]);
          if (JSON.stringify(stored) !== JSON.stringify(modelHistory[u])) divergences.push(`history of ${id}: stored ${JSON.stringify(stored)} model ${JSON.stringify(modelHistory[u])}`);
          const current = await ctx.db.selectFrom('users').select('status').where('id', '=', id).executeTakeFirstOrThrow();
          if (current.status !== state[u]) divergences.push(`status of ${id}: stored ${current.status}, model ${state[u]}`);
        }
        const found = divergences;
        divergences = [];
        expect(found).toEqual([]);
      }),
      // Shrinking a 1,000-step HTTP sequence would take minutes; the divergence list says what broke.
      { numRuns: 3, endOnFailure: true },
    );
  }, 180_000);
});
