import { Prisma, type LedgerEntry } from '../../generated/prisma/client';
import { periodic } from '../infra/periodic';
import type { Db } from '../infra/prisma';
import type { Logger } from '../infra/logger';
import { priceUsage } from './pricing';
import { snapshotFromJson, type Ledger, type Settlement } from './ledger';
import type { GateApplier, GateSettlement } from './gate-applier';

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
    const rows = await expiredHeldRows(deps, swept);
    swept = true;
    let settled = 0;
    const toGate: Promise<boolean>[] = [];
    for (const r of rows) {
      const { settlement, gate } = orphanSettlement(r);
      if (!(await deps.ledger.settle(r.requestId, settlement))) continue;
      settled++;
      deps.onReaped?.();
      // Redis refusing: the row stays pending in the ledger and the gate applier retries it. Sent together, so a
      // hanging Redis delays the whole pass by one wait, not one per row.
      toGate.push(deps.gate.apply(gate, 1_000));
      deps.logger.warn(
        { requestId: r.requestId, tenantId: r.tenantId, tokens: r.checkpointTokens, costMicros: settlement.costMicros.toString() },
        'reaper settled an orphaned request',
      );
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

/**
 * The HELD rows whose lease expired, oldest lease first. After the first pass only recent rows are looked at: both
 * bounds, so the DEFAULT and next month's partitions are pruned too (started_at is an instance's clock, within far
 * less than an hour of Postgres').
 */
async function expiredHeldRows(deps: { db: Db; batch?: number; windowMs?: number }, recentOnly: boolean): Promise<LedgerEntry[]> {
  const recent = recentOnly
    ? Prisma.sql`AND started_at > now() - ${deps.windowMs ?? 86_400_000} * interval '1 millisecond' AND started_at < now() + interval '1 hour'`
    : Prisma.empty;
  // Leases are judged by Postgres time only: this instance's clock may be off (or frozen while it lost Postgres).
  const expired = await deps.db.$queryRaw<{ request_id: string; started_at: Date }[]>`
    SELECT request_id, started_at FROM usage_ledger
     WHERE state = 'HELD' AND lease_expires_at < now() ${recent}
     ORDER BY lease_expires_at LIMIT ${deps.batch ?? 500}`;
  if (expired.length === 0) return [];
  return deps.db.ledgerEntry.findMany({
    where: { OR: expired.map((r) => ({ requestId: r.request_id, startedAt: r.started_at })), state: 'HELD' },
  });
}

/** An orphan's settlement from its last checkpoint (UPSTREAM_INTERRUPTED, ESTIMATED), and what the gate is owed. */
function orphanSettlement(r: LedgerEntry): { settlement: Settlement; gate: GateSettlement } {
  const model = r.checkpointModel ?? (r.checkpointTokens > 0 ? r.plannedModel : null);
  const prices = model ? (snapshotFromJson(r.priceSnapshot)[model] ?? null) : null;
  // A dead request that delivered nothing is charged nothing: its prompt may never have reached a model.
  const billable = prices !== null && prices.outputMicrosPerMillion !== null && r.checkpointTokens > 0;
  const priced = billable
    ? priceUsage(prices, { promptTokens: r.promptTokens, cachedPromptTokens: 0, cacheWriteTokens: 0, completionTokens: r.checkpointTokens })
    : { costMicros: 0n, unpricedPromptTokens: 0 };
  const settlement: Settlement = {
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
  };
  const gate: GateSettlement = {
    tenantId: r.tenantId,
    requestId: r.requestId,
    apiKeyId: r.apiKeyId,
    startedAt: r.startedAt,
    version: 1,
    actualMicros: priced.costMicros,
    actualTokens: r.promptTokens + r.checkpointTokens,
    tokensEstimate: r.promptTokens + r.maxTokens,
  };
  return { settlement, gate };
}
