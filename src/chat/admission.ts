import { randomUUID } from 'node:crypto';
import { AppError, isAppError, rethrowUnavailable, serviceUnavailable } from '../errors';
import { reseedBudget } from '../accounting/budget-reseed';
import type { Logger } from '../infra/logger';
import type { CatalogStore } from '../catalog/catalog-store';
import type { TenantStore, TenantSettings } from '../tenants/tenant-store';
import type { KeyLimits, Principal } from '../tenants/principal';
import { requireTenant } from '../tenants/principal';
import { buildModelPlan, buildPlan, type Plan, type RoutingOptions } from '../routing';
import type { AdmitInput, AdmitResult, LimitScope, Limiter, RateLimitName, WindowUse } from '../limits';
import { WRITE_AHEAD_DEADLINE_MS, type Ledger, type PriceSnapshot } from '../accounting/ledger';
import { unitPricesOf, worstCaseMicros, type UnitPrices } from '../accounting/pricing';
import { formatUsd } from '../accounting/money';
import { monthOf } from '../accounting/period';
import { checkHoldBound, checkShape, promptTokensEstimate, promptTokensUpperBound, resolveMaxTokens, type ChatInput } from './chat-input';

/** The tenant's rolling windows as an admission left them. */
export interface Windows {
  readonly requests: WindowUse | null;
  readonly tokens: WindowUse | null;
}

/** A request that passed every check: it holds budget in Redis and has its HELD ledger row. */
export interface Admitted {
  readonly requestId: string;
  readonly tenant: TenantSettings;
  readonly keyId: string;
  /** The key's own limits, checked with the tenant's (and again when a fallback grows the hold). */
  readonly keyLimits: KeyLimits;
  readonly plan: Plan;
  readonly maxTokens: number;
  readonly month: string;
  readonly startedAt: Date;
  readonly prices: PriceSnapshot;
  readonly tokensEstimate: number;
  readonly promptEstimate: number;
  readonly windows: Windows;
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
  /** The key's own limits, checked with the tenant's (and again when a fallback grows the hold). */
  readonly keyLimits: KeyLimits;
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
  for (const m of plan.chain) prices[m.model.id] = unitPricesOf(m.model);
  return { tenant, keyId: who.keyId, keyLimits: who.keyLimits, plan, maxTokens, prices, messageBytes };
}

/**
 * Reserve, then write ahead: one atomic Redis admission (budget hold, in-flight slot, rolling windows), then the
 * HELD ledger row, then a check that no reseed ran in between. A refusal costs Redis only: no row, no counter.
 * The hold is the worst case of one attempt at the dearest model of the chain; a mutation that must fall back
 * after an attempt that consumed tokens extends it first (see run-chat.ts).
 */
export async function admit(deps: AdmissionDeps, v: Validated, input: ChatInput): Promise<Admitted> {
  return writeAhead(deps, await reserveAdmission(deps, v, input));
}

/** A request reserved in Redis and not yet written ahead: writeAhead() runs it, withdraw() gives it back. */
export interface Reserved {
  readonly v: Validated;
  readonly input: ChatInput;
  readonly startedAt: Date;
  readonly promptEstimate: number;
  readonly gate: AdmitInput;
  readonly generation: string;
  /** The rolling windows right after this admission (null: no such limit), for clients' rate-limit headers. */
  readonly windows: Windows;
  readonly reservedAtMs: number;
}

/** The Redis half of admission. A refusal throws its contract error and has changed nothing anywhere. */
export async function reserveAdmission(deps: AdmissionDeps, v: Validated, input: ChatInput): Promise<Reserved> {
  const startedAt = new Date();
  // Each tool definition has its own framing in the prompt, like a message.
  const n = input.messages.length + (input.tools?.length ?? 0);
  const promptEstimate = promptTokensEstimate(v.messageBytes, n);
  const holdMicros = worstCaseMicros(Object.values(v.prices), promptTokensUpperBound(v.messageBytes, n), v.maxTokens);
  checkHoldBound(holdMicros, v.plan.chain.length, v.plan.profile.name);
  const gate: AdmitInput = {
    tenantId: v.tenant.id,
    requestId: randomUUID(),
    month: monthOf(startedAt),
    requestsPerMinute: v.tenant.requestsPerMinute,
    tokensPerMinute: v.tenant.tokensPerMinute,
    tokensEstimate: promptEstimate + v.maxTokens,
    budgetMicros: v.tenant.monthlyBudgetMicros,
    holdMicros,
    holdTtlMs: deps.holdTtlMs,
    maxConcurrentRequests: v.tenant.maxConcurrentRequests,
    apiKey: { id: v.keyId, ...v.keyLimits },
  };
  const { generation, windows } = await reserve(deps, v.tenant, gate);
  return { v, input, startedAt, promptEstimate, gate, generation, windows, reservedAtMs: Date.now() };
}

/** The Postgres half: the HELD row, then the reseed-generation check. After it the upstream may be called. */
export async function writeAhead(deps: AdmissionDeps, r: Reserved): Promise<Admitted> {
  const { v, input, gate, startedAt, promptEstimate } = r;
  let generation = r.generation;
  // A reservation kept waiting (an idempotent retry behind its first request) may be near its hold's expiry.
  if (Date.now() - r.reservedAtMs > deps.holdTtlMs / 2) generation = (await reserve(deps, v.tenant, gate).catch(giveBack(deps, gate))).generation;
  await deps.ledger
    .hold({
      requestId: gate.requestId,
      tenantId: v.tenant.id,
      apiKeyId: v.keyId,
      profile: v.plan.profile.name,
      region: v.plan.region,
      plannedModel: v.plan.chain[0]!.model.id,
      maxTokens: v.maxTokens,
      promptTokensEstimate: promptEstimate,
      prices: v.prices,
      holdMicros: gate.holdMicros,
      startedAt,
      leaseMs: deps.leaseMs,
      idempotencyKey: input.idempotencyKey ?? null,
    })
    .catch(giveBack(deps, gate, 'Postgres'));

  // A reseed between the reservation and the INSERT read Postgres without this row and rebuilt the month without
  // its hold. The row is durable now, so any later reseed sees it: one re-admission restores the hold before the
  // upstream is called (it may count this request in the windows twice, never zero times).
  try {
    // An INSERT that returned late may have outlived the reconciler's patience with rowless holds: re-admit too.
    const late = Date.now() - r.reservedAtMs > WRITE_AHEAD_DEADLINE_MS / 2;
    if (late || (await deps.limiter.generation(v.tenant.id, gate.month)) !== generation) await reserve(deps, v.tenant, gate);
  } catch (e) {
    await Promise.all([discard(deps, gate.requestId), release(deps, gate)]);
    throw isAppError(e) ? e : serviceUnavailable('Redis', e);
  }
  return {
    requestId: gate.requestId,
    tenant: v.tenant,
    keyId: v.keyId,
    keyLimits: v.keyLimits,
    plan: v.plan,
    maxTokens: v.maxTokens,
    month: gate.month,
    startedAt,
    prices: v.prices,
    tokensEstimate: gate.tokensEstimate,
    promptEstimate,
    windows: r.windows,
  };
}

/** Gives back a reservation whose request will not reach the upstream (an idempotent retry that replays instead). */
export async function withdraw(deps: AdmissionDeps, r: Reserved): Promise<void> {
  await release(deps, r.gate);
}

/** A catch handler: releases the reservation, then rethrows (an unknown error as SERVICE_UNAVAILABLE of `what`). */
const giveBack =
  (deps: AdmissionDeps, gate: AdmitInput, what = 'Redis') =>
  async (e: unknown): Promise<never> => {
    await release(deps, gate);
    throw isAppError(e) ? e : serviceUnavailable(what, e);
  };

/** One admission (reseeding a missing month first); a refusal becomes its contract error. */
async function reserve(deps: AdmissionDeps, tenant: TenantSettings, gate: AdmitInput): Promise<{ generation: string; windows: Windows }> {
  let verdict: AdmitResult;
  try {
    verdict = await deps.limiter.admit(gate);
    for (let i = 0; !verdict.allowed && verdict.reason === 'NEEDS_RESEED'; i++) {
      if (i === 3) throw serviceUnavailable('a consistent budget state', new Error('reseed did not take'));
      await reseedBudget(deps, { tenantId: tenant.id, month: gate.month, requestsPerMinute: tenant.requestsPerMinute, tokensPerMinute: tenant.tokensPerMinute });
      verdict = await deps.limiter.admit(gate);
    }
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
      throw serviceUnavailable('a consistent budget state', new Error(String((verdict as { reason: string }).reason)));
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
  }
}

/** Gives back an admission whose request will not reach the upstream. Redis down: the hold and slot expire. */
async function release(deps: AdmissionDeps, gate: AdmitInput): Promise<void> {
  await deps.limiter.release(gate).catch((err) => deps.logger.warn({ err, requestId: gate.requestId }, 'could not release an admission; its hold expires by itself'));
}

/** Deletes the HELD row of a request that will not reach the upstream. */
async function discard(deps: AdmissionDeps, requestId: string): Promise<void> {
  await deps.ledger.discard(requestId).catch((err) => deps.logger.error({ err, requestId }, "could not delete an unsent request's row; the reaper settles it at zero"));
}
