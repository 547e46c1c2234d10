import type { Config } from './config';
import { createLogger, type Logger } from './infra/logger';
import type { Drift } from './accounting/reconciler';
import type { Simulator } from './simulator/server';
import type { Services } from './services';
import type { Alerts } from './alerts';
import { makeClosers } from './app/closers';
import { openClients } from './app/clients';
import { makeCore } from './app/services';
import { makeJobs } from './app/jobs';
import { startServers } from './app/servers';

export { StartupError } from './app/clients';

export interface App {
  readonly url: string;
  readonly port: number;
  readonly upstreamUrl: string;
  readonly simulator: Simulator | null;
  readonly services: Services;
  readonly logger: Logger;
  /** Runs the reaper once (tests, and the reaper's own timer). */
  reapOnce(): Promise<number>;
  /** Applies the settlements Redis has not confirmed yet, once (tests, and the gate applier's own timer). */
  applyGatePending(): Promise<number>;
  /** One reconciler pass: compares the gate with the ledger and repairs lasting drift. */
  reconcileOnce(): Promise<Drift[]>;
  /** Budget alerts: deliverOnce / forecastOnce run a pass of their jobs (tests, and the jobs' own timers). */
  readonly alerts: Alerts;
  /**
   * Drains, then closes: new operations get SERVICE_UNAVAILABLE and /readyz 503; requests in flight run on for up to
   * DRAIN_TIMEOUT_MS, the rest end with outcome SHUTDOWN; all settle in Postgres and Redis; then HTTP and graphql-ws
   * close and every client. Idempotent.
   */
  stop(): Promise<void>;
}

export interface BuildOptions {
  readonly logger?: Logger;
  /** Listen host; default 0.0.0.0 (127.0.0.1 in tests). */
  readonly host?: string;
  /** Start background jobs (checkpointer, reaper, rollups). Default true. */
  readonly background?: boolean;
  /** Tests only: skews the gate's clock (Redis TIME plus this many ms), to reach a rolling window's edge at once. */
  readonly gateClockOffsetMs?: () => number;
}

/**
 * The composition root: the only place that creates clients (app/clients.ts), wires the use cases
 * (app/services.ts), the background jobs (app/jobs.ts) and the servers (app/servers.ts). Fails fast, naming the URL,
 * when Postgres or Redis cannot be reached; a failed start closes what had started.
 */
export async function buildApp(config: Config, opts: BuildOptions = {}): Promise<App> {
  const logger = opts.logger ?? createLogger(config.LOG_LEVEL);
  const closers = makeClosers(logger);
  try {
    const clients = await openClients(config, logger, closers);
    const core = makeCore(config, clients, logger, closers, { gateClockOffsetMs: opts.gateClockOffsetMs });
    const jobs = makeJobs(config, clients, core, logger, closers);
    const port = await startServers(config, clients, core, logger, closers, opts.host ?? '0.0.0.0');
    if (opts.background !== false) jobs.start();

    let stopping: Promise<void> | null = null;
    return {
      url: `http://127.0.0.1:${port}/graphql`,
      port,
      upstreamUrl: clients.upstreamUrl,
      simulator: clients.simulator,
      services: core.services,
      logger,
      reapOnce: jobs.reapOnce,
      applyGatePending: jobs.applyGatePending,
      reconcileOnce: jobs.reconcileOnce,
      alerts: core.services.alerts,
      stop: () =>
        (stopping ??= (async () => {
          // Clients close only after every run has settled and handed its final event over.
          const r = await core.drain.drain(config.DRAIN_TIMEOUT_MS);
          // The last run has handed over its final event; graphql-ws sends the operation's `complete` within the
          // same turn of promises. One event-loop turn lets it go out before the sockets close.
          await new Promise((resolve) => setImmediate(resolve));
          logger.info(r, 'drained');
          await closers.closeAll();
        })()),
    };
  } catch (e) {
    await closers.closeAll();
    throw e;
  }
}
