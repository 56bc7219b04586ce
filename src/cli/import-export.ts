// kyclo import: a file of users into a tenant, through the same imports service as POST /v1/imports.
// Exit status: 0 every row imported or already present, 1 some rows rejected (listed), 2 the import
// could not run (no file, unknown tenant or profile, the database gone): a rerun then resumes.
import fs from 'node:fs';
import os from 'node:os';
import crypto from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { cliActor } from '../modules/audit/actor.js';
import { checkCsvHeader, formatOf, FORMATS, type Format } from '../modules/imports/formats.js';
import type { Progress, RowOutcome } from '../modules/imports/imports.service.js';
import { PROFILE_NAMES } from '../modules/imports/profiles/index.js';
import { INCLUDES, type Include } from '../modules/exports/exports.service.js';
import { ExportQuery } from '../modules/exports/exports.routes.js';
import { validatorCompiler } from '../http/validation.js';
import type { Static } from 'typebox';
import type { Services } from '../services.js';

export interface CliRunner {
  withServices<T>(fn: (services: Services) => Promise<T>): Promise<T>;
  requireTenant(services: Services, id: string): Promise<unknown>;
}

const out = (line: string) => process.stdout.write(line + '\n');
const err = (line: string) => process.stderr.write(line + '\n');

/**
 * A file the command writes (an export, an import's report: personal data), readable by its owner
 * alone. A new file is created 0600. An existing regular file is made 0600 before it is emptied and
 * written (a file of another owner cannot be: the command stops, the file untouched); its mode would
 * otherwise be kept, often 0644. Anything else (a pipe, /dev/stdout) is written as it is.
 */
export function privateOutput(file: string): fs.WriteStream {
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o600);
  try {
    if (fs.fstatSync(fd).isFile()) {
      fs.fchmodSync(fd, 0o600);
      fs.ftruncateSync(fd, 0);
    }
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  return fs.createWriteStream(file, { fd });
}

async function sha256(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}

/** A bar with rows/s and ETA on a terminal (bytes read of the file's size), a plain line a few seconds apart otherwise. */
export function progressReporter(totalBytes: number, tty: boolean, write: (s: string) => void) {
  const started = Date.now();
  let lastLine = 0;
  let rowsAtStart: number | null = null;
  return {
    update(p: Progress, bytes: number) {
      rowsAtStart ??= p.read;
      const secs = Math.max((Date.now() - started) / 1000, 0.001);
      const rate = Math.round((p.read - rowsAtStart) / secs);
      const share = totalBytes ? Math.min(bytes / totalBytes, 1) : 0;
      const eta = share > 0 ? Math.round((secs / share) * (1 - share)) : 0;
      const counts = `${p.read.toLocaleString('en')} rows (${p.imported} new, ${p.existing} existing, ${p.rejected} rejected)  ${rate.toLocaleString('en')} rows/s`;
      if (tty) {
        const width = 24;
        const filled = Math.round(share * width);
        write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(share * 100)}%  ${counts}  ETA ${eta}s   `);
      } else if (Date.now() - lastLine > 5000) {
        lastLine = Date.now();
        write(`${counts}\n`);
      }
    },
    done(tty_: boolean = tty) {
      if (tty_) write('\n');
    },
  };
}

export function importCommand(program: Command, cli: CliRunner): void {
  program
    .command('import <file>')
    .description('import users from a file (NDJSON, CSV or JSON); a rerun of the same file resumes it and creates nothing twice')
    .requiredOption('--tenant <id>', 'tenant id')
    .option('--profile <name>', `the source's record format: ${PROFILE_NAMES.join(', ')}`, 'kyclo')
    .option('--format <format>', `ndjson, csv or json (default: from the file name, else ndjson)`)
    .option('--dry-run', 'check every row and report, write no user')
    .option('--events', 'one user.created event per created user (webhooks), besides import.completed')
    .option('--report <file>', 'write every row’s outcome there as NDJSON {line, outcome, external_ref, user_id | errors}')
    .option('--json', 'print the finished import job as JSON')
    .action(async (file: string, opts: { tenant: string; profile: string; format?: string; dryRun?: boolean; events?: boolean; report?: string; json?: boolean }) => {
      try {
        const format = (opts.format ?? formatOf(file) ?? 'ndjson') as Format;
        if (!FORMATS.includes(format)) throw new Error(`--format takes ${FORMATS.join(', ')}`);
        // A malformed header refuses the file before a job is opened for it (as POST /v1/imports does).
        if (format === 'csv') await checkCsvHeader(fs.createReadStream(file));
        const size = fs.statSync(file).size;
        const hash = await sha256(file);
        const report = opts.report ? privateOutput(opts.report) : null;
        const job = await cli.withServices(async (services) => {
          await cli.requireTenant(services, opts.tenant);
          const actor = cliActor(opts.tenant);
          const { job, resumed } = await services.imports.open(actor, {
            profile: opts.profile, format, dryRun: opts.dryRun, userEvents: opts.events, sourceName: file.split('/').pop() ?? file, sha256: hash,
          });
          if (resumed) err(`resuming import ${job.id} after line ${job.resume_line}`);
          let bytes = 0;
          const counter = new Transform({ transform(chunk: Buffer, _e, done) { bytes += chunk.length; done(null, chunk); } });
          const tty = process.stderr.isTTY === true && !opts.json;
          const bar = progressReporter(size, tty, (s) => process.stderr.write(s));
          let shown = 0;
          const onRows = (rows: RowOutcome[], p: Progress) => {
            for (const r of rows) {
              if (report) report.write(JSON.stringify(r) + '\n');
              if (r.outcome === 'rejected' && shown < 20 && !opts.json) {
                shown++;
                if (tty) process.stderr.write('\n');
                err(`line ${r.line}: ${r.errors.map((e) => `${e.field} ${e.code}`).join(', ')}`);
              }
            }
            bar.update(p, bytes);
          };
          const done = await services.imports.run(actor, job, fs.createReadStream(file).pipe(counter), { onRows });
          bar.done();
          return done;
        });
        if (report) await new Promise((resolve) => report.end(resolve));
        if (opts.json) out(JSON.stringify(job));
        else {
          const c = job.counts;
          out(`import ${job.id} ${job.dry_run ? '(dry run) ' : ''}completed: ${c.read} read, ${c.imported} ${job.dry_run ? 'would be created' : 'imported'}, ${c.existing} already present, ${c.rejected} rejected`);
          for (const [field, to] of Object.entries(job.moved_fields)) out(`  ${field} → ${to}`);
          if (c.rejected) out(`rejected rows: ${opts.report ? opts.report : `kyclo import … --report FILE, or GET /v1/imports/${job.id}/errors`}`);
        }
        process.exitCode = job.counts.rejected ? 1 : 0;
      } catch (e) {
        err(`kyclo import: ${e instanceof Error ? e.message : String(e)}`);
        process.exitCode = 2;
      }
    });
}

type ExportQueryValue = Static<typeof ExportQuery>;

const MAX_JOBS = 16;
/**
 * A rendering thread per core, up to 4 (PostgreSQL reads a user in ≈ 4 µs, a thread renders it in
 * ≈ 25: more threads than cores only share them). Measured on 2 cores: bench/README.md.
 */
const defaultJobs = () => Math.min(4, os.availableParallelism());

/** The export's filters, as the options `kyclo export` takes: GET /v1/exports/users's query parameters. */
const FILTER_OPTIONS = ['status', 'kyc_status', 'type', 'tag', 'risk', 'external_ref', 'created_from', 'created_to'] as const;
const REPEATABLE = new Set(['status', 'risk']);
const optionOf = (param: string) => `--${param.replaceAll('_', '-')}`;
const camel = (param: string) => param.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
type QueryCheck = ((v: unknown) => boolean) & { errors?: Array<{ instancePath: string; message?: string }> | null };
let checkExportQuery: QueryCheck | undefined; // compiled on first use: every other command starts without it

/**
 * The options as the HTTP query, checked by its own schema (exports.routes.ts), so the command
 * refuses what the API refuses and the same filters select the same users. A repeatable filter
 * (status, risk) takes a comma-separated list.
 */
export function exportQueryOf(opts: Record<string, string | undefined>): Record<string, unknown> {
  const q: Record<string, unknown> = {};
  for (const param of ['updated_since', 'include', 'cursor', 'after', ...FILTER_OPTIONS]) {
    const v = opts[camel(param)];
    if (v !== undefined) q[param] = REPEATABLE.has(param) ? v.split(',').map((s) => s.trim()) : v;
  }
  const check = (checkExportQuery ??= validatorCompiler({ schema: ExportQuery, httpPart: 'querystring', method: 'GET', url: '/v1/exports/users' }) as QueryCheck);
  if (!check(q)) {
    const said = (check.errors ?? []).map((e) => `${optionOf(e.instancePath.split('/')[1] ?? '?')} ${e.message ?? 'is not valid'}`);
    throw new Error([...new Set(said)].join('; '));
  }
  return q;
}

export function exportCommand(program: Command, cli: CliRunner): void {
  const command = program
    .command('export')
    .description("write a tenant's users as NDJSON (one snapshot; the last line is the trailer with next_cursor)")
    .requiredOption('--tenant <id>', 'tenant id')
    .option('--updated-since <time>', 'only users changed at or after this RFC 3339 time')
    .option('--include <parts>', `comma-separated: ${INCLUDES.join(', ')}`);
  // The list's filters, as GET /v1/exports/users takes them.
  for (const param of FILTER_OPTIONS) {
    command.option(`${optionOf(param)} <${REPEATABLE.has(param) ? 'list' : 'value'}>`, `only these users, as the export's ${param} query parameter${REPEATABLE.has(param) ? ' (comma-separated)' : ''}`);
  }
  command
    .option('--cursor <cursor>', "a previous export's next_cursor: what changed since it")
    .option('--after <userId>', 'resume a cut export after this user id')
    .option('--output <file>', 'write there instead of standard output')
    .option('--jobs <n>', `threads rendering the lines (1 to ${MAX_JOBS}; the output is the same)`, String(defaultJobs()))
    .action(async (opts: Record<string, string | undefined> & { tenant: string; output?: string; jobs: string }) => {
      try {
        const { include, ...q } = exportQueryOf(opts) as ExportQueryValue;
        const jobs = Number(opts.jobs);
        if (!Number.isInteger(jobs) || jobs < 1 || jobs > MAX_JOBS) throw new Error(`--jobs takes a whole number from 1 to ${MAX_JOBS}`);
        await cli.withServices(async (services) => {
          await cli.requireTenant(services, opts.tenant);
          const lines = await services.exports.stream(cliActor(opts.tenant), { ...q, include: include ? (include.split(',') as Include[]) : [] }, { jobs });
          const sink = opts.output ? privateOutput(opts.output) : process.stdout;
          await pipeline(Readable.from(lines), sink, { end: Boolean(opts.output) });
        });
      } catch (e) {
        err(`kyclo export: ${e instanceof Error ? e.message : String(e)}`);
        process.exitCode = 2;
      }
    });
}
