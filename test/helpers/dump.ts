// A full logical dump of one database, to search for values that must be gone. pg_dump when its
// version can read the server (the local PostgreSQL in CI); otherwise every row of every table as
// text, which covers the same data (the embedded server is newer than the system's pg_dump).
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

export async function dumpDatabase(url: string): Promise<{ method: 'pg_dump' | 'rows'; text: string }> {
  const viaPgDump = await new Promise<string | null>((resolve) => {
    execFile('pg_dump', ['--data-only', '--no-owner', `--dbname=${url}`], { maxBuffer: 512 * 1024 * 1024 }, (err, stdout) =>
      resolve(err ? null : stdout),
    );
  });
  if (viaPgDump !== null) return { method: 'pg_dump', text: viaPgDump };
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables = await client.query<{ name: string }>(
      `select quote_ident(schemaname) || '.' || quote_ident(tablename) as name from pg_tables where schemaname not in ('pg_catalog', 'information_schema')`,
    );
    const parts: string[] = [];
    for (const { name } of tables.rows) {
      const rows = await client.query<{ t: string }>(`select t::text as t from ${name} t`);
      parts.push(`-- ${name}`, ...rows.rows.map((r) => r.t));
    }
    return { method: 'rows', text: parts.join('\n') };
  } finally {
    await client.end();
  }
}

/** Every file under a folder (KYCLO_DATA_DIR), as bytes: where erased document contents must not be. */
export async function filesUnder(dir: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (e.isFile()) out.push(await fs.readFile(path.join(e.parentPath, e.name)));
  }
  return out;
}
