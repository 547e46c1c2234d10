import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { monthOf } from '../../src/accounting/period';
import { TEST_DATABASE_URL } from '../support/env';
import { SimClient } from '../support/simulator';
import { createTenant, gql, gqlOk, startApp, startSim, subscribeAll, TEST_ADMIN_KEY, wsClient } from '../support/app';
import { ceilDiv, PROMPT, QUESTION, REQUEST_BYTES, SET_PRICE, TOOL_CHAT, TOOL_STREAM, toolInput, toolTokens, TOOLS, usd } from '../support/tools';

/**
 * Cached-token pricing end to end: the simulator's cached fault reports prompt_tokens_details, the gateway prices
 * each kind of prompt token, the ledger keeps the four counts and the unit prices used, holds stay an upper bound,
 * and reports carry the columns. Every expected cost is computed here by hand:
 * ceil((uncached x input + cached x cachedPrice + written x writePrice + completion x output) / 1e6) micro-USD,
 * where a missing cached or cache-write price is the input price, and a missing input price leaves the tokens
 * unpriced.
 */

const MODEL = 'glm-4-32b';
const M = 1_000_000n;
// $2 input, $0.50 cached, $2.50 cache write, $8 output per 1M tokens.
const INPUT = 2n * M;
const CACHED = 500_000n;
const WRITE = 2_500_000n;
const OUTPUT = 8n * M;

const SET_CACHE = `mutation($m: ID!, $c: Usd, $w: Usd) { setModelCachePrices(model: $m, cachedInputUsdPerMillion: $c, cacheWriteUsdPerMillion: $w) { id inputUsdPerMillion cachedInputUsdPerMillion cacheWriteUsdPerMillion outputUsdPerMillion } }`;
const SET_CACHED_ONLY = `mutation($m: ID!, $c: Usd) { setModelCachePrices(model: $m, cachedInputUsdPerMillion: $c) { id cachedInputUsdPerMillion cacheWriteUsdPerMillion } }`;
const REPORT = `query($month: String!, $g: ReportGroup!, $t: ID) { costReport(month: $month, groupBy: $g, tenantId: $t) { totalUsd csv rows { key requests promptTokens unpricedPromptTokens cachedPromptTokens cacheWriteTokens completionTokens costUsd } } }`;

/** Text answer of the simulator: 150 tokens (maxTokens left at the profile's 1024). */
const TEXT = 150;

interface Prices {
  input: bigint | null;
  cached: bigint | null;
  write: bigint | null;
}

/** The hand computation: each kind of prompt token at its price (or the input price), null meaning unpriced. */
function handCost(p: Prices, prompt: number, cached: number, written: number, completion: number): { micros: bigint; unpriced: number } {
  const uncached = prompt - cached - written;
  let n = BigInt(completion) * OUTPUT;
  let unpriced = 0;
  for (const [tokens, price] of [
    [uncached, p.input],
    [cached, p.cached ?? p.input],
    [written, p.write ?? p.input],
  ] as const) {
    if (price === null) unpriced += tokens;
    else n += BigInt(tokens) * price;
  }
  return { micros: ceilDiv(n, M), unpriced };
}

describe('cached prompt tokens priced exactly, end to end', () => {
  let sim: Simulator;
  let simClient: SimClient;
  let app: App;
  let db: Db;
  let tenant: { id: string; key: string };

  const setPrices = async (p: Prices): Promise<void> => {
    await gqlOk(app.url, TEST_ADMIN_KEY, SET_PRICE, { m: MODEL, o: usd(OUTPUT), i: p.input === null ? null : usd(p.input) });
    await gqlOk(app.url, TEST_ADMIN_KEY, SET_CACHE, { m: MODEL, c: p.cached === null ? null : usd(p.cached), w: p.write === null ? null : usd(p.write) });
  };
  const row = (requestId: string) => db.ledgerEntry.findUniqueOrThrow({ where: { requestId } });

  beforeAll(async () => {
    sim = await startSim(0);
    simClient = new SimClient(sim);
    app = await startApp({}, sim);
    db = createPrisma(TEST_DATABASE_URL, { max: 2 });
    tenant = await createTenant(app.url);
    await gqlOk(
      app.url,
      TEST_ADMIN_KEY,
      `mutation($t: ID!) { setProfileOverride(tenantId: $t, profile: "chat_default", model: "${MODEL}", fallbacks: []) { model } }`,
      { t: tenant.id },
    );
  });
  afterAll(async () => {
    await gql(app.url, TEST_ADMIN_KEY, SET_PRICE, { m: MODEL, o: '0.56', i: null });
    await gql(app.url, TEST_ADMIN_KEY, SET_CACHE, { m: MODEL, c: null, w: null });
    await db.$disconnect();
    await app.stop();
    await simClient.close();
    await sim.close();
  });
  beforeEach(() => simClient.reset());

  const CASES: [string, Prices, number, number][] = [
    ['every price known', { input: INPUT, cached: CACHED, write: WRITE }, 60, 20],
    ['no cached price: cached tokens at the input price', { input: INPUT, cached: null, write: WRITE }, 60, 20],
    ['no cache-write price: written tokens at the input price', { input: INPUT, cached: CACHED, write: null }, 60, 20],
    ['no input price and no cache prices: every prompt token unpriced', { input: null, cached: null, write: null }, 60, 20],
    ['no input price, a cached price: only the cached tokens charged', { input: null, cached: CACHED, write: null }, 60, 20],
    ['more cached tokens reported than the prompt has: capped', { input: INPUT, cached: CACHED, write: WRITE }, 10_000, 5],
  ];

  it.each(CASES)('%s (mutation)', async (_label, prices, cachedTokens, cacheWriteTokens) => {
    await setPrices(prices);
    await simClient.addFault({ model: MODEL, fault: 'cached', cachedTokens, cacheWriteTokens });
    const r = (await gqlOk(app.url, tenant.key, TOOL_CHAT, toolInput())).chat;
    const cached = Math.min(cachedTokens, PROMPT);
    const written = Math.min(cacheWriteTokens, PROMPT - cached);
    const want = handCost(prices, PROMPT, cached, written, TEXT);
    expect(r.usage).toEqual({
      promptTokens: PROMPT,
      completionTokens: TEXT,
      cachedPromptTokens: cached,
      cacheWriteTokens: written,
      costUsd: usd(want.micros),
      source: 'PROVIDER',
    });
    const l = await row(r.requestId);
    expect({
      tokens: [l.promptTokens, l.cachedPromptTokens, l.cacheWriteTokens, l.completionTokens],
      unpriced: l.unpricedPromptTokens,
      prices: [l.inputMicrosPerMillion, l.cachedInputMicrosPerMillion, l.cacheWriteMicrosPerMillion, l.outputMicrosPerMillion],
      cost: l.costMicros,
    }).toEqual({
      tokens: [PROMPT, cached, written, TEXT],
      unpriced: want.unpriced,
      // The unit prices used: a missing cache price shows the input price it was charged at.
      prices: [prices.input, prices.cached ?? prices.input, prices.write ?? prices.input, OUTPUT],
      cost: want.micros,
    });
  });

  it('the subscription prices cached tokens the same way and reports them on the done event', async () => {
    const prices = { input: INPUT, cached: CACHED, write: WRITE };
    await setPrices(prices);
    await simClient.addFault({ model: MODEL, fault: 'cached', cachedTokens: 40, cacheWriteTokens: 12 });
    const client = wsClient(app.url, tenant.key);
    const { events, error } = await subscribeAll(client, TOOL_STREAM, toolInput());
    await client.dispose();
    expect(error).toBeNull();
    const done = events.at(-1)!.chatStream;
    expect(done).toMatchObject({ done: true, outcome: 'COMPLETED', finishReason: 'STOP' });
    expect(done.usage).toEqual({
      promptTokens: PROMPT,
      completionTokens: TEXT,
      cachedPromptTokens: 40,
      cacheWriteTokens: 12,
      costUsd: usd(handCost(prices, PROMPT, 40, 12, TEXT).micros),
      source: 'PROVIDER',
    });
  });

  it('a tool-using conversation costs the sum of its turns, cached tokens included, to the micro-dollar', async () => {
    const prices = { input: INPUT, cached: CACHED, write: WRITE };
    await setPrices(prices);
    // Turn 1: the model calls get_weather.
    await simClient.addFault({ model: MODEL, fault: 'tool_calls', shape: 'split' });
    const t1 = (await gqlOk(app.url, tenant.key, TOOL_CHAT, toolInput())).chat;
    expect(t1.finishReason).toBe('TOOL_CALLS');
    const [call] = t1.toolCalls;
    // Turn 2: the call and its result go back; the provider reads the first turn's prompt from its cache.
    await simClient.addFault({ model: MODEL, fault: 'cached', cachedTokens: PROMPT, cacheWriteTokens: 9 });
    const messages = [
      { role: 'USER', content: QUESTION },
      { role: 'ASSISTANT', content: '', toolCalls: [call] },
      { role: 'TOOL', content: 'Sunny, 21 C', toolCallId: call.id },
    ];
    const t2 = (await gqlOk(app.url, tenant.key, TOOL_CHAT, toolInput({ messages }))).chat;
    const prompt2 = PROMPT + (Math.ceil((call.name + call.arguments).length / 4) + 4) + (Math.ceil('Sunny, 21 C'.length / 4) + 4);
    const cost1 = handCost(prices, PROMPT, 0, 0, toolTokens(t1.toolCalls)).micros;
    const cost2 = handCost(prices, prompt2, PROMPT, 9, TEXT).micros;
    expect([t1.usage.costUsd, t2.usage.costUsd]).toEqual([usd(cost1), usd(cost2)]);
    expect(t2.usage).toMatchObject({ promptTokens: prompt2, cachedPromptTokens: PROMPT, cacheWriteTokens: 9 });
    const ledger = await db.ledgerEntry.aggregate({ where: { requestId: { in: [t1.requestId, t2.requestId] } }, _sum: { costMicros: true } });
    expect(ledger._sum.costMicros).toBe(cost1 + cost2);
  });

  describe('holds stay an upper bound', () => {
    // The hold: every prompt token of the upper bound (bytes + 8 per message and per tool) at the dearest prompt
    // price, plus maxTokens (the profile's 1024) at the output price.
    const upperBound = REQUEST_BYTES + 8 * (1 + TOOLS.length);
    const hold = (promptPrice: bigint) => ceilDiv(BigInt(upperBound) * promptPrice + 1024n * OUTPUT, M);

    it('holds at the cache-write price when it is above the input price', async () => {
      await setPrices({ input: INPUT, cached: CACHED, write: WRITE });
      const r = (await gqlOk(app.url, tenant.key, TOOL_CHAT, toolInput())).chat;
      expect((await row(r.requestId)).holdMicros).toBe(hold(WRITE));
    });

    it('a budget that covers the input-price hold but not the cache-write one is refused, nothing written', async () => {
      await setPrices({ input: INPUT, cached: CACHED, write: WRITE });
      const poor = await createTenant(app.url, { monthlyBudgetUsd: usd(hold(WRITE) - 1n) });
      await gqlOk(
        app.url,
        TEST_ADMIN_KEY,
        `mutation($t: ID!) { setProfileOverride(tenantId: $t, profile: "chat_default", model: "${MODEL}", fallbacks: []) { model } }`,
        { t: poor.id },
      );
      expect(hold(INPUT)).toBeLessThan(hold(WRITE) - 1n);
      const r = await gql(app.url, poor.key, TOOL_CHAT, toolInput());
      expect(r.errors?.[0]?.extensions?.code).toBe('BUDGET_EXCEEDED');
      expect(await db.ledgerEntry.count({ where: { tenantId: poor.id } })).toBe(0);
      expect((await simClient.stats()).requests).toEqual({});
    });
  });

  it('cost report rows and CSV carry the cached and cache-write columns; every grouping adds up to the same totals', async () => {
    const month = monthOf(new Date());
    const rows = await db.ledgerEntry.findMany({ where: { tenantId: tenant.id, state: 'SETTLED' } });
    const sum = (f: (r: (typeof rows)[number]) => number | bigint) => rows.reduce((s, r) => s + BigInt(f(r)), 0n);
    const want = {
      total: sum((r) => r.costMicros),
      cached: sum((r) => r.cachedPromptTokens),
      written: sum((r) => r.cacheWriteTokens),
      requests: BigInt(rows.length),
    };
    expect(want.cached).toBeGreaterThan(0n);
    for (const g of ['MODEL', 'PROFILE', 'DAY', 'API_KEY']) {
      const r = (await gqlOk(app.url, TEST_ADMIN_KEY, REPORT, { month, g, t: tenant.id })).costReport;
      const add = (f: (x: any) => string | number) =>
        r.rows.reduce((s: bigint, x: any) => s + BigInt(typeof f(x) === 'string' ? (f(x) as string).replace('.', '') : f(x)), 0n);
      expect({
        total: BigInt(r.totalUsd.replace('.', '')),
        cost: add((x) => x.costUsd),
        cached: add((x) => x.cachedPromptTokens),
        written: add((x) => x.cacheWriteTokens),
        requests: add((x) => x.requests),
      }).toEqual({
        total: want.total,
        cost: want.total,
        cached: want.cached,
        written: want.written,
        requests: want.requests,
      });
      const [header, ...lines] = (r.csv as string).trimEnd().split('\r\n');
      expect(header).toBe('key,requests,promptTokens,unpricedPromptTokens,cachedPromptTokens,cacheWriteTokens,completionTokens,costUsd');
      expect(lines).toEqual(
        r.rows.map((x: any) =>
          [x.key, x.requests, x.promptTokens, x.unpricedPromptTokens, x.cachedPromptTokens, x.cacheWriteTokens, x.completionTokens, x.costUsd].join(','),
        ),
      );
    }
  });

  describe('setModelCachePrices', () => {
    it('left out keeps, null clears; each change is a price-history row with all four prices and an audit record', async () => {
      await setPrices({ input: INPUT, cached: CACHED, write: WRITE });
      const kept = (await gqlOk(app.url, TEST_ADMIN_KEY, SET_CACHED_ONLY, { m: MODEL, c: '0.25' })).setModelCachePrices;
      expect(kept).toEqual({ id: MODEL, cachedInputUsdPerMillion: '0.250000', cacheWriteUsdPerMillion: '2.500000' });
      const history = await db.modelPrice.findFirstOrThrow({ where: { modelId: MODEL }, orderBy: { id: 'desc' } });
      expect([
        history.inputMicrosPerMillion,
        history.cachedInputMicrosPerMillion,
        history.cacheWriteMicrosPerMillion,
        history.outputMicrosPerMillion,
        history.source,
      ]).toEqual([INPUT, 250_000n, WRITE, OUTPUT, 'admin']);
      // setModelPrice keeps the cache prices, in the model and in its history row.
      await gqlOk(app.url, TEST_ADMIN_KEY, SET_PRICE, { m: MODEL, o: '9', i: '3' });
      const after = await db.modelPrice.findFirstOrThrow({ where: { modelId: MODEL }, orderBy: { id: 'desc' } });
      expect([after.inputMicrosPerMillion, after.cachedInputMicrosPerMillion, after.cacheWriteMicrosPerMillion, after.outputMicrosPerMillion]).toEqual([
        3n * M,
        250_000n,
        WRITE,
        9n * M,
      ]);
      const cleared = (await gqlOk(app.url, TEST_ADMIN_KEY, SET_CACHED_ONLY, { m: MODEL, c: null })).setModelCachePrices;
      expect(cleared).toEqual({ id: MODEL, cachedInputUsdPerMillion: null, cacheWriteUsdPerMillion: '2.500000' });
      const audit = await db.auditEntry.findFirstOrThrow({ where: { action: 'setModelCachePrices', targetId: MODEL }, orderBy: { id: 'desc' } });
      expect(audit.newValue).toEqual({ cachedInputMicrosPerMillion: null, cacheWriteMicrosPerMillion: WRITE.toString() });
      const listed = (await gqlOk(app.url, tenant.key, `{ models { id cachedInputUsdPerMillion cacheWriteUsdPerMillion } }`)).models.find(
        (m: { id: string }) => m.id === MODEL,
      );
      expect(listed).toEqual({ id: MODEL, cachedInputUsdPerMillion: null, cacheWriteUsdPerMillion: '2.500000' });
    });

    it('a bad amount is BAD_USER_INPUT naming it, an unknown model NOT_FOUND, a tenant key FORBIDDEN; nothing written', async () => {
      const before = await db.modelPrice.count();
      const bad = await gql(app.url, TEST_ADMIN_KEY, SET_CACHE, { m: MODEL, c: '0.5', w: '-1' });
      expect(bad.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'cacheWriteUsdPerMillion' });
      const unknown = await gql(app.url, TEST_ADMIN_KEY, SET_CACHE, { m: 'no-such-model', c: '0.5' });
      expect(unknown.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
      const tenantKey = await gql(app.url, tenant.key, SET_CACHE, { m: MODEL, c: '0.5' });
      expect(tenantKey.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      expect(await db.modelPrice.count()).toBe(before);
    });
  });
});
