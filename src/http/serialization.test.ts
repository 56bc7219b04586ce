// The serializer's rewritten schemas write the same keys, values and order as the views hold —
// null enums included, and the PATCH answer's two shapes told apart by `dry_run`.
import { describe, expect, it } from 'vitest';
import { Type } from 'typebox';
import { buildSerializer } from './serialization.js';
import { BusinessUser, IndividualUser, PatchDryRun, RequiredAction, Risk, User } from '../modules/users/users.schemas.js';

const external = Object.fromEntries([Risk, RequiredAction, IndividualUser, BusinessUser, User, PatchDryRun].map((s) => [(s as { $id?: string }).$id!, s as never]));
const compile = (schema: object) => buildSerializer(external, {})({ schema: schema as never, method: 'GET', url: '/', httpStatus: '200' }) as (v: unknown) => string;

const common = (type: string) => ({
  id: 'usr_01', external_ref: null, type, country: 'FR', status: 'active', status_reason: null,
  status_changed_at: '2026-01-01T00:00:00.000Z', kyc: { status: 'unverified', level: null, verified_at: null, sub_status: 'submitted' },
});
const compliance = {
  purpose_of_account: 'savings', terms_accepted_at: null, email_verified: true, phone_verified: null, mobile: null, display_name: null,
};
const contact = {
  email: null, phone: null, address: null, mailing_address: { line1: 'x', line2: null, line3: null, city: null, state: null, postcode: null, country: 'FR' },
};
const tail = {
  fatca_crs: { relevant: true, confirmed_at: null }, sanctions: null,
  risk: { rating: 'high', status: 'pending', reason: 'r', updated_at: '2026-01-02T00:00:00.000Z', set_by: { key_id: 'key_1', role: 'COMPLIANCE_OFFICER' } },
  required_actions: [{ id: 'rqa_01', code: 'other', field: null, document_type: 'selfie', message: null, due_at: null, status: 'open', created_at: '2026-01-02T00:00:00.000Z', resolved_at: null }],
  metadata: { a: 1, nested: { b: [1, 'two'] } }, tags: ['vip'], pending_changes: [], legal_hold: false, erasure: null, version: 3,
  created_at: '2026-01-01T00:00:00.000Z', updated_at: '2026-01-02T00:00:00.000Z',
};
const individual = {
  ...common('individual'), title: null, first_name: 'Ana', middle_name: null, last_name: 'Lee', maiden_name: null, preferred_name: null,
  gender: 'female', date_of_birth: null, place_of_birth: null, birth_country: null, nationality: null, occupation: null,
  employment_type: null, income_range: 'under_10k', source_of_funds: null, tax_residence: null, tax_number: null, pep: null,
  language: null, timezone: null, marital_status: null, business_scope: 'X', ...compliance, ...contact,
  employer: { name: 'Elm', address: null, phone: null }, ...tail,
};
const business = {
  ...common('business'), legal_name: 'Acme', registration_number: null, vat_number: null, incorporation_date: null, legal_form: null,
  website: null, employees_range: null, monthly_transactions: 0, transaction_frequency: 'daily', sector: null, ...compliance, ...contact, ...tail,
};
const dryRun = {
  dry_run: true, user_id: 'usr_01', version: 3, outcomes: [{ field: 'metadata', outcome: 'allow', reason: 'allowed' }],
  would_apply: ['metadata'], would_require_review: false, would_request_approval: [], refused: [],
};

describe('response serializer', () => {
  it('runs no validator for a user: every union in its schema is written directly (a nullable named schema too)', async () => {
    // fast-json-stringify validates a value against each branch of a union it cannot write directly:
    // Ajv per user per response. Its validator is the one place that would compile a schema.
    const { default: Validator } = await import('fast-json-stringify/lib/validator.js' as string) as { default: { prototype: { getSchemaValidator: (...a: unknown[]) => unknown } } };
    const original = Validator.prototype.getSchemaValidator;
    const asked: unknown[] = [];
    Validator.prototype.getSchemaValidator = function (this: unknown, ...a: unknown[]) {
      asked.push(a[0]);
      return original.apply(this, a);
    };
    try {
      const write = compile(Type.Ref('User'));
      expect(write(individual)).toBe(JSON.stringify(individual));
      expect(write({ ...business, risk: null })).toBe(JSON.stringify({ ...business, risk: null }));
    } finally {
      Validator.prototype.getSchemaValidator = original;
    }
    expect(asked).toEqual([]);
  });

  it('writes users of either type as they are, null and set enums alike', () => {
    const write = compile(Type.Ref('User'));
    expect(write(individual)).toBe(JSON.stringify(individual));
    expect(write(business)).toBe(JSON.stringify(business));
  });

  it('tells a user from a dry run by dry_run, keeping each shape and its key order', () => {
    const write = compile(Type.Union([Type.Ref('User'), Type.Ref('PatchDryRun')]));
    expect(write(individual)).toBe(JSON.stringify(individual));
    expect(write(business)).toBe(JSON.stringify(business));
    expect(write(dryRun)).toBe(JSON.stringify(dryRun));
  });

  it('still writes only the keys a schema names', () => {
    const write = compile(Type.Ref('PatchDryRun'));
    expect(JSON.parse(write({ ...dryRun, secret: 'x' }))).toEqual(dryRun);
  });

  it('compiles one serializer per distinct schema, shared by every route and status that answers it', () => {
    const build = buildSerializer(external, {});
    const route = (url: string, httpStatus: string, schema: object) => build({ schema: schema as never, method: 'GET', url, httpStatus });
    const problem = () => Type.Object({ type: Type.String(), title: Type.String(), status: Type.Integer() });
    const a = route('/v1/users', '404', problem());
    expect(route('/v1/webhooks', '409', problem())).toBe(a);
    expect(route('/v1/users/:id', '200', Type.Ref('User'))).toBe(route('/v1/users/by-external-ref/:ref', '200', Type.Ref('User')));
    expect(route('/v1/users', '200', Type.Ref('PatchDryRun'))).not.toBe(a);
  });
});
