import { ceilDiv, formatUsd, MAX_EXACT_MICROS, parseUsd } from '../../src/accounting/money';
import { priceUsage, worstCaseMicros } from '../../src/accounting/pricing';
import { AppError } from '../../src/errors';

describe('money', () => {
  it.each([
    ['25', 25_000_000n],
    ['0.5', 500_000n],
    ['13.40', 13_400_000n],
    ['0.000001', 1n],
    ['0', 0n],
  ])('parses %s exactly', (s, micros) => expect(parseUsd(s)).toBe(micros));

  it.each(['-1', '1e3', '0.0000001', '1.', '.5', 'abc', '', ' 1 2', '01', 'NaN', 'Infinity', '1,5'])('rejects %j with BAD_USER_INPUT', (s) => {
    expect(() => parseUsd(s, 'monthlyBudgetUsd')).toThrow(AppError);
    try {
      parseUsd(s, 'monthlyBudgetUsd');
    } catch (e) {
      expect((e as AppError).code).toBe('BAD_USER_INPUT');
      expect((e as AppError).message).toMatch(/^monthlyBudgetUsd: /);
    }
  });

  it('accepts up to 2^53 - 1 micro-dollars and refuses more, naming the field and the bound', () => {
    expect(parseUsd('9007199254.740991')).toBe(MAX_EXACT_MICROS);
    expect(MAX_EXACT_MICROS).toBe(BigInt(Number.MAX_SAFE_INTEGER));
    for (const s of ['9007199254.740992', '9999999999', '99999999999999']) {
      expect(() => parseUsd(s, 'monthlyBudgetUsd')).toThrow(/^monthlyBudgetUsd: .*largest amount the gateway keeps exact, "9007199254\.740991"/);
    }
  });

  it('rejects non-strings (a float is never money)', () => {
    expect(() => parseUsd(0.1)).toThrow(/decimal string/);
  });

  it('formats with six fractional digits', () => {
    expect(formatUsd(96_000_000n)).toBe('96.000000');
    expect(formatUsd(864n)).toBe('0.000864');
    expect(formatUsd(0n)).toBe('0.000000');
    expect(formatUsd(-1n)).toBe('-0.000001');
  });

  it('rounds up partial micro-dollars', () => {
    expect(ceilDiv(0n, 10n)).toBe(0n);
    expect(ceilDiv(1n, 1_000_000n)).toBe(1n);
    expect(ceilDiv(2_000_000n, 1_000_000n)).toBe(2n);
  });
});

describe('pricing', () => {
  const glm5 = { inputMicrosPerMillion: null, outputMicrosPerMillion: 1_920_000n };
  it('prices 150 glm-5 tokens at 288 micro-dollars, prompt unpriced', () => {
    expect(priceUsage(glm5, { promptTokens: 40, cachedPromptTokens: 0, cacheWriteTokens: 0, completionTokens: 150 })).toEqual({
      costMicros: 288n,
      unpricedPromptTokens: 40,
    });
  });
  it('charges prompt tokens once an input price is known, rounding up', () => {
    expect(
      priceUsage(
        { inputMicrosPerMillion: 1n, outputMicrosPerMillion: 10_000n },
        { promptTokens: 3, cachedPromptTokens: 0, cacheWriteTokens: 0, completionTokens: 1 },
      ),
    ).toEqual({ costMicros: 1n, unpricedPromptTokens: 0 });
  });
  it('refuses to price an unpriced model instead of returning $0', () => {
    expect(() =>
      priceUsage(
        { inputMicrosPerMillion: null, outputMicrosPerMillion: null },
        { promptTokens: 1, cachedPromptTokens: 0, cacheWriteTokens: 0, completionTokens: 1 },
      ),
    ).toThrow();
  });
  it('worst case is the dearest model of the chain', () => {
    const cheap = { inputMicrosPerMillion: null, outputMicrosPerMillion: 10_000n };
    expect(worstCaseMicros([cheap, glm5], 100, 150)).toBe(288n);
  });
});
