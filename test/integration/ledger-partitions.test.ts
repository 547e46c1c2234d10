import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import Redis from 'ioredis';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../../generated/prisma/client';
import { makeLedger, type HeldEntry } from '../../src/accounting/ledger';
import { makeCheckpointer } from '../../src/accounting/checkpointer';
import { makeReaper } from '../../src/accounting/reaper';
import { makeGateApplier } from '../../src/accounting/gate-applier';
import { makeGateLedger } from '../../src/accounting/gate-ledger';
import { makeLimiter } from '../../src/limits';
import { createLogger } from '../../src/infra/logger';
import { makeLedgerPartitions } from '../../src/reports/ledger-partitions';
import { makeReportsService, makeRollupJob, type ReportGroup } from '../../src/reports';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';

/**
 * The month-partitioned ledger on a private database (retention and partition creation are global to a database):
 * request ids unique across months, rows of a month without a partition kept and moved when it is created, the hot
 * statements reading one partition (their real SQL, recorded and EXPLAINed), and retention dropping a month only
 * once its rollups equal its rows, leaving every report of that month unchanged.
 */
const RUN = randomUUID().slice(0, 8);
const url = (() => {
  const u = new URL(TEST_DATABASE_URL);
  u.pathname = `${u.pathname}_partitions_${RUN}`;
  return u.toString();
})();
const logger = createLogger('silent');

/** Every statement on the ledger that goes through `pool`, with its values, to EXPLAIN afterwards. */
const seen: { text: string; values: unknown[] }[] = [];
let pool: pg.Pool;
let db: PrismaClient;
let redis: Redis;

beforeAll(() => {
  execFileSync(process.execPath, ['--experimental-wasm-modules', '--no-warnings', 'prisma/migrate.mjs', 'apply'], {
    cwd: path.resolve(__dirname, '../..'),
    env: { ...process.env, DATABASE_URL: url },
    stdio: 'pipe',
  });
  pool = new pg.Pool({ connectionString: url, max: 4 });
  // The teardown drops this database WITH (FORCE): a client the pool still holds then is terminated, which is expected.
  pool.on('error', () => undefined);
  const query = pool.query.bind(pool) as (...a: unknown[]) => unknown;
  (pool as unknown as { query: (...a: unknown[]) => unknown }).query = (cfg: unknown, values?: unknown) => {
    const c = cfg as { text?: string; values?: unknown[] };
    const text = typeof cfg === 'string' ? cfg : (c.text ?? '');
    if (/usage_ledger/.test(text)) seen.push({ text, values: (typeof cfg === 'string' ? values : c.values) as unknown[] });
    return query(cfg, values);
  };
  // Two @types/pg versions (ours and the adapter's) describe the same runtime Pool.
  db = new PrismaClient({ adapter: new PrismaPg(pool as unknown as ConstructorParameters<typeof PrismaPg>[0]) });
  redis = new Redis(TEST_REDIS_URL);
});

afterAll(async () => {
  await db?.$disconnect();
  await pool?.end();
  redis?.disconnect();
  const admin = new pg.Client({ connectionString: new URL('/postgres', url).toString() });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${new URL(url).pathname.slice(1)}" WITH (FORCE)`);
  await admin.end();
});

const newTenant = async (label: string) => (await db.tenant.create({ data: { name: `part-${label}-${RUN}` } })).id;

/** A settled row (or HELD) written directly, as a back-fill would. */
const row = (
  tenantId: string,
  startedAt: string,
  o: { cost?: bigint; model?: string; state?: 'HELD' | 'SETTLED'; requestId?: string; key?: string | null } = {},
) => {
  const state = o.state ?? 'SETTLED';
  return {
    requestId: o.requestId ?? randomUUID(),
    tenantId,
    apiKeyId: o.key ?? null,
    profile: 'chat_default',
    region: 'US_EAST' as const,
    plannedModel: 'glm-5',
    model: state === 'SETTLED' ? (o.model ?? 'glm-5') : null,
    maxTokens: 100,
    promptTokens: 10,
    completionTokens: 20,
    priceSnapshot: {},
    costMicros: state === 'SETTLED' ? (o.cost ?? 7n) : 0n,
    holdMicros: 50n,
    outcome: state === 'SETTLED' ? ('COMPLETED' as const) : null,
    usageSource: state === 'SETTLED' ? ('PROVIDER' as const) : null,
    state,
    leaseExpiresAt: new Date(Date.parse(startedAt) + 30_000),
    startedAt: new Date(startedAt),
    endedAt: state === 'SETTLED' ? new Date(Date.parse(startedAt) + 1_000) : null,
  };
};

const partitionOf = async (requestId: string) =>
  (await db.$queryRaw<{ p: string }[]>`SELECT tableoid::regclass::text AS p FROM usage_ledger WHERE request_id = ${requestId}::uuid`).map((r) => r.p);
const partitions = async () =>
  (
    await db.$queryRaw<
      { name: string }[]
    >`SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'usage_ledger'::regclass ORDER BY 1`
  ).map((r) => r.name);

test('the migration made this month, the next and a DEFAULT partition; the job keeps two months ahead and is idempotent', async () => {
  const month = (d: Date) => `usage_ledger_${d.toISOString().slice(0, 7).replace('-', '_')}`;
  const now = new Date();
  const next = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
  const after = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 2, 1));
  expect(await partitions()).toEqual(expect.arrayContaining([month(now), month(next), 'usage_ledger_default']));
  expect(await partitions()).not.toContain(month(after));
  const job = makeLedgerPartitions({ db, retentionMonths: null, logger });
  expect(await job.ensureAhead()).toEqual([after.toISOString().slice(0, 7)]);
  expect(await job.ensureAhead()).toEqual([]);
  expect(await partitions()).toContain(month(after));
});

test('a request id is unique across months: a second row with it, in another month, is refused and nothing is written', async () => {
  const t = await newTenant('unique');
  const id = randomUUID();
  await db.ledgerEntry.create({ data: row(t, new Date().toISOString(), { requestId: id }) });
  const next = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth() + 1, 3));
  await expect(db.ledgerEntry.create({ data: row(t, next.toISOString(), { requestId: id }) })).rejects.toThrow(/ledger_request_ids_pkey|Unique constraint/);
  expect(await db.ledgerEntry.count({ where: { requestId: id } })).toBe(1);
  expect(await db.ledgerRequestId.count({ where: { requestId: id } })).toBe(1);
});

test('a row of a month without a partition is kept (DEFAULT partition) and moved into the month when its partition is created', async () => {
  const t = await newTenant('default');
  const id = randomUUID();
  await db.ledgerEntry.create({ data: row(t, '2023-02-14T10:00:00.000Z', { requestId: id, cost: 123n }) });
  expect(await partitionOf(id)).toEqual(['usage_ledger_default']);
  const [r] = await db.$queryRaw<{ created: boolean }[]>`SELECT ledger_create_month('2023-02-01T00:00:00Z'::timestamptz) AS created`;
  expect(r?.created).toBe(true);
  expect(await partitionOf(id)).toEqual(['usage_ledger_2023_02']);
  expect((await db.ledgerEntry.findUniqueOrThrow({ where: { requestId: id } })).costMicros).toBe(123n);
  // Its id is still taken.
  await expect(db.ledgerEntry.create({ data: row(t, '2023-02-15T10:00:00.000Z', { requestId: id }) })).rejects.toThrow();
});

/** The ledger partitions a statement's plan reads (EXPLAIN runs the executor start: run-time pruning applies). */
async function partitionsRead(s: { text: string; values: unknown[] }): Promise<string[]> {
  const c = await pool.connect();
  try {
    const plan = (await c.query({ text: `EXPLAIN (FORMAT JSON) ${s.text}`, values: s.values })).rows[0]['QUERY PLAN'] as unknown;
    const names = new Set<string>();
    const walk = (n: unknown): void => {
      if (Array.isArray(n)) n.forEach(walk);
      else if (n && typeof n === 'object') {
        for (const [k, v] of Object.entries(n)) {
          if (k === 'Relation Name' && typeof v === 'string' && v.startsWith('usage_ledger_')) names.add(v);
          else walk(v);
        }
      }
    };
    walk(plan);
    return [...names];
  } finally {
    c.release();
  }
}

test('the hot statements (hold, settle, checkpoint, reaper, reseed reads) each read one month partition', async () => {
  const t = await newTenant('prune');
  const ledger = makeLedger(db, pool);
  const limiter = makeLimiter(redis);
  const gate = makeGateApplier({ gateLedger: makeGateLedger(db), limiter, logger, intervalMs: 60_000 });
  const checkpointer = makeCheckpointer({ db, leaseMs: 1, intervalMs: 60_000, logger });
  const reaper = makeReaper({ db, ledger, gate, intervalMs: 60_000, logger });
  const startedAt = new Date();
  const entry = (requestId: string): HeldEntry => ({
    requestId,
    tenantId: t,
    apiKeyId: null,
    profile: 'chat_default',
    region: 'US_EAST',
    plannedModel: 'glm-5',
    maxTokens: 100,
    promptTokensEstimate: 10,
    prices: { 'glm-5': { inputMicrosPerMillion: 1n, outputMicrosPerMillion: 2n } },
    holdMicros: 50n,
    startedAt,
    leaseMs: 1,
    idempotencyKey: null,
  });
  const [a, b] = [randomUUID(), randomUUID()];
  await reaper.reapOnce(); // the first pass of a process looks at every month; the routine passes are what count
  seen.length = 0;
  await ledger.hold(entry(a));
  await ledger.hold(entry(b));
  checkpointer.track(a, startedAt).tokens = 5;
  await checkpointer.flush();
  expect(
    await ledger.settle(a, {
      startedAt,
      model: 'glm-5',
      attempts: [],
      promptTokens: 10,
      completionTokens: 5,
      cachedPromptTokens: 0,
      cacheWriteTokens: 0,
      unpricedPromptTokens: 0,
      prices: null,
      costMicros: 3n,
      outcome: 'COMPLETED',
      usageSource: 'PROVIDER',
      endedAt: new Date(),
    }),
  ).toBe(true);
  // b's lease (1 ms) is gone: the reaper's routine pass finds and settles it.
  await db.$executeRaw`SELECT pg_sleep(0.01)`;
  expect(await reaper.reapOnce()).toBe(1);
  await gate.flush(); // the gate's confirmation of the reaped row
  const { start, end } = {
    start: new Date(Date.UTC(startedAt.getUTCFullYear(), startedAt.getUTCMonth(), 1)),
    end: new Date(Date.UTC(startedAt.getUTCFullYear(), startedAt.getUTCMonth() + 1, 1)),
  };
  await ledger.monthState(t, start, end, 60_000);
  await ledger.lastMinute(t);

  const statements = seen.filter((s) => !/^\s*INSERT/i.test(s.text));
  // checkpoint, settle x2, reaper select + read, gate confirmation, month state, last minute
  expect(statements.length).toBeGreaterThanOrEqual(8);
  expect(statements.some((s) => /gate_applied_version = GREATEST/.test(s.text))).toBe(true);
  const monthOfMs = (ms: number) => `usage_ledger_${new Date(ms).toISOString().slice(0, 7).replace('-', '_')}`;
  const current = monthOfMs(startedAt.getTime());
  // The reaper looks a day back and every window reaches an hour ahead: next to a month's edge, two partitions.
  const allowed = new Set([monthOfMs(Date.now() - 86_400_000), current, monthOfMs(Date.now() + 3_600_000)]);
  expect((await partitions()).length).toBeGreaterThanOrEqual(allowed.size + 3); // pruning has something to leave out
  for (const s of statements) {
    const read = await partitionsRead(s);
    const sql = s.text.replace(/\s+/g, ' ').slice(0, 90);
    expect({ sql, read: read.filter((p) => !allowed.has(p)), reads: read.length > 0 }).toEqual({ sql, read: [], reads: true });
    // Statements that know their rows' month exactly (settle, checkpoint, reseed's month state) read that month only.
    if (/started_at = \$|started_at BETWEEN|started_at >= \$/.test(s.text)) expect({ sql, read }).toEqual({ sql, read: [current] });
  }
});

describe('retention (LEDGER_RETENTION_MONTHS)', () => {
  const GROUPS: readonly ReportGroup[] = ['MODEL', 'PROFILE', 'DAY', 'API_KEY'];
  const reports = () => makeReportsService({ db });
  const reportsOf = (tenantId: string, month: string) => Promise.all(GROUPS.map((g) => reports().costReport(tenantId, month, g)));
  let t: string;

  beforeAll(async () => {
    t = await newTenant('retention');
    const key = randomUUID();
    for (const m of ['2024-03', '2024-04', '2024-05']) await db.$executeRaw`SELECT ledger_create_month(${new Date(`${m}-01T00:00:00Z`)}::timestamptz)`;
    await db.ledgerEntry.createMany({
      data: [
        row(t, '2024-03-01T00:00:00.000Z', { cost: 1_000n }),
        row(t, '2024-03-05T12:00:00.000Z', { cost: 2_000n, model: 'kimi-k2.5', key }),
        row(t, '2024-03-05T13:00:00.000Z', { cost: 3_000n, key }),
        row(t, '2024-03-31T23:59:59.999Z', { cost: 4_000n }),
        row(t, '2024-04-10T00:00:00.000Z', { cost: 5_000n }),
        row(t, '2024-04-11T00:00:00.000Z', { state: 'HELD' }), // a dead request never reaped: April cannot go
        row(t, '2024-05-02T00:00:00.000Z', { cost: 6_000n }),
      ],
    });
  });

  test('a month past retention is kept while its rollups are missing or differ from its rows, and while it holds a HELD row', async () => {
    const job = makeLedgerPartitions({ db, retentionMonths: 1, logger });
    expect(await job.dropExpired()).toEqual([]); // no rollups yet
    await makeRollupJob({ db }).runOnce();
    // Tampered rollups for May (a rollup that no longer matches its rows): May stays.
    await db.$executeRaw`UPDATE daily_rollups SET cost_micros = cost_micros + 1 WHERE tenant_id = ${t}::uuid AND day = '2024-05-02'`;
    const dropped = await job.dropExpired();
    expect(dropped).toContain('2024-03');
    expect(dropped).not.toContain('2024-04');
    expect(dropped).not.toContain('2024-05');
    expect(await partitions()).toEqual(expect.arrayContaining(['usage_ledger_2024_04', 'usage_ledger_2024_05']));
    await db.$executeRaw`UPDATE daily_rollups SET cost_micros = cost_micros - 1 WHERE tenant_id = ${t}::uuid AND day = '2024-05-02'`;
  });

  test('a dropped month reports exactly as before the drop, in every grouping, and later rollup passes leave it alone', async () => {
    const job = makeLedgerPartitions({ db, retentionMonths: 1, logger });
    const before = await reportsOf(t, '2024-05');
    expect(before[0]!.totalMicros).toBe(6_000n);
    expect(await job.dropExpired()).toEqual(['2024-05']);
    expect(await partitions()).not.toContain('usage_ledger_2024_05');
    expect(await reportsOf(t, '2024-05')).toEqual(before);
    const march = await reportsOf(t, '2024-03');
    expect(march[0]!.totalMicros).toBe(10_000n);
    expect(march.find((r) => r.groupBy === 'DAY')!.rows.map((r) => r.key)).toEqual(['2024-03-05', '2024-03-31', '2024-03-01']);
    // Its request ids went with it; the archive records what was dropped.
    expect(await db.ledgerRequestId.count({ where: { startedAt: { gte: new Date('2024-03-01T00:00:00Z'), lt: new Date('2024-04-01T00:00:00Z') } } })).toBe(0);
    expect(
      await db.ledgerArchivedMonth.findMany({
        where: { month: { gte: new Date('2024-01-01') } },
        orderBy: { month: 'asc' },
        select: { requests: true, costMicros: true },
      }),
    ).toEqual([
      { requests: 4n, costMicros: 10_000n },
      { requests: 1n, costMicros: 6_000n },
    ]);
    await makeRollupJob({ db }).runOnce();
    expect(await reportsOf(t, '2024-03')).toEqual(march);
    expect(await reportsOf(t, '2024-05')).toEqual(before);
  });

  test('retention unset keeps every month', async () => {
    expect(await makeLedgerPartitions({ db, retentionMonths: null, logger }).dropExpired()).toEqual([]);
    expect(await partitions()).toContain('usage_ledger_2024_04');
  });
});
