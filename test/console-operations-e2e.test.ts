// The console's operations pages in chromium: a failing webhook endpoint's delivery log and a
// redelivery that then succeeds, the audit chain's state, API keys (the secret shown once, revoked
// from the page), the policy read-only, and which tabs each role is given.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { startReceiver, localDispatcher } from './helpers/receiver.js';
import { axe, hasChromium, launchBrowser, serious, signIn, startConsoleApp, type Browser } from './helpers/browser.js';
import type { Dispatcher } from '../src/workers/dispatcher.js';
import { sealAuditLog } from '../src/modules/audit/chain.js';
import { verifyAuditLog } from '../src/modules/audit/verify.js';
import { recordVerifications } from '../src/modules/audit/verification-record.js';


describe.skipIf(!hasChromium)('the console’s operations pages in chromium', () => {
  let ctx: TestContext;
  let base: string;
  let browser: Browser;
  let owner: Client;
  let ownerKey: string;
  let tenantId: string;
  let dispatcher: Dispatcher;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  beforeAll(async () => {
    ({ ctx, base, tenantId, ownerKey, owner } = await startConsoleApp());
    receiver = await startReceiver();
    dispatcher = localDispatcher(ctx);
    browser = await launchBrowser(base);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await dispatcher?.close();
    await receiver?.close();
    await ctx?.close();
  });

  it('shows a failed delivery, redelivers the event, and the log then shows it delivered', async () => {
    const endpoint = await owner.post('/v1/webhook-endpoints', { url: receiver.url, event_types: ['user.created'] });
    expect(endpoint.statusCode, endpoint.body).toBe(201);
    receiver.script.push({ status: 500 });
    expect((await owner.post('/v1/users', individual())).statusCode).toBe(201);
    await dispatcher.runOnce();
    expect(receiver.received).toHaveLength(1);

    const page = await browser.newPage();
    await signIn(page, base, ownerKey, '/console/operations/webhooks');
    await page.getByRole('button', { name: 'Show deliveries' }).click();
    const rows = page.locator('table.dense tbody tr');
    await expect.poll(() => rows.first().textContent()).toContain('✕ 500');
    expect(await axeSerious(page)).toEqual([]);
    const eventId = receiver.received[0]!.json.id;
    await page.getByRole('button', { name: `Redeliver ${eventId}` }).click();
    await expect.poll(() => page.getByRole('status').allTextContents()).toContainEqual(expect.stringContaining(`Event ${eventId} queued again`));
    await dispatcher.runOnce();
    expect(receiver.received.map((r) => r.json.id)).toEqual([eventId, eventId]);
    await page.getByRole('button', { name: 'Hide deliveries' }).click();
    await page.getByRole('button', { name: 'Show deliveries' }).click();
    await expect.poll(() => rows.first().textContent()).toContain('✓ 200');
    await page.close();
  });

  it('creates an API key whose secret is shown once, and revokes it from the page', async () => {
    const page = await browser.newPage();
    await signIn(page, base, ownerKey, '/console/operations/keys');
    await page.getByLabel('Name').fill('night auditor');
    await page.getByLabel('Role').selectOption('READER');
    await page.getByRole('button', { name: 'Create' }).click();
    const secret = (await page.locator('code.secret').textContent())!;
    expect(secret).toMatch(/^kyclo_live_[A-Za-z0-9]{32}$/);
    expect((await client(ctx.app, secret).get('/v1/me')).json()).toMatchObject({ name: 'night auditor', role: 'READER' });
    expect(await axeSerious(page)).toEqual([]);
    const row = await ctx.db.selectFrom('api_keys').select(['id', 'revoked_at']).where('tenant_id', '=', tenantId).where('name', '=', 'night auditor').executeTakeFirstOrThrow();
    expect(row.revoked_at).toBeNull();
    page.once('dialog', (d) => void d.accept());
    await page.locator('li', { hasText: 'night auditor' }).getByRole('button', { name: 'Revoke' }).click();
    await expect.poll(() => page.locator('li', { hasText: 'night auditor' }).textContent()).toContain('revoked');
    const after = await ctx.db.selectFrom('api_keys').select('revoked_at').where('tenant_id', '=', tenantId).where('id', '=', row.id).executeTakeFirstOrThrow();
    expect(after.revoked_at).not.toBeNull();
    expect((await client(ctx.app, secret).get('/v1/me')).statusCode).toBe(401);
    await page.reload();
    await page.locator('li', { hasText: 'night auditor' }).waitFor();
    expect(await page.locator('code.secret').count()).toBe(0); // shown once: gone after a reload
    await page.close();
  });

  it('shows the audit chain’s state and the policy read-only', async () => {
    const page = await browser.newPage();
    await signIn(page, base, ownerKey, '/console/operations/audit');
    await page.getByRole('heading', { name: 'Signed checkpoints' }).waitFor();
    await expect.poll(() => page.locator('section', { hasText: 'Last verification' }).textContent()).toContain('has not run for this tenant yet');
    expect(await axeSerious(page)).toEqual([]);
    // After a verify run (sealed first, as the worker would), the page shows its result.
    await sealAuditLog(ctx.db);
    await recordVerifications(ctx.db, ctx.keyring.auditKeys.macKey, await verifyAuditLog(ctx.db, {
      tenantId, macKey: ctx.keyring.auditKeys.macKey, chainKey: ctx.keyring.auditKeys.chainKey, publicKey: ctx.keyring.auditKeys.publicKey,
    }), 0);
    await page.reload();
    await expect.poll(() => page.getByTestId('last-verification').textContent()).toMatch(/ok .* entries checked/);
    expect(await page.getByTestId('last-verification').textContent()).not.toContain('NOT AUTHENTIC');
    await page.getByRole('link', { name: 'Policy' }).click();
    await expect.poll(() => page.locator('pre.json').textContent()).toContain('"capabilities"');
    expect(await page.getByRole('button', { name: /save|edit/i }).count()).toBe(0);
    expect(await axeSerious(page)).toEqual([]);
    await page.close();
  });

  it('gives each role only its tabs: a DEVELOPER has webhooks only, a READER no operations link', async () => {
    const dev = await createKey(ctx.db, tenantId, 'DEVELOPER');
    const page = await browser.newPage();
    await signIn(page, base, dev.key, '/console/operations');
    const tabs = page.getByRole('navigation', { name: 'Operations' }).getByRole('link');
    await expect.poll(() => tabs.allTextContents()).toEqual(['Webhooks']);
    await page.close();
    const reader = await createKey(ctx.db, tenantId, 'READER');
    const other = await browser.newPage();
    await signIn(other, base, reader.key);
    expect(await other.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents()).toEqual(['Users']);
    await other.close();
    expect(browser.foreign).toEqual([]);
    expect(browser.cspViolations).toEqual([]);
  });
});

async function axeSerious(page: Parameters<typeof axe>[0]) {
  return serious(await axe(page));
}
