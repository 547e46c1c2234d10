import { randomUUID } from 'node:crypto';
import { isAppError, serviceUnavailable } from '../../errors';
import type { TenantSettings } from '../../tenants/tenant-store';
import type { Plan } from '../../routing';
import type { KeyLimits } from '../../tenants/principal';
import type { AdmitInput } from '../../limits';
import { WRITE_AHEAD_DEADLINE_MS, type Ledger, type PriceSnapshot } from '../../accounting/ledger';
import { worstCaseMicros } from '../../accounting/pricing';
import { monthOf } from '../../accounting/period';
import { checkHoldBound, promptTokensEstimate, promptTokensUpperBound, type ChatInput } from '../chat-input';
import { releaseGate, reserveGate, type GateDeps, type Windows } from './gate';
import type { Validated } from './validate';

/** A request that passed every check: it holds budget in Redis and has its HELD ledger row. */
export interface Admitted {
  readonly requestId: string;
  readonly tenant: TenantSettings;
  readonly keyId: string;
  readonly keyLimits: KeyLimits;
  readonly plan: Plan;
  readonly maxTokens: number;
  readonly month: string;
  readonly startedAt: Date;
  readonly prices: PriceSnapshot;
  readonly tokensEstimate: number;
  readonly promptEstimate: number;
  /** The rolling windows right after this admission (null: no such limit), for clients' rate-limit headers. */
  readonly windows: Windows;
}

export interface AdmitDeps extends GateDeps {
  readonly ledger: Pick<Ledger, 'hold' | 'discard' | 'monthState' | 'lastMinute'>;
  readonly leaseMs: number;
}

/**
 * What may answer a request instead of running it (an idempotency key's first request): asked before the
 * reservation, and again once the reservation is made, before the HELD row is written. An answer found after the
 * reservation gives the reservation back; so does a guard that throws.
 */
export interface AdmissionGuard<A> {
  beforeReserve(v: Validated): Promise<A | null>;
  afterReserve(v: Validated): Promise<A | null>;
}

export type Admission<A> = { readonly kind: 'admitted'; readonly request: Admitted } | { readonly kind: 'answered'; readonly answer: A };

/**
 * Step 2 of a chat request, in this order: reserve in Redis (one atomic admission: budget hold, in-flight slot,
 * rolling windows), then write ahead the HELD ledger row, then check that no reseed ran in between. A refusal costs
 * Redis only: no row, no counter. After it the upstream may be called. The hold is the worst case of one attempt at
 * the dearest model of the chain; a mutation that must fall back after an attempt that consumed tokens extends it
 * first (see run.ts).
 */
export async function admit<A>(deps: AdmitDeps, v: Validated, input: ChatInput, guard?: AdmissionGuard<A>): Promise<Admission<A>> {
  // A finished first request answers without admission: a replay costs this one read.
  const early = await guard?.beforeReserve(v);
  if (early) return { kind: 'answered', answer: early };
  // Reserved before the guard's second look (claiming the key), so a refused retry never holds the key.
  const reserved = await reserve(deps, v, input);
  const late = await guard?.afterReserve(v).catch(async (e: unknown) => {
    await releaseGate(deps, reserved.gate);
    throw e;
  });
  if (late) {
    await releaseGate(deps, reserved.gate);
    return { kind: 'answered', answer: late };
  }
  return { kind: 'admitted', request: await writeAhead(deps, reserved) };
}

/** A request reserved in Redis and not yet written ahead. */
interface Reserved {
  readonly v: Validated;
  readonly input: ChatInput;
  readonly startedAt: Date;
  readonly promptEstimate: number;
  readonly gate: AdmitInput;
  readonly generation: string;
  readonly windows: Windows;
  readonly reservedAtMs: number;
}

/** The Redis half of admission. A refusal throws its contract error and has changed nothing anywhere. */
async function reserve(deps: AdmitDeps, v: Validated, input: ChatInput): Promise<Reserved> {
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
  const { generation, windows } = await reserveGate(deps, v.tenant, gate);
  return { v, input, startedAt, promptEstimate, gate, generation, windows, reservedAtMs: Date.now() };
}

/** The Postgres half: the HELD row, then the reseed-generation check. */
async function writeAhead(deps: AdmitDeps, r: Reserved): Promise<Admitted> {
  const { v, input, gate, startedAt, promptEstimate } = r;
  let generation = r.generation;
  // A reservation kept waiting (an idempotent retry behind its first request) may be near its hold's expiry.
  if (Date.now() - r.reservedAtMs > deps.holdTtlMs / 2) generation = (await reserveGate(deps, v.tenant, gate).catch(giveBack(deps, gate))).generation;
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
    if (late || (await deps.limiter.generation(v.tenant.id, gate.month)) !== generation) await reserveGate(deps, v.tenant, gate);
  } catch (e) {
    await Promise.all([discard(deps, gate.requestId), releaseGate(deps, gate)]);
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

/** A catch handler: releases the reservation, then rethrows (an unknown error as SERVICE_UNAVAILABLE of `what`). */
const giveBack =
  (deps: AdmitDeps, gate: AdmitInput, what = 'Redis') =>
  async (e: unknown): Promise<never> => {
    await releaseGate(deps, gate);
    throw isAppError(e) ? e : serviceUnavailable(what, e);
  };

/** Deletes the HELD row of a request that will not reach the upstream. */
async function discard(deps: AdmitDeps, requestId: string): Promise<void> {
  await deps.ledger
    .discard(requestId)
    .catch((err) => deps.logger.error({ err, requestId }, "could not delete an unsent request's row; the reaper settles it at zero"));
}
