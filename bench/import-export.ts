// npm run bench:io — bulk import and export rates (issue 17), each beside the database's own floor:
// - import: N users as an NDJSON file in the `kyclo` profile, through the imports service exactly as
//   `kyclo import` runs it (validation, data keys, an audit entry each), against a bare COPY of the
//   same rows into users (no validation, no keys, no audit: the fastest PostgreSQL takes them);
// - export: the same N users streamed as NDJSON (GET /v1/exports/users' service), to /dev/null.
// Peak RSS is sampled through the run. Options: --users N (default 1,000,000), --keep (leave the
// database). Uses DATABASE_URL's server (a database of its own, dropped at the end) or, without it,
// the bench's embedded PostgreSQL (bench/pg.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { createDb } from '../src/db/database.js';
import { migrate } from '../src/db/connect.js';
import { createKeyring } from '../src/crypto/keyring.js';
import { installAuditKeys } from '../src/modules/audit/authentication.js';
import { createServices } from '../src/services.js';
import { cliActor } from '../src/modules/audit/actor.js';
import { defaultBlobStore } from '../src/storage/blob-store.js';
import { seededUsers, linesOf, userLine, USER_COPY_COLUMNS } from './data.js';
import { copyFrom } from './copy.js';
import { startBenchPostgres } from './pg.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({ options: { users: { type: 'string', default: '1000000' }, keep: { type: 'boolean', default: false } } });
const N = Number(opt.users);
const log = (m: string) => process.stdout.write(m + '\n');

let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 100);

/** The seeded population as import rows in the kyclo profile (the create body plus the state). */
function writeFile(file: string): number {
  const fd = fs.openSync(file, 'w');
  let buf = '';
  for (const u of seededUsers(N)) {
    const { address, ...profile } = u.profile as Record<string, unknown>;
    buf += JSON.stringify({
      type: u.type, external_ref: `ext_${u.i}`, country: u.country, ...profile, address, metadata: u.metadata, tags: u.tags,
      status: u.status, status_reason: u.statusReason, kyc: { status: u.kyc, level: u.kyc === 'verified' ? 2 : null, verified_at: u.kyc === 'verified' ? u.ts : null },
      created_at: u.ts,
    }) + '\n';
    if (buf.length > 1 << 20) {
      fs.writeSync(fd, buf);
      buf = '';
    }
  }
  fs.writeSync(fd, buf);
  fs.closeSync(fd);
  return fs.statSync(file).size;
}

async function main() {
  let adminUrl = process.env.DATABASE_URL;
  let stopPg: (() => Promise<void>) | null = null;
  if (!adminUrl) {
    const server = await startBenchPostgres(path.join(ROOT, 'scratch', 'bench'), { sharedBuffers: '3GB', log });
    adminUrl = server.adminUrl;
    stopPg = () => server.stop();
  }
  const dbName = `kyclo_bench_io_${process.pid}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  const url = new URL(adminUrl);
  url.pathname = `/${dbName}`;
  const db = createDb(url.toString(), { max: 4 });
  try {
    await migrate(db);
    await db.executeQuery({ sql: 'create extension if not exists pg_trgm', parameters: [], query: null as never } as never).catch(() => undefined);
    const keyring = createKeyring({ db, masterKey: crypto.randomBytes(32) });
    installAuditKeys(keyring.auditKeys);
    const services = createServices({ db, keyring, blobs: defaultBlobStore(path.join(os.tmpdir(), 'kyclo-bench-io')) });
    const { tenant } = await services.tenants.create('bench-import');
    const { tenant: copyTenant } = await services.tenants.create('bench-copy');
    const file = path.join(os.tmpdir(), `kyclo-bench-io-${process.pid}.ndjson`);
    const bytes = writeFile(file);
    log(`${N.toLocaleString('en')} users, ${(bytes / 1024 / 1024).toFixed(0)} MB of NDJSON`);

    // The floor: the same users by COPY, in one statement, into the same table and indexes.
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    let t = performance.now();
    await copyFrom(client, `copy users (${USER_COPY_COLUMNS}) from stdin`, linesOf(seededUsers(N), (u) => userLine(copyTenant.id, u)));
    const copySecs = (performance.now() - t) / 1000;
    await client.end();
    log(`COPY:   ${Math.round(N / copySecs).toLocaleString('en')} rows/s (${copySecs.toFixed(1)} s)`);

    const actor = cliActor(tenant.id);
    const hash = crypto.createHash('sha256');
    await pipeline(fs.createReadStream(file), hash);
    peakRss = 0;
    const cpu0 = process.cpuUsage();
    t = performance.now();
    const { job } = await services.imports.open(actor, { profile: 'kyclo', format: 'ndjson', sha256: hash.digest('hex') });
    const done = await services.imports.run(actor, job, fs.createReadStream(file, { highWaterMark: 1 << 20 }));
    const importSecs = (performance.now() - t) / 1000;
    const cpu = process.cpuUsage(cpu0);
    log(`import: this process used ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s of CPU`);
    const importRate = N / importSecs;
    log(`import: ${Math.round(importRate).toLocaleString('en')} rows/s (${importSecs.toFixed(1)} s), ${(importRate / (N / copySecs)).toFixed(2)}× COPY, ` +
      `peak RSS ${(peakRss / 1024 / 1024).toFixed(0)} MB; ${JSON.stringify(done.counts)}`);
    fs.rmSync(file, { force: true });

    {
      peakRss = 0;
      t = performance.now();
      let lines = 0;
      const sink = new Writable({ write(chunk: Buffer, _e, cb) { for (const b of chunk) if (b === 10) lines++; cb(); } });
      await pipeline(Readable.from(await services.exports.stream(actor, {})), sink);
      const exportSecs = (performance.now() - t) / 1000;
      log(`export: ${Math.round((lines - 1) / exportSecs).toLocaleString('en')} users/s (${exportSecs.toFixed(1)} s), peak RSS ${(peakRss / 1024 / 1024).toFixed(0)} MB`);
    }
  } finally {
    await db.destroy();
    if (!opt.keep) await admin.query(`drop database if exists ${dbName}`);
    await admin.end();
    clearInterval(sampler);
    await stopPg?.();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
