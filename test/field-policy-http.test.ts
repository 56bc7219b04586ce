// The default field policy observed end to end: every field × user type × KYC state, one PATCH each,
// checked in the HTTP answer and in the database (row, change requests, events, audit log). Cases are
// generated from the policy table so a new field is covered automatically; what product.md states is
// hard-coded below so the test does not merely mirror the table.
import { maskNumber } from '../src/modules/documents/document-rules.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTenantContext, type Client, type Response, type TestContext, withPersonal } from './helpers/app.js';
import { business, individual } from './helpers/factories.js';
import {
  DEFAULT_FIELD_POLICY, KYC_STATES, policyFields, USER_TYPES, type KycState, type Outcome, type UserType,
} from '../src/modules/users/field-policy.js';
import { ADDRESS_FIELDS, BUSINESS_FIELDS, CountryCode, INDIVIDUAL_FIELDS, OBJECT_FIELDS } from '../src/modules/users/users.schemas.js';

let ctx: TestContext;
let api: Client;

beforeAll(async () => ({ ctx, api } = await openTenantContext()));
afterAll(() => ctx.close());

// ---------------------------------------------------------------------------------------------
// What product.md ("Field policy") says, written out by hand. `verified` lists only the fields the
// spec names; when `unverified`, everything but country, type and external_ref is allow.
const named = (outcome: Outcome, fields: string) => Object.fromEntries(fields.split(/\s+/).map((f) => [f, outcome]));
const IMMUTABLE = ['country', 'type', 'external_ref'];
const ADDR = 'address.line1 address.line2 address.city address.state address.postcode';
const SPEC_VERIFIED: Record<UserType, Record<string, Outcome>> = {
  individual: {
    ...named('approval', 'first_name middle_name last_name date_of_birth place_of_birth gender nationality birth_country'),
    ...named('allow_with_review', ADDR),
    ...named('allow', 'address.line3 phone occupation employment_type income_range source_of_funds timezone language preferred_name pep metadata tags'),
    // Documented deviation (field-policy.ts): SEND refuses an email change once verified → approval, not allow.
    email: 'approval',
    ...named('deny', IMMUTABLE.join(' ')),
  },
  business: {
    ...named('approval', 'legal_name registration_number incorporation_date legal_form sector'),
    ...named('allow', `email phone ${ADDR} address.line3 website employees_range monthly_transactions transaction_frequency`),
    ...named('deny', IMMUTABLE.join(' ')),
  },
};
const documented = (type: UserType, state: KycState, field: string): Outcome | undefined =>
  state === 'unverified' ? (IMMUTABLE.includes(field) ? 'deny' : 'allow') : SPEC_VERIFIED[type][field];

// ---------------------------------------------------------------------------------------------
// A new valid value for any field, different from the current one: fixed values where validity needs
// real reference data, otherwise derived from the field's schema (enum, country code, date, uri, …).
interface FieldSchema { enum?: unknown[]; type?: string; format?: string; pattern?: string; maxLength?: number }
const SCHEMAS = {
  ...INDIVIDUAL_FIELDS, ...BUSINESS_FIELDS, country: CountryCode, 'mailing_address.country': CountryCode,
  ...Object.fromEntries(Object.entries(ADDRESS_FIELDS).flatMap(([k, s]) => [[`address.${k}`, s], [`mailing_address.${k}`, s]])),
  // The compliance profile's objects (employer, fatca_crs, sanctions), leaf by leaf.
  ...Object.fromEntries(Object.values(OBJECT_FIELDS).flatMap((objects) => Object.entries(objects).flatMap(([o, leaves]) => Object.entries(leaves).map(([k, s]) => [`${o}.${k}`, s])))),
} as unknown as Record<string, FieldSchema>;
let seq = 0;

function newValue(field: string, current: unknown): unknown {
  seq++;
  const fixed: Record<string, unknown> = {
    email: `changed.${seq}@example.org`,
    phone: current === '+33612345678' ? '+33698765432' : '+33612345678', // valid FR mobiles (libphonenumber)
    mobile: current === '+33612345678' ? '+33698765432' : '+33612345678',
    'employer.phone': current === '+33612345678' ? '+33698765432' : '+33612345678',
    language: current === 'de' ? 'es' : 'de',
    timezone: current === 'Asia/Tokyo' ? 'America/New_York' : 'Asia/Tokyo',
    metadata: { tier: `gold-${seq}` },
    tags: [`vip-${seq}`],
    type: current === 'individual' ? 'business' : 'individual',
    external_ref: `new-ref-${process.pid}-${seq}`,
  };
  if (field in fixed) return fixed[field];
  const s = SCHEMAS[field];
  if (!s) throw new Error(`No value generator for field ${field}: add one to newValue()`);
  if (s.enum) return s.enum.find((c) => c !== current);
  if (s.pattern === '^[A-Z]{2}$') return ['DE', 'ES'].find((c) => c !== current);
  if (s.format === 'date') return current === '1990-01-15' ? '1991-02-16' : '1990-01-15';
  if (s.format === 'uri') return `https://changed-${seq}.example.org`;
  if (s.format === 'date-time') return new Date(Date.UTC(2025, 0, 1) + seq * 60_000).toISOString();
  if (s.type === 'boolean') return current !== true;
  if (s.type === 'integer') return Number(current ?? 0) + 1;
  if (s.type === 'string') return `new ${field.split('.').pop()} ${seq}`.slice(0, s.maxLength ?? 100);
  throw new Error(`No value generator for field ${field} (schema ${JSON.stringify(s)})`);
}

/** `address.line1` is sent nested: { address: { line1 } }. */
function bodyFor(field: string, value: unknown): Record<string, unknown> {
  const [head, leaf] = field.split('.') as [string, string | undefined];
  return leaf ? { [head]: { [leaf]: value } } : { [head]: value };
}

/** The value at a dotted path, null when absent (the API shows absent as null). */
const at = (doc: unknown, path: string): unknown =>
  path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), doc) ?? null;

// ---------------------------------------------------------------------------------------------
const row = (id: string) => ctx.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const events = (id: string) => ctx.db.selectFrom('events').selectAll().where('user_id', '=', id).orderBy('seq').execute();
const audits = (id: string) => ctx.db.selectFrom('audit_entries').selectAll().where('user_id', '=', id).orderBy('seq').execute();
// Change requests as the API shows them: their values are sealed with the user's data key at rest.
const changeRequests = async (id: string) => (await api.get(`/v1/users/${id}/change-requests`)).json().data as Array<Record<string, unknown> & { id: string }>;
type Row = Awaited<ReturnType<typeof row>>;

/** The stored document a patch speaks of: profile plus the record-level columns. */
const stored = (r: Row) => ({
  ...(r.profile as Record<string, unknown>), metadata: r.metadata, tags: r.tags, country: r.country, type: r.type, external_ref: r.external_ref,
});

async function snapshot(id: string) {
  const [r, ev, au, cr] = await Promise.all([row(id), events(id), audits(id), changeRequests(id)]);
  return { row: r, events: await withPersonal(ctx, ev), audits: au, crs: cr };
}

/** A fresh user of that type; `verified` through a recorded approved verification. */
async function newUser(type: UserType, state: KycState): Promise<string> {
  const res = await api.post('/v1/users', type === 'individual' ? individual() : business());
  expect(res.statusCode).toBe(201);
  const id: string = res.json().id;
  if (state === 'verified') {
    const v = await api.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'test', level: 1 });
    expect(v.statusCode).toBe(201);
    expect((await row(id)).kyc_status).toBe('verified');
  }
  return id;
}

/** What the service did, read from the answer and the database — not from the table. */
function observe(res: Response, before: Awaited<ReturnType<typeof snapshot>>, after: Awaited<ReturnType<typeof snapshot>>): string {
  if (res.statusCode === 422) return 'deny';
  if (res.statusCode !== 200) return `HTTP ${res.statusCode}: ${res.body}`;
  if (after.crs.length > before.crs.length) return 'approval';
  if (after.row.kyc_status === 'review_required' && before.row.kyc_status !== 'review_required') return 'allow_with_review';
  return 'allow';
}

// ---------------------------------------------------------------------------------------------
const CASES = USER_TYPES.flatMap((type) =>
  KYC_STATES.flatMap((state) =>
    policyFields(type).map((field) => ({ type, state, field, outcome: DEFAULT_FIELD_POLICY[type][state][field]! })),
  ),
);

describe('the default field policy over HTTP: every field × user type × KYC state', () => {
  it('covers every field of both types in both states, and the spec’s named fields all exist', () => {
    for (const type of USER_TYPES) {
      for (const state of KYC_STATES) expect(Object.keys(DEFAULT_FIELD_POLICY[type][state]).sort()).toEqual([...policyFields(type)].sort());
      for (const f of Object.keys(SPEC_VERIFIED[type])) expect(policyFields(type), `${type}: ${f}`).toContain(f);
    }
    expect(CASES.length).toBe(2 * (policyFields('individual').length + policyFields('business').length));
  });

  const shown = (field: string, v: unknown) => (field === 'tax_number' && typeof v === 'string' ? maskNumber(v) : v);

  it.each(CASES)('$type $state: PATCH $field → $outcome', async ({ type, state, field, outcome }) => {
    const id = await newUser(type, state);
    const before = await snapshot(id);
    const from = at(stored(before.row), field);
    const to = newValue(field, from);
    expect(to, 'the generated value differs from the current one').not.toEqual(from);

    const res = await api.patch(`/v1/users/${id}`, bodyFor(field, to));
    const after = await snapshot(id);
    const newEvents = after.events.slice(before.events.length);
    const review = outcome === 'allow_with_review' && state === 'verified';
    const label = `${type} ${state} ${field}`;

    // The observed outcome matches the table and, where product.md speaks, product.md.
    const observed = observe(res, before, after);
    expect(observed, label).toBe(outcome === 'allow_with_review' && !review ? 'allow' : outcome);
    const spec = documented(type, state, field);
    if (spec) expect(outcome, `${label}: product.md`).toBe(spec);

    switch (outcome) {
      case 'allow':
      case 'allow_with_review': {
        const user = res.json();
        // Identifier numbers are stored whole and answered masked (the user view, events, audit values).
        expect(at(user, field)).toEqual(shown(field, to));
        expect(at(stored(after.row), field)).toEqual(to);
        expect(after.row.version).toBe(before.row.version + 1);
        expect(after.row.kyc_status).toBe(review ? 'review_required' : before.row.kyc_status);
        expect(user.kyc.status).toBe(after.row.kyc_status);
        expect(user.pending_changes).toEqual([]);
        expect(after.crs).toHaveLength(0);
        expect(newEvents.map((e) => e.type)).toEqual(review ? ['user.updated', 'user.kyc_status_changed'] : ['user.updated']);
        expect(newEvents[0]!.data).toMatchObject({
          user_id: id, version: after.row.version, changed_fields: [field], previous: { [field]: shown(field, from) }, current: { [field]: shown(field, to) },
        });
        if (review) expect(newEvents[1]!.data).toMatchObject({ user_id: id, from: 'verified', to: 'review_required', fields: [field] });
        // A reviewed field's change says in the audit log, not only in the event, that verification lapsed.
        expect(after.audits.at(-1)).toMatchObject({ action: 'user.updated', outcome: 'applied', changed_fields: review ? [field, 'kyc.status'] : [field] });
        if (review) expect(after.audits.at(-1)!.details).toMatchObject({ review_required: true, kyc_status: { from: 'verified', to: 'review_required' } });
        break;
      }
      case 'approval': {
        const user = res.json();
        expect(at(stored(after.row), field), 'not applied').toEqual(from);
        expect(at(user, field), 'not applied').toEqual(from);
        expect(after.row.kyc_status).toBe(before.row.kyc_status);
        expect(after.row.version).toBe(before.row.version + 1);
        expect(after.crs).toHaveLength(1);
        const cr = after.crs[0]!;
        expect(cr).toMatchObject({ status: 'pending', user_id: id });
        expect(cr.changes).toEqual({ [field]: { from, to } });
        const pending = expect.objectContaining({ id: cr.id, fields: [field], proposed: { [field]: to } });
        expect(after.row.pending_changes).toEqual([pending]);
        expect(user.pending_changes).toEqual([pending]);
        expect(newEvents.map((e) => e.type)).toEqual(['user.change_requested']);
        expect(newEvents[0]!.data).toMatchObject({ user_id: id, change_request_id: cr.id, fields: [field], proposed: { [field]: to } });
        expect(after.audits.at(-1)).toMatchObject({ action: 'user.change_requested', changed_fields: [field] });
        break;
      }
      case 'deny': {
        expect(res.statusCode).toBe(422);
        expect(res.json()).toMatchObject({ code: 'user.field_denied', errors: [{ field, code: 'denied' }] });
        expect(res.json().errors).toHaveLength(1);
        expect(after.row, 'nothing changed').toEqual(before.row);
        expect(newEvents).toHaveLength(0);
        expect(after.crs).toHaveLength(0);
        expect(after.audits).toHaveLength(before.audits.length + 1);
        expect(after.audits.at(-1)).toMatchObject({ action: 'user.update_denied', outcome: 'flagged', changed_fields: [field] });
        break;
      }
    }
  });
});

// One dry run per (type, state, outcome) cell: the first field of the table with that outcome.
const DRY_RUNS = USER_TYPES.flatMap((type) =>
  KYC_STATES.flatMap((state) =>
    [...new Set(CASES.filter((c) => c.type === type && c.state === state).map((c) => c.outcome))].map(
      (outcome) => CASES.find((c) => c.type === type && c.state === state && c.outcome === outcome)!,
    ),
  ),
);

describe("POST /v1/users/{id}/dry-run (dryRunUserUpdate)", () => {
  it('has a case for every outcome the default table uses', () => {
    expect(new Set(DRY_RUNS.map((c) => c.outcome))).toEqual(new Set(['allow', 'allow_with_review', 'approval', 'deny']));
  });

  it.each(DRY_RUNS)('$type $state: $field → $outcome, and nothing changes', async ({ type, state, field, outcome }) => {
    const id = await newUser(type, state);
    const before = await snapshot(id);
    const to = newValue(field, at(stored(before.row), field));
    const res = await api.post(`/v1/users/${id}/dry-run`, bodyFor(field, to));
    expect(res.statusCode).toBe(200);
    const applies = outcome === 'allow' || outcome === 'allow_with_review';
    expect(res.json()).toEqual({
      dry_run: true,
      user_id: id,
      version: before.row.version,
      outcomes: [{ field, outcome, reason: expect.any(String) }],
      would_apply: applies ? [field] : [],
      would_require_review: outcome === 'allow_with_review' && state === 'verified',
      would_request_approval: outcome === 'approval' ? [field] : [],
      refused: outcome === 'deny' ? [field] : [],
    });
    expect(await snapshot(id)).toEqual(before);
  });
});

describe('one PATCH mixing outcomes on a verified individual', () => {
  const mixed = { phone: '+33612345678', address: { line1: '9 Birch Lane' }, last_name: 'Birch' };

  it('applies allow and review fields, reopens KYC review, and holds only the approval field in one change request', async () => {
    const id = await newUser('individual', 'verified');
    const before = await snapshot(id);
    const res = await api.patch(`/v1/users/${id}`, mixed);
    expect(res.statusCode).toBe(200);
    const after = await snapshot(id);

    const profile = after.row.profile as Record<string, unknown>;
    expect(profile).toMatchObject({ phone: '+33612345678', last_name: 'Oak', address: { line1: '9 Birch Lane', city: 'Paris' } });
    expect(after.row.kyc_status).toBe('review_required');
    expect(after.row.version).toBe(before.row.version + 1);
    expect(after.crs).toHaveLength(1);
    const cr = after.crs[0]!;
    expect(cr).toMatchObject({ status: 'pending', changes: { last_name: { from: 'Oak', to: 'Birch' } } });
    expect(Object.keys(cr.changes as object)).toEqual(['last_name']);
    const pending = expect.objectContaining({ id: cr.id, fields: ['last_name'], proposed: { last_name: 'Birch' } });
    expect(after.row.pending_changes).toEqual([pending]);
    expect(res.json()).toMatchObject({
      phone: '+33612345678', last_name: 'Oak', address: { line1: '9 Birch Lane' }, kyc: { status: 'review_required' },
    });
    expect(res.json().pending_changes).toEqual([pending]);

    const newEvents = after.events.slice(before.events.length);
    expect(newEvents.map((e) => e.type)).toEqual(['user.updated', 'user.kyc_status_changed', 'user.change_requested']);
    expect(newEvents[0]!.data).toMatchObject({ changed_fields: ['address.line1', 'phone'] });
    expect(newEvents[1]!.data).toMatchObject({ from: 'verified', to: 'review_required', fields: ['address.line1'] });
    expect(newEvents[2]!.data).toMatchObject({ change_request_id: cr.id, fields: ['last_name'] });
  });

  it('with country added, answers 422 naming only country and applies NOTHING', async () => {
    const id = await newUser('individual', 'verified');
    const before = await snapshot(id);
    const res = await api.patch(`/v1/users/${id}`, { ...mixed, country: 'DE' });
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({ code: 'user.field_denied' });
    expect(res.json().errors).toEqual([expect.objectContaining({ field: 'country', code: 'denied' })]);
    const after = await snapshot(id);
    expect(after.row).toEqual(before.row);
    expect(after.row.kyc_status).toBe('verified');
    expect(after.crs).toHaveLength(0);
    expect(after.events).toEqual(before.events);
    expect(after.audits).toHaveLength(before.audits.length + 1);
    expect(after.audits.at(-1)).toMatchObject({ action: 'user.update_denied', outcome: 'flagged', changed_fields: ['country'] });
  });
});
