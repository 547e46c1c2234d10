import type { Db } from '../infra/prisma';
import type { Logger } from '../infra/logger';
import { monthOf } from './period';
import { priceUsage } from './pricing';
import { snapshotFromJson, type Ledger } from './ledger';

/** The part of the limiter the reaper needs: releasing a dead request's hold and adding what it cost, once. */
export interface HoldReleaser {
  settle(i: { tenantId: string; requestId: string; month: string; actualMicros: bigint; actualTokens: number; tokensEstimate: number }): Promise<{ applied: boolean }>;
}

export interface Reaper {
  /** Settles every HELD row whose lease has expired; returns how many this call settled. */
  reapOnce(): Promise<number>;
  start(): void;
  stop(): Promise<void>;
}

/**
 * A HELD row whose lease expired belongs to a process that died mid-request (its checkpointer would have renewed
 * the lease). It is settled from its last checkpoint as UPSTREAM_INTERRUPTED / ESTIMATED and its hold released,
 * so nothing is lost when a process is killed. Safe on every instance at once: settlement is guarded by state.
 */
export function makeReaper(deps: { db: Db; ledger: Ledger; limiter: HoldReleaser; intervalMs: number; logger: Logger; batch?: number }): Reaper {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<number> | null = null;

  const reapOnce = async (): Promise<number> => {
    const rows = await deps.db.ledgerEntry.findMany({
      where: { state: 'HELD', leaseExpiresAt: { lt: new Date() } },
      orderBy: { leaseExpiresAt: 'asc' },
      take: deps.batch ?? 500,
    });
    let settled = 0;
    for (const r of rows) {
      const model = r.checkpointModel ?? (r.checkpointTokens > 0 ? r.plannedModel : null);
      const prices = model ? snapshotFromJson(r.priceSnapshot)[model] ?? null : null;
      // A dead request that delivered nothing is charged nothing: its prompt may never have reached a model.
      const billable = prices !== null && prices.outputMicrosPerMillion !== null && r.checkpointTokens > 0;
      const priced = billable ? priceUsage(prices, { promptTokens: r.promptTokens, cachedPromptTokens: 0, cacheWriteTokens: 0, completionTokens: r.checkpointTokens }) : { costMicros: 0n, unpricedPromptTokens: 0 };
      const ok = await deps.ledger.settle(r.requestId, {
        model: billable ? model : null,
        attempts: [], // a HELD row has none recorded: attempts are written at settlement, which never happened
        promptTokens: billable ? r.promptTokens : 0,
        completionTokens: r.checkpointTokens,
        cachedPromptTokens: 0, // a dead request's cache usage was never reported: its prompt is billed as uncached
        cacheWriteTokens: 0,
        unpricedPromptTokens: priced.unpricedPromptTokens,
        prices: billable ? prices : null,
        costMicros: priced.costMicros,
        outcome: 'UPSTREAM_INTERRUPTED',
        usageSource: 'ESTIMATED',
        endedAt: new Date(),
      });
      if (!ok) continue;
      settled++;
      await deps.limiter
        .settle({
          tenantId: r.tenantId,
          requestId: r.requestId,
          month: monthOf(r.startedAt),
          actualMicros: priced.costMicros,
          actualTokens: r.promptTokens + r.checkpointTokens,
          tokensEstimate: r.promptTokens + r.maxTokens,
        })
        .catch((e) => deps.logger.warn({ err: e, requestId: r.requestId }, 'reaper: Redis settle failed; the hold expires by itself'));
      deps.logger.warn({ requestId: r.requestId, tenantId: r.tenantId, tokens: r.checkpointTokens, costMicros: priced.costMicros.toString() }, 'reaper settled an orphaned request');
    }
    return settled;
  };

  const tick = () => {
    if (running) return;
    running = reapOnce()
      .catch((e) => {
        deps.logger.warn({ err: e }, 'reaper pass failed');
        return 0;
      })
      .finally(() => (running = null));
  };

  return {
    reapOnce,
    start() {
      timer ??= setInterval(tick, deps.intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = null;
      await running;
    },
  };
}
