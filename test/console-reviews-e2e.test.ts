// The console's review queue in chromium: approving and rejecting a held change are final, so each is
// confirmed in a dialog first; a rejection carries the reason the operator typed and no other (the
// console never makes one up), an approval carries the operator's note, if any (the API takes no
// reason for it). Each outcome is read back from the API, not from the page.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, createKey, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';
import { axe, hasChromium, launchBrowser, serious, signIn, startConsoleApp, type Browser } from './helpers/browser.js';

describe.skipIf(!hasChromium)('the console’s review queue in chromium', () => {
  let ctx: TestContext;
  let base: string;
  let browser: Browser;
  let owner: Client;
  let tenantId: string;
  let officer: { key: string; id: string };
  let officer2: { key: string; id: string };
  let admin: { key: string; id: string };

  beforeAll(async () => {
    ({ ctx, base, tenantId, owner } = await startConsoleApp());
    officer = await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER');
    officer2 = await createKey(ctx.db, tenantId, 'COMPLIANCE_OFFICER');
    admin = await createKey(ctx.db, tenantId, 'ADMIN');
    browser = await launchBrowser(base);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await ctx?.close();
  });

  /** A verified individual with an email change an ADMIN asked for, held for a second pair of eyes. */
  async function heldEmailChange(email: string) {
    const res = await owner.post('/v1/users', individual());
    expect(res.statusCode, res.body).toBe(201);
    const id: string = res.json().id;
    expect((await owner.post(`/v1/users/${id}/verifications`, { result: 'approved', provider: 'e2e' })).statusCode).toBe(201);
    const held = await client(ctx.app, admin.key).patch(`/v1/users/${id}`, { email }, { 'content-type': 'application/merge-patch+json' });
    expect(held.statusCode, held.body).toBe(200);
    expect(held.json().pending_changes).toEqual([expect.objectContaining({ fields: ['email'] })]);
    return { id, changeId: held.json().pending_changes[0].id as string };
  }

  const decision = async (changeId: string) => {
    const got = (await owner.get(`/v1/change-requests/${changeId}`)).json();
    return { status: got.status, decision_reason: got.decision_reason, decision_note: got.decision_note, decided_by: got.decided_by?.key_id ?? null };
  };
  const PENDING = { status: 'pending', decision_reason: null, decision_note: null, decided_by: null };

  /** Counts native alert/confirm prompts (none is expected: the console confirms in its own dialog). */
  const nativePrompts = (page: Page) => {
    const seen = { count: 0 };
    page.on('dialog', (d) => { seen.count++; void d.dismiss(); });
    return seen;
  };

  it('Reject needs a typed reason and a confirmation; the request is rejected with exactly that reason', async () => {
    const { id, changeId } = await heldEmailChange('rejected.address@example.com');
    const page = await browser.newPage();
    const prompts = nativePrompts(page);
    await signIn(page, base, officer.key, '/console/reviews');
    const card = page.locator('article', { hasText: id });
    await card.getByRole('cell', { name: 'rejected.address@example.com' }).waitFor();

    // One click, nothing typed: nothing is sent (no invented reason), the confirmation dialog opens.
    await card.getByRole('button', { name: 'Reject' }).click();
    await page.waitForTimeout(500);
    expect(await decision(changeId)).toEqual(PENDING);
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('heading', { name: /^Reject/ }).waitFor();
    const confirm = dialog.getByRole('button', { name: 'Confirm: reject' });
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.getByLabel('Reason (required)').fill('   ');
    expect(await confirm.isDisabled(), 'blanks are no reason').toBe(true);
    // Cancel: still pending, and the card is still there to decide later.
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => page.getByRole('dialog').count()).toBe(0);
    expect(await decision(changeId)).toEqual(PENDING);

    await card.getByRole('button', { name: 'Reject' }).click();
    const reason = 'the new address bounces: not the customer’s mailbox';
    await dialog.getByLabel('Reason (required)').fill(reason);
    await dialog.getByLabel('Note (optional)').fill('called the customer, ticket 4411');
    expect(await confirm.isDisabled()).toBe(false);
    expect(serious(await axe(page)), 'axe-core on the reject dialog').toEqual([]);
    await confirm.click();
    await expect.poll(() => page.locator('article', { hasText: id }).count()).toBe(0);
    expect(await decision(changeId)).toEqual({ status: 'rejected', decision_reason: reason, decision_note: 'called the customer, ticket 4411', decided_by: officer.id });
    expect((await owner.get(`/v1/users/${id}`)).json().email).not.toBe('rejected.address@example.com');
    expect(prompts.count).toBe(0);
    await page.close();
  });

  it('an officer approves a held email change after confirming, with a note and no reason; a second key sees it applied; the requester’s own key is told why it cannot', async () => {
    const { id, changeId } = await heldEmailChange('new.address@example.com');
    const own = (await owner.post('/v1/users', individual())).json().id as string;
    expect((await owner.post(`/v1/users/${own}/verifications`, { result: 'approved', provider: 'e2e' })).statusCode).toBe(201);
    expect((await client(ctx.app, officer.key).patch(`/v1/users/${own}`, { email: 'own.request@example.com' }, { 'content-type': 'application/merge-patch+json' })).statusCode).toBe(200);

    const page = await browser.newPage();
    await signIn(page, base, officer.key, '/console/reviews');
    const card = page.locator('article', { hasText: id });
    await card.getByRole('cell', { name: 'new.address@example.com' }).waitFor();
    const mine = page.locator('article', { hasText: own });
    await expect.poll(() => mine.getByRole('note').textContent()).toContain('four eyes');
    expect(await mine.getByRole('button', { name: 'Approve' }).count()).toBe(0);
    expect(serious(await axe(page)), 'axe-core on the review queue').toEqual([]);

    await card.getByRole('button', { name: 'Approve' }).click();
    await page.waitForTimeout(500);
    expect(await decision(changeId), 'Approve is final: one click only asks').toEqual(PENDING);
    const dialog = page.getByRole('dialog');
    expect(await dialog.getByLabel(/Reason/).count(), 'the API takes no reason for an approval').toBe(0);
    await dialog.getByLabel('Note (optional)').fill('matches the utility bill on file');
    await dialog.getByRole('button', { name: 'Confirm: approve' }).click();
    await expect.poll(() => page.locator('article', { hasText: id }).count()).toBe(0);
    expect(await decision(changeId)).toEqual({ status: 'approved', decision_reason: null, decision_note: 'matches the utility bill on file', decided_by: officer.id });

    const second = await browser.newPage();
    await signIn(second, base, officer2.key, `/console/users/${id}`);
    await expect.poll(() => second.getByRole('row', { name: /^email/ }).textContent()).toContain('new.address@example.com');
    await page.close();
    await second.close();
  });

  it('an approval with no note sends none (not an empty or invented one)', async () => {
    const { id, changeId } = await heldEmailChange('plain.approval@example.com');
    const page = await browser.newPage();
    await signIn(page, base, officer.key, '/console/reviews');
    const card = page.locator('article', { hasText: id });
    await card.getByRole('button', { name: 'Approve' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm: approve' }).click();
    await expect.poll(() => page.locator('article', { hasText: id }).count()).toBe(0);
    expect(await decision(changeId)).toEqual({ status: 'approved', decision_reason: null, decision_note: null, decided_by: officer.id });
    await page.close();
  });

  it('sends no request to another origin and reports no CSP violation', () => {
    expect(browser.foreign).toEqual([]);
    expect(browser.cspViolations).toEqual([]);
  });
});
