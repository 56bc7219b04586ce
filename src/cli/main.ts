// kyclo: the command line. Commands call the same services as the HTTP routes.
import { Command, Option } from 'commander';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { connect, migrate, type Connected } from '../db/connect.js';
import { serve, work } from '../main.js';
import { createTenantsService } from '../modules/tenants/tenants.service.js';
import { createApiKeysService } from '../modules/api-keys/api-keys.service.js';
import { cliActor } from '../modules/audit/actor.js';
import { ROLES, type Role } from '../modules/api-keys/roles.js';
import * as keysRepo from '../modules/api-keys/api-keys.repo.js';
import { AppError } from '../http/errors.js';
import { createErasureService } from '../modules/erasure/erasure.service.js';
import { sealAuditLog, verifyAuditLog } from '../modules/audit/chain.js';
import { createLifecycleService } from '../modules/lifecycle/lifecycle.service.js';
import { defaultBlobStore } from '../storage/blob-store.js';

const print = (line: string) => process.stdout.write(line + '\n');

function config(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kyclo: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

/** Runs `fn` against the migrated database; the CLI shares a running server's embedded PostgreSQL. */
async function withDb<T>(fn: (conn: Connected) => Promise<T>): Promise<T> {
  const conn = await connect(config(), () => undefined, { owner: false });
  try {
    await migrate(conn.db);
    return await fn(conn);
  } finally {
    await conn.close();
  }
}

async function requireTenant(conn: Connected, id: string) {
  const tenant = await createTenantsService({ db: conn.db }).get(id);
  if (!tenant) throw new AppError(404, 'tenant.not_found', `No tenant ${id} exists.`);
  return tenant;
}

export function buildCli(): Command {
  const program = new Command('kyclo').description('Kyclo: the user lifecycle service').showHelpAfterError();

  program.command('serve').description('serve the HTTP API (embedded PostgreSQL unless DATABASE_URL is set)').action(async () => {
    await serve(config());
  });

  program.command('worker').description('run the background work alone: webhook delivery, audit sealing, retention').action(async () => {
    await work(config());
  });

  program.command('migrate').description('apply pending database migrations').action(async () => {
    await withDb(async (conn) => {
      const applied = await migrate(conn.db);
      print(applied.length ? `applied: ${applied.join(', ')}` : 'the database is up to date');
    });
  });

  const tenants = program.command('tenants').description('manage tenants');
  tenants
    .command('create <name>')
    .description('create a tenant and its OWNER key (shown once)')
    .option('--json', 'print one JSON object {"tenant_id","api_key"} and nothing else')
    .action(async (name: string, opts: { json?: boolean }) => {
      await withDb(async (conn) => {
        const { tenant, key } = await createTenantsService({ db: conn.db }).create(name);
        if (opts.json) print(JSON.stringify({ tenant_id: tenant.id, api_key: key.key }));
        else print(`tenant ${tenant.name} created: ${tenant.id}\nOWNER key (shown once): ${key.key}`);
      });
    });

  const keys = program.command('keys').description('manage API keys');
  keys
    .command('create')
    .description('create an API key (shown once)')
    .requiredOption('--tenant <id>', 'tenant id')
    .addOption(new Option('--role <role>', 'role').choices([...ROLES]).makeOptionMandatory())
    .option('--name <name>', 'a name to recognise the key by', 'created with the CLI')
    .option('--json', 'print one JSON object {"tenant_id","api_key","key_id"} and nothing else')
    .action(async (opts: { tenant: string; role: Role; name: string; json?: boolean }) => {
      await withDb(async (conn) => {
        await requireTenant(conn, opts.tenant);
        const key = await createApiKeysService({ db: conn.db }).create(cliActor(opts.tenant), { role: opts.role, name: opts.name });
        if (opts.json) print(JSON.stringify({ tenant_id: opts.tenant, api_key: key.key, key_id: key.id }));
        else print(`${opts.role} key ${key.id} created (shown once): ${key.key}`);
      });
    });
  keys
    .command('list')
    .description("list a tenant's API keys")
    .requiredOption('--tenant <id>', 'tenant id')
    .option('--json', 'print JSON')
    .action(async (opts: { tenant: string; json?: boolean }) => {
      await withDb(async (conn) => {
        await requireTenant(conn, opts.tenant);
        const service = createApiKeysService({ db: conn.db });
        const all = [];
        let cursor: string | undefined;
        do {
          const page = await service.list(cliActor(opts.tenant), { limit: 200, cursor });
          all.push(...page.data);
          cursor = page.next_cursor ?? undefined;
        } while (cursor);
        if (opts.json) return print(JSON.stringify(all));
        for (const k of all) {
          const state = k.revoked_at ? `revoked ${k.revoked_at}` : k.expires_at ? `expires ${k.expires_at}` : 'active';
          print(`${k.id}  ${k.role.padEnd(18)} ${k.prefix}…  ${state}  ${k.name}`);
        }
      });
    });
  keys
    .command('revoke <keyId>')
    .description('revoke an API key')
    .action(async (keyId: string) => {
      await withDb(async (conn) => {
        const found = await keysRepo.findById(conn.db, keyId);
        if (!found) throw new AppError(404, 'api_key.not_found', `No API key ${keyId} exists.`);
        const key = await createApiKeysService({ db: conn.db }).revoke(cliActor(found.tenant_id), keyId);
        print(`${key.id} revoked at ${key.revoked_at}`);
      });
    });
  const audit = program.command('audit').description('the tamper-evident audit log');
  audit
    .command('verify')
    .description('walk each tenant’s hash chain; print OK or the first broken sequence number (exit 1)')
    .option('--tenant <id>', 'only this tenant')
    .action(async (opts: { tenant?: string }) => {
      await withDb(async (conn) => {
        if (opts.tenant) await requireTenant(conn, opts.tenant);
        const results = await verifyAuditLog(conn.db, opts.tenant);
        for (const r of results) {
          const counts = `${r.sealed} sealed, ${r.pending} not sealed yet`;
          print(r.ok ? `OK ${r.tenantId}: ${counts}` : `BROKEN ${r.tenantId} at sequence ${r.brokenAt}: ${r.reason} (${counts})`);
        }
        if (results.some((r) => !r.ok)) process.exitCode = 1;
      });
    });
  audit
    .command('seal')
    .description('chain every entry not sealed yet (the server and the worker do this every second)')
    .action(async () => {
      await withDb(async (conn) => print(`sealed ${await sealAuditLog(conn.db)} entries`));
    });

  program
    .command('retention')
    .description('retention of erased users')
    .command('run')
    .description('destroy the personal data of every user whose erasure is due and not on legal hold')
    .option('--json', 'print {"erased": [ids]}')
    .action(async (opts: { json?: boolean }) => {
      await withDb(async (conn) => {
        const erasure = createErasureService({ db: conn.db, lifecycle: createLifecycleService({ db: conn.db }), blobs: defaultBlobStore(config().dataDir) });
        const { erased } = await erasure.sweep();
        print(opts.json ? JSON.stringify({ erased }) : `erased ${erased.length} user(s)${erased.length ? `: ${erased.join(', ')}` : ''}`);
      });
    });
  return program;
}

buildCli()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`kyclo: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof AppError ? 2 : 1);
  });
