import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { parse } from 'csv-parse/sync';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { AppError } from '../../src/errors';
import type { Epoch } from '../../src/infra/epoch';
import { makeAdminService } from '../../src/tenants/admin-service';
import { makeReportsService, makeRollupJob, type ReportGroup, type RollupJob, type ReportsService } from '../../src/reports';
import { runReportCli } from '../../src/reports/cli';
import { TEST_DATABASE_URL } from '../support/env';
import { seedCatalog } from '../../prisma/seed';

/**
 * Reports, keys, requests and the audit trail against the real test database. The database is shared with other
 * suites: every tenant here is new (random suffix) and every assertion is about these tenants' rows only.
 */
const RUN = randomUUID().slice(0, 8);
const GROUPS: readonly ReportGroup[] = ['MODEL', 'PROFILE', 'DAY', 'API_KEY'];

let db: Db;
let reports: ReportsService;
const tenants: string[] = [];

/**
 * A private database (migrated and seeded) for the tests that change global state: the rollup tables (rollup_days
 * lists days, not tenant-days, and the job works on every tenant's days) and the model catalog (a price change or a
 * model without a price would reach other suites running at the same moment).
 */
const privateUrl = (() => {
  const u = new URL(TEST_DATABASE_URL);
  u.pathname = `${u.pathname}_reports_${RUN}`;
  return u.toString();
})();
let priv: Db;
let privReports: ReportsService;

async function newTenant(label: string, budgetMicros: bigint | null = null, client: Db = db): Promise<string> {
  const t = await client.tenant.create({ data: { name: `rep-${label}-${RUN}`, monthlyBudgetMicros: budgetMicros } });
  tenants.push(t.id);
  return t.id;
}

interface Row {
  startedAt: string;
  cost?: bigint;
  model?: string | null;
  profile?: string;
  apiKeyId?: string | null;
  state?: 'HELD' | 'SETTLED';
  prompt?: number;
  unpriced?: number;
  cached?: number;
  written?: number;
  completion?: number;
  requestId?: string;
  outcome?: 'COMPLETED' | 'FAILED' | 'UPSTREAM_INTERRUPTED';
  attempts?: unknown[];
}

async function insert(tenantId: string, rows: readonly Row[], client: Db = db): Promise<string[]> {
  const data = rows.map((r) => {
    const state = r.state ?? 'SETTLED';
    const model = r.model === undefined ? 'glm-5' : r.model;
    return {
      requestId: r.requestId ?? randomUUID(),
      tenantId,
      apiKeyId: r.apiKeyId ?? null,
      profile: r.profile ?? 'chat_default',
      region: 'US_EAST' as const,
      plannedModel: model ?? 'deepseek-v4-flash',
      model: state === 'SETTLED' ? model : null,
      attempts: (r.attempts ?? []) as object[],
      maxTokens: 1024,
      promptTokens: r.prompt ?? 10,
      completionTokens: r.completion ?? 20,
      unpricedPromptTokens: r.unpriced ?? 0,
      cachedPromptTokens: r.cached ?? 0,
      cacheWriteTokens: r.written ?? 0,
      priceSnapshot: {},
      costMicros: r.cost ?? 0n,
      holdMicros: 5_000n,
      outcome: state === 'SETTLED' ? (r.outcome ?? (model === null ? 'FAILED' : 'COMPLETED')) : null,
      usageSource: state === 'SETTLED' ? ('PROVIDER' as const) : null,
      state,
      leaseExpiresAt: new Date(Date.parse(r.startedAt) + 30_000),
      startedAt: new Date(r.startedAt),
      endedAt: state === 'SETTLED' ? new Date(Date.parse(r.startedAt) + 1_000) : null,
    };
  });
  await client.ledgerEntry.createMany({ data });
  return data.map((d) => d.requestId);
}

/** The month's settled sum straight from the ledger: what every report must equal. */
async function ledgerSum(tenantId: string, month: string, client: Db = db): Promise<{ cost: bigint; count: number }> {
  const start = new Date(`${month}-01T00:00:00.000Z`);
  const end = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
  const a = await client.ledgerEntry.aggregate({
    where: { tenantId, state: 'SETTLED', startedAt: { gte: start, lt: end } },
    _sum: { costMicros: true },
    _count: true,
  });
  return { cost: a._sum.costMicros ?? 0n, count: a._count };
}

async function errorOf(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AppError) return e;
    throw e;
  }
  throw new Error('expected an AppError');
}

function expectSorted(rows: readonly { key: string; costMicros: bigint }[]): void {
  for (let i = 1; i < rows.length; i++) {
    const a = rows[i - 1]!;
    const b = rows[i]!;
    expect(a.costMicros > b.costMicros || (a.costMicros === b.costMicros && a.key < b.key)).toBe(true);
  }
}

beforeAll(async () => {
  db = createPrisma(TEST_DATABASE_URL, { max: 4 });
  reports = makeReportsService({ db });
  execFileSync(process.execPath, ['--experimental-wasm-modules', '--no-warnings', 'prisma/migrate.mjs', 'apply'], {
    cwd: path.resolve(__dirname, '../..'),
    env: { ...process.env, DATABASE_URL: privateUrl },
    stdio: 'pipe',
  });
  priv = createPrisma(privateUrl, { max: 4 });
  await seedCatalog(priv);
  privReports = makeReportsService({ db: priv });
});

afterAll(async () => {
  await db.tenant.deleteMany({ where: { id: { in: tenants } } });
  await db.$disconnect();
  await priv?.$disconnect();
  const admin = new URL(privateUrl);
  const name = admin.pathname.slice(1);
  admin.pathname = '/postgres';
  const c = new pg.Client({ connectionString: admin.toString() });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await c.end();
  }
});

describe('costReport', () => {
  let t: string;
  let other: string;
  const keyA = randomUUID();
  const keyB = randomUUID();

  beforeAll(async () => {
    t = await newTenant('main');
    other = await newTenant('other');
    const rows: Row[] = [];
    const models = ['glm-5', 'deepseek-v4-flash', 'qwen3-8b', 'minimax-m2.5'];
    const profiles = ['chat_default', 'long_form', 'fast_classify'];
    for (let i = 0; i < 40; i++) {
      rows.push({
        startedAt: `2026-10-${String((i % 28) + 1).padStart(2, '0')}T${String(i % 24).padStart(2, '0')}:15:00.000Z`,
        cost: BigInt(1_000 + i * 137),
        model: models[i % models.length],
        profile: profiles[i % profiles.length],
        apiKeyId: i % 5 === 0 ? null : i % 2 === 0 ? keyA : keyB,
        prompt: 100 + i,
        unpriced: i % 3 === 0 ? 100 + i : 0,
        completion: 50 + i,
      });
    }
    rows.push({ startedAt: '2026-10-07T08:00:00.000Z', model: null, cost: 0n, profile: 'chat_default', apiKeyId: keyA, completion: 0 });
    rows.push({ startedAt: '2026-10-08T08:00:00.000Z', state: 'HELD', cost: 0n, apiKeyId: keyA });
    rows.push({ startedAt: '2026-09-30T23:59:59.999Z', cost: 777n });
    rows.push({ startedAt: '2026-11-01T00:00:00.000Z', cost: 888n });
    await insert(t, rows);
    await insert(other, [{ startedAt: '2026-10-10T10:00:00.000Z', cost: 999_999n }]);
  });

  it.each(GROUPS)('by %s: total is the ledger sum, rows sum to it and are sorted by cost then key', async (g) => {
    const r = await reports.costReport(t, '2026-10', g);
    const sum = await ledgerSum(t, '2026-10');
    const expectedCost = Array.from({ length: 40 }, (_, i) => BigInt(1_000 + i * 137)).reduce((a, b) => a + b, 0n);
    expect(sum.cost).toBe(expectedCost);
    expect(r.totalMicros).toBe(expectedCost);
    expect(r.rows.reduce((s, x) => s + x.costMicros, 0n)).toBe(r.totalMicros);
    expect(r.rows.reduce((s, x) => s + x.requests, 0)).toBe(41);
    expect(r.rows.reduce((s, x) => s + x.promptTokens, 0)).toBe(Array.from({ length: 40 }, (_, i) => 100 + i).reduce((a, b) => a + b, 0) + 10);
    expect(r.rows.reduce((s, x) => s + x.unpricedPromptTokens, 0)).toBe(
      Array.from({ length: 40 }, (_, i) => i)
        .filter((i) => i % 3 === 0)
        .reduce((a, i) => a + 100 + i, 0),
    );
    expect(r.rows.reduce((s, x) => s + x.completionTokens, 0)).toBe(Array.from({ length: 40 }, (_, i) => 50 + i).reduce((a, b) => a + b, 0));
    expect(r).toMatchObject({ tenantId: t, month: '2026-10', groupBy: g });
    expectSorted(r.rows);
    expect(new Set(r.rows.map((x) => x.key)).size).toBe(r.rows.length);
  });

  it('uses the documented keys of each grouping', async () => {
    const byModel = await reports.costReport(t, '2026-10', 'MODEL');
    expect(byModel.rows.map((r) => r.key).sort()).toEqual(['(none)', 'deepseek-v4-flash', 'glm-5', 'minimax-m2.5', 'qwen3-8b']);
    expect(byModel.rows.find((r) => r.key === '(none)')).toMatchObject({ requests: 1, costMicros: 0n });
    const byKey = await reports.costReport(t, '2026-10', 'API_KEY');
    expect(byKey.rows.map((r) => r.key).sort()).toEqual([keyA, keyB, 'unknown'].sort());
    expect(byKey.rows.find((r) => r.key === 'unknown')!.requests).toBe(8);
    const byDay = await reports.costReport(t, '2026-10', 'DAY');
    expect(byDay.rows.every((r) => /^2026-10-\d\d$/.test(r.key))).toBe(true);
    expect(byDay.rows.find((r) => r.key === '2026-10-01')).toMatchObject({ requests: 2, costMicros: 1_000n + (1_000n + 28n * 137n) });
    const byProfile = await reports.costReport(t, '2026-10', 'PROFILE');
    expect(byProfile.rows.map((r) => r.key).sort()).toEqual(['chat_default', 'fast_classify', 'long_form']);
  });

  it('gives a HELD row no place in the report until it settles', async () => {
    const held = await newTenant('held');
    const [id] = await insert(held, [{ startedAt: '2026-10-12T12:00:00.000Z', state: 'HELD', cost: 0n }]);
    await insert(held, [{ startedAt: '2026-10-12T13:00:00.000Z', cost: 40n }]);
    expect((await reports.costReport(held, '2026-10', 'MODEL')).totalMicros).toBe(40n);
    expect((await reports.costReport(held, '2026-10', 'MODEL')).rows).toEqual([
      {
        key: 'glm-5',
        requests: 1,
        promptTokens: 10,
        unpricedPromptTokens: 0,
        cachedPromptTokens: 0,
        cacheWriteTokens: 0,
        completionTokens: 20,
        costMicros: 40n,
      },
    ]);
    await db.ledgerEntry.update({ where: { requestId: id! }, data: { state: 'SETTLED', model: 'glm-5', costMicros: 2n, outcome: 'COMPLETED' } });
    expect((await reports.costReport(held, '2026-10', 'MODEL')).totalMicros).toBe(42n);
  });

  it('puts 23:59:59.999 on the 31st in its month and midnight in the next (UTC)', async () => {
    const b = await newTenant('boundary');
    await insert(b, [
      { startedAt: '2026-10-31T23:59:59.999Z', cost: 7n },
      { startedAt: '2026-11-01T00:00:00.000Z', cost: 11n },
      { startedAt: '2026-10-01T00:00:00.000Z', cost: 100n },
      { startedAt: '2026-09-30T23:59:59.999Z', cost: 1_000n },
    ]);
    expect((await reports.costReport(b, '2026-10', 'MODEL')).totalMicros).toBe(107n);
    expect((await reports.costReport(b, '2026-11', 'MODEL')).totalMicros).toBe(11n);
    expect((await reports.costReport(b, '2026-09', 'MODEL')).totalMicros).toBe(1_000n);
    const days = (await reports.costReport(b, '2026-10', 'DAY')).rows.map((r) => [r.key, r.costMicros]);
    expect(days).toEqual([
      ['2026-10-01', 100n],
      ['2026-10-31', 7n],
    ]);
  });

  it('keeps earlier rows and the report unchanged when a price changes mid-month', async () => {
    const p = await newTenant('price', null, priv);
    // 1000 completion tokens of kimi-k2.5 at $3.00/M = 3000 micros, stored on the row.
    await insert(p, [{ startedAt: '2026-11-03T10:00:00.000Z', model: 'kimi-k2.5', completion: 1_000, cost: 3_000n }], priv);
    const before = await privReports.costReport(p, '2026-11', 'MODEL');
    expect(before.totalMicros).toBe(3_000n);
    // The private database's catalog: no other suite sees this price.
    await priv.model.update({ where: { id: 'kimi-k2.5' }, data: { outputMicrosPerMillion: 5_000_000n, inputMicrosPerMillion: 1_000_000n } });
    const after = await privReports.costReport(p, '2026-11', 'MODEL');
    expect(after).toEqual(before);
    // A row charged at the new price adds its own stored cost; the earlier row keeps its own.
    await insert(p, [{ startedAt: '2026-11-20T10:00:00.000Z', model: 'kimi-k2.5', completion: 1_000, cost: 5_000n }], priv);
    const later = await privReports.costReport(p, '2026-11', 'MODEL');
    expect(later.totalMicros).toBe(8_000n);
    expect(later.rows).toEqual([
      {
        key: 'kimi-k2.5',
        requests: 2,
        promptTokens: 20,
        unpricedPromptTokens: 0,
        cachedPromptTokens: 0,
        cacheWriteTokens: 0,
        completionTokens: 2_000,
        costMicros: 8_000n,
      },
    ]);
    // And the projection uses the new (current) price.
    expect((await privReports.costProjection(1_000_000, [{ model: 'kimi-k2.5', share: 1 }])).totalMicros).toBe(5_000_000n);
  });

  it('writes CSV that a CSV parser reads back to the same rows, with formula cells neutralised', async () => {
    const c = await newTenant('csv');
    const nasty = ['=HYPERLINK("http://evil","x")', '+SUM(1)', '-1+2', '@cmd', 'a,b', 'say "hi"', 'two\nlines', 'plain'];
    await insert(
      c,
      nasty.map((profile, i) => ({
        startedAt: `2026-11-0${i + 1}T01:00:00.000Z`,
        profile,
        cost: BigInt(1_000_000 * (i + 1) + 123),
        prompt: i,
        unpriced: i,
        completion: 2 * i,
      })),
    );
    const r = await reports.costReport(c, '2026-11', 'PROFILE');
    const lines = r.csv.split('\r\n');
    expect(lines[0]).toBe('key,requests,promptTokens,unpricedPromptTokens,cachedPromptTokens,cacheWriteTokens,completionTokens,costUsd');
    expect(r.csv.endsWith('\r\n')).toBe(true);
    const records = parse(r.csv, { columns: true }) as Record<string, string>[];
    expect(records).toHaveLength(r.rows.length);
    const neutral = (k: string) => (/^[=+\-@\t\r]/.test(k) ? `'${k}` : k);
    records.forEach((rec, i) => {
      const row = r.rows[i]!;
      expect(rec).toEqual({
        key: neutral(row.key),
        requests: String(row.requests),
        promptTokens: String(row.promptTokens),
        unpricedPromptTokens: String(row.unpricedPromptTokens),
        cachedPromptTokens: String(row.cachedPromptTokens),
        cacheWriteTokens: String(row.cacheWriteTokens),
        completionTokens: String(row.completionTokens),
        costUsd: `${row.costMicros / 1_000_000n}.${String(row.costMicros % 1_000_000n).padStart(6, '0')}`,
      });
    });
    expect(records.map((x) => x.key).sort()).toEqual(
      ['\'=HYPERLINK("http://evil","x")', "'+SUM(1)", "'-1+2", "'@cmd", 'a,b', 'say "hi"', 'two\nlines', 'plain'].sort(),
    );
    expect(records[0]).toMatchObject({ key: 'plain', costUsd: '8.000123' });
    // No cell of the raw text starts with a formula character.
    const cells = parse(r.csv) as string[][];
    expect(cells.flat().some((x) => /^[=+\-@]/.test(x))).toBe(false);
  });

  it.each(['2026-13', '2026-1', 'nov', '', '2026-00', '2026-11-01', ' 2026-11'])('refuses the month %j with BAD_USER_INPUT naming month', async (m) => {
    const e = await errorOf(reports.costReport(t, m, 'MODEL'));
    expect(e.code).toBe('BAD_USER_INPUT');
    expect(e.extensions.field).toBe('month');
  });

  it('refuses an unknown grouping and an unknown tenant', async () => {
    expect((await errorOf(reports.costReport(t, '2026-10', 'WEEK' as ReportGroup))).extensions.field).toBe('groupBy');
    expect((await errorOf(reports.costReport(randomUUID(), '2026-10', 'MODEL'))).code).toBe('NOT_FOUND');
    expect((await errorOf(reports.costReport('not-a-uuid', '2026-10', 'MODEL'))).code).toBe('NOT_FOUND');
  });

  it('gives an empty month an empty report', async () => {
    const r = await reports.costReport(t, '2026-08', 'DAY');
    expect(r.rows).toEqual([]);
    expect(r.totalMicros).toBe(0n);
    expect(r.csv).toBe('key,requests,promptTokens,unpricedPromptTokens,cachedPromptTokens,cacheWriteTokens,completionTokens,costUsd\r\n');
  });
});

describe('daily rollups', () => {
  // In the private database: a concurrent run of this suite, or another suite's app whose rollup job computes closed
  // days, cannot change what the job finds to do. (Report totals are exact either way; see spend-source.ts.)
  let db: Db;
  let reports: ReportsService;
  const jobNow = new Date('2026-10-05T00:00:00.000Z');
  let job: RollupJob;
  let r: string;
  let heldId: string;

  const snapshot = async () => Promise.all(GROUPS.map((g) => reports.costReport(r, '2026-09', g)));

  beforeAll(async () => {
    db = priv;
    reports = privReports;
    job = makeRollupJob({ db, now: () => jobNow });
    r = await newTenant('rollup', null, db);
    const rows: Row[] = [];
    for (let i = 0; i < 60; i++) {
      rows.push({
        startedAt: new Date(Date.parse('2026-09-01T00:00:00.000Z') + i * 11 * 3_600_000 + i * 1_234).toISOString(),
        cost: BigInt(10_000 + i * 31),
        model: i % 7 === 0 ? null : ['glm-5', 'qwen3-8b', 'deepseek-v4-pro'][i % 3],
        profile: ['chat_default', 'long_form'][i % 2],
        apiKeyId: i % 4 === 0 ? null : randomUUID(),
        prompt: i,
        unpriced: i % 2,
        // Cached and cache-write counts travel through the rollups too: the reports before and after must agree.
        cached: Math.floor(i / 3),
        written: Math.floor(i / 4),
        completion: 3 * i,
      });
    }
    rows.push({ startedAt: '2026-09-30T23:59:59.999Z', cost: 5n });
    await insert(r, rows, db);
    [heldId] = (await insert(r, [{ startedAt: '2026-09-20T12:00:00.000Z', state: 'HELD' }], db)) as [string];
  });

  it('gives the same reports before the job, after it and after re-running it, and the re-run changes nothing', async () => {
    const before = await snapshot();
    const sum = await ledgerSum(r, '2026-09', db);
    for (const rep of before) expect(rep.totalMicros).toBe(sum.cost);

    const first = await job.runOnce();
    expect(first.days).toBeGreaterThan(0);
    const computed = (await db.rollupDay.findMany({ where: { day: { gte: new Date('2026-09-01'), lt: new Date('2026-10-01') } } })).map((d) =>
      d.day.toISOString().slice(0, 10),
    );
    expect(computed).toContain('2026-09-01');
    expect(computed).toContain('2026-09-30');
    // The day with a HELD row is not closed yet: it stays raw.
    expect(computed).not.toContain('2026-09-20');
    expect(await db.dailyRollup.count({ where: { tenantId: r } })).toBeGreaterThan(0);
    expect(await snapshot()).toEqual(before);

    const rollupRows = await db.dailyRollup.findMany({
      where: { tenantId: r },
      orderBy: [{ day: 'asc' }, { model: 'asc' }, { profile: 'asc' }, { apiKeyId: 'asc' }],
    });
    const second = await job.runOnce();
    expect(second.days).toBe(0);
    expect(await snapshot()).toEqual(before);
    const again = await db.dailyRollup.findMany({
      where: { tenantId: r },
      orderBy: [{ day: 'asc' }, { model: 'asc' }, { profile: 'asc' }, { apiKeyId: 'asc' }],
    });
    expect(again.map(({ computedAt: _c, ...x }) => x)).toEqual(rollupRows.map(({ computedAt: _c, ...x }) => x));
  });

  it('reads closed days from the rollups (a tampered rollup shows), and the next pass repairs them', async () => {
    await job.runOnce();
    const honest = await reports.costReport(r, '2026-09', 'DAY');
    const victim = await db.dailyRollup.findFirstOrThrow({ where: { tenantId: r, day: new Date('2026-09-03') } });
    await db.dailyRollup.update({
      where: { tenantId_day_model_profile_apiKeyId: { tenantId: r, day: victim.day, model: victim.model, profile: victim.profile, apiKeyId: victim.apiKeyId } },
      data: { costMicros: victim.costMicros + 1_000_000n },
    });
    expect((await reports.costReport(r, '2026-09', 'DAY')).totalMicros).toBe(honest.totalMicros + 1_000_000n);
    expect((await job.runOnce()).days).toBeGreaterThanOrEqual(1);
    expect(await reports.costReport(r, '2026-09', 'DAY')).toEqual(honest);
  });

  it('counts a row written late into a computed day at once, and the next pass folds it into the rollups', async () => {
    await job.runOnce();
    const base = (await reports.costReport(r, '2026-09', 'MODEL')).totalMicros;
    expect(await db.rollupDay.findUnique({ where: { day: new Date('2026-09-03') } })).not.toBeNull();
    await insert(r, [{ startedAt: '2026-09-03T05:00:00.000Z', cost: 333n, model: 'glm-5' }], db);
    // Before the job runs again: the day no longer matches its rollups for this tenant, so it is read raw.
    for (const g of GROUPS) expect((await reports.costReport(r, '2026-09', g)).totalMicros).toBe(base + 333n);
    expect((await reports.tenantsOverview('2026-09')).find((x) => x.tenantId === r)!.spentMicros).toBe(base + 333n);
    // A HELD row appearing in a computed day (a clock-skewed instance) is not counted, and breaks nothing.
    const [skewed] = await insert(r, [{ startedAt: '2026-09-04T05:00:00.000Z', state: 'HELD' }], db);
    expect((await reports.costReport(r, '2026-09', 'DAY')).totalMicros).toBe(base + 333n);
    await db.ledgerEntry.delete({ where: { requestId: skewed! } });
    expect((await job.runOnce()).days).toBeGreaterThanOrEqual(1);
    for (const g of GROUPS) {
      const rep = await reports.costReport(r, '2026-09', g);
      expect(rep.totalMicros).toBe(base + 333n);
      expect(rep.totalMicros).toBe((await ledgerSum(r, '2026-09', db)).cost);
    }

    await db.ledgerEntry.update({
      where: { requestId: heldId },
      data: { state: 'SETTLED', model: 'glm-5', costMicros: 444n, outcome: 'COMPLETED', usageSource: 'ESTIMATED' },
    });
    expect((await reports.costReport(r, '2026-09', 'MODEL')).totalMicros).toBe(base + 777n);
    expect((await job.runOnce()).days).toBeGreaterThanOrEqual(1);
    expect(await db.rollupDay.findUnique({ where: { day: new Date('2026-09-20') } })).not.toBeNull();
    for (const g of GROUPS) expect((await reports.costReport(r, '2026-09', g)).totalMicros).toBe(base + 777n);
  });

  it('computes days older than the recheck window once (backfill), with the same reports', async () => {
    const before = await snapshot();
    await db.rollupDay.deleteMany({ where: { day: { gte: new Date('2026-09-01'), lt: new Date('2026-10-01') } } });
    const narrow = makeRollupJob({ db, now: () => jobNow, recheckDays: 2 });
    expect((await narrow.runOnce()).days).toBeGreaterThanOrEqual(29);
    const computed = await db.rollupDay.count({ where: { day: { gte: new Date('2026-09-01'), lt: new Date('2026-10-01') } } });
    expect(computed).toBeGreaterThanOrEqual(29);
    expect(await snapshot()).toEqual(before);
    // Computed once: the next pass has nothing older to do.
    expect((await narrow.runOnce()).days).toBe(0);
  });

  it('runs on a timer until stopped', async () => {
    await db.rollupDay.deleteMany({ where: { day: new Date('2026-09-05') } });
    const timed = makeRollupJob({ db, now: () => jobNow });
    timed.start(60_000);
    for (let i = 0; i < 100 && !(await db.rollupDay.findUnique({ where: { day: new Date('2026-09-05') } })); i++) await new Promise((r) => setTimeout(r, 50));
    await timed.stop();
    expect(await db.rollupDay.findUnique({ where: { day: new Date('2026-09-05') } })).not.toBeNull();
  });

  it('leaves days that are not closed to the raw ledger', async () => {
    const early = makeRollupJob({ db, now: () => new Date('2026-09-10T00:09:00.000Z') });
    await db.rollupDay.deleteMany({ where: { day: { gte: new Date('2026-09-09'), lt: new Date('2026-09-11') } } });
    await early.runOnce();
    // 2026-09-09 ended at midnight, but the 10-minute lag has not passed at 00:09.
    expect(await db.rollupDay.findUnique({ where: { day: new Date('2026-09-09') } })).toBeNull();
    expect(await db.rollupDay.findUnique({ where: { day: new Date('2026-09-08') } })).not.toBeNull();
    await job.runOnce();
  });
});

describe('projection', () => {
  it('reproduces the model table from the models table', async () => {
    // The private database's freshly seeded catalog: no other suite's price change can reach it.
    const reports = privReports;
    expect((await reports.costProjection(50_000_000, [{ model: 'glm-5', share: 1 }])).totalMicros).toBe(96_000_000n);
    expect((await reports.costProjection(50_000_000, [{ model: 'deepseek-v4-pro', share: 1 }])).totalMicros).toBe(39_000_000n);
    const mix = await reports.costProjection(50_000_000, [
      { model: 'deepseek-v4-flash', share: 0.6 },
      { model: 'qwen3-8b', share: 0.3 },
      { model: 'minimax-m2.5', share: 0.1 },
    ]);
    expect(mix.totalMicros).toBe(13_400_000n);
    expect(mix.monthlyOutputTokens).toBe(50_000_000);
  });

  it('refuses bad input and an unpriced model', async () => {
    expect((await errorOf(reports.costProjection(50, [{ model: 'nope', share: 1 }]))).extensions.field).toBe('mix');
    expect((await errorOf(reports.costProjection(50, []))).extensions.field).toBe('mix');
    expect((await errorOf(reports.costProjection(-5, [{ model: 'glm-5', share: 1 }]))).extensions.field).toBe('monthlyOutputTokens');
    expect(
      (
        await errorOf(
          reports.costProjection(5, [
            { model: 'glm-5', share: 0.6 },
            { model: 'qwen3-8b', share: 0.3 },
          ]),
        )
      ).extensions.field,
    ).toBe('mix');
    // A model without an output price, in the private database's catalog only.
    await priv.model.update({ where: { id: 'qwen3.5-397b' }, data: { outputMicrosPerMillion: null } });
    expect((await errorOf(privReports.costProjection(5, [{ model: 'qwen3.5-397b', share: 1 }]))).code).toBe('UNPRICED_MODEL');
  });
});

describe('keys, requests and the audit trail', () => {
  let t: string;
  let stranger: string;
  const base = Date.parse('2026-11-10T10:00:00.000Z');
  let ids: string[];

  beforeAll(async () => {
    t = await newTenant('req');
    stranger = await newTenant('stranger');
    const rows: Row[] = Array.from({ length: 7 }, (_, i) => ({
      startedAt: new Date(base + i * 60_000).toISOString(),
      cost: BigInt(i),
      attempts: [
        { model: 'deepseek-v4-flash', ok: false, error: 'HTTP_500', latencyMs: 120, promptTokens: 0, completionTokens: 0, usageSource: 'ESTIMATED' },
        { model: 'glm-5', ok: true, error: null, latencyMs: 480, promptTokens: 10, completionTokens: 20, usageSource: 'PROVIDER' },
      ],
    }));
    // Two requests that started in the same millisecond, between the 3rd and 4th.
    rows.push({ startedAt: new Date(base + 2 * 60_000 + 30_000).toISOString(), cost: 100n });
    rows.push({ startedAt: new Date(base + 2 * 60_000 + 30_000).toISOString(), cost: 101n });
    rows.push({ startedAt: new Date(base + 10 * 60_000).toISOString(), state: 'HELD' });
    ids = await insert(t, rows);
  });

  it('reads one request of the tenant, and none of another tenant', async () => {
    const rec = await reports.request(ids[1]!, t);
    expect(rec).toEqual({
      requestId: ids[1],
      profile: 'chat_default',
      region: 'US_EAST',
      model: 'glm-5',
      attempts: [
        { model: 'deepseek-v4-flash', ok: false, error: 'HTTP_500', latencyMs: 120 },
        { model: 'glm-5', ok: true, error: null, latencyMs: 480 },
      ],
      outcome: 'COMPLETED',
      usage: { promptTokens: 10, completionTokens: 20, cachedPromptTokens: 0, cacheWriteTokens: 0, costMicros: 1n, source: 'PROVIDER' },
      startedAt: new Date(base + 60_000),
      endedAt: new Date(base + 61_000),
    });
    expect(await reports.request(ids[1]!, null)).toEqual(rec);
    expect(await reports.request(ids[1]!, stranger)).toBeNull();
    expect(await reports.request(randomUUID(), t)).toBeNull();
    expect(await reports.request('not-a-uuid', null)).toBeNull();
  });

  it('shows a running (HELD) request without outcome or usage', async () => {
    const rec = await reports.request(ids[9]!, t);
    expect(rec).toMatchObject({ outcome: null, usage: null, endedAt: null, model: null });
  });

  it('pages requests newest first with an exclusive `before`, losing no row that shares a timestamp', async () => {
    const all = await reports.requests(t, 500, null);
    expect(all).toHaveLength(10);
    for (let i = 1; i < all.length; i++) expect(all[i - 1]!.startedAt.getTime()).toBeGreaterThanOrEqual(all[i]!.startedAt.getTime());
    expect(all[0]!.requestId).toBe(ids[9]);

    const seen: string[] = [];
    let before: Date | null = null;
    for (let guard = 0; guard < 20; guard++) {
      const page: Awaited<ReturnType<ReportsService['requests']>> = await reports.requests(t, 3, before);
      if (page.length === 0) break;
      for (const p of page) if (before) expect(p.startedAt.getTime()).toBeLessThan(before.getTime());
      seen.push(...page.map((p) => p.requestId));
      before = page[page.length - 1]!.startedAt;
    }
    expect(seen).toEqual(all.map((a) => a.requestId));

    const at = all[3]!.startedAt;
    const older = await reports.requests(t, 500, at);
    expect(older.every((x) => x.startedAt.getTime() < at.getTime())).toBe(true);
    expect(older.length).toBe(all.filter((x) => x.startedAt.getTime() < at.getTime()).length);
  });

  it.each([0, 501, 1.5, -1])('refuses first = %p with BAD_USER_INPUT naming first', async (n) => {
    expect((await errorOf(reports.requests(t, n, null))).extensions.field).toBe('first');
    expect((await errorOf(reports.auditLog(null, n, null))).extensions.field).toBe('first');
  });

  it('is NOT_FOUND for an unknown tenant', async () => {
    expect((await errorOf(reports.requests(randomUUID(), 10, null))).code).toBe('NOT_FOUND');
    expect((await errorOf(reports.apiKeys(randomUUID()))).code).toBe('NOT_FOUND');
  });

  it('lists the api keys newest first, revoked included', async () => {
    const k = await newTenant('keys');
    await db.apiKey.createMany({
      data: [
        { tenantId: k, hash: `h1-${RUN}`, prefix: 'lgw_aaaaaaaa', createdAt: new Date('2026-01-01T00:00:00Z') },
        { tenantId: k, hash: `h2-${RUN}`, prefix: 'lgw_bbbbbbbb', createdAt: new Date('2026-03-01T00:00:00Z'), revokedAt: new Date('2026-04-01T00:00:00Z') },
        { tenantId: k, hash: `h3-${RUN}`, prefix: 'lgw_cccccccc', createdAt: new Date('2026-02-01T00:00:00Z'), lastUsedAt: new Date('2026-02-02T00:00:00Z') },
      ],
    });
    const keys = await reports.apiKeys(k);
    expect(keys.map((x) => x.prefix)).toEqual(['lgw_bbbbbbbb', 'lgw_cccccccc', 'lgw_aaaaaaaa']);
    expect(keys[0]).toMatchObject({ revokedAt: new Date('2026-04-01T00:00:00Z'), lastUsedAt: null });
    expect(keys[1]).toMatchObject({ revokedAt: null, lastUsedAt: new Date('2026-02-02T00:00:00Z') });
    // What a key shows: never its hash (nor the previous secret's, kept during a rotation's grace).
    expect(Object.keys(keys[0]!).sort()).toEqual([
      'createdAt',
      'id',
      'lastUsedAt',
      'monthlyBudgetMicros',
      'name',
      'prefix',
      'previousKeyExpiresAt',
      'requestsPerMinute',
      'revokedAt',
      'rotatedAt',
      'spentThisMonthMicros',
      'tokensPerMinute',
    ]);
    expect(keys[0]).toMatchObject({ spentThisMonthMicros: 0n, name: null, monthlyBudgetMicros: null });
  });

  it("reads back the admin's changes from the audit trail, newest first, per tenant", async () => {
    const epoch: Epoch = {
      sync: async () => undefined,
      cacheable: () => true,
      begin: async () => 'change',
      end: async () => undefined,
      onChange: () => undefined,
      maxAgeMs: 5_000,
    };
    const admin = makeAdminService({ db, epoch });
    const created = await admin.createTenant({ name: `rep-audit-${RUN}`, monthlyBudgetUsd: '25' });
    tenants.push(created.tenantId);
    await admin.setTenantBudget(created.tenantId, { given: true, value: '40.5' });
    const log = await reports.auditLog(created.tenantId, 50, null);
    expect(log.map((a) => a.action)).toEqual(['setTenantBudget', 'createApiKey', 'createTenant']);
    expect(log.every((a) => a.tenantId === created.tenantId && a.actor === 'admin')).toBe(true);
    expect(JSON.parse(log[0]!.oldValue!)).toEqual({ monthlyBudgetMicros: '25000000' });
    expect(JSON.parse(log[0]!.newValue!)).toEqual({ monthlyBudgetMicros: '40500000' });
    expect(log[2]!.oldValue).toBeNull();
    const older = await reports.auditLog(created.tenantId, 50, log[0]!.createdAt);
    expect(older.map((a) => a.action)).toEqual(['createApiKey', 'createTenant']);
    expect(await reports.auditLog(stranger, 50, null)).toEqual([]);
    expect(await reports.auditLog('nope', 50, null)).toEqual([]);
    const everyone = await reports.auditLog(null, 500, null);
    expect(everyone.some((a) => a.tenantId === created.tenantId)).toBe(true);
  });

  it('pages the audit trail without losing entries that share a createdAt', async () => {
    const at = new Date('2026-11-20T10:00:00.000Z');
    const tenantId = await newTenant('audit-ties');
    const entry = (action: string, createdAt: Date) => ({ actor: 'admin', action, targetType: 'tenant', targetId: tenantId, tenantId, createdAt });
    await db.auditEntry.createMany({
      data: [entry('a', new Date(at.getTime() - 1)), entry('b', at), entry('c', at), entry('d', at), entry('e', new Date(at.getTime() + 1))],
    });
    const seen: string[] = [];
    let before: Date | null = null;
    for (let guard = 0; guard < 10; guard++) {
      const page: Awaited<ReturnType<ReportsService['auditLog']>> = await reports.auditLog(tenantId, 2, before);
      if (page.length === 0) break;
      seen.push(...page.map((p) => p.action));
      before = page[page.length - 1]!.createdAt;
    }
    // Newest first; ties by id descending (insertion order reversed).
    expect(seen).toEqual(['e', 'd', 'c', 'b', 'a']);
    expect((await reports.auditLog(tenantId, 2, null)).map((x) => x.action)).toEqual(['e', 'd', 'c', 'b']);
  });
});

describe('tenants overview and the CLI', () => {
  let a: string;
  let nameA: string;
  let b: string;
  const keyX = randomUUID();

  beforeAll(async () => {
    a = await newTenant('cli-a', 10_000_000n);
    nameA = `rep-cli-a-${RUN}`;
    b = await newTenant('cli-b');
    await insert(a, [
      {
        startedAt: '2026-12-02T10:00:00.000Z',
        model: 'glm-5',
        profile: 'long_form',
        apiKeyId: keyX,
        cost: 2_500_000n,
        prompt: 100,
        unpriced: 100,
        completion: 1_000,
      },
      {
        startedAt: '2026-12-03T10:00:00.000Z',
        model: 'qwen3-8b',
        profile: '=evil()',
        apiKeyId: keyX,
        cost: 1_500_000n,
        prompt: 50,
        unpriced: 50,
        completion: 500,
      },
      { startedAt: '2026-11-30T23:59:59.999Z', model: 'glm-5', cost: 9_999_999n },
    ]);
    await insert(b, [{ startedAt: '2026-12-05T10:00:00.000Z', model: 'glm-5', cost: 123n }]);
  });

  const run = async (argv: string[]) => {
    let out = '';
    let err = '';
    const code = await runReportCli(argv, { reports, db }, { out: (s) => (out += s), err: (s) => (err += s) });
    return { code, out, err };
  };

  it('overviews every tenant with spend, budget and share used', async () => {
    const o = await reports.tenantsOverview('2026-12');
    expect(o.find((x) => x.tenantId === a)).toEqual({ tenantId: a, name: nameA, spentMicros: 4_000_000n, budgetMicros: 10_000_000n, shareUsed: 0.4 });
    expect(o.find((x) => x.tenantId === b)).toEqual({ tenantId: b, name: `rep-cli-b-${RUN}`, spentMicros: 123n, budgetMicros: null, shareUsed: null });
  });

  it('prints a tenant report as a table, by name or id', async () => {
    const r = await run(['--month', '2026-12', '--tenant', nameA]);
    expect(r).toMatchObject({ code: 0, err: '' });
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toBe(`Cost report: tenant ${nameA} (${a}), 2026-12 (UTC), by model`);
    expect(lines[1]).toMatch(/^model\s+requests\s+promptTokens\s+unpricedPromptTokens\s+cachedPromptTokens\s+cacheWriteTokens\s+completionTokens\s+costUsd$/);
    expect(lines[3]).toMatch(/^glm-5\s+1\s+100\s+100\s+0\s+0\s+1000\s+2\.500000$/);
    expect(lines[4]).toMatch(/^qwen3-8b\s+1\s+50\s+50\s+0\s+0\s+500\s+1\.500000$/);
    expect(lines[5]).toMatch(/^TOTAL\s+2\s+150\s+150\s+0\s+0\s+1500\s+4\.000000$/);
    expect(lines).toHaveLength(6);
    const byId = await run(['--month=2026-12', `--tenant=${a}`]);
    expect(byId.out).toBe(r.out);
  });

  it('prints the csv field exactly, and json', async () => {
    const csv = await run(['--month', '2026-12', '--tenant', nameA, '--group', 'profile', '--format', 'csv']);
    expect(csv.code).toBe(0);
    expect(csv.out).toBe((await reports.costReport(a, '2026-12', 'PROFILE')).csv);
    expect(csv.out).toBe(
      "key,requests,promptTokens,unpricedPromptTokens,cachedPromptTokens,cacheWriteTokens,completionTokens,costUsd\r\nlong_form,1,100,100,0,0,1000,2.500000\r\n'=evil(),1,50,50,0,0,500,1.500000\r\n",
    );
    const json = await run(['--month', '2026-12', '--tenant', nameA, '--group', 'key', '--format', 'json']);
    expect(JSON.parse(json.out)).toEqual({
      tenantId: a,
      tenant: nameA,
      month: '2026-12',
      groupBy: 'API_KEY',
      totalUsd: '4.000000',
      rows: [
        {
          key: keyX,
          requests: 2,
          promptTokens: 150,
          unpricedPromptTokens: 150,
          cachedPromptTokens: 0,
          cacheWriteTokens: 0,
          completionTokens: 1500,
          costUsd: '4.000000',
        },
      ],
    });
    const day = await run(['--month', '2026-12', '--tenant', nameA, '--group', 'day', '--format', 'csv']);
    expect(day.out.split('\r\n').slice(1, 3)).toEqual(['2026-12-02,1,100,100,0,0,1000,2.500000', '2026-12-03,1,50,50,0,0,500,1.500000']);
  });

  it('prints the overview as a table, csv and json', async () => {
    const table = await run(['--month', '2026-12']);
    expect(table.code).toBe(0);
    expect(table.out.split('\n')[0]).toBe('Spend by tenant, 2026-12 (UTC)');
    expect(table.out.split('\n').find((l) => l.startsWith(`${nameA} `))).toMatch(/^\S+\s+4\.000000\s+10\.000000\s+40\.0%$/);
    expect(table.out.split('\n').find((l) => l.startsWith(`rep-cli-b-${RUN} `))).toMatch(/^\S+\s+0\.000123\s+-\s+-$/);
    const csv = parse((await run(['--month', '2026-12', '--format', 'csv'])).out, { columns: true }) as Record<string, string>[];
    expect(csv.find((x) => x.tenantId === a)).toEqual({ tenant: nameA, tenantId: a, spentUsd: '4.000000', budgetUsd: '10.000000', shareUsed: '0.4' });
    const json = JSON.parse((await run(['--month', '2026-12', '--format', 'json'])).out) as unknown[];
    expect(json).toContainEqual({ tenantId: b, name: `rep-cli-b-${RUN}`, spentUsd: '0.000123', budgetUsd: null, shareUsed: null });
  });

  it.each([
    [[]],
    [['--month']],
    [['--month', '2026-13']],
    [['--month', '2026-12', '--group', 'week', '--tenant', 'x']],
    [['--month', '2026-12', '--format', 'xml']],
    [['--month', '2026-12', '--bogus']],
    [['--month', '2026-12', '--group', 'model']],
    [['--month', '2026-12', '--month', '2026-11']],
  ])('exits 2 with usage for bad flags %j', async (argv) => {
    const r = await run(argv as string[]);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^error: .+\nusage: npm run report/);
  });

  it('exits 1 for an unknown tenant', async () => {
    const r = await run(['--month', '2026-12', '--tenant', `nobody-${RUN}`]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('no tenant');
  });
});
