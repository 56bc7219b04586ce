// Bounded state: the 16 KiB metadata bound holds on what a merge patch produces (not only on what it
// sends), in the approval path too, and in the database behind both; list pages have a byte budget.
// Before: 70 PATCHes of 15 KiB new keys each grew one user's metadata to 1 MB.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { client, createKey, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { CHANGES_FIELD } from '../src/modules/events/personal.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;
let officer: Client;
beforeAll(async () => {
  ({ ctx, api, tenantId } = await openTenantContext());
  officer = client(ctx.app, (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key);
});
afterAll(() => ctx.close());

/** `n` new keys of ~1 KiB each, named apart by `tag`: about n KiB serialised. */
const chunk = (tag: string, n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${tag}${i}`, 'x'.repeat(1000)]));
const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v));

async function trail(userId: string) {
  const r = await sql<{ audit: string; events: string; crs: string }>`
    select (select count(*) from audit_entries where user_id = ${userId}) as audit,
           (select count(*) from events where user_id = ${userId}) as events,
           (select count(*) from change_requests where user_id = ${userId}) as crs`.execute(ctx.db);
  const row = await ctx.db.selectFrom('users').select(['metadata', 'version', 'pending_changes']).where('id', '=', userId).executeTakeFirstOrThrow();
  return { ...r.rows[0], version: row.version, metadata: bytes(row.metadata), pending: row.pending_changes.length };
}

async function setMetadataOutcome(outcome: 'allow' | 'approval') {
  const res = await api.call({ method: 'PUT', url: '/v1/policy', body: { fields: { individual: { unverified: { metadata: outcome } } } } });
  expect(res.statusCode, res.body).toBe(200);
}

describe('metadata is bounded on the merged result', () => {
  it('70 PATCHes of 15 KiB new keys each: the first applies, every later one answers 422 naming metadata, and nothing is written', async () => {
    const user = (await api.post('/v1/users', individual())).json();
    const first = await api.patch(`/v1/users/${user.id}`, { metadata: chunk('a', 15) });
    expect(first.statusCode, first.body).toBe(200);
    const before = await trail(user.id);
    const statuses: number[] = [];
    for (let i = 1; i < 70; i++) {
      const res = await api.patch(`/v1/users/${user.id}`, { metadata: chunk(`k${i}_`, 15) }, { 'content-type': 'application/merge-patch+json' });
      statuses.push(res.statusCode);
      if (i === 1) {
        expect(res.headers['content-type']).toContain('application/problem+json');
        expect(res.json()).toMatchObject({ status: 422, code: 'user.value_too_large', errors: [{ field: 'metadata', code: 'too_large' }] });
      }
    }
    const after = await trail(user.id);
    // The figure: how large the merged metadata grew (1 MB before the fix).
    console.log(`metadata after 70 PATCHes of 15 KiB: ${after.metadata} bytes`);
    expect(statuses.every((s) => s === 422)).toBe(true);
    expect(after).toEqual(before);
    expect(after.metadata).toBeLessThanOrEqual(16 * 1024);
  });

  it('a patch that removes keys while adding others is measured on the result: within 16 KiB it applies', async () => {
    const user = (await api.post('/v1/users', individual({ metadata: chunk('a', 15) }))).json();
    const swap = { ...Object.fromEntries(Object.keys(chunk('a', 15)).map((k) => [k, null])), ...chunk('b', 15) };
    const res = await api.patch(`/v1/users/${user.id}`, { metadata: swap });
    expect(res.statusCode, res.body).toBe(200);
    expect(Object.keys(res.json().metadata)).toEqual(Object.keys(chunk('b', 15)));
  });

  it('a change request whose approval would pass 16 KiB is refused when asked (422), nothing written', async () => {
    await setMetadataOutcome('allow');
    const user = (await api.post('/v1/users', individual({ metadata: chunk('a', 10) }))).json();
    await setMetadataOutcome('approval');
    try {
      const before = await trail(user.id);
      const big = await api.patch(`/v1/users/${user.id}`, { metadata: chunk('b', 10) });
      expect(big.statusCode, big.body).toBe(422);
      expect(big.json()).toMatchObject({ code: 'user.value_too_large', errors: [{ field: 'metadata', code: 'too_large' }] });
      expect(await trail(user.id)).toEqual(before);

    } finally {
      await setMetadataOutcome('allow');
    }
  });

  it('an 11th pending change request for one user is refused (422), nothing written', async () => {
    const user = (await api.post('/v1/users', individual())).json();
    await setMetadataOutcome('approval');
    try {
      for (let i = 0; i < 10; i++) {
        const ok = await api.patch(`/v1/users/${user.id}`, { metadata: { [`small${i}`]: i } });
        expect(ok.statusCode, ok.body).toBe(200);
      }
      const full = await trail(user.id);
      expect(full.pending).toBe(10);
      const eleventh = await api.patch(`/v1/users/${user.id}`, { metadata: { small10: 10 } });
      expect(eleventh.statusCode, eleventh.body).toBe(422);
      expect(eleventh.json()).toMatchObject({ code: 'user.value_too_large', errors: [{ field: 'pending_changes', code: 'too_many' }] });
      expect(await trail(user.id)).toEqual(full);
    } finally {
      await setMetadataOutcome('allow');
    }
  });

  it('approving a change request made before the bound existed (proposing 40 KiB) answers 422 and changes nothing', async () => {
    const user = (await api.post('/v1/users', individual())).json();
    await setMetadataOutcome('approval');
    let crId: string;
    try {
      const asked = await api.patch(`/v1/users/${user.id}`, { metadata: { small: 1 } });
      expect(asked.statusCode, asked.body).toBe(200);
      crId = asked.json().pending_changes[0].id;
    } finally {
      await setMetadataOutcome('allow');
    }
    // What an old request holds: the proposed value, sealed with the user's key.
    const changes = await ctx.keyring.seal(ctx.db, tenantId, user.id, CHANGES_FIELD, { metadata: { from: {}, to: chunk('old', 40) } });
    await ctx.db.updateTable('change_requests').set({ changes_enc: changes }).where('id', '=', crId).execute();
    const before = await trail(user.id);
    const res = await officer.post(`/v1/change-requests/${crId}/approve`, { note: 'approved after the upgrade' });
    expect(res.statusCode, res.body.slice(0, 300)).toBe(422);
    expect(res.json()).toMatchObject({ code: 'request.value_too_large', errors: [{ field: 'metadata', code: 'too_large' }] });
    expect(await trail(user.id)).toEqual(before);
    const cr = await ctx.db.selectFrom('change_requests').select('status').where('id', '=', crId).executeTakeFirstOrThrow();
    expect(cr.status).toBe('pending');
  });

  it('the database refuses an oversized metadata, profile, pending list, policy or identity from any writer, yet a row already over a bound can still change its other columns', async () => {
    const user = (await api.post('/v1/users', individual())).json();
    const huge = JSON.stringify(chunk('h', 70));
    const refused = async (q: Promise<unknown>) => expect(await q.then(() => 'stored', (e: { code?: string; constraint?: string }) => `${e.code} ${e.constraint}`)).toMatch(/^23514 \w+_bounded$/);
    await refused(sql`update users set metadata = ${huge}::jsonb where id = ${user.id}`.execute(ctx.db));
    await refused(sql`update users set profile = ${huge}::jsonb where id = ${user.id}`.execute(ctx.db));
    await refused(sql`update users set pending_changes = ${JSON.stringify(Array.from({ length: 4 }, () => chunk('p', 40)))}::jsonb where id = ${user.id}`.execute(ctx.db));
    await refused(sql`update tenants set policy = ${huge}::jsonb where id = ${tenantId}`.execute(ctx.db));
    await refused(sql`update verifications set identity = ${huge}::jsonb`.execute(ctx.db).then(async () => {
      // No verification yet: an insert is refused just the same.
      await sql`insert into verifications (tenant_id, id, user_id, result, provider, identity, kyc_status_before, kyc_status_after)
                values (${tenantId}, 'ver_oversized', ${user.id}, 'approved', 'x', ${huge}::jsonb, 'unverified', 'verified')`.execute(ctx.db);
    }));
    // A row grown before the bound existed: its other columns still change (suspend, close, erase).
    await sql`alter table users disable trigger users_metadata_bounded_update`.execute(ctx.db);
    await sql`update users set metadata = ${huge}::jsonb where id = ${user.id}`.execute(ctx.db);
    await sql`alter table users enable trigger users_metadata_bounded_update`.execute(ctx.db);
    const suspended = await api.post(`/v1/users/${user.id}/status-changes`, { status: 'suspended', reason: 'fraud_suspected' });
    expect(suspended.statusCode, suspended.body).toBe(201);
  });
});

describe('list pages have a byte budget as well as a count', () => {
  it('200 users with 15 KiB of metadata each: ?limit=200 pages stop near 1 MiB with a next_cursor, and walking them returns every user once', async () => {
    const { ctx: own, api: other } = await openTenantContext();
    try {
      const ids = new Set<string>();
      for (let i = 0; i < 200; i++) ids.add((await other.post('/v1/users', individual())).json().id);
      await sql`update users set metadata = ${JSON.stringify(chunk('m', 15))}::jsonb`.execute(own.db);
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await other.get(`/v1/users?limit=200${cursor ? `&cursor=${cursor}` : ''}`);
        expect(res.statusCode).toBe(200);
        expect(res.body.length).toBeLessThan(1.2 * 1024 * 1024);
        const page = res.json() as { data: Array<{ id: string }>; next_cursor: string | null };
        seen.push(...page.data.map((u) => u.id));
        cursor = page.next_cursor;
        pages++;
      } while (cursor && pages < 50);
      expect(pages).toBeGreaterThan(2);
      expect(seen.length).toBe(200);
      expect(new Set(seen)).toEqual(ids);
    } finally {
      await own.close();
    }
  }, 120_000);
});
