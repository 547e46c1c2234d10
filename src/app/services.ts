import type { Config } from '../config';
import type { Logger } from '../infra/logger';
import { makeEpoch } from '../infra/epoch';
import { makeCatalogStore } from '../catalog/catalog-store';
import { makePriceAdmin } from '../catalog/price-admin';
import { makeTenantStore } from '../tenants/tenant-store';
import { makeAuthenticator } from '../tenants/authenticate';
import { makeAuthFailures } from '../tenants/auth-failures';
import { makeAdminService } from '../tenants/admin-service';
import { makeKeyAdminService } from '../tenants/key-admin';
import { makeTenantReader } from '../tenants/tenant-reader';
import { refuseSuspended } from '../tenants/access';
import { makeAccessAdmin } from '../tenants/access-admin';
import { makeModelSwitch } from '../catalog/model-enable';
import { makeLimiter, type Limiter } from '../limits';
import { makeGateRepair, type GateRepair } from '../limits/repair';
import { makeLedger, type Ledger } from '../accounting/ledger';
import { makeCheckpointer, type Checkpointer } from '../accounting/checkpointer';
import { makeGateLedger, type GateLedger } from '../accounting/gate-ledger';
import { makeGateApplier, type GateApplier } from '../accounting/gate-applier';
import { makeDrain, type Drain } from '../chat/drain';
import { makeIdempotency, type Idempotency } from '../chat/idempotency';
import { makeKeySignals } from '../chat/key-signals';
import { makeChatService } from '../chat/chat-service';
import type { SettleDeps } from '../chat/steps/settle';
import { makeAlerts } from '../alerts';
import { makeModelHealth, type RoutingOptions } from '../routing';
import { makeReportsService } from '../reports';
import { makePager } from '../reports/pages';
import { makeMetrics, type Metrics } from '../server/metrics';
import { traceChat } from '../telemetry';
import type { Services } from '../services';
import type { Clients } from './clients';
import type { Closers } from './closers';

/** How long an idempotency key is kept: the contract promises at least 24 h. */
const IDEMPOTENCY_TTL_MS = 48 * 3600_000;

/** The use cases and the shared parts the servers and the background jobs also need. */
export interface Core {
  readonly services: Services;
  readonly metrics: Metrics;
  readonly drain: Drain;
  readonly limiter: Limiter;
  readonly ledger: Ledger;
  readonly gateLedger: GateLedger;
  readonly gateApplier: GateApplier;
  readonly gateRepair: GateRepair;
  readonly checkpointer: Checkpointer;
  readonly idempotency: Idempotency;
}

export interface CoreOptions {
  /** Tests only: skews the gate's clock (Redis TIME plus this many ms). */
  readonly gateClockOffsetMs?: () => number;
}

/** Wires the use cases over the clients; nothing here opens a connection or starts a timer. */
export function makeCore(config: Config, clients: Clients, logger: Logger, closers: Closers, opts: CoreOptions): Core {
  const { db, sql, gate, redis } = clients;
  const routing = routingOptions(config);
  // A hold outlives the longest request; the reaper settles dead ones long before it expires.
  const holdTtlMs = config.TOTAL_TIMEOUT_MS + config.LEASE_MS + 60_000;
  const epoch = makeEpoch(redis, { maxAgeMs: config.CACHE_MAX_AGE_MS });
  const catalog = makeCatalogStore(db, epoch);
  const tenants = makeTenantStore(db, epoch);
  const limiter = makeLimiter(gate.limits, { clockOffsetMs: opts.gateClockOffsetMs });
  const ledger = makeLedger(db, sql);
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
  const signals = makeKeySignals({ publisher: redis, subscriber: clients.subscriber, maxWaiters: config.IDEMPOTENCY_MAX_WAITERS, logger });
  closers.push(() => signals.close());
  const idempotency = makeIdempotency({ db, ttlMs: IDEMPOTENCY_TTL_MS, ownerLeaseMs: holdTtlMs, signals });
  const chat = makeChatService({
    catalog,
    tenants,
    limiter,
    ledger,
    routing,
    maxMessageBytes: config.MAX_REQUEST_BYTES,
    leaseMs: config.LEASE_MS,
    holdTtlMs,
    logger,
    upstream: clients.upstream,
    health,
    checkpointer,
    gate: gateApplier,
    gateLedger,
    gateRepair,
    drain,
    idleTimeoutMs: config.IDLE_TIMEOUT_MS,
    totalTimeoutMs: config.TOTAL_TIMEOUT_MS,
    idempotency,
    observe: chatObserver(metrics),
    onDenied: (reason) => metrics.denials.inc({ reason }),
  });

  const alerts = makeAlerts({ db, epoch, logger, publisher: redis, subscriber: clients.subscriber, config });
  const services: Services = {
    auth: refuseSuspended(
      makeAuthenticator({ db, adminKey: config.ADMIN_API_KEY, epoch, failures: makeAuthFailures(redis, { perWindow: config.AUTH_FAILURES_PER_MINUTE }) }),
      tenants,
    ),
    epoch,
    catalog,
    tenants,
    tenantReader: makeTenantReader({ db, tenants, limiter, ledger, holdTtlMs }),
    admin: makeAdminService({ db, epoch, logger }),
    keyAdmin: makeKeyAdminService({ db, epoch, logger }),
    prices: makePriceAdmin({ db, epoch, logger }),
    access: makeAccessAdmin({ db, epoch, logger }),
    modelSwitch: makeModelSwitch({ db, epoch, logger }),
    chat: clients.tracing ? traceChat(chat, clients.tracing) : chat,
    reports: makeReportsService({ db }),
    routing,
    pages: makePager(db),
    alerts,
  };
  return { services, metrics, drain, limiter, ledger, gateLedger, gateApplier, gateRepair, checkpointer, idempotency };
}

function routingOptions(config: Config): RoutingOptions {
  return {
    firstTokenFloorMs: config.FIRST_TOKEN_FLOOR_MS,
    ttftMultiple: config.FIRST_TOKEN_TTFT_MULTIPLE,
    idleTimeoutMs: config.IDLE_TIMEOUT_MS,
    totalTimeoutMs: config.TOTAL_TIMEOUT_MS,
  };
}

/** Every finished chat request into the metrics: its duration and first token per model, and each attempt's result. */
function chatObserver(metrics: Metrics): NonNullable<SettleDeps['observe']> {
  return (e) => {
    if (e.model) {
      metrics.requestMs.observe({ model: e.model, outcome: e.outcome }, e.totalMs);
      if (e.ttftMs !== null) metrics.ttftMs.observe({ model: e.model }, e.ttftMs);
    }
    for (const a of e.attempts) metrics.attempts.inc({ model: a.model, result: a.ok ? 'ok' : (a.error ?? 'error') });
  };
}
