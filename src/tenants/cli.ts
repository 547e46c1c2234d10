import { parseArgs } from 'node:util';
import type { Config } from '../config';
import { runCli, type CliIo } from '../infra/cli';
import { createPrisma, type Db } from '../infra/prisma';
import { createGateRedis, waitReady } from '../infra/redis';
import { createLogger } from '../infra/logger';
import { makeEpoch } from '../infra/epoch';
import { isAppError } from '../errors';
import { makeAdminService, type AdminService } from './admin-service';
import { isUuid } from './tenant-store';

/**
 * The admin's tenant CLI, over the same AdminService as the GraphQL API (the same validation, audit records and
 * cross-instance epoch), so a new user gets a key without writing GraphQL:
 *
 *   npm run tenant -- create acme [--budget 25] [--rpm 60] [--tpm 100000]   prints the tenant id and its key
 *   npm run tenant -- key <tenant name or id>                             prints a new key for the tenant
 *   npm run tenant -- revoke <key id>
 *   npm run tenant -- list
 *
 * Exit codes: 0 done; 1 refused or failed (the message says why); 2 bad usage (usage printed).
 */
export const USAGE = `usage: npm run tenant -- <command>
  create <name> [--budget USD] [--rpm N] [--tpm N]   create a tenant; prints its id and first API key (shown once)
  key <tenant name or id>                            create another API key for a tenant (shown once)
  revoke <key id>                                    revoke an API key
  list                                               tenants with their ids`;

export interface TenantCliDeps {
  readonly admin: AdminService;
  readonly db: Pick<Db, 'tenant'>;
}

const whole = (flag: string, v: string | undefined): number | null => {
  if (v === undefined) return null;
  if (!/^\d{1,9}$/.test(v)) throw new UsageError(`--${flag} expects a whole number, got "${v}"`);
  return Number(v);
};

class UsageError extends Error {}

/** Runs the CLI; returns the exit code. Never calls process.exit, so a test can run it against a database. */
export async function runTenantCli(argv: readonly string[], deps: TenantCliDeps, io: CliIo): Promise<number> {
  try {
    const { positionals, values } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: { budget: { type: 'string' }, rpm: { type: 'string' }, tpm: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
    const [command, arg, ...extra] = positionals;
    if (values.help || !command) throw new UsageError('');
    if (extra.length) throw new UsageError(`unexpected argument "${extra[0]}" (quote a name with spaces)`);
    switch (command) {
      case 'create': {
        if (!arg) throw new UsageError('create needs a tenant name');
        const r = await deps.admin.createTenant({
          name: arg,
          monthlyBudgetUsd: values.budget ?? null,
          requestsPerMinute: whole('rpm', values.rpm),
          tokensPerMinute: whole('tpm', values.tpm),
        });
        io.out(
          `tenant  ${arg}\nid      ${r.tenantId}\nkey id  ${r.apiKey.id}\nkey     ${r.apiKey.key}\n\nThe key is shown once. Use it as: Authorization: Bearer ${r.apiKey.key}\n`,
        );
        return 0;
      }
      case 'key': {
        if (!arg) throw new UsageError('key needs a tenant name or id');
        const tenantId = await resolveTenant(deps.db, arg);
        const k = await deps.admin.createApiKey(tenantId);
        io.out(`key id  ${k.id}\nkey     ${k.key}\n\nThe key is shown once.\n`);
        return 0;
      }
      case 'revoke': {
        if (!arg) throw new UsageError('revoke needs a key id (see the apiKeys query or the playground)');
        await deps.admin.revokeApiKey(arg);
        io.out(`revoked ${arg}\n`);
        return 0;
      }
      case 'list': {
        const rows = await deps.db.tenant.findMany({ select: { id: true, name: true }, orderBy: { name: 'asc' } });
        io.out(rows.map((t) => `${t.id}  ${t.name}`).join('\n') + (rows.length ? '\n' : 'no tenants yet: npm run tenant -- create <name>\n'));
        return 0;
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      if ((e as Error).message) io.err(`${(e as Error).message}\n`);
      io.err(`${USAGE}\n`);
      return 2;
    }
    io.err(`${isAppError(e) ? `${e.code}: ${e.message}` : `error: ${(e as Error).message}`}\n`);
    return 1;
  }
}

async function resolveTenant(db: Pick<Db, 'tenant'>, nameOrId: string): Promise<string> {
  const t = await db.tenant.findFirst({ where: isUuid(nameOrId) ? { id: nameOrId } : { name: nameOrId }, select: { id: true } });
  if (!t) throw new Error(`no tenant named or with id "${nameOrId.slice(0, 100)}" (npm run tenant -- list)`);
  return t.id;
}

/** The process: Postgres, and Redis as the server reaches it (REDIS_URL or REDIS_CLUSTER_NODES) for the epoch. */
async function main(config: Config, argv: readonly string[], io: CliIo): Promise<number> {
  const db = createPrisma(config.DATABASE_URL, { max: 2 });
  // Its connection errors are not the tool's output: a failure surfaces as the command's own error.
  const redis = createGateRedis({ url: config.REDIS_URL, clusterNodes: config.REDIS_CLUSTER_NODES }, { logger: createLogger('silent') }).client;
  try {
    await waitReady(redis, 5_000);
    return await runTenantCli(argv, { admin: makeAdminService({ db, epoch: makeEpoch(redis, { maxAgeMs: config.CACHE_MAX_AGE_MS }) }), db }, io);
  } finally {
    redis.disconnect();
    await db.$disconnect();
  }
}

if (require.main === module) runCli(main);
