// Every test file: a response that breaks the OpenAPI contract (test/helpers/contract.ts) fails the
// test that received it. KYCLO_CONTRACT_LOG names a file where each test file appends its counts.
import fs from 'node:fs';
import { afterAll, afterEach, expect } from 'vitest';
import { contractStats } from './contract.js';

function takeMismatches(): string[] {
  return contractStats.mismatches.splice(0, contractStats.mismatches.length);
}

afterEach(() => {
  const found = takeMismatches();
  expect(found, 'responses that break the OpenAPI document').toEqual([]);
});

afterAll(() => {
  const found = takeMismatches();
  const log = process.env.KYCLO_CONTRACT_LOG;
  if (log) fs.appendFileSync(log, JSON.stringify({ file: expect.getState().testPath, checked: contractStats.checked, bodies: contractStats.bodies, late: found.length }) + '\n');
  if (found.length) throw new Error(`responses that break the OpenAPI document:\n${found.join('\n')}`);
});
