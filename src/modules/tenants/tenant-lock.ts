// Per-tenant bounds on stored state (API keys, webhook endpoints) are checked by counting, and a
// count is only true while nobody else can add a row: creations of one kind take this lock on the
// tenant's row first, so two racing creations at the limit cannot both pass. FOR NO KEY UPDATE does
// not conflict with the KEY SHARE lock every insert referencing the tenant takes, so user writes of
// the same tenant never wait on it.
import { sql } from 'kysely';
import type { Tx } from '../../db/database.js';

export async function lockTenant(tx: Tx, tenantId: string): Promise<void> {
  await sql`select 1 from tenants where id = ${tenantId} for no key update`.execute(tx);
}
