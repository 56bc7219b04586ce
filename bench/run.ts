// npm run bench: Kyclo against bare baselines in the same run, on the same PostgreSQL, with the
// targets of issue 8. See bench/README.md. Options:
//   --fresh            seed the database again even if a seeded one can be reused
//   --profile          Kyclo under --cpu-prof, one profile per endpoint group, top self-time printed
//   --only a,b         groups: get (GET user, capabilities), patch, post, list, search
//   --rounds N         default 3 (1 with --profile); --seconds N (10); --warmup N (5)
//   --connections N    default 32; --threads N (wrk threads, 2)
//   --users N          default 1,000,000; --log-level L (Kyclo's LOG_LEVEL, default warn)
//   --no-record        do not write bench/RESULTS.md (only full default-size runs are recorded)
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import { execSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startBenchPostgres } from './pg.js';
import { DATABASE, ensureSeeded, prepareRun, prewarm } from './seed.js';
import { runLoad, wrkPath, type LoadResult } from './load.js';
import { cpuMsOf, KYCLO_NODE_FLAGS, machineBusyMs, mainProfile, postgresCpuMs, rssOf, startBaseline, startKyclo, type Running } from './servers.js';
import { prepareFixtures, plan, smokeTest, type RunDef } from './scenarios.js';
import { figuresOf, median, textTable, writeResults, type Row } from './results.js';
import { formatSummary, summarise } from './profile-top.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIR = path.join(ROOT, 'scratch', 'bench');
const PROF_DIR = path.join(ROOT, 'scratch', 'prof');

const { values: opt } = parseArgs({
  options: {
    fresh: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    only: { type: 'string' },
    rounds: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
    users: { type: 'string', default: '1000000' },
    'log-level': { type: 'string', default: 'warn' },
    'shared-buffers': { type: 'string', default: '2GB' },
    'no-record': { type: 'boolean', default: false },
  },
});
const rounds = Number(opt.rounds ?? (opt.profile ? 1 : 3));
const seconds = Number(opt.seconds);
const warmup = Number(opt.warmup);
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

async function main(): Promise<void> {
  // The code measured is the code at the start (another commit may land while the bench runs).
  const srcDirty = execSync('git status --porcelain -- src package.json', { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
  const commit = execSync('git rev-parse --short HEAD', { cwd: ROOT, encoding: 'utf8' }).trim() + (srcDirty ? ' + uncommitted src changes' : '');
  const wrk = wrkPath();
  const loader = wrk ? `wrk ${execSync(`${wrk} --version 2>&1 || true`, { encoding: 'utf8' }).split(' ')[1] ?? ''}`.trim() : 'autocannon';
  log(`Kyclo benchmark: ${users.toLocaleString('en')} users, ${loader}, ${connections} connections, ${seconds} s runs after ${warmup} s warm-up, ${rounds} round(s)`);
  await fs.mkdir(path.join(DIR, 'kyclo'), { recursive: true });

  // Kyclo is measured as `npm start` runs it: the compiled build.
  execSync('npm run --silent build', { cwd: ROOT, stdio: 'inherit' });
  log('built dist/ (npm run build)');
  const pg = await startBenchPostgres(DIR, { sharedBuffers: opt['shared-buffers'], log });
  cleanups.push(() => pg.stop());
  const seed = await ensureSeeded(pg, DIR, { fresh: opt.fresh, users, log });
  const { state, removed } = await prepareRun(pg, DIR, seed.state);
  if (removed) log(`removed ${removed.toLocaleString('en')} users made by earlier runs, so this run measures the seeded ones`);
  const warm = await prewarm(pg);
  log(
    `prewarmed ${warm.mb.toFixed(0)} MB with ${warm.method} in ${warm.seconds.toFixed(1)} s ` +
      `(not the append-only audit_entries and events, ${warm.skippedMb.toFixed(0)} MB)`,
  );
  if (warm.mb > 0.9 * warm.sharedBuffersMb) log(`WARNING: the working set (${warm.mb.toFixed(0)} MB) barely fits shared_buffers (${warm.sharedBuffersMb.toFixed(0)} MB): use --shared-buffers`);
  const url = pg.urlFor(DATABASE);
  const fx = await prepareFixtures(url, state, DIR, users);
  log(`fixtures: ${fx.ids.length.toLocaleString('en')} user ids; deep page ${fx.deepPage.toLocaleString('en')}; q=${fx.q.map((x) => `${x.name} (${x.matches.toLocaleString('en')} matches)`).join(', ')}`);

  const groups = plan(fx).filter((g) => !only || only.has(g.key));
  const results = new Map<string, LoadResult[]>();
  let rssMax = 0;
  // Assigned inside measure(): typed by assertion so the narrowing to null does not stick.
  let memAtPeak = null as (NonNullable<Awaited<ReturnType<typeof memoryBreakdown>>> & { run: string }) | null;
  const kycloOpts = { root: ROOT, databaseUrl: url, masterKey: state.masterKey, logLevel: opt['log-level'], dataDir: path.join(DIR, 'kyclo') };

  /** Warm-up then the measured run; returns the measured run and its window on CLOCK_MONOTONIC (µs). */
  const measure = async (def: RunDef, server: Running, round: number) => {
    const spec = {
      base: server.base, mode: def.mode, prefix: def.prefix, suffix: def.suffix,
      apiKey: def.server === 'kyclo' ? (def.writes ? state.writeApiKey : state.apiKey) : undefined,
      idsLua: fx.idsLua, idsJson: fx.idsJson, connections: def.connections ?? connections, threads, seconds,
    };
    const sampler = def.server === 'kyclo' ? setInterval(() => (rssMax = Math.max(rssMax, rssOf(server.pid)?.rssMb ?? 0)), 200) : null;
    try {
      if (warmup > 0) await runLoad({ ...spec, seconds: warmup }, wrk);
      // Where each request's CPU went (server, PostgreSQL, everything else: the load generator, the
      // kernel's share not charged to a process): on 2 shared cores that, more than latency, is
      // what a ratio is made of.
      const cpu0 = { server: cpuMsOf(server.pid), pg: postgresCpuMs(), all: machineBusyMs() };
      const fromUs = Number(process.hrtime.bigint() / 1000n);
      const r = await runLoad(spec, wrk);
      const toUs = Number(process.hrtime.bigint() / 1000n);
      const perReq = (ms: number) => ((ms * 1000) / Math.max(1, r.requests)).toFixed(0).padStart(5);
      const cpu = { server: cpuMsOf(server.pid) - cpu0.server, pg: postgresCpuMs() - cpu0.pg, all: machineBusyMs() - cpu0.all };
      log(
        `  [${elapsed().toFixed(0).padStart(4)} s] round ${round + 1}  ${def.label.padEnd(46)} ${r.rps.toFixed(0).padStart(6)} req/s  ` +
          `p50 ${r.p50ms.toFixed(2).padStart(7)} ms  p99 ${r.p99ms.toFixed(2).padStart(7)} ms  ` +
          `CPU µs/req: server ${perReq(cpu.server)}, pg ${perReq(cpu.pg)}, rest ${perReq(cpu.all - cpu.server - cpu.pg)}` +
          `${r.bad ? `  ${r.bad} non-2xx/errors!` : ''}`,
      );
      results.set(def.id, [...(results.get(def.id) ?? []), r]);
      if (def.server === 'kyclo') {
        // Where the memory is, from Kyclo's own /metrics right after the run (prom-client's process metrics).
        const m = await memoryBreakdown(server.base);
        if (m && m.rssMb >= (memAtPeak?.rssMb ?? 0)) memAtPeak = { ...m, run: def.label };
      }
      return { result: r, fromUs, toUs };
    } finally {
      if (sampler) clearInterval(sampler);
    }
  };

  if (opt.profile) {
    // The raised rate limit and a smoke test, once, on a Kyclo that is not profiled.
    const plain = await startKyclo(kycloOpts);
    cleanups.push(() => plain.stop());
    await smokeTest(fx, { kyclo: plain, baseline: null, state });
    await plain.stop();
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    // One server per run, so each profile holds one endpoint; the baselines too, for comparison.
    for (const g of groups) {
      for (const def of g.runs) {
        const dir = path.join(PROF_DIR, stamp, def.id);
        const server =
          def.server === 'kyclo'
            ? await startKyclo({ ...kycloOpts, profileDir: dir })
            : await startBaseline({ root: ROOT, databaseUrl: url, tenantId: state.tenantId, writeTenantId: state.writeTenantId!, profileDir: dir });
        cleanups.push(() => server.stop());
        const runs = [];
        for (let r = 0; r < rounds; r++) runs.push(await measure(def, server, r));
        await server.stop();
        const file = await mainProfile(dir);
        const window = { fromUs: runs[0]!.fromUs, toUs: runs.at(-1)!.toUs };
        log(`\n== CPU profile: ${def.label} — ${path.relative(ROOT, file)} ==`);
        log(formatSummary(await summarise(file, 25, window), runs.reduce((n, x) => n + x.result.requests, 0)));
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
  await smokeTest(fx, { kyclo, baseline, state });
  log(`Kyclo pid ${kyclo.pid} (RSS ${idleRss.toFixed(0)} MB idle), baseline pid ${baseline.pid}; rate limit raised, every scenario answered 2xx once`);

  for (let r = 0; r < rounds; r++) {
    for (const g of groups) {
      // A/B alternated: each group's runs in order on even rounds, reversed on odd ones.
      const runs = r % 2 === 0 ? g.runs : [...g.runs].reverse();
      for (const def of runs) await measure(def, def.server === 'kyclo' ? kyclo : baseline, r);
    }
  }
  await kyclo.stop();
  await baseline.stop();

  const rows = report(groups.flatMap((g) => g.rows), results, rssMax);
  log('');
  log(textTable(rows));
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
    : `COPY of ${users.toLocaleString('en')} users ${seed.timings!.copyUsers.toFixed(1)} s; data keys ${seed.timings!.copyKeys.toFixed(1)} s alongside the index builds ${seed.timings!.indexes.toFixed(1)} s; whole seeding with migrations and ANALYZE ${seed.timings!.total.toFixed(1)} s`;
  log(`seeding: ${seeding}`);
  log(`whole run: ${elapsed().toFixed(0)} s`);

  const record = !opt['no-record'] && !only && users === 1_000_000;
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
      `Load: ${loader}, ${threads} threads, ${connections} connections, ${seconds} s per run after a ${warmup} s warm-up, ${rounds} rounds, A/B order alternating per round; figures are medians`,
      `PostgreSQL: embedded PostgreSQL 17, its own data directory and port; ${pg.settings.join(', ')}; fsync and synchronous_commit at their defaults (on) for both sides; ${warm.mb.toFixed(0)} MB prewarmed with ${warm.method} (all but the append-only audit_entries and events)`,
      `Kyclo: \`node ${KYCLO_NODE_FLAGS.join(' ')} dist/cli/main.js serve\` (as npm start runs it), LOG_LEVEL=${opt['log-level']}, KYCLO_SERVE_WORKERS=false, in-memory rate limiter with the tenant limit raised to 1,000,000/min by PUT /v1/policy, pool of 10; RSS ${idleRss.toFixed(0)} MB idle`,
      'Baselines: bench/baseline.ts, Fastify + pg Pool of 10, named prepared statements, no auth/validation/policy/encryption/logging',
      `Data: ${users.toLocaleString('en')} seeded users (${fx.total.toLocaleString('en')} in the table); ids: ${fx.ids.length.toLocaleString('en')} random non-closed individuals; deep page ${fx.deepPage.toLocaleString('en')}; q: ${fx.q.map((x) => `${x.name} (${x.matches.toLocaleString('en')} matches)`).join(', ')}`,
    ],
    durationS: elapsed(),
  }, rows);
  log('bench/RESULTS.md updated');
}

/** RSS, V8 heap and external memory as Kyclo's /metrics reports them. */
async function memoryBreakdown(base: string) {
  const text = await fetch(`${base}/metrics`).then((r) => r.text(), () => '');
  const mb = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20;
  const rssMb = mb('kyclo_process_resident_memory_bytes');
  if (Number.isNaN(rssMb)) return null;
  return { rssMb, heapTotalMb: mb('kyclo_nodejs_heap_size_total_bytes'), heapUsedMb: mb('kyclo_nodejs_heap_size_used_bytes'), externalMb: mb('kyclo_nodejs_external_memory_bytes') };
}

/** Medians, per-round ratios and target verdicts. */
function report(specs: ReturnType<typeof plan>[number]['rows'], results: Map<string, LoadResult[]>, rssMax: number): Row[] {
  const rows: Row[] = [];
  for (const s of specs) {
    const k = results.get(s.kyclo) ?? [];
    const b = s.against ? (results.get(s.against) ?? []) : [];
    const perRound = (f: (kr: LoadResult, br: LoadResult) => number) => median(k.map((kr, i) => (b[i] ? f(kr, b[i]!) : NaN)).filter((x) => !Number.isNaN(x)));
    let ratio: number | null = null;
    let pass: boolean | null = null;
    if (s.kind === 'rps') {
      ratio = perRound((kr, br) => kr.rps / br.rps);
      pass = ratio >= s.threshold!;
    } else if (s.kind === 'p50') {
      ratio = perRound((kr, br) => kr.p50ms / br.p50ms);
      pass = ratio <= s.threshold!;
    } else if (s.kind === 'p99abs') {
      pass = median(k.map((x) => x.p99ms)) <= s.threshold!;
    }
    const bad = k.reduce((n, x) => n + x.bad, 0) + b.reduce((n, x) => n + x.bad, 0);
    rows.push({
      endpoint: s.endpoint, short: s.short, kyclo: figuresOf(k), baselineName: s.againstName ?? '—', baseline: figuresOf(b),
      ratio, target: s.target, pass: pass === null ? null : pass && bad === 0,
    });
  }
  if (results.size && [...results.keys()].some((id) => id.startsWith('kyclo'))) {
    rows.push({
      endpoint: 'server memory under load (max RSS)', short: 'rss', kyclo: null, baselineName: '—', baseline: null, ratio: null,
      measured: `${rssMax.toFixed(0)} MB`, target: 'RSS ≤ 250 MB', pass: rssMax <= 250,
    });
  }
  return rows;
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());

