import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { business, dataUri, individual, physicalDocument } from './helpers/factories.js';
import { dumpDatabase, filesUnder } from './helpers/dump.js';
import { cliEnv, runCli } from './helpers/processes.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;

beforeAll(async () => ({ ctx, api, tenantId } = await openTenantContext()));
afterAll(() => ctx.close());

const row = (id: string) => ctx.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const DAY = 86_400_000;

/** A unique marker per field, that no other value contains. */
/** A valid SSN no other value contains (area 100–665, never 000/666/9xx; group and serial non-zero). */
const randomSsn = () => `${100 + crypto.randomInt(566)}${10 + crypto.randomInt(90)}${1000 + crypto.randomInt(9000)}`;

const canary = (tag: string) => `cnry${tag}${crypto.randomBytes(5).toString('hex')}`;

/** An individual whose every personal value is a canary; returns the user id and every canary. */
async function canaryUser(): Promise<{ id: string; canaries: string[] }> {
  const c = (tag: string) => canary(tag);
  let phoneDigits: string;
  do phoneDigits = String(10_000_000 + crypto.randomInt(89_999_999));
  while (!parsePhoneNumberFromString(`+336${phoneDigits}`)?.isValid());
  const body = individual({
    external_ref: c('ref'), first_name: c('first'), middle_name: c('middle'), last_name: c('last'), maiden_name: c('maiden'),
    preferred_name: c('pref'), place_of_birth: c('pob'), occupation: c('occ'), tax_number: c('tax'),
    email: `${c('mail')}@example.com`, phone: `+336${phoneDigits}`,
    address: { line1: c('l1'), line2: c('l2'), line3: c('l3'), city: c('city'), state: c('state'), postcode: c('pc') },
    mailing_address: { line1: c('ml1'), city: c('mcity'), country: 'FR' },
    metadata: { note: c('meta') }, tags: [c('tag')],
  });
  const created = await api.post('/v1/users', body);
  expect(created.statusCode, created.body).toBe(201);
  const id = created.json().id as string;
  const canaries = JSON.stringify(body).match(/cnry[a-z0-9]+/g)!;
  canaries.push(`336${phoneDigits}`);
  return { id, canaries };
}

describe('erasure', () => {
  it('schedules destruction at closure + the retention period (default five years) and answers 202; asking again changes nothing', async () => {
    const { id } = await canaryUser();
    const res = await api.post(`/v1/users/${id}/erasure`, { requested_by: 'user', note: 'asked by letter' });
    expect(res.statusCode, res.body).toBe(202);
    const r = await row(id);
    expect(r.status).toBe('closed');
    expect(r.status_reason).toBe('erasure_requested');
    const retention = r.erasure_scheduled_for!.getTime() - r.status_changed_at.getTime();
    expect(retention).toBe(1827 * DAY);
    // The default is five years, never fewer, whichever 29 Februaries the period holds (1,825 days
    // destroyed a user closed on 2024-03-01 on 2029-02-28).
    for (const closed of ['2024-03-01T00:00:00Z', '2023-03-01T00:00:00Z', '2027-12-31T00:00:00Z']) {
      const fiveYears = new Date(closed);
      fiveYears.setUTCFullYear(fiveYears.getUTCFullYear() + 5);
      expect(new Date(closed).getTime() + retention, closed).toBeGreaterThanOrEqual(fiveYears.getTime());
    }
    expect(res.json()).toMatchObject({ user_id: id, status: 'closed', scheduled_for: r.erasure_scheduled_for!.toISOString(), legal_hold: false, erased_at: null });
    const again = await api.post(`/v1/users/${id}/erasure`, { requested_by: 'operator' });
    expect(again.statusCode).toBe(202);
    expect(again.json()).toEqual(res.json());
    const events = await ctx.db.selectFrom('events').select('type').where('user_id', '=', id).where('type', '=', 'user.erasure_scheduled').execute();
    expect(events).toHaveLength(1);
    // Not due: the sweeper leaves it alone.
    await runSweeper();
    expect((await row(id)).erased_at).toBeNull();
    expect((await api.get(`/v1/users/${id}`)).json()).toMatchObject({ first_name: expect.stringMatching(/^cnryfirst/), erasure: { erased_at: null } });
  });

  it('with retention 0, the sweeper leaves no canary anywhere in a dump of the database; the tombstone stays', async () => {
    await api.call({ method: 'PUT', url: '/v1/policy', body: { retention: { erasure_after_days: 0 } } });
    const officer = client(ctx.app, (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key);
    const users = await Promise.all([canaryUser(), canaryUser()]);
    for (const u of users) {
      // Updated, verified with canary identity data, a change request pending, then erased.
      const newMail = `${canary('newmail')}@example.com`;
      const newOcc = canary('newocc');
      u.canaries.push(newMail.split('@')[0]!, newOcc);
      expect((await api.patch(`/v1/users/${u.id}`, { email: newMail, occupation: newOcc })).statusCode).toBe(200);
      const identity = { first_name: canary('idf'), last_name: canary('idl'), document_number: canary('doc') };
      u.canaries.push(...Object.values(identity));
      expect((await api.post(`/v1/users/${u.id}/verifications`, { result: 'approved', provider: 'acme-kyc', identity })).statusCode).toBe(201);
      const proposed = canary('proposed');
      u.canaries.push(proposed);
      expect((await officer.patch(`/v1/users/${u.id}`, { last_name: proposed })).json().pending_changes).toHaveLength(1);
      // Documents: two versions of a scan whose bytes are canaries, and identifier numbers.
      for (const tag of ['scanv1', 'scanv2']) {
        const content = canary(tag);
        u.canaries.push(content);
        expect((await api.post(`/v1/users/${u.id}/documents`, physicalDocument('passport', { content: dataUri('jpeg', content), issuing_authority: canary('auth') }))).statusCode).toBe(201);
      }
      const taxId = canary('taxid').toUpperCase();
      const ssn = randomSsn();
      u.canaries.push(taxId, ssn, `*****${ssn.slice(-4)}`);
      expect((await api.post(`/v1/users/${u.id}/documents`, { kind: 'virtual', type: 'tax_id', number: taxId })).statusCode).toBe(201);
      expect((await api.post(`/v1/users/${u.id}/documents`, { kind: 'virtual', type: 'ssn', number: ssn })).statusCode).toBe(201);
      u.canaries.push(...JSON.stringify((await api.get(`/v1/users/${u.id}/documents`)).json()).match(/cnryauth[a-z0-9]+/g)!);
      expect(await filesUnder(path.join(ctx.dataDir, 'documents', tenantId, u.id))).toHaveLength(2);
    }
    const bystander = await canaryUser();

    const before = await dumpDatabase(ctx.databaseUrl);
    for (const u of users) expect(before.text, 'the dump must see plaintext profile values before erasure').toContain(u.canaries[0]);

    for (const u of users) expect((await api.post(`/v1/users/${u.id}/erasure`, { requested_by: 'user' })).statusCode).toBe(202);
    const swept = await runSweeper();
    expect(swept.sort()).toEqual(users.map((u) => u.id).sort());

    const after = await dumpDatabase(ctx.databaseUrl);
    const found = users.flatMap((u) => u.canaries.filter((c) => after.text.includes(c)));
    console.log(`canary check (${after.method}): ${users.reduce((n, u) => n + u.canaries.length, 0)} canaries, ${found.length} found`);
    expect(found).toEqual([]);
    expect(after.text).toContain(bystander.canaries[0]); // other users are untouched
    // Nor under KYCLO_DATA_DIR: the erased users' folders are gone, and no file anywhere holds a canary.
    const files = await filesUnder(ctx.dataDir);
    for (const u of users) await expect(fs.access(path.join(ctx.dataDir, 'documents', tenantId, u.id))).rejects.toThrow();
    expect(users.flatMap((u) => u.canaries.filter((c) => files.some((f) => f.includes(c))))).toEqual([]);

    for (const u of users) {
      const r = await row(u.id);
      expect(r).toMatchObject({ status: 'closed', profile: {}, metadata: {}, tags: [], external_ref: null, pending_changes: [] });
      expect(r.erased_at).toBeInstanceOf(Date);
      expect(r.external_ref_hash).toMatch(/^[0-9a-f]{64}$/);
      const view = (await api.get(`/v1/users/${u.id}`)).json();
      expect(view).toMatchObject({ id: u.id, status: 'closed', first_name: null, email: null, erasure: { erased_at: expect.any(String) } });
      // What remains is readable and free of personal values: history, audit, events (redacted).
      const exported = (await api.get(`/v1/users/${u.id}/export`)).json();
      expect(exported.status_changes).toEqual([expect.objectContaining({ to: 'closed', reason: 'erasure_requested' })]);
      expect(exported.verifications[0].identity).toBeNull();
      expect(exported.change_requests[0]).toMatchObject({ status: 'cancelled', fields: ['last_name'], changes: null });
      expect(exported.events.find((e: { type: string }) => e.type === 'user.updated').data).toMatchObject({ redacted: true, changed_fields: ['email', 'occupation'] });
      expect(exported.events.at(-1)).toMatchObject({ type: 'user.erased' });
      expect(exported.audit_entries.map((a: { action: string }) => a.action)).toContain('user.erased');
      expect(exported.audit_entries.every((a: { values: unknown }) => a.values === null)).toBe(true);
      expect(exported.documents).toHaveLength(4);
      for (const d of exported.documents) {
        expect(d).toMatchObject({ number: null, issuing_authority: null, content_url: null, destroyed_at: expect.any(String) });
        if (d.kind === 'physical') expect((await api.get(`/v1/documents/${d.id}/content`)).json().code).toBe('document.destroyed');
      }
      const key = await ctx.db.selectFrom('user_keys').selectAll().where('user_id', '=', u.id).executeTakeFirstOrThrow();
      expect(key.wrapped_key).toBeNull();
    }
    // Erasing again is harmless; the sweeper has nothing left to do.
    expect((await api.post(`/v1/users/${users[0]!.id}/erasure`, { requested_by: 'user' })).statusCode).toBe(202);
    expect(await runSweeper()).toEqual([]);
    await api.call({ method: 'PUT', url: '/v1/policy', body: {} });
  });

  it('a legal hold postpones a due erasure until it is cleared', async () => {
    await api.call({ method: 'PUT', url: '/v1/policy', body: { retention: { erasure_after_days: 0 } } });
    const u = await canaryUser();
    expect((await api.post(`/v1/users/${u.id}/legal-hold`, { reason: 'court order 2026/17' })).json()).toMatchObject({ legal_hold: true });
    await api.post(`/v1/users/${u.id}/erasure`, { requested_by: 'user' });
    expect(await runSweeper()).toEqual([]);
    expect((await row(u.id)).profile).not.toEqual({});
    expect((await api.delete(`/v1/users/${u.id}/legal-hold`)).json()).toMatchObject({ legal_hold: false });
    expect(await runSweeper()).toEqual([u.id]);
    expect((await row(u.id)).profile).toEqual({});
    const hold = await api.post(`/v1/users/${u.id}/legal-hold`, { reason: 'too late' });
    expect(hold.statusCode).toBe(409);
    expect(hold.json().code).toBe('user.erased');
    await api.call({ method: 'PUT', url: '/v1/policy', body: {} });
  });

  it('a hold set again for a second matter is recorded (its own audit entry and event); the same call again records nothing', async () => {
    const u = await canaryUser();
    const trail = async () => ({
      audit: await ctx.db.selectFrom('audit_entries').select(['action', 'details']).where('user_id', '=', u.id).where('action', 'like', 'user.legal_hold%').orderBy('seq').execute(),
      events: await ctx.db.selectFrom('events').select('type').where('user_id', '=', u.id).where('type', 'like', 'user.legal_hold%').execute(),
      version: (await row(u.id)).version,
    });
    expect((await api.post(`/v1/users/${u.id}/legal-hold`, { reason: 'tax audit 2026' })).statusCode).toBe(200);
    const first = await trail();
    // A retry of the same hold: nothing new.
    expect((await api.post(`/v1/users/${u.id}/legal-hold`, { reason: 'tax audit 2026' })).statusCode).toBe(200);
    expect(await trail()).toEqual(first);
    // A second matter: the hold stands as it was, and the matter is on record (before, a 200 that recorded nothing).
    const second = await api.post(`/v1/users/${u.id}/legal-hold`, { reason: 'court order 17' });
    expect(second.statusCode, second.body).toBe(200);
    expect(second.json()).toMatchObject({ legal_hold: true, version: first.version });
    const after = await trail();
    expect(after.audit).toEqual([...first.audit, { action: 'user.legal_hold_set', details: { already_held: true } }]);
    expect(after.events).toHaveLength(first.events.length + 1);
    // Sent again (a retry), the second matter is not recorded twice; nor is the first.
    for (const reason of ['court order 17', 'tax audit 2026']) expect((await api.post(`/v1/users/${u.id}/legal-hold`, { reason })).statusCode).toBe(200);
    expect(await trail()).toEqual(after);
    const sealed = await ctx.db.selectFrom('audit_entries').select('personal_enc').where('user_id', '=', u.id).where('action', '=', 'user.legal_hold_set').orderBy('seq', 'desc').executeTakeFirstOrThrow();
    expect(sealed.personal_enc).not.toBeNull();
    expect(JSON.stringify(await ctx.db.selectFrom('audit_entries').selectAll().where('user_id', '=', u.id).execute())).not.toContain('court order 17');
  });

  it('exports everything held about a user, decrypted', async () => {
    const biz = (await api.post('/v1/users', business({ metadata: { crm: 'x1' } }))).json();
    await api.patch(`/v1/users/${biz.id}`, { website: 'https://new.example.com' });
    await api.post(`/v1/users/${biz.id}/verifications`, { result: 'approved', provider: 'kyb', identity: { legal_name: 'Oak & Rosewood Ltd', registration_number: '12345678' } });
    await api.post(`/v1/users/${biz.id}/flag`, { reason: 'aml_alert' });
    const res = await api.get(`/v1/users/${biz.id}/export`);
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.user).toMatchObject({ id: biz.id, legal_name: 'Oak & Rosewood Ltd', status: 'flagged', website: 'https://new.example.com' });
    expect(doc.verifications[0].identity).toEqual({ legal_name: 'Oak & Rosewood Ltd', registration_number: '12345678' });
    expect(doc.status_changes).toEqual([expect.objectContaining({ from: 'active', to: 'flagged' })]);
    expect(doc.events.map((e: { type: string }) => e.type)).toEqual([
      'user.created', 'user.updated', 'user.verification_recorded', 'user.kyc_status_changed', 'user.status_changed',
    ]);
    expect(doc.events[1].data).toMatchObject({ previous: { website: 'https://oak.example.com' }, current: { website: 'https://new.example.com' } });
    expect(doc.audit_entries.find((a: { action: string }) => a.action === 'user.updated').values).toMatchObject({ current: { website: 'https://new.example.com' } });
    // The streamed document is not serialised through its schema, so the contract is checked here:
    // every section it sends is declared (relationships was not, so the typed client lacked it).
    const declared = (await api.get('/openapi.json')).json().components.schemas.UserExport.properties;
    expect(Object.keys(declared).sort()).toEqual(Object.keys(doc).sort());
  });

  it('every GDPR export is audited before it is sent: user.exported names the key that read which user; an unknown user records nothing', async () => {
    const id = (await api.post('/v1/users', individual())).json().id as string;
    expect((await api.post(`/v1/users/${id}/documents`, { kind: 'virtual', type: 'ssn', number: '111-11-1112' })).statusCode).toBe(201);
    const officer = await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER');
    const exports = () => ctx.db.selectFrom('audit_entries').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).where('action', '=', 'user.exported').orderBy('seq').execute();
    const res = await client(ctx.app, officer.key).get(`/v1/users/${id}/export`);
    expect(res.statusCode).toBe(200);
    // What the entry stands for: the number whole, which no other route answers.
    expect(res.body).toContain('111111112');
    expect(await exports()).toEqual([
      expect.objectContaining({ action: 'user.exported', outcome: 'applied', actor_type: 'api_key', actor_key_id: officer.id, actor_role: 'COMPLIANCE_OFFICER', target_type: 'user', target_id: id, user_id: id }),
    ]);
    // Recorded before the document was read: the document lists its own export.
    expect(res.json().audit_entries.at(-1)).toMatchObject({ action: 'user.exported', actor: expect.objectContaining({ key_id: officer.id }) });
    const unknown = 'usr_00000000000000000000000000';
    expect((await api.get(`/v1/users/${unknown}/export`)).statusCode).toBe(404);
    expect(await ctx.db.selectFrom('audit_entries').select('id').where('tenant_id', '=', tenantId).where('target_id', '=', unknown).execute()).toEqual([]);
    // Listed with the user's other entries, as a document download is.
    const listed = (await api.get(`/v1/audit-events?user_id=${id}&action=user.exported`)).json().data;
    expect(listed).toEqual([expect.objectContaining({ action: 'user.exported', target: { type: 'user', id } })]);
  });
});

async function runSweeper(): Promise<string[]> {
  const run = await runCli(['retention', 'run', '--json'], cliEnv({ DATABASE_URL: ctx.databaseUrl, KYCLO_DATA_DIR: ctx.dataDir }));
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout).erased;
}
