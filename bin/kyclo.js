#!/usr/bin/env node
// The kyclo command: the compiled CLI (npm run build, or the first npm start). From a checkout that
// was never built, the TypeScript sources through tsx, a development dependency.
//
// Every command runs with the heap cap `npm start` gives the server (HEAP_FLAG). Without a cap V8
// sizes its first collections for a heap of several gigabytes, and a streaming import, whose live
// data is a few batches, let garbage pile up to 326 MB of RSS for a 1,000,000-row file; with it,
// 175 MB for the same file at the same speed (bench/README.md, "Import and export"). The flag must
// be given when node starts, so the command starts node again with it, unless the caller already
// chose a cap (on node's command line or in NODE_OPTIONS).
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const HEAP_FLAG = '--max-old-space-size=256';
const capped = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => a.includes('--max-old-space-size'));

if (!capped) {
  const child = spawn(process.execPath, [HEAP_FLAG, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  // A signal sent to this process alone reaches the command too. One from the terminal reaches both,
  // so the command may get it twice: the server's shutdown ignores the second, other commands stop
  // at the first.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
} else {
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
}
