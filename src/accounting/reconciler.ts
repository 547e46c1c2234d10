import { periodic, type Periodic } from '../infra/periodic';
import type { Db } from '../infra/prisma';
import type { Logger } from '../infra/logger';
import type { Limiter } from '../limits';
import type { GateRepair } from '../limits/repair';
import { WRITE_AHEAD_DEADLINE_MS } from './ledger';
import type { GateLedger } from './gate-ledger';
import type { KeyReconciler } from './key-reconciler';
import { monthOf, monthRange } from './period';

export interface Drift {
  readonly tenantId: string;
  readonly month: string;
  readonly redisSpentMicros: bigint;
  readonly ledgerSpentMicros: bigint;
  /** Settlements of this tenant-month not yet applied to the gate: the gap may be just that lag. */
  readonly pending: number;
  /** True when this pass rewrote the gate's spent from the ledger. */
  readonly repaired: boolean;
}

export interface Reconciler {
  /**
   * Compares Redis spent with the ledger's settled sum for every tenant active this month, repairs lasting drift,
   * and returns it (as found, before the repair).
   */
  reconcileOnce(): Promise<Drift[]>;
  start(intervalMs: number): void;
  stop(): Promise<void>;
}

/**
 * Postgres is the source of truth; Redis is the fast gate and converges to it. A settlement lands in Postgres a
 * moment before Redis (or, while Redis refuses writes, long before: the gate applier retries it), so a difference
 * is re-read after `confirmMs` and a tenant-month with settlements still pending for the gate is left to the
 * applier. What lasts beyond that is drift (a double count, an amount lost to a Redis failover): the gate's spent is
 * rewritten from the ledger, under a compare-and-set so a settlement landing meanwhile is neither lost nor counted
 * twice, and logged as an error, since it means something failed that the other mechanisms should have caught.
 */
export function makeReconciler(deps: ReconcilerDeps): Reconciler {
  let job: Periodic | null = null;
  const reconcileOnce = () => reconcileMonth(deps, monthOf((deps.now ?? (() => new Date()))()));
  return {
    reconcileOnce,
    start(intervalMs) {
      job ??= periodic(reconcileOnce, intervalMs, (e) => deps.logger.warn({ err: e }, 'reconciler pass failed'));
      job.start();
    },
    async stop() {
      await job?.stop();
    },
  };
}

interface ReconcilerDeps {
  db: Db;
  limiter: Pick<Limiter, 'budgetState'>;
  gateLedger: Pick<GateLedger, 'monthSettled'>;
  repair: Pick<GateRepair, 'repairSpent' | 'holdsOlderThan' | 'releaseLeftoverHold'>;
  logger: Logger;
  confirmMs?: number;
  now?: () => Date;
  /** API keys' spent, reconciled after the tenants' in every pass (left out: tenants only). */
  keys?: KeyReconciler;
  /** Told after every pass: how many tenants drifted and by how much in total (absolute micro-USD). */
  onPass?: (r: { tenants: number; driftMicros: bigint; repaired: number }) => void;
}

async function reconcileMonth(deps: ReconcilerDeps, month: string): Promise<Drift[]> {
  const sums = await ledgerSums(deps.db, month);
  await releaseOrphanHolds(deps, sums.keys(), month);
  const first = await candidates(deps, month, sums);
  const lasting: Drift[] = [];
  if (first.length > 0) {
    await new Promise((r) => setTimeout(r, deps.confirmMs ?? 1_000));
    for (const tenantId of first) {
      const d = await confirmAndRepair(deps, tenantId, month);
      if (d) lasting.push(d);
    }
  }
  await deps.keys?.reconcileKeys(month);
  let driftMicros = 0n;
  for (const d of lasting)
    driftMicros += d.redisSpentMicros > d.ledgerSpentMicros ? d.redisSpentMicros - d.ledgerSpentMicros : d.ledgerSpentMicros - d.redisSpentMicros;
  deps.onPass?.({ tenants: lasting.length, driftMicros, repaired: lasting.filter((d) => d.repaired).length });
  return lasting;
}

async function ledgerSums(db: Db, month: string): Promise<Map<string, bigint>> {
  const { start, end } = monthRange(month);
  const rows = await db.ledgerEntry.groupBy({
    by: ['tenantId'],
    where: { state: 'SETTLED', startedAt: { gte: start, lt: end } },
    _sum: { costMicros: true },
  });
  return new Map(rows.map((r) => [r.tenantId, r._sum.costMicros ?? 0n]));
}

async function candidates(deps: ReconcilerDeps, month: string, sums: Map<string, bigint>): Promise<string[]> {
  const out: string[] = [];
  for (const [tenantId, ledgerSpentMicros] of sums) {
    const state = await deps.limiter.budgetState(tenantId, month);
    if (state && state.spentMicros !== ledgerSpentMicros) out.push(tenantId);
  }
  return out;
}

/** Observe the gate first, then read the ledger: the compare-and-set then proves nothing landed in between. */
async function confirmAndRepair(deps: ReconcilerDeps, tenantId: string, month: string): Promise<Drift | null> {
  const observed = await deps.limiter.budgetState(tenantId, month);
  if (!observed) return null; // missing month: the next admission reseeds it from the ledger
  const { start, end } = monthRange(month);
  const ledger = await deps.gateLedger.monthSettled(tenantId, start, end);
  if (observed.spentMicros === ledger.spentMicros) return null;
  const repaired =
    ledger.pending === 0 &&
    (await deps.repair.repairSpent({ tenantId, month, observedMicros: observed.spentMicros, ledgerMicros: ledger.spentMicros })).repaired;
  const drift = { tenantId, month, redisSpentMicros: observed.spentMicros, ledgerSpentMicros: ledger.spentMicros, pending: ledger.pending, repaired };
  const log = {
    tenantId,
    month,
    redisSpentMicros: drift.redisSpentMicros.toString(),
    ledgerSpentMicros: drift.ledgerSpentMicros.toString(),
    pending: drift.pending,
  };
  if (repaired) deps.logger.error(log, 'budget drift: Redis spent differed from the ledger; rewritten from the ledger');
  else if (drift.pending > 0) deps.logger.warn(log, 'budget gap: settlements still pending for the gate; the gate applier is retrying them');
  else deps.logger.warn(log, 'budget drift: spent moved while repairing; retried next pass');
  return drift;
}

/**
 * Holds with no ledger row well after their reservation: their write-ahead INSERT failed and so did the release
 * (both stores cut at once). Nothing else would free them before they expire; the ledger proves no request runs.
 */
async function releaseOrphanHolds(deps: ReconcilerDeps, tenantIds: Iterable<string>, month: string): Promise<number> {
  let released = 0;
  for (const tenantId of tenantIds) {
    const old = await deps.repair.holdsOlderThan({ tenantId, month, olderThanMs: WRITE_AHEAD_DEADLINE_MS });
    if (old.length === 0) continue;
    // A month's holds belong to rows started in that month: the lookup reads its partition only.
    const { start, end } = monthRange(month);
    const rows = await deps.db.ledgerEntry.findMany({ where: { requestId: { in: old }, startedAt: { gte: start, lt: end } }, select: { requestId: true } });
    const known = new Set(rows.map((r) => r.requestId));
    for (const requestId of old.filter((id) => !known.has(id))) {
      if ((await deps.repair.releaseLeftoverHold({ tenantId, month, requestId })).released) {
        released++;
        deps.logger.warn({ tenantId, requestId }, 'released a hold whose request never reached the ledger');
      }
    }
  }
  return released;
}
