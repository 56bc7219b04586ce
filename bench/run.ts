// npm run bench: Kyclo as deployed against baselines that do the same database work at their best
// (issue 14), in the same run, on the same PostgreSQL. See bench/README.md. Options:
//   --fresh            seed the database again even if a seeded one can be reused
//   --profile          Kyclo and the baselines under --cpu-prof, one profile per run, top self-time printed
//   --only a,b         groups: get (GET user, capabilities), patch, post, list, search, io (import and export)
//   --rounds N         default 5 (1 with --profile); --seconds N (8, one slice); --warmup N (5, once per run kind)
//   --rewarm N         seconds of the same load before every later slice (3; 0: none): the pools' connections
//                      close after 30 s idle, and a slice on fresh PostgreSQL backends runs a fifth slower
//                      (bench/README.md, "A source of the spread")
//   --connections N    default 32; --threads N (wrk threads, 2)
//   --users N          default 1,000,000; --log-level L (Kyclo's LOG_LEVEL, default warn)
//   --no-record        do not write bench/RESULTS.md (only full default-size runs are recorded)
//   --io-rounds N      rounds of kyclo import/export against COPY (default 3; each imports --users rows)
//   --no-webhooks      skip the context runs with one webhook endpoint per written tenant
//                      (what Kyclo costs without webhook delivery, which the baselines never do; not recorded)
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { execSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startBenchPostgres } from './pg.js';
import { DATABASE, ensureSeeded, prepareRun, prewarm } from './seed.js';
import { runLoad, wrkPath } from './load.js';
import pg from 'pg';
import { buildBaseline, cpuMsOf, KYCLO_NODE_FLAGS, machineBusyMs, mainProfile, postgresCpuMs, rssOf, startBaseline, startKyclo, startReceiver, type Running } from './servers.js';
import { prepareFixtures, plan, registerWebhooks, smokeTest, type RunDef } from './scenarios.js';
import { cpuTable, report, textTable, writeResults, type Measured } from './results.js';
import { formatSummary, summarise } from './profile-top.js';
import { measureImportExport } from './import-export.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIR = path.join(ROOT, 'scratch', 'bench');
const PROF_DIR = path.join(ROOT, 'scratch', 'prof');

const { values: opt } = parseArgs({
  options: {
    fresh: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    only: { type: 'string' },
    rounds: { type: 'string' },
    seconds: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '5' },
    rewarm: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
    users: { type: 'string', default: '1000000' },
    'log-level': { type: 'string', default: 'warn' },
    'shared-buffers': { type: 'string', default: '3GB' },
    'no-record': { type: 'boolean', default: false },
    'no-webhooks': { type: 'boolean', default: false },
    'io-rounds': { type: 'string', default: '3' },
  },
});
const rounds = Number(opt.rounds ?? (opt.profile ? 1 : 5));
const seconds = Number(opt.seconds);
const warmup = Number(opt.warmup);
const rewarm = Number(opt.rewarm);
const connections = Number(opt.connections);
const threads = Number(opt.threads);
const users = Number(opt.users);
const only = opt.only ? new Set(opt.only.split(',')) : null;

const t0 = performance.now();
const log = (m: string) => process.stdout.write(m + '\n');
const elapsed = () => (performance.now() - t0) / 1000;
const cleanups: Array<() => Promise<void>> = [];
const cleanup = async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
};
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
process.on('SIGTERM', () => void cleanup().then(() => process.exit(143)));

/** Where Kyclo's background work stands: entries to seal, events to fan out, deliveries due. */
async function backlog(client: pg.Client): Promise<{ unsealed: number; unfanned: number; due: number }> {
  const r = await client.query<{ unsealed: number; unfanned: number; due: number }>(
    `select (select count(*) from audit_unsealed u
                cross join lateral (select id from audit_entries a where a.tenant_id = u.tenant_id and a.seq = u.seq) a
                where not exists (select 1 from audit_rejections r where r.tenant_id = u.tenant_id and r.entry_id = a.id))::int as unsealed,
            (select count(*) from event_outbox)::int as unfanned,
            (select count(*) from webhook_deliveries where status = 'pending' and next_attempt_at <= now())::int as due`,
  );
  return r.rows[0]!;
}

/** Waits (up to `maxS`) until Kyclo's background work has caught up; returns how long it took and what was left. */
async function drain(client: pg.Client, maxS: number) {
  const t = performance.now();
  for (;;) {
    const b = await backlog(client);
    const waited = (performance.now() - t) / 1000;
    if ((b.unsealed === 0 && b.unfanned === 0 && b.due === 0) || waited >= maxS) return { seconds: waited, left: b };
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function main(): Promise<void> {
  // The code measured is the code at the start (another commit may land while the bench runs); a
  // run on a tree with uncommitted changes says so, and how many files in src/ and bench/.
  const status = execSync('git status --porcelain', { cwd: ROOT, encoding: 'utf8' }).split('\n').filter(Boolean);
  const inSrc = status.filter((l) => /^.. (src\/|package\.json)/.test(l)).length;
  const inBench = status.filter((l) => /^.. bench\//.test(l)).length;
  const head = execSync('git rev-parse --short HEAD', { cwd: ROOT, encoding: 'utf8' }).trim();
  const commit = status.length ? `${head} (dirty tree: ${status.length} files changed, ${inSrc} in src/, ${inBench} in bench/)` : head;
  const wrk = wrkPath();
  const loader = wrk ? `wrk ${execSync(`${wrk} --version 2>&1 || true`, { encoding: 'utf8' }).split(' ')[1] ?? ''}`.trim() : 'autocannon';
  log(`Kyclo benchmark: ${users.toLocaleString('en')} users, ${loader}, ${connections} connections, ${seconds} s slices (${warmup} s warm-up once per run kind, ${rewarm} s before every later slice), ${rounds} round(s); commit ${commit}`);
  await fs.mkdir(path.join(DIR, 'kyclo'), { recursive: true });

  // Both sides compiled by tsc: Kyclo as `npm start` builds it, the baseline from bench/tsconfig.baseline.json.
  execSync('npm run --silent build', { cwd: ROOT, stdio: 'inherit' });
  buildBaseline(ROOT);
  log('built dist/ (npm run build) and the baseline (scratch/bench/baseline-dist)');
  const pgServer = await startBenchPostgres(DIR, { sharedBuffers: opt['shared-buffers'], log, statStatements: opt.profile });
  cleanups.push(() => pgServer.stop());
  const seed = await ensureSeeded(pgServer, DIR, { fresh: opt.fresh, users, log });
  const { state, removed } = await prepareRun(pgServer, DIR, seed.state);
  if (removed) log(`removed ${removed.toLocaleString('en')} users made by earlier runs, so this run measures the seeded ones`);
  const warm = await prewarm(pgServer);
  log(
    `prewarmed ${warm.mb.toFixed(0)} MB with ${warm.method} in ${warm.seconds.toFixed(1)} s ` +
      `(not the tables of the append-only audit_entries and events, ${warm.skippedMb.toFixed(0)} MB; their indexes are)`,
  );
  if (warm.mb > 0.9 * warm.sharedBuffersMb) log(`WARNING: the working set (${warm.mb.toFixed(0)} MB) barely fits shared_buffers (${warm.sharedBuffersMb.toFixed(0)} MB): use --shared-buffers`);
  const url = pgServer.urlFor(DATABASE);
  const fx = await prepareFixtures(url, state, DIR, users);
  log(`fixtures: ${fx.ids.length.toLocaleString('en')} user ids; deep page ${fx.deepPage.toLocaleString('en')}; q=${fx.q.map((x) => `${x.name} (${x.matches.toLocaleString('en')} matches)`).join(', ')}`);
  const watch = new pg.Client({ connectionString: url });
  await watch.connect();
  cleanups.push(() => watch.end());
  const logSizes = await watch.query<{ audit: string; events: string }>(
    'select (select count(*) from audit_entries)::text as audit, (select count(*) from events)::text as events',
  );
  const logRows = `audit_entries ${Number(logSizes.rows[0]!.audit).toLocaleString('en')} rows, events ${Number(logSizes.rows[0]!.events).toLocaleString('en')} rows at the start`;
  log(logRows);
  const receiver = await startReceiver();
  cleanups.push(() => receiver.stop());

  const hooked = new Set(plan(fx).flatMap((g) => g.runs).filter((d) => d.webhooks).map((d) => d.id));
  const groups = plan(fx)
    .filter((g) => !only || only.has(g.key))
    .map((g) => (opt['no-webhooks'] ? { ...g, runs: g.runs.filter((d) => !d.webhooks), rows: g.rows.filter((r) => !hooked.has(r.kyclo)) } : g));
  const results = new Map<string, Measured[]>();
  let rssMax = 0;
  // Assigned inside measure(): typed by assertion so the narrowing to null does not stick.
  let memAtPeak = null as (NonNullable<Awaited<ReturnType<typeof memoryBreakdown>>> & { run: string }) | null;
  const kycloOpts = { root: ROOT, databaseUrl: url, masterKey: state.masterKey, logLevel: opt['log-level'], dataDir: path.join(DIR, 'kyclo') };
  const warmed = new Set<string>();

  /**
   * One slice: a warm-up the first time this run kind is measured, the measured load, then the wait
   * until Kyclo's background work has caught up. CPU is counted from the start of the load to the
   * end of that wait, so the sealing, fan-out and delivery a slice caused are in its per-request CPU.
   */
  const measure = async (def: RunDef, server: Running, round: number, afterWarmup?: () => Promise<unknown>) => {
    const spec = {
      base: server.base, mode: def.mode, prefix: def.prefix, suffix: def.suffix,
      apiKey: def.server === 'kyclo' ? (def.writes ? state.writeApiKey : state.apiKey) : undefined,
      idsLua: fx.idsLua, idsJson: fx.idsJson, connections: def.connections ?? connections, threads, seconds,
    };
    const sampler = def.server === 'kyclo' ? setInterval(() => (rssMax = Math.max(rssMax, rssOf(server.pid)?.rssMb ?? 0)), 200) : null;
    try {
      // The first slice of a run kind warms its server up; every later one gets `rewarm` seconds of the
      // same load first, so that no slice runs on backends its pool opened afresh after sitting idle.
      const warming = warmed.has(def.id) ? rewarm : warmup;
      if (warming > 0) await runLoad({ ...spec, seconds: warming }, wrk);
      warmed.add(def.id);
      // Nothing left over from the slice before (a warm-up's writes included) runs in this one.
      const before = await drain(watch, 120);
      if (before.seconds > 0.5) log(`  (waited ${before.seconds.toFixed(1)} s for Kyclo's background work before this slice)`);
      await afterWarmup?.();
      const cpu0 = { server: cpuMsOf(server.pid), pg: postgresCpuMs(), all: machineBusyMs() };
      const fromUs = Number(process.hrtime.bigint() / 1000n);
      const r = await runLoad(spec, wrk);
      const toUs = Number(process.hrtime.bigint() / 1000n);
      const cpu1 = { server: cpuMsOf(server.pid), pg: postgresCpuMs(), all: machineBusyMs(), receiver: cpuMsOf(receiver.pid) };
      const after = await drain(watch, 120);
      // The catch-up counts the server's, PostgreSQL's and the webhook receiver's CPU, not the whole
      // machine's: the machine is shared, and while the load runs wrk is most of the rest.
      const cpu2 = { server: cpuMsOf(server.pid), pg: postgresCpuMs(), receiver: cpuMsOf(receiver.pid) };
      const rest = cpu1.all - cpu0.all - (cpu1.server - cpu0.server) - (cpu1.pg - cpu0.pg) + (cpu2.receiver - cpu1.receiver);
      const per = (ms: number) => (ms * 1000) / Math.max(1, r.requests);
      const m: Measured = {
        ...r, cpu: { server: per(cpu2.server - cpu0.server), pg: per(cpu2.pg - cpu0.pg), rest: per(rest) }, drainS: after.seconds,
        sustainedRps: r.requests / (r.seconds + after.seconds),
      };
      const left = after.left.unsealed + after.left.unfanned + after.left.due;
      log(
        `  [${elapsed().toFixed(0).padStart(4)} s] round ${round + 1}  ${def.label.padEnd(46)} ${r.rps.toFixed(0).padStart(6)} req/s  ` +
          `p50 ${r.p50ms.toFixed(2).padStart(7)} ms  p99 ${r.p99ms.toFixed(2).padStart(7)} ms  ` +
          `CPU µs/req: server ${m.cpu.server.toFixed(0).padStart(5)}, pg ${m.cpu.pg.toFixed(0).padStart(5)}, rest ${m.cpu.rest.toFixed(0).padStart(5)}` +
          `${after.seconds > 0.5 ? `  (background caught up ${after.seconds.toFixed(1)} s after the load)` : ''}` +
          `${left ? `  BACKLOG LEFT: ${after.left.unsealed} unsealed, ${after.left.unfanned} not fanned out, ${after.left.due} deliveries due` : ''}` +
          `${r.bad ? `  ${r.bad} non-2xx/errors!` : ''}`,
      );
      results.set(def.id, [...(results.get(def.id) ?? []), m]);
      if (def.server === 'kyclo') {
        // Where the memory is, from Kyclo's own /metrics right after the run (prom-client's process metrics).
        const mem = await memoryBreakdown(server.base);
        if (mem && mem.rssMb >= (memAtPeak?.rssMb ?? 0)) memAtPeak = { ...mem, run: def.label };
      }
      return { result: r, fromUs, toUs };
    } finally {
      if (sampler) clearInterval(sampler);
    }
  };

  const writeKeys = [state.apiKey, state.writeApiKey!];
  // The written tenants' endpoints, enabled only for the runs marked `webhooks`.
  let hooksOn: boolean | null = null;
  const setWebhooks = async (base: string, on: boolean) => {
    if (hooksOn === on) return;
    await registerWebhooks(base, writeKeys, receiver.url, on);
    hooksOn = on;
  };
  if (opt.profile) {
    // The raised rate limit, the webhook endpoints and a smoke test, once, on a Kyclo that is not profiled.
    const plain = await startKyclo(kycloOpts);
    cleanups.push(() => plain.stop());
    await registerWebhooks(plain.base, writeKeys, receiver.url, false);
    await smokeTest(fx, { kyclo: plain, baseline: null, state, log });
    await plain.stop();
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    await watch.query('create extension if not exists pg_stat_statements');
    // One server per run, so each profile holds one endpoint; the baselines too, for comparison.
    for (const g of groups) {
      for (const def of g.runs) {
        const dir = path.join(PROF_DIR, stamp, def.id);
        const server =
          def.server === 'kyclo'
            ? await startKyclo({ ...kycloOpts, profileDir: dir })
            : await startBaseline({ root: ROOT, databaseUrl: url, tenantId: state.tenantId, writeTenantId: state.writeTenantId!, profileDir: dir });
        cleanups.push(() => server.stop());
        if (def.server === 'kyclo') await setWebhooks(server.base, !!def.webhooks);
        warmed.delete(def.id);
        const runs = [];
        // PostgreSQL's statistics count from the measured load on (not the warm-up), until the catch-up.
        const reset = () => watch.query('select pg_stat_statements_reset(), pg_stat_reset()');
        for (let r = 0; r < rounds; r++) runs.push(await measure(def, server, r, r === 0 ? reset : undefined));
        await server.stop();
        const file = await mainProfile(dir);
        // The window ends when the background work caught up: its samples are the requests' too.
        const window = { fromUs: runs[0]!.fromUs, toUs: Number(process.hrtime.bigint() / 1000n) };
        log(`\n== CPU profile: ${def.label} — ${path.relative(ROOT, file)} ==`);
        const requests = runs.reduce((n, x) => n + x.result.requests, 0);
        log(formatSummary(await summarise(file, 25, window), requests));
        log(await statementSummary(watch, requests));
        log('');
      }
    }
    log(`profile run done in ${elapsed().toFixed(0)} s (figures under --cpu-prof are not recorded)`);
    return;
  }

  const baseline = await startBaseline({ root: ROOT, databaseUrl: url, tenantId: state.tenantId, writeTenantId: state.writeTenantId! });
  cleanups.push(() => baseline.stop());
  const kyclo = await startKyclo(kycloOpts);
  cleanups.push(() => kyclo.stop());
  const idleRss = rssOf(kyclo.pid)?.rssMb ?? NaN;
  await setWebhooks(kyclo.base, false);
  await smokeTest(fx, { kyclo, baseline, state, log });
  log(`Kyclo pid ${kyclo.pid} (RSS ${idleRss.toFixed(0)} MB idle), baseline pid ${baseline.pid}, webhook receiver pid ${receiver.pid}; rate limit raised, every scenario answered 2xx once`);
  const first = await drain(watch, 300);
  log(`Kyclo's background work caught up with what came before in ${first.seconds.toFixed(1)} s (sealing the entries of tenant and key creation, old deliveries)`);

  for (let r = 0; r < rounds; r++) {
    for (const g of groups) {
      // A/B alternated: each group's runs in order on even rounds, reversed on odd ones.
      const runs = r % 2 === 0 ? g.runs : [...g.runs].reverse();
      for (const def of runs) {
        if (def.server === 'kyclo') await setWebhooks(kyclo.base, !!def.webhooks);
        await measure(def, def.server === 'kyclo' ? kyclo : baseline, r);
      }
    }
  }
  await kyclo.stop();
  await baseline.stop();
  await receiver.stop();

  // Import and export last, in databases of their own on the same server (bench/import-export.ts).
  const ioRows = !only || only.has('io') ? await measureImportExport({ adminUrl: pgServer.adminUrl, users, rounds: Number(opt['io-rounds']), log }) : [];
  const rows = [...report(groups.flatMap((g) => g.rows), results, rssMax), ...ioRows];
  const cpuRows = cpuTable(groups.flatMap((g) => g.runs), results);
  log('');
  log(textTable(rows));
  log('');
  log(cpuRows.text);
  log('');
  const misses = rows.filter((x) => x.pass === false);
  if (memAtPeak) {
    log(
      `Kyclo memory after its heaviest run (${memAtPeak.run}): RSS ${memAtPeak.rssMb.toFixed(0)} MB; V8 heap ${memAtPeak.heapTotalMb.toFixed(0)} MB ` +
        `(${memAtPeak.heapUsedMb.toFixed(0)} used), external ${memAtPeak.externalMb.toFixed(0)} MB`,
    );
  }
  log(`targets: ${rows.filter((x) => x.pass === true).length} PASS, ${misses.length} MISS${misses.length ? ` (${misses.map((m) => m.short).join(', ')})` : ''}`);
  const seeding = seed.reused
    ? `reused the database seeded ${seed.state.seededAt} (run with --fresh to time the COPY)`
    : `COPY of ${users.toLocaleString('en')} users ${seed.timings!.copyUsers.toFixed(1)} s; data keys ${seed.timings!.copyKeys.toFixed(1)} s alongside the index builds ${seed.timings!.indexes.toFixed(1)} s ` +
      `and the sealed audit entries and events ${seed.timings!.history.toFixed(1)} s; whole seeding with migrations, VACUUM and ANALYZE ${seed.timings!.total.toFixed(1)} s`;
  log(`seeding: ${seeding}`);
  log(`whole run: ${elapsed().toFixed(0)} s`);

  const record = !opt['no-record'] && !opt['no-webhooks'] && !only && users === 1_000_000;
  if (!record) {
    log('(not recorded in bench/RESULTS.md: a partial or resized run, or --no-record)');
    return;
  }
  const cpus = os.cpus();
  const args = process.argv.slice(2).join(' ');
  await writeResults(path.join(ROOT, 'bench', 'RESULTS.md'), {
    date: new Date().toISOString(),
    machine: `${cpus.length} cores (${cpus[0]?.model.trim()}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, ${os.type()} ${os.release()}, Node ${process.version}`,
    command: `npm run bench${args ? ` -- ${args}` : ''}`,
    commit,
    seeding,
    settings: [
      `Load: ${loader}, ${threads} threads, ${connections} connections; ${rounds} rounds of ${seconds} s slices, A/B order alternating per round, a ${warmup} s warm-up before the first slice of each run kind and ${rewarm} s of the same load before every later one; after each slice the run waits until Kyclo's background work has caught up, and that time's CPU is the slice's`,
      `PostgreSQL: embedded PostgreSQL 17, its own data directory and port; ${pgServer.settings.join(', ')}; fsync and synchronous_commit at their defaults (on) for both sides; ${warm.mb.toFixed(0)} MB prewarmed with ${warm.method} (all but the tables of the append-only audit_entries and events); ${logRows}`,
      `Kyclo, as deployed: \`node ${KYCLO_NODE_FLAGS.join(' ')} dist/cli/main.js serve\` (as npm start runs it), default configuration (KYCLO_SERVE_WORKERS=true: audit sealer, checkpoint signing, webhook fan-out and delivery in the server process), LOG_LEVEL=${opt['log-level']}, KYCLO_WEBHOOKS_ALLOW_HTTP/PRIVATE=true for the receiver on 127.0.0.1, one webhook endpoint per tenant written to, in-memory rate limiter with the tenant limit raised to 1,000,000/min by PUT /v1/policy, pool of 10; RSS ${idleRss.toFixed(0)} MB idle`,
      'Baselines: bench/baseline.ts compiled by tsc, Fastify + pg Pool of 10, named prepared statements, the same rows and sizes in one statement (CTEs), ISO timestamp parsing, response schemas; no auth/validation/policy/encryption/logging; their audit entries and events are written sealed and fanned out',
      `Import and export: \`node ${KYCLO_NODE_FLAGS.join(' ')} dist/cli/main.js import FILE --tenant T\` (as the kyclo command runs it) and \`export --tenant T --output /dev/null\` (its default --jobs: a rendering thread a core, up to 4) as a user runs them, ${opt['io-rounds']} rounds, each into a fresh database on the same server (the file: the seeded users as NDJSON rows of the kyclo profile); the floor: COPY of the same rows into the same tables (users, user_keys, audit_entries with audit_unsealed, status_changes) from files made beforehand, three tables at once then two, in a fresh database; floor and import order alternating per round; the CLI's CPU and peak RSS read from /proc`,
      `Data: ${users.toLocaleString('en')} seeded users (${fx.total.toLocaleString('en')} in the table), each with a sealed audit entry and a fanned-out event; ids: ${fx.ids.length.toLocaleString('en')} random non-closed individuals; deep page ${fx.deepPage.toLocaleString('en')}; q: ${fx.q.map((x) => `${x.name} (${x.matches.toLocaleString('en')} matches)`).join(', ')}`,
    ],
    durationS: elapsed(),
  }, rows, cpuRows.markdown);
  log('bench/RESULTS.md updated');
}

/**
 * Where PostgreSQL's time went in the run just made (pg_stat_statements, nested statements included,
 * so a trigger's statements show on their own line), per request: execution time, rows, shared
 * blocks, WAL records and bytes; and the PL/pgSQL functions (triggers) by self time.
 */
async function statementSummary(client: pg.Client, requests: number): Promise<string> {
  const per = (x: number) => ((x * 1000) / Math.max(1, requests)).toFixed(1);
  const st = await client.query<{
    calls: string; total: number; plans: string; plan: number; rows: string; hit: string; read: string; wal_records: string; wal_bytes: string; query: string;
  }>(
    `select calls::text, total_exec_time as total, plans::text, total_plan_time as plan, rows::text, shared_blks_hit::text as hit, shared_blks_read::text as read,
            wal_records::text, wal_bytes::text, left(regexp_replace(query, '\\s+', ' ', 'g'), 150) as query
       from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())
      order by total_exec_time desc limit 20`,
  );
  const total = st.rows.reduce((n, r) => n + r.total, 0);
  const lines = [
    `PostgreSQL statements by execution time (${per(total)} µs per request in these ${st.rows.length}, planning ${per(st.rows.reduce((n, r) => n + r.plan, 0))} more; commits' WAL flushes are not execution time):`,
    '  µs/req   calls/req  plan µs/req  plans/call  rows/call  blks hit/call  read/call  WAL rec/call  WAL B/call  statement',
    ...st.rows.map((r) => {
      const calls = Number(r.calls);
      const c = (x: string) => (Number(x) / Math.max(1, calls)).toFixed(1);
      return `  ${per(r.total).padStart(6)}  ${(calls / Math.max(1, requests)).toFixed(2).padStart(9)}  ${per(r.plan).padStart(11)}  ${c(r.plans).padStart(10)}  ${c(r.rows).padStart(9)}  ${c(r.hit).padStart(13)}  ${c(r.read).padStart(9)}  ${c(r.wal_records).padStart(12)}  ${c(r.wal_bytes).padStart(10)}  ${r.query}`;
    }),
  ];
  const fns = await client.query<{ name: string; calls: string; self: number; total: number }>(
    'select funcname as name, calls::text, self_time as self, total_time as total from pg_stat_user_functions order by self_time desc limit 10',
  );
  if (fns.rows.length) {
    lines.push('PL/pgSQL functions (triggers): µs self per request, calls per request');
    for (const f of fns.rows) lines.push(`  ${per(f.self).padStart(6)}  ${(Number(f.calls) / Math.max(1, requests)).toFixed(2).padStart(6)}  ${f.name}`);
  }
  return lines.join('\n');
}

/** RSS, V8 heap and external memory as Kyclo's /metrics reports them. */
async function memoryBreakdown(base: string) {
  const text = await fetch(`${base}/metrics`).then((r) => r.text(), () => '');
  const mb = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20;
  const rssMb = mb('kyclo_process_resident_memory_bytes');
  if (Number.isNaN(rssMb)) return null;
  return { rssMb, heapTotalMb: mb('kyclo_nodejs_heap_size_total_bytes'), heapUsedMb: mb('kyclo_nodejs_heap_size_used_bytes'), externalMb: mb('kyclo_nodejs_external_memory_bytes') };
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
