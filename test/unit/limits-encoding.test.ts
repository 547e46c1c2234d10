import { countArg, limitArg, MAX_TOKENS, microsArg, msArg, optionalMicrosArg, signedCountArg } from '../../src/limits/args';
import { parseAdmitReply, parseBudgetStateReply, parseCountReply, parseExtendHoldReply } from '../../src/limits/replies';

describe('script arguments', () => {
  it('sends micro-USD as exact decimal strings up to 2^53 - 1', () => {
    expect(microsArg('x', 0n)).toBe('0');
    expect(microsArg('x', 5_000_000_000_000n)).toBe('5000000000000');
    expect(microsArg('x', 2n ** 53n - 1n)).toBe('9007199254740991');
    expect(() => microsArg('x', 2n ** 53n)).toThrow(RangeError);
    expect(() => microsArg('holdMicros', -1n)).toThrow(/holdMicros/);
  });

  it("encodes 'none' as ''", () => {
    expect(optionalMicrosArg('b', null)).toBe('');
    expect(optionalMicrosArg('b', 7n)).toBe('7');
    expect(limitArg('l', null)).toBe('');
    expect(limitArg('l', undefined)).toBe('');
    expect(limitArg('l', 0)).toBe('0');
  });

  it('accepts counts that stay exact once multiplied by the 60 000 ms window', () => {
    expect(countArg('c', MAX_TOKENS)).toBe(String(MAX_TOKENS));
    expect(MAX_TOKENS * 60_000).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
    for (const bad of [-1, 1.5, NaN, Infinity, MAX_TOKENS + 1]) expect(() => countArg('c', bad)).toThrow(RangeError);
    expect(signedCountArg('d', -5)).toBe('-5');
    expect(() => signedCountArg('d', -MAX_TOKENS - 1)).toThrow(RangeError);
  });

  it('wants whole milliseconds', () => {
    expect(msArg('ttl', 50)).toBe('50');
    expect(() => msArg('ttl', 0)).toThrow(RangeError);
    expect(msArg('at', 0, 0)).toBe('0');
    expect(() => msArg('ttl', 1.5)).toThrow(RangeError);
  });
});

describe('script replies', () => {
  it('reads admit replies', () => {
    expect(parseAdmitReply(['OK', '1764460000.123456'])).toEqual({ allowed: true, generation: '1764460000.123456', requests: null, tokens: null });
    expect(parseAdmitReply(['OK', 'g', '3', '59000', '', ''])).toEqual({ allowed: true, generation: 'g', requests: { used: 3, resetMs: 59000 }, tokens: null });
    expect(() => parseAdmitReply(['OK', 'g', '-1', '5', '', ''])).toThrow(/unexpected admit reply/);
    expect(() => parseAdmitReply(['OK'])).toThrow(/unexpected admit reply/);
    expect(parseAdmitReply(['RATE_LIMITED', 'CONCURRENT_REQUESTS', 1000, 0])).toEqual({
      allowed: false,
      reason: 'RATE_LIMITED',
      limit: 'CONCURRENT_REQUESTS',
      scope: 'TENANT',
      retryAfterMs: 1000,
    });
    expect(parseAdmitReply(['NEEDS_RESEED'])).toEqual({ allowed: false, reason: 'NEEDS_RESEED' });
    expect(parseAdmitReply(['BUDGET_EXCEEDED', '9007199254740991'])).toEqual({
      allowed: false,
      reason: 'BUDGET_EXCEEDED',
      scope: 'TENANT',
      remainingMicros: 9_007_199_254_740_991n,
    });
    // Per-key limits name whose limit refused; a reply without a scope (older script) is the tenant's.
    expect(parseAdmitReply(['BUDGET_EXCEEDED', '5', 'KEY'])).toEqual({ allowed: false, reason: 'BUDGET_EXCEEDED', scope: 'KEY', remainingMicros: 5n });
    expect(parseAdmitReply(['RATE_LIMITED', 'TOKENS_PER_MINUTE', 60000, 1, 'KEY'])).toMatchObject({ scope: 'KEY', exceedsLimit: true });
    expect(() => parseAdmitReply(['BUDGET_EXCEEDED', '5', 'SOMEONE'])).toThrow(/unexpected admit reply/);
    expect(parseAdmitReply(['RATE_LIMITED', 'REQUESTS_PER_MINUTE', 6000, 0])).toEqual({
      allowed: false,
      reason: 'RATE_LIMITED',
      limit: 'REQUESTS_PER_MINUTE',
      scope: 'TENANT',
      retryAfterMs: 6000,
    });
    expect(parseAdmitReply(['RATE_LIMITED', 'TOKENS_PER_MINUTE', 60000, 1])).toEqual({
      allowed: false,
      reason: 'RATE_LIMITED',
      limit: 'TOKENS_PER_MINUTE',
      scope: 'TENANT',
      retryAfterMs: 60000,
      exceedsLimit: true,
    });
  });

  it.each([
    null,
    'OK',
    [],
    ['MAYBE'],
    ['BUDGET_EXCEEDED', 12],
    ['BUDGET_EXCEEDED', '1e3'],
    ['RATE_LIMITED', 'PER_HOUR', 1, 0],
    ['RATE_LIMITED', 'TOKENS_PER_MINUTE', 0, 0],
    ['RATE_LIMITED', 'TOKENS_PER_MINUTE', 5, 2],
  ])('never reads %j as an admission: it throws', (reply) => {
    expect(() => parseAdmitReply(reply)).toThrow(/unexpected admit reply/);
  });

  it('reads extend-hold replies', () => {
    expect(parseExtendHoldReply(['OK', ''])).toEqual({ allowed: true, remainingMicros: null });
    expect(parseExtendHoldReply(['OK', '0'])).toEqual({ allowed: true, remainingMicros: 0n });
    expect(parseExtendHoldReply(['BUDGET_EXCEEDED', '3'])).toEqual({ allowed: false, reason: 'BUDGET_EXCEEDED', scope: 'TENANT', remainingMicros: 3n });
    expect(parseExtendHoldReply(['BUDGET_EXCEEDED', '3', 'KEY'])).toEqual({ allowed: false, reason: 'BUDGET_EXCEEDED', scope: 'KEY', remainingMicros: 3n });
    expect(parseExtendHoldReply(['NEEDS_RESEED'])).toEqual({ allowed: false, reason: 'NEEDS_RESEED', remainingMicros: null });
    expect(parseExtendHoldReply(['SETTLED'])).toEqual({ allowed: false, reason: 'ALREADY_SETTLED', remainingMicros: null });
    expect(() => parseExtendHoldReply(['OK'])).toThrow();
  });

  it('reads budget state and counts', () => {
    expect(parseBudgetStateReply(null)).toBeNull();
    expect(parseBudgetStateReply(['864', '0'])).toEqual({ spentMicros: 864n, heldMicros: 0n });
    expect(() => parseBudgetStateReply(['864'])).toThrow();
    expect(parseCountReply('sweep', 3)).toBe(3);
    expect(() => parseCountReply('sweep', '3')).toThrow();
  });
});
