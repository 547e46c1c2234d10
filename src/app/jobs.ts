import type { Config } from '../config';
import type { Logger } from '../infra/logger';
import { periodic } from '../infra/periodic';
import { makeReaper } from '../accounting/reaper';
import { makeReconciler, type Drift } from '../accounting/reconciler';
import { makeKeyReconciler } from '../accounting/key-reconciler';
import { makeRollupJob } from '../reports';
import { makeLedgerPartitions } from '../reports/ledger-partitions';
import type { Clients } from './clients';
import type { Closers } from './closers';
import type { Core } from './services';

/** The background jobs that keep the gate equal to the ledger (docs/architecture.md), and their one-pass handles. */
export interface Jobs {
  /** Starts every timer; each interval comes from Config. */
  start(): void;
  reapOnce(): Promise<number>;
  applyGatePending(): Promise<number>;
  reconcileOnce(): Promise<Drift[]>;
}

/** Builds the jobs (no timer runs until start) and registers their stops, in the order shutdown needs them. */
export function makeJobs(config: Config, clients: Clients, core: Core, logger: Logger, closers: Closers): Jobs {
  const { db } = clients;
  const { metrics, checkpointer, gateApplier } = core;
  // A routine reaper pass looks back further than any request can run (so it reads one or two month partitions).
  const reaperWindowMs = Math.max(86_400_000, 2 * (config.TOTAL_TIMEOUT_MS + config.LEASE_MS));
  const reaper = makeReaper({
    db,
    ledger: core.ledger,
    gate: gateApplier,
    intervalMs: config.REAPER_INTERVAL_MS,
    windowMs: reaperWindowMs,
    logger,
    onReaped: () => metrics.reaperSettlements.inc(),
  });
  const partitions = makeLedgerPartitions({ db, retentionMonths: config.LEDGER_RETENTION_MONTHS ?? null, logger });
  const rollups = makeRollupJob({ db, logger });
  const reconciler = makeReconciler({
    db,
    limiter: core.limiter,
    gateLedger: core.gateLedger,
    repair: core.gateRepair,
    logger,
    keys: makeKeyReconciler({ db, gateLedger: core.gateLedger, repair: core.gateRepair, logger }),
    onPass: (r) => {
      metrics.budgetDriftTenants.set(r.tenants);
      metrics.budgetDriftMicros.set(Number(r.driftMicros));
      metrics.budgetRepairs.inc(r.repaired);
    },
  });
  const purge = periodic(
    () => core.idempotency.purgeExpired(),
    config.IDEMPOTENCY_PURGE_INTERVAL_MS,
    (e) => logger.warn({ err: e }, 'idempotency purge failed'),
  );
  // Drain first: in-flight requests settle while the checkpointer still renews their leases.
  closers.push(async () => {
    await checkpointer.flush();
    await checkpointer.stop();
  });
  // Confirmations of gate settlements are written last (after the reaper's), before Postgres closes.
  closers.push(
    () => gateApplier.stop(),
    () => reaper.stop(),
    () => rollups.stop(),
    () => reconciler.stop(),
    () => purge.stop(),
    () => partitions.stop(),
  );
  return {
    start() {
      checkpointer.start();
      reaper.start();
      gateApplier.start();
      rollups.start(config.ROLLUP_INTERVAL_MS);
      reconciler.start(config.RECONCILE_INTERVAL_MS);
      purge.start();
      // The migration made this month's and next month's partitions; the job keeps two months ahead from now on.
      void partitions.ensureAhead().catch((e: unknown) => logger.warn({ err: e }, 'ledger partitions not created ahead; the hourly pass retries'));
      partitions.start(3600_000);
      core.services.alerts.start();
    },
    reapOnce: () => reaper.reapOnce(),
    applyGatePending: () => gateApplier.applyPendingOnce(),
    reconcileOnce: () => reconciler.reconcileOnce(),
  };
}
