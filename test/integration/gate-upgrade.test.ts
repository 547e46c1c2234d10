import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import type { App } from '../../src/app';
import { createPrisma } from '../../src/infra/prisma';
import { createSqlPool } from '../../src/infra/postgres';
import { makeLedger } from '../../src/accounting/ledger';
import { makeLimiter } from '../../src/limits';
import { monthOf } from '../../src/accounting/period';
import type { Simulator } from '../../src/simulator/server';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env';
import { CHAT, createTenant, gql, gqlOk, hello, startApp, startSim } from '../support/app';
import { GLM5_PRICES, heldEntry } from '../support/ledger-entries';

/**
 * Upgrade in place: Redis holds the previous release's gate state (format 1: token buckets, one settled-marker key
 * per request, a budget hash without generation) for requests the ledger also has, some settled, one still HELD by
 * an instance that died. The new release (format 2) rebuilds its own state from the ledger: it loses no settlement,
 * counts nothing twice, and never reads or writes the old keys.
 */
const db = createPrisma(TEST_DATABASE_URL, { max: 2 });
const sql = createSqlPool(TEST_DATABASE_URL, { max: 2 });
const ledger = makeLedger(db, sql);
const redis = new Redis(TEST_REDIS_URL);
const limiter = makeLimiter(redis);
let sim: Simulator;
let a: App;
let b: App;

beforeAll(async () => {
  sim = await startSim(0);
  // No background jobs: the test decides when the reaper runs.
  [a, b] = await Promise.all([startApp({}, sim, { background: false }), startApp({}, sim, { background: false })]);
});
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await sim?.close();
  await Promise.all([db.$disconnect(), sql.end()]);
  redis.disconnect();
});

const held = (tenantId: string, requestId: string, startedAt: Date, holdMicros: bigint) =>
  ledger.hold(heldEntry(tenantId, { requestId, startedAt, holdMicros, leaseMs: 1 })); // its lease is long gone: the instance that ran it is dead

test('format 1 state in Redis, the ledger as truth: the new release reseeds, settles the orphan once, re-applies nothing, and seeds windows from the ledger only', async () => {
  const t = await createTenant(a.url, { requestsPerMinute: 5, monthlyBudgetUsd: '10' });
  // The tenant existed before the upgrade: no format 2 state yet (createTenant's answer seeded some).
  await redis.del(...(await redis.keys(`lg:{${t.id}}:v2:*`)));
  const month = monthOf(new Date());
  const now = Date.now();
  const settledId = randomUUID();
  const orphanId = randomUUID();

  // The ledger: one request settled at 300 by the old release, one still HELD (hold 500) with 40 tokens checkpointed.
  await held(t.id, settledId, new Date(now - 10_000), 500n);
  expect(
    await ledger.settle(settledId, {
      startedAt: new Date(now - 10_000),
      model: 'glm-5',
      attempts: [],
      promptTokens: 20,
      completionTokens: 140,
      cachedPromptTokens: 0,
      cacheWriteTokens: 0,
      unpricedPromptTokens: 0,
      prices: GLM5_PRICES['glm-5'],
      costMicros: 300n,
      outcome: 'COMPLETED',
      usageSource: 'PROVIDER',
      endedAt: new Date(now - 5_000),
    }),
  ).toBe(true);
  await held(t.id, orphanId, new Date(now - 2_000), 500n);
  await db.ledgerEntry.update({ where: { requestId: orphanId }, data: { checkpointTokens: 40, checkpointModel: 'glm-5' } });

  // Redis as the previous release's scripts left it (shapes of its admit/settle/bucket writes).
  const v1 = `lg:{${t.id}}`;
  await redis
    .multi()
    .hset(`${v1}:budget:${month}`, 'spent', '300', 'held', '500')
    .zadd(`${v1}:holds:${month}`, String(now + 60_000), orphanId)
    .hset(`${v1}:hold-amounts:${month}`, orphanId, '500')
    .set(`${v1}:settled:${settledId}`, '300', 'PX', 172_800_000)
    .hset(`${v1}:rate:rpm`, 'lvl', String(3 * 60_000), 'ts', String(now), 'n', '5')
    .exec();
  const v1Before = await redis.hgetall(`${v1}:budget:${month}`);

  // The new release: its own state comes from the ledger (settled 300, the orphan held at 500).
  const me = async () => (await gqlOk(b.url, t.key, `{ me { spentThisMonthUsd heldUsd } }`)).me;
  expect(await me()).toEqual({ spentThisMonthUsd: '0.000300', heldUsd: '0.000500' });

  // A settlement retried after the upgrade (the old instance's apply, or a pending-apply retry) counts nothing twice.
  expect(await limiter.settle({ tenantId: t.id, requestId: settledId, month, actualMicros: 300n, actualTokens: 160, tokensEstimate: 170 })).toEqual({
    applied: false,
  });

  // The orphan is settled by the new release's reaper, once, in both stores.
  await a.reapOnce();
  const rows = await db.ledgerEntry.findMany({ where: { tenantId: t.id }, select: { state: true, costMicros: true } });
  expect(rows.every((r) => r.state === 'SETTLED')).toBe(true);
  const sum = rows.reduce((s, r) => s + (r.costMicros ?? 0n), 0n);
  expect(sum).toBeGreaterThan(300n); // the orphan's checkpointed tokens were billed
  expect(await limiter.budgetState(t.id, month)).toEqual({ spentMicros: sum, heldMicros: 0n });
  expect(await limiter.settle({ tenantId: t.id, requestId: orphanId, month, actualMicros: sum - 300n, actualTokens: 60, tokensEstimate: 170 })).toEqual({
    applied: false,
  });

  // Requests per minute: the ledger's two requests of the last minute count, once (not also the old bucket's).
  const burst = await Promise.all(Array.from({ length: 6 }, (_, i) => gql((i % 2 ? a : b).url, t.key, CHAT, hello())));
  expect(burst.filter((r) => !r.errors)).toHaveLength(3);

  // The old keys were neither read nor written; they expire by their own TTLs.
  expect(await redis.hgetall(`${v1}:budget:${month}`)).toEqual(v1Before);
});
