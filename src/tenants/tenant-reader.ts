import type { Db } from '../infra/prisma';
import type { Limiter } from '../limits';
import type { Ledger } from '../accounting/ledger';
import { monthOf } from '../accounting/period';
import { badInput, rethrowUnavailable } from '../errors';
import { reseedBudget } from '../accounting/budget-reseed';
import type { TenantStore } from './tenant-store';
import type { TenantView } from './tenant-view';

export interface TenantReader {
  /** Settings plus this month's spent and held, from the same numbers the budget gate uses. */
  view(tenantId: string): Promise<TenantView>;
  /** By name, `first` (1..500) at a time, after the tenant named `after`. */
  list(first: number, after: string | null): Promise<TenantView[]>;
}

export function makeTenantReader(deps: { db: Db; tenants: TenantStore; limiter: Limiter; ledger: Ledger; holdTtlMs: number }): TenantReader {
  async function view(tenantId: string): Promise<TenantView> {
    const t = await deps.tenants.get(tenantId);
    const month = monthOf(new Date());
    let state = await deps.limiter.budgetState(t.id, month).catch(rethrowUnavailable('Redis'));
    if (!state) {
      await reseedBudget(deps, { tenantId: t.id, month, requestsPerMinute: t.requestsPerMinute, tokensPerMinute: t.tokensPerMinute });
      state = (await deps.limiter.budgetState(t.id, month).catch(rethrowUnavailable('Redis'))) ?? { spentMicros: 0n, heldMicros: 0n };
    }
    return {
      id: t.id,
      name: t.name,
      monthlyBudgetMicros: t.monthlyBudgetMicros,
      spentMicros: state.spentMicros,
      heldMicros: state.heldMicros,
      requestsPerMinute: t.requestsPerMinute,
      tokensPerMinute: t.tokensPerMinute,
      maxConcurrentRequests: t.maxConcurrentRequests,
      suspension: t.suspension,
      modelAccess: t.modelAccess,
    };
  }
  return {
    view,
    async list(first, after) {
      if (!Number.isInteger(first) || first < 1 || first > 500) throw badInput('first', `expected a whole number from 1 to 500, got ${first}`);
      const rows = await deps.db.tenant.findMany({
        select: { id: true },
        orderBy: { name: 'asc' },
        take: first,
        ...(after === null ? {} : { where: { name: { gt: after } } }),
      });
      return Promise.all(rows.map((r) => view(r.id)));
    },
  };
}
