import { FALLBACK_TABLE, MODEL_TABLE, PROFILE_TABLE } from '../../src/catalog/model-table';
import type { Catalog } from '../../src/catalog/types';
import { AppError } from '../../src/errors';
import { fromAppError, secondsToNextMonth } from '../../src/openai/errors';
import { formatReset, rateLimitHeaders, snapshotFromSettings } from '../../src/openai/rate-headers';
import { parseChatRequest } from '../../src/openai/request';
import { finishReason, toUsage } from '../../src/openai/responses';

const catalog: Catalog = {
  models: new Map(MODEL_TABLE.map((r) => [r.id, { ...r, inputMicrosPerMillion: null }])),
  profiles: new Map(PROFILE_TABLE.map((p) => [p.name, { name: p.name, model: p.model, defaultMaxTokens: p.defaultMaxTokens, maxTokensCap: p.maxTokensCap }])),
  fallbacks: new Map(Object.entries(FALLBACK_TABLE)),
};
const noHeaders = { idempotencyKey: undefined, region: undefined };

describe('parseChatRequest', () => {
  it('maps roles (developer is a system message), text parts and max_completion_tokens', () => {
    const r = parseChatRequest(
      {
        model: 'chat_default',
        messages: [
          { role: 'developer', content: 'be brief' },
          {
            role: 'user',
            content: [
              { type: 'text', text: 'a' },
              { type: 'text', text: 'b' },
            ],
          },
        ],
        max_completion_tokens: 7,
        temperature: 0.5,
        user: 'ignored',
        stream: true,
        stream_options: { include_usage: true },
      },
      noHeaders,
      catalog,
    );
    expect(r).toEqual({
      input: {
        profile: 'chat_default',
        messages: [
          { role: 'SYSTEM', content: 'be brief' },
          { role: 'USER', content: 'ab' },
        ],
        maxTokens: 7,
        temperature: 0.5,
      },
      stream: true,
      includeUsage: true,
      requested: 'chat_default',
    });
  });

  it('a name that is no profile is routed as a model id; x-region and Idempotency-Key are read', () => {
    const r = parseChatRequest({ model: 'glm-5', messages: [{ role: 'user', content: 'x' }] }, { idempotencyKey: 'k', region: 'asia' }, catalog);
    expect(r.input).toMatchObject({ profile: 'glm-5', model: 'glm-5', region: 'ASIA', idempotencyKey: 'k' });
    expect(r.includeUsage).toBe(false);
  });

  it('refuses an image part by its parameter path', () => {
    expect(() => parseChatRequest({ model: 'x', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }, noHeaders, catalog)).toThrow(
      expect.objectContaining({ code: 'BAD_USER_INPUT', extensions: { field: 'messages[0].content' } }),
    );
  });
});

describe('rate-limit headers', () => {
  it('formats resets as OpenAI does', () => {
    expect([formatReset(20), formatReset(1000), formatReset(1001), formatReset(360_000), formatReset(3_723_000)]).toEqual([
      '20ms',
      '1s',
      '2s',
      '6m0s',
      '1h2m3s',
    ]);
  });

  it('leaves out what is unknown or unlimited; a denial shows 0 remaining until the retry', () => {
    expect(rateLimitHeaders(snapshotFromSettings({ requestsPerMinute: null, tokensPerMinute: 1000 }))).toEqual({ 'x-ratelimit-limit-tokens': '1000' });
    expect(
      rateLimitHeaders(snapshotFromSettings({ requestsPerMinute: 10, tokensPerMinute: null }, { limit: 'REQUESTS_PER_MINUTE', retryAfterMs: 5500 })),
    ).toEqual({
      'x-ratelimit-limit-requests': '10',
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-reset-requests': '6s',
    });
  });
});

describe('errors in OpenAI’s shape', () => {
  it('rate: Retry-After in whole seconds, rounded up, never 0; the limit names the type', () => {
    const r = fromAppError(new AppError('RATE_LIMITED', 'slow down', { retryAfterMs: 1, limit: 'TOKENS_PER_MINUTE' }));
    expect(r).toEqual({
      status: 429,
      body: { error: { message: 'slow down', type: 'tokens', param: null, code: 'rate_limit_exceeded' } },
      headers: { 'retry-after': '1' },
    });
    expect(fromAppError(new AppError('RATE_LIMITED', 'x', { retryAfterMs: 1001, limit: 'REQUESTS_PER_MINUTE' })).headers['retry-after']).toBe('2');
  });

  it('budget: seconds to the next UTC month and no retry', () => {
    expect(secondsToNextMonth(new Date('2026-11-30T23:59:00Z'))).toBe(60);
    expect(fromAppError(new AppError('BUDGET_EXCEEDED', 'x'), new Date('2026-12-31T23:59:59.500Z')).headers).toEqual({
      'retry-after': '1',
      'x-should-retry': 'false',
    });
  });

  it('use-case field names become OpenAI parameter names', () => {
    expect(fromAppError(new AppError('BAD_USER_INPUT', 'x', { field: 'maxTokens' })).body.error.param).toBe('max_tokens');
    expect(fromAppError(new AppError('NOT_FOUND', 'x', { field: 'model' })).body.error).toMatchObject({ param: 'model', code: 'model_not_found' });
    expect(fromAppError(new AppError('UNPRICED_MODEL', 'x', { model: 'm' })).body.error).toMatchObject({ param: 'model', code: 'model_not_priced' });
  });
});

it('usage carries the exact cost as a Usd string and integer micro-dollars', () => {
  expect(toUsage({ promptTokens: 3, completionTokens: 4, cachedPromptTokens: 2, cacheWriteTokens: 1, costMicros: 1_234_567n, source: 'PROVIDER' })).toEqual({
    prompt_tokens: 3,
    completion_tokens: 4,
    total_tokens: 7,
    prompt_tokens_details: { cached_tokens: 2, cache_write_tokens: 1 },
    cost_usd: '1.234567',
    cost_micros: 1234567,
  });
});

it('finish_reason: length when cut short or when the asked max_tokens was used up, else stop', () => {
  expect(finishReason('COMPLETED', 150, null)).toBe('stop');
  expect(finishReason('COMPLETED', 39, 40)).toBe('stop');
  expect(finishReason('COMPLETED', 40, 40)).toBe('length');
  expect(finishReason('UPSTREAM_INTERRUPTED', 20, null)).toBe('length');
});
