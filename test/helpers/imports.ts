// Imports driven through the service, as `kyclo import` drives them: the tests that import need the
// services over the test context's database, and to open a job by the file's hash then stream it.
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { createServices, type Services } from '../../src/services.js';
import { cliActor } from '../../src/modules/audit/actor.js';
import type { Format } from '../../src/modules/imports/formats.js';
import type { ImportsService } from '../../src/modules/imports/imports.service.js';
import type { TestContext } from './app.js';

type RunHooks = NonNullable<Parameters<ImportsService['run']>[3]>;

/** The services over the test context's database, keyring and blob store. */
export const servicesFor = (ctx: TestContext): Services => createServices({ db: ctx.db, keyring: ctx.keyring, blobs: ctx.blobs });

export const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest('hex');

/** Opens an import of `text` (resuming a job of the same hash, as the CLI does) and runs it to the end. */
export async function importText(
  services: Services,
  tenantId: string,
  text: string,
  opts: { profile?: string; format?: Format; dryRun?: boolean; userEvents?: boolean } & RunHooks = {},
) {
  const actor = cliActor(tenantId);
  const { profile = 'kyclo', format = 'ndjson', dryRun, userEvents, onRows } = opts;
  const { job, resumed } = await services.imports.open(actor, { profile, format, sha256: sha256(text), dryRun, userEvents });
  const done = await services.imports.run(actor, job, Readable.from([Buffer.from(text)]), { onRows });
  return { actor, job: done, resumed };
}
