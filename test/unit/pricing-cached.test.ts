import { priceUsage, splitPrompt, worstCaseMicros, type UnitPrices } from '../../src/accounting/pricing';

/**
 * Cached-token pricing, each case computed by hand: cost = ceil((uncached x input + cached x cachedPrice +
 * written x writePrice + completion x output) / 1e6) micro-dollars, prices in micro-dollars per 1M tokens.
 */
const usage = (promptTokens: number, cachedPromptTokens: number, cacheWriteTokens: number, completionTokens: number) => ({
  promptTokens,
  cachedPromptTokens,
  cacheWriteTokens,
  completionTokens,
});

// $2 / $0.50 / $2.50 / $10 per 1M tokens.
const FULL: UnitPrices = {
  inputMicrosPerMillion: 2_000_000n,
  cachedInputMicrosPerMillion: 500_000n,
  cacheWriteMicrosPerMillion: 2_500_000n,
  outputMicrosPerMillion: 10_000_000n,
};

describe('cached-token pricing', () => {
  it('prices each kind of prompt token at its own price', () => {
    // 1000 prompt = 600 uncached + 300 cached + 100 written; 200 completion.
    // 600*2 + 300*0.5 + 100*2.5 + 200*10 = 1200 + 150 + 250 + 2000 = 3600 micro-dollars.
    expect(priceUsage(FULL, usage(1000, 300, 100, 200))).toEqual({ costMicros: 3600n, unpricedPromptTokens: 0 });
  });

  it('no cached price: cached tokens cost the input price, never $0', () => {
    const p = { ...FULL, cachedInputMicrosPerMillion: null };
    // 600*2 + 300*2 + 100*2.5 + 200*10 = 1200 + 600 + 250 + 2000 = 4050
    expect(priceUsage(p, usage(1000, 300, 100, 200))).toEqual({ costMicros: 4050n, unpricedPromptTokens: 0 });
  });

  it('no cache-write price: written tokens cost the input price', () => {
    const p = { ...FULL, cacheWriteMicrosPerMillion: null };
    // 600*2 + 300*0.5 + 100*2 + 200*10 = 1200 + 150 + 200 + 2000 = 3550
    expect(priceUsage(p, usage(1000, 300, 100, 200))).toEqual({ costMicros: 3550n, unpricedPromptTokens: 0 });
  });

  it('prices left out altogether (a snapshot from before cache prices) read as null: the input price applies', () => {
    const p: UnitPrices = { inputMicrosPerMillion: 2_000_000n, outputMicrosPerMillion: 10_000_000n };
    // 1000*2 + 200*10 = 4000
    expect(priceUsage(p, usage(1000, 300, 100, 200))).toEqual({ costMicros: 4000n, unpricedPromptTokens: 0 });
  });

  it('unknown input price and no cache prices: every prompt token is unpriced, as before', () => {
    const p: UnitPrices = {
      inputMicrosPerMillion: null,
      outputMicrosPerMillion: 10_000_000n,
      cachedInputMicrosPerMillion: null,
      cacheWriteMicrosPerMillion: null,
    };
    expect(priceUsage(p, usage(1000, 300, 100, 200))).toEqual({ costMicros: 2000n, unpricedPromptTokens: 1000 });
  });

  it('unknown input price with a cached price: the cached tokens are charged, the rest unpriced', () => {
    const p: UnitPrices = {
      inputMicrosPerMillion: null,
      outputMicrosPerMillion: 10_000_000n,
      cachedInputMicrosPerMillion: 500_000n,
      cacheWriteMicrosPerMillion: null,
    };
    // 300*0.5 + 200*10 = 150 + 2000 = 2150; unpriced 600 uncached + 100 written.
    expect(priceUsage(p, usage(1000, 300, 100, 200))).toEqual({ costMicros: 2150n, unpricedPromptTokens: 700 });
  });

  it('rounds the whole answer up once', () => {
    // 1 cached token at $0.50 per 1M = 0.5 micro-dollars -> 1.
    expect(priceUsage(FULL, usage(1, 1, 0, 0)).costMicros).toBe(1n);
    // 333 cached at $0.50: 166.5 -> 167; plus 1 written at $2.50: 166.5 + 2.5 = 169 exactly (one rounding, not two).
    expect(priceUsage(FULL, usage(333, 333, 0, 0)).costMicros).toBe(167n);
    expect(priceUsage(FULL, usage(334, 333, 1, 0)).costMicros).toBe(169n);
  });

  it('caps reported cached and cache-write counts at the prompt count (cached first)', () => {
    expect(splitPrompt({ promptTokens: 10, cachedPromptTokens: 8, cacheWriteTokens: 5 })).toEqual({ uncached: 0, cached: 8, written: 2 });
    expect(splitPrompt({ promptTokens: 10, cachedPromptTokens: 50, cacheWriteTokens: 5 })).toEqual({ uncached: 0, cached: 10, written: 0 });
    // 8 cached at $0.50 + 2 written at $2.50 = 4 + 5 = 9 micro-dollars.
    expect(priceUsage(FULL, usage(10, 8, 5, 0)).costMicros).toBe(9n);
  });
});

describe('holds stay an upper bound', () => {
  it('uses the dearest prompt price: a cache-write price above the input price', () => {
    // 1000 prompt tokens at $2.50 + 100 output at $10 = 2500 + 1000 = 3500
    expect(worstCaseMicros([FULL], 1000, 100)).toBe(3500n);
  });

  it('a cached price above the input price is the bound too', () => {
    const odd = { ...FULL, cachedInputMicrosPerMillion: 3_000_000n };
    expect(worstCaseMicros([odd], 1000, 100)).toBe(4000n);
  });

  it('no input price but a cache-write price: prompt tokens may still be charged at it', () => {
    const p: UnitPrices = { inputMicrosPerMillion: null, outputMicrosPerMillion: 10_000_000n, cacheWriteMicrosPerMillion: 2_500_000n };
    expect(worstCaseMicros([p], 1000, 100)).toBe(3500n);
  });

  it('is never below what any split of the same prompt costs', () => {
    for (const prices of [FULL, { ...FULL, cachedInputMicrosPerMillion: null }, { ...FULL, inputMicrosPerMillion: null }]) {
      const bound = worstCaseMicros([prices], 1000, 100);
      for (const [cached, written] of [
        [0, 0],
        [1000, 0],
        [0, 1000],
        [400, 600],
        [333, 333],
      ] as const) {
        expect(priceUsage(prices, usage(1000, cached, written, 100)).costMicros).toBeLessThanOrEqual(bound);
      }
    }
  });
});
