import { randomUUID } from 'node:crypto';
import { AppError, isAppError, rethrowUnavailable, serviceUnavailable } from '../errors';
import { reseedBudget } from '../accounting/budget-reseed';
import type { Logger } from '../infra/logger';
import type { CatalogStore } from '../catalog/catalog-store';
import type { TenantStore, TenantSettings } from '../tenants/tenant-store';
import type { Principal } from '../tenants/principal';
import { requireTenant } from '../tenants/principal';
import { buildModelPlan, buildPlan, type Plan, type RoutingOptions } from '../routing';
import type { AdmitResult, Limiter } from '../limits';
import type { Ledger, PriceSnapshot } from '../accounting/ledger';
import { worstCaseMicros, type UnitPrices } from '../accounting/pricing';
import { formatUsd, type Micros } from '../accounting/money';
import { monthOf } from '../accounting/period';
import { checkShape, promptTokensEstimate, promptTokensUpperBound, resolveMaxTokens, type ChatInput } from './chat-input';

/** A request that passed every check: it holds budget in Redis and has its HELD ledger row. */
export interface Admitted {
  readonly requestId: string;
  readonly tenant: TenantSettings;
  readonly keyId: string;
  readonly plan: Plan;
  readonly maxTokens: number;
  readonly month: string;
  readonly startedAt: Date;
  readonly prices: PriceSnapshot;
  readonly tokensEstimate: number;
  readonly promptEstimate: number;
}

export interface AdmissionDeps {
  readonly catalog: CatalogStore;
  readonly tenants: TenantStore;
  readonly limiter: Limiter;
  readonly ledger: Ledger;
  readonly routing: RoutingOptions;
  readonly maxMessageBytes: number;
  readonly leaseMs: number;
  readonly holdTtlMs: number;
  readonly logger: Logger;
  /** Told of every refused admission (metrics). */
  readonly onDenied?: (reason: 'RATE_LIMITED' | 'BUDGET_EXCEEDED') => void;
}

export interface Validated {
  readonly tenant: TenantSettings;
  readonly keyId: string;
  readonly plan: Plan;
  readonly maxTokens: number;
  readonly prices: PriceSnapshot;
  readonly messageBytes: number;
}

/** Every check that needs no gate: shape, profile, caps, prices. A bad request fails here and touches nothing. */
export async function validate(deps: AdmissionDeps, principal: Principal, input: ChatInput, mode: 'collect' | 'stream'): Promise<Validated> {
  const who = requireTenant(principal, mode === 'stream' ? 'chatStream' : 'chat');
  const { messageBytes } = checkShape(input, { mode, maxMessageBytes: deps.maxMessageBytes });
  const [catalog, tenant] = await Promise.all([deps.catalog.get(), deps.tenants.get(who.tenantId)]).catch(rethrowUnavailable('Postgres'));
  const region = input.region ?? 'US_EAST';
  const planned = input.model
    ? buildModelPlan(catalog, input.model, region, deps.routing)
    : buildPlan(catalog, tenant.overrides, input.profile, region, deps.routing);
  const maxTokens = resolveMaxTokens(input, planned.profile);
  const primary = planned.chain[0];
  if (!primary || primary.model.outputMicrosPerMillion === null) {
    const id = primary?.model.id ?? '(none)';
    throw new AppError('UNPRICED_MODEL', `model ${id} of profile ${input.profile} has no output price yet; an admin must set one with setModelPrice`, { model: id });
  }
  // An unpriced fallback would be recorded at $0: leave it out of the chain instead.
  const plan: Plan = { ...planned, chain: planned.chain.filter((m) => m.model.outputMicrosPerMillion !== null) };
  const prices: Record<string, UnitPrices> = {};
  for (const m of plan.chain) prices[m.model.id] = { inputMicrosPerMillion: m.model.inputMicrosPerMillion, outputMicrosPerMillion: m.model.outputMicrosPerMillion };
  return { tenant, keyId: who.keyId, plan, maxTokens, prices, messageBytes };
}

/**
 * Reserve, then write ahead: one atomic Redis admission (rate, tokens, budget hold), then the HELD ledger row.
 * A denial writes nothing. The hold is the worst case of one attempt at the dearest model of the chain; a mutation
 * that must fall back after an attempt that consumed tokens extends it first (see run-chat.ts).
 */
export async function admit(deps: AdmissionDeps, v: Validated, input: ChatInput): Promise<Admitted> {
  const requestId = randomUUID();
  const startedAt = new Date();
  const month = monthOf(startedAt);
  const n = input.messages.length;
  const promptEstimate = promptTokensEstimate(v.messageBytes, n);
  const tokensEstimate = promptEstimate + v.maxTokens;
  const holdMicros: Micros = worstCaseMicros(Object.values(v.prices), promptTokensUpperBound(v.messageBytes, n), v.maxTokens);
  const gate = {
    tenantId: v.tenant.id,
    requestId,
    month,
    requestsPerMinute: v.tenant.requestsPerMinute,
    tokensPerMinute: v.tenant.tokensPerMinute,
    tokensEstimate,
    budgetMicros: v.tenant.monthlyBudgetMicros,
    holdMicros,
    holdTtlMs: deps.holdTtlMs,
  };

  // Write ahead first, then reserve: a reseed (Redis flushed, cold start) that runs between the two reads this row
  // and restores its hold, which the admission below then replaces; reserving first would leave a window in which
  // a reseed misses the request and its settlement is never counted.
  await deps.ledger
    .hold({
      requestId,
      tenantId: v.tenant.id,
      apiKeyId: v.keyId,
      profile: v.plan.profile.name,
      region: v.plan.region,
      plannedModel: v.plan.chain[0]!.model.id,
      maxTokens: v.maxTokens,
      promptTokensEstimate: promptEstimate,
      prices: v.prices,
      holdMicros,
      startedAt,
      leaseMs: deps.leaseMs,
      idempotencyKey: input.idempotencyKey ?? null,
    })
    .catch(rethrowUnavailable('Postgres'));

  let verdict: AdmitResult;
  try {
    verdict = await deps.limiter.admit(gate);
    for (let i = 0; !verdict.allowed && verdict.reason === 'NEEDS_RESEED'; i++) {
      if (i === 3) throw serviceUnavailable('a consistent budget state', new Error('reseed did not take'));
      await reseedBudget(deps, { tenantId: v.tenant.id, month, requestsPerMinute: v.tenant.requestsPerMinute, tokensPerMinute: v.tenant.tokensPerMinute });
      verdict = await deps.limiter.admit(gate);
    }
  } catch (e) {
    await withdraw(deps, gate);
    throw isAppError(e) ? e : serviceUnavailable('Redis', e);
  }
  if (!verdict.allowed) {
    await withdraw(deps, gate);
    switch (verdict.reason) {
      case 'RATE_LIMITED':
        deps.onDenied?.('RATE_LIMITED');
        throw new AppError(
          'RATE_LIMITED',
          `${verdict.limit === 'REQUESTS_PER_MINUTE' ? 'requests' : 'tokens'} per minute limit reached; retry in ${verdict.retryAfterMs} ms`,
          { retryAfterMs: verdict.retryAfterMs, limit: verdict.limit },
        );
      case 'BUDGET_EXCEEDED':
        deps.onDenied?.('BUDGET_EXCEEDED');
        throw new AppError(
          'BUDGET_EXCEEDED',
          `this request could cost up to $${formatUsd(holdMicros)}, more than the $${formatUsd(verdict.remainingMicros)} left of this month's budget`,
          { remainingUsd: formatUsd(verdict.remainingMicros), requestMaxUsd: formatUsd(holdMicros) },
        );
      default:
        throw serviceUnavailable('a consistent budget state', new Error(String((verdict as { reason: string }).reason)));
    }
  }
  return { requestId, tenant: v.tenant, keyId: v.keyId, plan: v.plan, maxTokens: v.maxTokens, month, startedAt, prices: v.prices, tokensEstimate, promptEstimate };
}

/**
 * A refused request leaves nothing behind: its write-ahead row is deleted (it never reached the upstream), and a
 * hold a concurrent reseed may have restored for it is released by a zero settlement.
 */
async function withdraw(deps: AdmissionDeps, gate: { tenantId: string; requestId: string; month: string; tokensEstimate: number }): Promise<void> {
  await Promise.all([
    deps.ledger.discard(gate.requestId).catch((err) => deps.logger.error({ err, requestId: gate.requestId }, 'could not delete a refused request\'s row; the reaper settles it at zero')),
    deps.limiter
      .settle({ tenantId: gate.tenantId, requestId: gate.requestId, month: gate.month, actualMicros: 0n, actualTokens: 0, tokensEstimate: gate.tokensEstimate })
      .catch(() => undefined), // Redis is down or the month is unseeded: there is no hold to give back
  ]);
}
