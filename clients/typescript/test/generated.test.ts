// The committed types are what openapi-typescript makes of the document the server builds now: a
// route or schema change without `npm run generate:client` fails here.
import fs from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { generated, SCHEMA_FILE } from '../scripts/generate.js';

describe('the generated client types', () => {
  it('match the current OpenAPI document (run `npm run generate:client` when this fails)', async () => {
    const committed = await fs.readFile(SCHEMA_FILE, 'utf8');
    expect(committed === (await generated()), 'clients/typescript/src/schema.ts is stale: run npm run generate:client').toBe(true);
  }, 60_000);
});
