#!/usr/bin/env node
// `npm start` builds only when the build is missing or older than the sources: the compiled server
// starts in about a second instead of after a 20-second tsc run. Stale means: a file under src/,
// or the TypeScript or package configuration, changed after the last successful build. The
// operator console (console/, built by Vite) has its own stamp and inputs: the typed client's
// sources are among them, since the console compiles them in.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const STAMP = 'dist/.build-stamp';
const INPUTS = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json', 'package-lock.json'];
const CONSOLE_STAMP = 'console/dist/.build-stamp';
const CONSOLE_INPUTS = ['console/src', 'console/index.html', 'console/vite.config.ts', 'console/package.json', 'console/tsconfig.json', 'clients/typescript/src', 'package-lock.json'];

function newestMtime(p) {
  let stat;
  try {
    stat = fs.statSync(p);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs; // a deleted file changes its folder's mtime
  for (const e of fs.readdirSync(p)) newest = Math.max(newest, newestMtime(path.join(p, e)));
  return newest;
}

function isStale(root, stamp, inputs) {
  let built;
  try {
    built = fs.statSync(path.join(root, stamp)).mtimeMs;
  } catch {
    return true;
  }
  return inputs.some((i) => newestMtime(path.join(root, i)) > built);
}

function mark(root, stamp) {
  fs.mkdirSync(path.dirname(path.join(root, stamp)), { recursive: true });
  fs.writeFileSync(path.join(root, stamp), `${new Date().toISOString()}\n`);
}

/** @param {string} root @returns {boolean} */
export const buildIsStale = (root) => isStale(root, STAMP, INPUTS);
/** @param {string} root */
export const markBuilt = (root) => mark(root, STAMP);
/** @param {string} root @returns {boolean} */
export const consoleIsStale = (root) => isStale(root, CONSOLE_STAMP, CONSOLE_INPUTS);
/** @param {string} root */
export const markConsoleBuilt = (root) => mark(root, CONSOLE_STAMP);

/** Builds the console with Vite (and prints its bundle size); true when it succeeded. @param {string} root */
export function buildConsole(root) {
  const dir = path.join(root, 'console');
  const vite = path.join(path.dirname(createRequire(path.join(dir, 'package.json')).resolve('vite/package.json')), 'bin/vite.js');
  // NODE_ENV decides React's build: a test runner's 'test' would ship the development bundle.
  const env = { ...process.env, NODE_ENV: 'production' };
  const built = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'warn'], { cwd: dir, stdio: 'inherit', env });
  if (built.status !== 0) return false;
  const size = spawnSync(process.execPath, [path.join(dir, 'scripts/bundle-size.mjs')], { cwd: dir, stdio: 'inherit', env });
  if (size.status !== 0) return false;
  markConsoleBuilt(root);
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
  // `npm run build` marks its own successful build (the server's and the console's).
  if (process.argv.includes('--mark-built')) {
    markBuilt(root);
    markConsoleBuilt(root);
  } else {
    if (buildIsStale(root)) {
      process.stderr.write('kyclo: building (the sources changed since the last build)…\n');
      const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
      if (tsc.status !== 0) process.exit(tsc.status ?? 1);
      markBuilt(root);
    }
    // The API serves without the console: a failed console build is said, and the server still starts.
    if (consoleIsStale(root)) {
      process.stderr.write('kyclo: building the console (its sources changed since the last build)…\n');
      if (!buildConsole(root)) process.stderr.write('kyclo: the console did not build; /console answers 503 until it does\n');
    }
  }
}
