// Where the master key comes from: KYCLO_MASTER_KEY (32 random bytes, base64) in production; in the
// embedded default, a key generated on first run under KYCLO_DATA_DIR (mode 0600). A server on
// DATABASE_URL without a master key refuses to start: it would write data nobody could read back.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../config.js';

export function parseMasterKey(value: string): Buffer {
  const key = Buffer.from(value, 'base64');
  if (key.length !== 32 || key.toString('base64').replace(/=+$/, '') !== value.trim().replace(/=+$/, '')) {
    throw new ConfigError(['KYCLO_MASTER_KEY: must be 32 random bytes in base64 (openssl rand -base64 32)']);
  }
  return key;
}

export async function resolveMasterKey(opts: { fromEnv: string | undefined; embedded: boolean; dataDir: string }): Promise<Buffer> {
  if (opts.fromEnv) return parseMasterKey(opts.fromEnv);
  if (!opts.embedded) {
    throw new ConfigError([
      'KYCLO_MASTER_KEY: required with DATABASE_URL (32 random bytes in base64: openssl rand -base64 32). ' +
        'It encrypts personal data; keep it outside the database and its backups.',
    ]);
  }
  const file = path.join(opts.dataDir, 'master.key');
  const existing = await fs.readFile(file, 'utf8').catch(() => null);
  if (existing) return parseMasterKey(existing.trim());
  const key = crypto.randomBytes(32);
  await fs.mkdir(opts.dataDir, { recursive: true });
  await fs.writeFile(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  return key;
}
