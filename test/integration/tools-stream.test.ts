import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { TEST_DATABASE_URL } from '../support/env';
import { SimClient } from '../support/simulator';
import { createTenant, gql, gqlOk, startApp, startSim, subscribeAll, TEST_ADMIN_KEY, wsClient } from '../support/app';
import { ceilDiv, PROMPT, QUESTION, SET_PRICE, TOOL_CHAT, TOOL_STREAM, toolInput, toolTokens, usd } from '../support/tools';

/**
 * Tool calling end to end: the API (mutation over HTTP, subscription over graphql-ws) -> the gateway -> the
 * project's simulator over real HTTP, for every stream shape of the tool_calls fault, with real Postgres and Redis.
 * Every cost is computed here by hand from the prices this file sets and the simulator's counting rules (see
 * test/support/tools.ts): cost = ceil((prompt x input + completion x output) / 1e6) micro-USD.
 */

const MODEL = 'glm-4-32b';
const FALLBACK = 'hunyuan-turbo';
/** $0.60 input, $2.40 output per 1M tokens, set by this file (and put back afterwards). */
const INPUT = 600_000n;
const OUTPUT = 2_400_000n;
/** hunyuan-turbo's seed price: $0.57 output, no input price. */
const FALLBACK_OUTPUT = 570_000n;

const input = toolInput;
const CHAT = TOOL_CHAT;
const STREAM = TOOL_STREAM;
const cost = (prompt: number, completion: number, inputPrice: bigint | null, output: bigint) =>
  ceilDiv(BigInt(prompt) * (inputPrice ?? 0n) + BigInt(completion) * output, 1_000_000n);

type Delta = { index: number; id: string | null; name: string | null; argumentsDelta: string | null };

function assemble(deltas: Delta[]): { id: string; name: string; arguments: string }[] {
  const calls: { id: string; name: string; arguments: string }[] = [];
  for (const d of deltas) {
    const c = (calls[d.index] ??= { id: '', name: '', arguments: '' });
    c.id ||= d.id ?? '';
    c.name ||= d.name ?? '';
    c.arguments += d.argumentsDelta ?? '';
  }
  return calls;
}

describe('tool calls over the API, every stream shape, against the simulator', () => {
  let sim: Simulator;
  let simClient: SimClient;
  let app: App;
  let db: Db;
  let tenant: { id: string; key: string };

  beforeAll(async () => {
    sim = await startSim(0);
    simClient = new SimClient(sim);
    app = await startApp({}, sim);
    db = createPrisma(TEST_DATABASE_URL, { max: 2 });
    await gqlOk(app.url, TEST_ADMIN_KEY, SET_PRICE, { m: MODEL, o: usd(OUTPUT), i: usd(INPUT) });
    tenant = await createTenant(app.url);
    await gqlOk(
      app.url,
      TEST_ADMIN_KEY,
      `mutation($t: ID!) { setProfileOverride(tenantId: $t, profile: "chat_default", model: "${MODEL}", fallbacks: ["${FALLBACK}"]) { model } }`,
      { t: tenant.id },
    );
  });
  afterAll(async () => {
    await gql(app.url, TEST_ADMIN_KEY, SET_PRICE, { m: MODEL, o: '0.56', i: null });
    await db.$disconnect();
    await app.stop();
    await simClient.close();
    await sim.close();
  });
  beforeEach(() => simClient.reset());

  const row = (requestId: string) => db.ledgerEntry.findUniqueOrThrow({ where: { requestId } });
  const stream = async (variables: Record<string, unknown>) => {
    const client = wsClient(app.url, tenant.key);
    try {
      return await subscribeAll(client, STREAM, variables);
    } finally {
      await client.dispose();
    }
  };

  it.each(['whole', 'split', 'parallel'] as const)('%s: the mutation returns the calls intact, finishReason TOOL_CALLS, priced by hand', async (shape) => {
    await simClient.addFault({ model: MODEL, fault: 'tool_calls', shape });
    const r = (await gqlOk(app.url, tenant.key, CHAT, input())).chat;
    expect(r).toMatchObject({ model: MODEL, content: '', outcome: 'COMPLETED', finishReason: 'TOOL_CALLS' });
    const names = shape === 'parallel' ? ['get_weather', 'get_time'] : ['get_weather'];
    expect(r.toolCalls.map((c: { name: string }) => c.name)).toEqual(names);
    for (const c of r.toolCalls) expect(c.id).toMatch(/^call_/);
    expect(JSON.parse(r.toolCalls[0].arguments)).toEqual({ city: expect.any(String), days: 1 });
    if (shape === 'parallel') expect(JSON.parse(r.toolCalls[1].arguments)).toEqual({ zone: expect.any(String) });
    const completion = toolTokens(r.toolCalls);
    expect(r.usage).toEqual({
      promptTokens: PROMPT,
      completionTokens: completion,
      cachedPromptTokens: 0,
      cacheWriteTokens: 0,
      costUsd: usd(cost(PROMPT, completion, INPUT, OUTPUT)),
      source: 'PROVIDER',
    });
    const l = await row(r.requestId);
    expect([l.outcome, l.promptTokens, l.completionTokens, l.costMicros, l.inputMicrosPerMillion, l.outputMicrosPerMillion]).toEqual([
      'COMPLETED',
      PROMPT,
      completion,
      cost(PROMPT, completion, INPUT, OUTPUT),
      INPUT,
      OUTPUT,
    ]);
  });

  it.each(['whole', 'split', 'parallel'] as const)('%s: the subscription streams the deltas as the upstream sent them', async (shape) => {
    await simClient.addFault({ model: MODEL, fault: 'tool_calls', shape });
    const { events, error } = await stream(input());
    expect(error).toBeNull();
    const deltaEvents = events.map((e) => e.chatStream).filter((e) => e.toolCallDeltas !== null);
    for (const e of deltaEvents) expect([e.delta, e.done]).toEqual([null, false]);
    const deltas: Delta[] = deltaEvents.flatMap((e) => e.toolCallDeltas);
    const calls = assemble(deltas);
    if (shape === 'whole') {
      // One piece: id, name and the whole arguments together.
      expect(deltas).toHaveLength(1);
      expect(deltas[0]).toMatchObject({ index: 0, id: expect.stringMatching(/^call_/), name: 'get_weather' });
      expect(JSON.parse(deltas[0]!.argumentsDelta!)).toEqual({ city: expect.any(String), days: 1 });
    } else {
      // Each call: a first piece with id and name (no arguments), then argument pieces without them.
      const firsts = deltas.filter((d) => d.id !== null);
      expect(firsts.map((d) => [d.index, d.name, d.argumentsDelta])).toEqual(
        (shape === 'parallel' ? ['get_weather', 'get_time'] : ['get_weather']).map((n, i) => [i, n, null]),
      );
      const rest = deltas.filter((d) => d.id === null);
      expect(rest.length).toBeGreaterThan(1);
      for (const d of rest) expect([d.name, typeof d.argumentsDelta]).toEqual([null, 'string']);
    }
    for (const c of calls) expect(() => JSON.parse(c.arguments)).not.toThrow();
    const done = events.at(-1)!.chatStream;
    const completion = toolTokens(calls);
    expect(done).toMatchObject({ done: true, outcome: 'COMPLETED', finishReason: 'TOOL_CALLS', toolCallDeltas: null });
    expect(done.usage).toEqual({
      promptTokens: PROMPT,
      completionTokens: completion,
      cachedPromptTokens: 0,
      cacheWriteTokens: 0,
      costUsd: usd(cost(PROMPT, completion, INPUT, OUTPUT)),
      source: 'PROVIDER',
    });
    expect((await row(done.requestId)).costMicros).toBe(cost(PROMPT, completion, INPUT, OUTPUT));
  });

  it('cut (subscription): UPSTREAM_INTERRUPTED with the pieces delivered, billed for them (estimated)', async () => {
    await simClient.addFault({ model: MODEL, fault: 'tool_calls', shape: 'cut' });
    const { events, error } = await stream(input());
    expect(error).toBeNull();
    const deltaEvents = events.map((e) => e.chatStream).filter((e) => e.toolCallDeltas !== null);
    const [call] = assemble(deltaEvents.flatMap((e) => e.toolCallDeltas));
    expect(call!.name).toBe('get_weather');
    expect(() => JSON.parse(call!.arguments)).toThrow(); // cut in the middle of the arguments
    const done = events.at(-1)!.chatStream;
    expect(done).toMatchObject({ done: true, outcome: 'UPSTREAM_INTERRUPTED', finishReason: null, model: MODEL });
    // Estimated: the gateway's prompt count (the simulator's rule) and one completion token per chunk delivered.
    const delivered = deltaEvents.length;
    expect(done.usage).toEqual({
      promptTokens: PROMPT,
      completionTokens: delivered,
      cachedPromptTokens: 0,
      cacheWriteTokens: 0,
      costUsd: usd(cost(PROMPT, delivered, INPUT, OUTPUT)),
      source: 'ESTIMATED',
    });
    const l = await row(done.requestId);
    expect([l.outcome, l.usageSource, l.completionTokens, l.costMicros]).toEqual([
      'UPSTREAM_INTERRUPTED',
      'ESTIMATED',
      delivered,
      cost(PROMPT, delivered, INPUT, OUTPUT),
    ]);
  });

  it('cut (mutation): the partial calls are dropped, the fallback answers, both attempts billed', async () => {
    // The same input gives the same arguments: learn their length from a whole answer first.
    await simClient.addFault({ model: MODEL, fault: 'tool_calls', shape: 'whole' });
    const whole = (await gqlOk(app.url, tenant.key, CHAT, input())).chat.toolCalls[0].arguments as string;
    await simClient.addFault({ model: MODEL, fault: 'tool_calls', shape: 'cut' });
    const r = (await gqlOk(app.url, tenant.key, CHAT, input())).chat;
    expect(r).toMatchObject({ model: FALLBACK, outcome: 'COMPLETED', finishReason: 'STOP', toolCalls: [] });
    expect(r.attempts).toEqual([
      { model: MODEL, ok: false, error: 'INTERRUPTED' },
      { model: FALLBACK, ok: true, error: null },
    ]);
    // Cut attempt: the head chunk and half the argument pieces (rounded down); the fallback: 150 text tokens.
    const delivered = 1 + Math.floor(Math.ceil(whole.length / 8) / 2);
    const expected = cost(PROMPT, delivered, INPUT, OUTPUT) + cost(PROMPT, 150, null, FALLBACK_OUTPUT);
    expect(r.usage).toMatchObject({ promptTokens: 2 * PROMPT, completionTokens: delivered + 150, costUsd: usd(expected), source: 'ESTIMATED' });
    expect((await row(r.requestId)).costMicros).toBe(expected);
  });

  it('maxTokens stops a tool call (and a text answer) short: finishReason LENGTH, cost within the hold', async () => {
    await simClient.addFault({ model: MODEL, fault: 'tool_calls', shape: 'split' });
    const r = (await gqlOk(app.url, tenant.key, CHAT, input({ maxTokens: 4 }))).chat;
    expect(r).toMatchObject({ outcome: 'COMPLETED', finishReason: 'LENGTH' });
    expect(r.toolCalls).toHaveLength(1);
    expect(r.usage).toMatchObject({ completionTokens: 4, costUsd: usd(cost(PROMPT, 4, INPUT, OUTPUT)) });
    const l = await row(r.requestId);
    expect(l.costMicros).toBeLessThanOrEqual(l.holdMicros);
    const text = (await gqlOk(app.url, tenant.key, CHAT, input({ maxTokens: 5, tools: null }))).chat;
    expect(text).toMatchObject({ finishReason: 'LENGTH', toolCalls: [] });
    expect(text.content.trim().split(' ')).toHaveLength(5);
  });

  it('an idempotent retry replays the same tool calls and is charged once', async () => {
    await simClient.addFault({ model: MODEL, fault: 'tool_calls', shape: 'parallel' });
    const first = (await gqlOk(app.url, tenant.key, CHAT, input({ idempotencyKey: `tools-${tenant.id}` }))).chat;
    const again = (await gqlOk(app.url, tenant.key, CHAT, input({ idempotencyKey: `tools-${tenant.id}` }))).chat;
    expect(again).toEqual(first);
    expect(first.toolCalls).toHaveLength(2);
    expect(await db.ledgerEntry.count({ where: { requestId: first.requestId } })).toBe(1);
    expect((await simClient.stats()).requests).toEqual({ [MODEL]: 1 });
  });

  it("a tool-using conversation goes upstream in OpenAI's format: the calls and results count in the prompt", async () => {
    const args = '{"city":"Oslo","days":1}';
    const messages = [
      { role: 'USER', content: QUESTION },
      { role: 'ASSISTANT', content: '', toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: args }] },
      { role: 'TOOL', content: 'Sunny, 21 C', toolCallId: 'call_1' },
    ];
    const r = (await gqlOk(app.url, tenant.key, CHAT, input({ messages, toolChoice: { mode: 'AUTO' } }))).chat;
    // The simulator counts an assistant turn's tool_calls (name + arguments) only when they arrive in OpenAI's shape.
    const prompt = PROMPT + (Math.ceil(('get_weather' + args).length / 4) + 4) + (Math.ceil('Sunny, 21 C'.length / 4) + 4);
    expect(r).toMatchObject({ outcome: 'COMPLETED', finishReason: 'STOP', toolCalls: [] });
    expect(r.usage).toMatchObject({ promptTokens: prompt, completionTokens: 150, costUsd: usd(cost(prompt, 150, INPUT, OUTPUT)) });
  });

  describe('bad tool input: BAD_USER_INPUT, nothing written, nothing sent upstream', () => {
    it.each<[string, Record<string, unknown>, string]>([
      ['a bad tool name', { tools: [{ name: 'get weather' }] }, 'tools[0].name'],
      ['parameters that are not a JSON Schema object', { tools: [{ name: 'f', parameters: '{"type":"objekt"}' }] }, 'tools[0].parameters'],
      ['a toolChoice naming a missing tool', { toolChoice: { tool: 'get_time_zone' } }, 'toolChoice.tool'],
      [
        'a TOOL message without toolCallId',
        {
          messages: [
            { role: 'USER', content: 'x' },
            { role: 'TOOL', content: 'y' },
          ],
        },
        'messages[1].toolCallId',
      ],
      [
        'assistant tool calls with arguments that are not JSON',
        { messages: [{ role: 'ASSISTANT', content: '', toolCalls: [{ id: 'c', name: 'f', arguments: '{' }] }] },
        'messages[0].toolCalls[0].arguments',
      ],
      [
        'tools pushing the request over MAX_REQUEST_BYTES',
        { messages: [{ role: 'USER', content: 'x'.repeat(200_000) }], tools: [{ name: 'f', description: 'd'.repeat(70_000) }] },
        'messages',
      ],
    ])('%s', async (_label, extra, field) => {
      const before = await db.ledgerEntry.count({ where: { tenantId: tenant.id } });
      const r = await gql(app.url, tenant.key, CHAT, input(extra));
      expect(r.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
      expect(r.errors?.[0]?.message).toContain(field);
      const s = await stream(input(extra));
      expect(s.error?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
      expect(await db.ledgerEntry.count({ where: { tenantId: tenant.id } })).toBe(before);
      expect((await simClient.stats()).requests).toEqual({});
    });

    it('the same large messages without the tool description pass: the tools are what tipped it', async () => {
      const r = await gql(
        app.url,
        tenant.key,
        CHAT,
        input({ messages: [{ role: 'USER', content: 'x'.repeat(200_000) }], tools: [{ name: 'f' }], maxTokens: 1 }),
      );
      expect(r.errors).toBeUndefined();
    });
  });
});
