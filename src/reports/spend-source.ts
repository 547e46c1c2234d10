import { Prisma } from '../../generated/prisma/client';
import type { Db } from '../infra/prisma';
import { planMonth, type MonthPlan, type TimeRange } from './day-plan';

/**
 * How a report reads a month of settled spend: the daily rollups of the plan's rollup days, the raw SETTLED ledger
 * rows of every other day, in ONE statement (one snapshot).
 *
 * - The day lists are literals of the statement (not a subquery on rollup_days), so a rollup job committing between
 *   the plan and the statement can never make a day count twice or not at all.
 * - Each rollup day is checked at read time: the tenant's ledger rows of that day (all states, counted from the
 *   (tenant_id, started_at) index) must number exactly the rollups' requests. The job computes a day only when it
 *   holds no HELD row and rows are never deleted while their tenant exists, so any row written into the day after
 *   its computation (a late settlement, a clock-skewed instance, a back-dated insert) breaks the equality, and that
 *   day is then read raw for this tenant until the job's next pass recomputes it. Reports stay exact in between.
 * - A day of a month whose ledger partition retention dropped (ledger_archived_months) has no rows left to count:
 *   its rollups, verified equal to its rows just before the drop, are read as they are.
 */

/**
 * Columns of the spend source: day, model ('' when none answered), profile, api_key_id ('' when unknown), sums.
 * Every part of the UNION lists them in this order: day .. cost_micros, then cached_prompt_tokens, cache_write_tokens.
 */
const RAW_COLUMNS = Prisma.sql`(l.started_at AT TIME ZONE 'UTC')::date AS day, coalesce(l.model, '') AS model, l.profile,
  coalesce(l.api_key_id::text, '') AS api_key_id, 1::bigint AS requests, l.prompt_tokens::bigint AS prompt_tokens,
  l.unpriced_prompt_tokens::bigint AS unpriced_prompt_tokens, l.completion_tokens::bigint AS completion_tokens, l.cost_micros,
  l.cached_prompt_tokens::bigint AS cached_prompt_tokens, l.cache_write_tokens::bigint AS cache_write_tokens`;

const rangesSql = (ranges: readonly TimeRange[]): Prisma.Sql =>
  Prisma.join(
    ranges.map((r) => Prisma.sql`(l.started_at >= ${r.start} AND l.started_at < ${r.end})`),
    ' OR ',
  );

/**
 * The rollup days of the plan with their bounds and whether the tenant's rollups of the day still match the ledger:
 * columns day, s, e (timestamptz bounds), good, rolled_cost (the rollups' cost of the day).
 */
function checkedDays(days: readonly string[], tenant: Prisma.Sql): Prisma.Sql {
  return Prisma.sql`
    SELECT d.day, d.s, d.e, (lc.n = rc.n OR archived.yes) AS good, rc.cost AS rolled_cost
      FROM (SELECT x.day, x.day::timestamp AT TIME ZONE 'UTC' AS s, (x.day + 1)::timestamp AT TIME ZONE 'UTC' AS e
              FROM unnest(${days as string[]}::date[]) AS x(day)) d
      CROSS JOIN LATERAL (SELECT count(*) AS n FROM usage_ledger l WHERE l.tenant_id = ${tenant} AND l.started_at >= d.s AND l.started_at < d.e) lc
      CROSS JOIN LATERAL (SELECT coalesce(sum(r.requests), 0) AS n, coalesce(sum(r.cost_micros), 0)::bigint AS cost
                            FROM daily_rollups r WHERE r.tenant_id = ${tenant} AND r.day = d.day) rc
      CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM ledger_archived_months a WHERE a.month = date_trunc('month', d.day)::date) AS yes) archived`;
}

/**
 * One tenant's month as a statement prefix (WITH ...) and a FROM-able source with the columns above. Use as
 * Prisma.sql`${s.with} SELECT ... FROM (${s.source}) s ...`.
 */
export function tenantSpend(plan: MonthPlan, tenantId: string): { with: Prisma.Sql; source: Prisma.Sql } {
  const tenant = Prisma.sql`${tenantId}::uuid`;
  const parts: Prisma.Sql[] = [];
  const hasRollups = plan.rollupDays.length > 0;
  if (hasRollups) {
    // LATERAL ... OFFSET 0 (not flattened into a join): each day is read through the index with its own bounds,
    // whatever the planner guesses about `good`.
    parts.push(Prisma.sql`
      SELECT x.* FROM checked c CROSS JOIN LATERAL (
        SELECT r.day, r.model, r.profile, r.api_key_id, r.requests, r.prompt_tokens, r.unpriced_prompt_tokens,
               r.completion_tokens, r.cost_micros, r.cached_prompt_tokens, r.cache_write_tokens
          FROM daily_rollups r WHERE r.tenant_id = ${tenant} AND r.day = c.day OFFSET 0) x
       WHERE c.good`);
    parts.push(Prisma.sql`
      SELECT x.* FROM checked c CROSS JOIN LATERAL (
        SELECT ${RAW_COLUMNS}
          FROM usage_ledger l WHERE l.tenant_id = ${tenant} AND l.state = 'SETTLED' AND l.started_at >= c.s AND l.started_at < c.e
        OFFSET 0) x
       WHERE NOT c.good`);
  }
  if (plan.rawRanges.length > 0) {
    parts.push(Prisma.sql`
      SELECT ${RAW_COLUMNS}
        FROM usage_ledger l
       WHERE l.tenant_id = ${tenant} AND l.state = 'SETTLED' AND (${rangesSql(plan.rawRanges)})`);
  }
  if (parts.length === 0) {
    // A month always has days; an empty, well-typed source keeps the SQL valid regardless.
    parts.push(Prisma.sql`SELECT NULL::date AS day, ''::text AS model, ''::text AS profile, ''::text AS api_key_id, 0::bigint AS requests,
      0::bigint AS prompt_tokens, 0::bigint AS unpriced_prompt_tokens, 0::bigint AS completion_tokens, 0::bigint AS cost_micros,
      0::bigint AS cached_prompt_tokens, 0::bigint AS cache_write_tokens WHERE false`);
  }
  return {
    with: hasRollups ? Prisma.sql`WITH checked AS MATERIALIZED (${checkedDays(plan.rollupDays, tenant)})` : Prisma.empty,
    source: Prisma.join(parts, ' UNION ALL '),
  };
}

/**
 * Every tenant's settled cost of the month (tenant_id, spent), for the overview: per tenant, each rollup day's
 * rollup cost when it still matches the ledger, else that day's raw sum; plus the raw ranges.
 */
export function everyTenantsSpend(plan: MonthPlan): Prisma.Sql {
  const tenant = Prisma.sql`t.id`;
  const rolled =
    plan.rollupDays.length === 0
      ? Prisma.sql`0::bigint`
      : Prisma.sql`(SELECT coalesce(sum(CASE WHEN c.good THEN c.rolled_cost ELSE
                      (SELECT coalesce(sum(l.cost_micros), 0) FROM usage_ledger l
                        WHERE l.tenant_id = t.id AND l.state = 'SETTLED' AND l.started_at >= c.s AND l.started_at < c.e) END), 0)
                     FROM (${checkedDays(plan.rollupDays, tenant)}) c)`;
  const raw =
    plan.rawRanges.length === 0
      ? Prisma.sql`0::bigint`
      : Prisma.sql`(SELECT coalesce(sum(l.cost_micros), 0) FROM usage_ledger l
                     WHERE l.tenant_id = t.id AND l.state = 'SETTLED' AND (${rangesSql(plan.rawRanges)}))`;
  return Prisma.sql`SELECT t.id AS tenant_id, (${rolled} + ${raw})::bigint AS spent FROM tenants t`;
}

/**
 * Runs one report statement with JIT compilation off (SET LOCAL, in its own transaction). The planner's estimate for
 * a big tenant's month can pass jit_above_cost, and compiling then costs more than the statement (measured: 35 ms
 * of JIT for a 20 ms report; past jit_optimize_above_cost, hundreds of ms).
 */
export function withoutJit<T>(db: Db, query: Prisma.Sql): Promise<T> {
  return db.$transaction(async (tx) => {
    await tx.$executeRaw`SET LOCAL jit = off`;
    return tx.$queryRaw<T>(query);
  });
}

/** The days of [start, end) that the rollup job has computed, as 'YYYY-MM-DD'. */
export async function computedDays(db: Db, range: TimeRange): Promise<Set<string>> {
  const rows = await db.rollupDay.findMany({ where: { day: { gte: range.start, lt: range.end } }, select: { day: true } });
  return new Set(rows.map((r) => r.day.toISOString().slice(0, 10)));
}

export async function planFor(db: Db, range: TimeRange, nowMs: number, lagMs: number): Promise<MonthPlan> {
  return planMonth(range, await computedDays(db, range), nowMs, lagMs);
}
