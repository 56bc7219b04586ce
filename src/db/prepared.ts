// Named prepared statements for the hottest queries (reading a user, its capabilities, a page of
// users, and the single-statement writes). PostgreSQL parses and plans each once per connection
// instead of on every request, and no query builder runs per request. Everything else goes through
// Kysely. Inside a transaction (a Tx has no pool of its own) the same SQL runs through Kysely unnamed.
import { sql, type CompiledQuery } from 'kysely';
import type pg from 'pg';
import type { Db, Tx } from './database.js';
import { poolOf } from './database.js';

export interface Prepared<R> {
  (executor: Db | Tx, values: unknown[]): Promise<R[]>;
  readonly text: string;
}

const names = new Set<string>();

/**
 * A statement with $1…$n placeholders, prepared under `name` (unique per process) on first use.
 * `types` overrides how pg parses the columns (db/iso-timestamps.ts); the in-transaction path keeps
 * pg's defaults, so a row read there holds Dates.
 */
export function prepared<R>(name: string, text: string, { types }: { types?: pg.CustomTypesConfig } = {}): Prepared<R> {
  if (names.has(name)) throw new Error(`prepared statement ${name} is declared twice`);
  names.add(name);
  const run = async (executor: Db | Tx, values: unknown[]): Promise<R[]> => {
    const pool = poolOf(executor as Db);
    if (pool) return (await pool.query<R & object>({ name, text, values, ...(types ? { types } : {}) })).rows;
    return raw<R>(executor, text, values);
  };
  return Object.assign(run, { text });
}

// Kysely's raw() takes no parameters; this rebuilds the statement with its values bound in order.
async function raw<R>(executor: Db | Tx, text: string, values: unknown[]): Promise<R[]> {
  const parts = text.split(/\$(\d+)/);
  const strings: string[] = [];
  const params: unknown[] = [];
  for (let i = 0; i < parts.length; i += 2) {
    strings.push(parts[i]!);
    if (i + 1 < parts.length) params.push(values[Number(parts[i + 1]) - 1]);
  }
  const template = Object.assign([...strings], { raw: [...strings] }) as unknown as TemplateStringsArray;
  return (await sql<R>(template, ...params).execute(executor)).rows;
}

/**
 * Runs a compiled Kysely query with pg's `types` override, which Kysely itself cannot pass; through
 * Kysely, with pg's defaults, when the executor has no pool. Unnamed (planned for its values) unless
 * given a `name`: the caller then answers for one text per name, and for a bounded set of names (each
 * is kept on every connection of the pool).
 */
export async function runCompiled<R>(executor: Db, query: CompiledQuery, { types, name }: { types?: pg.CustomTypesConfig; name?: string } = {}): Promise<R[]> {
  const pool = poolOf(executor);
  if (!pool) return (await executor.executeQuery<R>(query)).rows;
  return (await pool.query<R & object>({ ...(name ? { name } : {}), text: query.sql, values: [...query.parameters], ...(types ? { types } : {}) })).rows;
}
