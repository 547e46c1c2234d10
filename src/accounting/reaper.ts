import { Prisma } from '../../generated/prisma/client';
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
  /**
   * How far back a HELD row can start and still be found by a routine pass (longer than any request runs; default a
   * day): the pass then reads this month's ledger partition only. A process's first pass looks at every month, for
   * rows left while no instance ran.
   */
  windowMs?: number;
  /** Told of every row this process's reaper settled (metrics). */
  onReaped?: () => void;
}): Reaper {
  let swept = false;
  const reapOnce = async (): Promise<number> => {
    // Both bounds, so the DEFAULT and next month's partitions are pruned too (started_at is an instance's clock, within
    // far less than an hour of Postgres').
    const recent = swept
      ? Prisma.sql`AND started_at > now() - ${deps.windowMs ?? 86_400_000} * interval '1 millisecond' AND started_at < now() + interval '1 hour'`
      : Prisma.empty;
    // Leases are judged by Postgres time only: this instance's clock may be off (or frozen while it lost Postgres).
    const expired = await deps.db.$queryRaw<{ request_id: string; started_at: Date }[]>`
      SELECT request_id, started_at FROM usage_ledger
       WHERE state = 'HELD' AND lease_expires_at < now() ${recent}
       ORDER BY lease_expires_at LIMIT ${deps.batch ?? 500}`;
    swept = true;
    if (expired.length === 0) return 0;
    const rows = await deps.db.ledgerEntry.findMany({
      where: { OR: expired.map((r) => ({ requestId: r.request_id, startedAt: r.started_at })), state: 'HELD' },
    });
    let settled = 0;
    const toGate: Promise<boolean>[] = [];
    for (const r of rows) {
      const model = r.checkpointModel ?? (r.checkpointTokens > 0 ? r.plannedModel : null);
      const prices = model ? snapshotFromJson(r.priceSnapshot)[model] ?? null : null;
      // A dead request that delivered nothing is charged nothing: its prompt may never have reached a model.
      const billable = prices !== null && prices.outputMicrosPerMillion !== null && r.checkpointTokens > 0;
      const priced = billable ? priceUsage(prices, { promptTokens: r.promptTokens, cachedPromptTokens: 0, cacheWriteTokens: 0, completionTokens: r.checkpointTokens }) : { costMicros: 0n, unpricedPromptTokens: 0 };
      const ok = await deps.ledger.settle(r.requestId, {
        startedAt: r.startedAt,
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
