import { checkHoldBound } from '../../src/chat/chat-input';
import { MAX_EXACT_MICROS } from '../../src/accounting/money';
import { worstCaseMicros } from '../../src/accounting/pricing';
import { checkStorable } from '../../src/graphql/argument-guard';
import { AppError } from '../../src/errors';

const codeOf = (f: () => void): string | null => {
  try {
    f();
    return null;
  } catch (e) {
    return e instanceof AppError ? `${e.code} ${e.message}` : String(e);
  }
};

describe('the largest hold one request may take (issue 11 item 6)', () => {
  it('a worst case up to 2^53 - 1 micro-dollars over the whole chain passes', () => {
    expect(codeOf(() => checkHoldBound(MAX_EXACT_MICROS, 1, 'p'))).toBeNull();
    expect(codeOf(() => checkHoldBound(MAX_EXACT_MICROS / 3n, 3, 'p'))).toBeNull();
  });

  it('more is BAD_USER_INPUT naming maxTokens and the bound, counting every attempt of the chain', () => {
    expect(codeOf(() => checkHoldBound(MAX_EXACT_MICROS + 1n, 1, 'long_form'))).toMatch(/^BAD_USER_INPUT maxTokens: .*long_form.*\$9007199254\.740991/);
    expect(codeOf(() => checkHoldBound(MAX_EXACT_MICROS / 2n + 1n, 2, 'p'))).toMatch(/^BAD_USER_INPUT/);
  });

  it('the largest price a budget accepts, times a long request, is over it (so admission must check)', () => {
    const hold = worstCaseMicros([{ inputMicrosPerMillion: MAX_EXACT_MICROS, outputMicrosPerMillion: MAX_EXACT_MICROS }], 300_000, 32_000);
    expect(hold).toBeGreaterThan(MAX_EXACT_MICROS / 10n);
    expect(codeOf(() => checkHoldBound(hold, 11, 'p'))).toMatch(/^BAD_USER_INPUT/);
  });
});

describe('values Postgres cannot store (issue 11 item 8)', () => {
  it('names the path of a NUL anywhere in nested input', () => {
    expect(codeOf(() => checkStorable({ messages: [{ content: 'ok' }, { content: 'a\u0000' }] }, 'input'))).toMatch(
      /^BAD_USER_INPUT input\.messages\[1\]\.content: .*NUL/,
    );
  });
  it('dates from year 1 to 9999 pass; outside, BAD_USER_INPUT naming the bounds', () => {
    expect(codeOf(() => checkStorable(new Date('0001-01-01T00:00:00Z'), 'before'))).toBeNull();
    expect(codeOf(() => checkStorable(new Date('9999-12-31T23:59:59.999Z'), 'before'))).toBeNull();
    expect(codeOf(() => checkStorable(new Date('+010000-01-01T00:00:00Z'), 'before'))).toMatch(/^BAD_USER_INPUT before: .*0001-01-01.*9999-12-31/);
    expect(codeOf(() => checkStorable(new Date(-62198755200000 - 1), 'before'))).toMatch(/^BAD_USER_INPUT/);
  });
  it('other values pass untouched', () => {
    expect(codeOf(() => checkStorable({ a: 1, b: null, c: [true, 'x'], d: undefined }, 'input'))).toBeNull();
  });
});
