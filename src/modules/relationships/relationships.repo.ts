// Relationships in SQL. Writers serialise per tenant on a transaction-scoped advisory lock
// (lockGraph): a cycle can close through any chain of the tenant's users, and two inserts that each
// pass the cycle or the 100 % check alone can fail them together, so the check and the insert must
// not interleave with another writer's. Relationship writes are rare (onboarding, corporate changes);
// one lock per tenant keeps the rule simple and cannot deadlock with row locks taken after it.
import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import { prepared } from '../../db/prepared.js';
import { MAX_CHAIN_DEPTH, MAX_PATHS_PER_OWNER, OWNERSHIP_TYPES, type RelationshipType } from './relationship-rules.js';

const OWN = OWNERSHIP_TYPES.map((t) => `'${t}'`).join(',');
const OWNERSHIP = sql.raw(OWN);

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
 * Answers the existing path [related, …, holder] (a shortest one), or null.
 *
 * Linear in the relationships above `related`: the walk collects the set of users reached (UNION,
 * each user once), never the paths to them — a lattice of businesses has 2^depth paths but only
 * 2 × depth users — and answers the links among them; the path is found here, breadth first. (Rebuilt
 * in SQL a link at a time, each step rescanned the reached set: 1.6 s for a chain of 4,000 parents.)
 */
export async function pathUp(tx: Tx, tenantId: string, from: string, to: string, types: readonly string[]): Promise<string[] | null> {
  const { rows } = await sql<{ below: string; above: string }>`
    with recursive reached(id) as (
      select ${from}::text
      union
      select r.related_user_id
        from reached join relationships r on r.tenant_id = ${tenantId} and r.user_id = reached.id and r.ended_at is null
                                         and r.type = any(${[...types]}::text[])
    )
    select r.user_id as below, r.related_user_id as above
      from reached join relationships r on r.tenant_id = ${tenantId} and r.user_id = reached.id and r.ended_at is null
                                       and r.type = any(${[...types]}::text[])`.execute(tx);
  const above = new Map<string, string[]>();
  for (const r of rows) above.set(r.below, [...(above.get(r.below) ?? []), r.above]);
  const cameFrom = new Map<string, string | null>([[from, null]]);
  const queue = [from];
  for (let i = 0; i < queue.length && !cameFrom.has(to); i++) {
    const id = queue[i]!;
    for (const next of (above.get(id) ?? []).sort()) {
      if (cameFrom.has(next)) continue;
      cameFrom.set(next, id);
      queue.push(next);
    }
  }
  if (!cameFrom.has(to)) return null;
  const path: string[] = [];
  for (let at: string | null = to; at !== null; at = cameFrom.get(at)!) path.push(at);
  return path.reverse();
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
 * Everyone above a user through current relationships, walked a level at a time: level 1 is the
 * user's direct owners and controllers, level d + 1 the owners of level d's parties. Each level is
 * one row holding its parties, aggregated per party as the level is built — so the work is at most
 * MAX_CHAIN_DEPTH × `keep` × the relationships above the user, whatever the number of paths (a recursive
 * CTE cannot aggregate in its recursive term, but a LATERAL subquery over the level's row can).
 * Per party and level: `f` the ownership reached at that distance (percentages multiplied along
 * each path, summed over paths), `n` the number of ownership paths, `c` direct control, and `top`
 * the `keep` strongest paths ({f, p}, by fraction, then path) — the strongest paths of a level
 * extend the strongest of the level below, so they are exact. Summed over levels this is what
 * enumerating every path gives, without enumerating them. Cycles are refused on write; the depth
 * bound keeps a corrupted graph from looping. Paths of equal strength order as text[] would (jsonb
 * arrays of one length compare element-wise, with the same collation).
 */
const walkSql = (t: string, u: string, keep: number) => `
  with recursive walk(depth, frontier) as (
    select 1, x.frontier
      from (select jsonb_agg(jsonb_build_object('id', d.id, 'f', d.f, 'n', d.n, 'c', d.c, 'top', d.top)) as frontier
              from (select r.related_user_id as id, sum(coalesce(r.ownership_percent, 0)) / 100 as f, count(r.ownership_percent) as n,
                           -- a beneficial owner recorded without a percent owns or controls enough to be one: held as a controller
                           bool_or(r.control or (r.type = 'beneficial_owner' and r.ownership_percent is null)) as c,
                           jsonb_path_query_array(jsonb_agg(jsonb_build_object('f', coalesce(r.ownership_percent, 0) / 100, 'p', jsonb_build_array(r.user_id, r.related_user_id))
                                                  order by r.ownership_percent desc nulls last), '$[0 to ${keep - 1}]') as top
                      from relationships r
                     where r.tenant_id = ${t} and r.user_id = ${u} and r.ended_at is null and (r.type in (${OWN}) or r.control)
                     group by r.related_user_id) d) x
     where x.frontier is not null
    union all
    select w.depth + 1, nxt.frontier
      from walk w, lateral (
        select jsonb_agg(jsonb_build_object('id', q.id, 'f', q.f, 'n', q.n, 'c', false, 'top', q.top)) as frontier
          from (select c.id, sum(c.f) as f, sum(c.n) as n,
                       jsonb_path_query_array(jsonb_agg(jsonb_build_object('f', c.tf, 'p', c.tp) order by c.tf desc, c.tp), '$[0 to ${keep - 1}]') as top
                  from (select r.related_user_id as id,
                               -- every edge counts once (its first top path), every top path is a candidate
                               case when t.i = 1 then e.f * r.ownership_percent / 100 else 0 end as f,
                               case when t.i = 1 then e.n else 0 end as n,
                               (t.v ->> 'f')::numeric * r.ownership_percent / 100 as tf,
                               (t.v -> 'p') || to_jsonb(r.related_user_id) as tp
                          from jsonb_to_recordset(w.frontier) as e(id text, f numeric, n numeric, top jsonb)
                          -- an index lookup per party: a plain join (or a lateral subquery without the offset 0 fence,
                          -- which the planner flattens into one) is planned as a scan of all the tenant's relationships
                          cross join lateral (select r.related_user_id, r.ownership_percent from relationships r
                                               where r.tenant_id = ${t} and r.user_id = e.id and r.ended_at is null
                                                 and r.type in (${OWN}) and r.ownership_percent is not null offset 0) r
                          cross join lateral jsonb_array_elements(e.top) with ordinality as t(v, i)
                         where e.f > 0) c
                 group by c.id) q
      ) nxt
     where w.depth < ${MAX_CHAIN_DEPTH} and nxt.frontier is not null
  )`;

/** A path of `top` as text[], to order paths of different lengths as text[] orders them. */
const pathKey = (p: string) => `array(select jsonb_array_elements_text(${p}))`;

/**
 * What a capability check reads, in one round trip: the user's state, the tenant's capability and
 * propagation overrides, and every related party above the user that is not active (ownership chains
 * multiplied, direct control, and each party's strongest path). Read from the live statuses on every
 * check: a related party's suspension holds the user from the moment it commits, with no write to the
 * user and nothing to go stale. Exported as text so the bench's capabilities baseline runs the very
 * same statement.
 */
export const CAPABILITY_INPUTS_SQL = `select u.status, u.kyc_status, u.risk ->> 'rating' as risk_rating, t.policy -> 'capabilities' as overrides, t.policy -> 'propagation' as propagation,
          (${walkSql('$1', '$2', 1)}
           select coalesce(json_agg(json_build_object('user_id', a.party, 'status', o.status, 'closed', o.closed, 'ownership_percent', a.percent,
                                                      'control', a.control, 'path', a.path) order by a.party), '[]'::json)
             from (select e.id as party, round(sum(e.f) * 100, 4)::float8 as percent, bool_or(e.c) as control,
                          (array_agg(e.top -> 0 -> 'p' order by (e.top -> 0 ->> 'f')::numeric desc, ${pathKey("e.top -> 0 -> 'p'")}))[1] as path
                     from walk w cross join lateral jsonb_to_recordset(w.frontier) as e(id text, f numeric, c boolean, top jsonb)
                    group by e.id) a
             -- one index lookup per party, never a scan of the tenant's users (offset 0: not flattened into a join).
             -- A party closed holds as the status it was closed from: closing (or erasing) a blocked owner
             -- must not lift the freeze it put on the business; its history row survives the erasure.
             cross join lateral (select case when o.status = 'closed'
                                             then (select sc.from_status from status_changes sc where sc.tenant_id = $1 and sc.user_id = o.id
                                                     and sc.to_status = 'closed' order by sc.id desc limit 1)
                                             else o.status end as status,
                                        o.status = 'closed' as closed
                                   from users o where o.tenant_id = $1 and o.id = a.party and o.status <> 'active' offset 0) o) as parties
     from users u join tenants t on t.id = u.tenant_id
    where u.tenant_id = $1 and u.id = $2`;

export interface UltimateOwner {
  user_id: string;
  percent: number;
  paths: string[][];
  /** Only when more chains reach the owner than `paths` lists (the strongest MAX_PATHS_PER_OWNER): how many. */
  path_count?: number;
}

/**
 * Ultimate owners: the chains' ends (no current owner above them), with their percent summed over
 * every chain and their chains in path order — the strongest MAX_PATHS_PER_OWNER when there are more,
 * with `path_count` saying how many; `truncated` when some chain goes on past MAX_CHAIN_DEPTH links
 * (its owners above are then not counted). An ordinary structure's answer is as it always was.
 */
const owners = prepared<{ owners: UltimateOwner[]; truncated: boolean }>(
  'relationships_ultimate_owners',
  `${walkSql('$1', '$2', MAX_PATHS_PER_OWNER)},
   reached as (
     select w.depth, e.id, e.f, e.n, e.top from walk w cross join lateral jsonb_to_recordset(w.frontier) as e(id text, f numeric, n numeric, top jsonb)
   ),
   ultimate as (
     select e.id as user_id, round(sum(e.f) * 100, 4)::float8 as percent, sum(e.n)::float8 as path_count,
            (select coalesce(json_agg(s.p order by s.k), '[]'::json)
               from (select c.value -> 'p' as p, ${pathKey("c.value -> 'p'")} as k
                       from jsonb_array_elements(jsonb_path_query_array(jsonb_agg(e.top), '$[*][*] ? (@.f > 0)')) as c
                      order by (c.value ->> 'f')::numeric desc, k
                      limit ${MAX_PATHS_PER_OWNER}) s) as paths
       from reached e
      group by e.id
      -- no current owner above: one index probe per party (a NOT EXISTS becomes an anti join over
      -- all the tenant's relationships)
     having sum(e.f) > 0
        and (select r.id from relationships r where r.tenant_id = $1 and r.user_id = e.id and r.ended_at is null
                and r.type in (${OWN}) and r.ownership_percent is not null limit 1) is null
   )
   select coalesce((select json_agg(json_build_object('user_id', o.user_id, 'percent', o.percent, 'paths', o.paths)::jsonb
                                     || case when o.path_count > ${MAX_PATHS_PER_OWNER} then jsonb_build_object('path_count', o.path_count) else '{}' end
                                   order by o.percent desc, o.user_id)
                      from ultimate o), '[]'::json) as owners,
          exists (select 1 from reached e join relationships r on r.tenant_id = $1 and r.user_id = e.id and r.ended_at is null
                                             and r.type in (${OWN}) and r.ownership_percent is not null
                   where e.depth = ${MAX_CHAIN_DEPTH} and e.f > 0) as truncated`,
);

export async function ultimateOwners(db: Db, tenantId: string, userId: string) {
  const [row] = await owners(db, [tenantId, userId]);
  return row!;
}
