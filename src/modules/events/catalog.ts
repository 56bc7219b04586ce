// Every event Kyclo emits, with the shape of its `data`: one list that gives the event-type filter,
// the OpenAPI `webhooks` section and the README's table. A webhook body is
// { id, type, timestamp, data }; after a user's erasure `data` keeps only ids, types and field
// names and carries `redacted: true`.
import { Type, type TSchema } from 'typebox';

const S = Type.String;
const N = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Values = Type.Record(Type.String(), Type.Unknown(), { description: 'By dotted field name' });
const Redacted = { redacted: Type.Optional(Type.Literal(true, { description: 'Present once the user is erased: personal values are gone' })) };
const userData = (props: Record<string, TSchema>) => Type.Object({ user_id: S(), ...props, ...Redacted });
const transition = { status_change_id: S(), from: S(), to: S(), reason: N(S()), origin: S(), at_creation: Type.Optional(Type.Literal(true, { description: 'The initial status given at creation (POST /v1/users with status)' })) };

/** How the catalogue describes a field of API_ONLY_FIELDS. */
const API_ONLY = 'Through the API only, to OWNER, ADMIN and COMPLIANCE_OFFICER keys (sealed free text: never in a webhook payload)';

export const EVENT_CATALOG = {
  'user.created': {
    when: 'a user was created (by an import too, when it asks for per-user events)',
    data: userData({ type: S(), user: Type.Optional(Type.Ref('User')), import_id: Type.Optional(S({ description: 'The import that created the user' })) }),
  },
  'user.updated': {
    when: 'fields were applied, by a PATCH or an approved change request',
    data: userData({ version: Type.Integer(), changed_fields: Type.Array(S()), previous: Type.Optional(Values), current: Type.Optional(Values), change_request_id: Type.Optional(S()) }),
  },
  'user.kyc_status_changed': {
    when: 'a verification moved the KYC status, or a reviewed field changed',
    data: userData({ from: S(), to: S(), reason: S({ description: 'verification | reviewed_field_changed' }), verification_id: Type.Optional(S()), fields: Type.Optional(Type.Array(S())) }),
  },
  'user.verification_recorded': { when: 'a KYC outcome was recorded', data: userData({ verification_id: S(), result: S(), provider: S(), level: N(Type.Integer()) }) },
  'user.change_requested': { when: 'a PATCH held fields for approval', data: userData({ change_request_id: S(), fields: Type.Array(S()), proposed: Type.Optional(Values) }) },
  'user.change_approved': {
    when: 'a change request was approved and applied',
    data: userData({ change_request_id: S(), changed_fields: Type.Array(S()), previous: Type.Optional(Values), current: Type.Optional(Values) }),
  },
  // Free-text reasons are sealed with the user's key: read through the API by the compliance roles, never in a webhook payload (API_ONLY_FIELDS).
  'user.change_rejected': { when: 'a change request was rejected', data: userData({ change_request_id: S(), fields: Type.Array(S()), reason: Type.Optional(S({ description: API_ONLY })) }) },
  'user.status_changed': { when: 'the account status changed (closing included)', data: userData(transition) },
  'user.closed': { when: 'the user was closed', data: userData({ ...transition, cancelled_change_requests: Type.Array(S()) }) },
  'user.erasure_scheduled': { when: 'erasure was requested', data: userData({ requested_by: S(), scheduled_for: S({ format: 'date-time' }), legal_hold: Type.Boolean() }) },
  'user.legal_hold_set': {
    when: 'a legal hold was set, or set again for another matter',
    data: userData({
      reason: Type.Optional(S({ description: API_ONLY })),
      already_held: Type.Optional(Type.Literal(true, { description: 'Set again for another matter: the hold was already standing, and one DELETE lifts it for every matter' })),
    }),
  },
  'user.legal_hold_cleared': { when: 'a legal hold was cleared', data: userData({}) },
  'user.erased': { when: 'the retention sweeper destroyed the user’s personal data', data: userData({ erased_at: S({ format: 'date-time' }) }) },
  'user.relationship_added': {
    when: 'a relationship was added to the user (user_id: the business or child account), at once or by an approved change request',
    data: userData({
      relationship_id: S(), type: S({ description: 'beneficial_owner | director | legal_representative | authorised_signatory | shareholder | parent' }),
      related_user_id: S(), ownership_percent: N(Type.Number()), control: Type.Boolean(), change_request_id: Type.Optional(S()),
    }),
  },
  'user.relationship_ended': {
    when: 'a relationship of the user was ended (it stays in the history)',
    data: userData({ relationship_id: S(), type: S(), related_user_id: S(), ownership_percent: N(Type.Number()), control: Type.Boolean(), change_request_id: Type.Optional(S()) }),
  },
  'user.risk_changed': {
    when: 'the user’s risk rating, status or reason was set (PUT /v1/users/{id}/risk)',
    data: userData({
      risk_change_id: S(), version: Type.Integer(), changed_fields: Type.Array(S({ description: 'risk.rating | risk.status | risk.reason' })),
      from: N(Type.Object({ rating: S(), status: S() })), to: Type.Object({ rating: S(), status: S() }),
      reason: Type.Optional(S({ description: API_ONLY })),
    }),
  },
  'user.required_action_added': {
    when: 'a required action was asked of the user',
    data: userData({
      required_action_id: S(), code: S(), field: N(S()), document_type: N(S()), due_at: N(S({ format: 'date-time' })), status: S(), version: Type.Integer(),
      message: Type.Optional(S({ description: API_ONLY })),
    }),
  },
  'user.required_action_fulfilled': {
    when: 'the field or document a required action asked for arrived',
    data: userData({
      required_action_id: S(), code: S(), field: N(S()), document_type: N(S()), due_at: N(S({ format: 'date-time' })), status: S(),
      fulfilled_by: S({ description: 'user.updated | change_request.approved | document.added' }), change_request_id: Type.Optional(S()), document_id: Type.Optional(S()),
    }),
  },
  'user.required_action_cancelled': {
    when: 'an operator cancelled an open required action',
    data: userData({ required_action_id: S(), code: S(), field: N(S()), document_type: N(S()), due_at: N(S({ format: 'date-time' })), status: S(), version: Type.Integer() }),
  },
  'user.kyc_sub_status_changed': {
    when: 'the finer KYC step (kyc.sub_status) was set or cleared',
    data: userData({ from: N(S()), to: N(S()), kyc_status: S(), version: Type.Integer() }),
  },
  'document.added': {
    when: 'a document (a file or an identifier number) was added; never carries the number or the file',
    data: userData({
      document_id: S(), kind: S({ description: 'physical | virtual' }), type: S(), content_type: N(S()), size: N(Type.Integer()),
      replaces: N(S({ description: 'The document this one archived' })),
    }),
  },
  'document.archived': { when: 'a newer document of the same type replaced this one (it stays readable)', data: userData({ document_id: S(), type: S(), replaced_by: S() }) },
  'import.completed': {
    when: 'an import read its whole file (one event per import; per-user events only when it asked for them)',
    data: Type.Object({
      import_id: S(), profile: S(), read: Type.Integer(), imported: Type.Integer(), existing: Type.Integer(), rejected: Type.Integer(),
      moved_fields: Type.Record(S(), S(), { description: 'Vendor fields with no Kyclo home → where they went (metadata.<profile>.<field>)' }),
    }),
  },
  'policy.updated': { when: 'the tenant’s policy overrides were replaced', data: Type.Object({ overrides: Type.Record(S(), Type.Unknown()) }) },
  'audit.checkpoint': {
    when: 'the audit log was sealed and its new head signed; keep these outside Kyclo (kyclo audit verify --checkpoints)',
    data: Type.Object({
      id: S(), tenant_id: S(), chain_seq: S(), hash: S(), signed_at: S({ format: 'date-time' }), key_id: S(),
      signature: S({ description: 'Ed25519, base64url, over the canonical JSON of {tenant_id, chain_seq, hash, signed_at, key_id}' }),
      public_key: S({ description: 'The signing key (base64): compare with the one you pinned' }),
    }),
  },
  'webhook_endpoint.disabled': {
    when: 'an endpoint was disabled: it answered 410, or failed for five days',
    data: Type.Object({ endpoint_id: S(), reason: S({ description: 'gone | failing' }) }),
  },
} satisfies Record<string, { when: string; data: TSchema }>;

export type EventType = keyof typeof EVENT_CATALOG;
export const EVENT_TYPES = Object.keys(EVENT_CATALOG) as EventType[];

/**
 * The free text a person wrote into an event (a rejection's, a legal hold's or a rating's reason, a
 * required action's message), sealed with the user's key. It is read through the API by the
 * compliance roles alone and never sent to a webhook endpoint: an endpoint is not a compliance role,
 * and a reason such as "SAR filed, do not tip off" must not reach a CRM or an integration.
 */
export const API_ONLY_FIELDS: Partial<Record<EventType, readonly string[]>> = {
  'user.change_rejected': ['reason'],
  'user.legal_hold_set': ['reason'],
  'user.risk_changed': ['reason'],
  'user.required_action_added': ['message'],
};

/** An event's data without its API-only free text (the same object when the type has none). */
export function withoutApiOnly(type: string, data: Record<string, unknown>): Record<string, unknown> {
  const fields = API_ONLY_FIELDS[type as EventType];
  if (!fields) return data;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) if (!fields.includes(k)) out[k] = v;
  return out;
}

/** `user.created` → `UserCreated`: the stem of the event's component names. */
const pascal = (type: string) => type.split(/[._]/).map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');

const dataSchema = (type: EventType) => ({ ...EVENT_CATALOG[type].data, title: `${pascal(type)}Data` }) as TSchema;

const byType = (suffix: string) => ({
  propertyName: 'type',
  mapping: Object.fromEntries(EVENT_TYPES.map((t) => [t, `#/components/schemas/${pascal(t)}${suffix}`])),
});

/**
 * An event as GET /v1/events answers it, one named shape per type (`UserCreatedEvent`…), told apart
 * by `type`: the same `data` schemas the webhooks section declares.
 */
export const EventSchema = Type.Unsafe<{ id: string; type: EventType; created_at: string; user_id: string | null; actor_key_id: string | null; request_id: string | null; data: Record<string, unknown> }>({
  title: 'Event',
  description: 'An event; `type` tells which `data` it carries',
  oneOf: EVENT_TYPES.map((type) =>
    Type.Object(
      {
        id: Type.String({ pattern: '^evt_[0-9A-HJKMNP-TV-Z]{26}$' }),
        type: Type.Literal(type),
        created_at: S({ format: 'date-time' }),
        user_id: N(S({ pattern: '^usr_[0-9A-HJKMNP-TV-Z]{26}$' })),
        actor_key_id: N(S({ description: 'The key that made the change, so a platform can skip its own' })),
        request_id: N(S()),
        data: dataSchema(type),
      },
      { title: `${pascal(type)}Event`, description: `${type}: ${EVENT_CATALOG[type].when}` },
    ),
  ),
  discriminator: byType('Event'),
});

/** What a webhook carries of an event's data: its schema without the API-only fields. */
function webhookDataSchema(type: EventType): TSchema {
  const schema = dataSchema(type) as TSchema & { properties: Record<string, TSchema> };
  const fields = API_ONLY_FIELDS[type];
  if (!fields) return schema;
  return { ...schema, title: `${pascal(type)}WebhookData`, properties: Object.fromEntries(Object.entries(schema.properties).filter(([k]) => !fields.includes(k))) } as TSchema;
}

const webhookBody = (type: EventType) =>
  Type.Object(
    { id: S({ pattern: '^evt_[0-9A-HJKMNP-TV-Z]{26}$', description: 'The event id (also the webhook-id header)' }), type: Type.Literal(type), timestamp: S({ format: 'date-time' }), data: webhookDataSchema(type) },
    { title: `${pascal(type)}Webhook`, description: `${type}: ${EVENT_CATALOG[type].when}` },
  );

/** Every body a webhook receiver can get, told apart by `type` (what a verifier returns). */
export const WebhookPayloadSchema = { title: 'WebhookPayload', oneOf: EVENT_TYPES.map(webhookBody), discriminator: byType('Webhook') };

/** The OpenAPI 3.1 `webhooks` section: one operation per event type, the body a receiver gets. */
export function openApiWebhooks() {
  return Object.fromEntries(
    EVENT_TYPES.map((type) => [
      type,
      {
        post: {
          operationId: `webhook_${type.replace(/\W/g, '_')}`,
          summary: `${type}: ${EVENT_CATALOG[type].when}`,
          description:
            'Signed per Standard Webhooks: webhook-id (the event id, the same on every retry), webhook-timestamp, ' +
            'webhook-signature (v1,<base64 HMAC-SHA256>; two during a secret rotation). Answer 2xx; anything else is retried.',
          // A receiver authenticates the call by its signature, not by a Kyclo API key.
          security: [],
          requestBody: { required: true, content: { 'application/json': { schema: webhookBody(type) } } },
          responses: { '2XX': { description: 'Received; no retry' }, default: { description: 'Retried on the schedule, then given up' } },
        },
      },
    ]),
  );
}
