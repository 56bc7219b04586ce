// A worker thread of a parallel export (parallel.ts): its own connection inside the export's
// snapshot, its own keyring, and the same page rendering as the one-thread export. It reads a page's
// rows as soon as the page is asked for (PostgreSQL reads it while this thread renders the one
// before), renders pages one at a time in the order asked, and answers each with its bytes.
import { parentPort, workerData } from 'node:worker_threads';
import { closeDb, createDb } from '../../db/database.js';
import { createKeyring } from '../../crypto/keyring.js';
import { NdjsonPage } from '../../lib/ndjson.js';
import { joinSnapshot } from './exports.repo.js';
import { renderPage } from './exports.service.js';
import type { Reply, Task, WorkerData } from './parallel.js';

const port = parentPort!;
const data = workerData as WorkerData;
const db = createDb(data.connectionString, { max: 2 });
const keyring = createKeyring({ db, masterKey: Buffer.from(data.masterKey) });
const joined = joinSnapshot(db, data.snapshotId);
joined.catch(() => undefined);
const out = new NdjsonPage();
let chain: Promise<void> = Promise.resolve();

port.on('message', (m: Task | 'close') => {
  if (m === 'close') {
    chain = chain.then(async () => {
      await (await joined.catch(() => null))?.close();
      await closeDb(db);
      port.close();
    });
    return;
  }
  const rows = joined.then((snap) => snap.users(data.tenantId, m.after, data.filters, null, m.through));
  rows.catch(() => undefined);
  chain = chain.then(async () => {
    let reply: Reply;
    let transfer: ArrayBuffer[] = [];
    try {
      const bytes = await renderPage(keyring, data.tenantId, await joined, data.include, await rows, out, data.withhold);
      reply = { seq: m.seq, bytes, count: (await rows).length };
      // A page that owns its memory moves to the other thread instead of being copied.
      if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) transfer = [bytes.buffer as ArrayBuffer];
    } catch (e) {
      reply = { seq: m.seq, error: e instanceof Error ? e.message : String(e) };
    }
    port.postMessage(reply, transfer);
  });
});
