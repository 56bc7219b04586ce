// Export for the data warehouse: the tenant's users as NDJSON, one user object a line (as GET
// /v1/users/{id} answers it: identifier numbers masked), read in keyset pages of PAGE_ROWS inside
// one snapshot (exports.repo.ts), written as they are read, each page one chunk of UTF-8 bytes
// (lib/ndjson.ts): memory holds two pages whatever the tenant's size (the one being written and the
// next, already asked for). The last line is the trailer {count, snapshot_at, next_cursor}:
// next_cursor asks, next time, for what changed since this snapshot (a minute of overlap: a line may
// come twice, upsert by id); `after` resumes an export that was cut, after the last id received.
import type { Selectable } from 'kysely';
import type { Db, StatusChangesTable, VerificationsTable } from '../../db/database.js';
import { retainedWithheld, type Keyring } from '../../crypto/keyring.js';
import { awaitsErasure, hidesRetained, readsRetained, withheldView } from '../erasure/retained.js';
import type { Actor } from '../audit/actor.js';
import { AppError } from '../../http/errors.js';
import { decodeCursor, encodeCursor } from '../../lib/cursor.js';
import { NdjsonPage } from '../../lib/ndjson.js';
import { roleAllows, type Permission } from '../api-keys/roles.js';
import { toUserView } from '../users/user-view.js';
import { openCustomViews } from '../custom-fields/custom-fields.service.js';
import { verificationViews, withheldVerification } from '../kyc/kyc.service.js';
import { toStatusChange, withheldStatusChange } from '../lifecycle/lifecycle.service.js';
import { documentViews, type DocumentRow } from '../documents/documents.service.js';
import { openSnapshot, type ExportFilters, type Snapshot } from './exports.repo.js';
import { connectionStringOf, parallelPages, type ExportThreads } from './parallel.js';
import type { ViewedRow } from '../users/users.repo.js';

/**
 * Small pages keep what is alive at each young-generation collection small, so little of it lives
 * long enough to be copied to the old generation and collected there: 250 rows cost ≈ 15 µs of CPU
 * a user where 1,000 cost ≈ 17 (300,000 users, in process, 3 runs each); the round trips are hidden
 * behind the next page's prefetch.
 */
export const PAGE_ROWS = 250;
/** How far back the next incremental export starts before this snapshot (see the header). */
export const SYNC_OVERLAP_MS = 60_000;

export const INCLUDES = ['verifications', 'status_changes', 'documents_meta'] as const;
export type Include = (typeof INCLUDES)[number];

// What each part of a line needs beyond users:read: identity snapshots and documents are read only
// by the roles that may read them one by one.
const NEEDS: Record<Include, Permission | null> = { verifications: 'kyc:read', status_changes: null, documents_meta: 'documents:read' };

export interface ExportQuery {
  updated_since?: string;
  status?: string[];
  kyc_status?: string;
  type?: string;
  tag?: string;
  risk?: string[];
  external_ref?: string;
  created_from?: string;
  created_to?: string;
  include?: Include[];
  /** From a previous export's trailer: what changed since that snapshot. */
  cursor?: string;
  /** Resume a cut export after this user id. */
  after?: string;
}

/** A page of the export: its lines as UTF-8 bytes, and how many users they are. */
export interface Page {
  bytes: Buffer;
  count: number;
}

/**
 * A page of users as NDJSON lines, each the user object GET /v1/users/{id} answers plus the
 * included parts (read on the snapshot's connection, so they agree with the users). The one
 * rendering for both ways an export runs: in the calling thread, and in export worker threads.
 */
export async function renderPage(
  fullKeyring: Keyring, t: string, snap: Snapshot, include: readonly Include[], rows: ViewedRow[], out: NdjsonPage, withhold = false,
): Promise<Buffer> {
  const parts = new Set(include);
  // A caller who may not read users awaiting erasure gets them as destruction will leave them
  // (erasure/retained.ts): the tombstone's view, their sealed values unopened, their notes null.
  const keyring = withhold ? retainedWithheld(fullKeyring) : fullKeyring;
  const withheld = withhold ? new Set(rows.filter(awaitsErasure).map((r) => r.id)) : null;
  const ids = rows.map((r) => r.id);
  const extra = new Map<string, Record<string, unknown[]>>();
  const attach = (userId: string, key: string, value: unknown) => {
    const e = extra.get(userId) ?? {};
    (e[key] ??= []).push(value);
    extra.set(userId, e);
  };
  if (parts.has('verifications')) {
    const v = await snap.ofUsers<Selectable<VerificationsTable>>('verifications', t, ids);
    (await verificationViews(keyring, t, v)).forEach((view, i) => attach(v[i]!.user_id, 'verifications', withheld?.has(v[i]!.user_id) ? withheldVerification(view) : view));
  }
  if (parts.has('status_changes')) {
    for (const s of await snap.ofUsers<Selectable<StatusChangesTable>>('status_changes', t, ids)) {
      attach(s.user_id, 'status_changes', withheld?.has(s.user_id) ? withheldStatusChange(s) : toStatusChange(s));
    }
  }
  if (parts.has('documents_meta')) {
    const d = await snap.ofUsers<DocumentRow>('documents', t, ids);
    (await documentViews(keyring, t, d)).forEach((view, i) => attach(d[i]!.user_id, 'documents', view));
  }
  // Personal tenant-defined values opened, as GET /v1/users answers them (one key lookup a page).
  const views = rows.map(withheld?.size ? (r) => (withheld.has(r.id) ? withheldView(r) : toUserView(r)) : toUserView);
  await openCustomViews(keyring, t, views);
  for (const [n, r] of rows.entries()) {
    const e = extra.get(r.id);
    const base = views[n]!;
    const line = parts.size
      ? {
          ...base,
          ...(parts.has('verifications') ? { verifications: e?.verifications ?? [] } : {}),
          ...(parts.has('status_changes') ? { status_changes: e?.status_changes ?? [] } : {}),
          ...(parts.has('documents_meta') ? { documents: e?.documents ?? [] } : {}),
        }
      : base;
    out.push(line);
  }
  return out.take();
}

export function createExportsService({ db, keyring, threads }: { db: Db; keyring: Keyring; threads?: ExportThreads }) {
  /** 403 before anything is read when the caller's role may not read an included part. */
  function checkIncludes(actor: Actor, include: Include[]): void {
    for (const part of include) {
      const need = NEEDS[part];
      if (need && actor.role && !roleAllows(actor.role, need)) {
        throw new AppError(403, 'auth.forbidden', `Your role may not read ${part} (it needs ${need}).`, {
          errors: [{ field: 'include', code: 'forbidden', message: `${part} needs ${need}` }],
        });
      }
    }
  }

  async function* lines(actor: Actor, q: ExportQuery, f: ExportFilters, snap: Snapshot, jobs: number): AsyncGenerator<Buffer> {
    const t = actor.tenantId;
    const withhold = !readsRetained(actor);
    const include = [...new Set(q.include ?? [])];
    const out = new NdjsonPage();
    try {
      const pages = jobs > 1 && threads
        ? parallelPages({ ...threads, connectionString: connectionStringOf(db), snap, tenantId: t, filters: f, include, withhold, after: q.after ?? null, jobs, pageRows: PAGE_ROWS })
        : localPages(t, q.after ?? null, f, include, withhold, snap, out);
      let count = 0;
      for await (const page of pages) {
        count += page.count;
        yield page.bytes;
      }
      const since = new Date(snap.at.getTime() - SYNC_OVERLAP_MS).toISOString();
      out.push({ count, snapshot_at: snap.at.toISOString(), next_cursor: encodeCursor({ since }) });
      yield out.take();
    } finally {
      await snap.close();
    }
  }

  /** The pages made in this thread, on the snapshot's own connection. */
  async function* localPages(t: string, after: string | null, f: ExportFilters, include: Include[], withhold: boolean, snap: Snapshot, out: NdjsonPage): AsyncGenerator<Page> {
    // The next page is asked for as soon as this one arrives, so PostgreSQL reads it while this
    // process turns this one into lines (the two share the machine's cores; measured: bench/README.md).
    // A page left unread when the stream is cut fails or completes unobserved: it never throws.
    let next = snap.users(t, after, f, PAGE_ROWS);
    for (;;) {
      const rows = await next;
      if (rows.length === 0) return;
      if (rows.length === PAGE_ROWS) {
        next = snap.users(t, rows.at(-1)!.id, f, PAGE_ROWS);
        next.catch(() => undefined);
      }
      yield { bytes: await renderPage(keyring, t, snap, include, rows, out, withhold), count: rows.length };
      if (rows.length < PAGE_ROWS) return;
    }
  }

  return {
    /**
     * The export's NDJSON, page by page (each page one Buffer of whole lines). Everything that can
     * refuse (the includes' permissions, a bad cursor, the database) does so here, before the first
     * byte: after it, a failure can only cut the stream.
     */
    async stream(actor: Actor, q: ExportQuery, opts: { jobs?: number } = {}): Promise<AsyncGenerator<Buffer>> {
      checkIncludes(actor, q.include ?? []);
      const from = decodeCursor(q.cursor, ['since'] as const);
      if (from && Number.isNaN(Date.parse(from.since))) {
        throw new AppError(400, 'request.validation_failed', 'The cursor is not one this API issued.', { errors: [{ field: 'cursor', code: 'invalid_cursor', message: 'The cursor is not one this API issued.' }] });
      }
      const since = [q.updated_since ? new Date(q.updated_since).toISOString() : undefined, from?.since].filter(Boolean).sort().at(-1);
      const f: ExportFilters = {
        updated_since: since, status: q.status, kyc_status: q.kyc_status, type: q.type, tag: q.tag,
        risk: q.risk, external_ref: q.external_ref, created_from: q.created_from, created_to: q.created_to,
        ...(hidesRetained(actor, q) ? { retainedHidden: true } : {}),
      };
      const jobs = threads ? Math.max(1, opts.jobs ?? 1) : 1;
      return lines(actor, q, f, await openSnapshot(db, { shared: jobs > 1 }), jobs);
    },
  };
}

export type ExportsService = ReturnType<typeof createExportsService>;
