// Bulk import and export rates (issue 17), each beside the database's own floor, as part of `npm run
// bench` (after the HTTP runs, on the same PostgreSQL) or alone with `npm run bench:io`:
// - import: N users as an NDJSON file in the `kyclo` profile, imported by `kyclo import` as a user
//   runs it (the compiled CLI in its own process: hashing the file, validation, data keys, an audit
//   entry each, batches of 1,000), against COPY of the same rows into the same tables (copyFloor);
// - export: the same N users streamed by `kyclo export` to /dev/null.
// Each round uses fresh databases (one for the floor, one for the import and export), so every round
// writes into the same empty tables; the order of floor and import alternates per round. The CLI's
// CPU and peak RSS are read from /proc while it runs.
// Alone: `npm run bench:io -- [--users N] [--rounds N]`, on DATABASE_URL's server or, without it,
// the bench's embedded PostgreSQL (bench/pg.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createDb } from '../src/db/database.js';
import { migrate } from '../src/db/connect.js';
import { createKeyring, masterKeyId } from '../src/crypto/keyring.js';
import { deriveAuditKeys, installAuditKeys } from '../src/modules/audit/authentication.js';
import { createServices } from '../src/services.js';
import { defaultBlobStore } from '../src/storage/blob-store.js';
import { seededUsers, userLine, keyLine, History, USER_COPY_COLUMNS, KEY_COPY_COLUMNS, AUDIT_COPY_COLUMNS } from './data.js';
import { copyFrom, copyText } from './copy.js';
import { median, type Row } from './results.js';
import { cpuMsOf, KYCLO_NODE_FLAGS, rssOf } from './servers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/**
 * The compiled CLI with the heap cap the `kyclo` command starts it with (bin/kyclo.js starts node
 * again with the server's flags; this starts it so at once, so /proc shows the process that works).
 */
const CLI = [...KYCLO_NODE_FLAGS, path.join(ROOT, 'dist', 'cli', 'main.js')];
/** The floor's tenant: a fixed id, so its COPY files are made once for every round. */
const FLOOR_TENANT = 'ten_01JBENCHF100RC0PY000000000';
const STATUS_COPY_COLUMNS = 'tenant_id, id, user_id, from_status, to_status, reason, note, origin, actor_key_id, actor_role, request_id, created_at';

export const IMPORT_TARGETS = { ratio: 0.5, rowsPerS: 25_000, rssMb: 300, exportPerS: 50_000 };

interface Options {
  adminUrl: string;
  users: number;
  rounds: number;
  log: (line: string) => void;
}

interface Round {
  floorS: number;
  importS: number;
  importCpuS: number;
  importRssMb: number;
  exportS: number;
  exportRssMb: number;
}

/** Lines appended to a file through a 1 MiB buffer; close() writes the rest. */
function lineWriter(file: string) {
  const fd = fs.openSync(file, 'w');
  let buf = '';
  return {
    put(line: string) {
      buf += line;
      if (buf.length > 1 << 20) {
        fs.writeSync(fd, buf);
        buf = '';
      }
    },
    close() {
      fs.writeSync(fd, buf);
      fs.closeSync(fd);
    },
  };
}

/** The import file: the seeded population as rows of the kyclo profile (the create body plus the state). */
function writeImportFile(file: string, n: number): number {
  const out = lineWriter(file);
  for (const u of seededUsers(n)) {
    const { address, ...profile } = u.profile as Record<string, unknown>;
    out.put(JSON.stringify({
      type: u.type, external_ref: `ext_${u.i}`, country: u.country, ...profile, address, metadata: u.metadata, tags: u.tags,
      status: u.status, status_reason: u.statusReason, kyc: { status: u.kyc, level: u.kyc === 'verified' ? 2 : null, verified_at: u.kyc === 'verified' ? u.ts : null },
      created_at: u.ts,
    }) + '\n');
  }
  out.close();
  return fs.statSync(file).size;
}

/**
 * The floor's COPY files: every row the import's batch statement writes for a user — the user, its
 * wrapped data key, its MACed `user.imported` audit entry (same details) and the sealer's queue row,
 * and for the 8 % not active the status change — made before any clock starts (the AES wraps and
 * MACs are made here, untimed). Audit seq values start at 1: each round's database is fresh.
 */
function writeFloorFiles(dir: string, n: number): Record<'users' | 'keys' | 'audit' | 'unsealed' | 'status', string> {
  const masterKey = crypto.randomBytes(32);
  const mkId = masterKeyId(masterKey);
  const history = new History({ tenantId: FLOOR_TENANT, masterKey, ...deriveAuditKeys(masterKey), keyId: 'key_bench', firstSeq: 1n, users: n });
  const names = ['users', 'keys', 'audit', 'unsealed', 'status'] as const;
  const files = Object.fromEntries(names.map((k) => [k, path.join(dir, `${k}.copy`)])) as Record<(typeof names)[number], string>;
  const writers = Object.fromEntries(names.map((k) => [k, lineWriter(files[k])])) as Record<(typeof names)[number], ReturnType<typeof lineWriter>>;
  const put = (k: (typeof names)[number], line: string) => writers[k].put(line);
  let seq = 0;
  for (const u of seededUsers(n)) {
    put('users', userLine(FLOOR_TENANT, { ...u, externalRef: `ext_${u.i}` }));
    put('keys', keyLine(FLOOR_TENANT, u.id, masterKey, mkId));
    put('audit', history.auditLine(u, { action: 'user.imported', details: { import_id: 'imp_01JBENCHF100RC0PY000000000', profile: 'kyclo', source_id: null, line: u.i + 1 } }));
    put('unsealed', `${FLOOR_TENANT}\t${++seq}\n`);
    if (u.status !== 'active') {
      put('status', [FLOOR_TENANT, `stc_${u.id.slice(4)}`, u.id, 'active', u.status, u.statusReason, null, 'system', 'key_bench', 'OWNER', null, u.ts].map(copyText).join('\t') + '\n');
    }
  }
  for (const k of names) writers[k].close();
  return files;
}

/**
 * COPY at its best into a fresh database: users, audit entries and their queue rows at once on three
 * connections, then the keys and status changes (they reference users) on two. Same tables, same
 * indexes and foreign keys as the import writes into. Answers the seconds.
 */
async function copyFloor(url: string, files: ReturnType<typeof writeFloorFiles>): Promise<number> {
  const clients = Array.from({ length: 3 }, () => new pg.Client({ connectionString: url }));
  await Promise.all(clients.map((c) => c.connect()));
  try {
    await clients[0]!.query("insert into tenants (id, name) values ($1, 'bench-copy')", [FLOOR_TENANT]);
    const copy = (c: pg.Client, table: string, columns: string, file: string) =>
      copyFrom(c, `copy ${table} (${columns}) from stdin`, fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 }));
    const t = performance.now();
    await Promise.all([
      copy(clients[0]!, 'users', USER_COPY_COLUMNS, files.users),
      copy(clients[1]!, 'audit_entries', AUDIT_COPY_COLUMNS, files.audit),
      copy(clients[2]!, 'audit_unsealed', 'tenant_id, seq', files.unsealed),
    ]);
    await Promise.all([copy(clients[0]!, 'user_keys', KEY_COPY_COLUMNS, files.keys), copy(clients[1]!, 'status_changes', STATUS_COPY_COLUMNS, files.status)]);
    return (performance.now() - t) / 1000;
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

/** Runs the compiled CLI; answers its wall time, CPU and peak RSS (sampled from /proc every 50 ms) and its output. */
function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; cpuS: number; rssMb: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(process.execPath, [...CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let cpuS = 0;
    let rssMb = 0;
    // Once the process is gone both read nothing: keep what the last sample saw.
    const sample = () => {
      cpuS = Math.max(cpuS, cpuMsOf(child.pid!) / 1000);
      const hwm = rssOf(child.pid!)?.hwmMb ?? NaN; // NaN too for an exited process not yet reaped (no VmHWM)
      if (!Number.isNaN(hwm)) rssMb = Math.max(rssMb, hwm);
    };
    const timer = setInterval(sample, 50);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      if (code !== 0) reject(new Error(`kyclo ${args[0]} exited with ${code}:\n${stderr.slice(-2000)}`));
      else resolve({ seconds: (performance.now() - t) / 1000, cpuS, rssMb, stdout });
    });
  });
}

/** A fresh, migrated database of its own; answers its URL and how to drop it. */
async function freshDatabase(admin: pg.Client, adminUrl: string, name: string) {
  await admin.query(`drop database if exists ${name}`);
  await admin.query(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const db = createDb(url.toString(), { max: 2 });
  await migrate(db);
  return { url: url.toString(), db, drop: async () => (await db.destroy(), await admin.query(`drop database if exists ${name}`)) };
}

export async function measureImportExport(o: Options): Promise<Row[]> {
  const { users: n, log } = o;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kyclo-bench-io-'));
  const admin = new pg.Client({ connectionString: o.adminUrl });
  await admin.connect();
  const rounds: Round[] = [];
  try {
    const t = performance.now();
    const file = path.join(dir, 'users.ndjson');
    const bytes = writeImportFile(file, n);
    const floorFiles = writeFloorFiles(dir, n);
    log(`import/export: ${n.toLocaleString('en')} users, ${(bytes / 2 ** 20).toFixed(0)} MB of NDJSON; floor COPY files made in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const masterKey = crypto.randomBytes(32);
    const env = { KYCLO_MASTER_KEY: masterKey.toString('base64'), LOG_LEVEL: 'warn', KYCLO_DATA_DIR: path.join(dir, 'data') };
    for (let r = 0; r < o.rounds; r++) {
      const floor = async () => {
        const d = await freshDatabase(admin, o.adminUrl, `kyclo_bench_floor_${process.pid}`);
        try {
          return await copyFloor(d.url, floorFiles);
        } finally {
          await d.drop();
        }
      };
      const importAndExport = async () => {
        const d = await freshDatabase(admin, o.adminUrl, `kyclo_bench_import_${process.pid}`);
        try {
          const keyring = createKeyring({ db: d.db, masterKey });
          installAuditKeys(keyring.auditKeys);
          const { tenant } = await createServices({ db: d.db, keyring, blobs: defaultBlobStore(path.join(dir, 'data')) }).tenants.create('bench-import');
          await d.db.destroy().catch(() => undefined);
          const e = { ...env, DATABASE_URL: d.url };
          const imp = await runCli(['import', file, '--tenant', tenant.id, '--json'], e);
          const job = JSON.parse(imp.stdout) as { counts: Record<string, number> };
          if (job.counts.imported !== n) throw new Error(`import created ${job.counts.imported} of ${n} users: ${JSON.stringify(job.counts)}`);
          const exp = await runCli(['export', '--tenant', tenant.id, '--output', '/dev/null'], e);
          return { imp, exp };
        } finally {
          await d.drop().catch(() => undefined);
        }
      };
      // Order alternates per round: floor first on even rounds, the import first on odd ones.
      const floorFirst = r % 2 === 0;
      const floorS = floorFirst ? await floor() : 0;
      const io = await importAndExport();
      const floorAfter = floorFirst ? floorS : await floor();
      const round: Round = {
        floorS: floorAfter, importS: io.imp.seconds, importCpuS: io.imp.cpuS, importRssMb: io.imp.rssMb, exportS: io.exp.seconds, exportRssMb: io.exp.rssMb,
      };
      rounds.push(round);
      log(
        `  round ${r + 1}: COPY floor ${Math.round(n / round.floorS).toLocaleString('en')} users/s (${round.floorS.toFixed(1)} s); ` +
          `kyclo import ${Math.round(n / round.importS).toLocaleString('en')} rows/s (${round.importS.toFixed(1)} s, ${round.importCpuS.toFixed(1)} s CPU, peak RSS ${round.importRssMb.toFixed(0)} MB) = ${(round.floorS / round.importS).toFixed(2)}× COPY; ` +
          `kyclo export ${Math.round(n / round.exportS).toLocaleString('en')} users/s (${round.exportS.toFixed(1)} s, peak RSS ${round.exportRssMb.toFixed(0)} MB)`,
      );
    }
  } finally {
    await admin.end();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return importRows(n, rounds);
}

/** The rows of the report: the import's ratio to COPY (the target), its rate, memory, the export's rate. */
function importRows(n: number, rounds: Round[]): Row[] {
  const ratios = rounds.map((x) => x.floorS / x.importS);
  const spread = { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), n: ratios.length };
  const importRate = median(rounds.map((x) => n / x.importS));
  const floorRate = median(rounds.map((x) => n / x.floorS));
  const exportRate = median(rounds.map((x) => n / x.exportS));
  const importRss = Math.max(...rounds.map((x) => x.importRssMb));
  const exportRss = Math.max(...rounds.map((x) => x.exportRssMb));
  const rate = (v: number) => ({ rps: v, p50ms: NaN, p99ms: NaN, bad: 0 });
  const label = `${n.toLocaleString('en')} rows`;
  return [
    {
      endpoint: `kyclo import, ${label} (NDJSON, kyclo profile)`, kyclo: rate(importRate), baselineName: 'COPY of the same rows', baseline: rate(floorRate),
      ratio: spread, target: `≥ ${IMPORT_TARGETS.ratio}× COPY`, pass: spread.median >= IMPORT_TARGETS.ratio, short: 'import',
    },
    {
      endpoint: '  import rows/s', kyclo: null, baselineName: '—', baseline: null, ratio: null, measured: `${Math.round(importRate).toLocaleString('en')} rows/s`,
      target: `≥ ${IMPORT_TARGETS.rowsPerS.toLocaleString('en')} rows/s`, pass: importRate >= IMPORT_TARGETS.rowsPerS, short: 'import_rate',
    },
    {
      endpoint: '  import process memory (max RSS)', kyclo: null, baselineName: '—', baseline: null, ratio: null, measured: `${importRss.toFixed(0)} MB`,
      target: `RSS ≤ ${IMPORT_TARGETS.rssMb} MB`, pass: importRss <= IMPORT_TARGETS.rssMb, short: 'import_rss',
    },
    {
      endpoint: `kyclo export, ${label} (NDJSON to /dev/null)`, kyclo: rate(exportRate), baselineName: '—', baseline: null, ratio: null,
      measured: `${Math.round(exportRate).toLocaleString('en')} users/s (max RSS ${exportRss.toFixed(0)} MB)`,
      target: `≥ ${IMPORT_TARGETS.exportPerS.toLocaleString('en')} users/s`, pass: exportRate >= IMPORT_TARGETS.exportPerS, short: 'export',
    },
  ];
}

// npm run bench:io
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values: opt } = parseArgs({ options: { users: { type: 'string', default: '1000000' }, rounds: { type: 'string', default: '3' } } });
  const log = (m: string) => process.stdout.write(m + '\n');
  void (async () => {
    const { execSync } = await import('node:child_process');
    execSync('npm run --silent build', { cwd: ROOT, stdio: 'inherit' });
    let adminUrl = process.env.DATABASE_URL;
    let stop: (() => Promise<void>) | null = null;
    if (!adminUrl) {
      const { startBenchPostgres } = await import('./pg.js');
      const server = await startBenchPostgres(path.join(ROOT, 'scratch', 'bench'), { sharedBuffers: '3GB', log });
      adminUrl = server.adminUrl;
      stop = () => server.stop();
    }
    try {
      const rows = await measureImportExport({ adminUrl, users: Number(opt.users), rounds: Number(opt.rounds), log });
      const { textTable } = await import('./results.js');
      log(textTable(rows));
    } finally {
      await stop?.();
    }
  })().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
