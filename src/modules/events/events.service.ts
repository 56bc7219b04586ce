// Events as the API, the webhook dispatcher and the GDPR export show them: the personal part
// opened with each user's key (events/personal.ts) and merged into data.
import type { Db } from '../../db/database.js';
import type { Keyring } from '../../crypto/keyring.js';
import { keyringFor } from '../erasure/retained.js';
import type { Actor } from '../audit/actor.js';
import { decodeCursor, toPage } from '../../lib/cursor.js';
import { notFound } from '../../http/errors.js';
import { mergePersonal, openPersonal } from './personal.js';
import { withoutApiOnly, type EventType } from './catalog.js';
import { roleAllows } from '../api-keys/roles.js';
import * as repo from './events.repo.js';
import type { EventRow } from './events.repo.js';

const toEvent = (r: EventRow, personal: Record<string, unknown> | undefined | null, freeText: boolean) => ({
  id: r.id,
  type: r.type as EventType,
  created_at: r.occurred_at.toISOString(),
  user_id: r.user_id,
  actor_key_id: r.actor_key_id,
  request_id: r.request_id,
  data: freeText ? mergePersonal(r.data, personal) : withoutApiOnly(r.type, mergePersonal(r.data, personal)),
});

/** Whether a caller reads the free text people wrote into events (catalog.ts API_ONLY_FIELDS): the compliance roles and the CLI. */
export const readsFreeText = (actor: Pick<Actor, 'role'>): boolean => actor.role === null || roleAllows(actor.role, 'audit:read');

/**
 * Events as the API shows them: the personal part opened with each user's key; the free text of
 * API_ONLY_FIELDS only when `freeText` (never for a webhook endpoint).
 */
export async function eventViews(keyring: Keyring, tenantId: string, rows: EventRow[], { freeText }: { freeText: boolean }) {
  const personal = await openPersonal(keyring, tenantId, rows);
  return rows.map((r, i) => toEvent(r, personal[i], freeText));
}

export function createEventsService({ db, keyring }: { db: Db; keyring: Keyring }) {
  return {
    async list(actor: Actor, q: { type?: EventType; user_id?: string; limit?: number; cursor?: string }) {
      const limit = q.limit ?? 50;
      const before = decodeCursor(q.cursor, ['seq'] as const, /^\d{1,18}$/);
      const rows = await repo.listPage(db, actor.tenantId, { beforeSeq: before?.seq, type: q.type, userId: q.user_id, limit: limit + 1 });
      const page = toPage(rows, limit, (r) => r, (r) => ({ seq: String(r.seq) }));
      return { data: await eventViews(keyringFor(actor, keyring), actor.tenantId, page.data, { freeText: readsFreeText(actor) }), next_cursor: page.next_cursor };
    },

    async get(actor: Actor, id: string) {
      const row = await repo.findById(db, actor.tenantId, id);
      if (!row) throw notFound('event', id);
      return (await eventViews(keyringFor(actor, keyring), actor.tenantId, [row], { freeText: readsFreeText(actor) }))[0]!;
    },
  };
}

export type EventsService = ReturnType<typeof createEventsService>;
