/**
 * Per-process health of each model: a circuit breaker and the upstream's Retry-After. Pure state plus a clock.
 *
 * Breaker (a small one of our own: cockatiel's breaker wraps the call it guards and keeps its own clock, while the
 * router needs to ask "may I try this model?" before a streamed attempt, record the outcome after it, and test the
 * cool-down with a fake clock):
 * - closed: `failureThreshold` (default 5) consecutive failures open it; a success resets the count.
 * - open: the model is skipped for `cooldownMs` (default 30 s).
 * - half_open: once the cool-down is over, one caller at a time gets `ok` (the probe); others are still skipped.
 *   The probe's success closes the breaker, its failure opens it for another cool-down. A probe that ends without
 *   telling anything (`recordNeutral`) frees the slot; one that never reports frees it after another cool-down.
 * Only what says something about the model counts: callers record retryable upstream failures as failures, and
 * client aborts, fatal 4xx and the gateway's own key being refused as neutral.
 *
 * Retry-After: `markRetryAfter(model, ms)` skips the model until then (capped at `maxRetryAfterMs`, default 5 min,
 * so one odd header cannot bench a model for a day).
 */
export type BreakerState = 'closed' | 'open' | 'half_open';

export type Availability = { readonly ok: true } | { readonly ok: false; readonly reason: 'CIRCUIT_OPEN' | 'RETRY_AFTER'; readonly untilMs: number };

export interface ModelHealth {
  /**
   * May the model be tried now? In half_open an `ok` answer reserves the single probe, so a caller that gets `ok`
   * must report the attempt with recordSuccess, recordFailure or recordNeutral.
   */
  check(model: string): Availability;
  recordSuccess(model: string): void;
  recordFailure(model: string): void;
  /** The attempt ended without saying anything about the model (client abort, fatal 4xx): frees a probe. */
  recordNeutral(model: string): void;
  markRetryAfter(model: string, ms: number): void;
  /** Breaker state of every model seen so far (models never seen are closed). For a Prometheus gauge. */
  states(): Record<string, BreakerState>;
}

export interface ModelHealthOptions {
  readonly failureThreshold?: number;
  readonly cooldownMs?: number;
  readonly maxRetryAfterMs?: number;
  readonly clock?: () => number;
}

interface Entry {
  state: 'closed' | 'open';
  failures: number;
  openedAt: number;
  /** When the current half-open probe was handed out; null when none is out. */
  probeAt: number | null;
  retryUntil: number;
}

export function makeModelHealth(opts: ModelHealthOptions = {}): ModelHealth {
  const threshold = opts.failureThreshold ?? 5;
  const cooldownMs = opts.cooldownMs ?? 30_000;
  const maxRetryAfterMs = opts.maxRetryAfterMs ?? 300_000;
  const clock = opts.clock ?? Date.now;
  if (!(threshold >= 1)) throw new RangeError('failureThreshold must be at least 1');
  const entries = new Map<string, Entry>();

  const entry = (model: string): Entry => {
    let e = entries.get(model);
    if (!e) {
      e = { state: 'closed', failures: 0, openedAt: 0, probeAt: null, retryUntil: 0 };
      entries.set(model, e);
    }
    return e;
  };

  const check = (model: string): Availability => {
    const e = entries.get(model);
    if (!e) return { ok: true };
    const now = clock();
    if (now < e.retryUntil) return { ok: false, reason: 'RETRY_AFTER', untilMs: e.retryUntil };
    if (e.state === 'closed') return { ok: true };
    const coolEnd = e.openedAt + cooldownMs;
    if (now < coolEnd) return { ok: false, reason: 'CIRCUIT_OPEN', untilMs: coolEnd };
    if (e.probeAt !== null && now < e.probeAt + cooldownMs) {
      return { ok: false, reason: 'CIRCUIT_OPEN', untilMs: e.probeAt + cooldownMs };
    }
    e.probeAt = now;
    return { ok: true };
  };

  return {
    check,
    recordSuccess(model) {
      const e = entry(model);
      e.state = 'closed';
      e.failures = 0;
      e.probeAt = null;
    },
    recordFailure(model) {
      const e = entry(model);
      const now = clock();
      if (e.state === 'open') {
        // A failed probe re-opens for a full cool-down; a late failure of a call started before the breaker
        // opened does not extend it.
        if (e.probeAt !== null) e.openedAt = now;
        e.probeAt = null;
        return;
      }
      e.failures += 1;
      if (e.failures >= threshold) {
        e.state = 'open';
        e.openedAt = now;
        e.probeAt = null;
      }
    },
    recordNeutral(model) {
      const e = entries.get(model);
      if (e) e.probeAt = null;
    },
    markRetryAfter(model, ms) {
      if (!(ms > 0)) return;
      const e = entry(model);
      e.retryUntil = Math.max(e.retryUntil, clock() + Math.min(ms, maxRetryAfterMs));
    },
    states() {
      const now = clock();
      const out: Record<string, BreakerState> = {};
      for (const [model, e] of entries) {
        out[model] = e.state === 'closed' ? 'closed' : now < e.openedAt + cooldownMs ? 'open' : 'half_open';
      }
      return out;
    },
  };
}
