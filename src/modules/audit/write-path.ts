// The one write path: every change records its audit entry and its event inside the caller's
// transaction, in a single statement, so neither can exist without the other or without the change.
import type { Tx, Db } from '../../db/database.js';
import { newId } from '../../lib/ids.js';
import type { Actor } from './actor.js';

export interface AuditInput {
  action: string;
  outcome?: 'applied' | 'denied' | 'flagged';
  targetType: string;
  targetId: string | null;
  userId?: string | null;
  changedFields?: string[];
  details?: Record<string, unknown>;
  /** Personal values (old and new), sealed with the user's data key. */
  personal?: string | null;
}

export interface EventInput {
  type: string;
  userId: string | null;
  /** What anyone with the event may read: ids, field names, statuses. */
  data: Record<string, unknown>;
  /** The personal part of the payload, sealed with the user's data key; merged into data on read. */
  personal?: string | null;
}

function auditRow(actor: Actor, a: AuditInput) {
  return {
    tenant_id: actor.tenantId,
    id: newId('aud'),
    actor_type: actor.type,
    actor_key_id: actor.keyId,
    actor_role: actor.role,
    action: a.action,
    outcome: a.outcome ?? 'applied',
    target_type: a.targetType,
    target_id: a.targetId,
    user_id: a.userId ?? null,
    changed_fields: a.changedFields ?? [],
    request_id: actor.requestId,
    ip: actor.ip,
    details: JSON.stringify(a.details ?? {}),
    personal_enc: a.personal ?? null,
  };
}

/** Writes the audit entry and the events (none, one or several) in one statement; returns the event ids. */
export async function recordChange(
  tx: Tx | Db,
  actor: Actor,
  audit: AuditInput,
  events: EventInput | EventInput[] = [],
): Promise<string[]> {
  const a = auditRow(actor, audit);
  const list = Array.isArray(events) ? events : [events];
  if (list.length === 0) {
    await tx.insertInto('audit_entries').values(a).execute();
    return [];
  }
  const rows = list.map((e) => ({
    tenant_id: actor.tenantId,
    id: newId('evt'),
    type: e.type,
    user_id: e.userId,
    actor_key_id: actor.keyId,
    request_id: actor.requestId,
    data: JSON.stringify(e.data),
    personal_enc: e.personal ?? null,
  }));
  await tx
    .with('audit', (db) => db.insertInto('audit_entries').values(a).returning('id'))
    .insertInto('events')
    .values(rows)
    .execute();
  return rows.map((r) => r.id);
}

/** A refused attempt (read-only or denied field) is still recorded, flagged, with no event. */
export async function recordAttempt(db: Db, actor: Actor, audit: AuditInput): Promise<void> {
  await recordChange(db, actor, { ...audit, outcome: audit.outcome ?? 'flagged' });
}
