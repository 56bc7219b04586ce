// Configuration comes from the environment only, is validated once at boot, and fails fast with a
// message that names every bad variable. No secret has a default.
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import path from 'node:path';

const LogLevel = Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export const EnvSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535 }),
  HOST: Type.String({ minLength: 1 }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  KYCLO_DATA_DIR: Type.String({ minLength: 1 }),
  KYCLO_MASTER_KEY: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9+/]{43}=?$' })),
  LOG_LEVEL: LogLevel,
  KYCLO_RETENTION_INTERVAL_SECONDS: Type.Integer({ minimum: 0, maximum: 86400 }),
  KYCLO_SERVE_WORKERS: Type.Enum(['true', 'false']),
  KYCLO_WEBHOOKS_ALLOW_HTTP: Type.Enum(['true', 'false']),
  KYCLO_WEBHOOKS_ALLOW_PRIVATE: Type.Enum(['true', 'false']),
  KYCLO_TRUSTED_PROXIES: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F.:/]+(,[0-9a-fA-F.:/]+)*$' })),
  KYCLO_DOCUMENT_MAX_BYTES: Type.Integer({ minimum: 1024, maximum: 25 * 1024 * 1024 }),
  KYCLO_UPLOAD_SLOTS_PER_TENANT: Type.Integer({ minimum: 1, maximum: 1000 }),
  KYCLO_UPLOAD_SLOTS: Type.Integer({ minimum: 1, maximum: 10000 }),
  KYCLO_UPLOAD_SLOT_WAIT_MS: Type.Integer({ minimum: 0, maximum: 600_000 }),
  KYCLO_UPLOAD_READ_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 3_600_000 }),
  KYCLO_AUDIT_CHECKPOINT_SECONDS: Type.Integer({ minimum: 0, maximum: 3600 }),
  KYCLO_AUTH_FAILURES_PER_MINUTE: Type.Integer({ minimum: 0, maximum: 100000 }),
});

export type Env = Static<typeof EnvSchema>;

export interface Config {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  dataDir: string;
  /** Base64 of 32 bytes; see crypto/master-key.ts for where it comes from when unset. */
  masterKey: string | undefined;
  logLevel: string;
  retentionIntervalSeconds: number;
  /** Whether `serve` also runs the background work (dispatcher, audit sealer, retention sweeper). */
  serveWorkers: boolean;
  webhooks: { allowHttp: boolean; allowPrivate: boolean };
  /** Addresses or CIDRs of the proxies whose X-Forwarded-For is believed; none by default. */
  trustedProxies: string[];
  /** The largest document file accepted (each side of a card counts alone); 10 MiB by default. */
  documentMaxBytes: number;
  /** Uploads in flight per tenant and per process, the wait for a slot, the body's read deadline. */
  uploads: { slotsPerTenant: number; slots: number; slotWaitMs: number; readTimeoutMs: number };
  /** The least time between two signed checkpoints of one tenant's audit head (10 s by default). */
  auditCheckpointSeconds: number;
  /** Requests without a valid key allowed per client address a minute before it is blocked (null: no limit). */
  authFailuresPerMinute: number | null;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

const check = Compile(EnvSchema);

/** Reads the environment; empty strings count as unset so `FOO= kyclo serve` means the default. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const pick = (name: string) => (env[name] === undefined || env[name] === '' ? undefined : env[name]);
  const intOrRaw = (v: string) => (/^\d+$/.test(v) ? Number(v) : v);
  const raw: Record<string, unknown> = {
    PORT: intOrRaw(pick('PORT') ?? '3000'),
    HOST: pick('HOST') ?? '127.0.0.1',
    DATABASE_URL: pick('DATABASE_URL'),
    REDIS_URL: pick('REDIS_URL'),
    KYCLO_DATA_DIR: pick('KYCLO_DATA_DIR') ?? './.kyclo',
    KYCLO_MASTER_KEY: pick('KYCLO_MASTER_KEY'),
    LOG_LEVEL: pick('LOG_LEVEL') ?? 'info',
    KYCLO_RETENTION_INTERVAL_SECONDS: intOrRaw(pick('KYCLO_RETENTION_INTERVAL_SECONDS') ?? '3600'),
    KYCLO_SERVE_WORKERS: pick('KYCLO_SERVE_WORKERS') ?? 'true',
    KYCLO_WEBHOOKS_ALLOW_HTTP: pick('KYCLO_WEBHOOKS_ALLOW_HTTP') ?? 'false',
    KYCLO_WEBHOOKS_ALLOW_PRIVATE: pick('KYCLO_WEBHOOKS_ALLOW_PRIVATE') ?? 'false',
    KYCLO_TRUSTED_PROXIES: pick('KYCLO_TRUSTED_PROXIES')?.replace(/\s+/g, ''),
    KYCLO_DOCUMENT_MAX_BYTES: intOrRaw(pick('KYCLO_DOCUMENT_MAX_BYTES') ?? String(10 * 1024 * 1024)),
    // Defaults as in modules/documents/upload-slots.ts (DEFAULT_UPLOAD_LIMITS).
    KYCLO_UPLOAD_SLOTS_PER_TENANT: intOrRaw(pick('KYCLO_UPLOAD_SLOTS_PER_TENANT') ?? '4'),
    KYCLO_UPLOAD_SLOTS: intOrRaw(pick('KYCLO_UPLOAD_SLOTS') ?? '32'),
    KYCLO_UPLOAD_SLOT_WAIT_MS: intOrRaw(pick('KYCLO_UPLOAD_SLOT_WAIT_MS') ?? '5000'),
    KYCLO_UPLOAD_READ_TIMEOUT_MS: intOrRaw(pick('KYCLO_UPLOAD_READ_TIMEOUT_MS') ?? '20000'),
    KYCLO_AUDIT_CHECKPOINT_SECONDS: intOrRaw(pick('KYCLO_AUDIT_CHECKPOINT_SECONDS') ?? '10'),
    KYCLO_AUTH_FAILURES_PER_MINUTE: intOrRaw(pick('KYCLO_AUTH_FAILURES_PER_MINUTE') ?? '30'),
  };
  for (const k of Object.keys(raw)) if (raw[k] === undefined) delete raw[k];
  if (!check.Check(raw)) {
    const problems = [...check.Errors(raw)].map((e) => {
      const name = e.instancePath.replace(/^\//, '') || 'environment';
      // URLs may carry passwords, and the master key is a secret: never echo them back.
      const got = name.endsWith('_URL') || name.endsWith('_KEY') ? '' : ` (got ${JSON.stringify(raw[name])})`;
      return `${name}: ${e.message}${got}`;
    });
    throw new ConfigError([...new Set(problems)]);
  }
  const env2 = raw as Env;
  return {
    port: env2.PORT,
    host: env2.HOST,
    databaseUrl: env2.DATABASE_URL,
    redisUrl: env2.REDIS_URL,
    dataDir: path.resolve(env2.KYCLO_DATA_DIR),
    masterKey: env2.KYCLO_MASTER_KEY,
    logLevel: env2.LOG_LEVEL,
    retentionIntervalSeconds: env2.KYCLO_RETENTION_INTERVAL_SECONDS,
    serveWorkers: env2.KYCLO_SERVE_WORKERS === 'true',
    webhooks: { allowHttp: env2.KYCLO_WEBHOOKS_ALLOW_HTTP === 'true', allowPrivate: env2.KYCLO_WEBHOOKS_ALLOW_PRIVATE === 'true' },
    trustedProxies: env2.KYCLO_TRUSTED_PROXIES ? env2.KYCLO_TRUSTED_PROXIES.split(',') : [],
    documentMaxBytes: env2.KYCLO_DOCUMENT_MAX_BYTES,
    uploads: {
      slotsPerTenant: env2.KYCLO_UPLOAD_SLOTS_PER_TENANT,
      slots: env2.KYCLO_UPLOAD_SLOTS,
      slotWaitMs: env2.KYCLO_UPLOAD_SLOT_WAIT_MS,
      readTimeoutMs: env2.KYCLO_UPLOAD_READ_TIMEOUT_MS,
    },
    auditCheckpointSeconds: env2.KYCLO_AUDIT_CHECKPOINT_SECONDS,
    authFailuresPerMinute: env2.KYCLO_AUTH_FAILURES_PER_MINUTE === 0 ? null : env2.KYCLO_AUTH_FAILURES_PER_MINUTE,
  };
}
