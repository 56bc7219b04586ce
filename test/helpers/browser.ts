// A real browser for the console's end-to-end tests: Debian's chromium driven by playwright-core,
// headless, with an empty profile and the flags a closed network needs (no background traffic to
// Google services, no QUIC probes). Every request the pages make is recorded: one to another origin,
// or a Content-Security-Policy violation, fails the test that caused it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { client, createTenant, createTestContext, type Client, type TestContext } from './app.js';
import { consoleIsStale } from '../../bin/build-if-stale.mjs';

export const CHROMIUM = '/usr/bin/chromium';
export const hasChromium = fs.existsSync(CHROMIUM);

const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ConsoleApp {
  ctx: TestContext;
  /** The origin the app listens on: http://127.0.0.1:<port>. */
  base: string;
  tenantId: string;
  ownerKey: string;
  owner: Client;
}

/**
 * What every browser test starts from: the console built (test/helpers/global-setup.ts builds it),
 * the app on this file's own database listening on a free port, and a tenant with its OWNER key.
 */
export async function startConsoleApp(): Promise<ConsoleApp> {
  if (consoleIsStale(ROOT)) throw new Error('console/dist is not built or is stale (test/helpers/global-setup.ts builds it)');
  const ctx = await createTestContext();
  await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  const addr = ctx.app.server.address();
  const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  const { tenantId, ownerKey } = await createTenant(ctx.db);
  return { ctx, base, tenantId, ownerKey, owner: client(ctx.app, ownerKey) };
}

export interface Browser {
  context: BrowserContext;
  /** Requests to anything but the server under test (data: and blob: URLs are the page's own). */
  foreign: string[];
  /** Content-Security-Policy violations the pages reported. */
  cspViolations: string[];
  newPage(viewport?: { width: number; height: number }): Promise<Page>;
  close(): Promise<void>;
}

export async function launchBrowser(base: string): Promise<Browser> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'kyclo-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 800 }, timeout: 60_000,
  });
  const foreign: string[] = [];
  const cspViolations: string[] = [];
  context.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(base + '/') && !url.startsWith('data:') && !url.startsWith('blob:')) foreign.push(url);
  });
  const watch = (page: Page) => {
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
  };
  context.pages().forEach(watch);
  context.on('page', watch);
  return {
    context,
    foreign,
    cspViolations,
    async newPage(viewport) {
      const page = await context.newPage();
      if (viewport) await page.setViewportSize(viewport);
      page.setDefaultTimeout(15_000);
      return page;
    },
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Opens the console and signs in with `key`; resolves once the shell shows the key's role. */
export async function signIn(page: Page, base: string, key: string, at = '/console/users'): Promise<void> {
  await page.goto(base + at);
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
}

const AXE_SOURCE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

/**
 * axe-core's violations on the page as it is now. The script is evaluated through the DevTools
 * protocol, which the page's CSP does not govern (an injected <script> would be refused).
 */
export async function axe(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(AXE_SOURCE);
  return page.evaluate(async () => {
    const run = (window as unknown as { axe: { run(ctx: Document, o: object): Promise<{ violations: Array<{ id: string; impact: string | null; help: string; nodes: Array<{ target: string[] }> }> }> } }).axe;
    const r = await run.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
  });
}

export const serious = (v: AxeViolation[]) => v.filter((x) => x.impact === 'serious' || x.impact === 'critical');
