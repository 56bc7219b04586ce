// GDPR access and portability: everything Kyclo holds about one user, decrypted, as one document.
//
// The document is written as a stream, section by section, each section read from the database in
// pages of EXPORT_PAGE_ROWS and decrypted one page at a time: a user with years of history (every
// event and audit entry carrying the personal values it changed) once needed the whole document
// built in memory, then its JSON text next to it, and a server with a 256 MB heap died of one
// export. Now memory holds one page, whatever the history, and the client reads at its own pace.
// The document's shape is unchanged: the same keys in the same order, each array in id or seq order.
import { Readable } from 'node:stream';
import type { Db } from '../../db/database.js';
import type { Actor } from '../audit/actor.js';
import type { Keyring } from '../../crypto/keyring.js';
import * as users from '../users/users.repo.js';
import { toUnmaskedUserView } from '../users/user-view.js';
import { openCustom } from '../custom-fields/storage.js';
import { verificationViews } from '../kyc/kyc.service.js';
import { changeRequestViews } from '../reviews/change-requests.service.js';
import { eventViews } from '../events/events.service.js';
import { auditViews } from '../audit/audit.service.js';
import { sealedFlag } from '../audit/audit.repo.js';
import { toStatusChange } from '../lifecycle/lifecycle.service.js';
import { documentViews } from '../documents/documents.service.js';
import * as relationships from '../relationships/relationships.repo.js';
import { toRelationship } from '../relationships/relationships.service.js';
import { toRiskChange } from '../compliance/risk.service.js';
import { recordChange } from '../audit/write-path.js';

/** Rows read and decrypted at a time (events at their largest carry ~32 KiB of personal values each). */
export const EXPORT_PAGE_ROWS = 100;

type Table = 'verifications' | 'status_changes' | 'risk_changes' | 'change_requests' | 'events' | 'audit_entries' | 'documents';

export function createExportService({ db, keyring }: { db: Db; keyring: Keyring }) {
  /** One page of a user's rows of `table` after `after` (keyset on `key`: id, or the log's seq). */
  // Kysely cannot type a table chosen at run time; each caller's view function fixes the row type.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  function page(table: Table, key: 'id' | 'seq', t: string, userId: string, after: string | null): Promise<any[]> {
    let q = db.selectFrom(table).selectAll().where('tenant_id', '=', t).where('user_id', '=', userId);
    if (after !== null) q = q.where(key, '>', after);
    // Each audit entry says whether it is sealed, as the API's pages do (a forged one is not).
    if (table === 'audit_entries') q = q.select(sealedFlag as never);
    return q.orderBy(key).limit(EXPORT_PAGE_ROWS).execute();
  }

  /** `"name":[…]`, its items written page by page. */
  async function* section<R extends Record<string, unknown>>(
    name: string, table: Table, key: 'id' | 'seq', t: string, userId: string, views: (rows: R[]) => Promise<unknown[]> | unknown[],
  ): AsyncGenerator<string> {
    yield `,${JSON.stringify(name)}:[`;
    let after: string | null = null;
    let first = true;
    for (;;) {
      const rows = (await page(table, key, t, userId, after)) as R[];
      if (rows.length === 0) break;
      let text = '';
      for (const v of await views(rows)) {
        text += (first ? '' : ',') + JSON.stringify(v);
        first = false;
      }
      yield text;
      if (rows.length < EXPORT_PAGE_ROWS) break;
      after = String(rows.at(-1)![key]);
    }
    yield ']';
  }

  /** The user's relationships on either side, ended ones included (a relationship is part of both records). */
  async function* relationshipsSection(t: string, userId: string): AsyncGenerator<string> {
    yield ',"relationships":[';
    let after: string | null = null;
    let first = true;
    for (;;) {
      const rows = await relationships.list(db, t, userId, { includeEnded: true, afterId: after, limit: EXPORT_PAGE_ROWS - 1 });
      let text = '';
      for (const r of rows) {
        text += (first ? '' : ',') + JSON.stringify(toRelationship(r));
        first = false;
      }
      yield text;
      if (rows.length < EXPORT_PAGE_ROWS) break;
      after = rows.at(-1)!.id;
    }
    yield ']';
  }

  async function* document(t: string, userId: string, user: unknown): AsyncGenerator<string> {
    yield `{"exported_at":${JSON.stringify(new Date().toISOString())},"tenant_id":${JSON.stringify(t)},"user":${JSON.stringify(user)}`;
    yield* section('verifications', 'verifications', 'id', t, userId, (rows) => verificationViews(keyring, t, rows as never, true));
    // The one place numbers leave unmasked: the data subject's own copy. Files are linked, not inlined.
    yield* section('documents', 'documents', 'id', t, userId, (rows) => documentViews(keyring, t, rows as never, true));
    yield* section('status_changes', 'status_changes', 'id', t, userId, (rows) => rows.map((r) => toStatusChange(r as never)));
    yield* section('risk_changes', 'risk_changes', 'id', t, userId, (rows) => rows.map((r) => toRiskChange(r as never)));
    yield* relationshipsSection(t, userId);
    yield* section('change_requests', 'change_requests', 'id', t, userId, (rows) => changeRequestViews(keyring, t, rows as never, undefined, true));
    yield* section('events', 'events', 'seq', t, userId, (rows) => eventViews(keyring, t, rows as never, { freeText: true }));
    yield* section('audit_entries', 'audit_entries', 'seq', t, userId, (rows) => auditViews(keyring, t, rows as never));
    yield '}';
  }

  return {
    /**
     * The export as a stream of JSON text. The user is read first, so an unknown user is a 404
     * before any byte is sent; a failure after that ends the stream (the client sees a cut body).
     * Every export is audited (`user.exported`: who read which user) before any byte is sent, as a
     * document download is: it opens every sealed value and shows identifier numbers whole. No
     * export without its entry; the entry does not say whether the client read the stream to its end.
     */
    async stream(actor: Actor, userId: string): Promise<Readable> {
      const row = await users.getOrThrow(db, actor.tenantId, userId);
      // Tenant-defined values whole, the personal ones opened (gone once erasure destroyed the key).
      const user = { ...toUnmaskedUserView(row), custom: await openCustom(keyring, actor.tenantId, userId, row.profile) };
      await recordChange(db, actor, { action: 'user.exported', targetType: 'user', targetId: userId, userId });
      return Readable.from(document(actor.tenantId, userId, user), { objectMode: false });
    },

    /** The whole document as a value (for callers that want one, such as tests); small exports only. */
    async export(actor: Actor, userId: string): Promise<Record<string, unknown>> {
      let text = '';
      for await (const chunk of await this.stream(actor, userId)) text += chunk;
      return JSON.parse(text) as Record<string, unknown>;
    },
  };
}

export type ExportService = ReturnType<typeof createExportService>;
