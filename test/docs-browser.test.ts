// The interactive docs (Swagger UI at /docs) run on the console's origin, where the console keeps its
// key in the tab's sessionStorage: they carry a Content-Security-Policy of their own (scripts and
// styles of this origin or by hash, never framed), and still render in chromium under it. Only /docs
// and what is under /docs/ are exempt from the API's `default-src 'none'`: not every path that
// merely starts with the letters.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, launchBrowser, startConsoleApp, type Browser } from './helpers/browser.js';
import type { TestContext } from './helpers/app.js';

let ctx: TestContext;
let base: string;
beforeAll(async () => ({ ctx, base } = await startConsoleApp()), 60_000);
afterAll(() => ctx?.close());

describe('the docs’ security headers', () => {
  it('the docs page and its assets carry their own policy, never framed; /docsx and the like get the API’s', async () => {
    for (const url of ['/docs/', '/docs/static/swagger-initializer.js']) {
      const res = await ctx.app.inject({ url });
      expect(res.statusCode, url).toBe(200);
      const csp = String(res.headers['content-security-policy']);
      expect(csp, url).toMatch(/default-src 'self'/);
      expect(csp, url).toMatch(/frame-ancestors 'none'/);
      expect(csp, url).not.toMatch(/upgrade-insecure-requests|validator\.swagger\.io/);
      expect(res.headers['x-frame-options'], url).toBe('DENY');
    }
    for (const url of ['/docsx', '/docs-old/x']) {
      const res = await ctx.app.inject({ url });
      expect(res.headers['content-security-policy'], url).toBe("default-src 'none'; frame-ancestors 'none'");
      expect(res.headers['cache-control'], url).toBe('no-store');
    }
  });
});

describe.skipIf(!hasChromium)('the docs in chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser(base);
  }, 120_000);
  afterAll(() => browser?.close());

  it('render the API under their policy: no violation reported, nothing fetched from elsewhere', async () => {
    const page = await browser.newPage();
    await page.goto(`${base}/docs/`);
    await page.locator('.swagger-ui .info .title').waitFor();
    expect(await page.locator('.swagger-ui .info .title').textContent()).toContain('Kyclo');
    await page.locator('.opblock').first().waitFor();
    expect(browser.cspViolations).toEqual([]);
    expect(browser.foreign).toEqual([]);
    await page.close();
  });
});
