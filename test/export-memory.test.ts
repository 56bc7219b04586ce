// The GDPR export streams with bounded memory: a user with a long history (here 1,200 events and
// 1,200 audit entries, each carrying the largest personal values a PATCH can record: the previous
// and current 15 KiB metadata) is exported by a real server process whose heap is capped at 96 MB.
// It answers 200 with a complete document that parses. Built whole in memory, the same export
// needed several times the heap and the process died.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { sql } from 'kysely';
import { createTenant, createTestContext, client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { cliEnv, startServer, type Server } from './helpers/processes.js';

const COPIES = 1_200;
const HEAP_MB = 96;

let ctx: TestContext;
let server: Server;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  if (server?.child.exitCode === null) await server.stop('SIGTERM');
  await ctx.close();
});

const metadata = (tag: string) => Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`${tag}${i}`, tag.repeat(1000)]));

/** Copies one row of `table` `n` times under new ids, as fast as SQL can (seq left to its default). */
async function copyRow(table: 'events' | 'audit_entries', id: string, n: number) {
  const cols = (await sql<{ column_name: string }>`
    select column_name from information_schema.columns
     where table_schema = 'public' and table_name = ${table}
       and column_name <> 'seq' and is_generated = 'NEVER'
     order by ordinal_position`.execute(ctx.db)).rows.map((r) => r.column_name);
  const select = cols.map((c) => (c === 'id' ? sql`id || '_' || g` : sql.ref(c)));
  await sql`insert into ${sql.table(table)} (${sql.join(cols.map((c) => sql.ref(c)))})
            select ${sql.join(select)} from ${sql.table(table)}, generate_series(1, ${n}) g where id = ${id}`.execute(ctx.db);
}

/** Peak resident memory of a process, in MB (Linux). */
function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

describe('GDPR export of a user with a long history', () => {
  it(`a server with a ${HEAP_MB} MB heap answers 200 with a complete, parseable document`, async () => {
    const { ownerKey } = await createTenant(ctx.db);
    const api = client(ctx.app, ownerKey);
    const user = (await api.post('/v1/users', individual({ metadata: metadata('a') }))).json();
    // Every key replaced: the event and the audit entry carry 15 KiB before and 15 KiB after.
    const patched = await api.patch(`/v1/users/${user.id}`, { metadata: { ...Object.fromEntries(Object.keys(metadata('a')).map((k) => [k, null])), ...metadata('b') } });
    expect(patched.statusCode).toBe(200);
    const event = await ctx.db.selectFrom('events').select('id').where('user_id', '=', user.id).where('type', '=', 'user.updated').executeTakeFirstOrThrow();
    const entry = await ctx.db.selectFrom('audit_entries').select('id').where('user_id', '=', user.id).where('action', '=', 'user.updated').executeTakeFirstOrThrow();
    await copyRow('events', event.id, COPIES);
    await copyRow('audit_entries', entry.id, COPIES);

    server = await startServer(cliEnv({
      DATABASE_URL: ctx.databaseUrl, PORT: '0', KYCLO_SERVE_WORKERS: 'false', LOG_LEVEL: 'error',
      NODE_OPTIONS: `--max-old-space-size=${HEAP_MB}`,
    }));
    const res = await fetch(`${server.baseUrl}/v1/users/${user.id}/export`, { headers: { authorization: `Bearer ${ownerKey}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/json');
    const text = await res.text();
    const doc = JSON.parse(text) as { user: { id: string }; events: Array<{ type: string; data: { current?: { metadata?: object } } }>; audit_entries: unknown[] };
    console.log(`export: ${(text.length / 1024 / 1024).toFixed(1)} MB of JSON; server peak RSS ${peakRssMb(server.child.pid!)} MB with a ${HEAP_MB} MB heap`);
    expect(doc.user.id).toBe(user.id);
    expect(doc.events.filter((e) => e.type === 'user.updated')).toHaveLength(COPIES + 1);
    expect(doc.audit_entries.length).toBeGreaterThanOrEqual(COPIES + 2);
    expect(Object.keys(doc).sort()).toEqual(['audit_entries', 'change_requests', 'documents', 'events', 'exported_at', 'relationships', 'risk_changes', 'status_changes', 'tenant_id', 'user', 'verifications']);
    expect(server.child.exitCode).toBeNull();
  }, 240_000);
});
