// product.md: from an erasure request until destruction, personal data "stays, encrypted and readable
// only by compliance roles". Before, every role read it for the whole retention period (five years by
// default): a READER key listed the person's name, a DEVELOPER key read their identity snapshot and
// their events. Now OWNER, ADMIN and COMPLIANCE_OFFICER read it as before, and the other roles read
// the user as destruction will leave it (src/modules/erasure/retained.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, createTenant, createTestContext, type Client, type TestContext } from './helpers/app.js';
import { business, individual } from './helpers/factories.js';
import { cliEnv, runCli } from './helpers/processes.js';
import { startReceiver, localDispatcher } from './helpers/receiver.js';
import { newId } from '../src/lib/ids.js';

let ctx: TestContext;
let tenantId: string;
let owner: Client;
let officer: Client;
let reader: Client;
let developer: Client;
let person: { id: string; external_ref: string };
let businessId: string;
let bystander: string;
const stamp = `${process.pid}${Date.now()}`;
const marker = `Retained${stamp}`;

beforeAll(async () => {
  ctx = await createTestContext();
  ({ tenantId } = await createTenant(ctx.db));
  owner = client(ctx.app, (await createKey(ctx.db, tenantId, 'OWNER')).key);
  officer = client(ctx.app, (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key);
  reader = client(ctx.app, (await createKey(ctx.db, tenantId, 'READER')).key);
  developer = client(ctx.app, (await createKey(ctx.db, tenantId, 'DEVELOPER')).key);
  const ok = (r: { statusCode: number; body: string }, code: number) => expect(r.statusCode, r.body).toBe(code);

  const created = await owner.post('/v1/users', individual({ last_name: marker, place_of_birth: marker, metadata: { crm: marker }, tags: [marker.toLowerCase().slice(0, 40)] }));
  ok(created, 201);
  person = created.json();
  bystander = (await owner.post('/v1/users', individual({ last_name: `Bystander${stamp}` }))).json().id;
  businessId = (await owner.post('/v1/users', business())).json().id;
  ok(await owner.post(`/v1/users/${businessId}/relationships`, { type: 'director', related_user_id: person.id, title: `Director ${marker}` }), 201);
  ok(await developer.post(`/v1/users/${person.id}/verifications`, { result: 'approved', provider: 'acme-kyc', provider_ref: `ref-${marker}`, identity: { document_number: `DOC${marker}` } }), 201);
  ok(await developer.post(`/v1/users/${person.id}/documents`, { kind: 'virtual', type: 'tax_id', number: '123456789012' }), 201);
  ok(await officer.put(`/v1/users/${person.id}/risk`, { rating: 'high', status: 'pending', reason: `risk ${marker}` }), 200);
  ok(await officer.post(`/v1/users/${person.id}/suspend`, { reason: 'fraud_suspected', note: `note ${marker}` }), 201);
  ok(await owner.post(`/v1/users/${person.id}/erasure`, { requested_by: 'user' }), 202);
}, 60_000);
afterAll(() => ctx.close());

/** Every read a READER or DEVELOPER key may make of the person, as text. */
async function readsOf(api: Client, withEvents: boolean, withKyc: boolean): Promise<Record<string, string>> {
  const out: Record<string, string> = {
    user: (await api.get(`/v1/users/${person.id}`)).body,
    byRef: (await api.get(`/v1/users/by-external-ref/${encodeURIComponent(person.external_ref)}`)).body,
    list: (await api.get('/v1/users?limit=100')).body,
    export: (await api.get('/v1/exports/users?include=status_changes')).body,
    statusChanges: (await api.get(`/v1/users/${person.id}/status-changes`)).body,
    riskChanges: (await api.get(`/v1/users/${person.id}/risk-changes`)).body,
    relationships: (await api.get(`/v1/users/${businessId}/relationships`)).body,
  };
  if (withEvents) out.events = (await api.get(`/v1/events?user_id=${person.id}&limit=100`)).body;
  if (withKyc) {
    out.verifications = (await api.get(`/v1/users/${person.id}/verifications`)).body;
    out.documents = (await api.get(`/v1/users/${person.id}/documents`)).body;
    out.exportWithKyc = (await api.get('/v1/exports/users?include=verifications,documents_meta')).body;
  }
  return out;
}

describe('a user awaiting erasure, read by roles other than the compliance roles', () => {
  it('READER and DEVELOPER read the tombstone: no personal value in any answer, where the person is and what was done stays', async () => {
    for (const [api, events, kyc] of [[reader, false, false], [developer, true, true]] as const) {
      const reads = await readsOf(api, events, kyc);
      for (const [what, body] of Object.entries(reads)) {
        expect(body, `${what} answered ${body.slice(0, 300)}`).not.toContain(marker);
        expect(body, what).not.toContain(marker.toLowerCase().slice(0, 40));
      }
      const user = JSON.parse(reads.user!);
      expect(user).toMatchObject({
        id: person.id, type: 'individual', country: 'FR', status: 'closed', external_ref: null, last_name: null, first_name: null,
        metadata: {}, tags: [], erasure: { requested_at: expect.any(String), erased_at: null }, risk: { rating: 'high', reason: null },
      });
      // The other users are read as ever; the person stays in the list, withheld.
      const listed = JSON.parse(reads.list!).data as Array<{ id: string; last_name: string | null }>;
      expect(listed.find((u) => u.id === bystander)?.last_name).toBe(`Bystander${stamp}`);
      expect(listed.find((u) => u.id === person.id)?.last_name).toBeNull();
      expect(JSON.parse(reads.statusChanges!).data.map((c: { to: string; note: string | null }) => [c.to, c.note])).toEqual([['closed', null], ['suspended', null]]);
      expect(JSON.parse(reads.relationships!).data).toMatchObject([{ type: 'director', related_user_id: person.id, title: null }]);
      if (kyc) {
        expect(JSON.parse(reads.verifications!).data).toMatchObject([{ result: 'approved', provider: 'acme-kyc' }]);
        expect(JSON.parse(reads.documents!).data).toMatchObject([{ kind: 'virtual', type: 'tax_id', number: null }]);
      }
      if (events) expect(JSON.parse(reads.events!).data.map((e: { type: string }) => e.type)).toContain('user.created');
    }
  });

  it('a search by a personal value does not find the person for them (the match would tell it); it finds the others', async () => {
    for (const api of [reader, developer]) {
      const found = (await api.get(`/v1/users?q=${stamp}`)).json().data as Array<{ id: string }>;
      expect(found.map((u) => u.id)).toEqual([bystander]);
    }
    const forOfficer = (await officer.get(`/v1/users?q=${stamp}`)).json().data as Array<{ id: string }>;
    expect(forOfficer.map((u) => u.id).sort()).toEqual([bystander, person.id].sort());
  });

  it('the compliance roles read everything until destruction, as the GDPR export and the CLI do', async () => {
    for (const api of [owner, officer]) {
      expect((await api.get(`/v1/users/${person.id}`)).json()).toMatchObject({ last_name: marker, metadata: { crm: marker }, risk: { reason: `risk ${marker}` } });
      expect((await api.get(`/v1/users/by-external-ref/${encodeURIComponent(person.external_ref)}`)).json()).toMatchObject({ id: person.id, last_name: marker });
      expect((await api.get(`/v1/users?external_ref=${encodeURIComponent(person.external_ref)}`)).json().data).toMatchObject([{ id: person.id }]);
      expect((await api.get(`/v1/users/${person.id}/status-changes`)).body).toContain(`note ${marker}`);
      expect((await api.get(`/v1/users/${businessId}/relationships`)).body).toContain(`Director ${marker}`);
      expect((await api.get(`/v1/users/${person.id}/verifications`)).body).toContain(`ref-${marker}`);
      expect((await api.get(`/v1/users/${person.id}/documents`)).json().data[0].number).toMatch(/^\*+9012$/);
    }
    expect((await owner.get(`/v1/events?user_id=${person.id}`)).body).toContain(marker);
    const cli = await runCli(['export', '--tenant', tenantId, '--jobs', '1'], cliEnv({ DATABASE_URL: ctx.databaseUrl }));
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain(marker);
  }, 60_000);

  it('a match on the platform’s reference or a tag does not find the person for them either (none does after destruction), and a duplicate create does not name it', async () => {
    const ref = encodeURIComponent(person.external_ref);
    const tag = encodeURIComponent(marker.toLowerCase().slice(0, 40));
    for (const api of [reader, developer]) {
      expect((await api.get(`/v1/users/by-external-ref/${ref}`)).statusCode).toBe(404);
      expect((await api.get(`/v1/users?external_ref=${ref}`)).json().data).toEqual([]);
      expect((await api.get(`/v1/users?tag=${tag}`)).json().data).toEqual([]);
      for (const q of [`external_ref=${ref}`, `tag=${tag}`]) {
        const lines = (await api.get(`/v1/exports/users?${q}`)).body.trim().split('\n');
        expect(JSON.parse(lines.at(-1)!).count, q).toBe(0);
      }
    }
    const again = await developer.post('/v1/users', individual({ external_ref: person.external_ref }));
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: 'user.exists' });
    expect(again.body).not.toContain(person.id);
    expect((await owner.post('/v1/users', individual({ external_ref: person.external_ref }))).json()).toMatchObject({ code: 'user.exists', existing_id: person.id });
  });

  it('a webhook endpoint is not a compliance role: a redelivery to one a DEVELOPER added sends the event redacted', async () => {
    const receiver = await startReceiver();
        const dispatcher = localDispatcher(ctx);
    try {
      for (let i = 0; i < 20; i++) if ((await dispatcher.runOnce()).fannedOut === 0) break; // the outbox drained, delivered nowhere
      const created = (await developer.get(`/v1/events?user_id=${person.id}&type=user.created`)).json().data[0];
      expect(created.data.redacted).toBe(true);
      expect((await developer.post('/v1/webhook-endpoints', { url: receiver.url, event_types: ['user.created'] })).statusCode).toBe(201);
      expect((await developer.post(`/v1/events/${created.id}/redeliver`)).statusCode).toBe(202);
      for (let i = 0; i < 10; i++) if ((await dispatcher.runOnce()).sent === 0) break;
      const got = receiver.received.filter((r) => r.id === created.id);
      expect(got).toHaveLength(1);
      expect(got[0]!.json.data).toMatchObject({ user_id: person.id, redacted: true });
      expect(got[0]!.body).not.toContain(marker);
      // The bystander's events go out whole.
      const other = (await owner.get(`/v1/events?user_id=${bystander}&type=user.created`)).json().data[0];
      expect((await developer.post(`/v1/events/${other.id}/redeliver`)).statusCode).toBe(202);
      for (let i = 0; i < 10; i++) if ((await dispatcher.runOnce()).sent === 0) break;
      expect(receiver.received.find((r) => r.id === other.id)?.json.data.user).toMatchObject({ last_name: `Bystander${stamp}` });
    } finally {
      await dispatcher.close();
      await receiver.close();
    }
  }, 60_000);

  it('a verification stored before sealing (identity in the clear) shows nothing personal to them', async () => {
    await ctx.db.insertInto('verifications').values({
      tenant_id: tenantId, id: newId('vrf'), user_id: person.id, result: 'approved', level: null, provider: 'legacy-kyc',
      provider_ref: `legacy-${marker}`, provider_ref_enc: null, identity: JSON.stringify({ first_name: `Legacy${marker}` }), identity_enc: null,
      kyc_status_before: 'verified', kyc_status_after: 'verified', recorded_by_key_id: null, request_id: null,
    }).execute();
    expect((await developer.get(`/v1/users/${person.id}/verifications`)).body).not.toContain(marker);
    expect((await developer.get('/v1/exports/users?include=verifications')).body).not.toContain(marker);
    expect((await officer.get(`/v1/users/${person.id}/verifications`)).body).toContain(`Legacy${marker}`);
  });
});
