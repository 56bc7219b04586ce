// kyclo: the command line. Commands call the same services as the HTTP routes. The server (main.js:
// Fastify, its plugins and every route) is loaded only by serve and worker: ≈ 0.2 s less for the others.
import { Command, Option } from 'commander';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { connect, migrate, type Connected } from '../db/connect.js';
import { cliActor } from '../modules/audit/actor.js';
import { ROLES, type Role } from '../modules/api-keys/roles.js';
import * as keysRepo from '../modules/api-keys/api-keys.repo.js';
import { AppError } from '../http/errors.js';
import { createReadStream, readFileSync } from 'node:fs';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { listCheckpoints, sealAuditLog } from '../modules/audit/chain.js';
import { DEFAULT_MAX_UNSEALED_AGE_SECONDS, keptCheckpoints, verifyAuditLog } from '../modules/audit/verify.js';
import { recordVerifications } from '../modules/audit/verification-record.js';
import { deriveAuditKeys, installAuditKeys, publicKeyFromBase64, type AuditKeys } from '../modules/audit/authentication.js';
import { resolveMasterKey } from '../crypto/master-key.js';
import { createKeyring } from '../crypto/keyring.js';
import { defaultBlobStore } from '../storage/blob-store.js';
import { createServices, type Services } from '../services.js';
import { exportCommand, importCommand } from './import-export.js';

const print = (line: string) => process.stdout.write(line + '\n');

/** The version in package.json, read next to the sources or the build (both sit two folders below it). */
function packageVersion(): string {
  const file = fileURLToPath(new URL('../../package.json', import.meta.url));
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/** The configuration, or exit `exitCode` (1; import and export say 2: they could not run) saying why. */
function config(exitCode = 1): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kyclo: ${err.message}\n`);
      process.exit(exitCode);
    }
    throw err;
  }
}

/** What a command runs with: the connection, the audit keys and the services, when the master key is at hand. */
interface CliContext {
  conn: Connected;
  audit: AuditKeys | null;
  /** The services of the composition root (services.ts); throws when the master key is missing. */
  services(): Services;
}

/**
 * Runs `fn` against the migrated database; the CLI shares a running server's embedded PostgreSQL.
 * With the master key at hand, the audit keys are installed so the commands that write (tenants,
 * keys) authenticate their audit entries, and the services are built as the server builds them;
 * without it those commands fail, and `migrate` still runs.
 */
async function withDb<T>(fn: (ctx: CliContext) => Promise<T>, configExitCode = 1): Promise<T> {
  const cfg = config(configExitCode);
  const conn = await connect(cfg, () => undefined, { owner: false });
  try {
    await migrate(conn.db);
    const master = await resolveMasterKey({ fromEnv: cfg.masterKey, embedded: conn.embedded, dataDir: cfg.dataDir }).catch(() => null);
    const audit = master ? deriveAuditKeys(master) : null;
    if (audit) installAuditKeys(audit);
    let built: Services | undefined;
    const services = (): Services => {
      if (!master) throw new AppError(400, 'config.no_master_key', 'This command needs the master key: set KYCLO_MASTER_KEY.');
      built ??= createServices({
        db: conn.db, keyring: createKeyring({ db: conn.db, masterKey: master }), blobs: defaultBlobStore(cfg.dataDir),
        webhookTargets: cfg.webhooks, documentMaxBytes: cfg.documentMaxBytes, exportThreads: { masterKey: master },
      });
      return built;
    };
    return await fn({ conn, audit, services });
  } finally {
    await conn.close();
  }
}

async function requireTenant(ctx: Pick<CliContext, 'services'>, id: string) {
  const tenant = await ctx.services().tenants.get(id);
  if (!tenant) throw new AppError(404, 'tenant.not_found', `No tenant ${id} exists.`);
  return tenant;
}

export function buildCli(): Command {
  const program = new Command('kyclo')
    .description('Kyclo: the user lifecycle service')
    .version(packageVersion(), '-V, --version', 'print the version')
    .showHelpAfterError();

  program.command('serve').description('serve the HTTP API (embedded PostgreSQL unless DATABASE_URL is set)').action(async () => {
    await (await import('../main.js')).serve(config());
  });

  program.command('worker').description('run the background work alone: webhook delivery, audit sealing, retention').action(async () => {
    await (await import('../main.js')).work(config());
  });

  program.command('migrate').description('apply pending database migrations').action(async () => {
    await withDb(async ({ conn }) => {
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
      await withDb(async (ctx) => {
        const { tenant, key } = await ctx.services().tenants.create(name);
        if (opts.json) print(JSON.stringify({ tenant_id: tenant.id, api_key: key.key }));
        else print(`tenant ${tenant.name} created: ${tenant.id}\nOWNER key (shown once): ${key.key}`);
      });
    });

  tenants
    .command('list')
    .description('list the tenants, oldest first')
    .option('--json', 'print one JSON array [{"id","name","created_at"}]')
    .action(async (opts: { json?: boolean }) => {
      await withDb(async (ctx) => {
        const all = (await ctx.services().tenants.list()).map((t) => ({ id: t.id, name: t.name, created_at: new Date(t.created_at).toISOString() }));
        if (opts.json) return print(JSON.stringify(all));
        if (all.length === 0) return print('no tenants yet: kyclo tenants create NAME');
        for (const t of all) print(`${t.id}  ${t.created_at}  ${t.name}`);
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
      await withDb(async (ctx) => {
        await requireTenant(ctx, opts.tenant);
        const key = await ctx.services().apiKeys.create(cliActor(opts.tenant), { role: opts.role, name: opts.name });
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
      await withDb(async (ctx) => {
        await requireTenant(ctx, opts.tenant);
        const service = ctx.services().apiKeys;
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
      await withDb(async ({ conn, services }) => {
        const found = await keysRepo.findById(conn.db, keyId);
        if (!found) throw new AppError(404, 'api_key.not_found', `No API key ${keyId} exists.`);
        const key = await services().apiKeys.revoke(cliActor(found.tenant_id), keyId);
        print(`${key.id} revoked at ${key.revoked_at}`);
      });
    });
  const audit = program.command('audit').description('the tamper-evident audit log');
  const needKeys = (keys: AuditKeys | null): AuditKeys => {
    if (!keys) throw new AppError(400, 'audit.no_master_key', 'The audit keys derive from the master key: set KYCLO_MASTER_KEY.');
    return keys;
  };
  audit
    .command('verify')
    .description('check each tenant’s chain, MACs, head, checkpoints and sealing backlog; print OK or BROKEN (exit 1)')
    .option('--tenant <id>', 'only this tenant')
    .option('--checkpoints <file>', 'checkpoints kept outside the database (NDJSON, as `audit checkpoints` or the audit.checkpoint webhook prints them)')
    .option('--max-unsealed-age <seconds>', 'entries left unsealed longer than this are BROKEN', String(DEFAULT_MAX_UNSEALED_AGE_SECONDS))
    .option('--public-key <base64>', 'check checkpoint signatures with this pinned key instead of the one derived from the master key')
    .action(async (opts: { tenant?: string; checkpoints?: string; maxUnsealedAge: string; publicKey?: string }) => {
      await withDb(async (ctx) => {
        const { conn } = ctx;
        const k = needKeys(ctx.audit);
        if (opts.tenant) await requireTenant(ctx, opts.tenant);
        const maxAge = Number(opts.maxUnsealedAge);
        if (!Number.isFinite(maxAge) || maxAge < 0) throw new AppError(400, 'request.validation_failed', '--max-unsealed-age takes a number of seconds.');
        const publicKey = opts.publicKey ? publicKeyFromBase64(opts.publicKey) : k.publicKey;
        // Streamed, twice: the file grows by a line per checkpoint, for years (verify.ts verifyAuditLog).
        const file = opts.checkpoints;
        const kept = file ? () => keptCheckpoints(readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity })) : undefined;
        let read = 0;
        const results = await verifyAuditLog(conn.db, {
          tenantId: opts.tenant, macKey: k.macKey, chainKey: k.chainKey, publicKey, kept, onKept: (n) => (read = n), maxUnsealedAgeSeconds: maxAge,
        });
        for (const r of results) {
          const counts = `${r.sealed} sealed, ${r.pending} not sealed yet, ${r.checkpoints} checkpoints`;
          if (r.ok) print(`OK ${r.tenantId}: ${counts}`);
          else print(`BROKEN ${r.tenantId}${r.brokenAt ? ` at sequence ${r.brokenAt}` : ''}${r.entryId ? ` (entry ${r.entryId})` : ''}: ${r.reason} (${counts})`);
        }
        if (file) print(`checked against ${read} kept checkpoint(s) from ${file}`);
        // Kept for GET /v1/audit/verification (the console's audit page), MACed with the master key.
        await recordVerifications(conn.db, k.macKey, results, read);
        if (results.some((r) => !r.ok)) process.exitCode = 1;
      });
    });
  audit
    .command('seal')
    .description('chain every entry not sealed yet and sign the new heads (the server and the worker do this every second)')
    .action(async () => {
      await withDb(async ({ conn, audit: keys }) => {
        needKeys(keys);
        const r = await sealAuditLog(conn.db);
        print(`sealed ${r.sealed} entries, ${r.checkpoints.length} checkpoint(s) signed, ${r.rejected} refused`);
        for (const f of r.failures) print(`FAILED ${f.tenantId}: ${f.error instanceof Error ? f.error.message : String(f.error)}`);
        if (r.failures.length) process.exitCode = 1;
      });
    });
  audit
    .command('checkpoints')
    .description('print the signed checkpoints as NDJSON, oldest first, for an auditor to keep')
    .option('--since <time>', 'only those signed at or after this RFC 3339 time')
    .option('--tenant <id>', 'only this tenant')
    .action(async (opts: { since?: string; tenant?: string }) => {
      await withDb(async ({ conn, audit: keys }) => {
        const k = needKeys(keys);
        if (opts.since && Number.isNaN(Date.parse(opts.since))) throw new AppError(400, 'request.validation_failed', '--since takes an RFC 3339 time.');
        let after: { signedAt: string; id: string } | undefined;
        for (;;) {
          const page = await listCheckpoints(conn.db, { tenantId: opts.tenant, since: opts.since, afterId: after, limit: 1000 });
          for (const c of page) print(JSON.stringify({ ...c, public_key: k.publicKeyBase64 }));
          if (page.length < 1000) break;
          after = { signedAt: page.at(-1)!.signed_at, id: page.at(-1)!.id };
        }
      });
    });
  audit
    .command('public-key')
    .description('print the Ed25519 public key that signs checkpoints (base64), for auditors to pin')
    .action(async () => {
      await withDb(async ({ audit: keys }) => {
        const k = needKeys(keys);
        print(`${k.publicKeyBase64}  ${k.keyId}`);
      });
    });

  program
    .command('retention')
    .description('retention of erased users')
    .command('run')
    .description('destroy the personal data of every user whose erasure is due and not on legal hold')
    .option('--json', 'print {"erased": [ids], "failed": [{user_id, error}]}')
    .action(async (opts: { json?: boolean }) => {
      await withDb(async ({ services }) => {
        const { erased, failed } = await services().erasure.sweep();
        print(opts.json ? JSON.stringify({ erased, failed }) : `erased ${erased.length} user(s)${erased.length ? `: ${erased.join(', ')}` : ''}`);
        if (failed.length) {
          if (!opts.json) for (const f of failed) process.stderr.write(`not erased: ${f.user_id}: ${f.error}\n`);
          process.exitCode = 1;
        }
      });
    });
  const runner = {
    withServices: <T>(fn: (services: Services) => Promise<T>) => withDb((ctx) => fn(ctx.services()), 2),
    requireTenant: (services: Services, id: string) => requireTenant({ services: () => services }, id),
  };
  importCommand(program, runner);
  exportCommand(program, runner);
  return program;
}

buildCli()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`kyclo: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof AppError ? 2 : 1);
  });
