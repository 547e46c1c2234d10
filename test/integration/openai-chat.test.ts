import OpenAI from 'openai';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { TEST_DATABASE_URL } from '../support/env';
import { CHAT, createTenant, gqlOk, startApp, startSim, TEST_ADMIN_KEY } from '../support/app';
import { SimClient } from '../support/simulator';

/**
 * The OpenAI-compatible surface through the official `openai` SDK (default settings; only baseURL and key set),
 * against the app on port 0 with the real Postgres, Redis and the project's simulator.
 */

let sim: Simulator;
let app: App;
let db: Db;
let base: string;
let simc: SimClient;

const client = (key: string, opts: ConstructorParameters<typeof OpenAI>[0] = {}) => new OpenAI({ apiKey: key, baseURL: base, ...opts });
const ask = [{ role: 'user' as const, content: 'Explain recursion in 200 words' }];
const ME = `query { me { spentThisMonthUsd heldUsd } }`;

beforeAll(async () => {
  sim = await startSim(0);
  app = await startApp({}, sim);
  db = createPrisma(TEST_DATABASE_URL, { max: 2 });
  base = app.url.replace(/\/graphql$/, '/v1');
  simc = new SimClient(sim);
});

beforeEach(() => simc.reset());

afterAll(async () => {
  await simc?.close();
  await app?.stop();
  await sim?.close();
  await db?.$disconnect();
});

describe('POST /v1/chat/completions, not streamed', () => {
  it('answers a profile as chat.completion with usage and the exact cost; one ledger row; x-request-id is its requestId', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '1', requestsPerMinute: 100, tokensPerMinute: 1_000_000 });
    const { data, response } = await client(t.key).chat.completions.create({ model: 'chat_default', messages: ask }).withResponse();
    expect(data.object).toBe('chat.completion');
    expect(data.model).toBe('deepseek-v4-flash');
    expect(data.choices).toHaveLength(1);
    expect(data.choices[0]!.message.role).toBe('assistant');
    expect(data.choices[0]!.message.content!.length).toBeGreaterThan(50);
    expect(data.choices[0]!.finish_reason).toBe('stop');
    // The simulator answers 150 tokens; 150 x $0.25/M = 37.5 micro-dollars, rounded up (as the GraphQL test says).
    expect(data.usage).toMatchObject({ completion_tokens: 150, cost_usd: '0.000038', cost_micros: 38 });
    expect(data.usage!.total_tokens).toBe(data.usage!.prompt_tokens + 150);

    const requestId = response.headers.get('x-request-id')!;
    expect(data.id).toBe(`chatcmpl-${requestId}`);
    const rows = await db.ledgerEntry.findMany({ where: { tenantId: t.id } });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ requestId, profile: 'chat_default', outcome: 'COMPLETED', state: 'SETTLED', model: 'deepseek-v4-flash', costMicros: 38n });
    expect((await gqlOk(app.url, t.key, ME)).me).toEqual({ spentThisMonthUsd: '0.000038', heldUsd: '0.000000' });

    // The tenant's limits on every answer, and what its rolling windows have left after this admission: one request
    // taken, and the tokens reserved at admission (prompt estimate + maxTokens, corrected at settlement).
    expect(response.headers.get('x-ratelimit-limit-requests')).toBe('100');
    expect(response.headers.get('x-ratelimit-limit-tokens')).toBe('1000000');
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('99');
    const tokensTaken = 1_000_000 - Number(response.headers.get('x-ratelimit-remaining-tokens'));
    expect(tokensTaken).toBeGreaterThan(rows[0]!.maxTokens);
    expect(tokensTaken).toBeLessThan(rows[0]!.maxTokens + 100);
    // The window's oldest part (this request) leaves in about a minute: OpenAI's duration format.
    expect(response.headers.get('x-ratelimit-reset-requests')).toMatch(/^(59|60|61)s$|^1m[01]s$/);
  });

  it('routes a model id to that model with its default fallback chain, recorded under the model id', async () => {
    const t = await createTenant(app.url);
    await simc.addFault({ model: 'deepseek-v4-pro', fault: 'http_503', times: 1 });
    const { data, response } = await client(t.key).chat.completions.create({ model: 'deepseek-v4-pro', messages: ask, max_tokens: 40 }).withResponse();
    // deepseek-v4-pro's default chain is [hunyuan-turbo] (shared/guide/model-table.md).
    expect(data.model).toBe('hunyuan-turbo');
    // The simulator answers 150 tokens unless max_tokens is lower: these 40 used it all.
    expect(data.usage!.completion_tokens).toBe(40);
    expect(data.choices[0]!.finish_reason).toBe('length');
    const row = await db.ledgerEntry.findUniqueOrThrow({ where: { requestId: response.headers.get('x-request-id')! } });
    expect(row).toMatchObject({ profile: 'deepseek-v4-pro', plannedModel: 'deepseek-v4-pro', model: 'hunyuan-turbo', maxTokens: 40, outcome: 'COMPLETED' });
  });

  it('follows the tenant override of a profile and x-region', async () => {
    const t = await createTenant(app.url);
    await gqlOk(
      app.url,
      TEST_ADMIN_KEY,
      `mutation($t: ID!) { setProfileOverride(tenantId: $t, profile: "chat_default", region: ASIA, model: "qwen3-8b") { model } }`,
      { t: t.id },
    );
    const asia = await client(t.key, { defaultHeaders: { 'x-region': 'ASIA' } }).chat.completions.create({ model: 'chat_default', messages: ask });
    expect(asia.model).toBe('qwen3-8b');
    const us = await client(t.key).chat.completions.create({ model: 'chat_default', messages: ask });
    expect(us.model).toBe('deepseek-v4-flash');
    const rows = await db.ledgerEntry.findMany({ where: { tenantId: t.id }, orderBy: { id: 'asc' } });
    expect(rows.map((r) => [r.region, r.model])).toEqual([
      ['ASIA', 'qwen3-8b'],
      ['US_EAST', 'deepseek-v4-flash'],
    ]);
  });

  it('Idempotency-Key: a retry with the same key answers the first result and writes no second row', async () => {
    const t = await createTenant(app.url);
    const c = client(t.key);
    const key = `k-${Date.now()}`;
    const first = await c.chat.completions.create({ model: 'chat_default', messages: ask }, { headers: { 'Idempotency-Key': key } });
    const again = await c.chat.completions.create({ model: 'chat_default', messages: ask }, { headers: { 'Idempotency-Key': key } });
    expect(again.id).toBe(first.id);
    expect(again.choices[0]!.message.content).toBe(first.choices[0]!.message.content);
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(1);
    // The same key with another input is refused, and writes nothing.
    const err = await c.chat.completions.create({ model: 'chat_speed', messages: ask }, { headers: { 'Idempotency-Key': key } }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.code).toBe('idempotency_key_reused');
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(1);
  });

  it('Idempotency-Key is the chat mutation’s idempotencyKey: a retry through the other API replays too', async () => {
    const t = await createTenant(app.url);
    const key = `x-${Date.now()}`;
    const viaGraphql = (
      await gqlOk(app.url, t.key, CHAT, { input: { profile: 'chat_default', messages: [{ role: 'USER', content: ask[0]!.content }], idempotencyKey: key } })
    ).chat;
    const viaV1 = await client(t.key).chat.completions.create({ model: 'chat_default', messages: ask }, { headers: { 'Idempotency-Key': key } });
    expect(viaV1.id).toBe(`chatcmpl-${viaGraphql.requestId}`);
    expect(viaV1.choices[0]!.message.content).toBe(viaGraphql.content);
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(1);
  });
});

describe('same ledger, budgets and reports as GraphQL', () => {
  it('one request through each API: identical cost and tokens, both in the cost report and the spend', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '1' });
    const viaGraphql = (await gqlOk(app.url, t.key, CHAT, { input: { profile: 'chat_default', messages: [{ role: 'USER', content: ask[0]!.content }] } })).chat;
    const viaV1 = await client(t.key).chat.completions.create({ model: 'chat_default', messages: ask });
    expect(viaV1.usage).toMatchObject({
      prompt_tokens: viaGraphql.usage.promptTokens,
      completion_tokens: viaGraphql.usage.completionTokens,
      cost_usd: viaGraphql.usage.costUsd,
    });
    const month = new Date().toISOString().slice(0, 7);
    const report = (
      await gqlOk(app.url, t.key, `query($m: String!) { costReport(month: $m, groupBy: PROFILE) { totalUsd rows { key requests costUsd } } }`, { m: month })
    ).costReport;
    expect(report.rows).toEqual([{ key: 'chat_default', requests: 2, costUsd: '0.000076' }]);
    expect(report.totalUsd).toBe('0.000076');
    expect((await gqlOk(app.url, t.key, ME)).me).toEqual({ spentThisMonthUsd: '0.000076', heldUsd: '0.000000' });
  });
});

describe('POST /v1/chat/completions, streamed', () => {
  it('streams chat.completion.chunk deltas, then finish_reason and, with include_usage, the usage chunk with the cost', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '1' });
    const { data: stream, response } = await client(t.key)
      .chat.completions.create({ model: 'chat_default', messages: ask, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    const content = chunks
      .filter((c) => c.choices[0]?.delta?.content)
      .map((c) => c.choices[0]!.delta.content)
      .join('');
    // The first token goes out alone (the simulator's tokens are one word each); later tokens come one chunk per
    // upstream read, and the usage still counts every token.
    const texts = chunks.filter((c) => c.choices[0]?.delta?.content).map((c) => c.choices[0]!.delta.content!);
    expect(texts[0]).toMatch(/^ [a-z]+$/);
    expect(texts.length).toBeGreaterThan(1);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(content.length).toBeGreaterThan(50);
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    expect(finish!.choices[0]!.finish_reason).toBe('stop');
    const last = chunks[chunks.length - 1]!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ completion_tokens: 150, cost_usd: '0.000038', cost_micros: 38 });

    const requestId = response.headers.get('x-request-id')!;
    expect(new Set(chunks.map((c) => c.id))).toEqual(new Set([`chatcmpl-${requestId}`]));
    const row = await db.ledgerEntry.findUniqueOrThrow({ where: { requestId } });
    expect(row).toMatchObject({ tenantId: t.id, outcome: 'COMPLETED', state: 'SETTLED', costMicros: 38n });
    expect((await gqlOk(app.url, t.key, ME)).me).toEqual({ spentThisMonthUsd: '0.000038', heldUsd: '0.000000' });
  });

  it('without include_usage sends no usage chunk', async () => {
    const t = await createTenant(app.url);
    const stream = await client(t.key).chat.completions.create({ model: 'fast_classify', messages: ask, stream: true });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks.some((c) => c.usage)).toBe(false);
    expect(chunks[chunks.length - 1]!.choices[0]!.finish_reason).toBe('stop');
  });
});

describe('GET /v1/models', () => {
  it('lists the tenant’s profiles (with its overrides) and the priced models, with exact prices', async () => {
    const t = await createTenant(app.url);
    await gqlOk(app.url, TEST_ADMIN_KEY, `mutation($t: ID!) { setProfileOverride(tenantId: $t, profile: "long_form", model: "glm-5") { model } }`, { t: t.id });
    const page = await client(t.key).models.list();
    const byId = new Map(page.data.map((m) => [m.id, m as typeof m & { gateway: any }]));
    expect(byId.get('chat_default')!.gateway).toEqual({
      kind: 'profile',
      model: 'deepseek-v4-flash',
      fallbacks: ['hunyuan-turbos', 'qwen3-32b'],
      default_max_tokens: 1024,
      max_tokens_cap: 4096,
      pricing: { input_usd_per_million: null, output_usd_per_million: '0.250000' },
    });
    expect(byId.get('long_form')!.gateway).toMatchObject({ kind: 'profile', model: 'glm-5', pricing: { output_usd_per_million: '1.920000' } });
    expect(byId.get('glm-5')!.gateway).toMatchObject({ kind: 'model', model: 'glm-5', pricing: { output_usd_per_million: '1.920000' } });
    expect(byId.get('glm-5')!.owned_by).toBe('Zhipu');
    expect(page.data.filter((m) => (m as any).gateway.kind === 'profile')).toHaveLength(5);
    expect(page.data.filter((m) => (m as any).gateway.kind === 'model')).toHaveLength(15);

    const one = await client(t.key).models.retrieve('qwen3-8b');
    expect(one.id).toBe('qwen3-8b');
    const missing = await client(t.key)
      .models.retrieve('gpt-4o')
      .catch((e) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
  });
});

describe('CORS', () => {
  it('the API’s one policy (CORS_ORIGINS): an allowed origin gets its preflight with the SDK’s headers, the request id and rate headers exposed; another is refused', async () => {
    const origin = 'http://localhost:5173'; // allowed by the development default (any localhost origin)
    const pre = await fetch(`${base}/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type,x-stainless-os' },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe(origin);
    const foreign = await fetch(`${base}/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
    });
    expect(foreign.status).toBe(403);
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
    expect(pre.headers.get('access-control-allow-headers')).toBe('authorization,content-type,x-stainless-os');
    const t = await createTenant(app.url, { requestsPerMinute: 10 });
    const res = await fetch(`${base}/models`, { headers: { origin, authorization: `Bearer ${t.key}` } });
    expect(res.status).toBe(200);
    const exposed = res.headers.get('access-control-expose-headers')!.toLowerCase().split(/,\s*/);
    expect(exposed).toEqual(
      expect.arrayContaining([
        'x-request-id',
        'retry-after',
        'x-ratelimit-limit-requests',
        'x-ratelimit-remaining-requests',
        'x-ratelimit-reset-requests',
        'x-ratelimit-limit-tokens',
      ]),
    );
  });
});

describe('tools through the OpenAI surface', () => {
  const weather = [
    {
      type: 'function' as const,
      function: {
        name: 'get_weather',
        description: 'Weather of a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      },
    },
  ];

  it('not streamed: message.tool_calls and finish_reason tool_calls; the tool result goes back and is answered', async () => {
    const t = await createTenant(app.url);
    await simc.addFault({ model: '*', fault: 'tool_calls', shape: 'whole', times: 1 });
    const first = await client(t.key).chat.completions.create({ model: 'chat_default', messages: ask, tools: weather, tool_choice: 'auto' });
    const choice = first.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    const call = choice.message.tool_calls![0]!;
    expect(call).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
    expect(() => JSON.parse((call as { function: { arguments: string } }).function.arguments)).not.toThrow();

    // The SDK's own message goes back as it came, with the tool's answer: a normal completion follows.
    const second = await client(t.key).chat.completions.create({
      model: 'chat_default',
      tools: weather,
      messages: [...ask, choice.message, { role: 'tool', tool_call_id: call.id, content: '{"celsius":21}' }],
    });
    expect(second.choices[0]!.finish_reason).toBe('stop');
    expect(second.choices[0]!.message.content!.length).toBeGreaterThan(0);
    const rows = await db.ledgerEntry.findMany({ where: { tenantId: t.id }, orderBy: { startedAt: 'asc' } });
    expect(rows.map((r) => r.outcome)).toEqual(['COMPLETED', 'COMPLETED']);
  });

  it('streamed: tool-call pieces arrive as delta.tool_calls, assembled by the SDK into one call', async () => {
    const t = await createTenant(app.url);
    await simc.addFault({ model: '*', fault: 'tool_calls', shape: 'split', times: 1 });
    const stream = await client(t.key).chat.completions.create({
      model: 'chat_default',
      messages: ask,
      tools: weather,
      stream: true,
      stream_options: { include_usage: true },
    });
    let id = '';
    let name = '';
    let args = '';
    let finish: string | null = null;
    let pieces = 0;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      for (const d of c?.delta?.tool_calls ?? []) {
        pieces++;
        id ||= d.id ?? '';
        name ||= d.function?.name ?? '';
        args += d.function?.arguments ?? '';
      }
      if (c?.finish_reason) finish = c.finish_reason;
    }
    expect(pieces).toBeGreaterThan(1); // split: the arguments came in several pieces
    expect(id.length).toBeGreaterThan(0);
    expect(name).toBe('get_weather');
    expect(() => JSON.parse(args)).not.toThrow();
    expect(finish).toBe('tool_calls');
  });
});
