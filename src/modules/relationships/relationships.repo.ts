// Relationships in SQL. Writers serialise per tenant on a transaction-scoped advisory lock
// (lockGraph): a cycle can close through any chain of the tenant's users, and two inserts that each
// pass the cycle or the 100 % check alone can fail them together, so the check and the insert must
// not interleave with another writer's. Relationship writes are rare (onboarding, corporate changes);
// one lock per tenant keeps the rule simple and cannot deadlock with row locks taken after it.
import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import { prepared } from '../../db/prepared.js';
import { OWNERSHIP_TYPES, type RelationshipType } from './relationship-rules.js';

const OWNERSHIP = sql.raw(OWNERSHIP_TYPES.map((t) => `'${t}'`).join(','));

export interface RelationshipRow {
  tenant_id: string;
  id: string;
  user_id: string;
  related_user_id: string;
  type: RelationshipType;
  ownership_percent: string | null;
  control: boolean;
  title: string | null;
  starts_on: string | null;
  ended_at: Date | null;
  created_at: Date;
  change_request_id: string | null;
}

// starts_on as text: pg would parse a date into a local-midnight Date.
const COLUMNS = sql.raw(
  'tenant_id, id, user_id, related_user_id, type, ownership_percent, control, title, starts_on::text as starts_on, ended_at, created_at, change_request_id',
);

/** Held until the transaction ends: one relationship writer per tenant at a time. */
export async function lockGraph(tx: Tx, tenantId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`kyclo.relationships:${tenantId}`}, 0))`.execute(tx);
}

/**
 * Would `related` becoming an owner (or parent) of `holder` close a cycle? It would if `holder`
 * already sits above `related` in that graph: walk upwards from `related` and look for `holder`.
 * Answers the existing path [related, …, holder], or null.
 */
export async function pathUp(tx: Tx, tenantId: string, from: string, to: string, types: readonly string[]): Promise<string[] | null> {
  const { rows } = await sql<{ path: string[] }>`
    with recursive up(id, path) as (
      select ${from}::text, array[${from}::text]
      union all
      select r.related_user_id, up.path || r.related_user_id
        from up join relationships r on r.tenant_id = ${tenantId} and r.user_id = up.id and r.ended_at is null
                                    and r.type = any(${[...types]}::text[])
       where not r.related_user_id = any(up.path) and cardinality(up.path) < 64
    )
    select path from up where id = ${to} limit 1`.execute(tx);
  return rows[0]?.path ?? null;
}

/** The direct ownership of a business held by its current beneficial owners and shareholders, in percent. */
export async function ownedPercent(tx: Tx, tenantId: string, userId: string): Promise<number> {
  const { rows } = await sql<{ total: string | null }>`
    select sum(ownership_percent) as total from relationships
     where tenant_id = ${tenantId} and user_id = ${userId} and ended_at is null and type in (${OWNERSHIP})`.execute(tx);
  return Number(rows[0]?.total ?? 0);
}

export async function findCurrent(tx: Tx, tenantId: string, userId: string, relatedId: string, type: string) {
  const { rows } = await sql<{ id: string }>`
    select id from relationships where tenant_id = ${tenantId} and user_id = ${userId} and related_user_id = ${relatedId}
       and type = ${type} and ended_at is null`.execute(tx);
  return rows[0]?.id ?? null;
}

export async function currentParent(tx: Tx, tenantId: string, userId: string) {
  const { rows } = await sql<{ id: string; related_user_id: string }>`
    select id, related_user_id from relationships where tenant_id = ${tenantId} and user_id = ${userId} and type = 'parent' and ended_at is null`.execute(tx);
  return rows[0] ?? null;
}

export interface NewRelationship {
  tenant_id: string;
  id: string;
  user_id: string;
  related_user_id: string;
  type: RelationshipType;
  ownership_percent: number | null;
  control: boolean;
  title: string | null;
  starts_on: string | null;
  created_by_key_id: string | null;
  request_id: string | null;
  change_request_id: string | null;
}

export async function insert(tx: Tx, r: NewRelationship): Promise<RelationshipRow> {
  const { rows } = await sql<RelationshipRow>`
    insert into relationships (tenant_id, id, user_id, related_user_id, type, ownership_percent, control, title, starts_on,
                               created_by_key_id, request_id, change_request_id)
    values (${r.tenant_id}, ${r.id}, ${r.user_id}, ${r.related_user_id}, ${r.type}, ${r.ownership_percent}, ${r.control}, ${r.title},
            ${r.starts_on}::date, ${r.created_by_key_id}, ${r.request_id}, ${r.change_request_id})
    returning ${COLUMNS}`.execute(tx);
  return rows[0]!;
}

export async function get(db: Db | Tx, tenantId: string, userId: string, id: string): Promise<RelationshipRow | undefined> {
  const { rows } = await sql<RelationshipRow>`
    select ${COLUMNS} from relationships where tenant_id = ${tenantId} and user_id = ${userId} and id = ${id}`.execute(db);
  return rows[0];
}

/** Ends a current relationship; undefined when it had already ended. */
export async function end(tx: Tx, tenantId: string, id: string, keyId: string | null): Promise<RelationshipRow | undefined> {
  const { rows } = await sql<RelationshipRow>`
    update relationships set ended_at = now(), ended_by_key_id = ${keyId}
     where tenant_id = ${tenantId} and id = ${id} and ended_at is null
    returning ${COLUMNS}`.execute(tx);
  return rows[0];
}

/** A user's relationships, on either side, oldest first (keyset on the time-ordered id). */
export async function list(db: Db, tenantId: string, userId: string, f: { includeEnded: boolean; afterId: string | null; limit: number }) {
  const { rows } = await sql<RelationshipRow>`
    select ${COLUMNS} from relationships
     where tenant_id = ${tenantId} and (user_id = ${userId} or related_user_id = ${userId})
       ${f.includeEnded ? sql`` : sql`and ended_at is null`}
       ${f.afterId ? sql`and id > ${f.afterId}` : sql``}
     order by id limit ${f.limit + 1}`.execute(db);
  return rows;
}

/**
 * Everyone above a user through current relationships: the ownership chains (percentages multiplied
 * along each path, summed over paths) and the parties with a direct controlling relationship.
 * One row per (party, path). Cycles are refused on write; the path check and the depth bound only
 * keep a corrupted graph from looping.
 */
export const chainSql = (tenantParam: string, userParam: string) => `
  with recursive chain(party, fraction, path, control) as (
    select r.related_user_id, coalesce(r.ownership_percent, 0) / 100, array[r.user_id, r.related_user_id], r.control
      from relationships r
     where r.tenant_id = ${tenantParam} and r.user_id = ${userParam} and r.ended_at is null
       and (r.type in (${OWNERSHIP_TYPES.map((t) => `'${t}'`).join(',')}) or r.control)
    union all
    select r.related_user_id, c.fraction * r.ownership_percent / 100, c.path || r.related_user_id, false
      from chain c join relationships r on r.tenant_id = ${tenantParam} and r.user_id = c.party and r.ended_at is null
                                     and r.type in (${OWNERSHIP_TYPES.map((t) => `'${t}'`).join(',')}) and r.ownership_percent is not null
     where c.fraction > 0 and not r.related_user_id = any(c.path) and cardinality(c.path) < 32
  )`;

/**
 * What a capability check reads, in one round trip: the user's state, the tenant's capability and
 * propagation overrides, and every related party above the user that is not active (ownership chains
 * multiplied, direct control). Read from the live statuses on every check: a related party's
 * suspension holds the user from the moment it commits, with no write to the user and nothing to go
 * stale. Exported as text so the bench's capabilities baseline runs the very same statement.
 */
export const CAPABILITY_INPUTS_SQL = `select u.status, u.kyc_status, u.risk ->> 'rating' as risk_rating, t.policy -> 'capabilities' as overrides, t.policy -> 'propagation' as propagation,
          (${chainSql('$1', '$2')}
           select coalesce(json_agg(json_build_object('user_id', p.party, 'status', p.status, 'ownership_percent', p.percent,
                                                      'control', p.control, 'path', p.path) order by p.party), '[]'::json)
             from (select c.party, o.status, round(sum(c.fraction) * 100, 4)::float8 as percent, bool_or(c.control) as control,
                          (array_agg(to_jsonb(c.path) order by c.fraction desc, c.path))[1] as path
                     from chain c join users o on o.tenant_id = $1 and o.id = c.party
                    where o.status <> 'active'
                    group by c.party, o.status) p) as parties
     from users u join tenants t on t.id = u.tenant_id
    where u.tenant_id = $1 and u.id = $2`;

/** Ultimate owners: the chain's ends (no current owner above them), with every path that reaches them. */
const owners = prepared<{ user_id: string; percent: number; paths: string[][] }>(
  'relationships_ultimate_owners',
  `${chainSql('$1', '$2')}
   select c.party as user_id, round(sum(c.fraction) * 100, 4)::float8 as percent, json_agg(c.path order by c.path) as paths
     from chain c
    where c.fraction > 0
      and not exists (select 1 from relationships r where r.tenant_id = $1 and r.user_id = c.party and r.ended_at is null
                         and r.type in (${OWNERSHIP_TYPES.map((t) => `'${t}'`).join(',')}) and r.ownership_percent is not null)
    group by c.party
    order by percent desc, c.party`,
);

export const ultimateOwners = (db: Db, tenantId: string, userId: string) => owners(db, [tenantId, userId]);
