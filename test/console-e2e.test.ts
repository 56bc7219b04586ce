// The operator console in a real browser (Debian's chromium through playwright-core) against the real
// app listening on a port, on this file's own PostgreSQL database. Each scenario checks what the
// operator sees and what the database holds afterwards; axe-core checks each page it visits.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, createTenant, createTestContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { axe, hasChromium, launchBrowser, serious, signIn, type Browser } from './helpers/browser.js';
import { consoleIsStale } from '../bin/build-if-stale.mjs';
import { bundleSize, BUDGET_GZIP_BYTES } from '../console/scripts/bundle-size.mjs';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
if (!hasChromium) console.warn('console e2e: SKIPPED — /usr/bin/chromium is missing (apt-get install -y chromium; .ci/run installs it)');

describe.skipIf(!hasChromium)('the operator console in chromium', () => {
  let ctx: TestContext;
  let base: string;
  let browser: Browser;
  let owner: Client;
  let tenantId: string;
  let officer: { key: string; id: string };
  let officer2: { key: string; id: string };
  let admin: { key: string; id: string };
  let reader: { key: string; id: string };
  const axeResults: Record<string, number> = {};

  beforeAll(async () => {
    expect(consoleIsStale(ROOT), 'console/dist is built (test/helpers/global-setup.ts)').toBe(false);
    ctx = await createTestContext();
    await ctx.app.listen({ port: 0, host: '127.0.0.1' });
    const addr = ctx.app.server.address();
    base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    const t = await createTenant(ctx.db);
    tenantId = t.tenantId;
    owner = client(ctx.app, t.ownerKey);
    officer = await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER');
    officer2 = await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER');
    admin = await createKey(ctx.db, tenantId, 'ADMIN');
    reader = await createKey(ctx.db, tenantId, 'READER');
    browser = await launchBrowser(base);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await ctx?.close();
    if (Object.keys(axeResults).length) console.log(`console e2e: axe-core serious/critical violations per page: ${JSON.stringify(axeResults)}`);
  });

  /** A verified individual: every capability allowed while active. */
  async function verifiedUser(overrides: Record<string, unknown> = {}) {
    const res = await owner.post('/v1/users', individual(overrides));
    expect(res.statusCode, res.body).toBe(201);
    const id: string = res.json().id;
    expect((await owner.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'e2e' })).statusCode).toBe(201);
    return id;
  }

  async function expectAccessible(page: Page, name: string) {
    const found = serious(await axe(page));
    axeResults[name] = found.length;
    expect(found, `axe-core on ${name}`).toEqual([]);
  }

  const capabilities = (page: Page) =>
    page.locator('section[aria-labelledby="capabilities-title"] li[data-capability]').evaluateAll((els) => els.map((e) => `${e.getAttribute('data-capability')}=${e.getAttribute('data-allowed')}`));
  const ALL = (allowed: boolean) => ['deposits', 'withdrawals', 'exchanges', 'card_transactions'].map((c) => `${c}=${allowed}`);

  it('serves the console from this origin under its CSP, and nothing goes elsewhere', async () => {
    const page = await browser.newPage();
    const res = await page.goto(`${base}/console/`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toContain("script-src 'self'");
    await page.getByLabel('API key').waitFor();
    await expectAccessible(page, 'sign-in');
    await page.getByLabel('API key').fill('kyclo_live_notarealkeynotarealkeynotareal');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('not valid');
    expect(await page.evaluate(() => Object.keys(sessionStorage).length + Object.keys(localStorage).length)).toBe(0);
    await page.close();
  });

  it('an officer suspends a user: the capabilities panel shows all four denied, then unsuspends', async () => {
    const id = await verifiedUser();
    const page = await browser.newPage();
    await signIn(page, base, officer.key, `/console/users/${id}`);
    await expect.poll(() => capabilities(page)).toEqual(ALL(true));
    await expectAccessible(page, 'user');
    await page.getByRole('button', { name: 'Suspend' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Reason code').selectOption('fraud_suspected');
    await dialog.getByLabel('Note').fill('card testing pattern reported by the acquirer');
    await expectAccessible(page, 'action dialog');
    await dialog.getByRole('button', { name: 'Confirm: suspend' }).click();
    await expect.poll(() => dialog.getByTestId('capabilities-after').textContent()).toContain('card transactions: denied (account suspended)');
    await dialog.getByRole('button', { name: 'Close' }).click();
    await expect.poll(() => capabilities(page)).toEqual(ALL(false));
    const row = await ctx.db.selectFrom('users').select(['status', 'status_reason']).where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirstOrThrow();
    expect(row).toEqual({ status: 'suspended', status_reason: 'fraud_suspected' });
    const change = await ctx.db.selectFrom('status_changes').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).executeTakeFirstOrThrow();
    expect(change).toMatchObject({ to_status: 'suspended', reason: 'fraud_suspected', actor_key_id: officer.id });

    await page.getByRole('button', { name: 'Unsuspend' }).click();
    await dialog.getByLabel('Reason code').selectOption('review_cleared');
    await dialog.getByRole('button', { name: 'Confirm: unsuspend' }).click();
    await expect.poll(() => dialog.getByTestId('capabilities-after').textContent()).toContain('deposits: allowed');
    await dialog.getByRole('button', { name: 'Close' }).click();
    await expect.poll(() => capabilities(page)).toEqual(ALL(true));
    expect((await owner.get(`/v1/users/${id}`)).json().status).toBe('active');
    await page.close();
  });

  it('a READER sees no action and no edit button, and a request forged with its key is refused (403)', async () => {
    const id = await verifiedUser();
    const page = await browser.newPage();
    await signIn(page, base, reader.key, `/console/users/${id}`);
    await page.getByRole('heading', { name: 'Capabilities' }).waitFor();
    await expect.poll(() => capabilities(page)).toEqual(ALL(true));
    expect(await page.getByRole('heading', { name: 'Actions', exact: true }).count()).toBe(0);
    for (const name of ['Flag', 'Suspend', 'Block', 'Close', 'Edit', 'Request erasure']) expect(await page.getByRole('button', { name, exact: true }).count(), name).toBe(0);
    expect(await page.getByRole('link', { name: 'Review queue' }).count()).toBe(0);
    await expectAccessible(page, 'user (READER)');
    // What a READER could send by hand from this page: the server decides, not the console.
    const forged = await page.evaluate(async (userId) => {
      const key = sessionStorage.getItem('kyclo.console.key');
      const res = await fetch(`/v1/users/${userId}/suspend`, {
        method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'other' }),
      });
      return { status: res.status, code: (await res.json()).code };
    }, id);
    expect(forged).toEqual({ status: 403, code: 'auth.forbidden' });
    expect((await owner.get(`/v1/users/${id}`)).json().status).toBe('active');
    expect(await ctx.db.selectFrom('status_changes').select('id').where('tenant_id', '=', tenantId).where('user_id', '=', id).execute()).toEqual([]);
    await page.close();
  });

  it('an officer approves a held email change and a second key sees it applied; the requester’s own key is told why it cannot', async () => {
    const id = await verifiedUser();
    const held = await client(ctx.app, admin.key).patch(`/v1/users/${id}`, { email: 'new.address@example.com' }, { 'content-type': 'application/merge-patch+json' });
    expect(held.statusCode, held.body).toBe(200);
    expect(held.json().pending_changes).toEqual([expect.objectContaining({ fields: ['email'] })]);
    const own = await verifiedUser();
    expect((await client(ctx.app, officer.key).patch(`/v1/users/${own}`, { email: 'own.request@example.com' }, { 'content-type': 'application/merge-patch+json' })).statusCode).toBe(200);

    const page = await browser.newPage();
    await signIn(page, base, officer.key, '/console/reviews');
    const card = page.locator('article', { hasText: id });
    await card.getByRole('cell', { name: 'new.address@example.com' }).waitFor();
    const mine = page.locator('article', { hasText: own });
    await expect.poll(() => mine.getByRole('note').textContent()).toContain('four eyes');
    expect(await mine.getByRole('button', { name: 'Approve' }).count()).toBe(0);
    await expectAccessible(page, 'review queue');
    await card.getByLabel(/Note/).fill('matches the utility bill on file');
    await card.getByRole('button', { name: 'Approve' }).click();
    await expect.poll(() => page.locator('article', { hasText: id }).count()).toBe(0);
    const cr = await ctx.db.selectFrom('change_requests').select(['status', 'decided_by_key_id']).where('tenant_id', '=', tenantId).where('user_id', '=', id).executeTakeFirstOrThrow();
    expect(cr).toEqual({ status: 'approved', decided_by_key_id: officer.id });

    const second = await browser.newPage();
    await signIn(second, base, officer2.key, `/console/users/${id}`);
    await expect.poll(() => second.getByRole('row', { name: /^email/ }).textContent()).toContain('new.address@example.com');
    await page.close();
    await second.close();
  });

  it('edits with a dry run, applies with If-Match, and shows what changed meanwhile when stale', async () => {
    const id = await verifiedUser({ phone: '+33611111111', occupation: 'baker' });
    const page = await browser.newPage();
    await signIn(page, base, officer.key, `/console/users/${id}`);
    await page.getByRole('button', { name: 'Edit' }).click();
    await page.getByLabel('phone', { exact: true }).fill('+33622222222');
    await page.getByLabel('first_name', { exact: true }).fill('Alexandre');
    await page.getByRole('button', { name: 'Check changes (dry run)' }).click();
    await expect.poll(() => page.locator('.dry-run li[data-field="phone"]').textContent()).toContain('applies');
    await expect.poll(() => page.locator('.dry-run li[data-field="first_name"]').textContent()).toContain('waits for a compliance officer');
    expect((await owner.get(`/v1/users/${id}`)).json().phone).toBe('+33611111111'); // a dry run changes nothing
    // Meanwhile, the platform changes the occupation through the API: the edit is now stale.
    expect((await owner.patch(`/v1/users/${id}`, { occupation: 'chef' }, { 'content-type': 'application/merge-patch+json' })).statusCode).toBe(200);
    await page.getByRole('button', { name: /^Apply/ }).click();
    await expect.poll(() => page.getByRole('alert').allTextContents()).toContainEqual(expect.stringContaining('“baker” → “chef”'));
    expect((await owner.get(`/v1/users/${id}`)).json()).toMatchObject({ phone: '+33611111111', occupation: 'chef' });

    await page.reload();
    await page.getByRole('button', { name: 'Edit' }).click();
    await page.getByLabel('phone', { exact: true }).fill('+33633333333');
    await page.getByRole('button', { name: 'Check changes (dry run)' }).click();
    await page.getByRole('button', { name: /^Apply/ }).click();
    await expect.poll(() => page.getByRole('row', { name: /^phone/ }).textContent()).toContain('+33633333333');
    const row = await ctx.db.selectFrom('audit_entries').select(['action', 'changed_fields', 'actor_key_id']).where('tenant_id', '=', tenantId).where('user_id', '=', id).where('action', '=', 'user.updated').orderBy('seq', 'desc').executeTakeFirstOrThrow();
    expect(row).toMatchObject({ changed_fields: ['phone'], actor_key_id: officer.id });
    await page.close();
  });

  it('the timeline shows a PATCH made through the API meanwhile', async () => {
    const id = await verifiedUser();
    const page = await browser.newPage();
    await signIn(page, base, admin.key, `/console/users/${id}`);
    const timeline = page.locator('section[aria-labelledby="timeline-title"]');
    await timeline.locator('li[data-source="audit"]').first().waitFor();
    expect(await timeline.getByText('user.updated').count()).toBe(0);
    expect((await owner.patch(`/v1/users/${id}`, { occupation: 'pilot' }, { 'content-type': 'application/merge-patch+json' })).statusCode).toBe(200);
    await timeline.getByRole('button', { name: 'Refresh' }).click();
    await expect.poll(() => timeline.locator('li[data-source="audit"]').first().textContent()).toContain('user.updated');
    expect(await timeline.locator('li[data-source="event"]', { hasText: 'user.updated' }).textContent()).toContain('occupation');
    await timeline.getByLabel('Show').selectOption('status');
    expect(await timeline.getByText('user.updated').count()).toBe(0);
    await expectAccessible(page, 'user with timeline');
    await page.close();
  });

  it('an ADMIN sets and clears a legal hold, then closes a user at the user’s request', async () => {
    const id = await verifiedUser();
    const page = await browser.newPage();
    await signIn(page, base, admin.key, `/console/users/${id}`);
    const dialog = page.getByRole('dialog');
    await page.getByRole('button', { name: 'Set legal hold' }).click();
    await dialog.getByLabel('Reason (required)').fill('litigation hold, case 2026-118');
    await dialog.getByRole('button', { name: 'Confirm: set legal hold' }).click();
    await dialog.getByRole('button', { name: 'Close' }).click();
    await page.getByRole('button', { name: 'Clear legal hold' }).waitFor();
    expect((await owner.get(`/v1/users/${id}`)).json().legal_hold).toBe(true);
    await page.getByRole('button', { name: 'Clear legal hold' }).click();
    await dialog.getByRole('button', { name: 'Confirm: clear legal hold' }).click();
    await dialog.getByRole('button', { name: 'Close' }).click();
    expect((await owner.get(`/v1/users/${id}`)).json().legal_hold).toBe(false);

    await page.getByRole('button', { name: 'Close', exact: true }).click();
    await dialog.getByLabel('Reason code').selectOption('user_request');
    await dialog.getByLabel('the user').check();
    await dialog.getByRole('button', { name: 'Confirm: close' }).click();
    await expect.poll(() => dialog.getByTestId('capabilities-after').textContent()).toContain('deposits: denied (account closed)');
    await dialog.getByRole('button', { name: 'Close' }).click();
    const change = await ctx.db.selectFrom('status_changes').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).executeTakeFirstOrThrow();
    expect(change).toMatchObject({ to_status: 'closed', reason: 'user_request', origin: 'user', actor_key_id: admin.id });
    expect(await page.getByRole('heading', { name: 'Actions', exact: true }).count()).toBe(1); // erasure is still possible
    expect(await page.getByRole('button', { name: 'Edit' }).count()).toBe(0);
    await page.close();
  });

  it('works from the keyboard alone, with a visible focus ring', async () => {
    const id = await verifiedUser({ first_name: 'Keyboard', last_name: 'Only' });
    const page = await browser.newPage();
    await signIn(page, base, officer.key, `/console/users?q=Keyboard`);
    const link = page.getByRole('link', { name: 'Keyboard Only' });
    await link.waitFor();
    for (let i = 0; i < 40 && !(await link.evaluate((el) => el === document.activeElement)); i++) await page.keyboard.press('Tab');
    expect(await link.evaluate((el) => el === document.activeElement)).toBe(true);
    expect(await link.evaluate((el) => getComputedStyle(el).outlineStyle)).not.toBe('none');
    await page.keyboard.press('Enter');
    await page.waitForURL(`**/console/users/${id}`);
    await page.getByRole('button', { name: 'Flag', exact: true }).focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate(() => document.activeElement?.closest('dialog') !== null)).toBe(true);
    await page.keyboard.press('Escape');
    await expect.poll(() => page.getByRole('dialog').count()).toBe(0);
    await page.close();
  });

  it('sends no request to another origin and reports no CSP violation on any page visited', () => {
    expect(browser.foreign).toEqual([]);
    expect(browser.cspViolations).toEqual([]);
  });

  it(`keeps the console’s JavaScript within ${BUDGET_GZIP_BYTES / 1024} KB gzipped`, () => {
    const size = bundleSize(path.join(ROOT, 'console/dist'));
    console.log(`console e2e: bundle JavaScript ${(size.js.gzip / 1024).toFixed(1)} KB gzipped (${(size.js.raw / 1024).toFixed(1)} KB raw), CSS ${(size.css.gzip / 1024).toFixed(1)} KB gzipped`);
    expect(size.js.gzip).toBeLessThanOrEqual(BUDGET_GZIP_BYTES);
  });
});
