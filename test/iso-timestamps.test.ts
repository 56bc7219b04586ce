// Timestamps read as ISO strings (db/iso-timestamps.ts) say exactly what pg's Date and toISOString
// would: every fraction length, time zones other than UTC, dates before 1970 and after 9999.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import pg from 'pg';
import { isoFromPg, isoTimestampTypes } from '../src/db/iso-timestamps.js';
import { createTenant, createTestContext, client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import * as repo from '../src/modules/users/users.repo.js';
import { toUserView } from '../src/modules/users/user-view.js';

const VALUES = [
  '2026-11-22 04:56:04+00', '2026-11-22 04:56:04.4+00', '2026-11-22 04:56:04.43+00', '2026-11-22 04:56:04.433+00',
  '2026-11-22 04:56:04.4339+00', '2026-11-22 04:56:04.999999+00', '1969-12-31 23:59:59.999+00', '2000-02-29 00:00:00.000001+00',
  '0001-01-01 00:00:00+00', '9999-12-31 23:59:59.999999+00', '12026-01-01 00:00:00.5+00', '0100-03-01 12:00:00+00',
];

describe('timestamps as ISO strings', () => {
  let c: pg.Client;
  beforeAll(async () => {
    c = new pg.Client({ connectionString: inject('pgServerUrl') });
    await c.connect();
  });
  afterAll(() => c.end());

  for (const zone of ['UTC', 'Asia/Kolkata', 'America/St_Johns']) {
    it(`match the Date path in TimeZone ${zone}`, async () => {
      await c.query(`set timezone = '${zone}'`);
      const sql = `select v::timestamptz as t from unnest($1::text[]) as v`;
      const asDates = (await c.query<{ t: Date }>(sql, [VALUES])).rows.map((r) => r.t.toISOString());
      const asText = (await c.query<{ t: string }>({ text: sql, values: [VALUES], types: isoTimestampTypes })).rows.map((r) => r.t);
      expect(asText).toEqual(asDates);
      expect(asDates[3]).toBe('2026-11-22T04:56:04.433Z');
    });
  }

  it('take the short path only for UTC text', () => {
    expect(isoFromPg('2026-11-22 04:56:04.433123+00')).toBe('2026-11-22T04:56:04.433Z');
    expect(isoFromPg('2026-11-22 10:26:04.4+05:30')).toBe('2026-11-22T04:56:04.400Z');
  });
});

describe('a user read for an answer', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(() => ctx.close());

  it('is the same view whether its timestamps came as Dates or as text', async () => {
    const { tenantId, ownerKey } = await createTenant(ctx.db);
    const api = client(ctx.app, ownerKey);
    const created = (await api.post('/v1/users', individual())).json();
    expect((await api.post(`/v1/users/${created.id}/status-changes`, { status: 'suspended', reason: 'fraud_suspected' })).statusCode).toBe(201);
    const viaDates = toUserView((await repo.get(ctx.db, tenantId, created.id))!);
    const viaText = await repo.getViewOrThrow(ctx.db, tenantId, created.id);
    expect(typeof viaText.created_at).toBe('string');
    expect(toUserView(viaText)).toEqual(viaDates);
    expect((await api.get(`/v1/users/${created.id}`)).json()).toEqual(viaDates);
    expect((await api.get('/v1/users?limit=1')).json().data[0]).toEqual(viaDates);
  });
});
