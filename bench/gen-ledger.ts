/**
 * Fills a SCRATCH database with a synthetic usage ledger for the report benchmark (bench/report-scale.ts):
 * 30 tenants, 3 API keys each, 1,000,000 ledger rows from 2026-09-01 up to the current minute (three calendar months,
 * the last one open), skewed so the biggest tenant has ~18% of the rows. Costs are computed from each model's price
 * exactly as the gateway does (ceil(completion x price / 1e6)); rows of the last 3 minutes are HELD.
 *
 *   npx tsx bench/gen-ledger.ts [--url postgresql://postgres@127.0.0.1:5432/llm_gateway_bench] [--rows 1000000]
 *
 * The database is DROPPED and recreated: the name must contain "bench".
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createPrisma } from '../src/infra/prisma';
import { seedCatalog } from '../prisma/seed';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}

const URL_ = arg('url', 'postgresql://postgres@127.0.0.1:5432/llm_gateway_bench');
const ROWS = Number(arg('rows', '1000000'));
const TENANTS = 30;
const BATCH = 100_000;
const FROM = '2026-09-01T00:00:00.000Z';

async function main(): Promise<void> {
  const dbName = decodeURIComponent(new URL(URL_).pathname.slice(1));
  if (!dbName.includes('bench')) throw new Error(`refusing to drop "${dbName}": the scratch database's name must contain "bench"`);
  const admin = new URL(URL_);
  admin.pathname = '/postgres';
  const a = new pg.Client({ connectionString: admin.toString() });
  await a.connect();
  await a.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await a.end();

  const root = path.resolve(__dirname, '..');
  execFileSync(process.execPath, ['--experimental-wasm-modules', '--no-warnings', 'prisma/migrate.mjs', 'apply'], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: URL_ },
    stdio: 'inherit',
  });
  const prisma = createPrisma(URL_, { max: 2 });
  try {
    await seedCatalog(prisma);
  } finally {
    await prisma.$disconnect();
  }

  const c = new pg.Client({ connectionString: URL_ });
  await c.connect();
  try {
    await c.query(`SELECT setseed(0.42)`);
    await c.query(
      `INSERT INTO tenants (id, name, monthly_budget_micros, updated_at)
       SELECT gen_random_uuid(), 'bench-tenant-' || lpad(i::text, 2, '0'), CASE WHEN i % 3 = 0 THEN NULL ELSE (i * 50)::bigint * 1000000 END, now()
         FROM generate_series(1, $1) i`,
      [TENANTS],
    );
    await c.query(
      `INSERT INTO api_keys (id, tenant_id, hash, prefix)
       SELECT gen_random_uuid(), t.id, md5(t.id::text || k), 'lgw_bench' || k FROM tenants t, generate_series(1, 3) k`,
    );
    const until = new Date();
    // One partition per month filled (the migration made only this month's and the next): rows land where
    // production puts them, not in the DEFAULT partition.
    await c.query(`SELECT ledger_create_month(m) FROM generate_series($1::timestamptz, $2::timestamptz, interval '1 month') AS m`, [FROM, until.toISOString()]);
    const t0 = performance.now();
    for (let done = 0; done < ROWS; done += BATCH) {
      const n = Math.min(BATCH, ROWS - done);
      // Tenant index floor(30 r^2): tenant 0 gets ~18% of the rows, the last ~2%.
      await c.query(
        `WITH tn AS (SELECT row_number() OVER (ORDER BY name) - 1 AS idx, id FROM tenants),
              ks AS (SELECT tenant_id, array_agg(id ORDER BY id) AS ids FROM api_keys GROUP BY tenant_id),
              pf AS (SELECT row_number() OVER (ORDER BY name) - 1 AS idx, name, model_id FROM profiles),
              md AS (SELECT array_agg(id ORDER BY id) AS ids FROM models WHERE output_micros_per_million IS NOT NULL),
              src AS (
                SELECT floor($2::int * power(random(), 2))::int AS ti, random() AS rk, floor(random() * 5)::int AS pi,
                       $3::timestamptz + random() * ($4::timestamptz - $3::timestamptz) AS started_at,
                       random() AS rf, random() AS rm, 20 + floor(random() * 3000)::int AS prompt,
                       50 + floor(random() * 2000)::int AS completion, random() < 0.2 AS asia
                  FROM generate_series(1, $1::int)
              ),
              x AS (
                SELECT tn.id AS tenant_id,
                       CASE WHEN src.rk < 0.1 THEN NULL ELSE ks.ids[1 + floor(src.rk * 3)::int] END AS api_key_id,
                       pf.name AS profile, pf.model_id AS planned,
                       CASE WHEN src.rf < 0.03 THEN NULL
                            WHEN src.rf < 0.10 THEN md.ids[1 + floor(src.rm * array_length(md.ids, 1))::int]
                            ELSE pf.model_id END AS model,
                       src.started_at, src.prompt, src.completion, src.asia
                  FROM src JOIN tn ON tn.idx = src.ti JOIN ks ON ks.tenant_id = tn.id JOIN pf ON pf.idx = src.pi CROSS JOIN md
              )
         INSERT INTO usage_ledger (request_id, tenant_id, api_key_id, profile, region, planned_model, model, attempts, max_tokens,
                                   prompt_tokens, completion_tokens, unpriced_prompt_tokens, output_micros_per_million,
                                   price_snapshot, cost_micros, hold_micros, outcome, usage_source, state, lease_expires_at,
                                   checkpoint_tokens, started_at, ended_at)
         SELECT gen_random_uuid(), x.tenant_id, x.api_key_id, x.profile,
                (CASE WHEN x.asia THEN 'ASIA' ELSE 'US_EAST' END)::"Region", x.planned, x.model,
                jsonb_build_array(jsonb_build_object('model', coalesce(x.model, x.planned), 'ok', x.model IS NOT NULL,
                  'error', CASE WHEN x.model IS NULL THEN 'HTTP_500' END, 'latencyMs', 200, 'promptTokens', x.prompt,
                  'completionTokens', CASE WHEN x.model IS NULL THEN 0 ELSE x.completion END, 'usageSource', 'PROVIDER')),
                4096, x.prompt, CASE WHEN x.model IS NULL THEN 0 ELSE x.completion END, CASE WHEN x.model IS NULL THEN 0 ELSE x.prompt END,
                m.output_micros_per_million, '{}'::jsonb,
                CASE WHEN x.model IS NULL THEN 0 ELSE (x.completion::bigint * m.output_micros_per_million + 999999) / 1000000 END,
                10000, (CASE WHEN x.model IS NULL THEN 'FAILED' ELSE 'COMPLETED' END)::"Outcome", 'PROVIDER'::"UsageSource",
                'SETTLED'::"LedgerState", x.started_at + interval '30 seconds', CASE WHEN x.model IS NULL THEN 0 ELSE x.completion END,
                x.started_at, x.started_at + interval '2 seconds'
           FROM x LEFT JOIN models m ON m.id = x.model`,
        [n, TENANTS, FROM, until.toISOString()],
      );
      process.stdout.write(`  ${done + n} rows (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
    }
    // Requests still running at the end: HELD, unsettled.
    const held = await c.query(
      `UPDATE usage_ledger SET state = 'HELD', model = NULL, outcome = NULL, usage_source = NULL, cost_micros = 0, completion_tokens = 0,
              unpriced_prompt_tokens = 0, ended_at = NULL, lease_expires_at = now() + interval '1 hour'
        WHERE started_at > $1::timestamptz - interval '3 minutes'`,
      [until.toISOString()],
    );
    await c.query('VACUUM ANALYZE');
    // A partitioned table's own size is 0: its partitions hold the rows.
    const { rows } = await c.query(
      `SELECT count(*)::int AS n, (SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits WHERE inhparent = 'usage_ledger'::regclass) AS size FROM usage_ledger`,
    );
    process.stdout.write(`${dbName}: ${rows[0].n} ledger rows (${rows[0].size}), ${held.rowCount} HELD, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  } finally {
    await c.end();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
