import type { Redis } from 'ioredis';
import type { Config } from './config';
import { createPrisma } from './infra/prisma';
import { createSqlPool } from './infra/postgres';
import { createGateRedis, describeGate, pingGate, waitReady } from './infra/redis';
import { createLogger, type Logger } from './infra/logger';
import { periodic } from './infra/periodic';
import { makeEpoch } from './infra/epoch';
import { makeCatalogStore } from './catalog/catalog-store';
import { makeTenantStore } from './tenants/tenant-store';
import { makeAuthenticator } from './tenants/authenticate';
import { makeAuthFailures } from './tenants/auth-failures';
import { makeAdminService } from './tenants/admin-service';
import { makeKeyAdminService } from './tenants/key-admin';
import { makeCachePriceService } from './catalog/cache-prices';
import { makeTenantReader } from './tenants/tenant-reader';
import { makeLimiter } from './limits';
import { SCRIPTS } from './limits/scripts';
import { makeLedger } from './accounting/ledger';
import { makeCheckpointer } from './accounting/checkpointer';
import { makeReaper } from './accounting/reaper';
import { makeReconciler, type Drift } from './accounting/reconciler';
import { makeGateLedger } from './accounting/gate-ledger';
import { makeGateApplier } from './accounting/gate-applier';
import { makeGateRepair } from './limits/repair';
import { makeDrain } from './chat/drain';
import { AppError } from './errors';
import { toGraphQLError } from './graphql/errors';
import { makeModelHealth, type RoutingOptions } from './routing';
import { makeUpstreamClient } from './upstream';
import { makeIdempotency } from './chat/idempotency';
import { makeKeySignals } from './chat/key-signals';
import { makeChatService } from './chat/chat-service';
import { makeReportsService, makeRollupJob } from './reports';
import { makePager } from './reports/pages';
import { startSimulator, type Simulator } from './simulator/server';
import { buildSchema } from './graphql/schema';
import { makeContextBuilder } from './server/context-builder';
import { createHttpServer } from './server/http-server';
import { mountPlayground } from './server/playground';
import { makeOriginPolicy } from './server/cors';
import { openaiRouter } from './openai/router';
import { makeMetrics } from './server/metrics';
import type { Services } from './services';
import { startTracing, traceChat, traceUpstream } from './telemetry';

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
 * The composition root: the only place that creates clients and wires services. Fails fast, naming the URL, when
 * Postgres or Redis cannot be reached.
 */
export async function buildApp(config: Config, opts: BuildOptions = {}): Promise<App> {
  const logger = opts.logger ?? createLogger(config.LOG_LEVEL);
  const db = createPrisma(config.DATABASE_URL);
  const sql = createSqlPool(config.DATABASE_URL);
  const redisTarget = { url: config.REDIS_URL, clusterNodes: config.REDIS_CLUSTER_NODES };
  // Settlements apply what Postgres decided: they pass a Redis Cluster failover fence (see infra/redis.ts).
  const gate = createGateRedis(redisTarget, { logger, unfencedScripts: [SCRIPTS.settle] });
  const redis = gate.client;
  const closers: Array<() => Promise<unknown>> = [];
  const closeAll = async () => {
    for (const c of closers.reverse()) await c().catch((e) => logger.warn({ err: e }, 'shutdown step failed'));
    closers.length = 0;
  };
  closers.push(() => db.$disconnect(), () => sql.end(), async () => redis.disconnect());

  try {
    await db.$queryRaw`SELECT 1`.catch((e) => {
      throw new StartupError(`cannot reach Postgres at ${safeUrl(config.DATABASE_URL)} (${(e as Error).message}). Start it, e.g. docker compose up -d postgres`);
    });
    await waitReady(redis, 5_000).then(() => pingGate(gate)).catch((e) => {
      throw new StartupError(`cannot reach Redis at ${gate.kind === 'single' ? safeUrl(config.REDIS_URL) : describeGate(redisTarget)} (${(e as Error).message}). Start it, e.g. docker compose up -d redis`);
    });

    let simulator: Simulator | null = null;
    let upstreamUrl = config.GLOBAL_API_BASE_URL;
    if (config.useSimulator) {
      simulator = await startSimulator({ port: 0, latencyScale: config.SIM_LATENCY_SCALE });
      closers.push(() => simulator!.close());
      upstreamUrl = simulator.url;
      logger.info({ url: simulator.url }, 'GLOBAL_API_KEY is unset: serving from the embedded upstream simulator');
    }

    const routing: RoutingOptions = {
      firstTokenFloorMs: config.FIRST_TOKEN_FLOOR_MS,
      ttftMultiple: config.FIRST_TOKEN_TTFT_MULTIPLE,
      idleTimeoutMs: config.IDLE_TIMEOUT_MS,
      totalTimeoutMs: config.TOTAL_TIMEOUT_MS,
    };
    // A hold outlives the longest request; the reaper settles dead ones long before it expires.
    const holdTtlMs = config.TOTAL_TIMEOUT_MS + config.LEASE_MS + 60_000;
    const epoch = makeEpoch(redis, { maxAgeMs: config.CACHE_MAX_AGE_MS });
    const catalog = makeCatalogStore(db, epoch);
    const tenants = makeTenantStore(db, epoch);
    const limiter = makeLimiter(gate.limits, { clockOffsetMs: opts.gateClockOffsetMs });
    const ledger = makeLedger(db, sql);
    // Tracing is on only with OTEL_EXPORTER_OTLP_ENDPOINT; off, nothing is wrapped.
    const tracing = startTracing({ endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT, serviceName: config.OTEL_SERVICE_NAME });
    if (tracing) closers.push(() => tracing.shutdown());
    const health = makeModelHealth();
    const metrics = makeMetrics({ breakerStates: () => health.states() });
    const gateLedger = makeGateLedger(db);
    const gateApplier = makeGateApplier({
      gateLedger,
      limiter,
      logger,
      intervalMs: config.GATE_APPLY_INTERVAL_MS,
      onPendingAge: (ms) => metrics.gatePendingAge.set(ms / 1000),
    });
    const drain = makeDrain();
    const gateRepair = makeGateRepair(redis);
    const checkpointer = makeCheckpointer({ db, leaseMs: config.LEASE_MS, intervalMs: config.CHECKPOINT_INTERVAL_MS, logger });
    const reaper = makeReaper({ db, ledger, gate: gateApplier, intervalMs: config.REAPER_INTERVAL_MS, logger, onReaped: () => metrics.reaperSettlements.inc() });
    const untracedUpstream = makeUpstreamClient({ baseUrl: upstreamUrl, apiKey: config.GLOBAL_API_KEY ?? 'simulator', logger, connections: config.UPSTREAM_MAX_CONNECTIONS });
    const upstream = tracing ? traceUpstream(untracedUpstream, tracing, upstreamUrl) : untracedUpstream;
    closers.push(() => upstream.close());

    // Keys are kept 48 h (the contract promises at least 24 h), then purged hourly.
    // One subscriber connection per process carries every idempotent retry's wake-up.
    // A Cluster's duplicate subscribes the same way (classic pub/sub reaches every node), with the same events.
    const subscriber: Redis = gate.kind === 'single' ? gate.client.duplicate() : (gate.client.duplicate() as unknown as Redis);
    subscriber.on('error', (e) => logger.debug({ err: e }, 'redis subscriber connection error'));
    closers.push(async () => subscriber.disconnect());
    await waitReady(subscriber, 5_000);
    const signals = makeKeySignals({ publisher: redis, subscriber, maxWaiters: config.IDEMPOTENCY_MAX_WAITERS, logger });
    closers.push(() => signals.close());
    const idempotency = makeIdempotency({ db, ttlMs: 48 * 3600_000, ownerLeaseMs: holdTtlMs, signals });
    const untracedChat = makeChatService({
      catalog,
      tenants,
      limiter,
      ledger,
      routing,
      maxMessageBytes: config.MAX_REQUEST_BYTES,
      leaseMs: config.LEASE_MS,
      holdTtlMs,
      logger,
      upstream,
      health,
      checkpointer,
      gate: gateApplier,
      gateLedger,
      gateRepair,
      drain,
      idleTimeoutMs: config.IDLE_TIMEOUT_MS,
      totalTimeoutMs: config.TOTAL_TIMEOUT_MS,
      idempotency,
      observe: (e) => {
        if (e.model) {
          metrics.requestMs.observe({ model: e.model, outcome: e.outcome }, e.totalMs);
          if (e.ttftMs !== null) metrics.ttftMs.observe({ model: e.model }, e.ttftMs);
        }
        for (const a of e.attempts) metrics.attempts.inc({ model: a.model, result: a.ok ? 'ok' : (a.error ?? 'error') });
      },
      onDenied: (reason) => metrics.denials.inc({ reason }),
    });
    const chat = tracing ? traceChat(untracedChat, tracing) : untracedChat;

    const services: Services = {
      auth: makeAuthenticator({ db, adminKey: config.ADMIN_API_KEY, epoch, failures: makeAuthFailures(redis, { perWindow: config.AUTH_FAILURES_PER_MINUTE }) }),
      epoch,
      catalog,
      tenants,
      tenantReader: makeTenantReader({ db, tenants, limiter, ledger, holdTtlMs }),
      admin: makeAdminService({ db, epoch, logger }),
      keyAdmin: makeKeyAdminService({ db, epoch, logger }),
      cachePrices: makeCachePriceService({ db, epoch, logger }),
      chat,
      reports: makeReportsService({ db }),
      routing,
      pages: makePager(db),
    };

    const buildContext = makeContextBuilder(services, logger, metrics);
    const server = await createHttpServer({
      schema: buildSchema(),
      // Draining: every new operation, on any transport, is refused so the client retries on another instance.
      buildContext: async (i) => {
        if (drain.draining) throw toGraphQLError(new AppError('SERVICE_UNAVAILABLE', 'this gateway instance is shutting down; retry, another instance will answer'));
        return buildContext(i);
      },
      metrics,
      logger,
      production: config.NODE_ENV === 'production',
      // The body limit leaves room for JSON framing around the messages' own cap.
      maxBodyBytes: config.MAX_REQUEST_BYTES + 64 * 1024,
      ready: async () => {
        if (drain.draining) throw new Error('draining: shutting down');
        await Promise.all([db.$queryRaw`SELECT 1`, pingGate(gate)]);
      },
      mount: (app) => {
        mountPlayground(app);
        app.use('/v1', openaiRouter({ services, logger, metrics, maxBodyBytes: config.MAX_REQUEST_BYTES + 64 * 1024, origins: makeOriginPolicy(config.corsOrigins) }));
      },
      corsOrigins: config.corsOrigins,
      subscriptionsPerConnection: config.SUBSCRIPTIONS_PER_CONNECTION,
      streamHeartbeatMs: config.STREAM_HEARTBEAT_MS,
      requestContext: tracing ? (headers, fn) => tracing.runWithHeaders(headers, fn) : undefined,
    });
    const port = await server.listen(config.PORT, opts.host ?? '0.0.0.0');
    // Drain first: in-flight requests settle while the checkpointer still renews their leases.
    closers.push(async () => {
      await checkpointer.flush();
      await checkpointer.stop();
    });
    // Confirmations of gate settlements are written last (after the reaper's), before Postgres closes.
    closers.push(() => gateApplier.stop());
    closers.push(() => reaper.stop());
    const rollups = makeRollupJob({ db, logger });
    closers.push(() => rollups.stop());
    const reconciler = makeReconciler({
      db,
      limiter,
      gateLedger,
      repair: gateRepair,
      logger,
      onPass: (r) => {
        metrics.budgetDriftTenants.set(r.tenants);
        metrics.budgetDriftMicros.set(Number(r.driftMicros));
        metrics.budgetRepairs.inc(r.repaired);
      },
    });
    closers.push(() => reconciler.stop());
    closers.push(() => server.stop());

    if (opts.background !== false) {
      checkpointer.start();
      reaper.start();
      gateApplier.start();
      rollups.start(15 * 60_000);
      reconciler.start(config.RECONCILE_INTERVAL_MS);
      const purge = periodic(() => idempotency.purgeExpired(), 3600_000, (e) => logger.warn({ err: e }, 'idempotency purge failed'));
      purge.start();
      closers.push(() => purge.stop());
    }

    let stopping: Promise<void> | null = null;
    return {
      url: `http://127.0.0.1:${port}/graphql`,
      port,
      upstreamUrl,
      simulator,
      services,
      logger,
      reapOnce: () => reaper.reapOnce(),
      applyGatePending: () => gateApplier.applyPendingOnce(),
      reconcileOnce: () => reconciler.reconcileOnce(),
      stop: () =>
        (stopping ??= (async () => {
          // Clients close only after every run has settled and handed its final event over.
          const r = await drain.drain(config.DRAIN_TIMEOUT_MS);
          // The last run has handed over its final event; graphql-ws sends the operation's `complete` within the
          // same turn of promises. One event-loop turn lets it go out before the sockets close.
          await new Promise((resolve) => setImmediate(resolve));
          logger.info(r, 'drained');
          await closeAll();
        })()),
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/** A URL for logs and messages: never with its password. */
function safeUrl(u: string): string {
  try {
    const url = new URL(u);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(unparseable URL)';
  }
}
