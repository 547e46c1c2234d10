import OpenAI from 'openai';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { TEST_DATABASE_URL } from '../support/env';
import { createTenant, gqlOk, startApp, startSim, TEST_ADMIN_KEY } from '../support/app';
import { SimClient } from '../support/simulator';

/**
 * Errors of the OpenAI-compatible surface as the official SDK raises them (APIError subclasses with status, type,
 * code and param), and the guarantee behind each: a refused request reaches no upstream and writes no ledger row,
 * spend or hold. The app runs on port 0 against the real Postgres, Redis and the project's simulator.
 */

let sim: Simulator;
let app: App;
let db: Db;
let base: string;
let simc: SimClient;

const ask = [{ role: 'user' as const, content: 'Explain recursion in 200 words' }];
const ME = `query { me { spentThisMonthUsd heldUsd } }`;

/** An SDK client whose HTTP exchanges are recorded (the real fetch, observed, not replaced). */
function recordingClient(key: string, opts: ConstructorParameters<typeof OpenAI>[0] = {}) {
  const seen: Array<{ status: number; headers: Headers; at: number }> = [];
  const c = new OpenAI({
    apiKey: key,
    baseURL: base,
    ...opts,
    fetch: async (url: string | URL | Request, init?: RequestInit) => {
      const res = await fetch(url, init);
      seen.push({ status: res.status, headers: res.headers, at: Date.now() });
      return res;
    },
  });
  return { c, seen };
}

const upstreamCalls = async () => Object.values((await simc.stats()).requests).reduce((a, b) => a + b, 0);

/** Runs `fn` and checks that it reached no upstream and left no row, spend or hold for the tenant. */
async function changesNothing(t: { id: string; key: string }, fn: () => Promise<unknown>): Promise<any> {
  const before = await upstreamCalls();
  const err = await fn().then(
    () => null,
    (e) => e,
  );
  expect(await upstreamCalls()).toBe(before);
  expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(0);
  expect((await gqlOk(app.url, t.key, ME)).me).toEqual({ spentThisMonthUsd: '0.000000', heldUsd: '0.000000' });
  return err;
}

/** The gate's clock skew (ms) for this file's app: the rate test moves it to a rolling window's edge. */
let gateClockOffset = 0;

beforeAll(async () => {
  sim = await startSim(0);
  app = await startApp({}, sim, { gateClockOffsetMs: () => gateClockOffset });
  db = createPrisma(TEST_DATABASE_URL, { max: 2 });
  base = app.url.replace(/\/graphql$/, '/v1');
  simc = new SimClient(sim);
});

beforeEach(() => {
  gateClockOffset = 0;
  return simc.reset();
});

afterAll(async () => {
  await simc?.close();
  await app?.stop();
  await sim?.close();
  await db?.$disconnect();
});

describe('401 and 403', () => {
  it('an unknown key is AuthenticationError invalid_api_key, not retried, and counted as a refusal', async () => {
    const refusals = async () => {
      const text = await (await fetch(app.url.replace('/graphql', '/metrics'))).text();
      return Number(/^gateway_auth_refusals_total\{code="UNAUTHENTICATED"\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const before = await refusals();
    const { c, seen } = recordingClient('sk-not-a-key');
    const err = await c.chat.completions.create({ model: 'chat_default', messages: ask }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err.status).toBe(401);
    expect(err.code).toBe('invalid_api_key');
    expect(err.type).toBe('invalid_request_error');
    expect(err.message).toMatch(/unknown API key/);
    expect(err.requestID).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen).toHaveLength(1);
    expect(await refusals()).toBe(before + 1);
  });

  it('a missing key is 401 with a message naming the header', async () => {
    const res = await fetch(`${base}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'chat_default', messages: ask }),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      error: { message: expect.stringMatching(/Authorization: Bearer/), type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
    });
  });

  it('the admin key is PermissionDeniedError: it is not a tenant', async () => {
    const err = await new OpenAI({ apiKey: TEST_ADMIN_KEY, baseURL: base }).chat.completions.create({ model: 'chat_default', messages: ask }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(err.status).toBe(403);
    const models = await new OpenAI({ apiKey: TEST_ADMIN_KEY, baseURL: base }).models.list().catch((e) => e);
    expect(models).toBeInstanceOf(OpenAI.PermissionDeniedError);
  });
});

describe('404', () => {
  it('a model that is neither a profile nor a model id is NotFoundError model_not_found, and changes nothing', async () => {
    const t = await createTenant(app.url);
    const err = await changesNothing(t, () => new OpenAI({ apiKey: t.key, baseURL: base }).chat.completions.create({ model: 'gpt-4o', messages: ask }));
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.code).toBe('model_not_found');
    expect(err.param).toBe('model');
    expect(err.message).toMatch(/gpt-4o.*GET \/v1\/models/);
    // Streamed: refused before the stream starts, so it is a plain HTTP error too.
    const streamed = await changesNothing(t, () =>
      new OpenAI({ apiKey: t.key, baseURL: base }).chat.completions.create({ model: 'gpt-4o', messages: ask, stream: true }),
    );
    expect(streamed).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('an unknown path answers 404 in the same shape', async () => {
    const res = await fetch(`${base}/embeddings`, { method: 'POST' });
    expect(res.status).toBe(404);
    expect(((await res.json()) as any).error.code).toBe('unknown_url');
  });
});

describe('400: bad input names the parameter and changes nothing', () => {
  const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ['missing messages', { model: 'chat_default' }, 'messages', /expected array, but it is missing/],
    ['messages of the wrong type', { model: 'chat_default', messages: 'hi' }, 'messages', /expected array, got string/],
    ['no messages', { model: 'chat_default', messages: [] }, 'messages', /expected 1 to 256 messages, got 0/],
    ['a number as content', { model: 'chat_default', messages: [{ role: 'user', content: 42 }] }, 'messages[0].content', /string or an array/],
    ['an unknown role', { model: 'chat_default', messages: [{ role: 'function', content: 'x' }] }, 'messages[0].role', /expected one of/],
    [
      'max_tokens over the profile cap',
      { model: 'chat_default', messages: ask, max_tokens: 5000 },
      'max_tokens',
      /1 to 4096 for profile chat_default, got 5000/,
    ],
    ['max_tokens not a whole number', { model: 'chat_default', messages: ask, max_tokens: 1.5 }, 'max_tokens', /expected int/],
    ['temperature out of range', { model: 'chat_default', messages: ask, temperature: 3 }, 'temperature', /0 to 2, got 3/],
    ['n other than 1', { model: 'chat_default', messages: ask, n: 2 }, 'n', /expected one of 1/],
    [
      'a tool name OpenAI would refuse',
      { model: 'chat_default', messages: ask, tools: [{ type: 'function', function: { name: 'get weather' } }] },
      'tools[0].name',
      /letters, digits, underscores or dashes/,
    ],
    [
      'tool_choice naming no tool of the request',
      {
        model: 'chat_default',
        messages: ask,
        tools: [{ type: 'function', function: { name: 'f' } }],
        tool_choice: { type: 'function', function: { name: 'g' } },
      },
      'toolChoice.tool',
      /not one of the request's tools/,
    ],
    ['functions (the pre-tools API)', { model: 'chat_default', messages: ask, functions: [{ name: 'f' }] }, 'functions', /not supported/],
    [
      'messages over the byte cap',
      { model: 'chat_default', messages: [{ role: 'user', content: 'x'.repeat(262_145) }] },
      'messages',
      /262145 bytes; the limit is 262144/,
    ],
  ];
  it.each(cases)('%s', async (_name, body, param, message) => {
    const t = await createTenant(app.url);
    const err = await changesNothing(t, () => new OpenAI({ apiKey: t.key, baseURL: base }).chat.completions.create(body as never));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.status).toBe(400);
    expect(err.type).toBe('invalid_request_error');
    expect(err.param).toBe(param);
    expect(err.message).toMatch(message);
  });

  it('Idempotency-Key on a streamed request, and an unknown x-region', async () => {
    const t = await createTenant(app.url);
    const c = new OpenAI({ apiKey: t.key, baseURL: base });
    const idem = await changesNothing(t, () =>
      c.chat.completions.create({ model: 'chat_default', messages: ask, stream: true }, { headers: { 'Idempotency-Key': 'k1' } }),
    );
    expect(idem).toBeInstanceOf(OpenAI.BadRequestError);
    expect(idem.param).toBe('Idempotency-Key');
    const region = await changesNothing(t, () => c.chat.completions.create({ model: 'chat_default', messages: ask }, { headers: { 'x-region': 'mars' } }));
    expect(region).toBeInstanceOf(OpenAI.BadRequestError);
    expect(region.param).toBe('x-region');
  });

  it('a body that is not JSON is 400; a body over the limit is 413', async () => {
    const t = await createTenant(app.url);
    const post = (body: string) =>
      fetch(`${base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${t.key}` }, body });
    const bad = await changesNothing(t, () =>
      post('{"model":').then(async (r) => {
        throw { status: r.status, body: await r.json() };
      }),
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ type: 'invalid_request_error', param: 'body' });
    const big = await changesNothing(t, () =>
      post(JSON.stringify({ model: 'chat_default', messages: [{ role: 'user', content: 'x'.repeat(400_000) }] })).then(async (r) => {
        throw { status: r.status, body: await r.json() };
      }),
    );
    expect(big.status).toBe(413);
    expect(big.body.error).toMatchObject({ type: 'invalid_request_error', code: 'request_too_large' });
  });
});

describe('429', () => {
  it('rate: RateLimitError rate_limit_exceeded with Retry-After in whole seconds; the SDK waits that long, retries, and the ledger counts only admitted requests', async () => {
    const rpm = 6;
    const t = await createTenant(app.url, { requestsPerMinute: rpm });
    const post = () =>
      fetch(`${base}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${t.key}` },
        body: JSON.stringify({ model: 'fast_classify', messages: ask, max_tokens: 5 }),
      });
    let admitted = 0;
    for (let i = 0; i < 4 * rpm; i++) {
      const r = await post();
      await r.body?.cancel();
      if (r.status === 200) admitted++;
      // Empty, with at least a second to wait: the SDK's call below is refused.
      else if (r.status === 429 && Number(r.headers.get('retry-after')) >= 2) break;
    }
    expect(admitted).toBe(rpm);

    // The burst leaves the rolling window 60-61 s after it was admitted: move the gate's clock to 57 s later, so the
    // SDK's call is refused with a Retry-After of a few seconds (the SDK honours at most 60) and its retry fits.
    gateClockOffset = 57_000;
    const { c, seen } = recordingClient(t.key);
    const answer = await c.chat.completions.create({ model: 'fast_classify', messages: ask, max_tokens: 5 });
    expect(answer.object).toBe('chat.completion');
    expect(seen.map((s) => s.status)).toEqual([429, 200]);
    const denied = seen[0]!.headers;
    const retryAfter = denied.get('retry-after')!;
    expect(retryAfter).toMatch(/^[1-9]\d*$/);
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(Number(retryAfter) * 1000 - 50);
    expect(denied.get('x-ratelimit-limit-requests')).toBe(String(rpm));
    expect(denied.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(denied.get('x-ratelimit-reset-requests')).toMatch(/^\d+(ms|s)$|m\d+s$/);
    expect(denied.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    // Those admitted at first, then the retry: the denied attempts wrote nothing.
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(admitted + 1);

    // Without retries the SDK raises the error as it came: a tenant at 1 a minute that has used it.
    const one = await createTenant(app.url, { requestsPerMinute: 1 });
    await new OpenAI({ apiKey: one.key, baseURL: base, maxRetries: 0 }).chat.completions.create({ model: 'fast_classify', messages: ask, max_tokens: 5 });
    const err = await new OpenAI({ apiKey: one.key, baseURL: base, maxRetries: 0 }).chat.completions
      .create({ model: 'fast_classify', messages: ask, max_tokens: 5 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.code).toBe('rate_limit_exceeded');
    expect(err.type).toBe('requests');
    expect(err.message).toMatch(/requests per minute limit reached/);
  }, 120_000);

  it('budget: RateLimitError insufficient_quota, not retried by the SDK (x-should-retry: false), nothing charged', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '0.000010' });
    const { c, seen } = recordingClient(t.key);
    const err = await changesNothing(t, () => c.chat.completions.create({ model: 'deep_reasoning', messages: ask }));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.code).toBe('insufficient_quota');
    expect(err.type).toBe('insufficient_quota');
    expect(err.message).toMatch(/more than the \$0\.000010 left/);
    expect(seen).toHaveLength(1);
    const secs = Number(seen[0]!.headers.get('retry-after'));
    expect(secs).toBeGreaterThan(0);
    expect(secs).toBeLessThanOrEqual(31 * 86_400);
    const streamed = await changesNothing(t, () => c.chat.completions.create({ model: 'deep_reasoning', messages: ask, stream: true }));
    expect(streamed).toBeInstanceOf(OpenAI.RateLimitError);
    expect(streamed.code).toBe('insufficient_quota');
  });
});
