import { periodic } from '../infra/periodic';
import type { Db } from '../infra/prisma';
import type { Logger } from '../infra/logger';
import { priceUsage } from './pricing';
import { snapshotFromJson, type Ledger } from './ledger';
import type { GateApplier } from './gate-applier';

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
export function makeReaper(deps: {
  db: Db;
  ledger: Ledger;
  gate: Pick<GateApplier, 'apply'>;
  intervalMs: number;
  logger: Logger;
  batch?: number;
  /** Told of every row this process's reaper settled (metrics). */
  onReaped?: () => void;
}): Reaper {
  const reapOnce = async (): Promise<number> => {
    // Leases are judged by Postgres time only: this instance's clock may be off (or frozen while it lost Postgres).
    const expired = await deps.db.$queryRaw<{ request_id: string }[]>`
      SELECT request_id FROM usage_ledger WHERE state = 'HELD' AND lease_expires_at < now() ORDER BY lease_expires_at LIMIT ${deps.batch ?? 500}`;
    const rows = await deps.db.ledgerEntry.findMany({ where: { requestId: { in: expired.map((r) => r.request_id) }, state: 'HELD' } });
    let settled = 0;
    const toGate: Promise<boolean>[] = [];
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
      deps.onReaped?.();
      // Redis refusing: the row stays pending in the ledger and the gate applier retries it. Sent together, so a
      // hanging Redis delays the whole pass by one wait, not one per row.
      toGate.push(
        deps.gate.apply(
          {
            tenantId: r.tenantId,
            requestId: r.requestId,
            apiKeyId: r.apiKeyId,
            startedAt: r.startedAt,
            version: 1,
            actualMicros: priced.costMicros,
            actualTokens: r.promptTokens + r.checkpointTokens,
            tokensEstimate: r.promptTokens + r.maxTokens,
          },
          1_000,
        ),
      );
      deps.logger.warn({ requestId: r.requestId, tenantId: r.tenantId, tokens: r.checkpointTokens, costMicros: priced.costMicros.toString() }, 'reaper settled an orphaned request');
    }
    await Promise.all(toGate);
    return settled;
  };

  const job = periodic(reapOnce, deps.intervalMs, (e) => deps.logger.warn({ err: e }, 'reaper pass failed'));


  return {
    reapOnce,
    start: job.start,
    stop: job.stop,
  };
}
