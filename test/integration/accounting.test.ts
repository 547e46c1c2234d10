import { spawn } from 'node:child_process';
import Redis from 'ioredis';
import type { App } from '../../src/app';
import { createPrisma } from '../../src/infra/prisma';
import { makeLimiter } from '../../src/limits';
import { monthOf } from '../../src/accounting/period';
import { makeIdempotency } from '../../src/chat/idempotency';
import type { Simulator } from '../../src/simulator/server';
import { TEST_DATABASE_URL } from '../support/env';
import { testRedis } from '../support/test-redis';
import { CHAT, CHAT_STREAM, createTenant, gql, gqlOk, hello, startApp, subscribeAll, TEST_ADMIN_KEY, wsClient } from '../support/app';
import { addSimFault, simAdmin as simAdminOf, twoInstanceSuite } from '../support/suite';
import { until as waitUntil } from '../support/wait';

/**
 * The accounting promises, proved on two app instances sharing the real Postgres and Redis: budgets that never
 * overspend under concurrency, limits that hold across instances, no leaked holds, Redis spend equal to the ledger.
 */
const db = createPrisma(TEST_DATABASE_URL, { max: 4 });
const redis = testRedis();
const limiter = makeLimiter(redis);
let sim: Simulator;
let a: App;
let b: App;
const simAdmin = () => simAdminOf(sim);

const fault = (body: Record<string, unknown>) => addSimFault(sim, body);
const simStats = async () =>
  (await (await fetch(`${simAdmin()}/__sim/stats`)).json()) as { requests: Record<string, number>; openStreams: number; abortedByClient: number };

async function override(tenantId: string, profile: string, model: string, fallbacks: string[] | null) {
  await gqlOk(
    a.url,
    TEST_ADMIN_KEY,
    `mutation($t: ID!, $p: String!, $m: String!, $f: [String!]) { setProfileOverride(tenantId: $t, profile: $p, model: $m, fallbacks: $f) { model } }`,
    { t: tenantId, p: profile, m: model, f: fallbacks },
  );
}

async function ledgerSum(tenantId: string) {
  const r = await db.ledgerEntry.aggregate({ where: { tenantId }, _sum: { costMicros: true }, _count: true });
  return { sum: r._sum.costMicros ?? 0n, count: r._count };
}

async function gateState(tenantId: string) {
  const s = await limiter.budgetState(tenantId, monthOf(new Date()));
  if (!s) throw new Error('no budget state in Redis');
  return s;
}

const instances = twoInstanceSuite({ IDLE_TIMEOUT_MS: '400' });
beforeAll(async () => void ({ sim, a, b } = await instances.start()));
afterAll(async () => {
  await db.$disconnect();
  redis.disconnect();
});

test('budget $0.001 on glm-5 at 150 tokens: of 200 concurrent chats on two instances exactly 3 succeed, 864 micro-dollars, no hold left', async () => {
  const t = await createTenant(a.url, { monthlyBudgetUsd: '0.001' });
  await override(t.id, 'chat_default', 'glm-5', []);
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => gql((i % 2 ? a : b).url, t.key, CHAT, hello('chat_default', { maxTokens: 150 }))));
  const ok = results.filter((r) => !r.errors);
  const denied = results.filter((r) => r.errors?.[0]?.extensions?.code === 'BUDGET_EXCEEDED');
  expect(ok).toHaveLength(3);
  expect(denied).toHaveLength(197);
  for (const r of ok) expect((r.data as any).chat.usage).toMatchObject({ completionTokens: 150, costUsd: '0.000288', source: 'PROVIDER' });
  expect(denied[0]!.errors![0]!.extensions!.remainingUsd).toMatch(/^0\.000\d{3}$/);
  const { sum, count } = await ledgerSum(t.id);
  expect(count).toBe(3); // a rejected request writes no ledger row
  expect(sum).toBe(864n);
  const gate = await gateState(t.id);
  expect(gate).toEqual({ spentMicros: 864n, heldMicros: 0n });
  const me = await gqlOk(b.url, t.key, `{ me { spentThisMonthUsd heldUsd remainingThisMonthUsd monthlyBudgetUsd } }`);
  expect(me.me).toEqual({ spentThisMonthUsd: '0.000864', heldUsd: '0.000000', remainingThisMonthUsd: '0.000136', monthlyBudgetUsd: '0.001000' });
});

test('10 requests a minute hold across two instances: 30 concurrent chats, exactly 10 succeed', async () => {
  const t = await createTenant(a.url, { requestsPerMinute: 10 });
  const started = Date.now();
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => gql((i % 2 ? a : b).url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }))));
  expect(Date.now() - started).toBeLessThan(5000);
  expect(results.filter((r) => !r.errors)).toHaveLength(10);
  const limited = results.filter((r) => r.errors?.[0]?.extensions?.code === 'RATE_LIMITED');
  expect(limited).toHaveLength(20);
  for (const r of limited) {
    expect(r.status).toBe(429);
    expect(r.errors![0]!.extensions!.retryAfterMs).toBeGreaterThan(0);
  }
  expect((await ledgerSum(t.id)).count).toBe(10);
});

test('after successes, upstream 5xx, cuts, client aborts and stalls: held is 0 and Redis spent equals the ledger sum', async () => {
  const t = await createTenant(a.url, { monthlyBudgetUsd: '100' });
  await override(t.id, 'chat_default', 'deepseek-v4-flash', ['qwen3-32b']);
  const run = (app: App) => gqlOk(app.url, t.key, CHAT, hello('chat_default', { maxTokens: 40 }));
  await run(a);
  await fault({ model: 'deepseek-v4-flash', fault: 'http_500', times: 1 });
  const fb = await run(b);
  expect(fb.chat.model).toBe('qwen3-32b');
  expect(fb.chat.attempts.map((x: any) => [x.model, x.ok, x.error])).toEqual([
    ['deepseek-v4-flash', false, 'HTTP_500'],
    ['qwen3-32b', true, null],
  ]);
  // A cut on a stream: no fallback after content, billed as delivered.
  await fault({ model: 'deepseek-v4-flash', fault: 'cut', afterTokens: 20, times: 1 });
  const ws = wsClient(a.url, t.key);
  const cut = await subscribeAll(ws, CHAT_STREAM, hello('chat_default', { maxTokens: 40 }));
  expect(cut.error).toBeNull();
  const done = cut.events.at(-1).chatStream;
  expect(done).toMatchObject({ done: true, outcome: 'UPSTREAM_INTERRUPTED', usage: { completionTokens: 20, source: 'ESTIMATED' } });
  // A stall after content ends as TIMEOUT after the idle deadline.
  await fault({ model: 'deepseek-v4-flash', fault: 'stall', afterTokens: 5, delayMs: 3000, times: 1 });
  const stall = await subscribeAll(ws, CHAT_STREAM, hello('chat_default', { maxTokens: 40 }));
  expect(stall.events.at(-1).chatStream).toMatchObject({ done: true, outcome: 'TIMEOUT', usage: { completionTokens: 5 } });
  // A cut in the mutation falls back and bills the consumed tokens of both attempts.
  await fault({ model: 'deepseek-v4-flash', fault: 'cut', afterTokens: 10, times: 1 });
  const cutMut = await run(b);
  expect(cutMut.chat.model).toBe('qwen3-32b');
  expect(cutMut.chat.usage.completionTokens).toBe(10 + 40);
  // A client that goes away mid-stream.
  await fault({ model: 'deepseek-v4-flash', fault: 'stall', afterTokens: 3, delayMs: 2000, times: 1 });
  await new Promise<void>((resolve) => {
    let n = 0;
    const unsubscribe = ws.subscribe(
      { query: CHAT_STREAM, variables: hello('chat_default', { maxTokens: 40 }) },
      { next: () => ++n === 2 && (unsubscribe(), resolve()), error: () => resolve(), complete: () => resolve() },
    );
  });
  await ws.dispose();
  // Whole chain down: settled at zero as FAILED.
  await fault({ model: '*', fault: 'http_503', times: 2 });
  const down = await gql(a.url, t.key, CHAT, hello('chat_default', { maxTokens: 40 }));
  expect(down.errors?.[0]?.extensions?.code).toBe('UPSTREAM_UNAVAILABLE');
  expect(down.errors?.[0]?.extensions?.attempts).toHaveLength(2);

  await waitFor(async () => (await db.ledgerEntry.count({ where: { tenantId: t.id, state: 'HELD' } })) === 0);
  const rows = await db.ledgerEntry.findMany({ where: { tenantId: t.id }, orderBy: { startedAt: 'asc' } });
  expect(rows.map((r) => r.outcome)).toEqual(['COMPLETED', 'COMPLETED', 'UPSTREAM_INTERRUPTED', 'TIMEOUT', 'COMPLETED', 'CLIENT_CANCELLED', 'FAILED']);
  expect(rows.at(-1)!.costMicros).toBe(0n);
  expect(rows.find((r) => r.outcome === 'CLIENT_CANCELLED')!.completionTokens).toBeGreaterThanOrEqual(2);
  const { sum } = await ledgerSum(t.id);
  expect(sum).toBeGreaterThan(0n);
  expect(await gateState(t.id)).toEqual({ spentMicros: sum, heldMicros: 0n });
});

test('a mutation falls back after a cut only when the budget covers the consumed tokens too; otherwise BUDGET_EXCEEDED, charged what it used', async () => {
  // One attempt's worst case: 40 tokens at qwen3-32b's $0.28/M = 12 micro-dollars. A cut after 10 deepseek-v4-flash
  // tokens consumed ceil(10 x 0.25) = 3 more, so the fallback needs 15.
  const run = async (budget: string) => {
    const t = await createTenant(a.url, { monthlyBudgetUsd: budget });
    await override(t.id, 'chat_default', 'deepseek-v4-flash', ['qwen3-32b']);
    await fault({ model: 'deepseek-v4-flash', fault: 'cut', afterTokens: 10, times: 1 });
    const r = await gql(a.url, t.key, CHAT, hello('chat_default', { maxTokens: 40 }));
    const row = await db.ledgerEntry.findFirstOrThrow({ where: { tenantId: t.id } });
    return { t, r, row };
  };
  const fits = await run('0.000015');
  expect(fits.r.errors).toBeUndefined();
  expect((fits.r.data as any).chat.usage).toMatchObject({ completionTokens: 50, costUsd: '0.000015' });
  expect(fits.row.holdMicros).toBe(15n); // the extension is recorded, so a reseed would restore it
  expect(await gateState(fits.t.id)).toEqual({ spentMicros: 15n, heldMicros: 0n });

  const short = await run('0.000014');
  expect(short.r.errors?.[0]?.extensions?.code).toBe('BUDGET_EXCEEDED');
  expect(short.row).toMatchObject({ outcome: 'FAILED', costMicros: 3n, completionTokens: 10, holdMicros: 12n });
  expect(await gateState(short.t.id)).toEqual({ spentMicros: 3n, heldMicros: 0n });
});

test('idempotency: 10 concurrent retries with one key give one ledger row and identical answers; other input is a mismatch; other tenants do not share keys', async () => {
  const t = await createTenant(a.url);
  const other = await createTenant(a.url);
  const input = hello('chat_speed', { maxTokens: 30, idempotencyKey: 'order-42' });
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => gqlOk((i % 2 ? a : b).url, t.key, CHAT, input)));
  const first = JSON.stringify(results[0]);
  for (const r of results) expect(JSON.stringify(r)).toBe(first);
  expect((await ledgerSum(t.id)).count).toBe(1);
  const mismatch = await gql(a.url, t.key, CHAT, hello('chat_speed', { maxTokens: 31, idempotencyKey: 'order-42' }));
  expect(mismatch.errors?.[0]?.extensions?.code).toBe('IDEMPOTENCY_MISMATCH');
  const theirs = await gqlOk(b.url, other.key, CHAT, input);
  expect(theirs.chat.requestId).not.toBe(results[0]!.chat.requestId);
  expect((await ledgerSum(t.id)).count).toBe(1);
  expect((await ledgerSum(other.id)).count).toBe(1);
});

test('a failed first request with nothing charged releases its idempotency key', async () => {
  const t = await createTenant(a.url);
  await override(t.id, 'chat_speed', 'step-3.5-flash', []);
  await fault({ model: 'step-3.5-flash', fault: 'http_503', times: 1 });
  const input = hello('chat_speed', { maxTokens: 10, idempotencyKey: 'retry-me' });
  expect((await gql(a.url, t.key, CHAT, input)).errors?.[0]?.extensions?.code).toBe('UPSTREAM_UNAVAILABLE');
  const second = await gqlOk(b.url, t.key, CHAT, input);
  expect(second.chat.usage.completionTokens).toBe(10);
});

test('an unpriced model is refused before any upstream call and writes no row', async () => {
  const t = await createTenant(a.url);
  const before = (await simStats()).requests['qwen3-8b'] ?? 0;
  const model = await db.model.findUniqueOrThrow({ where: { id: 'qwen3-8b' } });
  await db.model.update({ where: { id: 'qwen3-8b' }, data: { outputMicrosPerMillion: null } });
  await redis.incr('{lg:epoch}');
  try {
    const r = await gql(b.url, t.key, CHAT, hello('fast_classify'));
    expect(r.errors?.[0]?.extensions?.code).toBe('UNPRICED_MODEL');
    expect(r.errors?.[0]?.message).toMatch(/qwen3-8b/);
  } finally {
    await db.model.update({ where: { id: 'qwen3-8b' }, data: { outputMicrosPerMillion: model.outputMicrosPerMillion } });
    await redis.incr('{lg:epoch}');
  }
  expect((await simStats()).requests['qwen3-8b'] ?? 0).toBe(before);
  expect((await ledgerSum(t.id)).count).toBe(0);
});

test('Redis flushed mid-test, even with a stream in flight: limits and budget recover from Postgres without double counting', async () => {
  const t = await createTenant(a.url, { monthlyBudgetUsd: '1' });
  await override(t.id, 'chat_default', 'glm-5', []);
  await gqlOk(a.url, t.key, CHAT, hello('chat_default', { maxTokens: 50 }));
  await gqlOk(b.url, t.key, CHAT, hello('chat_default', { maxTokens: 50 }));
  // A stream that stalls after 5 tokens; Redis is flushed while it is open; it then ends and settles.
  await fault({ model: 'glm-5', fault: 'stall', afterTokens: 5, delayMs: 300, times: 1 });
  const ws = wsClient(a.url, t.key);
  const streaming = subscribeAll(ws, CHAT_STREAM, hello('chat_default', { maxTokens: 50 }));
  await waitFor(async () => (await db.ledgerEntry.count({ where: { tenantId: t.id, state: 'HELD' } })) === 1);
  await redis.flushdb();
  const s = await streaming;
  await ws.dispose();
  expect(s.events.at(-1).chatStream.done).toBe(true);
  await gqlOk(b.url, t.key, CHAT, hello('chat_default', { maxTokens: 50 }));
  const { sum, count } = await ledgerSum(t.id);
  expect(count).toBe(4);
  expect(await gateState(t.id)).toEqual({ spentMicros: sum, heldMicros: 0n });
});

test('a flushed Redis hands out no fresh burst: the last minute of the ledger counts against requests per minute', async () => {
  const t = await createTenant(a.url, { requestsPerMinute: 5 });
  for (let i = 0; i < 5; i++) await gqlOk(i % 2 ? a.url : b.url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }));
  await redis.flushdb();
  const r = await gql(b.url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }));
  expect(r.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
  expect((await ledgerSum(t.id)).count).toBe(5);
});

test('Redis unreachable: admission fails closed with SERVICE_UNAVAILABLE (503) and charges nothing', async () => {
  const t = await createTenant(a.url);
  // An instance with a Redis of its own, which is then stopped under it.
  const port = 20000 + Math.floor(Math.random() * 20000);
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  try {
    await waitFor(async () => {
      const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      try {
        return await probe.ping().then(
          () => true,
          () => false,
        );
      } finally {
        probe.disconnect();
      }
    });
    const lonely = await startApp({ REDIS_URL: `redis://127.0.0.1:${port}` }, sim);
    try {
      expect((await gql(lonely.url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }))).errors).toBeUndefined();
      server.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      const before = (await simStats()).requests['qwen3-8b'] ?? 0;
      const r = await gql(lonely.url, t.key, CHAT, hello('fast_classify', { maxTokens: 5 }));
      expect(r.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
      expect(r.status).toBe(503);
      expect((await simStats()).requests['qwen3-8b'] ?? 0).toBe(before);
    } finally {
      await lonely.stop();
    }
  } finally {
    server.kill('SIGKILL');
  }
  expect((await ledgerSum(t.id)).count).toBe(1);
});

const waitFor = (cond: () => Promise<boolean>, timeoutMs = 10_000) => waitUntil(cond, 'the condition', timeoutMs);

test('expired idempotency keys are purged; live ones stay', async () => {
  const t = await createTenant(a.url);
  await gqlOk(a.url, t.key, CHAT, hello('chat_speed', { maxTokens: 5, idempotencyKey: 'live' }));
  await db.idempotencyKey.create({
    data: { tenantId: t.id, key: 'old', inputHash: 'x', state: 'DONE', leaseExpiresAt: new Date(0), expiresAt: new Date(Date.now() - 1000) },
  });
  expect(await makeIdempotency({ db, ttlMs: 1, ownerLeaseMs: 1 }).purgeExpired()).toBeGreaterThanOrEqual(1);
  expect((await db.idempotencyKey.findMany({ where: { tenantId: t.id } })).map((k) => k.key)).toEqual(['live']);
});

test('a mutation whose HTTP client goes away stops the upstream call and settles CLIENT_CANCELLED, billed for what it consumed', async () => {
  const t = await createTenant(a.url, { monthlyBudgetUsd: '1' });
  await override(t.id, 'chat_speed', 'step-3.5-flash', []);
  await fault({ model: 'step-3.5-flash', fault: 'stall', afterTokens: 3, delayMs: 5000, times: 1 });
  const aborted = (await simStats()).abortedByClient;
  const ac = new AbortController();
  const pending = fetch(a.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${t.key}` },
    body: JSON.stringify({ query: CHAT, variables: hello('chat_speed', { maxTokens: 40 }) }),
    signal: ac.signal,
  }).catch((e: unknown) => e);
  await waitFor(async () => (await db.ledgerEntry.count({ where: { tenantId: t.id } })) === 1);
  await new Promise((r) => setTimeout(r, 200)); // the three tokens have arrived; the upstream is stalling
  ac.abort();
  expect(String(await pending)).toMatch(/abort/i); // the client saw no answer
  await waitFor(async () => (await db.ledgerEntry.count({ where: { tenantId: t.id, state: 'SETTLED' } })) === 1);
  const row = await db.ledgerEntry.findFirstOrThrow({ where: { tenantId: t.id } });
  expect(row.outcome).toBe('CLIENT_CANCELLED');
  expect(row.completionTokens).toBe(3);
  expect(row.costMicros).toBe(1n); // ceil(3 x $0.15 / 1M) in micro-dollars
  await waitFor(async () => (await simStats()).abortedByClient === aborted + 1);
  expect(await gateState(t.id)).toEqual({ spentMicros: 1n, heldMicros: 0n });
});
