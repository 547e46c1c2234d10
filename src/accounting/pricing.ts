import { ceilDiv, type Micros } from './money';

/**
 * Unit prices of one model at one moment, micro-dollars per 1M tokens.
 * - Null input price: uncached prompt tokens are recorded but not charged (unpriced).
 * - Null cached-input / cache-write price: those tokens are charged at the input price (unpriced only when that is
 *   null too). Never a silent $0 for a known price.
 */
export interface UnitPrices {
  readonly inputMicrosPerMillion: Micros | null;
  readonly outputMicrosPerMillion: Micros | null;
  /** Absent (rows and fixtures from before cache prices) reads as null. */
  readonly cachedInputMicrosPerMillion?: Micros | null;
  readonly cacheWriteMicrosPerMillion?: Micros | null;
}

/** The token counts of one answer. Cached and cache-write tokens are part of promptTokens, as providers report them. */
export interface TokenCounts {
  readonly promptTokens: number;
  readonly cachedPromptTokens: number;
  readonly cacheWriteTokens: number;
  readonly completionTokens: number;
}

export interface PricedUsage {
  readonly costMicros: Micros;
  /** Prompt tokens (of any kind) recorded without a price to charge them at (charged nothing). */
  readonly unpricedPromptTokens: number;
}

/** The four unit prices of anything that carries them (a catalog model), and nothing else. */
export const unitPricesOf = (m: UnitPrices): UnitPrices => ({
  inputMicrosPerMillion: m.inputMicrosPerMillion,
  outputMicrosPerMillion: m.outputMicrosPerMillion,
  cachedInputMicrosPerMillion: m.cachedInputMicrosPerMillion ?? null,
  cacheWriteMicrosPerMillion: m.cacheWriteMicrosPerMillion ?? null,
});

/**
 * Cached and cache-write counts made consistent with the prompt count: an upstream reporting more cached tokens
 * than prompt tokens is capped (cached first, then cache writes in what is left), never priced below zero.
 */
export function splitPrompt(t: Pick<TokenCounts, 'promptTokens' | 'cachedPromptTokens' | 'cacheWriteTokens'>): {
  uncached: number;
  cached: number;
  written: number;
} {
  const cached = Math.min(Math.max(0, t.cachedPromptTokens), t.promptTokens);
  const written = Math.min(Math.max(0, t.cacheWriteTokens), t.promptTokens - cached);
  return { uncached: t.promptTokens - cached - written, cached, written };
}

/** The price each kind of prompt token is charged at: its own, else the input price, else none (unpriced). */
export function effectivePromptPrices(p: UnitPrices): { input: Micros | null; cached: Micros | null; written: Micros | null } {
  const input = p.inputMicrosPerMillion;
  return { input, cached: p.cachedInputMicrosPerMillion ?? input, written: p.cacheWriteMicrosPerMillion ?? input };
}

/**
 * cost = ceil((uncached x input + cached x cachedPrice + written x writePrice + completion x output) / 1e6), exact
 * in bigint, one rounding for the whole answer. A model without an output price must have been refused before the
 * call (UNPRICED_MODEL); pricing one here is a programming error, not a silent $0.
 */
export function priceUsage(prices: UnitPrices, t: TokenCounts): PricedUsage {
  const output = prices.outputMicrosPerMillion;
  if (output === null) throw new Error('priceUsage: model has no output price');
  const { uncached, cached, written } = splitPrompt(t);
  const eff = effectivePromptPrices(prices);
  let numerator = BigInt(t.completionTokens) * output;
  let unpriced = 0;
  const add = (tokens: number, price: Micros | null): void => {
    if (price === null) unpriced += tokens;
    else numerator += BigInt(tokens) * price;
  };
  add(uncached, eff.input);
  add(cached, eff.cached);
  add(written, eff.written);
  return {
    costMicros: ceilDiv(numerator, 1_000_000n),
    unpricedPromptTokens: unpriced,
  };
}

/** The dearest price any prompt token can be charged at: a cache write may cost more than plain input. */
function dearestPromptPrice(p: UnitPrices): Micros {
  let max = 0n;
  for (const v of Object.values(effectivePromptPrices(p))) if (v !== null && v > max) max = v;
  return max;
}

/**
 * The most a request can cost: its prompt upper bound (every token at the dearest prompt price) and its max
 * tokens, at the dearest model of its chain.
 */
export function worstCaseMicros(chain: readonly UnitPrices[], promptTokensUpperBound: number, maxTokens: number): Micros {
  let worst = 0n;
  for (const p of chain) {
    if (p.outputMicrosPerMillion === null) continue;
    const c = ceilDiv(BigInt(promptTokensUpperBound) * dearestPromptPrice(p) + BigInt(maxTokens) * p.outputMicrosPerMillion, 1_000_000n);
    if (c > worst) worst = c;
  }
  return worst;
}
