// Where document contents live. The service only ever hands this store ciphertext (sealed with the
// user's data key), so a store needs no encryption of its own; it must only be durable before the
// database row that points at a blob commits. The default keeps one file per blob under
// KYCLO_DATA_DIR/documents; an object store would implement the same calls (its multipart upload
// for putStream, a ranged GET for getStream).
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

export interface BlobStore {
  /** Stores `data` durably under `key` (written and synced before it returns). */
  put(key: string, data: Buffer): Promise<void>;
  /**
   * Stores what `source` yields, as it arrives, under `key`. Nothing is visible under the key until
   * the source has ended and the bytes are synced; when the source fails (an aborted upload, a
   * refused file) nothing is left behind and the error is rethrown.
   */
  putStream(key: string, source: AsyncIterable<Buffer>): Promise<void>;
  /** The blob, or undefined when there is none. */
  get(key: string): Promise<Buffer | undefined>;
  /** The blob as a stream, or undefined when there is none. */
  getStream(key: string): Promise<Readable | undefined>;
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
  /** Writes aside, syncs, then renames: a reader never sees half a blob, a crash or failure never leaves one. */
  async function writeAtomically(key: string, write: (handle: fs.FileHandle) => Promise<void>): Promise<void> {
    const file = resolve(key);
    const dir = path.dirname(file);
    // A folder made here is synced into its parent too, up to the first that existed: after a
    // crash, a committed row must not point into a folder that was never made durable.
    const first = await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    if (first) for (let d = dir; d.length >= first.length; d = path.dirname(d)) await syncDir(path.dirname(d));
    const tmp = `${file}.${crypto.randomBytes(6).toString('hex')}.tmp`;
    const handle = await fs.open(tmp, 'wx', 0o600);
    try {
      await write(handle);
      await handle.sync();
    } catch (err) {
      await handle.close().catch(() => undefined);
      await fs.rm(tmp, { force: true });
      throw err;
    }
    await handle.close();
    await fs.rename(tmp, file);
    await syncDir(dir);
  }

  return {
    put: (key, data) => writeAtomically(key, (handle) => handle.writeFile(data)),

    putStream: (key, source) =>
      writeAtomically(key, async (handle) => {
        // One awaited write per chunk: the source is read no faster than the disk takes it.
        for await (const chunk of source) await handle.write(chunk);
      }),

    async getStream(key) {
      try {
        const handle = await fs.open(resolve(key), 'r');
        // Opened here so a missing blob is known before any byte is answered; the stream closes it.
        return handle.createReadStream({ highWaterMark: 64 * 1024 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
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
