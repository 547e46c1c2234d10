import type { Db } from '../infra/prisma';
import { monthOf, monthRange } from '../accounting/period';
import { projectBudgetExhaustion } from '../reports/projection';

export interface ForecastJob {
  /** One pass over the tenants with a budget and spend this month; returns how many forecasts it added. */
  forecastOnce(now?: Date): Promise<number>;
}

/**
 * "At this month's pace the budget runs out on <date>": at most one per tenant and UTC day, whichever instance gets
 * there first (the outbox's unique (tenant, forecast_day) key), and only when the day falls within the month. Read
 * from the settled spend the triggers keep, so a pass costs one query however large the ledger.
 */
export function makeForecastJob(db: Db): ForecastJob {
  return {
    async forecastOnce(now = new Date()) {
      const { start, end } = monthRange(monthOf(now));
      const today = now.toISOString().slice(0, 10);
      const rows = await db.$queryRaw<{ tenantId: string; spent: bigint; budget: bigint }[]>`
        SELECT s.tenant_id::text AS "tenantId", s.spent_micros AS spent, t.monthly_budget_micros AS budget
          FROM tenant_month_spend s JOIN tenants t ON t.id = s.tenant_id
         WHERE s.month = ${start.toISOString().slice(0, 10)}::date AND t.monthly_budget_micros IS NOT NULL AND s.spent_micros < t.monthly_budget_micros
           AND NOT EXISTS (SELECT 1 FROM budget_alert_outbox o WHERE o.tenant_id = s.tenant_id AND o.forecast_day = ${today}::date)`;
      let added = 0;
      for (const r of rows) {
        const exhaustsOn = projectBudgetExhaustion({ spentMicros: r.spent, budgetMicros: r.budget, monthStart: start, monthEnd: end, now });
        if (exhaustsOn === null) continue;
        added += await db.$executeRaw`
          INSERT INTO budget_alert_outbox (event_id, tenant_id, kind, month, forecast_day, exhausts_on, spent_micros, budget_micros)
          VALUES (gen_random_uuid(), ${r.tenantId}::uuid, 'FORECAST', ${start.toISOString().slice(0, 10)}::date, ${today}::date, ${exhaustsOn}::date, ${r.spent}, ${r.budget})
          ON CONFLICT (tenant_id, forecast_day) DO NOTHING`;
      }
      return added;
    },
  };
}
