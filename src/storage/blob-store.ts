// Where document contents live. The service only ever hands this store ciphertext (sealed with the
// user's data key), so a store needs no encryption of its own; it must only be durable before the
// database row that points at a blob commits. The default keeps one file per blob under
// KYCLO_DATA_DIR/documents; an object store would implement the same four calls.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

export interface BlobStore {
  /** Stores `data` durably under `key` (written and synced before it returns). */
  put(key: string, data: Buffer): Promise<void>;
  /** The blob, or undefined when there is none. */
  get(key: string): Promise<Buffer | undefined>;
  /** Removes one blob; a missing one is not an error. */
  delete(key: string): Promise<void>;
  /** Removes every blob under a prefix (a user's folder at erasure, orphans included). */
  deletePrefix(prefix: string): Promise<void>;
}

// Keys are made by the service from ids; anything else (.., absolute paths) is refused outright.
const KEY = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;

function checkKey(key: string): string {
  if (!KEY.test(key)) throw new Error(`invalid blob key: ${JSON.stringify(key)}`);
  return key;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function fileBlobStore(root: string): BlobStore {
  const resolve = (key: string) => path.join(root, ...checkKey(key).split('/'));
  return {
    async put(key, data) {
      const file = resolve(key);
      const dir = path.dirname(file);
      // A folder made here is synced into its parent too, up to the first that existed: after a
      // crash, a committed row must not point into a folder that was never made durable.
      const first = await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      if (first) for (let d = dir; d.length >= first.length; d = path.dirname(d)) await syncDir(path.dirname(d));
      // Write aside, sync, then rename: a reader never sees half a blob, a crash never leaves one.
      const tmp = `${file}.${crypto.randomBytes(6).toString('hex')}.tmp`;
      const handle = await fs.open(tmp, 'wx', 0o600);
      try {
        await handle.writeFile(data);
        await handle.sync();
      } catch (err) {
        await handle.close().catch(() => undefined);
        await fs.rm(tmp, { force: true });
        throw err;
      }
      await handle.close();
      await fs.rename(tmp, file);
      await syncDir(dir);
    },

    async get(key) {
      try {
        return await fs.readFile(resolve(key));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },

    async delete(key) {
      await fs.rm(resolve(key), { force: true });
    },

    async deletePrefix(prefix) {
      await fs.rm(resolve(prefix), { recursive: true, force: true });
    },
  };
}

/** The default store: KYCLO_DATA_DIR/documents. */
export const defaultBlobStore = (dataDir: string) => fileBlobStore(path.join(dataDir, 'documents'));
