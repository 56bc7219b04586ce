// COPY ... FROM STDIN over a node-postgres client, without another dependency: pg runs any object
// with submit() as a query (a "submittable", the interface pg-copy-streams builds on) and hands it
// the protocol messages; this one answers CopyInResponse by streaming the chunks it is given.
import { once } from 'node:events';
import type { Socket } from 'node:net';
import type pg from 'pg';

interface Connection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
  sendCopyFail(message: string): void;
  stream: Socket;
}

/** Streams `chunks` (text-format COPY data) into `sql` (a COPY ... FROM STDIN); resolves with the row count. */
export function copyFrom(client: pg.ClientBase, sql: string, chunks: Iterable<string> | AsyncIterable<string>): Promise<number> {
  return new Promise((resolve, reject) => {
    let rows = 0;
    let failure: Error | null = null;
    const noop = () => undefined;
    const submittable = {
      submit(connection: Connection) {
        connection.query(sql);
      },
      handleCopyInResponse(connection: Connection) {
        void (async () => {
          try {
            for await (const chunk of chunks) {
              connection.sendCopyFromChunk(Buffer.from(chunk, 'utf8'));
              if (connection.stream.writableNeedDrain) await once(connection.stream, 'drain');
            }
            connection.endCopyFrom();
          } catch (err) {
            connection.sendCopyFail(err instanceof Error ? err.message : String(err));
          }
        })();
      },
      handleCommandComplete(msg: { text?: string }) {
        rows = Number(/(\d+)$/.exec(msg.text ?? '')?.[1] ?? 0);
      },
      handleError(err: Error) {
        failure = err;
      },
      handleReadyForQuery() {
        if (failure) reject(failure);
        else resolve(rows);
      },
      handleRowDescription: noop,
      handleDataRow: noop,
      handleEmptyQuery: noop,
      handlePortalSuspended: noop,
      handleCopyData: noop,
    };
    client.query(submittable as unknown as pg.QueryConfig);
  });
}

/** One field in COPY's text format: \N for null; backslash, tab, newline and CR escaped. */
export function copyText(v: string | null): string {
  if (v === null) return '\\N';
  return /[\\\t\n\r]/.test(v) ? v.replace(/[\\\t\n\r]/g, (c) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[c]!) : v;
}
