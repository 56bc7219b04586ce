// An export written by worker threads, for `kyclo export --jobs N`. Turning rows into lines is
// Node's work (≈ 25 µs of CPU a user: pg's row parsing, the view, JSON) and PostgreSQL needs ≈ 4 µs
// to read them, so one thread leaves the other cores idle. Here this thread holds the export's
// snapshot and cuts it into pages by reading only the ids (an index-only walk of the keyset);
// N worker threads, each on its own connection inside the same snapshot (exports.repo.ts
// joinSnapshot), read and render the pages given to them in turn; their bytes come back and are
// written in id order, so the output is byte for byte the one-thread export's. Memory stays
// bounded: each thread holds at most DEPTH pages at a time, and this thread waits for the oldest.
// Measured in bench/README.md ("Import and export").
import { Worker } from 'node:worker_threads';
import { poolOf, type Db } from '../../db/database.js';
import type { ExportFilters, Snapshot } from './exports.repo.js';
import type { Include, Page } from './exports.service.js';

/** What an entry point gives for exports on worker threads: the CLI only (see below). */
export interface ExportThreads {
  /** Each thread builds its own keyring: the key goes to threads of this process, never elsewhere. */
  masterKey: Buffer;
}

/** Pages a thread holds at once: the one it renders and the next, whose rows it is already reading. */
const DEPTH = 2;
/** Ids read per round trip of the cutting walk: a few pages for each thread. */
const IDS_PER_READ = 2_000;
/**
 * Each thread's heap: a page with every part included needs a few MB. The young generation is
 * V8's default halved: 1,000,000 users with 2 threads, 17.6 s and 245 MB of RSS against 17.1 s and
 * 296 MB (the old generation's cap, 48 to 128 MB, changed neither).
 */
const THREAD_LIMITS = { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 12 };

export interface WorkerData {
  connectionString: string;
  masterKey: Uint8Array;
  snapshotId: string;
  tenantId: string;
  filters: ExportFilters;
  include: Include[];
  /** Users awaiting erasure withheld (erasure/retained.ts): the caller may not read them. */
  withhold: boolean;
}
export interface Task {
  seq: number;
  after: string | null;
  through: string;
}
export type Reply = { seq: number; bytes: Uint8Array; count: number } | { seq: number; error: string };

export function connectionStringOf(db: Db): string {
  const url = poolOf(db)?.options.connectionString;
  if (!url) throw new Error('an export on worker threads needs the database given by a connection string');
  return url;
}

// Built, a thread runs dist's JavaScript. From the sources (tests, a clone never built) it runs the
// TypeScript through tsx, as the command itself does: Node 20 neither takes `--import` in a
// thread's execArgv nor passes the main thread's module hooks on, so the thread registers them.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(FROM_SOURCE ? './export-worker.ts' : './export-worker.js', import.meta.url);

function startWorker(data: WorkerData): Worker {
  const options = { workerData: data, resourceLimits: THREAD_LIMITS };
  if (!FROM_SOURCE) return new Worker(WORKER_URL, options);
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(WORKER_URL.href)}); });`;
  return new Worker(boot, { ...options, eval: true });
}

/** One worker thread and the pages it owes. */
class ExportThread {
  private readonly worker: Worker;
  private readonly owed = new Map<number, { resolve: (p: Page) => void; reject: (e: Error) => void }>();
  private failure: Error | null = null;

  constructor(data: WorkerData) {
    this.worker = startWorker(data);
    this.worker.on('message', (m: Reply) => {
      const waiting = this.owed.get(m.seq);
      if (!waiting) return;
      this.owed.delete(m.seq);
      if ('error' in m) waiting.reject(new Error(m.error));
      else waiting.resolve({ bytes: Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength), count: m.count });
    });
    this.worker.on('error', (e) => this.fail(e));
    this.worker.on('exit', (code) => this.fail(new Error(`an export thread stopped (exit code ${code})`)));
  }

  private fail(e: Error) {
    this.failure ??= e;
    for (const w of this.owed.values()) w.reject(this.failure);
    this.owed.clear();
  }

  run(task: Task): Promise<Page> {
    if (this.failure) return Promise.reject(this.failure);
    const page = new Promise<Page>((resolve, reject) => this.owed.set(task.seq, { resolve, reject }));
    this.worker.postMessage(task);
    return page;
  }

  /** Asks the thread to end its transaction and stop; one that does not within 5 s is terminated. */
  async close(): Promise<void> {
    if (this.failure) return;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage('close');
    const timer = setTimeout(() => void this.worker.terminate(), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

/** The export's pages, rendered by `jobs` threads inside `snap` (opened shared), in id order. */
export async function* parallelPages(o: ExportThreads & {
  connectionString: string; snap: Snapshot; tenantId: string; filters: ExportFilters; include: Include[]; withhold?: boolean; after: string | null; jobs: number; pageRows: number;
}): AsyncGenerator<Page> {
  if (!o.snap.id) throw new Error('a parallel export needs a shared snapshot');
  const data: WorkerData = {
    connectionString: o.connectionString, masterKey: o.masterKey, snapshotId: o.snap.id, tenantId: o.tenantId, filters: o.filters, include: o.include,
    withhold: o.withhold ?? false,
  };
  const threads = Array.from({ length: o.jobs }, () => new ExportThread(data));
  try {
    // The cutting walk: page boundaries from the ids, `pageRows` at a time, read IDS_PER_READ ahead.
    let cursor = o.after;
    let ids: string[] = [];
    let taken = 0;
    let exhausted = false;
    const nextRange = async (): Promise<Omit<Task, 'seq'> | null> => {
      if (taken >= ids.length) {
        if (exhausted) return null;
        ids = await o.snap.ids(o.tenantId, cursor, o.filters, IDS_PER_READ);
        taken = 0;
        exhausted = ids.length < IDS_PER_READ;
        if (ids.length === 0) return null;
      }
      const through = ids[Math.min(taken + o.pageRows, ids.length) - 1]!;
      taken += o.pageRows;
      const range = { after: cursor, through };
      cursor = through;
      return range;
    };
    const queue: Promise<Page>[] = [];
    let seq = 0;
    const fill = async () => {
      while (queue.length < o.jobs * DEPTH) {
        const range = await nextRange();
        if (!range) return;
        const page = threads[seq % o.jobs]!.run({ seq, ...range });
        // Awaited in order below; a page failing while an earlier one is awaited must not be unhandled.
        page.catch(() => undefined);
        queue.push(page);
        seq++;
      }
    };
    await fill();
    while (queue.length > 0) {
      const page = await queue.shift()!;
      await fill();
      yield page;
    }
  } finally {
    await Promise.all(threads.map((t) => t.close()));
  }
}
