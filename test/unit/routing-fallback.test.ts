import type { ModelInfo } from '../../src/catalog/types';
import { AppError } from '../../src/errors';
import type { AttemptRecord } from '../../src/routing/attempts';
import { makeModelHealth } from '../../src/routing/model-health';
import type { Plan } from '../../src/routing/plan';
import { runWithFallback } from '../../src/routing/run-with-fallback';
import { UpstreamError, isRetryableUpstream } from '../../src/upstream/errors';

const model = (id: string): ModelInfo => ({
  id,
  name: id,
  provider: 'p',
  ttftUsEastMs: 100,
  ttftAsiaMs: null,
  tokensPerSecond: 50,
  outputMicrosPerMillion: 1n,
  inputMicrosPerMillion: null,
});
const plan = (...chain: string[]): Plan => ({
  profile: { name: 'chat_default', model: chain[0] ?? 'x', defaultMaxTokens: 1024, maxTokensCap: 4096 },
  region: 'US_EAST',
  chain: chain.map((id) => ({ model: model(id), firstTokenTimeoutMs: 800 })),
});
const http = (status: number, retryAfterMs?: number): UpstreamError =>
  new UpstreamError(
    status === 401
      ? { kind: 'auth', code: 'HTTP_401' }
      : status < 500 && status !== 429
        ? { kind: 'fatal', code: `HTTP_${status}`, status }
        : retryAfterMs === undefined
          ? { kind: 'retryable', code: `HTTP_${status}` }
          : { kind: 'retryable', code: `HTTP_${status}`, retryAfterMs },
  );

/** Scripted attempts: each model id maps to the error it throws, or to nothing (answers with its id). */
function scripted(script: Record<string, UpstreamError | undefined>): { calls: string[]; attempt: (m: { model: ModelInfo }) => Promise<string> } {
  const calls: string[] = [];
  return {
    calls,
    attempt: async ({ model: m }) => {
      calls.push(m.id);
      const err = script[m.id];
      if (err) throw err;
      return `answer from ${m.id}`;
    },
  };
}

const summary = (attempts: readonly AttemptRecord[]): [string, boolean, string | null][] => attempts.map((a) => [a.model, a.ok, a.error]);

describe('runWithFallback', () => {
  it('answers with the primary when it works, and records one attempt', async () => {
    const s = scripted({});
    let t = 0;
    const out = await runWithFallback(plan('a', 'b'), s.attempt, { isRetryable: isRetryableUpstream, clock: () => (t += 7) });
    expect(out.result).toBe('answer from a');
    expect(out.model.id).toBe('a');
    expect(out.attempts).toEqual([
      { model: 'a', ok: true, error: null, latencyMs: 7, promptTokens: 0, completionTokens: 0, usageSource: 'ESTIMATED' },
    ]);
    expect(s.calls).toEqual(['a']);
  });

  it('moves to the next model after a retryable failure', async () => {
    const s = scripted({ a: http(500) });
    const out = await runWithFallback(plan('a', 'b', 'c'), s.attempt, { isRetryable: isRetryableUpstream });
    expect(out.result).toBe('answer from b');
    expect(summary(out.attempts)).toEqual([
      ['a', false, 'HTTP_500'],
      ['b', true, null],
    ]);
    expect(s.calls).toEqual(['a', 'b']);
  });

  it('passes each attempt its planned model and index, and takes usage from the result', async () => {
    const seen: [string, number][] = [];
    const out = await runWithFallback(
      plan('a', 'b'),
      async (m, i) => {
        seen.push([m.model.id, i]);
        if (i === 0) throw http(503);
        return { tokens: 42 };
      },
      { isRetryable: isRetryableUpstream, usageOf: (r) => ({ promptTokens: 3, completionTokens: r.tokens, source: 'PROVIDER' }) },
    );
    expect(seen).toEqual([
      ['a', 0],
      ['b', 1],
    ]);
    expect(out.attempts[1]).toMatchObject({ promptTokens: 3, completionTokens: 42, usageSource: 'PROVIDER' });
  });

  it('stops at a non-retryable error and rethrows it', async () => {
    const s = scripted({ a: http(400) });
    await expect(runWithFallback(plan('a', 'b'), s.attempt, { isRetryable: isRetryableUpstream })).rejects.toMatchObject({
      failure: { kind: 'fatal', status: 400 },
    });
    expect(s.calls).toEqual(['a']);
  });

  it('throws UPSTREAM_UNAVAILABLE listing every attempt when all fail', async () => {
    const s = scripted({ a: http(500), b: http(503), c: http(429) });
    const err = await runWithFallback(plan('a', 'b', 'c'), s.attempt, { isRetryable: isRetryableUpstream }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('UPSTREAM_UNAVAILABLE');
    expect((err as AppError).message).toBe('every model of profile chat_default failed');
    expect(summary((err as AppError).extensions.attempts as AttemptRecord[])).toEqual([
      ['a', false, 'HTTP_500'],
      ['b', false, 'HTTP_503'],
      ['c', false, 'HTTP_429'],
    ]);
  });

  it('treats the gateway key being refused as a failure of the whole chain', async () => {
    const s = scripted({ a: http(401) });
    const err = (await runWithFallback(plan('a', 'b'), s.attempt, { isRetryable: isRetryableUpstream }).catch((e: unknown) => e)) as AppError;
    expect(err.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(s.calls).toEqual(['a']);
    expect(summary(err.extensions.attempts as AttemptRecord[])).toEqual([['a', false, 'HTTP_401']]);
  });

  it('skips models with an open breaker or a pending Retry-After, recording the skips', async () => {
    const health = makeModelHealth({ clock: () => 0 });
    for (let i = 0; i < 5; i++) health.recordFailure('a');
    health.markRetryAfter('b', 1_000);
    const s = scripted({});
    const out = await runWithFallback(plan('a', 'b', 'c'), s.attempt, { isRetryable: isRetryableUpstream, health });
    expect(s.calls).toEqual(['c']);
    expect(out.attempts).toEqual([
      { model: 'a', ok: false, error: 'CIRCUIT_OPEN', latencyMs: 0, promptTokens: 0, completionTokens: 0, usageSource: 'ESTIMATED' },
      { model: 'b', ok: false, error: 'RETRY_AFTER', latencyMs: 0, promptTokens: 0, completionTokens: 0, usageSource: 'ESTIMATED' },
      { model: 'c', ok: true, error: null, latencyMs: expect.any(Number), promptTokens: 0, completionTokens: 0, usageSource: 'ESTIMATED' },
    ]);
  });

  it('feeds the health: retryable failures count, Retry-After is honoured, fatal errors do not count', async () => {
    let now = 0;
    const health = makeModelHealth({ clock: () => now });
    await runWithFallback(plan('a', 'b'), scripted({ a: http(429, 2_000) }).attempt, { isRetryable: isRetryableUpstream, health });
    expect(health.check('a')).toEqual({ ok: false, reason: 'RETRY_AFTER', untilMs: 2_000 });
    now = 2_000;
    expect(health.check('a').ok).toBe(true);

    for (let i = 0; i < 10; i++) {
      await runWithFallback(plan('f'), scripted({ f: http(400) }).attempt, { isRetryable: isRetryableUpstream, health }).catch(() => undefined);
    }
    expect(health.check('f').ok).toBe(true);

    for (let i = 0; i < 5; i++) {
      await runWithFallback(plan('r', 'ok'), scripted({ r: http(500) }).attempt, { isRetryable: isRetryableUpstream, health });
    }
    expect(health.states()).toMatchObject({ r: 'open', ok: 'closed' });
    const s = scripted({});
    const out = await runWithFallback(plan('r', 'ok'), s.attempt, { isRetryable: isRetryableUpstream, health });
    expect(s.calls).toEqual(['ok']);
    expect(out.attempts[0]!.error).toBe('CIRCUIT_OPEN');
  });

  it('fails with UPSTREAM_UNAVAILABLE when every model is skipped, without calling any', async () => {
    const health = makeModelHealth();
    health.markRetryAfter('a', 60_000);
    const s = scripted({});
    const err = (await runWithFallback(plan('a'), s.attempt, { isRetryable: isRetryableUpstream, health }).catch((e: unknown) => e)) as AppError;
    expect(err.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(s.calls).toEqual([]);
  });
});
