import type { ModelInfo } from '../catalog/types';
import { AppError } from '../errors';
import { describeError, skippedAttempt, type AttemptRecord, type ErrorDescription, type UsageSource } from './attempts';
import type { ModelHealth } from './model-health';
import type { Plan, PlannedModel } from './plan';

export interface AttemptUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly source: UsageSource;
}

export interface FallbackOptions<T> {
  /** May the next model be tried after this error? */
  readonly isRetryable: (e: unknown) => boolean;
  /** Skips models it says are unavailable; gets each attempt's outcome. */
  readonly health?: ModelHealth;
  /** Milliseconds, for attempt latencies. Default Date.now. */
  readonly clock?: () => number;
  /** Error code, Retry-After and chain-ending errors; default `describeError`. */
  readonly describe?: (e: unknown) => ErrorDescription;
  /** Tokens a successful result consumed, for its attempt record; default zeros, ESTIMATED. */
  readonly usageOf?: (result: T) => AttemptUsage;
}

export interface FallbackResult<T> {
  readonly result: T;
  readonly model: ModelInfo;
  readonly attempts: readonly AttemptRecord[];
}

/**
 * Walks the plan's chain: each model the health allows is attempted in turn until one succeeds.
 *
 * - A model the health skips (open breaker, Retry-After pending) is recorded with error CIRCUIT_OPEN or
 *   RETRY_AFTER and latency 0, and not attempted.
 * - A retryable error counts as a failure for the model's breaker (and its Retry-After is honoured), and the walk
 *   goes on. A non-retryable error stops the walk and is rethrown as it is (a fatal 400 is the caller's to map).
 * - An error that `describe` says ends the chain (the gateway's own key refused) stops the walk as a failure of
 *   the whole chain.
 *
 * @throws AppError UPSTREAM_UNAVAILABLE "every model of profile X failed", `extensions.attempts` listing every
 *   attempt and skip, when no model succeeded.
 */
export async function runWithFallback<T>(
  plan: Plan,
  attempt: (m: PlannedModel, index: number) => Promise<T>,
  opts: FallbackOptions<T>,
): Promise<FallbackResult<T>> {
  const clock = opts.clock ?? Date.now;
  const describe = opts.describe ?? describeError;
  const health = opts.health;
  const attempts: AttemptRecord[] = [];

  for (let index = 0; index < plan.chain.length; index++) {
    const planned = plan.chain[index]!;
    const id = planned.model.id;
    const availability = health?.check(id) ?? { ok: true };
    if (!availability.ok) {
      attempts.push(skippedAttempt(id, availability.reason));
      continue;
    }
    const startedAt = clock();
    try {
      const result = await attempt(planned, index);
      health?.recordSuccess(id);
      const usage = opts.usageOf?.(result) ?? { promptTokens: 0, completionTokens: 0, source: 'ESTIMATED' as const };
      attempts.push({
        model: id,
        ok: true,
        error: null,
        latencyMs: clock() - startedAt,
        promptTokens: usage.promptTokens,
        completionTokens: usage.completionTokens,
        usageSource: usage.source,
      });
      return { result, model: planned.model, attempts };
    } catch (e) {
      const d = describe(e);
      attempts.push({
        model: id,
        ok: false,
        error: d.code,
        latencyMs: clock() - startedAt,
        promptTokens: 0,
        completionTokens: 0,
        usageSource: 'ESTIMATED',
      });
      if (d.endsChain) {
        health?.recordNeutral(id);
        break;
      }
      if (!opts.isRetryable(e)) {
        health?.recordNeutral(id);
        throw e;
      }
      health?.recordFailure(id);
      if (d.retryAfterMs !== undefined) health?.markRetryAfter(id, d.retryAfterMs);
    }
  }
  throw chainFailed(plan, attempts);
}

/** UPSTREAM_UNAVAILABLE for a plan whose every model failed or was skipped. */
export function chainFailed(plan: Plan, attempts: readonly AttemptRecord[], message?: string): AppError {
  // The client sees the contract's Attempt fields only; the token counts are the ledger's business.
  return new AppError('UPSTREAM_UNAVAILABLE', message ?? `every model of profile ${plan.profile.name} failed`, {
    attempts: attempts.map(({ model, ok, error, latencyMs }) => ({ model, ok, error, latencyMs })),
  });
}
