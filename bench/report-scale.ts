/**
 * The monthly cost report at scale, on the scratch database that bench/gen-ledger.ts fills (1M ledger rows,
 * 30 tenants, 3 months). Runs the rollup job (first pass: every closed day; then a steady-state pass), then times
 * costReport for the biggest and a median tenant, the last closed month and the current (open) month, every
 * grouping: through the rollups (the product's path) and raw-only (no day treated as closed) for comparison.
 * Checks that each report's total equals the raw ledger sum and that both paths give identical rows.
 * Goal: p50 under 200 ms for one tenant-month. Writes bench/results/report-scale-<date>.json.
 *
 *   npx tsx bench/report-scale.ts [--url postgresql://postgres@127.0.0.1:5432/llm_gateway_bench] [--runs 15] [--fresh]
 *
 * --fresh empties daily_rollups and rollup_days first, so the first job pass is timed from nothing.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { performance } from 'node:perf_hooks';
import { createPrisma } from '../src/infra/prisma';
import { makeReportsService, makeRollupJob, type ReportGroup } from '../src/reports';
import { monthOf, monthRange } from '../src/accounting/period';

const argv = process.argv.slice(2);
const arg = (name: string, def: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1]! : def;
};
const URL_ = arg('url', 'postgresql://postgres@127.0.0.1:5432/llm_gateway_bench');
const RUNS = Number(arg('runs', '15'));
const GROUPS: readonly ReportGroup[] = ['MODEL', 'PROFILE', 'DAY', 'API_KEY'];

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const r1 = (x: number) => Math.round(x * 10) / 10;

const scalar = async (q: Promise<{ n: bigint }[]>): Promise<bigint> => (await q)[0]?.n ?? 0n;

async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await f();
  return { ms: performance.now() - t0, value };
}

async function main(): Promise<void> {
  const db = createPrisma(URL_, { max: 4 });
  try {
    if (argv.includes('--fresh')) {
      await db.$executeRawUnsafe('TRUNCATE daily_rollups, rollup_days');
    }
    const indexes = (await db.$queryRaw<{ def: string }[]>`SELECT indexdef AS def FROM pg_indexes WHERE tablename = 'usage_ledger' ORDER BY indexname`).map(
      (i) => i.def,
    );
    const ledgerRows = await scalar(db.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM usage_ledger`);
    // A partitioned table's own size is 0: its partitions (and the request-id table that keeps ids unique) hold it.
    const ledgerBytes = await scalar(db.$queryRaw<{ n: bigint }[]>`
      SELECT (sum(pg_total_relation_size(inhrelid)) + pg_total_relation_size('ledger_request_ids'))::bigint AS n
        FROM pg_inherits WHERE inhparent = 'usage_ledger'::regclass`);
    const partitions = await scalar(db.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'usage_ledger'::regclass`);
    const job = makeRollupJob({ db });
    const firstPass = await timed(() => job.runOnce());
    const secondPass = await timed(() => job.runOnce());
    const rollupRows = await scalar(db.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM daily_rollups`);
    const rollupDays = await scalar(db.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM rollup_days`);
    process.stdout.write(
      `ledger ${ledgerRows} rows; rollup job: first pass ${firstPass.value.days} days in ${r1(firstPass.ms)} ms, ` +
        `second pass ${secondPass.value.days} days in ${r1(secondPass.ms)} ms; ${rollupRows} rollup rows over ${rollupDays} days\n`,
    );

    const byRows = await db.$queryRaw<{ id: string; name: string; n: bigint }[]>`
      SELECT t.id::text AS id, t.name, count(l.id) AS n FROM tenants t LEFT JOIN usage_ledger l ON l.tenant_id = t.id GROUP BY t.id ORDER BY n DESC`;
    const picks = [
      { label: 'biggest', ...byRows[0]! },
      { label: 'median', ...byRows[Math.floor(byRows.length / 2)]! },
    ];
    const now = new Date();
    const current = monthOf(now);
    const previous = monthOf(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 15)));

    const withRollups = makeReportsService({ db });
    // now = 1970: no day is closed, so every day is read from the raw ledger.
    const rawOnly = makeReportsService({ db, now: () => new Date(0) });

    const cases: Record<string, unknown>[] = [];
    let allEqual = true;
    for (const t of picks) {
      for (const month of [previous, current]) {
        const { start, end } = monthRange(month);
        const sum = await timed(
          () =>
            db.$queryRaw<{ cost: bigint | null; n: bigint }[]>`
            SELECT sum(cost_micros)::bigint AS cost, count(*) AS n FROM usage_ledger
             WHERE tenant_id = ${t.id}::uuid AND state = 'SETTLED' AND started_at >= ${start} AND started_at < ${end}`,
        );
        const ledgerSum = sum.value[0]!.cost ?? 0n;
        for (const g of GROUPS) {
          const times: Record<'rollups' | 'raw', number[]> = { rollups: [], raw: [] };
          let rep = await withRollups.costReport(t.id, month, g);
          let raw = await rawOnly.costReport(t.id, month, g);
          for (let i = 0; i < RUNS; i++) {
            const a = await timed(() => withRollups.costReport(t.id, month, g));
            const b = await timed(() => rawOnly.costReport(t.id, month, g));
            times.rollups.push(a.ms);
            times.raw.push(b.ms);
            rep = a.value;
            raw = b.value;
          }
          const equal = rep.totalMicros === ledgerSum && isDeepStrictEqual(rep, raw);
          allEqual &&= equal;
          const row = {
            tenant: t.label,
            tenantRows: Number(t.n),
            month,
            monthSettledRows: Number(sum.value[0]!.n),
            groupBy: g,
            rows: rep.rows.length,
            totalMicros: rep.totalMicros.toString(),
            ledgerSumMicros: ledgerSum.toString(),
            equalToLedgerAndRaw: equal,
            rollupsMs: { p50: r1(pct(times.rollups, 50)), p95: r1(pct(times.rollups, 95)), max: r1(Math.max(...times.rollups)) },
            rawOnlyMs: { p50: r1(pct(times.raw, 50)), p95: r1(pct(times.raw, 95)), max: r1(Math.max(...times.raw)) },
          };
          cases.push(row);
          process.stdout.write(
            `${t.label.padEnd(7)} ${month} ${g.padEnd(7)} rows=${String(rep.rows.length).padStart(3)} total=${rep.totalMicros} ` +
              `equal=${equal}  rollups p50 ${row.rollupsMs.p50} ms (p95 ${row.rollupsMs.p95})  raw-only p50 ${row.rawOnlyMs.p50} ms (p95 ${row.rawOnlyMs.p95})\n`,
          );
        }
      }
    }
    const overviewTimes: number[] = [];
    let overviewEqual = true;
    for (const month of [previous, current]) {
      const { start, end } = monthRange(month);
      const truth = new Map(
        (
          await db.$queryRaw<{ id: string; cost: bigint }[]>`
            SELECT tenant_id::text AS id, sum(cost_micros)::bigint AS cost FROM usage_ledger
             WHERE state = 'SETTLED' AND started_at >= ${start} AND started_at < ${end} GROUP BY tenant_id`
        ).map((x) => [x.id, x.cost]),
      );
      for (let i = 0; i < Math.max(3, Math.floor(RUNS / 3)); i++) {
        const o = await timed(() => withRollups.tenantsOverview(month));
        overviewTimes.push(o.ms);
        overviewEqual &&= o.value.every((t) => t.spentMicros === (truth.get(t.tenantId) ?? 0n));
      }
    }
    allEqual &&= overviewEqual;
    const overview = { tenants: byRows.length, p50Ms: r1(pct(overviewTimes, 50)), maxMs: r1(Math.max(...overviewTimes)), equalToLedger: overviewEqual };
    process.stdout.write(`overview (${byRows.length} tenants, both months): p50 ${overview.p50Ms} ms, equal to the ledger: ${overviewEqual}\n`);
    const worstP50 = Math.max(...cases.map((c) => (c.rollupsMs as { p50: number }).p50));
    const result = {
      date: now.toISOString(),
      machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memGb: Math.round(os.totalmem() / 2 ** 30), node: process.version },
      ledgerRows: Number(ledgerRows),
      ledgerPartitions: Number(partitions),
      ledgerBytesPerRow: ledgerRows > 0n ? Number(ledgerBytes / ledgerRows) : null,
      ledgerIndexes: indexes,
      runsPerCase: RUNS,
      rollupJob: {
        firstPass: { days: firstPass.value.days, ms: r1(firstPass.ms) },
        secondPass: { days: secondPass.value.days, ms: r1(secondPass.ms) },
        rollupRows: Number(rollupRows),
        rollupDays: Number(rollupDays),
      },
      goalMs: 200,
      worstP50Ms: worstP50,
      allEqual,
      overview,
      cases,
    };
    const dir = path.resolve(__dirname, 'results');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `report-scale-${now.toISOString().slice(0, 10)}-${ledgerRows}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(`worst p50 ${worstP50} ms (goal 200); totals equal the ledger and the raw path: ${allEqual}; wrote ${file}\n`);
    if (!allEqual) process.exitCode = 1;
  } finally {
    await db.$disconnect();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
