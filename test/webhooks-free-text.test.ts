// The free text people write into events (a legal hold's, a rejection's and a rating's reason, a
// required action's message: catalog.ts API_ONLY_FIELDS) is read through the API by the compliance
// roles and never sent to a webhook endpoint: an endpoint is not a compliance role, and a reason such
// as "SAR filed, do not tip off" must not reach a CRM. The events themselves still go out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dispatcher } from '../src/workers/dispatcher.js';
import { client, createKey, openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { startReceiver, type Receiver, drain, localDispatcher } from './helpers/receiver.js';

let ctx: TestContext;
let api: Client;
let dev: Client;
let officer: Client;
let receiver: Receiver;
let dispatcher: Dispatcher;

const HOLD = 'SAR filed with the FIU, case 2026-0042: do not tip off';
const REJECT = 'person of interest in police inquiry 77';
const RISK = 'internal AML alert 991: structuring suspected';
const MESSAGE = 'send the statement the bank flagged on 3 March';
let userId: string;
let tenantIdOf: string;

beforeAll(async () => {
  let tenantId: string;
  ({ ctx, api, tenantId } = await openTenantContext());
  tenantIdOf = tenantId;
  dev = client(ctx.app, (await createKey(ctx.db, tenantId, 'DEVELOPER')).key);
  officer = client(ctx.app, (await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER')).key);
  receiver = await startReceiver();
  dispatcher = localDispatcher(ctx);
  expect((await api.post('/v1/webhook-endpoints', { url: receiver.url })).statusCode).toBe(201);

  userId = (await api.post('/v1/users', individual())).json().id;
  expect((await api.post(`/v1/users/${userId}/legal-hold`, { reason: HOLD })).statusCode).toBe(200);
  expect((await officer.call({ method: 'PUT', url: `/v1/users/${userId}/risk`, body: { rating: 'high', status: 'pending', reason: RISK } })).statusCode).toBe(200);
  expect((await api.post(`/v1/users/${userId}/required-actions`, { code: 'provide_document', document_type: 'bank_statement', message: MESSAGE })).statusCode).toBe(201);
  const v = await api.post(`/v1/users/${userId}/verifications`, {
    result: 'approved', level: 2, provider: 'acme-kyc', provider_ref: 'sess-1',
    identity: { first_name: 'Alex', last_name: 'Oak', date_of_birth: '1982-05-31', nationality: 'FR' },
  });
  expect(v.statusCode, v.body).toBe(201);
  const cr = (await api.patch(`/v1/users/${userId}`, { date_of_birth: '1983-06-01' })).json().pending_changes[0];
  expect((await officer.post(`/v1/change-requests/${cr.id}/reject`, { reason: REJECT })).statusCode).toBe(200);
  await drain(dispatcher);
});
afterAll(async () => {
  await dispatcher.close();
  await receiver.close();
  await ctx.close();
});

const FREE_TEXT: Array<[string, string, string]> = [
  ['user.legal_hold_set', 'reason', HOLD], ['user.change_rejected', 'reason', REJECT],
  ['user.risk_changed', 'reason', RISK], ['user.required_action_added', 'message', MESSAGE],
];

describe('free text in events', () => {
  it('webhooks carry each event without its free text', async () => {
    const bodies = receiver.received.filter((r) => r.json.data.user_id === userId);
    for (const [type, field, text] of FREE_TEXT) {
      const got = bodies.find((r) => r.json.type === type);
      expect(got, type).toBeDefined();
      expect(got!.json.data, type).not.toHaveProperty(field);
      expect(got!.body, type).not.toContain(text);
    }
  });

  it('a DEVELOPER key (events:manage, not a compliance role) reads the events without it', async () => {
    for (const who of [dev]) {
      const res = await who.get(`/v1/events?user_id=${userId}&limit=200`);
      expect(res.statusCode).toBe(200);
      for (const [type, field, text] of FREE_TEXT) {
        const event = res.json().data.find((e: { type: string }) => e.type === type);
        expect(event, type).toBeDefined();
        expect(event.data, type).not.toHaveProperty(field);
        expect(res.body).not.toContain(text);
        const one = await who.get(`/v1/events/${event.id}`);
        expect(one.body).not.toContain(text);
      }
    }
  });

  it('OWNER and ADMIN keys read it (the roles that read events and the audit log)', async () => {
    for (const who of [api, client(ctx.app, (await createKey(ctx.db, tenantIdOf, 'ADMIN')).key)]) {
      const events = (await who.get(`/v1/events?user_id=${userId}&limit=200`)).json().data;
      for (const [type, field, text] of FREE_TEXT) expect(events.find((e: { type: string }) => e.type === type).data[field], type).toBe(text);
    }
  });
});
