import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { ConfigError, loadConfig } from './config.js';

describe('configuration', () => {
  it('has the documented defaults', () => {
    expect(loadConfig({})).toEqual({
      port: 3000, host: '127.0.0.1', databaseUrl: undefined, redisUrl: undefined,
      dataDir: path.resolve('./.kyclo'), masterKey: undefined, logLevel: 'info', retentionIntervalSeconds: 3600,
      serveWorkers: true, webhooks: { allowHttp: false, allowPrivate: false }, trustedProxies: [],
      documentMaxBytes: 10 * 1024 * 1024,
      uploads: { slotsPerTenant: 4, slots: 32, slotWaitMs: 5000, readTimeoutMs: 20000 },
      auditCheckpointSeconds: 10, authFailuresPerMinute: 30,
    });
  });

  it('reads every variable', () => {
    const c = loadConfig({
      PORT: '8080', HOST: '0.0.0.0', DATABASE_URL: 'postgres://u@h/db', REDIS_URL: 'redis://h:6379', KYCLO_DATA_DIR: '/var/kyclo', LOG_LEVEL: 'debug',
    });
    expect(c).toEqual({
      port: 8080, host: '0.0.0.0', databaseUrl: 'postgres://u@h/db', redisUrl: 'redis://h:6379', dataDir: '/var/kyclo', masterKey: undefined, logLevel: 'debug',
      retentionIntervalSeconds: 3600, serveWorkers: true, webhooks: { allowHttp: false, allowPrivate: false }, trustedProxies: [],
      documentMaxBytes: 10 * 1024 * 1024,
      uploads: { slotsPerTenant: 4, slots: 32, slotWaitMs: 5000, readTimeoutMs: 20000 },
      auditCheckpointSeconds: 10, authFailuresPerMinute: 30,
    });
  });

  it('turns the key-guessing limit off with 0 and takes the checkpoint spacing', () => {
    expect(loadConfig({ KYCLO_AUTH_FAILURES_PER_MINUTE: '0', KYCLO_AUDIT_CHECKPOINT_SECONDS: '0' })).toMatchObject({ authFailuresPerMinute: null, auditCheckpointSeconds: 0 });
    expect(() => loadConfig({ KYCLO_AUDIT_CHECKPOINT_SECONDS: '-1' })).toThrow(/KYCLO_AUDIT_CHECKPOINT_SECONDS/);
  });

  it('names every invalid variable, without echoing URLs that may hold passwords', () => {
    let err: unknown;
    try {
      loadConfig({ PORT: '70000', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://root:secret@h/db', KYCLO_MASTER_KEY: 'secret-but-short' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).toContain('PORT');
    expect(message).toContain('LOG_LEVEL');
    expect(message).toContain('DATABASE_URL');
    expect(message).toContain('KYCLO_MASTER_KEY');
    expect(message).not.toContain('secret');
  });
});
