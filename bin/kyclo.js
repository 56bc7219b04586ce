#!/usr/bin/env node
// The kyclo command: the compiled CLI (npm run build, or the first npm start). From a checkout that
// was never built, the TypeScript sources through tsx, a development dependency.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api').catch(() => {
    process.stderr.write('kyclo: no build found (dist/); run `npm run build` first.\n');
    process.exit(1);
  });
  register();
  await import('../src/cli/main.ts');
}
