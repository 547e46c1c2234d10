import type { Db } from '../infra/prisma';
import type { Logger } from '../infra/logger';
import type { Limiter } from '../limits';
import { monthOf, monthRange } from './period';

export interface Drift {
  readonly tenantId: string;
  readonly month: string;
  readonly redisSpentMicros: bigint;
  readonly ledgerSpentMicros: bigint;
}

export interface Reconciler {
  /** Compares Redis spent with the ledger's settled sum for every tenant active this month; returns lasting drifts. */
  reconcileOnce(): Promise<Drift[]>;
  start(intervalMs: number): void;
  stop(): Promise<void>;
}

/**
 * Postgres is the source of truth; Redis is the fast gate. A settlement lands in Postgres a moment before Redis,
 * so a difference is re-read once after `confirmMs` before it is reported, and only a lasting one is logged.
 * It reports and does not repair: a silent repair would hide the bug that caused the drift.
 */
export function makeReconciler(deps: { db: Db; limiter: Limiter; logger: Logger; confirmMs?: number; now?: () => Date }): Reconciler {
  const now = deps.now ?? (() => new Date());
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;

  const ledgerSums = async (month: string, tenantIds?: string[]) => {
    const { start, end } = monthRange(month);
    const rows = await deps.db.ledgerEntry.groupBy({
      by: ['tenantId'],
      where: { state: 'SETTLED', startedAt: { gte: start, lt: end }, ...(tenantIds ? { tenantId: { in: tenantIds } } : {}) },
      _sum: { costMicros: true },
    });
    return new Map(rows.map((r) => [r.tenantId, r._sum.costMicros ?? 0n]));
  };

  const diffs = async (month: string, sums: Map<string, bigint>) => {
    const out: Drift[] = [];
    for (const [tenantId, ledgerSpentMicros] of sums) {
      const state = await deps.limiter.budgetState(tenantId, month);
      if (state && state.spentMicros !== ledgerSpentMicros) out.push({ tenantId, month, redisSpentMicros: state.spentMicros, ledgerSpentMicros });
    }
    return out;
  };

  const reconcileOnce = async (): Promise<Drift[]> => {
    const month = monthOf(now());
    const first = await diffs(month, await ledgerSums(month));
    if (first.length === 0) return [];
    await new Promise((r) => setTimeout(r, deps.confirmMs ?? 1_000));
    const lasting = await diffs(month, await ledgerSums(month, first.map((d) => d.tenantId)));
    for (const d of lasting) {
      deps.logger.error(
        { tenantId: d.tenantId, month: d.month, redisSpentMicros: d.redisSpentMicros.toString(), ledgerSpentMicros: d.ledgerSpentMicros.toString() },
        'budget drift: Redis spent differs from the ledger',
      );
    }
    return lasting;
  };

  return {
    reconcileOnce,
    start(intervalMs) {
      timer ??= setInterval(() => {
        running ??= reconcileOnce()
          .catch((e) => deps.logger.warn({ err: e }, 'reconciler pass failed'))
          .finally(() => (running = null));
      }, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = null;
      await running;
    },
  };
}
