// `npm start` rebuilds only when the sources changed after the last successful build.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIsStale, consoleIsStale, markBuilt, markConsoleBuilt } from '../bin/build-if-stale.mjs';

let root: string;
const later = (ms: number) => new Date(Date.now() + ms);

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'kyclo-build-'));
  await fs.mkdir(path.join(root, 'src/cli'), { recursive: true });
  await fs.writeFile(path.join(root, 'src/cli/main.ts'), 'export {};\n');
  await fs.writeFile(path.join(root, 'tsconfig.json'), '{}\n');
});
afterAll(() => fs.rm(root, { recursive: true, force: true }));

describe('npm start’s build check', () => {
  it('builds when there is no build, and not again until a source or the configuration changes', async () => {
    expect(buildIsStale(root)).toBe(true);
    markBuilt(root);
    expect(buildIsStale(root)).toBe(false);
    const source = path.join(root, 'src/cli/main.ts');
    await fs.utimes(source, later(5_000), later(5_000));
    expect(buildIsStale(root)).toBe(true);
    markBuilt(root);
    await fs.utimes(path.join(root, 'dist/.build-stamp'), later(10_000), later(10_000));
    expect(buildIsStale(root)).toBe(false);
    await fs.utimes(path.join(root, 'tsconfig.json'), later(20_000), later(20_000));
    expect(buildIsStale(root)).toBe(true);
  });

  it('counts a new file in a nested source folder', async () => {
    markBuilt(root);
    await fs.utimes(path.join(root, 'dist/.build-stamp'), later(30_000), later(30_000));
    expect(buildIsStale(root)).toBe(false);
    const added = path.join(root, 'src/cli/extra.ts');
    await fs.writeFile(added, 'export {};\n');
    await fs.utimes(added, later(40_000), later(40_000));
    expect(buildIsStale(root)).toBe(true);
  });

  it('rebuilds the console when its sources or the typed client it compiles in change, not when the server’s do', async () => {
    await fs.mkdir(path.join(root, 'console/src'), { recursive: true });
    await fs.mkdir(path.join(root, 'clients/typescript/src'), { recursive: true });
    await fs.writeFile(path.join(root, 'console/src/App.tsx'), 'export {};\n');
    await fs.writeFile(path.join(root, 'clients/typescript/src/index.ts'), 'export {};\n');
    expect(consoleIsStale(root)).toBe(true);
    markConsoleBuilt(root);
    await fs.utimes(path.join(root, 'console/dist/.build-stamp'), later(50_000), later(50_000));
    expect(consoleIsStale(root)).toBe(false);
    await fs.utimes(path.join(root, 'src/cli/main.ts'), later(60_000), later(60_000));
    expect(consoleIsStale(root)).toBe(false);
    await fs.utimes(path.join(root, 'clients/typescript/src/index.ts'), later(70_000), later(70_000));
    expect(consoleIsStale(root)).toBe(true);
    markConsoleBuilt(root);
    await fs.utimes(path.join(root, 'console/dist/.build-stamp'), later(80_000), later(80_000));
    await fs.utimes(path.join(root, 'console/src/App.tsx'), later(90_000), later(90_000));
    expect(consoleIsStale(root)).toBe(true);
  });
});
