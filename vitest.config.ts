import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'clients/typescript/test/**/*.test.ts', ...(process.env.SCRATCH ? ['scratch/*.test.ts'] : [])],
    globalSetup: ['test/helpers/global-setup.ts'],
    // Every response a test receives is checked against the OpenAPI document (test/helpers/contract.ts).
    setupFiles: ['test/helpers/setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file gets its own database; two cores run two files at a time.
    pool: 'forks',
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
