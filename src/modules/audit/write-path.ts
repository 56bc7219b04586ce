// The one write path: every change records its audit entry and its event inside the caller's
// transaction, in a single statement, so neither can exist without the other or without the change.
import type { Tx, Db } from '../../db/database.js';
import { prepared } from '../../db/prepared.js';
import { newId } from '../../lib/ids.js';
import type { Actor } from './actor.js';
import { auditKeys, entryMac, macTimestamp } from './authentication.js';

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

// Both rows travel as one jsonb parameter each (jsonb_populate_record in recordCtes).
// The entry is authenticated here, by the process that writes it: its time comes from this process
// (not the database's now()) so the MAC covers it, and its details are MACed as they will read back
// from jsonb (one JSON round trip drops what JSON cannot hold, as jsonb does).
export function auditRow(actor: Actor, a: AuditInput) {
  const details = JSON.parse(JSON.stringify(a.details ?? {})) as Record<string, unknown>;
  const row = {
    tenant_id: actor.tenantId,
    id: newId('aud'),
    occurred_at: macTimestamp(),
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
    details,
    personal_enc: a.personal ?? null,
    // Filled in below; the MAC covers MAC_FIELDS only. Written into the literal rather than added
    // with a spread afterwards, which V8 makes a slow map transition per property.
    mac: '',
    idempotency_claim: actor.idempotencyClaim ?? null,
  };
  row.mac = entryMac(auditKeys().macKey, row);
  return row;
}

export function eventRow(actor: Actor, e: EventInput) {
  return {
    tenant_id: actor.tenantId,
    id: newId('evt'),
    type: e.type,
    user_id: e.userId,
    actor_key_id: actor.keyId,
    request_id: actor.requestId,
    data: e.data,
    personal_enc: e.personal ?? null,
  };
}

/**
 * For a statement that makes the change itself (one round trip, no BEGIN/COMMIT): the audit entry
 * and the events as two jsonb parameters, for the CTEs of `recordCtes`.
 */
export function recordParams(actor: Actor, audit: AuditInput, events: EventInput[]): [string, string] {
  return [JSON.stringify(auditRow(actor, audit)), JSON.stringify(events.map((e) => eventRow(actor, e)))];
}

/**
 * CTEs that insert the audit entry ($auditParam) and the events ($eventsParam) once per row of
 * `source`, the CTE that made the change: when it matched nothing (a stale version, a taken
 * external_ref), nothing is recorded. One statement is atomic: no change without its record. The
 * entry joins the sealer's queue and the events the fan-out's in the same statement (migration
 * 0016): nothing written here waits unnoticed, and nothing is ever updated afterwards.
 */
export const recordCtes = (source: string, auditParam: number, eventsParam: number) => `
  recorded_audit as (
    insert into audit_entries (tenant_id, id, occurred_at, actor_type, actor_key_id, actor_role, action, outcome, target_type,
                               target_id, user_id, changed_fields, request_id, ip, details, personal_enc, mac, idempotency_claim)
    select r.tenant_id, r.id, r.occurred_at, r.actor_type, r.actor_key_id, r.actor_role, r.action, r.outcome, r.target_type,
           r.target_id, r.user_id, r.changed_fields, r.request_id, r.ip, r.details, r.personal_enc, r.mac, r.idempotency_claim
      from ${source}, jsonb_populate_record(null::audit_entries, $${auditParam}::jsonb) r
    returning tenant_id, seq
  ),
  queued_audit as (
    insert into audit_unsealed (tenant_id, seq) select tenant_id, seq from recorded_audit
  ),
  recorded_events as (
    insert into events (tenant_id, id, type, user_id, actor_key_id, request_id, data, personal_enc)
    select r.tenant_id, r.id, r.type, r.user_id, r.actor_key_id, r.request_id, r.data, r.personal_enc
      from ${source}, jsonb_populate_recordset(null::events, $${eventsParam}::jsonb) r
    returning tenant_id, seq
  ),
  queued_events as (
    insert into event_outbox (seq, tenant_id) select seq, tenant_id from recorded_events
  )`;

const record = prepared<never>('audit_record_change', `with one as (select 1), ${recordCtes('one', 1, 2)} select 1 where false`);

/** Writes the audit entry and the events (none, one or several) in one statement; returns the event ids. */
export async function recordChange(
  tx: Tx | Db,
  actor: Actor,
  audit: AuditInput,
  events: EventInput | EventInput[] = [],
): Promise<string[]> {
  const rows = (Array.isArray(events) ? events : [events]).map((e) => eventRow(actor, e));
  await record(tx, [JSON.stringify(auditRow(actor, audit)), JSON.stringify(rows)]);
  return rows.map((r) => r.id);
}

/** A refused attempt (read-only or denied field) is still recorded, flagged, with no event. */
export async function recordAttempt(db: Db, actor: Actor, audit: AuditInput): Promise<void> {
  await recordChange(db, actor, { ...audit, outcome: audit.outcome ?? 'flagged' });
}
