// Webhook endpoints: registration (with the SSRF guard), secrets shown once and rotated with a
// 24-hour overlap, the delivery log, and manual redelivery.
import crypto from 'node:crypto';
import { sql, type RawBuilder, type Selectable } from 'kysely';
import type { Db, Tx, WebhookEndpointsTable } from '../../db/database.js';
import type { Keyring } from '../../crypto/keyring.js';
import { newId } from '../../lib/ids.js';
import { decodeCursor, toPage } from '../../lib/cursor.js';
import { AppError, notFound } from '../../http/errors.js';
import type { Actor } from '../audit/actor.js';
import { recordChange } from '../audit/write-path.js';
import { lockTenant } from '../tenants/tenant-lock.js';
import { checkTarget, TargetRefused, type TargetPolicy } from './ssrf.js';

export const ROTATION_OVERLAP_MS = 24 * 3600_000;
/**
 * Endpoints a tenant may register (enabled or not: each is a row, a secret and a fan-out target for
 * every event). Delete one to make room.
 */
export const MAX_WEBHOOK_ENDPOINTS = 50;
export const newSecret = () => `whsec_${crypto.randomBytes(32).toString('base64')}`;
export const secretContext = (tenantId: string, endpointId: string) => `webhook:${tenantId}:${endpointId}`;

/**
 * Whether endpoint `w` takes events of `type`: every type when it names none. The one test, in SQL,
 * for fan-out and redelivery alike.
 */
export const takesEventType = (type: RawBuilder<unknown>) => sql<boolean>`(cardinality(w.event_types) = 0 or ${type} = any(w.event_types))`;

type EndpointRow = Selectable<WebhookEndpointsTable>;

export const toEndpoint = (r: EndpointRow) => ({
  id: r.id,
  url: r.url,
  description: r.description,
  event_types: r.event_types,
  enabled: r.enabled,
  disabled_reason: r.disabled_reason,
  failing_since: r.failing_since?.toISOString() ?? null,
  secret_rotation_ends_at: r.previous_secret_expires_at && r.previous_secret_expires_at > new Date() ? r.previous_secret_expires_at.toISOString() : null,
  created_at: r.created_at.toISOString(),
  updated_at: r.updated_at.toISOString(),
});

export interface EndpointInput {
  url: string;
  description?: string | null;
  event_types?: string[];
  enabled?: boolean;
}

export function createWebhooksService({ db, keyring, targets }: { db: Db; keyring: Keyring; targets: TargetPolicy }) {
  async function checkedUrl(url: string): Promise<string> {
    try {
      return (await checkTarget(url, targets)).toString();
    } catch (err) {
      if (err instanceof TargetRefused) throw new AppError(422, err.code, err.message, { errors: [{ field: 'url', code: err.code, message: err.message }] });
      throw err;
    }
  }

  /** The endpoint; on a transaction, locked for the rest of it (a rotation or an update racing it waits). */
  async function getRow(actor: Actor, id: string, tx?: Tx): Promise<EndpointRow> {
    const q = (tx ?? db).selectFrom('webhook_endpoints').selectAll().where('tenant_id', '=', actor.tenantId).where('id', '=', id);
    const row = await (tx ? q.forUpdate() : q).executeTakeFirst();
    if (!row) throw notFound('webhook_endpoint', id);
    return row;
  }

  const audit = (tx: Tx, actor: Actor, action: string, id: string, details: Record<string, unknown> = {}) =>
    recordChange(tx, actor, { action, targetType: 'webhook_endpoint', targetId: id, details });

  return {
    async create(actor: Actor, input: EndpointInput) {
      const url = await checkedUrl(input.url);
      const id = newId('whe');
      const secret = newSecret();
      // The count, the row and its audit entry in one transaction, under the tenant's lock.
      const row = await db.transaction().execute(async (tx) => {
        await lockTenant(tx, actor.tenantId);
        const { n } = await tx.selectFrom('webhook_endpoints').select((eb) => eb.fn.countAll<string>().as('n'))
          .where('tenant_id', '=', actor.tenantId).executeTakeFirstOrThrow();
        if (Number(n) >= MAX_WEBHOOK_ENDPOINTS) {
          throw new AppError(409, 'webhook_endpoint.limit_reached', `A tenant may register ${MAX_WEBHOOK_ENDPOINTS} webhook endpoints; delete one first.`, {
            limit: MAX_WEBHOOK_ENDPOINTS,
          });
        }
        const inserted = await tx
          .insertInto('webhook_endpoints')
          .values({
            tenant_id: actor.tenantId, id, url, description: input.description ?? null, event_types: input.event_types ?? [],
            enabled: input.enabled ?? true, secret_enc: keyring.sealSecret(secretContext(actor.tenantId, id), secret),
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        await recordChange(tx, actor, { action: 'webhook_endpoint.created', targetType: 'webhook_endpoint', targetId: id, details: { url, event_types: inserted.event_types } });
        return inserted;
      });
      return { ...toEndpoint(row), secret };
    },

    async list(actor: Actor, q: { limit?: number; cursor?: string }) {
      const limit = q.limit ?? 50;
      const after = decodeCursor(q.cursor, ['id'] as const);
      let query = db.selectFrom('webhook_endpoints').selectAll().where('tenant_id', '=', actor.tenantId);
      if (after) query = query.where('id', '>', after.id);
      return toPage(await query.orderBy('id').limit(limit + 1).execute(), limit, toEndpoint, (r) => ({ id: r.id }));
    },

    get: async (actor: Actor, id: string) => toEndpoint(await getRow(actor, id)),

    async update(actor: Actor, id: string, patch: Partial<EndpointInput>) {
      const url = patch.url !== undefined ? await checkedUrl(patch.url) : undefined;
      // The change and its audit entry commit together, or neither does: a moved URL redirects the
      // whole event stream, the change an auditor most needs to see.
      const row = await db.transaction().execute(async (tx) => {
        const before = await getRow(actor, id, tx);
        // Re-enabling starts afresh: the reason and the failing clock are cleared.
        const reenable = patch.enabled === true && !before.enabled;
        const updated = await tx
          .updateTable('webhook_endpoints')
          .set({
            url: url ?? before.url,
            ...(patch.description !== undefined ? { description: patch.description } : {}),
            ...(patch.event_types !== undefined ? { event_types: patch.event_types } : {}),
            ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
            ...(reenable ? { disabled_reason: null, failing_since: null } : {}),
            updated_at: sql`now()`,
          })
          .where('tenant_id', '=', actor.tenantId).where('id', '=', id)
          .returningAll()
          .executeTakeFirstOrThrow();
        const moved = url !== undefined && url !== before.url ? { url: { from: before.url, to: url } } : {};
        await audit(tx, actor, 'webhook_endpoint.updated', id, { fields: Object.keys(patch), ...moved });
        return updated;
      });
      return toEndpoint(row);
    },

    async remove(actor: Actor, id: string) {
      const row = await db.transaction().execute(async (tx) => {
        const found = await getRow(actor, id, tx);
        await tx.deleteFrom('webhook_endpoints').where('tenant_id', '=', actor.tenantId).where('id', '=', id).execute();
        await audit(tx, actor, 'webhook_endpoint.deleted', id, { url: found.url });
        return found;
      });
      return toEndpoint(row);
    },

    /**
     * A new secret; the old one keeps signing alongside it for 24 hours so receivers can switch. A
     * second rotation inside those 24 hours keeps the secret from before the first as the previous
     * one (its 24 hours still run): a client whose first rotation's answer was lost rotates again,
     * and its receivers still hold that older secret. The secret in between stops signing at once.
     */
    async rotateSecret(actor: Actor, id: string) {
      const secret = newSecret();
      const row = await db.transaction().execute(async (tx) => {
        const before = await getRow(actor, id, tx);
        const overlapOpen = before.previous_secret_enc !== null && before.previous_secret_expires_at !== null && before.previous_secret_expires_at.getTime() > Date.now();
        const rotated = await tx
          .updateTable('webhook_endpoints')
          .set({
            secret_enc: keyring.sealSecret(secretContext(actor.tenantId, id), secret),
            ...(overlapOpen ? {} : { previous_secret_enc: before.secret_enc, previous_secret_expires_at: new Date(Date.now() + ROTATION_OVERLAP_MS) }),
            updated_at: sql`now()`,
          })
          .where('tenant_id', '=', actor.tenantId).where('id', '=', id)
          .returningAll()
          .executeTakeFirstOrThrow();
        await audit(tx, actor, 'webhook_endpoint.secret_rotated', id);
        return rotated;
      });
      return { ...toEndpoint(row), secret };
    },

    async deliveries(actor: Actor, id: string, q: { limit?: number; cursor?: string }) {
      await getRow(actor, id);
      const limit = q.limit ?? 50;
      // Newest delivery first (ids are time-ordered), its attempts last to first: an exact keyset,
      // where a timestamp cursor would lose rows that share a millisecond.
      const after = decodeCursor(q.cursor, ['d', 'n'] as const, /^[\w]{1,64}$/);
      let query = db.selectFrom('webhook_attempts').selectAll().where('tenant_id', '=', actor.tenantId).where('endpoint_id', '=', id);
      if (after) query = query.where((eb) => eb(eb.refTuple('delivery_id', 'attempt'), '<', eb.tuple(after.d, Number(after.n))));
      const rows = await query.orderBy('delivery_id', 'desc').orderBy('attempt', 'desc').limit(limit + 1).execute();
      return toPage(
        rows,
        limit,
        (r) => ({
          delivery_id: r.delivery_id, event_id: r.event_id, attempt: r.attempt, attempted_at: r.attempted_at.toISOString(),
          succeeded: r.status_code !== null && r.status_code >= 200 && r.status_code < 300,
          status_code: r.status_code, duration_ms: r.duration_ms, error: r.error,
        }),
        (r) => ({ d: r.delivery_id, n: String(r.attempt) }),
      );
    },

    /**
     * Sends the event again to every enabled endpoint that takes its type now: new deliveries, same
     * webhook-id, written with their audit entry in one transaction. An endpoint that already holds a
     * delivery of the event not yet attempted gets no other: it is on its way, and a loop of
     * redeliveries would otherwise queue a delivery per endpoint per call (50 rows and 50 POSTs each,
     * bounded only by the rate limit). One waiting for its retry does not count: a redelivery after a
     * failure (the receiver mended) goes out now, not hours later. The endpoints are locked first, so
     * two racing redeliveries queue one.
     */
    async redeliver(actor: Actor, eventId: string) {
      const event = await db.selectFrom('events').select(['id', 'type']).where('tenant_id', '=', actor.tenantId).where('id', '=', eventId).executeTakeFirst();
      if (!event) throw notFound('event', eventId);
      return db.transaction().execute(async (tx) => {
        const taking = await tx.selectFrom('webhook_endpoints as w').select('w.id')
          .where('w.tenant_id', '=', actor.tenantId).where('w.enabled', '=', true).where(takesEventType(sql.val(event.type)))
          .orderBy('w.id').forUpdate().execute();
        // A statement of its own, after the locks: it sees what a redelivery that held them committed.
        const pending = new Set((await tx.selectFrom('webhook_deliveries').select('endpoint_id')
          .where('tenant_id', '=', actor.tenantId).where('event_id', '=', eventId).where('status', '=', 'pending').where('attempts', '=', 0)
          .execute()).map((d) => d.endpoint_id));
        const targets = taking.filter((e) => !pending.has(e.id));
        const rows = targets.map((e) => ({ tenant_id: actor.tenantId, id: newId('dlv'), endpoint_id: e.id, event_id: eventId, status: 'pending' }));
        if (rows.length) await tx.insertInto('webhook_deliveries').values(rows).execute();
        await recordChange(tx, actor, { action: 'event.redelivered', targetType: 'event', targetId: eventId, details: { endpoints: targets.map((t) => t.id) } });
        return { event_id: eventId, deliveries: rows.map((r) => ({ id: r.id, endpoint_id: r.endpoint_id })) };
      });
    },
  };
}

export type WebhooksService = ReturnType<typeof createWebhooksService>;
