// A local webhook receiver: records every request, verifies Standard Webhooks signatures with the
// `standardwebhooks` library, and answers what the test scripts (200 by default).
import http from 'node:http';
import { Webhook } from 'standardwebhooks';
import { createDispatcher, type Dispatcher } from '../../src/workers/dispatcher.js';
import type { TestContext } from './app.js';

export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  json: { id: string; type: string; timestamp: string; data: Record<string, unknown> };
  at: number;
}

export async function startReceiver() {
  const received: Received[] = [];
  const script: Array<{ status: number; headers?: Record<string, string> }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({
        id: String(req.headers['webhook-id']), timestamp: String(req.headers['webhook-timestamp']),
        signature: String(req.headers['webhook-signature']), body, json: JSON.parse(body), at: Date.now(),
      });
      const next = script.shift() ?? { status: 200 };
      res.writeHead(next.status, next.headers ?? {}).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    received,
    /** Answers to give next, in order; then 200. */
    script,
    /** True when the request verifies under `secret` (one of possibly several signatures). */
    verifies(r: Received, secret: string): boolean {
      try {
        new Webhook(secret).verify(r.body, { 'webhook-id': r.id, 'webhook-timestamp': r.timestamp, 'webhook-signature': r.signature });
        return true;
      } catch {
        return false;
      }
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
export type Receiver = Awaited<ReturnType<typeof startReceiver>>;

/** A logger that prints nothing: the tests assert on what the dispatcher records, not on its log. */
export const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** A dispatcher that may send to receivers on this machine (http, private addresses), quietly. */
export function localDispatcher(ctx: Pick<TestContext, 'db' | 'keyring'>, options: Partial<Parameters<typeof createDispatcher>[0]> = {}): Dispatcher {
  return createDispatcher({ db: ctx.db, keyring: ctx.keyring, targets: { allowHttp: true, allowPrivate: true }, log: quiet, ...options });
}

/** Runs the dispatcher until a round sends nothing (ten rounds at most). */
export async function drain(dispatcher: Dispatcher): Promise<void> {
  for (let i = 0; i < 10; i++) if ((await dispatcher.runOnce()).sent === 0) return;
}
