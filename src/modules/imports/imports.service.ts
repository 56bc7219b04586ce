// Bulk import: a file of user records, read as a stream, mapped by a profile, each row checked as
// POST /v1/users checks a body, written in batches of BATCH_ROWS rows by one statement each
// (imports.repo.ts). Two batches are written at once while the next is prepared; memory holds three.
// The job records the last line each committed batch reached, so a run that was killed resumes
// after it; a row already present (same external_ref) is reported as existing, never created twice.
import type { Readable } from 'node:stream';
import type { Db } from '../../db/database.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { Actor } from '../audit/actor.js';
import { AppError, notFound, type FieldError } from '../../http/errors.js';
import { newId } from '../../lib/ids.js';
import { decodeCursor, encodeCursor, toPage } from '../../lib/cursor.js';
import { auditRow, eventRow, recordChange } from '../audit/write-path.js';
import { PERSONAL_FIELD } from '../events/personal.js';
import { newRow } from '../users/users.repo.js';
import { toUserView } from '../users/user-view.js';
import { readers, recordProblem, FORMATS, type Format, type SourceRecord } from './formats.js';
import { PROFILES, PROFILE_NAMES } from './profiles/index.js';
import { checkRow, coerceCsv, type CheckedRow } from './row-check.js';
import { checkedCreateValues, loadDefinitions } from '../custom-fields/custom-fields.service.js';
import { storeProfile } from '../custom-fields/storage.js';
import type { CustomFieldDefinitions } from '../custom-fields/definitions.js';
import type { JsonObject } from '../users/merge-patch.js';
import * as repo from './imports.repo.js';
import { externalRefHash, unkeyedExternalRefHash } from '../erasure/erasure.service.js';
import type { BatchRow, ImportJobRow } from './imports.repo.js';

/** Rows per statement: large enough that a round trip is a small part of a batch, small enough to stay well under PostgreSQL's limits. */
export const BATCH_ROWS = 1000;
/** Batches written at once, each on its own connection. */
export const WRITERS = 2;
/**
 * A run that created this many users refreshes the planner's statistics of users before it ends.
 * Until autovacuum's next ANALYZE, the planner still counts the table as it was: a tenant's first
 * 200,000 imported users were estimated at 318 rows, and each keyset page of the export read all of
 * them and sorted them (a bitmap scan, 14,000 buffers a page: 6,500 users/s instead of ~30,000).
 */
export const ANALYZE_AFTER_ROWS = 10_000;

export type RowOutcome =
  | { line: number; outcome: 'created' | 'existing'; external_ref: string; user_id: string | null }
  | { line: number; outcome: 'rejected'; errors: FieldError[] };

export interface Progress {
  line: number;
  read: number;
  imported: number;
  existing: number;
  rejected: number;
}

export interface ImportOptions {
  profile: string;
  format: Format;
  dryRun?: boolean;
  /** One user.created event per created user (webhooks); off by default: one import.completed. */
  userEvents?: boolean;
  sourceName?: string | null;
  /** The SHA-256 of the file: a second run of the same file resumes its unfinished job. */
  sha256: string;
}

export const toImportJob = (j: ImportJobRow) => ({
  id: j.id,
  state: j.state,
  profile: j.profile,
  format: j.format as Format,
  dry_run: j.dry_run,
  user_events: j.user_events,
  source_name: j.source_name,
  counts: { read: Number(j.rows_read), imported: Number(j.rows_imported), existing: Number(j.rows_existing), rejected: Number(j.rows_rejected) },
  resume_line: Number(j.resume_line),
  moved_fields: j.moved_fields as Record<string, string>,
  failure: j.failure,
  created_at: j.created_at.toISOString(),
  updated_at: j.updated_at.toISOString(),
  completed_at: j.completed_at ? j.completed_at.toISOString() : null,
});
export type ImportJob = ReturnType<typeof toImportJob>;

interface Pending {
  lastLine: number;
  valid: Array<{ line: number; row: CheckedRow }>;
  rejected: Array<{ line: number; errors: FieldError[] }>;
  moved: Record<string, string>;
}

const emptyBatch = (): Pending => ({ lastLine: 0, valid: [], rejected: [], moved: {} });

export function createImportsService({ db, keyring }: { db: Db; keyring: Keyring }) {
  // The master key's id, stored beside each wrapped data key (as keyring.newDataKey reports it).
  let masterKeyId = '';

  /** The statement's rows for a batch: ids, data keys, audit entries and events made here. */
  function batchRows(actor: Actor, job: ImportJobRow, valid: Pending['valid'], defs: CustomFieldDefinitions): BatchRow[] {
    const t = actor.tenantId;
    return valid.map(({ line, row }) => {
      const id = newId('usr');
      const key = keyring.newDataKey(t, id);
      masterKeyId = key.masterKeyId;
      // The vendor's id names the person at the vendor (Didit's is the platform's own reference, often
      // an email): sealed with the user's key like every personal part, so the erasure that destroys
      // the key takes it too. In the entry's details it outlived the erasure in the clear.
      const audit = auditRow(actor, {
        action: 'user.imported', targetType: 'user', targetId: id, userId: id, changedFields: [],
        details: { import_id: job.id, profile: job.profile, line },
        personal: row.source_id === null ? null : keyring.sealWith(key, t, id, PERSONAL_FIELD, { source_id: row.source_id }),
      });
      let event: object | null = null;
      if (job.user_events) {
        const view = toUserView({
          ...newRow({ tenant_id: t, id, external_ref: row.external_ref, type: row.type, country: row.country, profile: row.profile, metadata: row.metadata, tags: row.tags }, new Date(row.created_at)),
          status: row.status, status_reason: row.status_reason, kyc_status: row.kyc_status, kyc_level: row.kyc_level,
          kyc_verified_at: row.kyc_verified_at ? new Date(row.kyc_verified_at) : null, kyc_sub_status: row.kyc_sub_status, status_changed_at: new Date(row.status_changed_at),
        });
        event = eventRow(actor, {
          type: 'user.created', userId: id, data: { user_id: id, type: row.type, import_id: job.id },
          personal: keyring.sealWith(key, t, id, PERSONAL_FIELD, { user: view }),
        });
      }
      // Tenant-defined values stored as a create stores them: personal ones sealed with this user's key.
      const profile = storeProfile(keyring, key, t, id, row.profile, defs);
      return {
        id, external_ref: row.external_ref, type: row.type, country: row.country, profile, metadata: row.metadata, tags: row.tags,
        status: row.status, status_reason: row.status_reason, status_changed_at: row.status_changed_at, kyc_status: row.kyc_status,
        kyc_level: row.kyc_level, kyc_verified_at: row.kyc_verified_at, kyc_sub_status: row.kyc_sub_status, created_at: row.created_at, key_id: key.keyId,
        wrapped_key: key.wrapped.toString('base64'), audit, status_change_id: row.status === 'active' ? null : newId('stc'), origin: row.status_origin, event,
      };
    });
  }

  /**
   * The batch in one statement: the users it created, by external_ref. When PostgreSQL refuses a
   * value in it (a row the checks let through, a date it cannot store), the statement writes nothing,
   * so the batch is written again row by row, each row its own statement: the rows refused move to
   * the batch's rejected rows, the others are written. A bad row never stops the import, nor every
   * resume of it on the same line. Any other failure is the import's own and is thrown.
   */
  async function insert(t: string, batch: Pending, input: BatchRow[]): Promise<Map<string, string>> {
    try {
      return new Map((await repo.insertUsers(db, t, masterKeyId, input)).map((r) => [r.external_ref, r.id]));
    } catch (err) {
      if (repo.refusedValue(err) === undefined) throw err;
    }
    const created = new Map<string, string>();
    const stored: Pending['valid'] = [];
    for (const [i, one] of input.entries()) {
      const row = batch.valid[i]!;
      try {
        for (const r of await repo.insertUsers(db, t, masterKeyId, [one])) created.set(r.external_ref, r.id);
        stored.push(row);
      } catch (err) {
        const why = repo.refusedValue(err);
        if (why === undefined) throw err;
        batch.rejected.push({ line: row.line, errors: [{ field: 'record', code: 'not_storable', message: `the database cannot store this row: ${why}` }] });
      }
    }
    batch.valid = stored;
    return created;
  }

  /**
   * Rejects the rows whose external_ref an erased user was known by (its tombstone keeps a hash of
   * it): a file read again after an erasure — the nightly sync, a resumed migration — brought the
   * erased person back as a new user, with the whole profile. A ref a live user holds again (created
   * through the API since) is that user's: `existing`, as ever. Both forms of the hash are looked up:
   * tombstones made before it was keyed hold the unkeyed one, and cannot be re-keyed (the ref is gone).
   */
  async function refuseErased(t: string, batch: Pending): Promise<void> {
    if (batch.valid.length === 0) return;
    const hashesOf = new Map(batch.valid.map((v) => [v.row.external_ref, [externalRefHash(keyring, t, v.row.external_ref), unkeyedExternalRefHash(t, v.row.external_ref)]]));
    const erased = await repo.erasedRefHashes(db, t, [...new Set([...hashesOf.values()].flat())]);
    if (erased.size === 0) return;
    const wasErased = (ref: string) => hashesOf.get(ref)!.some((h) => erased.has(h));
    const live = await repo.idsByExternalRef(db, t, [...hashesOf.keys()].filter(wasErased));
    const kept: Pending['valid'] = [];
    for (const v of batch.valid) {
      if (!wasErased(v.row.external_ref) || live.has(v.row.external_ref)) kept.push(v);
      else batch.rejected.push({ line: v.line, errors: [{ field: 'external_ref', code: 'erased', message: 'a user known by this external_ref was erased: an import does not bring it back' }] });
    }
    batch.valid = kept;
  }

  /** Writes one batch's users (nothing in a dry run); answers each row's outcome. */
  async function write(actor: Actor, job: ImportJobRow, batch: Pending, defs: CustomFieldDefinitions): Promise<RowOutcome[]> {
    const t = actor.tenantId;
    await refuseErased(t, batch);
    const created = !job.dry_run && batch.valid.length ? await insert(t, batch, batchRows(actor, job, batch.valid, defs)) : new Map<string, string>();
    const refs = batch.valid.map((v) => v.row.external_ref);
    const others = refs.filter((r) => !created.has(r));
    const existingIds = await repo.idsByExternalRef(db, t, others);
    const outcomes: RowOutcome[] = [];
    const seen = new Set<string>();
    for (const { line, row } of batch.valid) {
      const ref = row.external_ref;
      const id = created.get(ref);
      // A ref twice in one file: its first row creates the user, the next ones find it.
      if (id && !seen.has(ref)) outcomes.push({ line, outcome: 'created', external_ref: ref, user_id: id });
      else if (job.dry_run && !existingIds.has(ref) && !seen.has(ref)) outcomes.push({ line, outcome: 'created', external_ref: ref, user_id: null });
      else outcomes.push({ line, outcome: 'existing', external_ref: ref, user_id: existingIds.get(ref) ?? id ?? null });
      seen.add(ref);
    }
    for (const r of batch.rejected) outcomes.push({ line: r.line, outcome: 'rejected', errors: r.errors });
    return outcomes.sort((a, b) => a.line - b.line);
  }

  /** The batch's rejected rows and the job's progress, once every batch before it is recorded. */
  async function record(actor: Actor, job: ImportJobRow, batch: Pending, outcomes: RowOutcome[]): Promise<void> {
    const t = actor.tenantId;
    const errors = batch.rejected.flatMap((r) => r.errors.slice(0, 50).map((e, n) => ({ line: r.line, n, field: e.field, code: e.code, message: e.message.slice(0, 500) })));
    const count = (o: RowOutcome['outcome']) => outcomes.filter((x) => x.outcome === o).length;
    await repo.recordProgress(db, t, job.id, {
      resumeLine: batch.lastLine, read: outcomes.length, imported: count('created'), existing: count('existing'), rejected: count('rejected'), moved: batch.moved,
    }, errors);
  }

  function prepare(job: ImportJobRow, rec: SourceRecord, batch: Pending, defs: CustomFieldDefinitions): void {
    batch.lastLine = rec.line;
    if ('malformed' in rec) {
      batch.rejected.push({ line: rec.line, errors: [{ field: 'record', code: 'malformed', message: rec.malformed }] });
      return;
    }
    if ('refused' in rec) {
      batch.rejected.push({ line: rec.line, errors: [rec.refused] });
      return;
    }
    // Before any profile copies the record's keys into objects of its own (user[k] = v).
    const problem = recordProblem(rec.record);
    if (problem !== undefined) {
      batch.rejected.push({ line: rec.line, errors: [problem] });
      return;
    }
    const profile = PROFILES[job.profile]!;
    if (profile.skip?.(rec.record)) return;
    const mapped = profile.map(rec.record);
    if (mapped.external_ref !== undefined && mapped.user.external_ref === undefined) mapped.user.external_ref = mapped.external_ref;
    if (job.format === 'csv') coerceCsv(mapped.user);
    Object.assign(batch.moved, mapped.moved);
    const checked = checkRow(mapped);
    if ('errors' in checked) {
      batch.rejected.push({ line: rec.line, errors: checked.errors });
      return;
    }
    // Tenant-defined values, checked against the tenant's definitions as POST /v1/users checks them.
    const custom = checked.row.profile.custom;
    if (custom !== undefined) {
      try {
        checked.row.profile.custom = checkedCreateValues(defs, custom as JsonObject);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        batch.rejected.push({ line: rec.line, errors: err.extra.errors ?? [{ field: 'custom', code: err.code, message: err.message }] });
        return;
      }
    }
    batch.valid.push({ line: rec.line, row: checked.row });
  }

  return {
    profiles: PROFILE_NAMES,

    /**
     * The job for this file: its unfinished job when there is one (resumed after resume_line), a new
     * one otherwise. 409 import.running while another run holds the unfinished job's lease.
     */
    async open(actor: Actor, o: ImportOptions): Promise<{ job: ImportJobRow; resumed: boolean }> {
      if (!PROFILES[o.profile]) {
        throw new AppError(400, 'import.unknown_profile', `No import profile ${o.profile}: use one of ${PROFILE_NAMES.join(', ')}.`, {
          errors: [{ field: 'profile', code: 'not_allowed_value', message: `must be one of: ${PROFILE_NAMES.join(', ')}` }],
        });
      }
      if (!FORMATS.includes(o.format)) {
        throw new AppError(400, 'import.unknown_format', `No import format ${o.format}: use ndjson, csv or json.`, {
          errors: [{ field: 'format', code: 'not_allowed_value', message: 'must be one of: ndjson, csv, json' }],
        });
      }
      const dryRun = o.dryRun ?? false;
      for (let attempt = 0; attempt < 3; attempt++) {
        const unfinished = await repo.findUnfinished(db, actor.tenantId, o.sha256, o.profile, dryRun);
        if (unfinished) {
          const leased = await repo.lease(db, actor.tenantId, unfinished.id);
          if (!leased) throw new AppError(409, 'import.running', `Import ${unfinished.id} of this file is running; wait for it (GET /v1/imports/${unfinished.id}).`);
          return { job: leased, resumed: true };
        }
        const job = await repo.insertJob(db, {
          tenant_id: actor.tenantId, id: newId('imp'), profile: o.profile, format: o.format, dry_run: dryRun, user_events: o.userEvents ?? false,
          source_name: o.sourceName ?? null, source_sha256: o.sha256, created_by_key_id: actor.keyId,
        });
        if (job) return { job, resumed: false };
      }
      throw new AppError(409, 'import.running', 'Another import of this file started at the same moment; try again.');
    },

    /**
     * Reads `source` to its end, skipping the lines a previous run committed. Rows that fail are
     * reported and never stop the others; a failure of the import itself (the database gone) leaves
     * the job resumable and is thrown.
     */
    async run(actor: Actor, job: ImportJobRow, source: Readable, hooks: { onRows?: (o: RowOutcome[], p: Progress) => void } = {}): Promise<ImportJob> {
      const skipUntil = Number(job.resume_line);
      const progress: Progress = { line: skipUntil, read: Number(job.rows_read), imported: Number(job.rows_imported), existing: Number(job.rows_existing), rejected: Number(job.rows_rejected) };
      // WRITERS batches are written at once (PostgreSQL takes each on its own connection and core);
      // their progress is recorded strictly in file order, each after the one before it, so
      // resume_line never passes a line whose batch did not commit. A failed batch stops every
      // later record.
      const defs = await loadDefinitions(db, actor.tenantId);
      const inflight: Array<Promise<void>> = [];
      let recorded: Promise<void> = Promise.resolve();
      const submit = (batch: Pending) => {
        const written = write(actor, job, batch, defs);
        recorded = Promise.all([written, recorded]).then(async ([outcomes]) => {
          await record(actor, job, batch, outcomes);
          progress.line = batch.lastLine;
          for (const o of outcomes) {
            progress.read++;
            if (o.outcome === 'created') progress.imported++;
            else if (o.outcome === 'existing') progress.existing++;
            else progress.rejected++;
          }
          hooks.onRows?.(outcomes, { ...progress });
        });
        // Handled here so a failure waits its turn to be thrown, in order.
        recorded.catch(() => undefined);
        inflight.push(recorded);
      };
      let view: ImportJob;
      try {
        let batch = emptyBatch();
        for await (const rec of readers[job.format as Format](source)) {
          if (rec.line <= skipUntil) continue;
          prepare(job, rec, batch, defs);
          if (batch.valid.length + batch.rejected.length >= BATCH_ROWS) {
            if (inflight.length >= WRITERS) await inflight.shift();
            submit(batch);
            batch = emptyBatch();
          }
        }
        if (batch.valid.length + batch.rejected.length) submit(batch);
        while (inflight.length) await inflight.shift();
        // The job completes with its import.completed entry and event, or not at all: a crash between
        // the two left a completed job whose event never came (a rerun finds it completed, imports
        // nothing and says nothing), so the platform never heard of the users it made.
        view = await db.transaction().execute(async (tx) => {
          const completed = toImportJob(await repo.finish(tx, actor.tenantId, job.id, 'completed', null));
          if (!job.dry_run) {
            const data = { import_id: job.id, profile: job.profile, ...completed.counts, moved_fields: completed.moved_fields };
            await recordChange(tx, actor,
              { action: 'import.completed', targetType: 'import', targetId: job.id, details: data },
              { type: 'import.completed', userId: null, data });
          }
          return completed;
        });
      } catch (err) {
        await Promise.allSettled(inflight);
        await db.updateTable('import_jobs').set({ leased_until: null, failure: err instanceof Error ? err.message.slice(0, 500) : 'failed' })
          .where('tenant_id', '=', actor.tenantId).where('id', '=', job.id).execute().catch(() => undefined);
        throw err;
      }
      if (progress.imported - Number(job.rows_imported) >= ANALYZE_AFTER_ROWS) await repo.refreshStatistics(db);
      return view;
    },

    /** The tenant's imports, newest first: what ran, from which file and profile, with its counts. */
    async list(actor: Actor, q: { limit?: number; cursor?: string; state?: ImportJob['state'] }) {
      const limit = q.limit ?? 50;
      const before = decodeCursor(q.cursor, ['id'] as const);
      const rows = await repo.list(db, actor.tenantId, { state: q.state, beforeId: before?.id, limit: limit + 1 });
      return toPage(rows, limit, toImportJob, (r) => ({ id: r.id }));
    },

    async get(actor: Actor, id: string): Promise<ImportJob> {
      const job = await repo.get(db, actor.tenantId, id);
      if (!job) throw notFound('import', id);
      return toImportJob(job);
    },

    /** The rejected rows, by line: each problem with its field and code. */
    async errors(actor: Actor, id: string, q: { limit?: number; cursor?: string }) {
      if (!(await repo.get(db, actor.tenantId, id))) throw notFound('import', id);
      const limit = q.limit ?? 100;
      const after = decodeCursor(q.cursor, ['line', 'n'] as const, /^\d{1,18}$/);
      const rows = await repo.errorsPage(db, actor.tenantId, id, after, limit + 1);
      const page = rows.slice(0, limit).map((r) => ({ line: Number(r.line), field: r.field, code: r.code, message: r.message }));
      const last = rows.length > limit ? rows[limit - 1]! : null;
      return { data: page, next_cursor: last ? encodeCursor({ line: String(last.line), n: String(last.n) }) : null };
    },
  };
}

export type ImportsService = ReturnType<typeof createImportsService>;
