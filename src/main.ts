// kyclo serve: config → database (embedded or DATABASE_URL) → migrations → first-run tenant →
// HTTP. SIGINT/SIGTERM: stop accepting, let in-flight requests finish, close the pool, stop the
// embedded PostgreSQL, exit 0.
import { defaultBlobStore } from './storage/blob-store.js';
import type { Config } from './config.js';
import { buildApp } from './app.js';
import { connect, migrate } from './db/connect.js';
import { resolveMasterKey } from './crypto/master-key.js';
import { createKeyring } from './crypto/keyring.js';
import { installAuditKeys } from './modules/audit/authentication.js';
import { pino } from 'pino';
import { startBackgroundWork } from './workers/background.js';
import { memoryLimiter, redisLimiter } from './http/rate-limit.js';
import { createServices } from './services.js';

export async function serve(config: Config): Promise<void> {
  const out = (line: string) => process.stdout.write(line + '\n');
  // Refuse before touching the database: without the master key nothing personal could be written.
  if (config.databaseUrl && !config.masterKey) await resolveMasterKey({ fromEnv: undefined, embedded: false, dataDir: config.dataDir });
  const debug = config.logLevel === 'debug' || config.logLevel === 'trace' ? out : () => undefined;
  const conn = await connect(config, debug);
  let app: Awaited<ReturnType<typeof buildApp>> | undefined;
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    out(`${signal} received: finishing in-flight requests`);
    try {
      await app?.close();
      await conn.close();
      process.exit(0);
    } catch (err) {
      process.stderr.write(`shutdown failed: ${String(err)}\n`);
      process.exit(1);
    }
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  try {
    const applied = await migrate(conn.db);
    if (applied.length) out(`migrations applied: ${applied.join(', ')}`);
    const masterKey = await resolveMasterKey({ fromEnv: config.masterKey, embedded: conn.embedded, dataDir: config.dataDir });
    const keyring = createKeyring({ db: conn.db, masterKey });
    // The first tenant's creation is audited, so the audit keys come first.
    installAuditKeys(keyring.auditKeys);
    const blobs = defaultBlobStore(config.dataDir);
    const services = createServices({ db: conn.db, keyring, blobs, webhookTargets: config.webhooks, documentMaxBytes: config.documentMaxBytes });
    const { tenants } = services;
    let firstRun: Awaited<ReturnType<typeof tenants.create>> | undefined;
    // Only the embedded default bootstraps itself; a real deployment creates tenants with the CLI.
    if (conn.embedded && (await tenants.count()) === 0) firstRun = await tenants.create('default');

    app = await buildApp({
      db: conn.db,
      keyring,
      logLevel: config.logLevel,
      webhookTargets: config.webhooks,
      background: config.serveWorkers ? { retentionIntervalSeconds: config.retentionIntervalSeconds, checkpointEveryMs: config.auditCheckpointSeconds * 1000 } : null,
      limiter: config.redisUrl
        ? redisLimiter(config.redisUrl, (shared) => out(shared ? 'rate limits: shared through Redis' : 'rate limits: Redis unreachable, counting locally'))
        : memoryLimiter(),
      trustProxy: config.trustedProxies.length ? config.trustedProxies : false,
      authFailuresPerMinute: config.authFailuresPerMinute,
      blobs,
      documentMaxBytes: config.documentMaxBytes,
      uploads: config.uploads,
      services,
    });
    await app.listen({ port: config.port, host: config.host });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.port;
    const base = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    out('');
    out(`Kyclo is serving on ${base}  (database: ${conn.embedded ? `embedded PostgreSQL in ${config.dataDir}` : 'DATABASE_URL'})`);
    // /v1 itself is no resource: point at one that answers (with a key), and at the reference.
    out(`  API   ${base}/v1/users  (every /v1 path needs Authorization: Bearer <key>)`);
    out(`  Docs  ${base}/docs   OpenAPI ${base}/openapi.json`);
    out(`  Console  ${base}/console  (sign in with an API key)`);
    if (firstRun) {
      out('');
      out(`First run: created tenant "default" (${firstRun.tenant.id}) and its OWNER key. It is shown this once:`);
      out('');
      out(`  ${firstRun.key.key}`);
      out('');
      out(`  export KYCLO_KEY=${firstRun.key.key}`);
      out(`  curl -s ${base}/v1/users -H "Authorization: Bearer $KYCLO_KEY"`);
    }
    out('');
    out('Press Ctrl+C to stop.');
  } catch (err) {
    await app?.close().catch(() => undefined);
    await conn.close().catch(() => undefined);
    throw err;
  }
}

/** kyclo worker: the background work alone (webhooks, audit sealing, retention), no HTTP. */
export async function work(config: Config): Promise<void> {
  const out = (line: string) => process.stdout.write(line + '\n');
  if (config.databaseUrl && !config.masterKey) await resolveMasterKey({ fromEnv: undefined, embedded: false, dataDir: config.dataDir });
  const conn = await connect(config, () => undefined, { owner: false });
  await migrate(conn.db);
  const masterKey = await resolveMasterKey({ fromEnv: config.masterKey, embedded: conn.embedded, dataDir: config.dataDir });
  const log = pino({ level: config.logLevel });
  const keyring = createKeyring({ db: conn.db, masterKey });
  installAuditKeys(keyring.auditKeys);
  const stop = startBackgroundWork({
    db: conn.db,
    keyring,
    erasure: createServices({ db: conn.db, keyring, blobs: defaultBlobStore(config.dataDir), webhookTargets: config.webhooks }).erasure,
    webhookTargets: config.webhooks,
    retentionIntervalSeconds: config.retentionIntervalSeconds,
    checkpointEveryMs: config.auditCheckpointSeconds * 1000,
    log,
  });
  out('Kyclo worker running: webhook dispatch, audit sealing, retention. Ctrl+C to stop.');
  const shutdown = async () => {
    await stop();
    await conn.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
}
