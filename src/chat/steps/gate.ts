import { AppError, isAppError, serviceUnavailable, UnreachableCaseError } from '../../errors';
import { reseedBudget, type ReseedDeps } from '../../accounting/budget-reseed';
import { formatUsd } from '../../accounting/money';
import type { Logger } from '../../infra/logger';
import type { AdmitInput, AdmitResult, LimitScope, Limiter, RateLimitName, WindowUse } from '../../limits';
import type { TenantSettings } from '../../tenants/tenant-store';

/** The tenant's rolling windows as an admission left them. */
export interface Windows {
  readonly requests: WindowUse | null;
  readonly tokens: WindowUse | null;
}

export interface GateDeps extends ReseedDeps {
  readonly limiter: Pick<Limiter, 'admit' | 'release' | 'reseed' | 'generation'>;
  readonly logger: Logger;
  /** Told of every refused admission (metrics). */
  readonly onDenied?: (reason: 'RATE_LIMITED' | 'BUDGET_EXCEEDED') => void;
}

/**
 * One atomic admission in Redis (budget hold, in-flight slot, rolling windows), reseeding a missing month from the
 * ledger first. A refusal throws its contract error and has changed nothing; Redis down: SERVICE_UNAVAILABLE.
 */
export async function reserveGate(deps: GateDeps, tenant: TenantSettings, gate: AdmitInput): Promise<{ generation: string; windows: Windows }> {
  let verdict: Exclude<AdmitResult, { reason: 'NEEDS_RESEED' }>;
  try {
    verdict = await admitReseeding(deps, tenant, gate);
  } catch (e) {
    throw isAppError(e) ? e : serviceUnavailable('Redis', e);
  }
  if (verdict.allowed) return { generation: verdict.generation, windows: { requests: verdict.requests, tokens: verdict.tokens } };
  switch (verdict.reason) {
    case 'RATE_LIMITED':
      deps.onDenied?.('RATE_LIMITED');
      throw new AppError('RATE_LIMITED', rateLimitMessage(verdict.limit, verdict.scope, verdict.retryAfterMs), {
        retryAfterMs: verdict.retryAfterMs,
        limit: verdict.limit,
        scope: verdict.scope,
      });
    case 'BUDGET_EXCEEDED':
      deps.onDenied?.('BUDGET_EXCEEDED');
      throw new AppError(
        'BUDGET_EXCEEDED',
        `this request could cost up to $${formatUsd(gate.holdMicros)}, more than the $${formatUsd(verdict.remainingMicros)} left of ${budgetOwner(verdict.scope)} budget`,
        { remainingUsd: formatUsd(verdict.remainingMicros), requestMaxUsd: formatUsd(gate.holdMicros), scope: verdict.scope },
      );
    default:
      throw new UnreachableCaseError(verdict);
  }
}

/** Admits, reseeding a missing month and admitting again; a month that stays missing after three reseeds fails. */
async function admitReseeding(deps: GateDeps, tenant: TenantSettings, gate: AdmitInput): Promise<Exclude<AdmitResult, { reason: 'NEEDS_RESEED' }>> {
  for (let reseeds = 0; ; reseeds++) {
    const verdict = await deps.limiter.admit(gate);
    if (verdict.allowed || verdict.reason !== 'NEEDS_RESEED') return verdict;
    if (reseeds === 3) throw serviceUnavailable('a consistent budget state', new Error('reseed did not take'));
    await reseedBudget(deps, { tenantId: tenant.id, month: gate.month, requestsPerMinute: tenant.requestsPerMinute, tokensPerMinute: tenant.tokensPerMinute });
  }
}

/** Whose monthly budget refused, in words: the tenant's or the API key's own. */
export const budgetOwner = (scope: LimitScope): string => (scope === 'KEY' ? "this API key's own monthly" : "this month's");

function rateLimitMessage(limit: RateLimitName, scope: LimitScope, retryAfterMs: number): string {
  const whose = scope === 'KEY' ? "this API key's own" : "this tenant's";
  switch (limit) {
    case 'REQUESTS_PER_MINUTE':
      return `${whose} requests per minute limit reached; retry in ${retryAfterMs} ms`;
    case 'TOKENS_PER_MINUTE':
      return `${whose} tokens per minute limit reached; retry in ${retryAfterMs} ms`;
    case 'CONCURRENT_REQUESTS':
      return `this tenant's limit of requests in flight at once is reached; retry in ${retryAfterMs} ms`;
    default:
      throw new UnreachableCaseError(limit);
  }
}

/** Gives back an admission whose request will not reach the upstream. Redis down: the hold and slot expire. */
export async function releaseGate(deps: GateDeps, gate: AdmitInput): Promise<void> {
  await deps.limiter
    .release(gate)
    .catch((err) => deps.logger.warn({ err, requestId: gate.requestId }, 'could not release an admission; its hold expires by itself'));
}
