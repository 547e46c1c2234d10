import { UnreachableCaseError } from '../../src/errors';
import { costOfAttempts } from '../../src/chat/steps/cost';
import type { AttemptRecord } from '../../src/routing';
import type { PriceSnapshot } from '../../src/accounting/ledger';

describe('UnreachableCaseError', () => {
  test('names the value no case took, bigints included', () => {
    const e = new UnreachableCaseError({ reason: 'NEW_REASON', remainingMicros: 5n } as never);
    expect(e.name).toBe('UnreachableCaseError');
    expect(e.message).toBe('unexpected case: {"reason":"NEW_REASON","remainingMicros":"5"}');
    expect(new UnreachableCaseError('x' as never).message).toBe('unexpected case: "x"');
  });
});

describe('costOfAttempts', () => {
  const prices: PriceSnapshot = {
    m: { inputMicrosPerMillion: 1_000_000n, outputMicrosPerMillion: 2_000_000n, cachedInputMicrosPerMillion: null, cacheWriteMicrosPerMillion: null },
  };
  const attempt = (over: Partial<AttemptRecord>): AttemptRecord => ({
    model: 'm',
    ok: true,
    error: null,
    latencyMs: 1,
    promptTokens: 0,
    completionTokens: 0,
    usageSource: 'PROVIDER',
    ...over,
  });

  test('sums every attempt that consumed tokens at the snapshot, failed ones included', () => {
    const r = costOfAttempts([attempt({ promptTokens: 10, completionTokens: 5 }), attempt({ ok: false, error: 'HTTP_500', completionTokens: 3 })], prices);
    // 10 x $1/M + 5 x $2/M = 20 micro-dollars; 3 x $2/M = 6.
    expect(r).toEqual({ costMicros: 26n, unpricedPromptTokens: 0 });
  });

  test('skips attempts that consumed nothing, even of a model without a price; refuses a priced-nowhere model that did', () => {
    expect(costOfAttempts([attempt({ model: 'gone' })], prices)).toEqual({ costMicros: 0n, unpricedPromptTokens: 0 });
    expect(() => costOfAttempts([attempt({ model: 'gone', completionTokens: 1 })], prices)).toThrow('no price snapshot for gone');
  });
});
