import { ceilDiv, type Micros } from './money';

/** Unit prices of one model at one moment, micro-dollars per 1M tokens. Null input price: prompt tokens are not charged. */
export interface UnitPrices {
  readonly inputMicrosPerMillion: Micros | null;
  readonly outputMicrosPerMillion: Micros | null;
}

export interface PricedUsage {
  readonly costMicros: Micros;
  /** Prompt tokens recorded while the model had no input price (charged nothing). */
  readonly unpricedPromptTokens: number;
}

/**
 * cost = ceil((promptTokens x inputPrice + completionTokens x outputPrice) / 1e6), exact in bigint.
 * A model without an output price must have been refused before the call (UNPRICED_MODEL); pricing one here is a
 * programming error, not a silent $0.
 */
export function priceUsage(prices: UnitPrices, promptTokens: number, completionTokens: number): PricedUsage {
  if (prices.outputMicrosPerMillion === null) throw new Error('priceUsage: model has no output price');
  const input = prices.inputMicrosPerMillion;
  const numerator = BigInt(completionTokens) * prices.outputMicrosPerMillion + (input === null ? 0n : BigInt(promptTokens) * input);
  return { costMicros: ceilDiv(numerator, 1_000_000n), unpricedPromptTokens: input === null ? promptTokens : 0 };
}

/** The most a request can cost: its prompt upper bound and its max tokens, at the dearest model of its chain. */
export function worstCaseMicros(chain: readonly UnitPrices[], promptTokensUpperBound: number, maxTokens: number): Micros {
  let worst = 0n;
  for (const p of chain) {
    if (p.outputMicrosPerMillion === null) continue;
    const c = priceUsage(p, promptTokensUpperBound, maxTokens).costMicros;
    if (c > worst) worst = c;
  }
  return worst;
}
