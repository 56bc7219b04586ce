// The README's receiver example, run as written: it verifies a real delivery with standardwebhooks.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDispatcher } from '../src/workers/dispatcher.js';
import { freePort } from '../src/db/embedded.js';
import { openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;
beforeAll(async () => ({ ctx, api } = await openTenantContext()));
afterAll(() => ctx.close());

describe('examples/webhook-receiver.mjs', () => {
  it('is the receiver the README shows, character for character', async () => {
    const fs = await import('node:fs/promises');
    const example = await fs.readFile(path.resolve(import.meta.dirname, '../examples/webhook-receiver.mjs'), 'utf8');
    const readme = await fs.readFile(path.resolve(import.meta.dirname, '../README.md'), 'utf8');
    expect(readme).toContain('```js\n' + example + '```');
  });

  it('receives and verifies a signed event after a user changes', async () => {
    const port = await freePort();
    const hook = (await api.post('/v1/webhook-endpoints', { url: `http://127.0.0.1:${port}/`, event_types: ['user.created'] })).json();
    const child = spawn(process.execPath, [path.resolve(import.meta.dirname, '../examples/webhook-receiver.mjs')], {
      env: { ...process.env, KYCLO_WEBHOOK_SECRET: hook.secret, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    try {
      while (!out.includes('listening')) await new Promise((r) => setTimeout(r, 50));
      const user = (await api.post('/v1/users', individual())).json();
      const dispatcher = createDispatcher({ db: ctx.db, keyring: ctx.keyring, targets: { allowHttp: true, allowPrivate: true }, log: console });
      await dispatcher.runOnce();
      await dispatcher.close();
      while (!out.includes('verified')) await new Promise((r) => setTimeout(r, 50));
      expect(out).toMatch(new RegExp(`verified evt_\\w+ user.created .*"user_id":"${user.id}"`));
      expect(out).not.toContain('rejected');
      const [d] = await ctx.db.selectFrom('webhook_deliveries').selectAll().where('endpoint_id', '=', hook.id).execute();
      expect(d).toMatchObject({ status: 'succeeded', last_status_code: 204 });
    } finally {
      child.kill();
    }
  });
});
