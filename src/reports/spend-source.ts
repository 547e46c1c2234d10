import { Prisma } from '../generated/prisma/client';
import type { Db } from '../infra/prisma';
import { planMonth, type MonthPlan, type TimeRange } from './day-plan';

/**
 * The settled spend of a tenant over a month, as one SQL subquery with the columns
 *   day (date), model ('' when none answered), profile, api_key_id ('' when unknown),
 *   requests, prompt_tokens, unpriced_prompt_tokens, completion_tokens, cost_micros
 * made of the daily rollups of the plan's rollup days and the raw SETTLED ledger rows of its raw ranges.
 *
 * The day lists are literals of the statement (not a subquery on rollup_days), so a rollup job committing between
 * the plan and the statement can never make a day count twice or not at all: the statement reads exactly the days
 * the plan names, each from one source, and one statement sees one snapshot.
 */
export function spendSource(plan: MonthPlan, tenantExpr: Prisma.Sql): Prisma.Sql {
  const parts: Prisma.Sql[] = [];
  if (plan.rollupDays.length > 0) {
    parts.push(Prisma.sql`
      SELECT r.day, r.model, r.profile, r.api_key_id, r.requests, r.prompt_tokens, r.unpriced_prompt_tokens,
             r.completion_tokens, r.cost_micros
        FROM daily_rollups r
       WHERE r.tenant_id = ${tenantExpr} AND r.day = ANY(${plan.rollupDays as string[]}::date[])`);
  }
  if (plan.rawRanges.length > 0) {
    parts.push(Prisma.sql`
      SELECT (l.started_at AT TIME ZONE 'UTC')::date AS day, coalesce(l.model, '') AS model, l.profile,
             coalesce(l.api_key_id::text, '') AS api_key_id, 1::bigint AS requests, l.prompt_tokens::bigint AS prompt_tokens,
             l.unpriced_prompt_tokens::bigint AS unpriced_prompt_tokens, l.completion_tokens::bigint AS completion_tokens,
             l.cost_micros
        FROM usage_ledger l
       WHERE l.tenant_id = ${tenantExpr} AND l.state = 'SETTLED' AND (${rangesSql(plan.rawRanges)})`);
  }
  if (parts.length === 0) {
    // A month with no days cannot happen; an empty, well-typed source keeps the SQL valid regardless.
    return Prisma.sql`SELECT NULL::date AS day, ''::text AS model, ''::text AS profile, ''::text AS api_key_id, 0::bigint AS requests,
      0::bigint AS prompt_tokens, 0::bigint AS unpriced_prompt_tokens, 0::bigint AS completion_tokens, 0::bigint AS cost_micros WHERE false`;
  }
  return Prisma.join(parts, ' UNION ALL ');
}

const rangesSql = (ranges: readonly TimeRange[]): Prisma.Sql =>
  Prisma.join(
    ranges.map((r) => Prisma.sql`(l.started_at >= ${r.start} AND l.started_at < ${r.end})`),
    ' OR ',
  );

/** The days of [start, end) that the rollup job has computed, as 'YYYY-MM-DD'. */
export async function computedDays(db: Db, range: TimeRange): Promise<Set<string>> {
  const rows = await db.rollupDay.findMany({ where: { day: { gte: range.start, lt: range.end } }, select: { day: true } });
  return new Set(rows.map((r) => r.day.toISOString().slice(0, 10)));
}

export async function planFor(db: Db, range: TimeRange, nowMs: number, lagMs: number): Promise<MonthPlan> {
  return planMonth(range, await computedDays(db, range), nowMs, lagMs);
}
