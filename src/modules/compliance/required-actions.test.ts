import { describe, expect, it } from 'vitest';
import type { RequiredAction } from '../../db/database.js';
import { checkNew, fulfil, KEEP_RESOLVED, MAX_OPEN, withAction } from './required-actions.js';

const action = (over: Partial<RequiredAction>): RequiredAction => ({
  id: `rqa_${Math.random()}`, code: 'provide_field', field: null, document_type: null, message: null, due_at: null,
  status: 'open', created_at: '2026-01-01T00:00:00.000Z', resolved_at: null, ...over,
});
const FIELDS = ['email', 'address.line1', 'address.city', 'employer.name', 'country'];

describe('a new required action', () => {
  it('names what its code needs, one of field or document_type, a field of the user, a future due date', () => {
    expect(checkNew({ code: 'provide_field', field: 'address' }, FIELDS, 0)).toEqual([]);
    expect(checkNew({ code: 'provide_document', document_type: 'proof_of_address' }, FIELDS, 0)).toEqual([]);
    expect(checkNew({ code: 'other' }, FIELDS, 0)).toEqual([]);
    expect(checkNew({ code: 'provide_field' }, FIELDS, 0).map((e) => e.code)).toEqual(['required']);
    expect(checkNew({ code: 'other', field: 'email', document_type: 'selfie' }, FIELDS, 0).map((e) => e.code)).toEqual(['one_of']);
    expect(checkNew({ code: 'provide_field', field: 'addr' }, FIELDS, 0).map((e) => e.code)).toEqual(['unknown_field']);
    expect(checkNew({ code: 'provide_field', field: 'country' }, FIELDS, 0).map((e) => e.code)).toEqual(['unknown_field']);
    expect(checkNew({ code: 'other', due_at: '2020-01-01T00:00:00Z' }, FIELDS, 0).map((e) => e.code)).toEqual(['in_the_past']);
    expect(checkNew({ code: 'other' }, FIELDS, MAX_OPEN).map((e) => e.code)).toEqual(['too_many_open']);
  });
});

describe('fulfilment', () => {
  it('an open action on a field is fulfilled by that field or a leaf of it; on a document by its type', () => {
    const a = action({ field: 'address' });
    const b = action({ field: 'email' });
    const c = action({ code: 'provide_document', document_type: 'proof_of_address' });
    const d = action({ field: 'address.city', status: 'cancelled' });
    const out = fulfil([a, b, c, d], { fields: ['address.line1'] }, 'T');
    expect(out.fulfilled.map((x) => x.id)).toEqual([a.id]);
    expect(out.next.map((x) => x.status)).toEqual(['fulfilled', 'open', 'open', 'cancelled']);
    expect(out.next[0]!.resolved_at).toBe('T');
    expect(fulfil([a, b, c], { documentType: 'proof_of_address' }).fulfilled.map((x) => x.id)).toEqual([c.id]);
    expect(fulfil([a, b, c], { fields: ['emails'] }).fulfilled).toEqual([]);
  });

  it('keeps every open action and the newest resolved ones', () => {
    let list: RequiredAction[] = [];
    for (let i = 0; i < KEEP_RESOLVED + 5; i++) list = withAction(list, action({ id: `r${i}`, status: 'fulfilled' }));
    list = withAction(list, action({ id: 'open' }));
    expect(list).toHaveLength(KEEP_RESOLVED + 1);
    expect(list[0]!.id).toBe('r5');
    expect(list.at(-1)!.id).toBe('open');
  });
});
