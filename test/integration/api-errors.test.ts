import Redis from 'ioredis';
import type { Client } from 'graphql-ws';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import {
  CHAT,
  CHAT_STREAM,
  createTenant,
  gql,
  gqlOk,
  hello,
  startApp,
  startSim,
  subscribeAll,
  TEST_ADMIN_KEY,
  uniqueName,
  wsClient,
  type GqlResponse,
} from '../support/app';

/**
 * Every bad input of issue 4 item 6 and the error behaviour of item 5, black box: the code, the HTTP status, a
 * message naming the field, a body free of stacks, SQL and keys, and nothing written (no ledger row, no Redis key
 * of the tenant, no upstream call, no tenant, no price, no audit entry).
 */

type Tenant = { id: string; key: string; keyId: string };

let sim: Simulator;
let app: App;
let db: Db;
let redis: Redis;
const clients: Client[] = [];
const track = (c: Client) => (clients.push(c), c);

beforeAll(async () => {
  sim = await startSim(0);
  app = await startApp({}, sim);
  db = createPrisma(TEST_DATABASE_URL, { max: 2 });
  redis = new Redis(TEST_REDIS_URL, { lazyConnect: true });
  await redis.connect();
});

afterAll(async () => {
  for (const c of clients) await c.dispose();
  await app?.stop();
  await sim?.close();
  await db?.$disconnect();
  redis?.disconnect();
});

const simOrigin = () => new URL(sim.url).origin;
const simRequests = async (): Promise<number> => {
  const s = (await (await fetch(`${simOrigin()}/__sim/stats`)).json()) as { requests: Record<string, number> };
  return Object.values(s.requests).reduce((a, b) => a + b, 0);
};
const fault = async (spec: Record<string, unknown>) => {
  const r = await fetch(`${simOrigin()}/__sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  expect(r.status).toBeLessThan(300);
};
const clearFaults = () => fetch(`${simOrigin()}/__sim/faults`, { method: 'DELETE' });

/** No stack trace, SQL, upstream body or key in what a client gets. */
function expectClean(body: unknown, secrets: string[] = []) {
  const text = JSON.stringify(body);
  expect(text).not.toMatch(/stacktrace|\bat .+:\d+:\d+|\bSELECT\b|\bINSERT\b|\bUPDATE\b|prisma|Sorry about that/i);
  for (const s of [TEST_ADMIN_KEY, ...secrets]) expect(text).not.toContain(s);
}

/** Refused with `code`, the message naming `field`, HTTP status as given (200 for codes without one of their own). */
function expectError(r: GqlResponse, code: string, field: string | null, status: number | number[]) {
  expect(r.errors?.length).toBeGreaterThan(0);
  const e = r.errors![0]!;
  expect(e.extensions?.code).toBe(code);
  if (field) expect(e.message).toContain(field);
  expect(Array.isArray(status) ? status : [status]).toContain(r.status);
  expect(e.extensions).not.toHaveProperty('stacktrace');
  if (r.data) for (const v of Object.values(r.data)) expect(v).toBeNull();
  expectClean(r);
}

/** Every Redis key of the tenant's fast gate (budget, holds, rate buckets, settlement markers) with its content. */
async function redisState(tenantId: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const k of (await redis.keys(`lg:{${tenantId}}:*`)).sort()) {
    const type = await redis.type(k);
    out[k] =
      type === 'hash'
        ? await redis.hgetall(k)
        : type === 'zset'
          ? await redis.call('ZRANGE', k, '0', '-1', 'WITHSCORES')
          : type === 'string'
            ? await redis.get(k)
            : type;
  }
  return out;
}

/** What a refused chat must leave as it was: its before-state, taken by `chatState`. */
const chatState = async (t: Tenant) => ({
  ledger: await db.ledgerEntry.count({ where: { tenantId: t.id } }),
  idempotency: await db.idempotencyKey.count({ where: { tenantId: t.id } }),
  redis: await redisState(t.id),
  upstream: await simRequests(),
});

/** A chat that was refused left no trace: no ledger row, no idempotency key, no Redis change, no upstream call. */
async function expectChatWroteNothing(t: Tenant, before: Awaited<ReturnType<typeof chatState>>) {
  expect(await chatState(t)).toEqual(before);
  expect(before.ledger).toBe(0);
  expect(before.idempotency).toBe(0);
}

const msgs = (n: number, content = 'hi') => Array.from({ length: n }, () => ({ role: 'USER', content }));

describe('chat input validation (mutation over HTTP)', () => {
  let t: Tenant;
  beforeAll(async () => {
    t = await createTenant(app.url);
  });

  // [label, variables, field named in the message, HTTP status]
  const CASES: Array<[string, () => Record<string, unknown>, string, number | number[]]> = [
    ['no messages', () => hello('chat_default', { messages: [] }), 'messages', 200],
    ['257 messages', () => hello('chat_default', { messages: msgs(257) }), 'messages', 200],
    // 256 KB by default: two messages of 131,100 bytes are over it, while the body (~262 KB) is under the HTTP limit.
    ['messages over the size cap', () => hello('chat_default', { messages: msgs(2, 'x'.repeat(131_100)) }), 'messages', 200],
    ['multi-byte messages over the size cap (bytes, not characters)', () => hello('chat_default', { messages: msgs(1, 'é'.repeat(131_100)) }), 'messages', 200],
    ['maxTokens 0', () => hello('chat_default', { maxTokens: 0 }), 'maxTokens', 200],
    ['maxTokens negative', () => hello('chat_default', { maxTokens: -5 }), 'maxTokens', 200],
    ['maxTokens over the fast_classify cap (1024)', () => hello('fast_classify', { maxTokens: 1025 }), 'maxTokens', 200],
    ['maxTokens over the chat_default cap (4096)', () => hello('chat_default', { maxTokens: 4097 }), 'maxTokens', 200],
    ['maxTokens not an integer', () => hello('chat_default', { maxTokens: 1.5 }), 'maxTokens', 400],
    ['temperature -0.1', () => hello('chat_default', { temperature: -0.1 }), 'temperature', 200],
    ['temperature 2.1', () => hello('chat_default', { temperature: 2.1 }), 'temperature', 200],
    ["idempotencyKey ''", () => hello('chat_default', { idempotencyKey: '' }), 'idempotencyKey', 200],
    ['idempotencyKey of 201 characters', () => hello('chat_default', { idempotencyKey: 'k'.repeat(201) }), 'idempotencyKey', 200],
    ['an unknown region', () => hello('chat_default', { region: 'EU_WEST' }), 'region', 400],
    ['an unknown role', () => hello('chat_default', { messages: [{ role: 'FUNCTION', content: 'x' }] }), 'role', 400],
  ];

  it.each(CASES)('%s: BAD_USER_INPUT naming the field, nothing written', async (_label, vars, field, status) => {
    const before = await chatState(t);
    const r = await gql(app.url, t.key, CHAT, vars());
    expectError(r, 'BAD_USER_INPUT', field, status);
    await expectChatWroteNothing(t, before);
  });

  it('an unknown profile: BAD_USER_INPUT listing the valid profiles', async () => {
    const before = await chatState(t);
    const r = await gql(app.url, t.key, CHAT, hello('no_such_profile'));
    expectError(r, 'BAD_USER_INPUT', 'profile', 200);
    for (const p of ['chat_default', 'chat_speed', 'deep_reasoning', 'fast_classify', 'long_form']) expect(r.errors![0]!.message).toContain(p);
    await expectChatWroteNothing(t, before);
  });

  it('the limits themselves pass: 256 messages, maxTokens at the cap, temperature 0 and 2, a 200-character idempotencyKey', async () => {
    const ok = await createTenant(app.url);
    const r1 = await gqlOk(app.url, ok.key, CHAT, hello('fast_classify', { messages: msgs(256), maxTokens: 1024, temperature: 0 }));
    expect(r1.chat.usage.completionTokens).toBeGreaterThan(0);
    const r2 = await gqlOk(app.url, ok.key, CHAT, hello('fast_classify', { maxTokens: 1, temperature: 2, idempotencyKey: 'k'.repeat(200) }));
    expect(r2.chat.usage.completionTokens).toBe(1);
  });

  it('an HTTP body over the limit: PAYLOAD_TOO_LARGE with HTTP 413, nothing written', async () => {
    const before = await chatState(t);
    const res = await fetch(app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.key}` },
      body: JSON.stringify({ query: CHAT, variables: hello('chat_default', { messages: msgs(1, 'x'.repeat(400 * 1024)) }) }),
    });
    expect(res.status).toBe(413);
    const body = (await res.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
    expect(body.errors[0]!.extensions.code).toBe('PAYLOAD_TOO_LARGE');
    expect(body.errors[0]!.message).toMatch(/\d+ bytes/);
    expectClean(body, [t.key]);
    await expectChatWroteNothing(t, before);
  });

  it('a body that is not JSON: 400 BAD_REQUEST, not 500', async () => {
    const res = await fetch(app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.key}` },
      body: '{"query": "{ me { id } }"',
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: Array<{ extensions: { code: string } }> };
    expect(body.errors[0]!.extensions.code).toBe('BAD_REQUEST');
    expectClean(body);
  });
});

describe('chatStream input validation (graphql-ws)', () => {
  let t: Tenant;
  beforeAll(async () => {
    t = await createTenant(app.url);
  });

  const CASES: Array<[string, () => Record<string, unknown>, string]> = [
    ['an idempotencyKey (mutation only)', () => hello('chat_default', { idempotencyKey: 'retry-1' }), 'idempotencyKey'],
    ["idempotencyKey ''", () => hello('chat_default', { idempotencyKey: '' }), 'idempotencyKey'],
    ['idempotencyKey of 201 characters', () => hello('chat_default', { idempotencyKey: 'k'.repeat(201) }), 'idempotencyKey'],
    ['no messages', () => hello('chat_default', { messages: [] }), 'messages'],
    ['257 messages', () => hello('chat_default', { messages: msgs(257) }), 'messages'],
    ['messages over the size cap', () => hello('chat_default', { messages: msgs(2, 'x'.repeat(131_100)) }), 'messages'],
    ['maxTokens over the fast_classify cap', () => hello('fast_classify', { maxTokens: 1025 }), 'maxTokens'],
    ['maxTokens not an integer', () => hello('chat_default', { maxTokens: 2.5 }), 'maxTokens'],
    ['temperature 2.1', () => hello('chat_default', { temperature: 2.1 }), 'temperature'],
    ['an unknown profile', () => hello('nope'), 'profile'],
  ];

  it.each(CASES)('%s: the subscription ends with BAD_USER_INPUT naming the field, nothing written', async (_label, vars, field) => {
    const before = await chatState(t);
    const { events, error } = await subscribeAll(track(wsClient(app.url, t.key)), CHAT_STREAM, vars());
    expect(events).toEqual([]);
    expect(Array.isArray(error)).toBe(true);
    expect(error[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(error[0].message).toContain(field);
    expectClean(error, [t.key]);
    await expectChatWroteNothing(t, before);
  });
});

describe('graphql-ws message size', () => {
  it('a message over 1 MB closes that socket with 1009 (too big); the server keeps serving', async () => {
    const t = await createTenant(app.url);
    const { events, error } = await subscribeAll(
      track(wsClient(app.url, t.key)),
      CHAT_STREAM,
      hello('chat_default', { messages: msgs(1, 'x'.repeat(1_100_000)) }),
    );
    expect(events).toEqual([]);
    expect((error as { code?: number }).code).toBe(1009);
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(0);
    expect((await subscribeAll(track(wsClient(app.url, t.key)), '{ me { id } }', {})).events).toEqual([{ me: { id: t.id } }]);
  });
});

describe('admin input validation', () => {
  let t: Tenant;
  const BUDGET = `mutation Budget($tenantId: ID!, $monthlyBudgetUsd: Usd) { setTenantBudget(tenantId: $tenantId, monthlyBudgetUsd: $monthlyBudgetUsd) { monthlyBudgetUsd } }`;
  const CREATE = `mutation Create($input: CreateTenantInput!) { createTenant(input: $input) { tenant { id } apiKey { key } } }`;
  const PRICE = `mutation Price($model: ID!, $outputUsdPerMillion: Usd!, $inputUsdPerMillion: Usd) { setModelPrice(model: $model, outputUsdPerMillion: $outputUsdPerMillion, inputUsdPerMillion: $inputUsdPerMillion) { id } }`;
  const LIMITS = `mutation Limits($tenantId: ID!, $requestsPerMinute: Int, $tokensPerMinute: Int) { setTenantLimits(tenantId: $tenantId, requestsPerMinute: $requestsPerMinute, tokensPerMinute: $tokensPerMinute) { id } }`;
  const BAD_USD: Array<[string, unknown]> = [
    ['more than six decimals', '1.0000001'],
    ['negative', '-1'],
    ['exponent notation', '1e3'],
    ['empty', ''],
    ['not a number', 'ten'],
    ['a JSON number', 1],
    ['a JSON float', 0.5],
  ];

  beforeAll(async () => {
    t = await createTenant(app.url, { monthlyBudgetUsd: '5', requestsPerMinute: 50, tokensPerMinute: 5000 });
  });

  /** The tenant's row and its audit trail, which a refused change must leave as they were. */
  const tenantState = async () => ({
    row: await db.tenant.findUnique({
      where: { id: t.id },
      select: { monthlyBudgetMicros: true, requestsPerMinute: true, tokensPerMinute: true, updatedAt: true },
    }),
    audit: await db.auditEntry.count({ where: { tenantId: t.id } }),
    keys: await db.apiKey.count({ where: { tenantId: t.id } }),
    overrides: await db.profileOverride.count({ where: { tenantId: t.id } }),
  });
  const priceState = async () => ({
    model: await db.model.findUnique({ where: { id: 'glm-5' } }),
    history: await db.modelPrice.count({ where: { modelId: 'glm-5' } }),
    audit: await db.auditEntry.count({ where: { targetType: 'model', targetId: 'glm-5' } }),
  });

  it.each(BAD_USD)('setTenantBudget with a Usd %s: BAD_USER_INPUT naming monthlyBudgetUsd, budget unchanged', async (_label, value) => {
    const before = await tenantState();
    const r = await gql(app.url, TEST_ADMIN_KEY, BUDGET, { tenantId: t.id, monthlyBudgetUsd: value });
    expectError(r, 'BAD_USER_INPUT', 'monthlyBudgetUsd', [200, 400]);
    expect(await tenantState()).toEqual(before);
    expect(before.row?.monthlyBudgetMicros).toBe(5_000_000n);
  });

  it('setTenantBudget with the argument left out: BAD_USER_INPUT (only an explicit null removes the budget)', async () => {
    const before = await tenantState();
    expectError(
      await gql(app.url, TEST_ADMIN_KEY, `mutation($tenantId: ID!) { setTenantBudget(tenantId: $tenantId) { id } }`, { tenantId: t.id }),
      'BAD_USER_INPUT',
      'monthlyBudgetUsd',
      200,
    );
    expect(await tenantState()).toEqual(before);
  });

  it.each(BAD_USD)('createTenant with a Usd %s: BAD_USER_INPUT naming monthlyBudgetUsd, no tenant created', async (_label, value) => {
    const name = uniqueName('badusd');
    const r = await gql(app.url, TEST_ADMIN_KEY, CREATE, { input: { name, monthlyBudgetUsd: value } });
    expectError(r, 'BAD_USER_INPUT', 'monthlyBudgetUsd', [200, 400]);
    expect(await db.tenant.count({ where: { name } })).toBe(0);
  });

  it.each(BAD_USD)('setModelPrice with a Usd %s: BAD_USER_INPUT naming the price, price and history unchanged', async (_label, value) => {
    const before = await priceState();
    expectError(await gql(app.url, TEST_ADMIN_KEY, PRICE, { model: 'glm-5', outputUsdPerMillion: value }), 'BAD_USER_INPUT', 'outputUsdPerMillion', [200, 400]);
    expectError(
      await gql(app.url, TEST_ADMIN_KEY, PRICE, { model: 'glm-5', outputUsdPerMillion: '1.92', inputUsdPerMillion: value }),
      'BAD_USER_INPUT',
      'inputUsdPerMillion',
      [200, 400],
    );
    expect(await priceState()).toEqual(before);
    expect(before.model?.outputMicrosPerMillion).toBe(1_920_000n);
  });

  it.each([
    ['requestsPerMinute', 0],
    ['requestsPerMinute', -1],
    ['tokensPerMinute', 0],
    ['tokensPerMinute', -100],
  ])('createTenant and setTenantLimits with %s %d: BAD_USER_INPUT naming it, nothing written', async (field, value) => {
    const name = uniqueName('badlimit');
    expectError(await gql(app.url, TEST_ADMIN_KEY, CREATE, { input: { name, [field]: value } }), 'BAD_USER_INPUT', field, 200);
    expect(await db.tenant.count({ where: { name } })).toBe(0);
    const before = await tenantState();
    expectError(await gql(app.url, TEST_ADMIN_KEY, LIMITS, { tenantId: t.id, [field]: value }), 'BAD_USER_INPUT', field, 200);
    expect(await tenantState()).toEqual(before);
  });

  it.each([[''], ['   '], ['a/b'], ['x'.repeat(101)]])('createTenant with the name %j: BAD_USER_INPUT naming name, no tenant created', async (name) => {
    expectError(await gql(app.url, TEST_ADMIN_KEY, CREATE, { input: { name } }), 'BAD_USER_INPUT', 'name', 200);
    expect(await db.tenant.count({ where: { name: { in: [name, name.trim()] } } })).toBe(0);
  });

  it('createTenant with a taken name: CONFLICT, still one tenant of that name', async () => {
    const name = uniqueName('taken');
    await gqlOk(app.url, TEST_ADMIN_KEY, CREATE, { input: { name } });
    const audits = () => db.auditEntry.count({ where: { action: 'createTenant', newValue: { path: ['name'], equals: name } } });
    expect(await audits()).toBe(1);
    const r = await gql(app.url, TEST_ADMIN_KEY, CREATE, { input: { name, monthlyBudgetUsd: '1' } });
    expectError(r, 'CONFLICT', name, 200);
    const rows = await db.tenant.findMany({ where: { name } });
    expect(rows).toHaveLength(1);
    expect(rows[0]!.monthlyBudgetMicros).toBeNull(); // the first tenant, not overwritten
    expect(await audits()).toBe(1);
  });

  it('setProfileOverride with an unknown profile, model or fallback: BAD_USER_INPUT naming it, no override written', async () => {
    const set = `mutation($t: ID!, $p: String!, $m: String!, $f: [String!]) { setProfileOverride(tenantId: $t, profile: $p, model: $m, fallbacks: $f) { model } }`;
    const before = await tenantState();
    const p = await gql(app.url, TEST_ADMIN_KEY, set, { t: t.id, p: 'nope', m: 'glm-5' });
    expectError(p, 'BAD_USER_INPUT', 'profile', 200);
    for (const name of ['chat_default', 'chat_speed', 'deep_reasoning', 'fast_classify', 'long_form']) expect(p.errors![0]!.message).toContain(name);
    expectError(await gql(app.url, TEST_ADMIN_KEY, set, { t: t.id, p: 'chat_default', m: 'gpt-99' }), 'BAD_USER_INPUT', 'model', 200);
    expectError(await gql(app.url, TEST_ADMIN_KEY, set, { t: t.id, p: 'chat_default', m: 'glm-5', f: ['gpt-99'] }), 'BAD_USER_INPUT', 'fallbacks', 200);
    // A chain names each model once, and at most ten fallbacks.
    expectError(
      await gql(app.url, TEST_ADMIN_KEY, set, { t: t.id, p: 'chat_default', m: 'glm-5', f: ['qwen3-8b', 'glm-5'] }),
      'BAD_USER_INPUT',
      'fallbacks',
      200,
    );
    const eleven = [
      'step-3.5-flash',
      'deepseek-v4-flash',
      'hunyuan-turbos',
      'qwen3-8b',
      'qwen3-32b',
      'doubao-seed-lite',
      'hunyuan-turbo',
      'glm-4-32b',
      'qwen3.5-27b',
      'deepseek-v4-pro',
      'minimax-m2.5',
    ];
    expectError(await gql(app.url, TEST_ADMIN_KEY, set, { t: t.id, p: 'chat_default', m: 'glm-5', f: eleven }), 'BAD_USER_INPUT', 'fallbacks', 200);
    expect(await tenantState()).toEqual(before);
  });

  describe('unknown ids', () => {
    const MISSING = '00000000-0000-4000-8000-000000000000';
    const ops: Array<[string, string, (id: string) => Record<string, unknown>]> = [
      ['tenant', `query($id: ID!) { tenant(id: $id) { id } }`, (id) => ({ id })],
      ['setTenantBudget', `mutation($id: ID!) { setTenantBudget(tenantId: $id, monthlyBudgetUsd: "1") { id } }`, (id) => ({ id })],
      ['setTenantLimits', `mutation($id: ID!) { setTenantLimits(tenantId: $id, requestsPerMinute: 5) { id } }`, (id) => ({ id })],
      ['setProfileOverride', `mutation($id: ID!) { setProfileOverride(tenantId: $id, profile: "chat_default", model: "glm-5") { model } }`, (id) => ({ id })],
      ['removeProfileOverride', `mutation($id: ID!) { removeProfileOverride(tenantId: $id, profile: "chat_default") }`, (id) => ({ id })],
      ['createApiKey', `mutation($id: ID!) { createApiKey(tenantId: $id) { id key } }`, (id) => ({ id })],
      ['revokeApiKey', `mutation($id: ID!) { revokeApiKey(id: $id) }`, (id) => ({ id })],
    ];
    it.each(ops)('%s of an unknown id (a UUID, and not a UUID): NOT_FOUND, nothing written', async (_name, doc, vars) => {
      for (const id of [MISSING, 'not-a-uuid']) {
        const r = await gql(app.url, TEST_ADMIN_KEY, doc, vars(id));
        expectError(r, 'NOT_FOUND', id, 200);
      }
      expect(await db.tenant.count({ where: { id: MISSING } })).toBe(0);
      expect(await db.apiKey.count({ where: { OR: [{ tenantId: MISSING }, { id: MISSING }] } })).toBe(0);
      expect(await db.profileOverride.count({ where: { tenantId: MISSING } })).toBe(0);
      expect(
        await db.auditEntry.count({
          where: { OR: [{ tenantId: MISSING }, { targetId: { in: [MISSING, 'not-a-uuid'] } }, { targetId: { startsWith: 'not-a-uuid' } }] },
        }),
      ).toBe(0);
    });

    it('setModelPrice of an unknown model: NOT_FOUND, no price written', async () => {
      expectError(await gql(app.url, TEST_ADMIN_KEY, PRICE, { model: 'gpt-99', outputUsdPerMillion: '1' }), 'NOT_FOUND', 'gpt-99', 200);
      expect(await db.modelPrice.count({ where: { modelId: 'gpt-99' } })).toBe(0);
      expect(await db.model.count({ where: { id: 'gpt-99' } })).toBe(0);
      expect(await db.auditEntry.count({ where: { targetId: 'gpt-99' } })).toBe(0);
    });
  });
});

describe('gate refusals', () => {
  it('RATE_LIMITED with HTTP 429 and retryAfterMs, for the mutation and for chatStream; nothing written by the refused ones', async () => {
    const t = await createTenant(app.url, { requestsPerMinute: 1 });
    await gqlOk(app.url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }));
    const before = await simRequests();
    const r = await gql(app.url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }));
    expectError(r, 'RATE_LIMITED', null, 429);
    const retry = r.errors![0]!.extensions!.retryAfterMs as number;
    expect(Number.isInteger(retry)).toBe(true);
    expect(retry).toBeGreaterThan(0);
    expect(retry).toBeLessThanOrEqual(61_000); // the rolling window's one-second buckets: 60 to 61 s

    const { events, error } = await subscribeAll(track(wsClient(app.url, t.key)), CHAT_STREAM, hello('fast_classify', { maxTokens: 5 }));
    expect(events).toEqual([]);
    expect(error[0].extensions.code).toBe('RATE_LIMITED');
    expect(error[0].extensions.retryAfterMs).toBeGreaterThan(0);
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(1);
    expect(await simRequests()).toBe(before);

    const metrics = await (await fetch(new URL(app.url).origin + '/metrics')).text();
    expect(Number(metrics.match(/^gateway_limiter_denials_total\{reason="RATE_LIMITED"\} (\d+)/m)?.[1])).toBeGreaterThanOrEqual(2);
  });

  it('BUDGET_EXCEEDED carries remainingUsd; nothing written', async () => {
    const t = await createTenant(app.url, { monthlyBudgetUsd: '0.000001' });
    const before = await simRequests();
    const r = await gql(app.url, t.key, CHAT, hello());
    expectError(r, 'BUDGET_EXCEEDED', null, 200);
    expect(r.errors![0]!.extensions!.remainingUsd).toBe('0.000001');
    expect(await db.ledgerEntry.count({ where: { tenantId: t.id } })).toBe(0);
    expect(await simRequests()).toBe(before);
  });

  describe('a chain that fails before any content', () => {
    afterEach(() => clearFaults());

    it('the mutation: UPSTREAM_UNAVAILABLE with the attempts, no upstream body', async () => {
      const t = await createTenant(app.url);
      await fault({ model: 'qwen3-8b', fault: 'http_500', times: 1 });
      const r = await gql(app.url, t.key, CHAT, hello('fast_classify'));
      expectError(r, 'UPSTREAM_UNAVAILABLE', null, 200);
      expect(r.errors![0]!.extensions!.attempts).toEqual([expect.objectContaining({ model: 'qwen3-8b', ok: false, error: 'HTTP_500' })]);
    });

    it('chatStream: ends with the error UPSTREAM_UNAVAILABLE (attempts in its extensions) and no done event', async () => {
      const t = await createTenant(app.url);
      await fault({ model: 'qwen3-8b', fault: 'http_500', times: 1 });
      const { events, error } = await subscribeAll(track(wsClient(app.url, t.key)), CHAT_STREAM, hello('fast_classify'));
      expect(events).toEqual([]);
      expect(error[0].extensions.code).toBe('UPSTREAM_UNAVAILABLE');
      expect(error[0].extensions.attempts).toEqual([expect.objectContaining({ model: 'qwen3-8b', ok: false, error: 'HTTP_500' })]);
      expectClean(error, [t.key]);
    });
  });
});

describe('masking', () => {
  const SECRET = `relation "tenants" SELECT * FROM api_keys WHERE hash = 'lgw_SECRETSECRET' at Object.<anonymous> (/work/main/src/x.ts:1:1)`;

  /** Replaces one method of a live service for the duration of `run`: the unexpected failure a bug would cause. */
  async function withFault<T>(target: object, method: string, impl: unknown, run: () => Promise<T>): Promise<T> {
    const o = target as Record<string, unknown>;
    const original = o[method];
    o[method] = impl;
    try {
      return await run();
    } finally {
      o[method] = original;
    }
  }

  it('an unexpected error in a resolver: INTERNAL_SERVER_ERROR (500) with an errorId, none of its text', async () => {
    const t = await createTenant(app.url);
    const r = await withFault(
      app.services.tenantReader,
      'view',
      async () => {
        throw new Error(SECRET);
      },
      () => gql(app.url, t.key, `query { me { id } }`),
    );
    expect(r.status).toBe(500);
    const e = r.errors![0]!;
    expect(e.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR', errorId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(e.message).toContain(e.extensions!.errorId as string);
    expect(JSON.stringify(r)).not.toContain('SECRET');
    expectClean(r, ['lgw_SECRETSECRET']);
  });

  it('an unexpected error in a stream: the same mask over graphql-ws', async () => {
    const t = await createTenant(app.url);
    const { events, error } = await withFault(
      app.services.chat,
      'stream',
      // eslint-disable-next-line require-yield -- a stream that fails before its first event
      async function* () {
        throw new Error(SECRET);
      },
      () => subscribeAll(track(wsClient(app.url, t.key)), CHAT_STREAM, hello()),
    );
    expect(events).toEqual([]);
    expect(error[0].extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR', errorId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(JSON.stringify(error)).not.toContain('SECRET');
  });

  it('the auth backend failing: SERVICE_UNAVAILABLE (503), not 500, and none of its text', async () => {
    const t = await createTenant(app.url);
    const r = await withFault(
      app.services.auth,
      'authenticate',
      async () => {
        throw new Error(`connect ECONNREFUSED 127.0.0.1:5432 ${SECRET}`);
      },
      () => gql(app.url, t.key, `query { me { id } }`),
    );
    expectError(r, 'SERVICE_UNAVAILABLE', null, 503);
    expect(JSON.stringify(r)).not.toMatch(/SECRET|ECONNREFUSED/);
  });
});

describe('graphql-armor and the HTTP transport', () => {
  let t: Tenant;
  beforeAll(async () => {
    t = await createTenant(app.url);
  });

  const nest = (levels: number) => `{ __type(name: "Query") { fields { type { ${'ofType { '.repeat(levels)}name${' }'.repeat(levels)} } } } }`;
  const aliases = (n: number, field = 'me { id }') => `{ ${Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join(' ')} }`;
  const FRAGMENT = 'fragment F on Query { models { id name provider outputUsdPerMillion inputUsdPerMillion ttftMs tokensPerSecond } }';
  const costly = (spreads: number) => `{ ${Array.from({ length: spreads }, () => '...F').join(' ')} } ${FRAGMENT}`;
  const tokens = (n: number) => `{ ${Array.from({ length: n }, () => '__typename').join(' ')} }`;
  // About 1,860 tokens in one field: a long list argument (8 tokens an entry; commas are not tokens).
  const manyTokens = `{ costProjection(monthlyOutputTokens: 1, mix: [${Array.from({ length: 230 }, () => '{ model: "qwen3-8b", share: 0 }').join(', ')}]) { totalUsd } }`;
  const directives = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: __typename @include(if: true)`).join(' ')} }`;

  // [label, refused document, a document just inside the limit, code, message pattern]
  const LIMITS: Array<[string, string, string, string, RegExp]> = [
    ['depth over 12', nest(11), nest(8), 'GRAPHQL_VALIDATION_FAILED', /depth limit of 12/i],
    ['more than 15 aliases', aliases(16), aliases(15), 'GRAPHQL_VALIDATION_FAILED', /aliases limit of 15/i],
    ['cost over 5000', costly(300), costly(50), 'GRAPHQL_VALIDATION_FAILED', /cost limit of 5000/i],
    ['more than 2000 tokens', tokens(2100), manyTokens, 'GRAPHQL_PARSE_FAILED', /2000 tokens/i],
    ['more than 20 directives', directives(21), directives(20), 'GRAPHQL_VALIDATION_FAILED', /directives limit of 20/i],
  ];

  it.each(LIMITS)('%s: refused over HTTP with 400 (never 500), while a document inside the limit is executed', async (_label, bad, good, code, pattern) => {
    const r = await gql(app.url, t.key, bad);
    expect(r.status).toBe(400);
    expect(r.errors?.[0]?.extensions?.code).toBe(code);
    expect(r.errors?.[0]?.message).toMatch(pattern);
    expect(r.data ?? null).toBeNull();
    const ok = await gql(app.url, t.key, good);
    expect(ok.status).toBe(200);
    // Executed: data, or at most a resolver's own verdict on the values (the projection's shares), never a document error.
    for (const e of ok.errors ?? []) expect(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED']).not.toContain(e.extensions?.code);
  });

  it.each(LIMITS)('%s: refused over graphql-ws too, with the same code', async (_label, bad, _good, code, pattern) => {
    const { events, error } = await subscribeAll(track(wsClient(app.url, t.key)), bad, {});
    expect(events).toEqual([]);
    expect(error?.[0]?.extensions?.code).toBe(code);
    expect(error?.[0]?.message).toMatch(pattern);
  });

  it('a chatStream over the alias limit is refused before it reaches the upstream or the ledger', async () => {
    const before = await chatState(t);
    const doc = `subscription($input: ChatInput!) { chatStream(input: $input) { ${Array.from({ length: 16 }, (_, i) => `d${i}: delta`).join(' ')} } }`;
    const { events, error } = await subscribeAll(track(wsClient(app.url, t.key)), doc, hello());
    expect(events).toEqual([]);
    expect(error?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    await expectChatWroteNothing(t, before);
  });

  it('batching is off: an array body is refused with 400, and none of its operations runs', async () => {
    const before = await chatState(t);
    const res = await fetch(app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.key}` },
      body: JSON.stringify([{ query: CHAT, variables: hello() }, { query: '{ me { id } }' }]),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
    expect(body.errors[0]!.extensions.code).toBe('BAD_REQUEST');
    expect(body.errors[0]!.message).toMatch(/batching/i);
    await expectChatWroteNothing(t, before);
  });

  it('CSRF prevention: a simple GET or form post without Authorization is refused with 400; with Authorization (which a browser sends cross-site only after a preflight) or the preflight header it runs', async () => {
    const url = `${app.url}?query=${encodeURIComponent('{ me { id } }')}`;
    const blocked = await fetch(url);
    expect(blocked.status).toBe(400);
    const body = (await blocked.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
    expect(body.errors[0]!.extensions.code).toBe('BAD_REQUEST');
    expect(body.errors[0]!.message).toMatch(/CSRF/);
    // A form post is a "simple" request too.
    const form = await fetch(app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'query=%7B%20me%20%7B%20id%20%7D%20%7D',
    });
    expect(form.status).toBe(400);
    // urql's default: a GET with no content type, carrying the key.
    const withKey = await fetch(url, { headers: { authorization: `Bearer ${t.key}` } });
    expect(withKey.status).toBe(200);
    expect(((await withKey.json()) as { data: { me: { id: string } } }).data.me.id).toBe(t.id);
    const allowed = await fetch(url, { headers: { authorization: `Bearer ${t.key}`, 'apollo-require-preflight': 'true' } });
    expect(allowed.status).toBe(200);
  });

  it('a mutation over GET is refused (405), never run', async () => {
    const before = await chatState(t);
    const url = `${app.url}?query=${encodeURIComponent(CHAT)}&variables=${encodeURIComponent(JSON.stringify(hello()))}`;
    const res = await fetch(url, { headers: { authorization: `Bearer ${t.key}`, 'apollo-require-preflight': 'true' } });
    expect(res.status).toBe(405);
    await expectChatWroteNothing(t, before);
  });
});

describe('introspection and field suggestions', () => {
  let prod: App;
  let t: Tenant;
  beforeAll(async () => {
    prod = await startApp({ NODE_ENV: 'production' }, sim);
    t = await createTenant(app.url);
  });
  afterAll(async () => {
    await prod?.stop();
  });
  const INTROSPECT = '{ __schema { queryType { name } } }';

  it('outside production both work (the control for the tests below)', async () => {
    expect((await gqlOk(app.url, t.key, INTROSPECT)).__schema.queryType.name).toBe('Query');
    expect((await subscribeAll(track(wsClient(app.url, t.key)), INTROSPECT, {})).events).toEqual([{ __schema: { queryType: { name: 'Query' } } }]);
    expect((await gql(app.url, t.key, '{ mee { id } }')).errors?.[0]?.message).toMatch(/Did you mean "me"/);
  });

  it('NODE_ENV=production: introspection is refused over HTTP (400) and over graphql-ws', async () => {
    const r = await gql(prod.url, t.key, INTROSPECT);
    expect(r.status).toBe(400);
    expect(r.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(r.errors?.[0]?.message).toMatch(/introspection/i);
    const typeQuery = await gql(prod.url, t.key, '{ __type(name: "Tenant") { fields { name } } }');
    expect(typeQuery.status).toBe(400);
    const ws = await subscribeAll(track(wsClient(prod.url, t.key)), INTROSPECT, {});
    expect(ws.events).toEqual([]);
    expect(ws.error?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(ws.error?.[0]?.message).toMatch(/introspection/i);
    // Ordinary queries still work in production.
    expect((await gqlOk(prod.url, t.key, '{ me { id } }')).me.id).toBe(t.id);
  });

  it('NODE_ENV=production: no field suggestions over HTTP or graphql-ws', async () => {
    const r = await gql(prod.url, t.key, '{ mee { id } }');
    expect(r.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(r.errors?.[0]?.message).not.toMatch(/Did you mean/);
    const ws = await subscribeAll(track(wsClient(prod.url, t.key)), '{ mee { id } }', {});
    expect(ws.error?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(ws.error?.[0]?.message).not.toMatch(/Did you mean/);
  });
});
