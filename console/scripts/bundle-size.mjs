#!/usr/bin/env node
// Prints the console's JavaScript and CSS sizes, raw and gzipped, and fails the build past the budget
// (issue 18: the JavaScript ≤ 250 KB gzipped). test/console-e2e.test.ts checks the same budget.
// The build also keeps a .gz and a .br beside each asset: the server sends them to browsers that
// accept them (@fastify/static's preCompressed), compressed once here rather than per request.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

export const BUDGET_GZIP_BYTES = 250 * 1024;

/** { js, css } in bytes, raw and gzipped, of console/dist/assets. */
export function bundleSize(dist) {
  const sizes = { js: { raw: 0, gzip: 0 }, css: { raw: 0, gzip: 0 } };
  const dir = path.join(dist, 'assets');
  for (const f of fs.readdirSync(dir)) {
    const kind = f.endsWith('.js') ? 'js' : f.endsWith('.css') ? 'css' : null;
    if (!kind) continue;
    const body = fs.readFileSync(path.join(dir, f));
    sizes[kind].raw += body.length;
    sizes[kind].gzip += zlib.gzipSync(body, { level: 9 }).length;
  }
  return sizes;
}

/** Writes <asset>.gz and <asset>.br beside each JavaScript and CSS file of console/dist/assets. */
export function precompress(dist) {
  const dir = path.join(dist, 'assets');
  for (const f of fs.readdirSync(dir)) {
    if (!f.endsWith('.js') && !f.endsWith('.css')) continue;
    const body = fs.readFileSync(path.join(dir, f));
    fs.writeFileSync(path.join(dir, `${f}.gz`), zlib.gzipSync(body, { level: 9 }));
    fs.writeFileSync(path.join(dir, `${f}.br`), zlib.brotliCompressSync(body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11 } }));
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const dist = path.join(path.dirname(path.dirname(fileURLToPath(import.meta.url))), 'dist');
  precompress(dist);
  const s = bundleSize(dist);
  const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
  process.stdout.write(`console bundle: JavaScript ${kb(s.js.raw)} (${kb(s.js.gzip)} gzipped, budget ${kb(BUDGET_GZIP_BYTES)}), CSS ${kb(s.css.raw)} (${kb(s.css.gzip)} gzipped)\n`);
  if (s.js.gzip > BUDGET_GZIP_BYTES) {
    process.stderr.write('console bundle: over the 250 KB gzipped budget\n');
    process.exit(1);
  }
}
