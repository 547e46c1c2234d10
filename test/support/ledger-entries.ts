import { randomUUID } from 'node:crypto';
import type { HeldEntry, Ledger, Settlement } from '../../src/accounting/ledger';

/** glm-5's unit prices as a write-ahead entry snapshots them; no cache prices (the input price applies). */
export const GLM5_PRICES = {
  'glm-5': { inputMicrosPerMillion: 1_000_000n, outputMicrosPerMillion: 2_000_000n, cachedInputMicrosPerMillion: null, cacheWriteMicrosPerMillion: null },
};

/** A write-ahead entry of a glm-5 request on chat_default (US_EAST, 150 max tokens, 20 prompt tokens, 500 µ$ held). */
export function heldEntry(tenantId: string, over: Partial<HeldEntry> = {}): HeldEntry {
  return {
    requestId: randomUUID(),
    tenantId,
    apiKeyId: null,
    profile: 'chat_default',
    region: 'US_EAST',
    plannedModel: 'glm-5',
    maxTokens: 150,
    promptTokensEstimate: 20,
    prices: GLM5_PRICES,
    holdMicros: 500n,
    startedAt: new Date(),
    leaseMs: 60_000,
    idempotencyKey: null,
    ...over,
  };
}

/** A settlement of `costMicros` for the row started at `startedAt`: one prompt and one completion token, provider usage. */
export function settlementOf(startedAt: Date, costMicros: bigint): Settlement {
  return {
    startedAt,
    model: 'm',
    attempts: [],
    promptTokens: 1,
    completionTokens: 1,
    cachedPromptTokens: 0,
    cacheWriteTokens: 0,
    unpricedPromptTokens: 0,
    prices: null,
    costMicros,
    outcome: 'COMPLETED',
    usageSource: 'PROVIDER',
    endedAt: new Date(),
  };
}

/** A row held then settled at `costMicros` through the ledger's own statements, as a finished request leaves it. */
export async function settledRow(ledger: Ledger, tenantId: string, costMicros: bigint): Promise<string> {
  const e = heldEntry(tenantId, { plannedModel: 'm', maxTokens: 1, promptTokensEstimate: 1, prices: {}, holdMicros: 0n });
  await ledger.hold(e);
  await ledger.settle(e.requestId, settlementOf(e.startedAt, costMicros));
  return e.requestId;
}
