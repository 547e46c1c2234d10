import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { FALLBACK_TABLE, MODEL_TABLE, PROFILE_TABLE } from '../../src/catalog/model-table';
import type { Catalog, OverrideInfo, Region } from '../../src/catalog/types';
import { estimatePromptTokens, type AttemptRecord } from '../../src/routing/attempts';
import { makeModelHealth, type ModelHealth } from '../../src/routing/model-health';
import { buildPlan } from '../../src/routing/plan';
import { routeChat, type CallModel, type RouteDone, type RouteFailed, type RouteRequest } from '../../src/routing/route-stream';
import { startSimulator, type Simulator } from '../../src/simulator/server';
import { makeUpstreamClient } from '../../src/upstream/client';
import type { UpstreamChatRequest, UpstreamClient, UpstreamEvent } from '../../src/upstream/types';

/**
 * The router and the upstream client against the project's simulator over real HTTP (port 0). Latencies are the
 * model table's times 0.05 (deepseek-v4-flash: 9 ms to the first token, 0.8 ms a token), and the first-token floor
 * is 300 ms instead of 800 so that the timeout case stays quick.
 */
const LATENCY_SCALE = 0.05;
const ROUTING = { firstTokenFloorMs: 300, ttftMultiple: 2 };
const API_KEY = 'sk-gateway-integration-secret';
const MESSAGES = [
  { role: 'system' as const, content: 'You are terse.' },
  { role: 'user' as const, content: 'Explain recursion in 200 words' },
];

function seedCatalog(): Catalog {
  return {
    models: new Map(MODEL_TABLE.map((r) => [r.id, { ...r, inputMicrosPerMillion: null }])),
    profiles: new Map(PROFILE_TABLE.map((p) => [p.name, { name: p.name, model: p.model, defaultMaxTokens: p.defaultMaxTokens, maxTokensCap: p.maxTokensCap }])),
    fallbacks: new Map(Object.entries(FALLBACK_TABLE)),
  };
}
const catalog = seedCatalog();

let sim: Simulator;
let simOrigin: string;
let upstream: UpstreamClient;
const admin = new Agent({ keepAliveTimeout: 1_000 });

interface SimStats {
  readonly requests: Record<string, number>;
  readonly openStreams: number;
  readonly abortedByClient: number;
}

async function simCall(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await request(`${simOrigin}${path}`, {
    method,
    dispatcher: admin,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.statusCode, json: await res.body.json() };
}

async function fault(spec: { model: string; fault: string; times?: number; afterTokens?: number; delayMs?: number }): Promise<void> {
  const r = await simCall('POST', '/__sim/faults', spec);
  if (r.status !== 201) throw new Error(`fault not queued: ${r.status} ${JSON.stringify(r.json)}`);
}

const stats = async (): Promise<SimStats> => (await simCall('GET', '/__sim/stats')).json as SimStats;

async function waitForStats(pred: (s: SimStats) => boolean, timeoutMs = 3_000): Promise<SimStats> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const s = await stats();
    if (pred(s) || performance.now() > deadline) return s;
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Route {
  profile?: string;
  region?: Region;
  overrides?: OverrideInfo[];
  mode?: RouteRequest['mode'];
  maxTokens?: number;
  idleTimeoutMs?: number;
  totalTimeoutMs?: number;
  signal?: AbortSignal;
  health?: ModelHealth;
  client?: UpstreamClient;
}

/** The walk's calls and output as one list in order (one delta per upstream chunk), ending with its end. */
type RouteEvent =
  | { readonly type: 'attempt'; readonly model: string }
  | { readonly type: 'delta'; readonly model: string; readonly text: string }
  | { readonly type: 'discard'; readonly model: string; readonly attempt: AttemptRecord }
  | RouteDone
  | RouteFailed;

/** Walks a plan over the client as the chat use case does (run-chat.ts supplies the same call). */
async function route(r: Route, onEvent?: (ev: RouteEvent) => void): Promise<RouteEvent[]> {
  const plan = buildPlan(catalog, r.overrides ?? [], r.profile ?? 'chat_default', r.region ?? 'US_EAST', ROUTING);
  const client = r.client ?? upstream;
  const events: RouteEvent[] = [];
  const push = (ev: RouteEvent): void => {
    events.push(ev);
    onEvent?.(ev);
  };
  const call: CallModel = ({ planned, signal }, onRead) =>
    client.streamChat(
      {
        model: planned.model.id,
        messages: MESSAGES,
        maxTokens: r.maxTokens ?? 40,
        region: plan.region,
        signal,
        firstTokenTimeoutMs: planned.firstTokenTimeoutMs,
        idleTimeoutMs: r.idleTimeoutMs ?? 2_000,
      },
      onRead,
    );
  const end = await routeChat(
    { call, health: r.health ?? makeModelHealth() },
    { plan, promptEstimate: PROMPT, signal: r.signal ?? new AbortController().signal, mode: r.mode ?? 'stream', totalTimeoutMs: r.totalTimeoutMs ?? 20_000 },
    {
      attempt: (model) => push({ type: 'attempt', model }),
      output: (model, evs) => {
        for (const ev of evs) if (ev.type === 'delta') push({ type: 'delta', model, text: ev.text });
      },
      discard: async (model, attempt) => push({ type: 'discard', model, attempt }),
    },
  );
  push(end);
  return events;
}

const collect = (events: Promise<RouteEvent[]>): Promise<RouteEvent[]> => events;

function terminal(events: readonly RouteEvent[]): RouteDone | RouteFailed {
  const ends = events.filter((e): e is RouteDone | RouteFailed => e.type === 'done' || e.type === 'failed');
  expect(ends).toHaveLength(1);
  expect(events[events.length - 1]).toBe(ends[0]);
  return ends[0]!;
}

function done(events: readonly RouteEvent[]): RouteDone {
  const t = terminal(events);
  if (t.type !== 'done') throw new Error(`expected done, got failed ${t.error.code}: ${t.error.message}`);
  return t;
}

const deltasOf = (events: readonly RouteEvent[], model?: string): number =>
  events.filter((e) => e.type === 'delta' && (model === undefined || e.model === model)).length;
const tried = (attempts: readonly AttemptRecord[]): [string, string | null][] => attempts.map((a) => [a.model, a.error]);
const PROMPT = estimatePromptTokens(MESSAGES);

beforeAll(async () => {
  sim = await startSimulator({ port: 0, latencyScale: LATENCY_SCALE });
  simOrigin = new URL(sim.url).origin;
  upstream = makeUpstreamClient({ baseUrl: sim.url, apiKey: API_KEY });
});

afterAll(async () => {
  await upstream.close();
  await sim.close();
  await admin.close();
});

beforeEach(async () => {
  await simCall('DELETE', '/__sim/faults');
  await simCall('DELETE', '/__sim/stats');
});

describe('routing over the simulator', () => {
  it('streams the primary’s answer with the provider’s usage', async () => {
    const events = await collect(route({ maxTokens: 40 }));
    const d = done(events);
    expect(d).toMatchObject({ model: 'deepseek-v4-flash', outcome: 'COMPLETED', usage: { promptTokens: PROMPT, completionTokens: 40, source: 'PROVIDER' } });
    expect(deltasOf(events)).toBe(40);
    expect(d.ttftMs).not.toBeNull();
    expect(tried(d.attempts)).toEqual([['deepseek-v4-flash', null]]);
    expect(d.attempts[0]).toMatchObject({ ok: true, completionTokens: 40, usageSource: 'PROVIDER' });
    expect((await stats()).requests).toEqual({ 'deepseek-v4-flash': 1 });
  });

  it('primary HTTP 500: the first fallback answers and the attempts show both', async () => {
    await fault({ model: 'deepseek-v4-flash', fault: 'http_500' });
    const events = await collect(route({}));
    const d = done(events);
    expect(d).toMatchObject({ model: 'hunyuan-turbos', outcome: 'COMPLETED' });
    expect(tried(d.attempts)).toEqual([
      ['deepseek-v4-flash', 'HTTP_500'],
      ['hunyuan-turbos', null],
    ]);
    expect(events.filter((e) => e.type === 'attempt').map((e) => (e as { model: string }).model)).toEqual(['deepseek-v4-flash', 'hunyuan-turbos']);
    expect(deltasOf(events, 'deepseek-v4-flash')).toBe(0);
  });

  it('HTTP 429 with Retry-After: the model is skipped until the time has passed', async () => {
    let now = 1_000_000;
    const health = makeModelHealth({ clock: () => now });
    await fault({ model: 'deepseek-v4-flash', fault: 'http_429' });
    const first = done(await collect(route({ health })));
    expect(tried(first.attempts)).toEqual([
      ['deepseek-v4-flash', 'HTTP_429'],
      ['hunyuan-turbos', null],
    ]);
    // The simulator's 429 says Retry-After: 1.
    expect(health.check('deepseek-v4-flash')).toEqual({ ok: false, reason: 'RETRY_AFTER', untilMs: now + 1_000 });

    now += 999;
    const second = done(await collect(route({ health })));
    expect(tried(second.attempts)).toEqual([
      ['deepseek-v4-flash', 'RETRY_AFTER'],
      ['hunyuan-turbos', null],
    ]);
    expect((await stats()).requests['deepseek-v4-flash']).toBe(1);

    now += 1;
    const third = done(await collect(route({ health })));
    expect(tried(third.attempts)).toEqual([['deepseek-v4-flash', null]]);
    expect((await stats()).requests['deepseek-v4-flash']).toBe(2);
  });

  it('first-token timeout: the attempt is abandoned at its deadline and the fallback answers', async () => {
    await fault({ model: 'deepseek-v4-flash', fault: 'timeout', delayMs: 10_000 });
    const t0 = performance.now();
    const d = done(await collect(route({})));
    const elapsed = performance.now() - t0;
    expect(tried(d.attempts)).toEqual([
      ['deepseek-v4-flash', 'TIMEOUT'],
      ['hunyuan-turbos', null],
    ]);
    // max(300, 2 x 180 x 1) = 360 ms, far from the fault's 10 s.
    expect(d.attempts[0]!.latencyMs).toBeGreaterThanOrEqual(355);
    expect(d.attempts[0]!.latencyMs).toBeLessThan(1_500);
    expect(elapsed).toBeLessThan(3_000);
    // The abandoned request was really closed.
    const s = await waitForStats((x) => x.openStreams === 0 && x.abortedByClient === 1);
    expect(s).toMatchObject({ openStreams: 0, abortedByClient: 1 });
  });

  it('whole chain down: failed UPSTREAM_UNAVAILABLE listing every attempt, and no done', async () => {
    await fault({ model: '*', fault: 'http_503', times: 3 });
    const events = await collect(route({}));
    const t = terminal(events);
    if (t.type !== 'failed') throw new Error('expected failed');
    expect(t.outcome).toBe('FAILED');
    expect(t.error.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(t.error.message).toBe('every model of profile chat_default failed');
    expect(tried(t.error.extensions.attempts as AttemptRecord[])).toEqual([
      ['deepseek-v4-flash', 'HTTP_503'],
      ['hunyuan-turbos', 'HTTP_503'],
      ['qwen3-32b', 'HTTP_503'],
    ]);
    expect(deltasOf(events)).toBe(0);
    // The upstream's error text never reaches the error.
    expect(JSON.stringify({ m: t.error.message, x: t.error.extensions })).not.toMatch(/overloaded/i);
  });

  it('stream mode, cut after 20 tokens: UPSTREAM_INTERRUPTED, 20 completion tokens ESTIMATED, no fallback', async () => {
    await fault({ model: 'deepseek-v4-flash', fault: 'cut', afterTokens: 20 });
    const events = await collect(route({ maxTokens: 60 }));
    const d = done(events);
    expect(d).toMatchObject({
      model: 'deepseek-v4-flash',
      outcome: 'UPSTREAM_INTERRUPTED',
      usage: { promptTokens: PROMPT, completionTokens: 20, source: 'ESTIMATED' },
    });
    expect(deltasOf(events)).toBe(20);
    expect(tried(d.attempts)).toEqual([['deepseek-v4-flash', 'INTERRUPTED']]);
    expect((await stats()).requests).toEqual({ 'deepseek-v4-flash': 1 });
  });

  it('collect mode, cut after 20 tokens: the attempt is discarded with its 20 tokens and the fallback answers', async () => {
    await fault({ model: 'deepseek-v4-flash', fault: 'cut', afterTokens: 20 });
    const events = await collect(route({ maxTokens: 60, mode: 'collect' }));
    const discards = events.filter((e) => e.type === 'discard');
    expect(discards).toEqual([
      {
        type: 'discard',
        model: 'deepseek-v4-flash',
        attempt: expect.objectContaining({
          model: 'deepseek-v4-flash',
          ok: false,
          error: 'INTERRUPTED',
          promptTokens: PROMPT,
          completionTokens: 20,
          usageSource: 'ESTIMATED',
        }),
      },
    ]);
    const d = done(events);
    expect(d).toMatchObject({ model: 'hunyuan-turbos', outcome: 'COMPLETED', usage: { completionTokens: 60, source: 'PROVIDER' } });
    expect(tried(d.attempts)).toEqual([
      ['deepseek-v4-flash', 'INTERRUPTED'],
      ['hunyuan-turbos', null],
    ]);
    // Both attempts carry their tokens for billing.
    expect(d.attempts.map((a) => a.completionTokens)).toEqual([20, 60]);
  });

  it('stall after content: TIMEOUT at the idle deadline, with the tokens streamed so far', async () => {
    await fault({ model: 'deepseek-v4-flash', fault: 'stall', afterTokens: 5, delayMs: 10_000 });
    const t0 = performance.now();
    const events = await collect(route({ idleTimeoutMs: 200 }));
    const elapsed = performance.now() - t0;
    const d = done(events);
    expect(d).toMatchObject({ model: 'deepseek-v4-flash', outcome: 'TIMEOUT', usage: { completionTokens: 5, source: 'ESTIMATED' } });
    expect(tried(d.attempts)).toEqual([['deepseek-v4-flash', 'STALL']]);
    expect(elapsed).toBeGreaterThanOrEqual(195);
    expect(elapsed).toBeLessThan(2_000);
    expect(await waitForStats((s) => s.openStreams === 0)).toMatchObject({ openStreams: 0, abortedByClient: 1 });
  });

  it('no usage in the stream: usage ESTIMATED from what was streamed', async () => {
    await fault({ model: 'deepseek-v4-flash', fault: 'no_usage' });
    const events = await collect(route({ maxTokens: 30 }));
    const d = done(events);
    expect(d).toMatchObject({ outcome: 'COMPLETED', usage: { promptTokens: PROMPT, completionTokens: 30, source: 'ESTIMATED' } });
    expect(deltasOf(events)).toBe(30);
    expect(d.attempts[0]).toMatchObject({ ok: true, usageSource: 'ESTIMATED', completionTokens: 30 });
  });

  it('garbage before any content is retryable: the fallback answers', async () => {
    await fault({ model: 'deepseek-v4-flash', fault: 'garbage' });
    const events = await collect(route({}));
    const d = done(events);
    expect(tried(d.attempts)).toEqual([
      ['deepseek-v4-flash', 'GARBAGE'],
      ['hunyuan-turbos', null],
    ]);
    expect(deltasOf(events, 'deepseek-v4-flash')).toBe(0);
  });

  it('the breaker opens after five failures in a row (not before), skips the model, and closes after a good probe', async () => {
    let now = 5_000_000;
    const health = makeModelHealth({ clock: () => now, cooldownMs: 30_000 });
    await fault({ model: 'deepseek-v4-flash', fault: 'http_500', times: 5 });
    for (let i = 1; i <= 5; i++) {
      const d = done(await collect(route({ health })));
      expect(tried(d.attempts)[0]).toEqual(['deepseek-v4-flash', 'HTTP_500']);
      expect(health.states()['deepseek-v4-flash']).toBe(i < 5 ? 'closed' : 'open');
    }
    const skipped = done(await collect(route({ health })));
    expect(tried(skipped.attempts)).toEqual([
      ['deepseek-v4-flash', 'CIRCUIT_OPEN'],
      ['hunyuan-turbos', null],
    ]);
    expect((await stats()).requests['deepseek-v4-flash']).toBe(5);

    now += 30_000;
    expect(health.states()['deepseek-v4-flash']).toBe('half_open');
    const probe = done(await collect(route({ health })));
    expect(tried(probe.attempts)).toEqual([['deepseek-v4-flash', null]]);
    expect(health.states()['deepseek-v4-flash']).toBe('closed');
    expect((await stats()).requests['deepseek-v4-flash']).toBe(6);
  });

  it('client abort while the upstream is silent: the upstream request ends at once, not at the next chunk', async () => {
    await fault({ model: 'deepseek-v4-flash', fault: 'stall', afterTokens: 3, delayMs: 10_000 });
    const client = new AbortController();
    let abortedAt = 0;
    let seen = 0;
    const events = await route({ signal: client.signal, idleTimeoutMs: 5_000 }, (ev) => {
      if (ev.type === 'delta' && ++seen === 3) {
        setTimeout(() => {
          abortedAt = performance.now();
          client.abort();
        }, 50);
      }
    });
    const endedAfterAbortMs = performance.now() - abortedAt;
    const d = done(events);
    expect(d).toMatchObject({ outcome: 'CLIENT_CANCELLED', usage: { completionTokens: 3, source: 'ESTIMATED' } });
    expect(tried(d.attempts)).toEqual([['deepseek-v4-flash', 'CLIENT_CANCELLED']]);
    expect(endedAfterAbortMs).toBeLessThan(500);
    const s = await waitForStats((x) => x.abortedByClient === 1 && x.openStreams === 0);
    expect(s).toMatchObject({ abortedByClient: 1, openStreams: 0 });
  });

  it('a consumer that stops mid-stream (aborts its signal) closes the upstream request', async () => {
    // qwen3.5-397b at 0.05: 5 ms a token, 150 tokens take 0.8 s.
    const overrides: OverrideInfo[] = [{ profile: 'chat_default', scope: 'ALL', model: 'qwen3.5-397b', fallbacks: [] }];
    const consumer = new AbortController();
    let seen = 0;
    await route({ overrides, maxTokens: 150, signal: consumer.signal }, (ev) => {
      if (ev.type === 'delta' && ++seen === 2) consumer.abort();
    });
    // The rest of the read that carried the second token is still handed over; the upstream stops there.
    expect(seen).toBeGreaterThanOrEqual(2);
    expect(seen).toBeLessThan(150);
    const s = await waitForStats((x) => x.abortedByClient === 1 && x.openStreams === 0);
    expect(s).toMatchObject({ requests: { 'qwen3.5-397b': 1 }, abortedByClient: 1, openStreams: 0 });
  });

  it('client abort before the first token: failed CLIENT_CANCELLED and the upstream request is closed', async () => {
    await fault({ model: 'deepseek-v4-flash', fault: 'timeout', delayMs: 10_000 });
    const client = new AbortController();
    setTimeout(() => client.abort(), 100);
    const events = await collect(route({ signal: client.signal }));
    const t = terminal(events);
    expect(t).toMatchObject({ type: 'failed', outcome: 'CLIENT_CANCELLED' });
    expect(tried(t.attempts)).toEqual([['deepseek-v4-flash', 'CLIENT_CANCELLED']]);
    expect(await waitForStats((x) => x.abortedByClient === 1 && x.openStreams === 0)).toMatchObject({ abortedByClient: 1, openStreams: 0 });
  });

  it('a per-region override routes that region only', async () => {
    const overrides: OverrideInfo[] = [
      { profile: 'chat_default', scope: 'ASIA', model: 'glm-5', fallbacks: [] },
      { profile: 'chat_default', scope: 'ALL', model: 'qwen3-8b', fallbacks: null },
    ];
    expect(done(await collect(route({ overrides, region: 'ASIA' }))).model).toBe('glm-5');
    expect(done(await collect(route({ overrides, region: 'US_EAST' }))).model).toBe('qwen3-8b');
    expect(done(await collect(route({ region: 'ASIA' }))).model).toBe('deepseek-v4-flash');
    expect((await stats()).requests).toEqual({ 'glm-5': 1, 'qwen3-8b': 1, 'deepseek-v4-flash': 1 });
  });

  it('an override’s replacement chain is the one walked', async () => {
    const overrides: OverrideInfo[] = [{ profile: 'chat_default', scope: 'ALL', model: 'glm-5', fallbacks: ['qwen3-8b'] }];
    await fault({ model: 'glm-5', fault: 'http_500' });
    const d = done(await collect(route({ overrides })));
    expect(tried(d.attempts)).toEqual([
      ['glm-5', 'HTTP_500'],
      ['qwen3-8b', null],
    ]);
  });
});

/** A tiny upstream of our own, to see exactly what the client sends and to answer what the simulator cannot. */
interface Seen {
  readonly headers: IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
}

async function tinyUpstream(
  answer: (res: import('node:http').ServerResponse, seen: Seen) => void,
): Promise<{ url: string; seen: Seen[]; close(): Promise<void>; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => {
      const s = { headers: req.headers, body: JSON.parse(raw) as Record<string, unknown> };
      seen.push(s);
      answer(res, s);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    seen,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const SSE_OK =
  'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}\n\n' +
  'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n' +
  'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}\n\n' +
  'data: [DONE]\n\n';

/** The events of one call, all reads in order; a failure rejects with its value. */
async function drain(client: UpstreamClient, req: UpstreamChatRequest): Promise<UpstreamEvent[]> {
  const out: UpstreamEvent[] = [];
  const end = await client.streamChat(req, (evs) => out.push(...evs));
  if (!end.ok) throw end.failure;
  return out;
}

describe('the upstream client on the wire', () => {
  const base = {
    model: 'kimi-k2.5',
    messages: MESSAGES,
    maxTokens: 77,
    firstTokenTimeoutMs: 2_000,
    idleTimeoutMs: 2_000,
  };

  it('posts a streamed request with usage, max_tokens, temperature, the bearer key and x-region', async () => {
    const tiny = await tinyUpstream((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(SSE_OK);
    });
    const client = makeUpstreamClient({ baseUrl: tiny.url, apiKey: API_KEY });
    try {
      const events = await drain(client, { ...base, temperature: 0.3, region: 'ASIA', signal: new AbortController().signal });
      expect(events).toEqual([
        { type: 'delta', text: 'Hi' },
        { type: 'finish', reason: 'STOP' },
        { type: 'usage', promptTokens: 9, completionTokens: 1, cachedPromptTokens: 0, cacheWriteTokens: 0 },
      ]);
      await drain(client, { ...base, region: 'US_EAST', signal: new AbortController().signal });
      const [asia, us] = tiny.seen;
      expect(asia!.headers).toMatchObject({ 'x-region': 'ASIA', authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' });
      expect(asia!.body).toEqual({
        model: 'kimi-k2.5',
        messages: MESSAGES,
        max_tokens: 77,
        temperature: 0.3,
        stream: true,
        stream_options: { include_usage: true },
      });
      expect(us!.headers['x-region']).toBe('US_EAST');
      expect(us!.body).not.toHaveProperty('temperature');
    } finally {
      await client.close();
      await tiny.close();
    }
  });

  it('the region reaches the simulator: an Asia answer arrives on Asia’s pace', async () => {
    // kimi-k2.5 at scale 1 for one token: 600 ms to the first token from US East, 480 ms from Asia.
    const slowSim = await startSimulator({ port: 0, latencyScale: 1 });
    const client = makeUpstreamClient({ baseUrl: slowSim.url, apiKey: API_KEY });
    try {
      const ttft = async (region: Region): Promise<number> => {
        const t0 = performance.now();
        let at: number | null = null;
        await client.streamChat({ ...base, maxTokens: 1, region, signal: new AbortController().signal }, (evs) => {
          if (evs.some((ev) => ev.type === 'delta')) at ??= performance.now() - t0;
        });
        if (at === null) throw new Error('no delta');
        return at;
      };
      const [asia, us] = [await ttft('ASIA'), await ttft('US_EAST')];
      expect(asia).toBeGreaterThanOrEqual(470);
      expect(us).toBeGreaterThanOrEqual(590);
      // 120 ms apart on paper; late timers delay both alike.
      expect(us - asia).toBeGreaterThanOrEqual(60);
    } finally {
      await client.close();
      await slowSim.close();
    }
  });

  it('reuses keep-alive connections from one request to the next', async () => {
    const sockets = new Set<unknown>();
    const tiny = await tinyUpstream((res) => {
      sockets.add(res.socket);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(SSE_OK);
    });
    const client = makeUpstreamClient({ baseUrl: tiny.url, apiKey: API_KEY });
    try {
      for (let i = 0; i < 6; i++) await drain(client, { ...base, region: 'US_EAST', signal: new AbortController().signal });
      expect(tiny.seen).toHaveLength(6);
      // undici frees a connection a tick after its body ends, so back-to-back requests alternate between two.
      expect(sockets.size).toBeLessThanOrEqual(2);
    } finally {
      await client.close();
      await tiny.close();
    }
  });

  it('401: an auth failure, logged at error level without the key or the upstream body; the chain stops', async () => {
    const tiny = await tinyUpstream((res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `Incorrect API key provided: ${API_KEY}`, type: 'invalid_request_error' } }));
    });
    const logged: unknown[][] = [];
    const logger = {
      error: (...args: unknown[]) => void logged.push(['error', ...args]),
      warn: (...args: unknown[]) => void logged.push(['warn', ...args]),
      debug: (...args: unknown[]) => void logged.push(['debug', ...args]),
    } as unknown as Parameters<typeof makeUpstreamClient>[0]['logger'];
    const client = makeUpstreamClient({ baseUrl: tiny.url, apiKey: API_KEY, logger });
    try {
      const err = await drain(client, { ...base, region: 'US_EAST', signal: new AbortController().signal }).catch((e: unknown) => e);
      expect(err).toEqual({ kind: 'auth', code: 'HTTP_401' });
      expect(logged.filter((l) => l[0] === 'error')).toHaveLength(1);
      expect(JSON.stringify(logged)).not.toContain(API_KEY);
      expect(JSON.stringify(logged)).not.toContain('Incorrect');

      const events = await collect(route({ client }));
      const t = terminal(events);
      expect(t).toMatchObject({ type: 'failed', outcome: 'FAILED', error: { code: 'UPSTREAM_UNAVAILABLE' } });
      expect(tried(t.attempts)).toEqual([['deepseek-v4-flash', 'HTTP_401']]);
      expect(JSON.stringify({ m: (t as RouteFailed).error.message, x: (t as RouteFailed).error.extensions })).not.toContain(API_KEY);
    } finally {
      await client.close();
      await tiny.close();
    }
  });

  it('400: fatal, no fallback, BAD_USER_INPUT without the upstream’s text', async () => {
    const tiny = await tinyUpstream((res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'context_length_exceeded: secret detail', type: 'invalid_request_error' } }));
    });
    const client = makeUpstreamClient({ baseUrl: tiny.url, apiKey: API_KEY });
    try {
      const events = await collect(route({ client }));
      const t = terminal(events);
      expect(t).toMatchObject({ type: 'failed', outcome: 'FAILED', error: { code: 'BAD_USER_INPUT' } });
      expect(tiny.seen).toHaveLength(1);
      expect((t as RouteFailed).error.message).not.toContain('secret');
    } finally {
      await client.close();
      await tiny.close();
    }
  });

  it('connection refused is a retryable CONNECTION failure', async () => {
    const tiny = await tinyUpstream(() => undefined);
    const url = tiny.url;
    await tiny.close();
    const client = makeUpstreamClient({ baseUrl: url, apiKey: API_KEY });
    try {
      const err = await drain(client, { ...base, region: 'US_EAST', signal: new AbortController().signal }).catch((e: unknown) => e);
      expect(err).toEqual({ kind: 'retryable', code: 'CONNECTION' });
    } finally {
      await client.close();
    }
  });

  it('a stream that ends cleanly after finish_reason without [DONE] or usage is complete', async () => {
    const tiny = await tinyUpstream((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(SSE_OK.split('data: {"choices":[],"usage"')[0]);
    });
    const client = makeUpstreamClient({ baseUrl: tiny.url, apiKey: API_KEY });
    try {
      expect(await drain(client, { ...base, region: 'US_EAST', signal: new AbortController().signal })).toEqual([
        { type: 'delta', text: 'Hi' },
        { type: 'finish', reason: 'STOP' },
      ]);
    } finally {
      await client.close();
      await tiny.close();
    }
  });
});
