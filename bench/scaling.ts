/**
 * `npm run bench:scaling`: throughput of the gateway as 1, 2 and 4 instances (WORKERS=N: N whole instances on one
 * port) against ONE Redis and ONE Postgres, and the per-request costs that size a deployment: Redis commands per
 * request (INFO commandstats deltas), Postgres transactions per request (pg_stat_database; with autocommit each
 * statement outside a transaction is one), bytes per ledger row (partitions + request-id table / rows) and Redis
 * bytes per tenant (MEMORY USAGE of the tenant's keys). Non-streamed chat mutations (every check on) against the
 * project's simulator with no latency, closed loop at --concurrency per run.
 *
 *   npx tsx bench/scaling.ts [--workers 1,2,4] [--seconds 10] [--warmup 3] [--concurrency 32]
 *       [--database-url postgresql://postgres@127.0.0.1:5432/llm_gateway_bench_scaling] [--redis-url redis://127.0.0.1:6379/13]
 *
 * The database is dropped and recreated (its name must contain "bench"); the Redis db is flushed. Writes
 * bench/results/scaling-<date>.json and prints a markdown table for docs/scaling.md.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Redis from 'ioredis';
import pg from 'pg';
import { closedLoop } from './lib/load';
import { createBenchTenant, gatewayChatOp, pool } from './lib/clients';
import { freePort, ROOT, startSimulatorChild } from './lib/procs';
import { Progress } from './lib/progress';
import { machineInfo } from './lib/machine';

const argv = process.argv.slice(2);
const arg = (name: string, def: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1]! : def;
};
const WORKERS = arg('workers', '1,2,4').split(',').map(Number);
const SECONDS = Number(arg('seconds', '10'));
const WARMUP = Number(arg('warmup', '3'));
const CONCURRENCY = Number(arg('concurrency', '32'));
const DB_URL = arg('database-url', 'postgresql://postgres@127.0.0.1:5432/llm_gateway_bench_scaling');
const REDIS_URL = arg('redis-url', 'redis://127.0.0.1:6379/13');
const ADMIN_KEY = 'bench-scaling-admin-key-0123456789abcdef';
const progress = new Progress();

async function resetDatabase(): Promise<void> {
  const name = decodeURIComponent(new URL(DB_URL).pathname.slice(1));
  if (!name.includes('bench')) throw new Error(`refusing to drop "${name}": the scratch database's name must contain "bench"`);
  const admin = new pg.Client({ connectionString: new URL('/postgres', DB_URL).toString() });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
}

/** The gateway with WORKERS=n; resolves once the primary says every worker listens (its terminal banner). */
async function startGateway(workers: number, upstreamUrl: string) {
  const port = await freePort();
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    NODE_ENV: 'production',
    PORT: String(port),
    WORKERS: String(workers),
    DATABASE_URL: DB_URL,
    REDIS_URL,
    ADMIN_API_KEY: ADMIN_KEY,
    GLOBAL_API_KEY: 'x',
    GLOBAL_API_BASE_URL: upstreamUrl,
    LOG_LEVEL: 'warn',
  };
  const proc = spawn(process.execPath, ['--require', 'tsx/cjs', 'src/main.ts'], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway (WORKERS=${workers}) not ready in 120 s:\n${err.slice(-2000)}`)), 120_000);
    proc.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      if (err.includes('Playground:')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => reject(new Error(`gateway exited with ${code}:\n${err.slice(-2000)}`)));
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
  return { origin: `http://127.0.0.1:${port}`, pid: proc.pid!, stop };
}

/**
 * Commands Redis executed (those inside Lua scripts included: commandstats counts them under their own names) and
 * the scripts among them (EVAL/EVALSHA: one round trip each, unless pipelined), this bench's INFO/SCAN left out.
 */
async function commandCount(redis: Redis): Promise<{ all: number; scripts: number }> {
  const info = await redis.info('commandstats');
  let all = 0;
  let scripts = 0;
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (m[1] === 'info' || m[1] === 'scan' || m[1]!.startsWith('memory')) continue;
    all += Number(m[2]);
    if (/^(eval|evalsha|evalsha_ro|eval_ro|fcall)$/.test(m[1]!)) scripts += Number(m[2]);
  }
  return { all, scripts };
}

async function xacts(c: pg.Client): Promise<number> {
  const r = await c.query(`SELECT (xact_commit + xact_rollback)::text AS n FROM pg_stat_database WHERE datname = current_database()`);
  return Number(r.rows[0].n);
}

/** Bytes of Redis per tenant: every key carrying the tenant's hash tag. */
async function tenantRedisBytes(redis: Redis, tenantId: string): Promise<{ keys: number; bytes: number }> {
  let cursor = '0';
  let keys = 0;
  let bytes = 0;
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `*{${tenantId}}*`, 'COUNT', 1000);
    cursor = next;
    for (const k of batch) {
      keys++;
      bytes += Number((await redis.memory('USAGE', k)) ?? 0);
    }
  } while (cursor !== '0');
  return { keys, bytes };
}

async function main(): Promise<void> {
  const redis = new Redis(REDIS_URL);
  const sim = await startSimulatorChild(0);
  const runs: Record<string, unknown>[] = [];
  try {
    for (const n of WORKERS) {
      await resetDatabase();
      await redis.flushdb();
      progress.log(`scaling: WORKERS=${n}`);
      const gw = await startGateway(n, sim.url);
      const pgc = new pg.Client({ connectionString: DB_URL });
      await pgc.connect();
      try {
        const tenant = await createBenchTenant(`${gw.origin}/graphql`, ADMIN_KEY, `scaling-${n}`);
        const p = pool(gw.origin, CONCURRENCY);
        // Counters around the whole loop (warm-up included), divided by every request it completed.
        const [c0, x0] = [await commandCount(redis), await xacts(pgc)];
        const [l0] = (await pgc.query(`SELECT count(*)::int AS n FROM usage_ledger`)).rows as { n: number }[];
        const load = await closedLoop({
          label: `WORKERS=${n}`,
          concurrency: CONCURRENCY,
          warmupS: WARMUP,
          seconds: SECONDS,
          progress,
          pids: {},
          op: gatewayChatOp(p, tenant.key),
        });
        await p.close();
        const [c1, x1] = [await commandCount(redis), await xacts(pgc)];
        const [l1] = (await pgc.query(`SELECT count(*)::int AS n FROM usage_ledger`)).rows as { n: number }[];
        const requests = l1!.n - l0!.n;
        const size = (
          await pgc.query(`
          SELECT (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'usage_ledger'::regclass)::text AS ledger,
                 pg_total_relation_size('ledger_request_ids')::text AS ids`)
        ).rows[0] as { ledger: string; ids: string };
        const mem = await tenantRedisBytes(redis, tenant.id);
        const run = {
          workers: n,
          concurrency: CONCURRENCY,
          rps: Math.round(load.rps),
          p50Ms: load.latencyMs.p50,
          p99Ms: load.latencyMs.p99,
          errors: load.errors,
          requests,
          redisCommandsPerRequest: Math.round(((c1.all - c0.all) / requests) * 100) / 100,
          redisScriptsPerRequest: Math.round(((c1.scripts - c0.scripts) / requests) * 100) / 100,
          postgresXactsPerRequest: Math.round(((x1 - x0) / requests) * 100) / 100,
          ledgerRows: l1!.n,
          ledgerBytesPerRow: Math.round((Number(size.ledger) + Number(size.ids)) / l1!.n),
          tenantRedisKeys: mem.keys,
          tenantRedisBytes: mem.bytes,
        };
        runs.push(run);
        progress.log(`scaling: ${JSON.stringify(run)}`);
      } finally {
        await pgc.end();
        await gw.stop();
      }
    }
  } finally {
    await sim.child.stop();
    redis.disconnect();
  }
  const out = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    seconds: SECONDS,
    warmupS: WARMUP,
    note: 'closed loop of non-streamed chat mutations, simulator without latency',
    runs,
  };
  const dir = path.join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `scaling-${out.date.slice(0, 10)}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  const rows = runs.map(
    (r) =>
      `| ${String(r.workers)} | ${String(r.rps)} | ${String(r.p50Ms)} | ${String(r.p99Ms)} | ${String(r.redisCommandsPerRequest)} | ${String(r.redisScriptsPerRequest)} | ` +
      `${String(r.postgresXactsPerRequest)} | ${String(r.ledgerBytesPerRow)} | ${String(r.tenantRedisBytes)} |`,
  );
  process.stdout.write(
    `| instances (WORKERS) | req/s | p50 ms | p99 ms | Redis commands / request | of them scripts | Postgres xacts / request | bytes / ledger row | Redis bytes / tenant |\n` +
      `|---|---|---|---|---|---|---|---|---|\n${rows.join('\n')}\nwrote ${file}\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:scaling failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
