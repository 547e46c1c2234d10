import type { ModelInfo } from '../../src/catalog/types';
import { AppError } from '../../src/errors';
import { estimatePromptTokens, type AttemptRecord } from '../../src/routing/attempts';
import { makeModelHealth, type ModelHealth } from '../../src/routing/model-health';
import type { Plan } from '../../src/routing/plan';
import { routeChat, type CallEnd, type CallModel, type RouteEnd, type RouteRequest } from '../../src/routing/route-stream';
import type { UpstreamFailure } from '../../src/upstream/errors';
import type { UpstreamEvent } from '../../src/upstream/types';

/** What the fake upstream does for one call to one model. */
interface Script {
  readonly deltas?: readonly string[];
  readonly usage?: { readonly promptTokens: number; readonly completionTokens: number };
  /** After the deltas: wait until the request's signal aborts. */
  readonly hang?: boolean;
  /** After the deltas (and usage): fail this way. */
  readonly fail?: UpstreamFailure;
  /** The call's I/O throws (a bug, not an upstream answer). */
  readonly throws?: boolean;
}

interface FakeUpstream {
  readonly calls: { readonly model: string; readonly firstTokenTimeoutMs: number; readonly signal: AbortSignal }[];
  readonly call: CallModel;
  /** Calls that have not resolved yet. */
  open(): number;
}

/** Each delta is one network read, a microtask apart; failures resolve as values, as the upstream client's do. */
function fakeUpstream(scripts: Record<string, Script | Script[]>): FakeUpstream {
  const calls: FakeUpstream['calls'][number][] = [];
  let open = 0;
  async function run(signal: AbortSignal, s: Script, onRead: (events: readonly UpstreamEvent[]) => void): Promise<CallEnd> {
    open++;
    try {
      if (signal.aborted) return { ok: false, failure: { kind: 'aborted' } };
      if (s.throws) throw new Error('bug in the I/O');
      for (const text of s.deltas ?? []) {
        await Promise.resolve();
        onRead([{ type: 'delta', text }]);
      }
      if (s.usage) onRead([{ type: 'usage', cachedPromptTokens: 0, cacheWriteTokens: 0, ...s.usage }]);
      if (s.hang) {
        await new Promise<void>((resolve) => {
          if (signal.aborted) resolve();
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
        return { ok: false, failure: { kind: 'aborted' } };
      }
      return s.fail ? { ok: false, failure: s.fail } : { ok: true };
    } finally {
      open--;
    }
  }
  return {
    calls,
    open: () => open,
    call({ planned, signal }, onRead) {
      calls.push({ model: planned.model.id, firstTokenTimeoutMs: planned.firstTokenTimeoutMs, signal });
      const entry = scripts[planned.model.id];
      const s = Array.isArray(entry) ? entry.shift() : entry;
      if (!s) throw new Error(`no script for ${planned.model.id}`);
      return run(signal, s, onRead);
    },
  };
}

/** The walk's calls and sink as one list, in order, ending with its end. */
type RouteEvent =
  | { readonly type: 'attempt'; readonly model: string }
  | { readonly type: 'delta'; readonly model: string; readonly text: string }
  | { readonly type: 'tool_calls'; readonly model: string; readonly deltas: readonly unknown[] }
  | { readonly type: 'discard'; readonly model: string; readonly attempt: AttemptRecord }
  | RouteEnd;

async function routeStream(
  deps: { upstream: FakeUpstream; health: ModelHealth; clock?: () => number },
  req: RouteRequest,
  onEvent?: (ev: RouteEvent) => void,
): Promise<RouteEvent[]> {
  const events: RouteEvent[] = [];
  const push = (ev: RouteEvent): void => {
    events.push(ev);
    onEvent?.(ev);
  };
  const end = await routeChat({ call: deps.upstream.call, health: deps.health, ...(deps.clock ? { clock: deps.clock } : {}) }, req, {
    attempt: (model) => push({ type: 'attempt', model }),
    output: (model, evs) => {
      for (const ev of evs) {
        if (ev.type === 'delta') push({ type: 'delta', model, text: ev.text });
        else if (ev.type === 'tool_calls') push({ type: 'tool_calls', model, deltas: ev.deltas });
      }
    },
    discard: async (model, attempt) => {
      await Promise.resolve();
      push({ type: 'discard', model, attempt });
    },
  });
  push(end);
  return events;
}

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
  profile: { name: 'chat_default', model: chain[0]!, defaultMaxTokens: 1024, maxTokensCap: 4096 },
  region: 'ASIA',
  chain: chain.map((id, i) => ({ model: model(id), firstTokenTimeoutMs: 800 + i })),
});
const MESSAGES = [
  { role: 'system' as const, content: 'You are terse.' }, // 14 chars -> 4 + 4
  { role: 'user' as const, content: 'Explain recursion in 200 words' }, // 30 chars -> 8 + 4
];
const PROMPT_ESTIMATE = 20;

function request(p: Plan, over: Partial<RouteRequest> = {}): RouteRequest {
  return {
    plan: p,
    promptEstimate: estimatePromptTokens(MESSAGES),
    signal: new AbortController().signal,
    mode: 'stream',
    totalTimeoutMs: 10_000,
    ...over,
  };
}

const collect = (events: Promise<RouteEvent[]>): Promise<RouteEvent[]> => events;

const last = (events: RouteEvent[]): RouteEvent => events[events.length - 1]!;
/** The terminal event's attempts (throws when the last event is not terminal). */
function attemptsOf(events: RouteEvent[]): readonly AttemptRecord[] {
  const ev = last(events);
  if (ev.type !== 'done' && ev.type !== 'failed') throw new Error(`last event is ${ev.type}`);
  return ev.attempts;
}
const shape = (events: RouteEvent[]): string[] =>
  events.map((e) => {
    switch (e.type) {
      case 'attempt':
        return `attempt:${e.model}`;
      case 'delta':
        return `delta:${e.model}:${e.text}`;
      case 'tool_calls':
        return `tool_calls:${e.model}:${e.deltas.length}`;
      case 'discard':
        return `discard:${e.model}:${e.attempt.completionTokens}`;
      case 'done':
        return `done:${e.model}:${e.outcome}`;
      case 'failed':
        return `failed:${e.outcome}:${e.error.code}`;
    }
  });
const brief = (attempts: readonly AttemptRecord[]): [string, string | null, number, number, string][] =>
  attempts.map((a) => [a.model, a.error, a.promptTokens, a.completionTokens, a.usageSource]);

const retryable = (code: 'HTTP_500' | 'INTERRUPTED' | 'STALL' | 'TIMEOUT' | 'HTTP_429', retryAfterMs?: number): UpstreamFailure =>
  retryAfterMs === undefined ? { kind: 'retryable', code } : { kind: 'retryable', code, retryAfterMs };

describe('estimatePromptTokens', () => {
  it('is ceil(chars / 4) + 4 per message', () => {
    expect(estimatePromptTokens(MESSAGES)).toBe(PROMPT_ESTIMATE);
    expect(estimatePromptTokens([])).toBe(0);
    expect(estimatePromptTokens([{ role: 'user', content: '' }])).toBe(4);
  });
});

describe('routeChat', () => {
  let health: ModelHealth;
  beforeEach(() => {
    health = makeModelHealth();
  });

  it('streams one model’s answer and ends with COMPLETED and the provider’s usage', async () => {
    const up = fakeUpstream({ a: { deltas: ['Hel', 'lo'], usage: { promptTokens: 21, completionTokens: 2 } } });
    let t = 100;
    const events = await collect(routeStream({ upstream: up, health, clock: () => (t += 5) }, request(plan('a', 'b'))));
    expect(shape(events)).toEqual(['attempt:a', 'delta:a:Hel', 'delta:a:lo', 'done:a:COMPLETED']);
    const done = last(events);
    if (done.type !== 'done') throw new Error('not done');
    expect(done.usage).toEqual({ promptTokens: 21, completionTokens: 2, cachedPromptTokens: 0, cacheWriteTokens: 0, source: 'PROVIDER' });
    expect(done.attempts).toEqual([{ model: 'a', ok: true, error: null, latencyMs: 10, promptTokens: 21, completionTokens: 2, usageSource: 'PROVIDER' }]);
    expect(done.ttftMs).toBe(10);
    // What the call was asked for.
    expect(up.calls[0]).toMatchObject({ model: 'a', firstTokenTimeoutMs: 800 });
    expect(health.states()).toEqual({ a: 'closed' });
  });

  it('estimates usage when the stream carried none', async () => {
    const up = fakeUpstream({ a: { deltas: ['a', 'b', 'c'] } });
    const done = last(await collect(routeStream({ upstream: up, health }, request(plan('a')))));
    expect(done).toMatchObject({ type: 'done', outcome: 'COMPLETED', usage: { promptTokens: PROMPT_ESTIMATE, completionTokens: 3, source: 'ESTIMATED' } });
  });

  it('falls back before the first delta, with that model’s own first-token deadline', async () => {
    const up = fakeUpstream({ a: { fail: retryable('HTTP_500') }, b: { deltas: ['ok'] } });
    const events = await collect(routeStream({ upstream: up, health }, request(plan('a', 'b'))));
    expect(shape(events)).toEqual(['attempt:a', 'attempt:b', 'delta:b:ok', 'done:b:COMPLETED']);
    expect(brief(attemptsOf(events))).toEqual([
      ['a', 'HTTP_500', 0, 0, 'ESTIMATED'],
      ['b', null, PROMPT_ESTIMATE, 1, 'ESTIMATED'],
    ]);
    expect(up.calls.map((c) => c.firstTokenTimeoutMs)).toEqual([800, 801]);
  });

  it('stream mode: never switches model after a delta; a cut ends UPSTREAM_INTERRUPTED with estimated usage', async () => {
    const up = fakeUpstream({ a: { deltas: ['1', '2', '3'], fail: retryable('INTERRUPTED') }, b: { deltas: ['nope'] } });
    const events = await collect(routeStream({ upstream: up, health }, request(plan('a', 'b'))));
    expect(shape(events)).toEqual(['attempt:a', 'delta:a:1', 'delta:a:2', 'delta:a:3', 'done:a:UPSTREAM_INTERRUPTED']);
    expect(last(events)).toMatchObject({ usage: { promptTokens: PROMPT_ESTIMATE, completionTokens: 3, source: 'ESTIMATED' } });
    expect(up.calls).toHaveLength(1);
  });

  it('stream mode: a stall after content ends TIMEOUT', async () => {
    const up = fakeUpstream({ a: { deltas: ['1', '2'], fail: retryable('STALL') }, b: { deltas: ['nope'] } });
    const events = await collect(routeStream({ upstream: up, health }, request(plan('a', 'b'))));
    expect(shape(events).slice(-1)).toEqual(['done:a:TIMEOUT']);
    expect(last(events)).toMatchObject({ usage: { completionTokens: 2, source: 'ESTIMATED' } });
    expect(up.calls).toHaveLength(1);
  });

  it('collect mode: a cut after content is discarded with its tokens, and the next model answers', async () => {
    const up = fakeUpstream({ a: { deltas: ['1', '2', '3'], fail: retryable('INTERRUPTED') }, b: { deltas: ['fine'] } });
    const events = await collect(routeStream({ upstream: up, health }, request(plan('a', 'b'), { mode: 'collect' })));
    expect(shape(events)).toEqual(['attempt:a', 'delta:a:1', 'delta:a:2', 'delta:a:3', 'discard:a:3', 'attempt:b', 'delta:b:fine', 'done:b:COMPLETED']);
    const discard = events.find((e) => e.type === 'discard');
    expect(discard).toMatchObject({
      attempt: { model: 'a', ok: false, error: 'INTERRUPTED', promptTokens: PROMPT_ESTIMATE, completionTokens: 3, usageSource: 'ESTIMATED' },
    });
    const done = last(events);
    expect(done).toMatchObject({ model: 'b', usage: { completionTokens: 1 } });
    expect(brief(attemptsOf([done]))).toEqual([
      ['a', 'INTERRUPTED', PROMPT_ESTIMATE, 3, 'ESTIMATED'],
      ['b', null, PROMPT_ESTIMATE, 1, 'ESTIMATED'],
    ]);
  });

  it('collect mode: when the whole chain fails, the consumed attempts stay in the failure', async () => {
    const up = fakeUpstream({ a: { deltas: ['1', '2'], fail: retryable('STALL') }, b: { fail: retryable('HTTP_500') } });
    const events = await collect(routeStream({ upstream: up, health }, request(plan('a', 'b'), { mode: 'collect' })));
    expect(shape(events)).toEqual(['attempt:a', 'delta:a:1', 'delta:a:2', 'discard:a:2', 'attempt:b', 'failed:FAILED:UPSTREAM_UNAVAILABLE']);
    const failed = last(events);
    if (failed.type !== 'failed') throw new Error('not failed');
    expect(failed.error.message).toBe('every model of profile chat_default failed');
    expect(brief(failed.attempts)).toEqual([
      ['a', 'STALL', PROMPT_ESTIMATE, 2, 'ESTIMATED'],
      ['b', 'HTTP_500', 0, 0, 'ESTIMATED'],
    ]);
    // The client's copy carries the contract's Attempt fields only; token counts stay with the ledger.
    expect(failed.error.extensions.attempts).toEqual(failed.attempts.map(({ model, ok, error, latencyMs }) => ({ model, ok, error, latencyMs })));
  });

  it('whole chain down before content: failed UPSTREAM_UNAVAILABLE with every attempt and no done', async () => {
    const up = fakeUpstream({ a: { fail: retryable('HTTP_500') }, b: { fail: retryable('TIMEOUT') }, c: { fail: retryable('HTTP_500') } });
    const events = await collect(routeStream({ upstream: up, health }, request(plan('a', 'b', 'c'))));
    expect(events.filter((e) => e.type === 'done')).toEqual([]);
    expect(shape(events).slice(-1)).toEqual(['failed:FAILED:UPSTREAM_UNAVAILABLE']);
    expect(brief(attemptsOf(events)).map((a) => [a[0], a[1]])).toEqual([
      ['a', 'HTTP_500'],
      ['b', 'TIMEOUT'],
      ['c', 'HTTP_500'],
    ]);
  });

  it('a fatal 400 stops at once with BAD_USER_INPUT and does not count against the model', async () => {
    const up = fakeUpstream({ a: { fail: { kind: 'fatal', code: 'HTTP_400', status: 400 } }, b: { deltas: ['x'] } });
    const events = await collect(routeStream({ upstream: up, health }, request(plan('a', 'b'))));
    expect(shape(events)).toEqual(['attempt:a', 'failed:FAILED:BAD_USER_INPUT']);
    expect((last(events) as { error: AppError }).error.extensions).toMatchObject({ upstreamStatus: 400 });
    for (let i = 0; i < 10; i++) {
      await collect(routeStream({ upstream: fakeUpstream({ a: { fail: { kind: 'fatal', code: 'HTTP_400', status: 400 } } }), health }, request(plan('a'))));
    }
    expect(health.check('a').ok).toBe(true);
  });

  it('the gateway key refused: the whole chain fails at once, UPSTREAM_UNAVAILABLE', async () => {
    const up = fakeUpstream({ a: { fail: { kind: 'auth', code: 'HTTP_401' } }, b: { deltas: ['x'] } });
    const events = await collect(routeStream({ upstream: up, health }, request(plan('a', 'b'))));
    expect(shape(events)).toEqual(['attempt:a', 'failed:FAILED:UPSTREAM_UNAVAILABLE']);
    expect(up.calls).toHaveLength(1);
  });

  it('skips models the health rules out and records why; honours Retry-After from a 429', async () => {
    for (let i = 0; i < 5; i++) health.recordFailure('a');
    const up = fakeUpstream({ b: { fail: retryable('HTTP_429', 60_000) }, c: { deltas: ['x'] } });
    const first = await collect(routeStream({ upstream: up, health }, request(plan('a', 'b', 'c'))));
    expect(brief(attemptsOf(first)).map((a) => [a[0], a[1]])).toEqual([
      ['a', 'CIRCUIT_OPEN'],
      ['b', 'HTTP_429'],
      ['c', null],
    ]);
    const second = await collect(routeStream({ upstream: fakeUpstream({ c: { deltas: ['y'] } }), health }, request(plan('a', 'b', 'c'))));
    expect(brief(attemptsOf(second)).map((a) => [a[0], a[1], a[3]])).toEqual([
      ['a', 'CIRCUIT_OPEN', 0],
      ['b', 'RETRY_AFTER', 0],
      ['c', null, 1],
    ]);
  });

  it('client abort while waiting for the first token: failed CLIENT_CANCELLED at once, upstream aborted', async () => {
    const client = new AbortController();
    const up = fakeUpstream({ a: { hang: true }, b: { deltas: ['x'] } });
    const t0 = Date.now();
    const events = await routeStream({ upstream: up, health }, request(plan('a', 'b'), { signal: client.signal }), (ev) => {
      if (ev.type === 'attempt') setTimeout(() => client.abort(), 5);
    });
    expect(Date.now() - t0).toBeLessThan(1_000); // the abort itself ended the wait, not the 10 s total deadline
    expect(shape(events)).toEqual(['attempt:a', 'failed:CLIENT_CANCELLED:UPSTREAM_UNAVAILABLE']);
    expect(attemptsOf(events).map((a) => a.error)).toEqual(['CLIENT_CANCELLED']);
    expect(up.calls[0]!.signal.aborted).toBe(true);
    expect(up.calls).toHaveLength(1);
    expect(up.open()).toBe(0);
    // A client abort says nothing about the model.
    expect(health.states()).toEqual({});
  });

  it('client abort mid-stream: done CLIENT_CANCELLED with the delivered tokens', async () => {
    const client = new AbortController();
    const up = fakeUpstream({ a: { deltas: ['1', '2'], hang: true } });
    const t0 = Date.now();
    const events = await routeStream({ upstream: up, health }, request(plan('a'), { signal: client.signal }), (ev) => {
      if (ev.type === 'delta' && ev.text === '2') setTimeout(() => client.abort(), 5);
    });
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(shape(events).slice(-1)).toEqual(['done:a:CLIENT_CANCELLED']);
    expect(last(events)).toMatchObject({ usage: { promptTokens: PROMPT_ESTIMATE, completionTokens: 2, source: 'ESTIMATED' } });
    expect(up.open()).toBe(0);
  });

  it('an I/O that throws is UNEXPECTED, counts against the model, and the next model answers', async () => {
    const up = fakeUpstream({ a: { throws: true }, b: { deltas: ['x'] } });
    const events = await routeStream({ upstream: up, health }, request(plan('a', 'b')));
    expect(shape(events)).toEqual(['attempt:a', 'attempt:b', 'delta:b:x', 'done:b:COMPLETED']);
    expect(attemptsOf(events).map((a) => a.error)).toEqual(['UNEXPECTED', null]);
  });

  it('a client already gone: no upstream call at all', async () => {
    const client = new AbortController();
    client.abort();
    const up = fakeUpstream({ a: { deltas: ['x'] } });
    const events = await collect(routeStream({ upstream: up, health }, request(plan('a'), { signal: client.signal })));
    expect(shape(events)).toEqual(['failed:CLIENT_CANCELLED:UPSTREAM_UNAVAILABLE']);
    expect(up.calls).toHaveLength(0);
  });

  it('the total deadline: before content the request fails; after content it ends TIMEOUT', async () => {
    const before = await collect(
      routeStream({ upstream: fakeUpstream({ a: { hang: true }, b: { deltas: ['x'] } }), health }, request(plan('a', 'b'), { totalTimeoutMs: 30 })),
    );
    expect(shape(before)).toEqual(['attempt:a', 'failed:FAILED:UPSTREAM_UNAVAILABLE']);
    expect((last(before) as { error: AppError }).error.message).toBe('no model of profile chat_default answered within 30 ms');
    expect(attemptsOf(before).map((a) => a.error)).toEqual(['TOTAL_TIMEOUT']);

    const after = await collect(
      routeStream({ upstream: fakeUpstream({ a: { deltas: ['x'], hang: true } }), health }, request(plan('a'), { totalTimeoutMs: 30, mode: 'collect' })),
    );
    expect(shape(after)).toEqual(['attempt:a', 'delta:a:x', 'done:a:TIMEOUT']);
    expect(health.states()).toEqual({});
  });

  it('counts retryable failures against the breaker: five failed requests open it', async () => {
    for (let i = 0; i < 5; i++) {
      await collect(routeStream({ upstream: fakeUpstream({ a: { fail: retryable('HTTP_500') }, b: { deltas: ['x'] } }), health }, request(plan('a', 'b'))));
      expect(health.states().a).toBe(i < 4 ? 'closed' : 'open');
    }
  });

  it('an empty chain fails with UPSTREAM_UNAVAILABLE', async () => {
    const p: Plan = { ...plan('a'), chain: [] };
    const events = await collect(routeStream({ upstream: fakeUpstream({}), health }, request(p)));
    expect(shape(events)).toEqual(['failed:FAILED:UPSTREAM_UNAVAILABLE']);
  });
});
