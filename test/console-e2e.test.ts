// The operator console in a real browser (Debian's chromium through playwright-core) against the real
// app listening on a port, on this file's own PostgreSQL database. Each scenario checks what the
// operator sees and what the database holds afterwards; axe-core checks each page it visits.
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, type Client, type TestContext } from './helpers/app.js';
import { business, individual } from './helpers/factories.js';
import { axe, hasChromium, launchBrowser, ROOT, serious, signIn, startConsoleApp, type Browser } from './helpers/browser.js';
import { bundleSize, BUDGET_GZIP_BYTES } from '../console/scripts/bundle-size.mjs';

if (!hasChromium) console.warn('console e2e: SKIPPED — /usr/bin/chromium is missing (apt-get install -y chromium; .ci/run installs it)');

describe.skipIf(!hasChromium)('the operator console in chromium', () => {
  let ctx: TestContext;
  let base: string;
  let browser: Browser;
  let owner: Client;
  let tenantId: string;
  let officer: { key: string; id: string };
  let admin: { key: string; id: string };
  let reader: { key: string; id: string };
  const axeResults: Record<string, number> = {};

  beforeAll(async () => {
    ({ ctx, base, tenantId, owner } = await startConsoleApp());
    officer = await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER');
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
    for (const name of ['Flag', 'Suspend', 'Block', 'Close', 'Edit', 'Request erasure', 'Set risk', 'Add required action']) expect(await page.getByRole('button', { name, exact: true }).count(), name).toBe(0);
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

  it('edits a business’s monthly_transactions: the form sends it as the number the API takes', async () => {
    const res = await owner.post('/v1/users', business({ monthly_transactions: 1200 }));
    expect(res.statusCode, res.body).toBe(201);
    const id: string = res.json().id;
    const page = await browser.newPage();
    await signIn(page, base, officer.key, `/console/users/${id}`);
    await page.getByRole('button', { name: 'Edit' }).click();
    await page.getByLabel('monthly_transactions', { exact: true }).fill('2500');
    await page.getByRole('button', { name: 'Check changes (dry run)' }).click();
    // What the dry run said, or the problem the server answered instead (a string "2500" is a 400).
    const said = async () => [...(await page.locator('.dry-run li[data-field="monthly_transactions"]').allTextContents()), ...(await page.getByRole('alert').allTextContents())].join(' | ');
    await expect.poll(said, { timeout: 5000 }).toContain('applies');
    await page.getByRole('button', { name: /^Apply/ }).click();
    await expect.poll(() => page.getByRole('row', { name: /^monthly_transactions/ }).allTextContents(), { timeout: 5000 }).toEqual([expect.stringContaining('2500')]);
    expect((await owner.get(`/v1/users/${id}`)).json().monthly_transactions).toBe(2500);
    await page.close();
  });

  it('keeps the key when /v1/me answers 429 or 503 on reload, and forgets it only when the key is refused (401)', async () => {
    const page = await browser.newPage();
    await signIn(page, base, officer.key, '/console/users');
    const stored = () => page.evaluate(() => sessionStorage.getItem('kyclo.console.key'));
    const answer = (status: number) => page.route('**/v1/me', (r) => r.fulfill({
      status, contentType: 'application/problem+json', headers: status === 429 ? { 'retry-after': '1' } : {},
      body: JSON.stringify({ type: 'about:blank', title: `HTTP ${status}`, status, detail: `answered ${status} by the test`, code: `test.${status}`, request_id: 'req_test' }),
    }));
    for (const status of [429, 503]) {
      await answer(status);
      await page.reload();
      await page.getByRole('alert').or(page.getByLabel('API key')).first().waitFor();
      expect((await stored()) === officer.key ? 'kept' : 'forgotten', `the key after a ${status}`).toBe('kept');
      expect(await page.getByLabel('API key').count(), 'the sign-in form').toBe(0);
      expect(await page.getByRole('alert').textContent()).toContain(`answered ${status} by the test`);
      if (status === 503) await expectAccessible(page, 'session not resumed');
      await page.unroute('**/v1/me');
    }
    await page.getByRole('button', { name: 'Try again' }).click();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    await answer(401);
    await page.reload();
    await page.getByLabel('API key').waitFor();
    expect(await stored()).toBeNull();
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
    // The page reloads the closed user after the dialog closes: wait for that render, not the first look.
    await expect.poll(() => page.getByRole('button', { name: 'Edit' }).count()).toBe(0);
    await page.close();
  });

  it('an officer sets a user’s risk to high, and the users list filtered by risk=high shows that user', async () => {
    const last = `Riskworth${Date.now()}`;
    const id = await verifiedUser({ first_name: 'Rhea', last_name: last });
    await verifiedUser({ first_name: 'Unrated', last_name: last });
    const page = await browser.newPage();
    await signIn(page, base, officer.key, `/console/users/${id}`);
    const risk = page.locator('section[aria-labelledby="risk-title"]');
    await risk.getByText('Not assessed yet (unrated).').waitFor();
    await risk.getByRole('button', { name: 'Set risk' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Rating').selectOption('high');
    await dialog.getByLabel('Risk status').selectOption('pending');
    await dialog.getByLabel('Reason (required)').fill('adverse media: director named in a fraud inquiry');
    await expectAccessible(page, 'risk dialog');
    await dialog.getByRole('button', { name: 'Confirm: set risk' }).click();
    // High is a rating, not a ban: the dialog confirms what the user may still do.
    await expect.poll(() => dialog.getByTestId('capabilities-after').textContent()).toContain('deposits: allowed');
    await dialog.getByRole('button', { name: 'Close' }).click();
    await expect.poll(() => risk.getByTestId('risk-current').getAttribute('data-rating')).toBe('high');
    await expect.poll(() => risk.locator('ol.history li').first().textContent()).toContain('adverse media');
    const row = await ctx.db.selectFrom('users').select('risk').where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirstOrThrow();
    expect(row.risk).toMatchObject({ rating: 'high', status: 'pending', set_by: { key_id: officer.id, role: 'COMPLIANCE_OFFICER' } });
    const change = await ctx.db.selectFrom('risk_changes').selectAll().where('tenant_id', '=', tenantId).where('user_id', '=', id).executeTakeFirstOrThrow();
    expect(change).toMatchObject({ from_rating: null, to_rating: 'high', to_status: 'pending', actor_key_id: officer.id });
    await expectAccessible(page, 'user with risk');

    // The users list, filtered by risk from its form: the filter is kept in the URL.
    await page.getByRole('link', { name: 'Users', exact: true }).first().click();
    await page.getByLabel('Search', { exact: true }).fill(last);
    await page.getByLabel('Risk', { exact: true }).selectOption('high');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.waitForURL(/risk=high/);
    const rows = page.locator('table.dense tbody tr');
    await expect.poll(() => rows.allTextContents()).toEqual([expect.stringContaining(`Rhea ${last}`)]);
    expect(await rows.first().locator('.badge-risk_high').count()).toBe(1);
    await expectAccessible(page, 'users filtered by risk');
    // The same URL opened afresh, and unrated: the other user, never assessed.
    await page.goto(`${base}/console/users?q=${last}&risk=unrated`);
    await expect.poll(() => rows.allTextContents()).toEqual([expect.stringContaining(`Unrated ${last}`)]);
    expect(await page.getByLabel('Risk', { exact: true }).inputValue()).toBe('unrated');
    await page.close();
  });

  it('an officer asks for a field and a document: the field arriving through the API fulfils one, the other is cancelled', async () => {
    const id = await verifiedUser();
    const page = await browser.newPage();
    await signIn(page, base, officer.key, `/console/users/${id}`);
    const section = page.locator('section[aria-labelledby="required-actions-title"]');
    await section.getByText('Nothing is asked of this user.').waitFor();
    const dialog = page.getByRole('dialog');
    const add = async (fill: () => Promise<void>) => {
      await section.getByRole('button', { name: 'Add required action' }).click();
      await fill();
      await dialog.getByRole('button', { name: 'Confirm: add required action' }).click();
      await dialog.getByTestId('capabilities-after').waitFor();
      await dialog.getByRole('button', { name: 'Close' }).click();
    };
    await add(async () => {
      await dialog.getByLabel('What is asked').selectOption('provide_field');
      await dialog.getByLabel(/^Field/).fill('occupation');
      await dialog.getByLabel('Message to the user').fill('Please tell us your occupation');
      await expectAccessible(page, 'required action dialog');
    });
    await add(async () => {
      await dialog.getByLabel('What is asked').selectOption('provide_document');
      await dialog.getByLabel('Document type').selectOption('proof_of_address');
    });
    const items = section.locator('li[data-action-id]');
    await expect.poll(() => items.evaluateAll((els) => els.map((e) => e.getAttribute('data-status')))).toEqual(['open', 'open']);
    const stored = async () =>
      ((await ctx.db.selectFrom('users').select('required_actions').where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirstOrThrow()).required_actions as Array<{ field: string | null; document_type: string | null; status: string }>)
        .map((a) => `${a.field ?? a.document_type}=${a.status}`);
    expect(await stored()).toEqual(['occupation=open', 'proof_of_address=open']);

    // The platform sends the occupation through the API: the action is fulfilled there, not here.
    expect((await owner.patch(`/v1/users/${id}`, { occupation: 'nurse' }, { 'content-type': 'application/merge-patch+json' })).statusCode).toBe(200);
    await page.reload();
    const field = section.locator('li[data-action-id]', { hasText: 'provide field: occupation' });
    await expect.poll(() => field.getAttribute('data-status')).toBe('fulfilled');
    expect(await field.getByRole('button', { name: /Cancel/ }).count()).toBe(0);

    const doc = section.locator('li[data-action-id]', { hasText: 'proof of address' });
    await doc.getByRole('button', { name: /Cancel the required action/ }).click();
    await dialog.getByRole('button', { name: 'Confirm: cancel required action' }).click();
    await dialog.getByRole('button', { name: 'Close' }).click();
    await expect.poll(() => doc.getAttribute('data-status')).toBe('cancelled');
    expect(await stored()).toEqual(['occupation=fulfilled', 'proof_of_address=cancelled']);
    const audit = await ctx.db.selectFrom('audit_entries').select(['action', 'actor_key_id']).where('tenant_id', '=', tenantId).where('user_id', '=', id)
      .where('action', 'in', ['user.required_action_added', 'user.required_action_cancelled']).orderBy('seq').execute();
    expect(audit).toEqual([
      { action: 'user.required_action_added', actor_key_id: officer.id },
      { action: 'user.required_action_added', actor_key_id: officer.id },
      { action: 'user.required_action_cancelled', actor_key_id: officer.id },
    ]);
    await expectAccessible(page, 'user with required actions');
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
