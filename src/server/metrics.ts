import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of one process, served at GET /metrics. Labels are bounded (models, codes, operations). */
/** `breakerStates` is read at every scrape, so the gauge shows each model's circuit as it is now. */
export function makeMetrics(opts: { breakerStates?: () => Record<string, 'closed' | 'open' | 'half_open'> } = {}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const ms = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000];
  return {
    registry,
    operations: new Counter({
      name: 'gateway_graphql_operations_total',
      help: 'GraphQL operations by operation name and result code (OK or the error code)',
      labelNames: ['operation', 'code'],
      registers: [registry],
    }),
    requestMs: new Histogram({
      name: 'gateway_chat_duration_ms',
      help: 'Whole chat request time by answering model',
      labelNames: ['model', 'outcome'],
      buckets: ms,
      registers: [registry],
    }),
    ttftMs: new Histogram({
      name: 'gateway_chat_ttft_ms',
      help: 'Time to first token by answering model',
      labelNames: ['model'],
      buckets: ms,
      registers: [registry],
    }),
    attempts: new Counter({
      name: 'gateway_upstream_attempts_total',
      help: 'Upstream attempts by model and result (ok or the error code)',
      labelNames: ['model', 'result'],
      registers: [registry],
    }),
    refusals: new Counter({
      name: 'gateway_auth_refusals_total',
      help: 'Requests refused before any operation ran (bad or missing key, auth backend down), by code',
      labelNames: ['code'],
      registers: [registry],
    }),
    denials: new Counter({ name: 'gateway_limiter_denials_total', help: 'Admissions refused by the gate', labelNames: ['reason'], registers: [registry] }),
    openStreams: new Gauge({ name: 'gateway_open_streams', help: 'chatStream subscriptions open now', registers: [registry] }),
    // Exactness under faults (the gate converging to the ledger): an operator sees trouble before a tenant does.
    budgetDriftMicros: new Gauge({
      name: 'gateway_budget_drift_micros',
      help: "Sum over tenants of |gate spent - ledger settled sum| (micro-USD) found by the reconciler's last pass, before its repair",
      registers: [registry],
    }),
    budgetDriftTenants: new Gauge({
      name: 'gateway_budget_drift_tenants',
      help: "Tenants whose gate spent differed from the ledger in the reconciler's last pass",
      registers: [registry],
    }),
    budgetRepairs: new Counter({
      name: 'gateway_budget_repairs_total',
      help: 'Tenant-months whose gate spent the reconciler rewrote from the ledger',
      registers: [registry],
    }),
    gatePendingAge: new Gauge({
      name: 'gateway_gate_oldest_pending_settlement_seconds',
      help: 'Age of the oldest settlement in the ledger not yet applied to the gate (Redis); 0 when none',
      registers: [registry],
    }),
    reaperSettlements: new Counter({
      name: 'gateway_reaper_settlements_total',
      help: "Requests settled by this instance's reaper after their lease expired (their process died or lost Postgres)",
      registers: [registry],
    }),
    /** Bounded label values for `operations` (see makeOperationLabel). */
    operationLabel: makeOperationLabel(),
    breaker: new Gauge({
      name: 'gateway_model_circuit_open',
      help: 'Circuit state per model: 0 closed, 0.5 half-open, 1 open',
      labelNames: ['model'],
      registers: [registry],
      collect() {
        for (const [model, s] of Object.entries(opts.breakerStates?.() ?? {})) this.set({ model }, s === 'open' ? 1 : s === 'half_open' ? 0.5 : 0);
      },
    }),
  };
}

export type Metrics = ReturnType<typeof makeMetrics>;

/** Most distinct operation names kept as label values; later ones are counted as "(other)". */
const MAX_OPERATION_LABELS = 200;

/**
 * Operation names come from clients, so as label values they would be unbounded (every new name is a new series
 * held for the life of the process): the first MAX_OPERATION_LABELS names are kept, later ones share "(other)".
 */
function makeOperationLabel(max = MAX_OPERATION_LABELS): (name: string | null | undefined) => string {
  const seen = new Set<string>();
  return (name) => {
    const n = name || 'anonymous';
    if (seen.has(n)) return n;
    if (seen.size >= max) return '(other)';
    seen.add(n);
    return n;
  };
}
