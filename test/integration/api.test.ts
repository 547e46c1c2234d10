import { Writable } from 'node:stream';
import { createClient, type Client } from 'graphql-ws';
import pino from 'pino';
import WebSocket from 'ws';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import type { Db } from '../../src/infra/prisma';
import { monthOf } from '../../src/accounting/period';
import { CHAT, CHAT_STREAM, createTenant, gql, gqlOk, hello, startApp, startSim, subscribeAll, TEST_ADMIN_KEY, uniqueName, wsClient } from '../support/app';
import { gatewaySuite } from '../support/suite';

/**
 * The contract's operations over real HTTP and a real graphql-ws client, against the app on port 0 with the test
 * Postgres and Redis and the project's simulator. The expected figures are copied from shared/guide/model-table.md,
 * not from the code under test.
 */

/** id, name, provider, TTFT US East, tokens/s, $ per 1M output tokens: shared/guide/model-table.md. */
const MODEL_TABLE: ReadonlyArray<[string, string, string, number, number, string]> = [
  ['step-3.5-flash', 'Step-3.5-Flash', 'StepFun', 120, 80, '0.150000'],
  ['deepseek-v4-flash', 'DeepSeek V4 Flash', 'DeepSeek', 180, 60, '0.250000'],
  ['hunyuan-turbos', 'Hunyuan-TurboS', 'Tencent', 200, 55, '0.280000'],
  ['qwen3-8b', 'Qwen3-8B', 'Qwen', 150, 70, '0.010000'],
  ['qwen3-32b', 'Qwen3-32B', 'Qwen', 250, 45, '0.280000'],
  ['doubao-seed-lite', 'Doubao-Seed-Lite', 'ByteDance', 220, 50, '0.400000'],
  ['hunyuan-turbo', 'Hunyuan-Turbo', 'Tencent', 280, 42, '0.570000'],
  ['glm-4-32b', 'GLM-4-32B', 'Zhipu', 300, 38, '0.560000'],
  ['qwen3.5-27b', 'Qwen3.5-27B', 'Qwen', 350, 35, '0.190000'],
  ['deepseek-v4-pro', 'DeepSeek V4 Pro', 'DeepSeek', 400, 30, '0.780000'],
  ['minimax-m2.5', 'MiniMax M2.5', 'MiniMax', 450, 28, '1.150000'],
  ['glm-5', 'GLM-5', 'Zhipu', 500, 25, '1.920000'],
  ['kimi-k2.5', 'Kimi K2.5', 'Moonshot', 600, 20, '3.000000'],
  ['deepseek-r1', 'DeepSeek-R1', 'DeepSeek', 800, 15, '2.500000'],
  ['qwen3.5-397b', 'Qwen3.5-397B', 'Qwen', 1200, 10, '2.340000'],
];

/** profile, model, fallbacks, default maxTokens, cap: shared/guide/model-table.md. */
const PROFILES = [
  {
    name: 'chat_default',
    model: 'deepseek-v4-flash',
    fallbacks: ['hunyuan-turbos', 'qwen3-32b'],
    defaultMaxTokens: 1024,
    maxTokensCap: 4096,
    overridden: false,
  },
  { name: 'chat_speed', model: 'step-3.5-flash', fallbacks: ['deepseek-v4-flash'], defaultMaxTokens: 1024, maxTokensCap: 4096, overridden: false },
  { name: 'deep_reasoning', model: 'minimax-m2.5', fallbacks: ['glm-5', 'kimi-k2.5'], defaultMaxTokens: 4096, maxTokensCap: 16384, overridden: false },
  { name: 'fast_classify', model: 'qwen3-8b', fallbacks: [], defaultMaxTokens: 256, maxTokensCap: 1024, overridden: false },
  { name: 'long_form', model: 'deepseek-v4-pro', fallbacks: ['hunyuan-turbo'], defaultMaxTokens: 4096, maxTokensCap: 16384, overridden: false },
];

const MODELS_Q = `query Models { models { id name provider outputUsdPerMillion inputUsdPerMillion ttftMs tokensPerSecond } }`;
const PROFILES_Q = `query Profiles($region: Region) { profiles(region: $region) { name model fallbacks overridden defaultMaxTokens maxTokensCap } }`;
const ME_Q = `query Me { me { id name monthlyBudgetUsd spentThisMonthUsd heldUsd remainingThisMonthUsd requestsPerMinute tokensPerMinute } }`;
const TENANT_Q = `query Tenant($id: ID!) { tenant(id: $id) { id name monthlyBudgetUsd spentThisMonthUsd heldUsd remainingThisMonthUsd requestsPerMinute tokensPerMinute } }`;
const API_KEYS_Q = `query ApiKeys($tenantId: ID) { apiKeys(tenantId: $tenantId) { id prefix createdAt lastUsedAt revokedAt } }`;
const SET_PRICE = `mutation SetPrice($model: ID!, $out: Usd!, $in: Usd) { setModelPrice(model: $model, outputUsdPerMillion: $out, inputUsdPerMillion: $in) { id outputUsdPerMillion inputUsdPerMillion } }`;
const SET_PRICE_KEEP_INPUT = `mutation SetPriceKeep($model: ID!, $out: Usd!) { setModelPrice(model: $model, outputUsdPerMillion: $out) { id outputUsdPerMillion inputUsdPerMillion } }`;

interface StreamEvent {
  chatStream: {
    requestId: string;
    model: string;
    delta: string | null;
    done: boolean;
    outcome: string | null;
    usage: { promptTokens: number; completionTokens: number; costUsd: string; source: string } | null;
    ttftMs: number | null;
    attempts: Array<{ model: string; ok: boolean; error: string | null; latencyMs: number }> | null;
  };
}

let sim: Simulator;
let app: App;
let db: Db;
const suite = gatewaySuite();
const clients = suite.clients;
const track = (c: Client) => (clients.push(c), c);

/** Polls `probe` until it returns a truthy value or `ms` pass; returns the last value. */
async function waitFor<T>(probe: () => Promise<T>, ms = 5_000, every = 25): Promise<T> {
  const until = Date.now() + ms;
  let v = await probe();
  while (!v && Date.now() < until) {
    await new Promise((r) => setTimeout(r, every));
    v = await probe();
  }
  return v;
}

beforeAll(async () => void ({ sim, app, db } = await suite.start()));

describe('queries', () => {
  it('models: the 15 models of the model table with their exact prices, input prices unknown (null)', async () => {
    const t = await createTenant(app.url);
    const d = await gqlOk(app.url, t.key, MODELS_Q);
    const byId = new Map(d.models.map((m: { id: string }) => [m.id, m]));
    expect(d.models).toHaveLength(15);
    for (const [id, name, provider, ttftMs, tokensPerSecond, price] of MODEL_TABLE) {
      expect(byId.get(id)).toEqual({ id, name, provider, outputUsdPerMillion: price, inputUsdPerMillion: null, ttftMs, tokensPerSecond });
    }
    expect(byId.get('glm-5')).toMatchObject({ outputUsdPerMillion: '1.920000' });
    expect(byId.get('qwen3-8b')).toMatchObject({ outputUsdPerMillion: '0.010000' });
    // The admin may read the catalog too.
    expect((await gqlOk(app.url, TEST_ADMIN_KEY, MODELS_Q)).models).toHaveLength(15);
  });

  it('profiles: the five task profiles with model, chain and token limits, for US_EAST and ASIA', async () => {
    const t = await createTenant(app.url);
    const byName = (ps: Array<{ name: string }>) => [...ps].sort((a, b) => a.name.localeCompare(b.name));
    expect(byName((await gqlOk(app.url, t.key, PROFILES_Q)).profiles)).toEqual(PROFILES);
    expect(byName((await gqlOk(app.url, t.key, PROFILES_Q, { region: 'ASIA' })).profiles)).toEqual(PROFILES);
  });

  it('me: the caller tenant, with spent, held and remaining from its budget', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '25', requestsPerMinute: 600, tokensPerMinute: 1_000_000 });
    const d = await gqlOk(app.url, t.key, ME_Q);
    expect(d.me).toEqual({
      id: t.id,
      name: expect.any(String),
      monthlyBudgetUsd: '25.000000',
      spentThisMonthUsd: '0.000000',
      heldUsd: '0.000000',
      remainingThisMonthUsd: '25.000000',
      requestsPerMinute: 600,
      tokensPerMinute: 1_000_000,
    });
  });
});

describe('chat mutation', () => {
  it('returns content, usage, attempts and ttftMs; writes one COMPLETED ledger row; spend includes it at once', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '1' });
    const d = await gqlOk(app.url, t.key, CHAT, hello());
    const r = d.chat;
    expect(r.model).toBe('deepseek-v4-flash');
    expect(typeof r.content).toBe('string');
    expect(r.content.length).toBeGreaterThan(50);
    // The simulator answers 150 tokens; 150 x $0.25/M = 37.5 micro-dollars, rounded up.
    expect(r.usage).toEqual({ promptTokens: expect.any(Number), completionTokens: 150, costUsd: '0.000038', source: 'PROVIDER' });
    expect(r.usage.promptTokens).toBeGreaterThan(0);
    expect(r.attempts).toEqual([{ model: 'deepseek-v4-flash', ok: true, error: null, latencyMs: expect.any(Number) }]);
    expect(r.ttftMs).toEqual(expect.any(Number));
    expect(r.ttftMs).toBeGreaterThanOrEqual(0);
    expect(r.totalMs).toBeGreaterThanOrEqual(r.ttftMs);

    const rows = await db.ledgerEntry.findMany({ where: { tenantId: t.id } });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      requestId: r.requestId,
      outcome: 'COMPLETED',
      state: 'SETTLED',
      model: 'deepseek-v4-flash',
      completionTokens: 150,
      costMicros: 38n,
    });

    const me = (await gqlOk(app.url, t.key, ME_Q)).me;
    expect(me).toMatchObject({ spentThisMonthUsd: '0.000038', heldUsd: '0.000000', remainingThisMonthUsd: '0.999962' });
  });

  it('sends maxTokens upstream: a smaller maxTokens gives a shorter answer', async () => {
    const t = await createTenant(app.url);
    const d = await gqlOk(app.url, t.key, CHAT, hello('fast_classify', { maxTokens: 7, temperature: 0 }));
    expect(d.chat.model).toBe('qwen3-8b');
    expect(d.chat.usage.completionTokens).toBe(7);
  });

  it('request(id) and requests: the caller tenant reads its own ledger rows', async () => {
    const t = await createTenant(app.url);
    const { chat } = await gqlOk(app.url, t.key, CHAT, hello());
    const one = await gqlOk(
      app.url,
      t.key,
      `query Req($id: ID!) { request(id: $id) { requestId profile region model outcome usage { completionTokens costUsd source } attempts { model ok } startedAt endedAt } }`,
      { id: chat.requestId },
    );
    expect(one.request).toMatchObject({
      requestId: chat.requestId,
      profile: 'chat_default',
      region: 'US_EAST',
      model: 'deepseek-v4-flash',
      outcome: 'COMPLETED',
      usage: { completionTokens: 150, costUsd: '0.000038', source: 'PROVIDER' },
      attempts: [{ model: 'deepseek-v4-flash', ok: true }],
    });
    const many = await gqlOk(app.url, t.key, `query Reqs { requests(first: 10) { requestId outcome } }`);
    expect(many.requests).toEqual([{ requestId: chat.requestId, outcome: 'COMPLETED' }]);
    const admin = await gqlOk(app.url, TEST_ADMIN_KEY, `query Reqs($t: ID) { requests(tenantId: $t) { requestId } }`, { t: t.id });
    expect(admin.requests).toEqual([{ requestId: chat.requestId }]);
  });

  it('costReport and costProjection answer over HTTP', async () => {
    const t = await createTenant(app.url);
    await gqlOk(app.url, t.key, CHAT, hello());
    const month = monthOf(new Date());
    const d = await gqlOk(
      app.url,
      t.key,
      `query Cost($m: String!) { costReport(month: $m, groupBy: MODEL) { tenantId month groupBy totalUsd rows { key requests completionTokens costUsd } csv } }`,
      { m: month },
    );
    expect(d.costReport).toMatchObject({
      tenantId: t.id,
      month,
      groupBy: 'MODEL',
      totalUsd: '0.000038',
      rows: [{ key: 'deepseek-v4-flash', requests: 1, completionTokens: 150, costUsd: '0.000038' }],
    });
    expect(d.costReport.csv.split(/\r?\n/).filter(Boolean)).toHaveLength(2);
    const p = await gqlOk(
      app.url,
      t.key,
      `query Proj($mix: [ModelShareInput!]!) { costProjection(monthlyOutputTokens: 50000000, mix: $mix) { monthlyOutputTokens totalUsd rows { model share outputTokens costUsd } } }`,
      {
        mix: [
          { model: 'deepseek-v4-flash', share: 0.6 },
          { model: 'qwen3-8b', share: 0.3 },
          { model: 'minimax-m2.5', share: 0.1 },
        ],
      },
    );
    expect(p.costProjection).toMatchObject({ monthlyOutputTokens: 50_000_000, totalUsd: '13.400000' });
  });
});

describe('admin mutations', () => {
  it('createTenant: settings as given, a key that works at once; a field left out means no limit', async () => {
    const name = uniqueName('acme');
    const d = await gqlOk(
      app.url,
      TEST_ADMIN_KEY,
      `mutation Create($input: CreateTenantInput!) { createTenant(input: $input) { tenant { id name monthlyBudgetUsd spentThisMonthUsd heldUsd remainingThisMonthUsd requestsPerMinute tokensPerMinute } apiKey { id key } } }`,
      {
        input: { name, monthlyBudgetUsd: '13.40', requestsPerMinute: 60 },
      },
    );
    const { tenant, apiKey } = d.createTenant;
    expect(tenant).toEqual({
      id: expect.any(String),
      name,
      monthlyBudgetUsd: '13.400000',
      spentThisMonthUsd: '0.000000',
      heldUsd: '0.000000',
      remainingThisMonthUsd: '13.400000',
      requestsPerMinute: 60,
      tokensPerMinute: null,
    });
    // At least 128 random bits: 24 random bytes in base64url after the lgw_ prefix.
    expect(apiKey.key).toMatch(/^lgw_[A-Za-z0-9_-]{32}$/);
    expect((await gqlOk(app.url, apiKey.key, ME_Q)).me.id).toBe(tenant.id);
    const stored = await db.apiKey.findUnique({ where: { id: apiKey.id } });
    expect(stored?.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(stored?.hash).not.toContain(apiKey.key);
    expect(apiKey.key.startsWith(stored!.prefix)).toBe(true);
    expect((await gqlOk(app.url, TEST_ADMIN_KEY, TENANT_Q, { id: tenant.id })).tenant).toEqual(tenant);
  });

  it('createApiKey, apiKeys and revokeApiKey: a revoked key is refused on its next request', async () => {
    const t = await createTenant(app.url);
    const { createApiKey } = await gqlOk(app.url, TEST_ADMIN_KEY, `mutation NewKey($t: ID!) { createApiKey(tenantId: $t) { id key } }`, { t: t.id });
    expect(createApiKey.key).not.toBe(t.key);
    expect((await gqlOk(app.url, createApiKey.key, ME_Q)).me.id).toBe(t.id);

    const own = await gqlOk(app.url, t.key, API_KEYS_Q);
    expect(own.apiKeys.map((k: { id: string }) => k.id).sort()).toEqual([t.keyId, createApiKey.id].sort());
    for (const k of own.apiKeys) {
      expect(k.prefix.length).toBeGreaterThanOrEqual(8);
      expect(k.revokedAt).toBeNull();
    }
    const viaAdmin = await gqlOk(app.url, TEST_ADMIN_KEY, API_KEYS_Q, { tenantId: t.id });
    expect(viaAdmin.apiKeys).toHaveLength(2);

    const revoke = `mutation Revoke($id: ID!) { revokeApiKey(id: $id) }`;
    expect((await gqlOk(app.url, TEST_ADMIN_KEY, revoke, { id: createApiKey.id })).revokeApiKey).toBe(true);
    expect((await gqlOk(app.url, TEST_ADMIN_KEY, revoke, { id: createApiKey.id })).revokeApiKey).toBe(false);

    const refused = await gql(app.url, createApiKey.key, ME_Q);
    expect(refused.status).toBe(401);
    expect(refused.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    // The other key of the tenant still works, and shows the revocation.
    const after = await gqlOk(app.url, t.key, API_KEYS_Q);
    expect(after.apiKeys.find((k: { id: string }) => k.id === createApiKey.id).revokedAt).toEqual(expect.any(String));
  });

  it('setTenantBudget: an amount, an explicit null removes it', async () => {
    const t = await createTenant(app.url);
    const m = `mutation Budget($t: ID!, $b: Usd) { setTenantBudget(tenantId: $t, monthlyBudgetUsd: $b) { id monthlyBudgetUsd remainingThisMonthUsd } }`;
    expect((await gqlOk(app.url, TEST_ADMIN_KEY, m, { t: t.id, b: '0.5' })).setTenantBudget).toEqual({
      id: t.id,
      monthlyBudgetUsd: '0.500000',
      remainingThisMonthUsd: '0.500000',
    });
    expect((await gqlOk(app.url, t.key, ME_Q)).me.monthlyBudgetUsd).toBe('0.500000');
    expect((await gqlOk(app.url, TEST_ADMIN_KEY, m, { t: t.id, b: null })).setTenantBudget).toEqual({
      id: t.id,
      monthlyBudgetUsd: null,
      remainingThisMonthUsd: null,
    });
    expect((await gqlOk(app.url, t.key, ME_Q)).me.monthlyBudgetUsd).toBeNull();
  });

  it('setTenantLimits: an argument left out keeps its value, an explicit null removes that limit', async () => {
    const t = await createTenant(app.url, { requestsPerMinute: 10, tokensPerMinute: 5000 });
    const only = `mutation Limits($t: ID!, $rpm: Int) { setTenantLimits(tenantId: $t, requestsPerMinute: $rpm) { requestsPerMinute tokensPerMinute } }`;
    expect((await gqlOk(app.url, TEST_ADMIN_KEY, only, { t: t.id, rpm: 100 })).setTenantLimits).toEqual({ requestsPerMinute: 100, tokensPerMinute: 5000 });
    const both = `mutation Limits($t: ID!) { setTenantLimits(tenantId: $t, requestsPerMinute: null, tokensPerMinute: 7000) { requestsPerMinute tokensPerMinute } }`;
    expect((await gqlOk(app.url, TEST_ADMIN_KEY, both, { t: t.id })).setTenantLimits).toEqual({ requestsPerMinute: null, tokensPerMinute: 7000 });
    expect((await gqlOk(app.url, t.key, ME_Q)).me).toMatchObject({ requestsPerMinute: null, tokensPerMinute: 7000 });
  });

  it('setProfileOverride and removeProfileOverride: the override routes the next chat, and is gone after removal', async () => {
    const t = await createTenant(app.url);
    const set = `mutation Ov($t: ID!, $p: String!, $m: String!, $f: [String!], $r: Region) { setProfileOverride(tenantId: $t, profile: $p, model: $m, fallbacks: $f, region: $r) { tenantId profile region model fallbacks } }`;
    const ov = await gqlOk(app.url, TEST_ADMIN_KEY, set, { t: t.id, p: 'chat_default', m: 'qwen3-32b' });
    // fallbacks left out: the chosen model's default chain (qwen3-32b has none).
    expect(ov.setProfileOverride).toEqual({ tenantId: t.id, profile: 'chat_default', region: null, model: 'qwen3-32b', fallbacks: [] });
    const asia = await gqlOk(app.url, TEST_ADMIN_KEY, set, { t: t.id, p: 'chat_default', m: 'glm-5', f: ['qwen3-8b'], r: 'ASIA' });
    expect(asia.setProfileOverride).toEqual({ tenantId: t.id, profile: 'chat_default', region: 'ASIA', model: 'glm-5', fallbacks: ['qwen3-8b'] });

    const us = (await gqlOk(app.url, t.key, PROFILES_Q)).profiles.find((p: { name: string }) => p.name === 'chat_default');
    expect(us).toMatchObject({ model: 'qwen3-32b', fallbacks: [], overridden: true });
    const as = (await gqlOk(app.url, t.key, PROFILES_Q, { region: 'ASIA' })).profiles.find((p: { name: string }) => p.name === 'chat_default');
    expect(as).toMatchObject({ model: 'glm-5', fallbacks: ['qwen3-8b'], overridden: true });
    expect((await gqlOk(app.url, t.key, CHAT, hello('chat_default', { region: 'ASIA', maxTokens: 5 }))).chat.model).toBe('glm-5');
    expect((await gqlOk(app.url, t.key, CHAT, hello('chat_default', { maxTokens: 5 }))).chat.model).toBe('qwen3-32b');

    const rm = `mutation Rm($t: ID!, $p: String!, $r: Region) { removeProfileOverride(tenantId: $t, profile: $p, region: $r) }`;
    expect((await gqlOk(app.url, TEST_ADMIN_KEY, rm, { t: t.id, p: 'chat_default' })).removeProfileOverride).toBe(true);
    expect((await gqlOk(app.url, TEST_ADMIN_KEY, rm, { t: t.id, p: 'chat_default' })).removeProfileOverride).toBe(false);
    expect((await gqlOk(app.url, TEST_ADMIN_KEY, rm, { t: t.id, p: 'chat_default', r: 'ASIA' })).removeProfileOverride).toBe(true);
    const back = (await gqlOk(app.url, t.key, PROFILES_Q)).profiles.find((p: { name: string }) => p.name === 'chat_default');
    expect(back).toEqual(PROFILES[0]);
    expect((await gqlOk(app.url, t.key, CHAT, hello('chat_default', { maxTokens: 5 }))).chat.model).toBe('deepseek-v4-flash');
  });

  describe('setModelPrice', () => {
    const MODEL = 'qwen3.5-397b';
    afterAll(async () => {
      // Put the table's price back whatever happened above: other tests read the catalog.
      await gqlOk(app.url, TEST_ADMIN_KEY, SET_PRICE, { model: MODEL, out: '2.34', in: null });
    });

    it('starts a new price that the next chat is charged at; input left out keeps it, null clears it', async () => {
      const t = await createTenant(app.url);
      const set = await gqlOk(app.url, TEST_ADMIN_KEY, SET_PRICE, { model: MODEL, out: '4', in: '1.5' });
      expect(set.setModelPrice).toEqual({ id: MODEL, outputUsdPerMillion: '4.000000', inputUsdPerMillion: '1.500000' });
      const listed = (await gqlOk(app.url, t.key, MODELS_Q)).models.find((m: { id: string }) => m.id === MODEL);
      expect(listed).toMatchObject({ outputUsdPerMillion: '4.000000', inputUsdPerMillion: '1.500000' });

      const keep = await gqlOk(app.url, TEST_ADMIN_KEY, SET_PRICE_KEEP_INPUT, { model: MODEL, out: '3' });
      expect(keep.setModelPrice).toEqual({ id: MODEL, outputUsdPerMillion: '3.000000', inputUsdPerMillion: '1.500000' });

      await gqlOk(
        app.url,
        TEST_ADMIN_KEY,
        `mutation Ov($t: ID!) { setProfileOverride(tenantId: $t, profile: "long_form", model: "${MODEL}", fallbacks: []) { model } }`,
        { t: t.id },
      );
      const { chat } = await gqlOk(app.url, t.key, CHAT, hello('long_form', { maxTokens: 100 }));
      expect(chat.model).toBe(MODEL);
      // 100 output tokens at $3/M = 300 micro-dollars; prompt tokens at $1.5/M, rounded up.
      const expected = BigInt(Math.ceil(100 * 3 + chat.usage.promptTokens * 1.5));
      const row = await db.ledgerEntry.findUnique({ where: { requestId: chat.requestId } });
      expect(row?.costMicros).toBe(expected);

      const restored = await gqlOk(app.url, TEST_ADMIN_KEY, SET_PRICE, { model: MODEL, out: '2.34', in: null });
      expect(restored.setModelPrice).toEqual({ id: MODEL, outputUsdPerMillion: '2.340000', inputUsdPerMillion: null });
    });
  });
});

describe('chatStream over graphql-ws', () => {
  it('a streamed completion arrives as several delta events, then exactly one done event with outcome and usage', async () => {
    const t = await createTenant(app.url);
    const client = track(wsClient(app.url, t.key));
    const { events, error } = await subscribeAll<StreamEvent>(client, CHAT_STREAM, hello());
    expect(error).toBeNull();
    const evs = events.map((e) => e.chatStream);
    const done = evs.filter((e) => e.done);
    expect(done).toHaveLength(1);
    expect(evs[evs.length - 1]!.done).toBe(true);
    const deltas = evs.slice(0, -1);
    expect(deltas.length).toBeGreaterThan(1);
    for (const d of deltas) {
      expect(d).toMatchObject({ done: false, outcome: null, usage: null, model: 'deepseek-v4-flash' });
      expect(typeof d.delta).toBe('string');
    }
    expect(deltas.map((d) => d.delta).join('').length).toBeGreaterThan(50);
    const last = done[0]!;
    expect(last).toMatchObject({
      delta: null,
      done: true,
      outcome: 'COMPLETED',
      model: 'deepseek-v4-flash',
      usage: { completionTokens: 150, costUsd: '0.000038', source: 'PROVIDER' },
      attempts: [{ model: 'deepseek-v4-flash', ok: true, error: null }],
    });
    expect(last.ttftMs).toEqual(expect.any(Number));
    expect(new Set(evs.map((e) => e.requestId)).size).toBe(1);
    // Reads see writes: the ledger row is settled by the time the done event was sent.
    const row = await db.ledgerEntry.findUnique({ where: { requestId: last.requestId } });
    expect(row).toMatchObject({ tenantId: t.id, outcome: 'COMPLETED', state: 'SETTLED', costMicros: 38n });
  });

  it('serves queries on the same path and shares the context (me over graphql-ws)', async () => {
    const t = await createTenant(app.url);
    const client = track(wsClient(app.url, t.key));
    const { events, error } = await subscribeAll<{ me: { id: string } }>(client, ME_Q, {});
    expect(error).toBeNull();
    expect(events).toEqual([{ me: expect.objectContaining({ id: t.id }) }]);
  });

  it('a revoked key is refused on its next subscribe on an already open connection', async () => {
    const t = await createTenant(app.url);
    const { createApiKey: k } = await gqlOk(app.url, TEST_ADMIN_KEY, `mutation NewKey($t: ID!) { createApiKey(tenantId: $t) { id key } }`, { t: t.id });
    let connected = 0;
    const client = track(
      createClient({
        url: app.url.replace(/^http/, 'ws'),
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${k.key}` },
        retryAttempts: 0,
        lazy: false,
        on: { connected: () => connected++ },
      }),
    );
    const first = await subscribeAll(client, ME_Q, {});
    expect(first.error).toBeNull();
    await gqlOk(app.url, TEST_ADMIN_KEY, `mutation Revoke($id: ID!) { revokeApiKey(id: $id) }`, { id: k.id });
    const second = await subscribeAll(client, CHAT_STREAM, hello());
    expect(connected).toBe(1); // the same connection: the check ran on subscribe, not on a reconnect
    expect(second.events).toEqual([]);
    expect(second.error?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(0);
  });
});

describe('unsubscribing mid-stream', () => {
  let slowSim: Simulator;
  let slowApp: App;
  beforeAll(async () => {
    // deepseek-v4-flash at 0.6 x (180 ms + 150 tokens at 60/s): about 1.6 s for the whole answer.
    slowSim = await startSim(0.6);
    slowApp = await startApp({}, slowSim);
  });
  afterAll(async () => {
    await slowApp?.stop();
    await slowSim?.close();
  });

  const simStats = async () =>
    (await (await fetch(new URL(slowSim.url).origin + '/__sim/stats')).json()) as {
      requests: Record<string, number>;
      openStreams: number;
      abortedByClient: number;
    };

  it('ends the upstream request at once and settles the ledger row as CLIENT_CANCELLED', async () => {
    const t = await createTenant(slowApp.url);
    const before = await simStats();
    const client = track(wsClient(slowApp.url, t.key));
    const seen: StreamEvent['chatStream'][] = [];
    await new Promise<void>((resolve, reject) => {
      const unsubscribe = client.subscribe<StreamEvent>(
        { query: CHAT_STREAM, variables: hello() },
        {
          next: (v) => {
            if (v.errors) return reject(new Error(JSON.stringify(v.errors)));
            seen.push(v.data!.chatStream);
            if (seen.length === 3) {
              unsubscribe();
              resolve();
            }
          },
          error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e))),
          complete: () => undefined, // graphql-ws calls it on unsubscribe too
        },
      );
    });
    expect(seen.every((e) => !e.done)).toBe(true);
    const requestId = seen[0]!.requestId;

    const after = await waitFor(async () => {
      const s = await simStats();
      return s.abortedByClient === before.abortedByClient + 1 && s.openStreams === 0 ? s : null;
    }, 3_000);
    expect(after).toMatchObject({ abortedByClient: before.abortedByClient + 1, openStreams: 0 });
    // abortedByClient counts only responses whose client left before the end: the upstream answer was cut short.

    const row = await waitFor(async () => {
      const r = await db.ledgerEntry.findUnique({ where: { requestId } });
      return r?.state === 'SETTLED' ? r : null;
    }, 3_000);
    expect(row).toMatchObject({ tenantId: t.id, outcome: 'CLIENT_CANCELLED', state: 'SETTLED' });
    expect(row!.completionTokens).toBeGreaterThanOrEqual(3);
    expect(row!.completionTokens).toBeLessThan(150);
    // The hold is released and what was delivered is charged.
    const me = (await gqlOk(slowApp.url, t.key, ME_Q)).me;
    expect(me.heldUsd).toBe('0.000000');
    expect(me.spentThisMonthUsd).not.toBe('0.000000');
  });
});

describe('operations endpoints', () => {
  const base = () => new URL(app.url).origin;

  it('GET /healthz and /readyz answer 200', async () => {
    const h = await fetch(`${base()}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ status: 'ok' });
    const r = await fetch(`${base()}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ready' });
  });

  it('GET /metrics exposes operations by name and code, upstream attempts, latency and TTFT histograms, denials, open streams', async () => {
    const t = await createTenant(app.url);
    await gqlOk(app.url, t.key, `mutation MetricsChat($input: ChatInput!) { chat(input: $input) { requestId } }`, hello());
    await gql(app.url, TEST_ADMIN_KEY, `query MetricsMe { me { id } }`);
    // graphql-ws operations are counted the same way: a streamed completion, and one refused with its code.
    const ws = track(wsClient(app.url, t.key));
    expect((await subscribeAll(ws, CHAT_STREAM.replace('subscription(', 'subscription MetricsStream('), hello())).error).toBeNull();
    const refused = await subscribeAll(ws, CHAT_STREAM.replace('subscription(', 'subscription MetricsStream('), hello('chat_default', { temperature: 3 }));
    expect(refused.error?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const res = await fetch(`${base()}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    const value = (re: RegExp) => Number(text.match(re)?.[1] ?? NaN);
    expect(value(/^gateway_graphql_operations_total\{operation="MetricsChat",code="OK"\} (\d+)/m)).toBe(1);
    expect(value(/^gateway_graphql_operations_total\{operation="MetricsMe",code="FORBIDDEN"\} (\d+)/m)).toBe(1);
    expect(value(/^gateway_graphql_operations_total\{operation="MetricsStream",code="OK"\} (\d+)/m)).toBe(1);
    expect(value(/^gateway_graphql_operations_total\{operation="MetricsStream",code="BAD_USER_INPUT"\} (\d+)/m)).toBe(1);
    expect(value(/^gateway_upstream_attempts_total\{model="deepseek-v4-flash",result="ok"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^gateway_chat_ttft_ms_count\{model="deepseek-v4-flash"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^gateway_chat_duration_ms_count\{model="deepseek-v4-flash",outcome="COMPLETED"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^# TYPE gateway_limiter_denials_total counter$/m);
    expect(value(/^gateway_open_streams (\d+)/m)).toBe(0);
    // Operation names come from clients: past 200 distinct ones they share one label value, so series stay bounded.
    const names = (t2: string) => new Set([...t2.matchAll(/^gateway_graphql_operations_total\{operation="([^"]+)"/gm)].map((m) => m[1]));
    for (let i = 0; i < 210; i++) await gqlOk(app.url, t.key, `query Flood${i} { __typename }`);
    const after = await (await fetch(`${base()}/metrics`)).text();
    expect(names(after).size).toBeLessThanOrEqual(201);
    expect(names(after).has('(other)')).toBe(true);
    expect(names(after).has('Flood209')).toBe(false);
    // Never a key or a prompt in the metrics.
    expect(text).not.toContain(t.key);
    expect(text).not.toContain('Explain recursion');
  });
});

describe('structured logs', () => {
  let logApp: App;
  const lines: Array<Record<string, any>> = [];
  const raw: string[] = [];
  beforeAll(async () => {
    // A plain pino logger without the app's redaction: what is checked here is what the code logs at all.
    const stream = new Writable({
      write(chunk, _enc, cb) {
        for (const l of String(chunk).split('\n').filter(Boolean)) {
          raw.push(l);
          lines.push(JSON.parse(l));
        }
        cb();
      },
    });
    logApp = await startApp({}, sim, { logger: pino({ level: 'info' }, stream) });
  });
  afterAll(async () => {
    await logApp?.stop();
  });

  it('one JSON line per operation with request id and tenant id, the errorId of a masked error; never a key, prompt or completion', async () => {
    const t = await createTenant(logApp.url);
    const PROMPT = 'PROMPT-MARKER-7c1f explain recursion';
    const { chat } = await gqlOk(logApp.url, t.key, `mutation LogChat($input: ChatInput!) { chat(input: $input) { requestId content } }`, {
      input: { profile: 'chat_default', messages: [{ role: 'USER', content: PROMPT }] },
    });
    const ws = track(wsClient(logApp.url, t.key));
    expect(
      (
        await subscribeAll(ws, CHAT_STREAM.replace('subscription(', 'subscription LogStream('), {
          input: { profile: 'fast_classify', messages: [{ role: 'USER', content: PROMPT }] },
        })
      ).error,
    ).toBeNull();
    const reader = logApp.services.tenantReader as unknown as Record<string, unknown>;
    const view = reader.view;
    reader.view = async () => {
      throw new Error('boom: relation "tenants" does not exist');
    };
    const failed = await gql(logApp.url, t.key, `query LogMe { me { id } }`).finally(() => (reader.view = view));
    const errorId = failed.errors?.[0]?.extensions?.errorId as string;
    expect(errorId).toEqual(expect.any(String));

    const op = (name: string) => lines.filter((l) => l.operation === name);
    expect(op('LogChat')).toEqual([
      expect.objectContaining({
        msg: 'graphql operation',
        code: 'OK',
        tenantId: t.id,
        requestId: expect.any(String),
        ms: expect.any(Number),
        transport: 'http',
      }),
    ]);
    expect(op('LogStream')).toEqual([
      expect.objectContaining({ msg: 'graphql operation', code: 'OK', tenantId: t.id, requestId: expect.any(String), transport: 'ws' }),
    ]);
    const failure = op('LogMe');
    expect(failure).toEqual([expect.objectContaining({ code: 'INTERNAL_SERVER_ERROR', tenantId: t.id, requestId: expect.any(String), errorIds: [errorId] })]);
    expect(failure[0]!.level).toBe(50);
    // The cause is logged (server side only) under the same errorId.
    expect(lines.find((l) => l.errorId === errorId && l.err)?.err.message).toContain('relation "tenants"');

    const all = raw.join('\n');
    for (const secret of [t.key, TEST_ADMIN_KEY, 'PROMPT-MARKER-7c1f', chat.content.slice(0, 40)]) expect(all).not.toContain(secret);
  });
});
