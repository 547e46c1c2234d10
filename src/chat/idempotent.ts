import { AppError, rethrowUnavailable } from '../errors';
import type { Logger } from '../infra/logger';
import { hashInput, type Idempotency, type StoredOutcome } from './idempotency';
import { toResult, type Collected } from './collect';
import type { AdmissionGuard } from './steps/admit';
import type { ChatInput } from './chat-input';
import type { ChatResult, UsageView } from './types';

export interface IdempotentDeps {
  readonly idempotency: Idempotency;
  readonly logger: Logger;
}

/**
 * The chat mutation with an idempotency key, as a wrapper around the same story: the story's admission asks the
 * key before reserving (a finished first request is replayed, nothing reserved) and claims it once the reservation
 * is made (a refused retry never holds the key; a replay found then gives the reservation back). The first
 * request's outcome is kept for its retries when it was charged; a request that failed with nothing charged, or
 * that the server's shutdown ended, releases the key so a retry runs afresh (each is charged what it consumed).
 */
export async function completeOnce(
  deps: IdempotentDeps,
  key: string,
  input: ChatInput,
  signal: AbortSignal,
  story: (guard: AdmissionGuard<StoredOutcome>) => Promise<Collected<StoredOutcome>>,
): Promise<ChatResult> {
  const { idempotencyKey: _omit, ...rest } = input;
  const inputHash = hashInput(rest);
  const owned: { tenantId: string | null } = { tenantId: null };
  const guard: AdmissionGuard<StoredOutcome> = {
    beforeReserve: (v) => deps.idempotency.peek(v.tenant.id, key, inputHash).catch(rethrowUnavailable('Postgres')),
    async afterReserve(v) {
      const claim = await deps.idempotency.claim(v.tenant.id, key, inputHash, signal);
      if (claim.kind === 'replay') return claim.outcome;
      owned.tenantId = v.tenant.id;
      return null;
    },
  };
  let outcome: StoredOutcome | null = null;
  try {
    const c = await story(guard);
    if (c.kind === 'answered') return fromStored(c.answer);
    const { final } = c;
    const keep = final.outcome !== 'SHUTDOWN';
    if (final.error && keep && final.usage.costMicros > 0n) {
      outcome = { kind: 'error', code: final.error.code, message: final.error.message, extensions: { ...final.error.extensions } };
    }
    const result = toResult(c.requestId, final, c.content);
    if (keep) outcome = toStoredResult(result);
    return result;
  } finally {
    const tenantId = owned.tenantId;
    if (tenantId !== null) {
      await (outcome ? deps.idempotency.finish(tenantId, key, outcome) : deps.idempotency.release(tenantId, key)).catch((e) =>
        deps.logger.error({ err: e }, 'idempotency key update failed'),
      );
    }
  }
}

const toStoredResult = (r: ChatResult): StoredOutcome => ({
  kind: 'result',
  value: { ...r, usage: { ...r.usage, costMicros: r.usage.costMicros.toString() } },
});

/** A stored usage as JSON: the previous release wrote the cost under `costUsd` (same micro-dollars, old name). */
type StoredUsage = Omit<UsageView, 'costMicros'> & { costMicros?: string; costUsd?: string };

function fromStored(o: StoredOutcome): ChatResult {
  if (o.kind === 'error') throw new AppError(o.code, o.message, o.extensions);
  const v = o.value as Omit<ChatResult, 'usage'> & { usage: StoredUsage };
  const { costUsd, costMicros, ...usage } = v.usage;
  // Every release wrote one of the two; a record with neither is corrupt, never a silent $0 replay.
  const cost = costMicros ?? costUsd;
  if (cost === undefined) throw new Error(`stored idempotent result of request ${v.requestId} has no cost`);
  // Results stored before tool calls and cache counts existed replay as a text answer with no cache.
  return {
    ...v,
    toolCalls: v.toolCalls ?? [],
    finishReason: v.finishReason ?? null,
    usage: {
      ...usage,
      cachedPromptTokens: usage.cachedPromptTokens ?? 0,
      cacheWriteTokens: usage.cacheWriteTokens ?? 0,
      costMicros: BigInt(cost),
    },
  };
}
