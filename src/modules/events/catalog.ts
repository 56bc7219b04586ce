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
const transition = { status_change_id: S(), from: S(), to: S(), reason: N(S()), origin: S() };

export const EVENT_CATALOG = {
  'user.created': { when: 'a user was created', data: userData({ type: S(), user: Type.Optional(Type.Unsafe({ $ref: '#/components/schemas/User' })) }) },
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
  // Free-text reasons are sealed with the user's key: read through the API, never in a webhook payload.
  'user.change_rejected': { when: 'a change request was rejected', data: userData({ change_request_id: S(), fields: Type.Array(S()), reason: Type.Optional(S({ description: 'Through the API only (sealed free text)' })) }) },
  'user.status_changed': { when: 'the account status changed (closing included)', data: userData(transition) },
  'user.closed': { when: 'the user was closed', data: userData({ ...transition, cancelled_change_requests: Type.Array(S()) }) },
  'user.erasure_scheduled': { when: 'erasure was requested', data: userData({ requested_by: S(), scheduled_for: S({ format: 'date-time' }), legal_hold: Type.Boolean() }) },
  'user.legal_hold_set': { when: 'a legal hold was set', data: userData({ reason: Type.Optional(S({ description: 'Through the API only (sealed free text)' })) }) },
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
  'document.added': {
    when: 'a document (a file or an identifier number) was added; never carries the number or the file',
    data: userData({
      document_id: S(), kind: S({ description: 'physical | virtual' }), type: S(), content_type: N(S()), size: N(Type.Integer()),
      replaces: N(S({ description: 'The document this one archived' })),
    }),
  },
  'document.archived': { when: 'a newer document of the same type replaced this one (it stays readable)', data: userData({ document_id: S(), type: S(), replaced_by: S() }) },
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

/** The OpenAPI 3.1 `webhooks` section: one operation per event type, the body a receiver gets. */
export function openApiWebhooks() {
  return Object.fromEntries(
    Object.entries(EVENT_CATALOG).map(([type, e]) => [
      type,
      {
        post: {
          operationId: `webhook_${type.replace(/\W/g, '_')}`,
          summary: `${type}: ${e.when}`,
          description:
            'Signed per Standard Webhooks: webhook-id (the event id, the same on every retry), webhook-timestamp, ' +
            'webhook-signature (v1,<base64 HMAC-SHA256>; two during a secret rotation). Answer 2xx; anything else is retried.',
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: Type.Object({ id: S(), type: Type.Literal(type), timestamp: S({ format: 'date-time' }), data: e.data }),
              },
            },
          },
          responses: { '2XX': { description: 'Received; no retry' }, default: { description: 'Retried on the schedule, then given up' } },
        },
      },
    ]),
  );
}
